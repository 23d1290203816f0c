/*
 * test_ml.c - the ml.* jobs and `betpipe models` with the real binary, the real plugins and a
 * real store filled by data.import from the bundled football-data history:
 *   - ml.train dixon_coles E0 2023-24 without decay reproduces the reference optimum of issue 7
 *     through the store (log-likelihood, home, rho, the top attack ratings, Arsenal v Man City);
 *   - a failing train (no data, too few matches, no convergence) stores nothing and the active
 *     model stays; two trains of one model and league are never live together;
 *   - ml.train_all on a daemon fans out one ml.train per league and model, and each succeeds;
 *   - ml.predict stores the predictions and the daemon's cache holds them;
 *   - ml.predict compares each prediction with the market: the match's latest odds read through
 *     the cache (the entry data.collect_odds writes, or the store on a miss), the best price and
 *     the margin-removed reference book, the edge per 1X2 selection; a match without odds has no
 *     market; a Redis cache stopped mid-run costs nothing but the cache, warns once, recovers;
 *   - `models evaluate` prints its table and agrees with bench_models on the same seasons, names
 *     a long ensemble in full with the columns aligned;
 *   - GSL failing inside a model is a status, not an abort (the core turns its handler off).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "bpm_margin.h"
#include "engine.h"
#include "http_fixture.h"
#include "redis_fixture.h"
#include "store.h"
#include "store_domain.h"
#include "store_models.h"
#include "support.h"
#include "util.h"

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))

static char *dd;

static void setup(void)
{
    bpt_engine_env_setup();
    unsetenv("BETPIPE_DATA_SOURCE");
    unsetenv("BETPIPE_CACHE_URL");
    unsetenv("BETPIPE_CACHE_BACKEND");
    dd = bpt_tmpdir("ml");
}

static void teardown(void)
{
    bpt_rm_rf(dd);
    free(dd);
}

TestSuite(ml, .init = setup, .fini = teardown, .timeout = 900);

/* `betpipe run TYPE --args ARGS --wait --json`; returns the job record. */
static json_t *run_job(const char *type, const char *args)
{
    bpt_result r = bpt_betpipe(dd, "run", type, "--args", args, "--max-retries", "0", "--wait",
                               "--json", "--timeout", "300s", NULL);
    json_t *rec = json_loads(r.out, 0, NULL);
    cr_assert(rec, "%s: no JSON from the CLI (exit %d)\nstdout: %s\nstderr: %s", type, r.exit_code,
              r.out, r.err);
    bpt_result_free(&r);
    return rec;
}

static const char *state_of(const json_t *rec)
{
    return json_string_value(json_object_get(rec, "state"));
}

static const char *error_of(const json_t *rec)
{
    const char *e = json_string_value(json_object_get(rec, "error"));
    return e ? e : "";
}

static void import(const char *args)
{
    json_t *rec = run_job("data.import", args);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "import: %s", error_of(rec));
    json_decref(rec);
}

static store *open_store(void)
{
    char path[1024];
    store *s = NULL;
    bp_error err = {0};
    snprintf(path, sizeof path, "%s/betpipe.db", dd);
    cr_assert_eq(store_open(path, &s, &err), BP_OK, "%s", err.msg);
    return s;
}

static int64_t league_id(store *s, const char *code)
{
    json_t *l = NULL;
    cr_assert_eq(store_find_league(s, NULL, "betpipe", code, &l, NULL), BP_OK);
    int64_t id = json_integer_value(json_object_get(l, "id"));
    json_decref(l);
    return id;
}

static int64_t team_id(store *s, int64_t league, const char *name)
{
    int64_t id = 0;
    cr_assert_eq(store_resolve_team(s, NULL, league, "football_data", name, &id, NULL, NULL),
                 BP_OK);
    return id;
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    cr_assert(json_is_number(v), "%s is not a number", key);
    return json_number_value(v);
}

/* The match of home v away in a season. */
static int64_t match_of(store *s, const char *code, int32_t season, const char *home,
                        const char *away)
{
    int64_t l = league_id(s, code);
    bp_match_query q = {
        .struct_size = sizeof q, .league_id = l, .season = season, .team_id = team_id(s, l, home)};
    json_t *arr = NULL, *m;
    size_t i;
    int64_t id = 0;
    cr_assert_eq(store_list_matches(s, &q, &arr, NULL), BP_OK);
    json_array_foreach(arr, i, m)
    {
        if (strcmp(json_string_value(json_object_get(json_object_get(m, "home"), "name")), home) ==
                0 &&
            strcmp(json_string_value(json_object_get(json_object_get(m, "away"), "name")), away) ==
                0) {
            id = json_integer_value(json_object_get(m, "id"));
        }
    }
    json_decref(arr);
    cr_assert_gt(id, 0, "no match %s v %s", home, away);
    return id;
}

static const char *REFERENCE_TRAIN = "{\"model\": \"dixon_coles\", \"league\": \"E0\", "
                                     "\"seasons\": [\"2023-24\"], \"params\": {\"xi\": 0}}";

