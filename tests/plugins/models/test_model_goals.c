/*
 * test_model_goals.c - the Dixon-Coles and Poisson models through their bp_model_type, on real
 * Premier League data: the reference check, the maximum-likelihood identities, warm starts,
 * save/load, unknown teams and every kind of bad input.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>

#include "bpm.h"
#include "bpm_goals.h"
#include "bpm_goals_model.h"
#include "bpm_markets.h"
#include "dixon_coles.h"
#include "fd_matches.h"
#include "poisson.h"
#include "support.h"

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))

static fd_teams teams;
static bp_match_result *matches;
static size_t n_matches;

static void load_season(const char *season)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/data/football-data/E0/%s.csv", bpt_env("BP_TEST_SOURCE_DIR"),
             season);
    bp_error err = {0};
    cr_assert_eq(fd_matches_load(path, NULL, &teams, &matches, &n_matches, &err), BP_OK, "%s",
                 err.msg);
}

static void setup(void)
{
    gsl_set_error_handler_off();
    memset(&teams, 0, sizeof teams);
    matches = NULL;
    n_matches = 0;
    load_season("2023-24");
}

static void teardown(void)
{
    free(matches);
    fd_teams_free(&teams);
}

TestSuite(dixon_coles, .init = setup, .fini = teardown);
TestSuite(poisson, .init = setup, .fini = teardown);

static int64_t team(const char *name)
{
    int64_t id = fd_team_id(&teams, name);
    cr_assert_gt(id, 0, "no team %s", name);
    return id;
}

static bp_match_set set_of(const bp_match_result *m, size_t n)
{
    bp_match_set s = {sizeof s, 0, m, n, 0};
    return s;
}

static void *create(const bp_model_type *type, const char *params_json)
{
    json_error_t jerr;
    json_t *params = params_json ? json_loads(params_json, 0, &jerr) : NULL;
    void *model = NULL;
    bp_error err = {0};
    cr_assert_eq(type->create(NULL, params, &model, &err), BP_OK, "%s", err.msg);
    json_decref(params);
    return model;
}

static void predict(const bp_model_type *type, void *model, const char *home, const char *away,
                    bp_prediction *out)
{
    bp_error err = {0};
    cr_assert_eq(type->predict(model, team(home), team(away), 0, out, &err), BP_OK, "%s", err.msg);
}

static double metric(const json_t *metrics, const char *key)
{
    const json_t *v = json_object_get(metrics, key);
    cr_assert(json_is_number(v), "metric %s missing", key);
    return json_number_value(v);
}

/*
 * The reference check of issue 7: Dixon-Coles without time decay on E0 2023-24 reproduces the
 * optimum two independent implementations found (research/models.md section 6).
 */
Test(dixon_coles, reference_check_e0_2023_24)
{
    const bp_model_type *t = &bpm_dixon_coles_type;
    void *m = create(t, "{\"xi\": 0}");
    bp_match_set s = set_of(matches, n_matches);
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(n_matches, 380);
    cr_assert_eq(t->fit(m, &s, &metrics, &err), BP_OK, "%s", err.msg);

    cr_assert(NEAR(metric(metrics, "loglik"), -1135.2510, 1e-3), "loglik %.6f",
              metric(metrics, "loglik"));
    cr_assert(NEAR(metric(metrics, "home"), 0.1967, 1e-4), "home %.6f", metric(metrics, "home"));
    cr_assert(NEAR(metric(metrics, "rho"), -0.0201, 1e-4), "rho %.6f", metric(metrics, "rho"));

    const bpm_goals_fit *fit = bpm_goals_model_current(m);
    cr_assert_not_null(fit);
    double sum = 0.0;
    for (size_t i = 0; i < fit->teams.n; i++) {
        sum += fit->attack[i];
    }
    cr_assert(NEAR(sum, 0.0, 1e-12), "attack ratings are centred");
    struct {
        const char *name;
        double attack;
    } top[] = {{"Man City", 0.448}, {"Arsenal", 0.390}, {"Newcastle", 0.349}};
    for (size_t k = 0; k < 3; k++) {
        long i = bpm_teams_find(&fit->teams, team(top[k].name));
        cr_assert(NEAR(fit->attack[i], top[k].attack, 5e-4), "%s attack %.5f", top[k].name,
                  fit->attack[i]);
    }
    /* they are the top three */
    for (size_t i = 0; i < fit->teams.n; i++) {
        cr_assert(fit->attack[i] <= 0.449, "%s attack %.4f",
                  fd_team_name(&teams, fit->teams.ids[i]), fit->attack[i]);
    }

    bp_prediction p;
    predict(t, m, "Arsenal", "Man City", &p);
    cr_assert(NEAR(p.p_home, 0.4543, 5e-5) && NEAR(p.p_draw, 0.2694, 5e-5) &&
                  NEAR(p.p_away, 0.2763, 5e-5),
              "Arsenal v Man City %.5f/%.5f/%.5f", p.p_home, p.p_draw, p.p_away);
    predict(t, m, "Liverpool", "Luton", &p);
    cr_assert(NEAR(p.p_home, 0.8383, 5e-5) && NEAR(p.p_draw, 0.1032, 5e-5) &&
              NEAR(p.p_away, 0.0585, 5e-5));
    predict(t, m, "Everton", "Brentford", &p);
    cr_assert(NEAR(p.p_home, 0.3845, 5e-5) && NEAR(p.p_draw, 0.2911, 5e-5) &&
              NEAR(p.p_away, 0.3244, 5e-5));
    cr_assert_eq(p.has_score_matrix, 1);
    cr_assert(NEAR(bpm_matrix_total(p.score), 1.0, 1e-12));
    bpm_1x2 x = bpm_market_1x2(p.score);
    cr_assert(NEAR(x.home, p.p_home, 1e-15) && NEAR(x.away, p.p_away, 1e-15));
    json_decref(metrics);
    t->destroy(m);
}