Test(ml, train_dixon_coles_reproduces_the_reference_through_the_store)
{
    import("{\"leagues\": [\"E0\"], \"seasons\": [\"2023-24\"]}");
    json_t *rec = run_job("ml.train", REFERENCE_TRAIN);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    json_t *res = json_object_get(rec, "result");
    json_t *metrics = json_object_get(res, "metrics");
    cr_assert_eq(json_integer_value(json_object_get(res, "n_matches")), 380);
    cr_assert(NEAR(num(metrics, "loglik"), -1135.2510, 1e-3), "loglik %.6f",
              num(metrics, "loglik"));
    cr_assert(NEAR(num(metrics, "home"), 0.1967, 1e-4), "home %.6f", num(metrics, "home"));
    cr_assert(NEAR(num(metrics, "rho"), -0.0201, 1e-4), "rho %.6f", num(metrics, "rho"));
    cr_assert_gt(num(metrics, "fit_ms"), 0.0);
    cr_assert_gt(num(json_object_get(metrics, "in_sample"), "rps"), 0.1);
    int64_t model_id = json_integer_value(json_object_get(res, "model_id"));
    json_decref(rec);

    /* the stored state: centred attack ratings, the top three */
    store *s = open_store();
    int64_t e0 = league_id(s, "E0");
    json_t *m = NULL;
    cr_assert_eq(store_get_model(s, 0, "dixon_coles", e0, &m, NULL), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(m, "id")), model_id);
    cr_assert(json_is_true(json_object_get(m, "active")));
    cr_assert_eq(json_integer_value(json_object_get(m, "n_matches")), 380);
    json_t *state = json_object_get(m, "state");
    json_t *teams = json_object_get(state, "teams"), *attack = json_object_get(state, "attack");
    cr_assert_eq(json_array_size(teams), 20);
    cr_assert_eq(json_array_size(attack), 20);
    struct {
        const char *name;
        double attack;
    } top[] = {{"Man City", 0.448}, {"Arsenal", 0.390}, {"Newcastle", 0.349}};
    double sum = 0, max_other = -1;
    for (size_t i = 0; i < 20; i++) {
        sum += json_number_value(json_array_get(attack, i));
    }
    cr_assert(NEAR(sum, 0.0, 1e-9), "attack ratings are centred (sum %g)", sum);
    for (size_t i = 0; i < 20; i++) {
        int64_t id = json_integer_value(json_array_get(teams, i));
        double a = json_number_value(json_array_get(attack, i));
        bool is_top = false;
        for (size_t k = 0; k < 3; k++) {
            if (id == team_id(s, e0, top[k].name)) {
                is_top = true;
                cr_assert(NEAR(a, top[k].attack, 5e-4), "%s attack %.5f", top[k].name, a);
            }
        }
        if (!is_top && a > max_other) {
            max_other = a;
        }
    }
    cr_assert_lt(max_other, 0.349, "Man City, Arsenal and Newcastle are the top three");
    json_decref(m);

    /* Arsenal v Man City through ml.predict, and the stored prediction */
    int64_t match = match_of(s, "E0", 2023, "Arsenal", "Man City");
    char args[128];
    snprintf(args, sizeof args, "{\"match\": %lld, \"model\": \"dixon_coles\"}", (long long)match);
    rec = run_job("ml.predict", args);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    json_t *p = json_array_get(json_object_get(json_object_get(rec, "result"), "predictions"), 0);
    cr_assert(NEAR(num(p, "p_home"), 0.4543, 5e-5) && NEAR(num(p, "p_draw"), 0.2694, 5e-5) &&
                  NEAR(num(p, "p_away"), 0.2763, 5e-5),
              "Arsenal v Man City %.5f/%.5f/%.5f", num(p, "p_home"), num(p, "p_draw"),
              num(p, "p_away"));
    json_decref(rec);
    bp_prediction_query q = {.struct_size = sizeof q, .match_id = match};
    json_t *preds = NULL;
    cr_assert_eq(store_list_predictions(s, &q, &preds, NULL), BP_OK);
    cr_assert_eq(json_array_size(preds), 1);
    p = json_array_get(preds, 0);
    cr_assert_eq(json_integer_value(json_object_get(p, "model_id")), model_id);
    cr_assert(NEAR(num(p, "p_home"), 0.4543, 5e-5));
    json_t *mk = json_object_get(p, "markets");
    double over = num(json_object_get(json_object_get(mk, "totals"), "2.5"), "over");
    double under = num(json_object_get(json_object_get(mk, "totals"), "2.5"), "under");
    cr_assert(NEAR(over + under, 1.0, 1e-5), "O/U 2.5 %.6f + %.6f", over, under);
    double yes = num(json_object_get(mk, "btts"), "yes");
    cr_assert(yes > 0.3 && yes < 0.7, "BTTS yes %.4f", yes);
    /* AH 0 is draw-no-bet: home wins when home wins, pushes on a draw */
    json_t *ah0 =
        json_object_get(json_object_get(json_object_get(mk, "asian_handicap"), "+0.00"), "home");
    cr_assert(NEAR(num(ah0, "win"), 0.4543, 5e-5) && NEAR(num(ah0, "push"), 0.2694, 5e-5));
    cr_assert_gt(num(json_object_get(mk, "correct_score"), "1-1"), 0.05);
    json_decref(preds);
    store_close(s);

    /* bad predict requests are named, and store nothing */
    const struct {
        const char *args;
        const char *says;
    } bad[] = {
        {"{\"league\": \"E0\", \"match\": 1}", "either match"},
        {"{\"match\": 99999999}", "no match with id 99999999"},
        {"{\"league\": \"E0\", \"model\": \"elo\"}", "no active elo model for E0"},
        {"{\"league\": \"E0\", \"from\": \"2023-13-01\"}", "out of range"},
        {"{\"league\": \"XX\"}", "unknown league 'XX'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec = run_job("ml.predict", bad[i].args);
        cr_assert_str_eq(state_of(rec), "FAILURE", "%s", bad[i].args);
        cr_assert(strstr(error_of(rec), bad[i].says), "%s -> %s", bad[i].args, error_of(rec));
        json_decref(rec);
    }
}

Test(ml, a_failed_train_stores_nothing_and_the_active_model_stays)
{
    import("{\"leagues\": [\"E0\"], \"seasons\": [\"2023-24\"]}");
    json_t *rec = run_job("ml.train", REFERENCE_TRAIN);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    int64_t good = json_integer_value(json_object_get(json_object_get(rec, "result"), "model_id"));
    json_decref(rec);

    const struct {
        const char *args;
        const char *says;
    } bad[] = {
        /* no convergence */
        {"{\"model\": \"dixon_coles\", \"league\": \"E0\", \"seasons\": [\"2023-24\"], "
         "\"params\": {\"max_iter\": 1}}",
         "did not converge"},
        /* no data */
        {"{\"model\": \"dixon_coles\", \"league\": \"E0\", \"seasons\": [\"2030-31\"]}",
         "no finished E0 2030-31 matches"},
        /* too few matches for the number of teams: the last day of the season */
        {"{\"model\": \"dixon_coles\", \"league\": \"E0\", \"since\": \"2024-05-19\"}",
         "dixon_coles"},
        /* bad params */
        {"{\"model\": \"dixon_coles\", \"league\": \"E0\", \"params\": {\"xii\": 1}}", "xii"},
        /* a model nobody loaded */
        {"{\"model\": \"nosuchmodel\", \"league\": \"E0\"}", "no model 'nosuchmodel'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec = run_job("ml.train", bad[i].args);
        cr_assert_str_eq(state_of(rec), "FAILURE", "%s", bad[i].args);
        cr_assert(strstr(error_of(rec), bad[i].says), "%s -> %s", bad[i].args, error_of(rec));
        if (i < 4) {
            char stays[64];
            snprintf(stays, sizeof stays, "model %lld", (long long)good);
            cr_assert(strstr(error_of(rec), stays) && strstr(error_of(rec), "stays active"),
                      "the message says the active model stays: %s", error_of(rec));
        }
        json_decref(rec);
    }

    store *s = open_store();
    json_t *all = NULL, *m = NULL;
    cr_assert_eq(store_list_models(s, NULL, 0, 0, &all, NULL), BP_OK);
    cr_assert_eq(json_array_size(all), 1, "a failed train stores nothing");
    cr_assert_eq(store_get_model(s, 0, "dixon_coles", league_id(s, "E0"), &m, NULL), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(m, "id")), good);
    json_decref(all);
    json_decref(m);
    store_close(s);

    /* a second train of the same model and league while the first is queued is refused */
    bpt_result r1 = bpt_betpipe(dd, "run", "ml.train", "--args", REFERENCE_TRAIN, NULL);
    cr_assert_eq(r1.exit_code, 0, "%s", r1.err);
    bpt_result r2 = bpt_betpipe(dd, "run", "ml.train", "--args", REFERENCE_TRAIN, NULL);
    cr_assert_neq(r2.exit_code, 0);
    cr_assert(strstr(r2.err, "unique key 'ml.train:dixon_coles:E0'"), "%s", r2.err);
    bpt_result_free(&r1);
    bpt_result_free(&r2);
    /* another league is another key */
    bpt_result r3 = bpt_betpipe(dd, "run", "ml.train", "--arg", "model=dixon_coles", "--arg",
                                "league=D1", NULL);
    cr_assert_eq(r3.exit_code, 0, "%s", r3.err);
    bpt_result_free(&r3);
}