/* With xi = 0.0018 per day counted back from the last match day (models.md section 6). */
Test(dixon_coles, reference_with_time_decay)
{
    const bp_model_type *t = &bpm_dixon_coles_type;
    void *m = create(t, NULL); /* xi defaults to 0.0018 */
    bp_match_set s = set_of(matches, n_matches);
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(t->fit(m, &s, &metrics, &err), BP_OK, "%s", err.msg);
    cr_assert(NEAR(metric(metrics, "loglik"), -902.5631, 1e-3), "loglik %.6f",
              metric(metrics, "loglik"));
    cr_assert(NEAR(metric(metrics, "home"), 0.1955, 1e-4));
    cr_assert(NEAR(metric(metrics, "rho"), -0.0320, 1e-4));
    json_decref(metrics);
    t->destroy(m);
}

Test(dixon_coles, warm_start_reaches_the_same_optimum)
{
    const bp_model_type *t = &bpm_dixon_coles_type;
    void *cold = create(t, "{\"xi\": 0, \"warm_start\": false}");
    void *warm = create(t, "{\"xi\": 0}");
    bp_error err = {0};
    /* warm: first fit on the season minus its last 30 matches, then on the whole season */
    bp_match_set part = set_of(matches, n_matches - 30), all = set_of(matches, n_matches);
    cr_assert_eq(t->fit(warm, &part, NULL, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(t->fit(warm, &all, NULL, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(t->fit(cold, &all, NULL, &err), BP_OK, "%s", err.msg);
    const bpm_goals_fit *a = bpm_goals_model_current(warm), *b = bpm_goals_model_current(cold);
    cr_assert(NEAR(a->loglik, b->loglik, 1e-8));
    cr_assert(NEAR(a->home, b->home, 1e-5) && NEAR(a->rho, b->rho, 1e-5));
    for (size_t i = 0; i < a->teams.n; i++) {
        cr_assert(NEAR(a->attack[i], b->attack[i], 1e-5));
        cr_assert(NEAR(a->defence[i], b->defence[i], 1e-5));
    }
    t->destroy(warm);
    t->destroy(cold);
}

Test(dixon_coles, save_and_load_round_trip)
{
    const bp_model_type *t = &bpm_dixon_coles_type;
    void *m = create(t, NULL), *copy = create(t, NULL);
    bp_match_set s = set_of(matches, n_matches);
    bp_error err = {0};
    cr_assert_eq(t->fit(m, &s, NULL, &err), BP_OK, "%s", err.msg);
    json_t *state = NULL;
    cr_assert_eq(t->save(m, &state, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(json_integer_value(json_object_get(state, "state_version")), t->state_version);
    /* through text, as the store will keep it */
    char *text = json_dumps(state, JSON_COMPACT);
    json_t *back = json_loads(text, 0, NULL);
    cr_assert_eq(t->load(copy, back, &err), BP_OK, "%s", err.msg);
    bp_prediction p, q;
    predict(t, m, "Chelsea", "Arsenal", &p);
    predict(t, copy, "Chelsea", "Arsenal", &q);
    cr_assert_eq(memcmp(&p, &q, sizeof p), 0, "a loaded model predicts bit-for-bit the same");

    /* an unknown version is refused with a clear error and the loaded state stays */
    json_object_set_new(back, "state_version", json_integer(t->state_version + 1));
    cr_assert_eq(t->load(copy, back, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "state_version 2") != NULL && strstr(err.msg, "version 1"), "%s",
              err.msg);
    predict(t, copy, "Chelsea", "Arsenal", &q);
    cr_assert_eq(memcmp(&p, &q, sizeof p), 0);

    /* damaged states */
    json_object_set_new(back, "state_version", json_integer(t->state_version));
    json_array_remove(json_object_get(back, "attack"), 0);
    cr_assert_eq(t->load(copy, back, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "attack") != NULL, "%s", err.msg);
    json_object_set_new(back, "model", json_string("poisson"));
    cr_assert_eq(t->load(copy, back, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "poisson") != NULL, "%s", err.msg);

    json_decref(back);
    json_decref(state);
    free(text);
    t->destroy(m);
    t->destroy(copy);
}

Test(dixon_coles, unknown_team_and_unfitted_model)
{
    const bp_model_type *t = &bpm_dixon_coles_type;
    void *m = create(t, NULL);
    bp_prediction p;
    bp_error err = {0};
    cr_assert_eq(t->predict(m, team("Arsenal"), team("Chelsea"), 0, &p, &err), BP_E_STATE);
    json_t *state = NULL;
    cr_assert_eq(t->save(m, &state, &err), BP_E_STATE);
    bp_match_set s = set_of(matches, n_matches);
    cr_assert_eq(t->fit(m, &s, NULL, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(t->predict(m, team("Arsenal"), 9999, 0, &p, &err), BP_E_NOTFOUND);
    cr_assert(strstr(err.msg, "9999") != NULL, "%s", err.msg);
    cr_assert_eq(t->predict(m, team("Arsenal"), team("Arsenal"), 0, &p, &err), BP_E_INVAL);
    t->destroy(m);
}

Test(dixon_coles, params_are_validated)
{
    const bp_model_type *t = &bpm_dixon_coles_type;
    const char *bad[] = {
        "{\"xii\": 0.1}",  "{\"xi\": -0.001}",    "{\"xi\": \"fast\"}",     "{\"max_iter\": 2.5}",
        "{\"ridge\": -1}", "{\"warm_start\": 1}", "{\"window_days\": 1e9}", "[1, 2]"};
    const char *word[] = {"xii",   "xi",         "xi",          "max_iter",
                          "ridge", "warm_start", "window_days", "object"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *params = json_loads(bad[i], 0, NULL);
        void *m = NULL;
        bp_error err = {0};
        cr_assert_eq(t->create(NULL, params, &m, &err), BP_E_INVAL, "accepted %s", bad[i]);
        cr_assert_null(m);
        cr_assert(strstr(err.msg, word[i]) != NULL, "%s -> %s", bad[i], err.msg);
        json_decref(params);
    }
    /* the published schema names exactly the parameters create() accepts */
    json_t *schema = json_loads(t->params_schema, 0, NULL);
    cr_assert_not_null(schema, "params_schema is valid JSON");
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(schema, "properties"), key, v)
    {
        json_t *params = json_pack("{s:O}", key, json_object_get(v, "default"));
        void *m = NULL;
        cr_assert_eq(t->create(NULL, params, &m, NULL), BP_OK, "schema key %s refused", key);
        t->destroy(m);
        json_decref(params);
    }
    json_decref(schema);
}

/* A failed fit leaves the previous model untouched ("nothing partially applied"). */
static void assert_fit_fails(void *m, const bp_match_result *set, size_t n, int code,
                             const char *needle)
{
    const bp_model_type *t = &bpm_dixon_coles_type;
    bp_prediction before, after;
    predict(t, m, "Arsenal", "Man City", &before);
    bp_match_set s = set_of(set, n);
    bp_error err = {0};
    json_t *metrics = NULL;
    cr_assert_eq(t->fit(m, &s, &metrics, &err), code, "expected %d for '%s': %s", code, needle,
                 err.msg);
    cr_assert_null(metrics);
    cr_assert(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
    predict(t, m, "Arsenal", "Man City", &after);
    cr_assert_eq(memcmp(&before, &after, sizeof before), 0);
}

Test(dixon_coles, bad_input_is_refused_and_nothing_is_replaced)
{
    const bp_model_type *t = &bpm_dixon_coles_type;
    void *m = create(t, "{\"xi\": 0}");
    bp_match_set s = set_of(matches, n_matches);
    bp_error err = {0};
    cr_assert_eq(t->fit(m, &s, NULL, &err), BP_OK, "%s", err.msg);

    bp_match_result *copy = malloc(n_matches * sizeof *copy);
    /* too few matches: the first 8 matches involve 16 teams */
    assert_fit_fails(m, matches, 8, BP_E_INVAL, "too few matches");
    assert_fit_fails(m, matches, 0, BP_E_INVAL, "too few matches");

    /* a team that never scores: Luton's goals wiped */
    memcpy(copy, matches, n_matches * sizeof *copy);
    int64_t luton = team("Luton");
    for (size_t k = 0; k < n_matches; k++) {
        if (copy[k].home_team == luton) {
            copy[k].home_goals = 0;
        }
        if (copy[k].away_team == luton) {
            copy[k].away_goals = 0;
        }
    }
    assert_fit_fails(m, copy, n_matches, BP_E_INVAL, "scored no goal");

    /* two groups that never meet: rename the teams of one half of the league */
    memcpy(copy, matches, n_matches * sizeof *copy);
    size_t kept = 0;
    for (size_t k = 0; k < n_matches; k++) {
        int a = copy[k].home_team <= 10, b = copy[k].away_team <= 10;
        if (a == b) {
            copy[kept++] = copy[k];
        }
    }
    assert_fit_fails(m, copy, kept, BP_E_INVAL, "never play each other");

    /* non-finite odds, unsorted kickoffs, a team on both sides, impossible goals */
    memcpy(copy, matches, n_matches * sizeof *copy);
    copy[17].odds_home = NAN;
    assert_fit_fails(m, copy, n_matches, BP_E_INVAL, "match 17");
    memcpy(copy, matches, n_matches * sizeof *copy);
    copy[40].kickoff_ms = copy[0].kickoff_ms - 1;
    assert_fit_fails(m, copy, n_matches, BP_E_INVAL, "sorted");
    memcpy(copy, matches, n_matches * sizeof *copy);
    copy[3].away_team = copy[3].home_team;
    assert_fit_fails(m, copy, n_matches, BP_E_INVAL, "both sides");
    memcpy(copy, matches, n_matches * sizeof *copy);
    copy[5].home_goals = -1;
    assert_fit_fails(m, copy, n_matches, BP_E_INVAL, "goals");
    free(copy);
    t->destroy(m);

    /* a fit that cannot converge within its iteration budget */
    void *m1 = create(t, "{\"xi\": 0, \"max_iter\": 1}");
    bp_match_set all = set_of(matches, n_matches);
    cr_assert_eq(t->fit(m1, &all, NULL, &err), BP_E_LIMIT);
    cr_assert(strstr(err.msg, "did not converge") != NULL, "%s", err.msg);
    bp_prediction p;
    cr_assert_eq(t->predict(m1, team("Arsenal"), team("Chelsea"), 0, &p, &err), BP_E_STATE);
    t->destroy(m1);
}

Test(dixon_coles, ridge_makes_a_goalless_team_estimable)
{
    const bp_model_type *t = &bpm_dixon_coles_type;
    bp_match_result *copy = malloc(n_matches * sizeof *copy);
    memcpy(copy, matches, n_matches * sizeof *copy);
    int64_t luton = team("Luton");
    for (size_t k = 0; k < n_matches; k++) {
        if (copy[k].home_team == luton) {
            copy[k].home_goals = 0;
        }
        if (copy[k].away_team == luton) {
            copy[k].away_goals = 0;
        }
    }
    void *m = create(t, "{\"ridge\": 2}");
    bp_match_set s = set_of(copy, n_matches);
    bp_error err = {0};
    cr_assert_eq(t->fit(m, &s, NULL, &err), BP_OK, "%s", err.msg);
    bp_prediction p;
    predict(t, m, "Luton", "Burnley", &p);
    cr_assert_lt(p.exp_home_goals, 0.5, "a goalless team is expected to score little");
    t->destroy(m);
    free(copy);
}

Test(dixon_coles, window_drops_old_matches)
{
    /* Two seasons; a 200-day window before the end of 2023-24 excludes 2022-23 entirely, so
     * the fit equals a fit on 2023-24's matches inside that window. */
    size_t n_2324 = n_matches;
    bp_match_result *only = malloc(n_2324 * sizeof *only);
    memcpy(only, matches, n_2324 * sizeof *only);
    free(matches);
    matches = NULL;
    n_matches = 0;
    load_season("2022-23");
    load_season("2023-24");
    const bp_model_type *t = &bpm_dixon_coles_type;
    void *a = create(t, "{\"window_days\": 200}"), *b = create(t, "{\"window_days\": 200}");
    bp_match_set both = set_of(matches, n_matches), one = set_of(only, n_2324);
    json_t *ma = NULL, *mb = NULL;
    bp_error err = {0};
    cr_assert_eq(t->fit(a, &both, &ma, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(t->fit(b, &one, &mb, &err), BP_OK, "%s", err.msg);
    cr_assert_lt(metric(ma, "n_matches"), 380);
    cr_assert_eq(metric(ma, "n_matches"), metric(mb, "n_matches"));
    cr_assert(NEAR(metric(ma, "loglik"), metric(mb, "loglik"), 1e-8));
    json_decref(ma);
    json_decref(mb);
    t->destroy(a);
    t->destroy(b);
    free(only);
}

/*
 * Maher's model is a Poisson GLM with a log link, so its MLE satisfies the score equations
 * exactly: each team's expected goals scored and conceded equal the observed ones, and the
 * expected home goals equal the observed home goals. A test of correctness that needs no
 * reference implementation.
 */
Test(poisson, score_equations_hold_at_the_optimum)
{
    const bp_model_type *t = &bpm_poisson_type;
    void *m = create(t, "{\"xi\": 0}");
    bp_match_set s = set_of(matches, n_matches);
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(t->fit(m, &s, &metrics, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(metric(metrics, "rho"), 0.0);
    const bpm_goals_fit *f = bpm_goals_model_current(m);
    size_t n = f->teams.n;
    double *scored = calloc(2 * n, sizeof *scored), *expected = calloc(2 * n, sizeof *expected);
    double home_obs = 0, home_exp = 0;
    for (size_t k = 0; k < n_matches; k++) {
        double lam, nu;
        cr_assert_eq(bpm_goals_rates(f, "poisson", matches[k].home_team, matches[k].away_team, &lam,
                                     &nu, NULL),
                     BP_OK);
        size_t i = (size_t)bpm_teams_find(&f->teams, matches[k].home_team);
        size_t j = (size_t)bpm_teams_find(&f->teams, matches[k].away_team);
        scored[i] += matches[k].home_goals;
        expected[i] += lam;
        scored[j] += matches[k].away_goals;
        expected[j] += nu;
        scored[n + i] += matches[k].away_goals;
        expected[n + i] += nu;
        scored[n + j] += matches[k].home_goals;
        expected[n + j] += lam;
        home_obs += matches[k].home_goals;
        home_exp += lam;
    }
    for (size_t i = 0; i < 2 * n; i++) {
        cr_assert(NEAR(scored[i], expected[i], 1e-5), "team %zu: %g goals, %g expected", i % n,
                  scored[i], expected[i]);
    }
    cr_assert(NEAR(home_obs, home_exp, 1e-5));
    free(scored);
    free(expected);

    /* Dixon-Coles nests Maher (rho = 0): its maximum is at least as high */
    void *dc = create(&bpm_dixon_coles_type, "{\"xi\": 0}");
    json_t *dcm = NULL;
    cr_assert_eq(bpm_dixon_coles_type.fit(dc, &s, &dcm, &err), BP_OK, "%s", err.msg);
    cr_assert_geq(metric(dcm, "loglik"), metric(metrics, "loglik"));
    cr_assert_lt(metric(dcm, "loglik") - metric(metrics, "loglik"), 2.0);
    json_decref(dcm);
    json_decref(metrics);
    bpm_dixon_coles_type.destroy(dc);

    /* a saved Poisson state is not a Dixon-Coles state */
    json_t *state = NULL;
    cr_assert_eq(t->save(m, &state, &err), BP_OK, "%s", err.msg);
    void *other = create(&bpm_dixon_coles_type, NULL);
    cr_assert_eq(bpm_dixon_coles_type.load(other, state, &err), BP_E_INVAL);
    bpm_dixon_coles_type.destroy(other);
    json_decref(state);
    t->destroy(m);
}