Test(ml, train_all_fans_out_and_predict_stores_and_caches)
{
    import("{\"seasons\": [\"2022-23\", \"2023-24\"]}");
    pid_t d = bpt_daemon_start(dd, NULL);
    json_t *rec = run_job("ml.train_all", "{}");
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    json_t *children = json_object_get(json_object_get(rec, "result"), "children");
    cr_assert_eq(json_array_size(children), 9, "3 leagues x dixon_coles, elo, pi_rating");
    app *a = bpt_app_open(dd);
    size_t i;
    json_t *c;
    json_array_foreach(children, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        job *j = bpt_wait_final(a, id, 120000);
        cr_assert(j, "child %s did not finish", id);
        cr_assert_eq(j->state, JOB_SUCCESS, "%s %s: %s",
                     json_string_value(json_object_get(c, "model")),
                     json_string_value(json_object_get(c, "league")), j->error ? j->error : "");
        cr_assert_str_eq(j->parent_id, json_string_value(json_object_get(rec, "id")));
        job_free(j);
    }
    json_decref(rec);
    json_t *active = NULL;
    cr_assert_eq(store_list_models(a->store, NULL, 0, 1, &active, NULL), BP_OK);
    cr_assert_eq(json_array_size(active), 9);
    json_decref(active);

    /* predict the last match day of E0 2023-24 with every active E0 model, on the daemon */
    rec = run_job("ml.predict", "{\"league\": \"E0\", \"from\": \"2024-05-19\", \"to\": "
                                "\"2024-05-20\"}");
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    json_t *res = json_object_get(rec, "result");
    cr_assert_eq(json_integer_value(json_object_get(res, "predicted")), 30, "10 matches x 3");
    cr_assert_eq(json_integer_value(json_object_get(res, "cached")), 30);
    json_decref(rec);
    json_t *preds = NULL;
    bp_prediction_query pq = {.struct_size = sizeof pq, .model = "dixon_coles", .latest = 1};
    cr_assert_eq(store_list_predictions(a->store, &pq, &preds, NULL), BP_OK);
    cr_assert_eq(json_array_size(preds), 10);
    json_t *p = json_array_get(preds, 0);
    char key[128];
    snprintf(key, sizeof key, "{\"match_id\": %lld, \"model\": \"dixon_coles\"}",
             (long long)json_integer_value(json_object_get(p, "match_id")));
    bpt_result r = bpt_betpipe(dd, "cache", "get", "predictions", key, "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s%s", r.out, r.err);
    json_t *replies = json_loads(r.out, 0, NULL), *reply;
    const char *worker;
    bool found = false;
    json_object_foreach(replies, worker, reply)
    {
        json_t *value = json_object_get(json_object_get(reply, "reply"), "value");
        if (value) {
            found = true;
            cr_assert(NEAR(num(value, "p_home"), num(p, "p_home"), 1e-6));
            cr_assert_eq(json_integer_value(json_object_get(value, "model_id")),
                         json_integer_value(json_object_get(p, "model_id")));
            cr_assert(json_is_object(json_object_get(value, "markets")));
        }
    }
    cr_assert(found, "the daemon's cache holds the prediction: %s", r.out);
    json_decref(replies);
    bpt_result_free(&r);
    json_decref(preds);

    /* models list shows the nine active models */
    r = bpt_betpipe(dd, "models", "list", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "SP1") && strstr(r.out, "pi_rating") && strstr(r.out, "loglik"), "%s",
              r.out);
    bpt_result_free(&r);
    app_close(a);
    cr_assert_eq(bpt_stop(d, SIGTERM, 15000), 0);
}

/* ---- ml.predict and the market ------------------------------------------------------------- */

static const char *const SELECTIONS[3] = {"home", "draw", "away"};

/*
 * The market section of a prediction of `match` (p: the model's 1X2) against what the store
 * says, worked out here on its own: the best latest price per selection over the bookmakers
 * (not the market_max / market_avg aggregates), the edge p x best - 1, and Pinnacle's book with
 * the margin removed by Shin.
 */
static void check_market(store *s, int64_t match, const json_t *market, const double p[3])
{
    json_t *quotes = NULL, *q;
    double best[3] = {0, 0, 0}, pin[3] = {0, 0, 0}, fair[3];
    size_t i;
    cr_assert(json_is_object(market), "match %lld has odds, so its prediction has a market",
              (long long)match);
    cr_assert_eq(store_get_odds(s, match, BP_MARKET_1X2, BP_ODDS_LATEST, &quotes, NULL), BP_OK);
    json_array_foreach(quotes, i, q)
    {
        const char *book = json_string_value(json_object_get(q, "bookmaker"));
        const char *sel = json_string_value(json_object_get(q, "selection"));
        double price = num(q, "price");
        for (int k = 0; k < 3; k++) {
            if (strcmp(sel, SELECTIONS[k]) != 0) {
                continue;
            }
            if (strcmp(book, "pinnacle") == 0) {
                pin[k] = price;
            }
            if (!strstr(book, "_max") && !strstr(book, "_avg") && price > best[k]) {
                best[k] = price;
            }
        }
    }
    json_decref(quotes);
    for (int k = 0; k < 3; k++) {
        const json_t *b = json_object_get(json_object_get(market, "best"), SELECTIONS[k]);
        double edge = num(json_object_get(market, "edge"), SELECTIONS[k]);
        cr_assert(NEAR(num(b, "price"), best[k], 1e-9), "match %lld best %s %.3f, want %.3f",
                  (long long)match, SELECTIONS[k], num(b, "price"), best[k]);
        cr_assert(NEAR(edge, p[k] * best[k] - 1.0, 1e-6 * best[k] + 1e-6),
                  "match %lld edge %s %.6f, want %.6f x %.3f - 1", (long long)match, SELECTIONS[k],
                  edge, p[k], best[k]);
    }
    const json_t *ref = json_object_get(market, "reference");
    cr_assert_str_eq(json_string_value(json_object_get(ref, "bookmaker")), "pinnacle");
    cr_assert_str_eq(json_string_value(json_object_get(ref, "margin_method")), "shin");
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_SHIN, pin, 3, fair, NULL, NULL), BP_OK);
    cr_assert(NEAR(num(ref, "overround"), bpm_booksum(pin, 3) - 1.0, 2e-6));
    cr_assert(NEAR(num(ref, "p_home"), fair[0], 2e-6) && NEAR(num(ref, "p_draw"), fair[1], 2e-6) &&
                  NEAR(num(ref, "p_away"), fair[2], 2e-6),
              "match %lld: Pinnacle without its margin %.6f/%.6f/%.6f", (long long)match, fair[0],
              fair[1], fair[2]);
}

/* Check every prediction of an ml.predict result; `no_odds` is the one match without odds. */
static void check_predictions(store *s, const json_t *res, int64_t no_odds)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(res, "predictions"), i, p)
    {
        int64_t match = json_integer_value(json_object_get(p, "match_id"));
        double pm[3] = {num(p, "p_home"), num(p, "p_draw"), num(p, "p_away")};
        if (match == no_odds) {
            cr_assert_null(json_object_get(p, "market"), "no odds, no market");
        } else {
            check_market(s, match, json_object_get(p, "market"), pm);
        }
    }
}

static json_int_t odds_count(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(json_object_get(json_object_get(rec, "result"), "odds"), key);
    cr_assert(json_is_integer(v), "result.odds.%s missing", key);
    return json_integer_value(v);
}

/* result.odds.<key> of an ml.predict record is `want` (the message shows the job's summary). */
static void expect_odds(const json_t *rec, const char *key, json_int_t want, const char *why)
{
    json_int_t got = odds_count(rec, key);
    cr_assert_eq(got, want, "odds.%s is %lld, want %lld (%s): %s", key, (long long)got,
                 (long long)want, why,
                 json_string_value(json_object_get(json_object_get(rec, "result"), "summary")));
}

static const char *LAST_DAY = "{\"league\": \"E0\", \"model\": \"dixon_coles\", \"from\": "
                              "\"2024-05-19\", \"to\": \"2024-05-20\"}";

/* A fixture the store knows before any odds for it: E0 2024-25, on the day of the recorded
 * The Odds API snapshot. */
static int64_t add_match_without_odds(store *s)
{
    int64_t e0 = league_id(s, "E0"), kickoff = 0, id = 0;
    bp_error err = {0};
    cr_assert_eq(util_parse_iso8601("2024-11-23T17:30:00Z", &kickoff, NULL), BP_OK);
    bp_match_rec m = {.struct_size = sizeof m,
                      .season = 2024,
                      .league_id = e0,
                      .home_team_id = team_id(s, e0, "Liverpool"),
                      .away_team_id = team_id(s, e0, "Everton"),
                      .kickoff_ms = kickoff,
                      .kickoff_exact = 1,
                      .status = BP_MATCH_SCHEDULED,
                      .home_goals = -1,
                      .away_goals = -1,
                      .ht_home_goals = -1,
                      .ht_away_goals = -1,
                      .elapsed = -1,
                      .source = BP_SOURCE_API_FOOTBALL,
                      .external_id = "no-odds-yet"};
    cr_assert_eq(store_upsert_match(s, NULL, &m, &id, NULL, &err), BP_OK, "%s", err.msg);
    return id;
}

/* The daemon's own cache counters of one type, through `betpipe cache stats --json`. */
static json_t *daemon_cache_stats(const char *type)
{
    bpt_result r = bpt_betpipe(dd, "cache", "stats", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s%s", r.out, r.err);
    json_t *replies = json_loads(r.out, 0, NULL), *reply, *out = NULL;
    const char *worker;
    cr_assert(replies, "%s", r.out);
    cr_assert_eq(json_object_size(replies), 1, "one daemon answers: %s", r.out);
    json_object_foreach(replies, worker, reply)
    {
        out = json_incref(
            json_object_get(json_object_get(json_object_get(reply, "reply"), "types"), type));
    }
    json_decref(replies);
    bpt_result_free(&r);
    return out;
}

Test(ml, predict_compares_with_the_market_read_through_the_cache)
{
    import("{\"leagues\": [\"E0\"], \"seasons\": [\"2023-24\"]}");
    json_t *rec = run_job("ml.train", REFERENCE_TRAIN);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    json_decref(rec);
    store *s = open_store();

    /* The Odds API on loopback, for data.collect_odds */
    bpt_http *api = bpt_http_start();
    char base[1024], cfg[2048];
    snprintf(base, sizeof base, "%s/api-fixtures/the-odds-api/odds", bpt_env("BP_TEST_DATA_DIR"));
    bpt_http_reply odds_reply = bpt_http_recorded(api, base);
    bpt_http_script(api, "/v4/sports/soccer_epl/odds", &odds_reply, 1);
    snprintf(cfg, sizeof cfg,
             "{\"plugins\": {\"config\": {\"the_odds_api\": {\"api_key\": \"toa-test-key\", "
             "\"base_url\": \"%s\", \"retry_base_ms\": 20, \"max_attempts\": 2}}}}",
             bpt_http_url(api));
    bpt_write_in(dd, "betpipe.json", cfg);
    pid_t d = bpt_daemon_start(dd, NULL);

    /* first: every match a miss, its odds read from the store (and cached) */
    rec = run_job("ml.predict", LAST_DAY);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    json_t *res = json_object_get(rec, "result");
    cr_assert_eq(json_integer_value(json_object_get(res, "predicted")), 10);
    expect_odds(rec, "from_store", 10, "-");
    expect_odds(rec, "from_cache", 0, "-");
    expect_odds(rec, "without_odds", 0, "-");
    expect_odds(rec, "with_market", 10, "-");
    check_predictions(s, res, 0);
    int64_t first = json_integer_value(
        json_object_get(json_array_get(json_object_get(res, "predictions"), 0), "match_id"));
    json_decref(rec);

    /* again: the odds come from the daemon's cache */
    rec = run_job("ml.predict", LAST_DAY);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    expect_odds(rec, "from_cache", 10, "-");
    expect_odds(rec, "from_store", 0, "-");
    check_predictions(s, json_object_get(rec, "result"), 0);
    json_decref(rec);
    json_t *st = daemon_cache_stats("odds");
    cr_assert_eq(json_integer_value(json_object_get(st, "hits")), 10);
    cr_assert_eq(json_integer_value(json_object_get(st, "misses")), 10);
    cr_assert_eq(json_integer_value(json_object_get(st, "sets")), 10);
    json_decref(st);

    /* the stored prediction carries the market too */
    bp_prediction_query pq = {.struct_size = sizeof pq, .match_id = first};
    json_t *preds = NULL;
    cr_assert_eq(store_list_predictions(s, &pq, &preds, NULL), BP_OK);
    json_t *stored = json_array_get(preds, 0);
    double pm[3] = {num(stored, "p_home"), num(stored, "p_draw"), num(stored, "p_away")};
    check_market(s, first, json_object_get(json_object_get(stored, "markets"), "market"), pm);
    json_decref(preds);

    /* data.collect_odds stores two new matches of 23 and 24 November 2024 and caches their latest
     * odds; ml.predict reads them from that very entry. A third fixture of the weekend has no odds:
     * it is predicted, without a market, and looked up again next time (no odds is not cached). */
    rec = run_job("data.collect_odds", "{\"leagues\": [\"E0\"]}");
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(rec, "result"), "cached")), 2);
    json_decref(rec);
    int64_t no_odds = add_match_without_odds(s);
    rec = run_job("ml.predict", "{\"league\": \"E0\", \"model\": \"dixon_coles\", \"from\": "
                                "\"2024-11-23\", \"to\": \"2024-11-25\"}");
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(rec, "result"), "predicted")),
                 3);
    expect_odds(rec, "from_cache", 2, "data.collect_odds's entries are read");
    expect_odds(rec, "from_store", 0, "-");
    expect_odds(rec, "without_odds", 1, "-");
    expect_odds(rec, "with_market", 2, "-");
    check_predictions(s, json_object_get(rec, "result"), no_odds);
    json_decref(rec);
    st = daemon_cache_stats("odds");
    cr_assert_eq(json_integer_value(json_object_get(st, "hits")), 12);
    cr_assert_eq(json_integer_value(json_object_get(st, "misses")), 11);
    json_decref(st);
    pq.match_id = no_odds;
    cr_assert_eq(store_list_predictions(s, &pq, &preds, NULL), BP_OK);
    cr_assert_eq(json_array_size(preds), 1);
    cr_assert_null(json_object_get(json_object_get(json_array_get(preds, 0), "markets"), "market"),
                   "the stored prediction of a match without odds has no market");
    json_decref(preds);

    store_close(s);
    cr_assert_eq(bpt_stop(d, SIGTERM, 15000), 0);
    bpt_http_stop(api);
}

typedef struct predict_hits {
    int runs;
    json_int_t from_cache;
} predict_hits;

/* A bpt_wait_for condition: one more ml.predict, whose odds all came from the cache. */
static bool predict_hits_the_cache(void *ud)
{
    predict_hits *ph = ud;
    json_t *rec = run_job("ml.predict", LAST_DAY);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "after the restart: %s", error_of(rec));
    ph->runs++;
    ph->from_cache = odds_count(rec, "from_cache");
    json_decref(rec);
    return ph->from_cache == 10;
}

typedef struct shared_hits {
    json_int_t want;
    json_int_t seen;
} shared_hits;

/* A bpt_wait_for condition: the shared counters (flushed by the daemon about once a second)
 * show `want` odds hits to `betpipe cache stats`, which reads the Redis cache itself. */
static bool cli_sees_odds_hits(void *ud)
{
    shared_hits *sh = ud;
    bpt_result r = bpt_betpipe(dd, "cache", "stats", "--json", NULL);
    json_t *st = json_loads(r.out, 0, NULL);
    cr_assert(st, "cache stats: %s%s", r.out, r.err);
    sh->seen = json_integer_value(
        json_object_get(json_object_get(json_object_get(st, "types"), "odds"), "hits"));
    json_decref(st);
    bpt_result_free(&r);
    return sh->seen == sh->want;
}

Test(ml, predict_rides_out_a_redis_cache_stopped_mid_run)
{
    bpt_redis *srv = bpt_redis_start(NULL);
    setenv("BETPIPE_CACHE_URL", bpt_redis_url(srv), 1);
    import("{\"leagues\": [\"E0\"], \"seasons\": [\"2023-24\"]}");
    json_t *rec = run_job("ml.train", REFERENCE_TRAIN);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    json_decref(rec);
    pid_t d = bpt_daemon_start(dd, NULL);
    char log[1024];
    snprintf(log, sizeof log, "%s/daemon.log", dd);

    rec = run_job("ml.predict", LAST_DAY);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "%s", error_of(rec));
    expect_odds(rec, "from_store", 10, "-");
    json_decref(rec);
    rec = run_job("ml.predict", LAST_DAY);
    expect_odds(rec, "from_cache", 10, "the Redis cache serves the second run");
    json_decref(rec);
    shared_hits sh = {.want = 10};
    cr_assert(bpt_wait_for(cli_sees_odds_hits, &sh, 10000),
              "cache stats shows the daemon's odds hits (saw %lld)", (long long)sh.seen);

    /* Redis goes away under the running daemon: the jobs compute from the store */
    bpt_redis_stop(srv);
    for (int i = 0; i < 2; i++) {
        rec = run_job("ml.predict", LAST_DAY);
        cr_assert_str_eq(state_of(rec), "SUCCESS", "with the cache down: %s", error_of(rec));
        expect_odds(rec, "from_store", 10, "-");
        expect_odds(rec, "with_market", 10, "the market is still there");
        json_decref(rec);
    }
    cr_assert_eq(bpt_count_in_file(log, "WARN cache backend unavailable"), 1,
                 "one warning for the outage");

    /* and back: the cache recovers by itself */
    bpt_redis_restart(srv);
    predict_hits ph = {0};
    cr_assert(bpt_wait_for(predict_hits_the_cache, &ph, 30000),
              "the cache did not come back (%d runs, last %lld from the cache)", ph.runs,
              (long long)ph.from_cache);
    cr_assert_eq(bpt_count_in_file(log, "INFO cache backend recovered"), 1);
    cr_assert_eq(bpt_count_in_file(log, "WARN cache backend unavailable"), 1);
    cr_assert_eq(bpt_stop(d, SIGTERM, 15000), 0);
    bpt_redis_free(srv);
}

/* One row of bench_models' table: "  <label>  n  rps  logloss  brier  acc ..." */
static bool bench_row(const char *text, const char *label, double out[5])
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\n  %s ", label);
    const char *at = strstr(text, pattern);
    return at && sscanf(at + strlen(pattern), "%lf %lf %lf %lf %lf", &out[0], &out[1], &out[2],
                        &out[3], &out[4]) == 5;
}

Test(ml, evaluate_prints_the_table_and_agrees_with_the_bench)
{
    import("{\"leagues\": [\"E0\"], \"seasons\": [\"2020-21\", \"2021-22\", \"2022-23\", "
           "\"2023-24\"]}");
    bpt_result r = bpt_betpipe(dd, "models", "evaluate", "--league", "E0", "--from", "2022-23",
                               "--to", "2023-24", "--models", "dixon_coles,elo,ensemble", "--boot",
                               "200", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    json_t *ev = json_loads(r.out, 0, NULL);
    cr_assert(ev, "%s", r.out);
    bpt_result_free(&r);
    json_int_t scored = json_integer_value(json_object_get(ev, "scored"));
    cr_assert_gt(scored, 700);
    cr_assert_eq(json_array_size(json_object_get(ev, "scored_match_ids")), (size_t)scored);
    cr_assert(strstr(json_string_value(json_object_get(ev, "scored_text")), ">= 10 matches"));

    /* the bench on the same seasons, from the CSVs */
    char bench[1024], data[1024];
    snprintf(bench, sizeof bench, "%s/bin/bench_models", bpt_env("BP_TEST_BUILD_DIR"));
    snprintf(data, sizeof data, "%s/data/football-data/E0", bpt_env("BP_TEST_SOURCE_DIR"));
    const char *argv[] = {bench,
                          "--data",
                          data,
                          "--first",
                          "2020",
                          "--last",
                          "2023",
                          "--eval-from",
                          "2022",
                          "--fit-runs",
                          "0",
                          "--holdout-from",
                          "2030",
                          "--boot",
                          "200",
                          "--models",
                          "dixon_coles,elo",
                          NULL};
    bpt_result b = bpt_run(argv, NULL, NULL, bpt_deadline_ms(300000));
    cr_assert_eq(b.exit_code, 0, "bench: %s", b.err);
    const struct {
        const char *bench;
        const char *ours;
    } pairs[] = {{"pinnacle_close_shin", "pinnacle closing (shin)"},
                 {"dixon_coles", "dixon_coles"},
                 {"elo", "elo"},
                 {"ensemble_all", "ensemble(dixon_coles+elo)"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        double v[5];
        cr_assert(bench_row(b.out, pairs[i].bench, v), "no %s row in\n%s", pairs[i].bench, b.out);
        json_t *row = NULL, *x;
        size_t k;
        json_array_foreach(json_object_get(ev, "rows"), k, x)
        {
            if (strcmp(json_string_value(json_object_get(x, "label")), pairs[i].ours) == 0) {
                row = x;
            }
        }
        cr_assert(row, "no row %s", pairs[i].ours);
        cr_assert_eq((json_int_t)v[0], json_integer_value(json_object_get(row, "n")), "%s n",
                     pairs[i].ours);
        cr_assert(NEAR(num(row, "rps"), v[1], 6e-5), "%s RPS %.5f vs bench %.4f", pairs[i].ours,
                  num(row, "rps"), v[1]);
        cr_assert(NEAR(num(row, "log_loss"), v[2], 6e-5), "%s log loss", pairs[i].ours);
        cr_assert(NEAR(num(row, "brier"), v[3], 6e-5), "%s Brier", pairs[i].ours);
        cr_assert(NEAR(num(row, "accuracy"), v[4], 6e-5), "%s accuracy", pairs[i].ours);
    }
    bpt_result_free(&b);
    json_decref(ev);

    /* the table as a person reads it */
    r = bpt_betpipe(dd, "models", "evaluate", "--league", "E0", "--from", "2023-24", "--models",
                    "dixon_coles,pi_rating", "--boot", "100", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    const char *words[] = {"RPS - Pinnacle",     "pinnacle closing (shin)",
                           "bet365 pre-closing", "dixon_coles",
                           "pi_rating",          "Calibration",
                           "are scored"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        cr_assert(strstr(r.out, words[i]), "'%s' missing from\n%s", words[i], r.out);
    }
    bpt_result_free(&r);
    /* bad input is named */
    r = bpt_betpipe(dd, "models", "evaluate", "--league", "E0", "--from", "2030-31", NULL);
    cr_assert_neq(r.exit_code, 0);
    cr_assert(strstr(r.err, "no finished E0 matches of 2030-31"), "%s", r.err);
    bpt_result_free(&r);
}

/*
 * GSL's default error handler calls abort(). The core turns it off once at start-up (app.c)
 * and the models check every GSL status instead, so GSL failing inside a model is a status, in a
 * worker and in the CLI alike. Here it fails for real: a logistic model on one constant feature
 * (Elo with k = 0 leaves every team at its start rating, so elo_diff is the home advantage in
 * every row) without a penalty has a singular Hessian, GSL's Cholesky raises "matrix is not
 * positive definite" through the error handler (test_model_ml checks that premise), and the
 * model falls back to a diagonal preconditioner. With the handler on, the process dies of
 * SIGABRT instead.
 */
static const char *CONSTANT_FEATURE = "{\"features\": [\"elo_diff\"], \"k\": 0, \"l2\": 0}";

Test(ml, a_gsl_error_inside_a_model_is_a_status_not_an_abort)
{
    import("{\"leagues\": [\"E0\"], \"seasons\": [\"2023-24\"]}");
    char args[512];
    snprintf(args, sizeof args,
             "{\"model\": \"logistic\", \"league\": \"E0\", \"seasons\": [\"2023-24\"], "
             "\"params\": %s}",
             CONSTANT_FEATURE);
    json_t *rec = run_job("ml.train", args);
    cr_assert_str_eq(state_of(rec), "SUCCESS", "the fit recovers from GSL's error: %s",
                     error_of(rec));
    cr_assert_gt(json_integer_value(json_object_get(json_object_get(rec, "result"), "model_id")),
                 0);
    json_decref(rec);

    /* the CLI's own process: the walk-forward refits the same model every match day */
    char params[256];
    snprintf(params, sizeof params, "logistic=%s", CONSTANT_FEATURE);
    bpt_result r =
        bpt_betpipe(dd, "models", "evaluate", "--league", "E0", "--from", "2023-24", "--models",
                    "logistic", "--params", params, "--boot", "100", "--json", NULL);
    cr_assert_eq(r.exit_code, 0, "exit %d: %s", r.exit_code, r.err);
    cr_assert(strstr(r.err, "GSL") == NULL, "%s", r.err);
    json_t *ev = json_loads(r.out, 0, NULL);
    cr_assert(ev, "%s", r.out);
    cr_assert_gt(json_integer_value(json_object_get(ev, "scored")), 100);
    json_decref(ev);
    bpt_result_free(&r);
}

/* The ensemble's row names every member however many there are, and the columns stay aligned:
 * each row's RPS starts under the header's. */
Test(ml, evaluate_names_a_long_ensemble_in_full_and_keeps_the_columns)
{
    import("{\"leagues\": [\"E0\"], \"seasons\": [\"2023-24\"]}");
    bpt_result r =
        bpt_betpipe(dd, "models", "evaluate", "--league", "E0", "--from", "2023-24", "--models",
                    "dixon_coles,poisson,elo,pi_rating,logistic,random_forest,ensemble", "--params",
                    "random_forest={\"n_trees\": 10}", "--boot", "100", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    const char *label = "ensemble(dixon_coles+poisson+elo+pi_rating+logistic+random_forest)";
    cr_assert_gt(strlen(label), 63);
    cr_assert(strstr(r.out, label), "no full ensemble label in\n%s", r.out);
    const char *header = strstr(r.out, "\n  forecast ");
    cr_assert(header, "%s", r.out);
    header++;
    size_t col = (size_t)(strstr(header, " RPS ") - header) + 1;
    int rows = 0;
    for (const char *line = strchr(header, '\n') + 1; *line != '\n' && *line != '\0';
         line = strchr(line, '\n') + 1) {
        size_t len = (size_t)(strchr(line, '\n') - line);
        cr_assert(len > col + 1 && line[col - 1] == ' ' && line[col] == '0' && line[col + 1] == '.',
                  "row not aligned with the header (RPS at column %zu):\n%.*s\n%.*s", col,
                  (int)(strchr(header, '\n') - header), header, (int)len, line);
        rows++;
    }
    cr_assert_eq(rows, 9, "2 bookmakers, 6 models, the ensemble:\n%s", r.out);
    bpt_result_free(&r);
}
