/*
 * ml - the ml.* jobs: fit models on the store's history, keep fitted models in the store, and
 * predict matches with the active ones.
 *
 *   ml.train      {model, league, seasons | since, until, params}
 *                 Loads the league's finished matches (all of them, the given seasons, or those
 *                 kicked off in [since, until)), creates the model with params, fits it, saves
 *                 its state, checks that the saved state reproduces the fit, and stores it with
 *                 its metrics as the league's active model of that type - in one transaction, so
 *                 a failure anywhere (no data, too few matches, a fit that does not converge, a
 *                 state that does not load back) stores nothing and the previous active model
 *                 stays. Runs isolated (a process of its own) and under the unique key
 *                 "ml.train:<model>:<league>", so two trains of one model and league never
 *                 overlap.
 *   ml.train_all  {leagues, models, seasons | since, until, params}
 *                 Fans out one ml.train per league with matches x model (plugin config
 *                 "models", default dixon_coles, elo, pi_rating) through host->enqueue; the
 *                 result lists the children's ids, and those already queued or running.
 *   ml.predict    {model, match | league [+ from, to], days}
 *                 Loads the active model(s) of the league and predicts: one match; or every
 *                 match kicked off in [from, to), played or not; or, with neither, the league's
 *                 scheduled matches of the next `days` days. Each prediction (1X2, expected
 *                 goals, and from the score matrix: double chance, draw no bet, totals 0.5-4.5,
 *                 both teams to score, Asian handicaps -2.5..+2.5 with quarter lines, correct
 *                 scores) is stored and cached (type "predictions", filters {"match_id",
 *                 "model"}), with the market beside it: the match's latest odds, read through
 *                 the cache (type "odds", {"match_id"}: the entry data.collect_odds writes; the
 *                 store on a miss), give the best price per 1X2 selection, a reference book
 *                 without its margin, and the model's edge p x best price - 1 (markets.market).
 *
 * Team ids are the store's, so a model only knows the teams of the league it was trained on; a
 * team it never saw (a newly promoted club) cannot be predicted, and the job says so per match.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "betpipe/betpipe.h"
#include "bpm.h"
#include "bpm_margin.h"
#include "bpm_markets.h"
#include "bpm_metrics.h"

#define DEFAULT_BOOKMAKER  "pinnacle" /* odds the market-rating features read */
#define MAX_LIST_IN_RESULT 100

static const char *const default_models[] = {"dixon_coles", "elo", "pi_rating"};

/* ============================================================================================
 * Small helpers: dates, seasons, leagues
 * ========================================================================================== */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "2024-08-16", "2024-08-16T15:00", "2024-08-16T15:00:00Z" (UTC) -> epoch ms. */
static int parse_date(const char *s, const char *what, int64_t *out, bp_error *err)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, n = 0;
    char tail[8] = "";
    if (!s || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) {
        return bp_err(err, BP_E_INVAL, "%s: '%s' is not a date (YYYY-MM-DD[THH:MM[:SS]][Z])", what,
                      s ? s : "(null)");
    }
    if (s[n] == 'T' || s[n] == ' ') {
        int m = 0;
        if (sscanf(s + n + 1, "%2d:%2d%n", &h, &mi, &m) != 2) {
            return bp_err(err, BP_E_INVAL, "%s: '%s' has a bad time", what, s);
        }
        n += 1 + m;
        if (s[n] == ':' && sscanf(s + n + 1, "%2d%n", &sec, &m) == 1) {
            n += 1 + m;
        }
    }
    snprintf(tail, sizeof tail, "%s", s + n);
    if (strcmp(tail, "") != 0 && strcmp(tail, "Z") != 0) {
        return bp_err(err, BP_E_INVAL, "%s: '%s': only UTC times (a trailing Z) are accepted", what,
                      s);
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return bp_err(err, BP_E_INVAL, "%s: '%s' is out of range", what, s);
    }
    *out = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000LL + sec * 1000LL;
    return BP_OK;
}

static void format_date(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%MZ", &tm) == 0) {
        snprintf(buf, len, "-");
    }
}

static json_t *date_json(int64_t ms)
{
    char buf[32];
    if (ms <= 0) {
        return json_null();
    }
    format_date(ms, buf, sizeof buf);
    return json_string(buf);
}

/* A season as "2023-24", "2023" or 2023 -> its starting year. */
static int parse_season(const json_t *v, int32_t *out, bp_error *err)
{
    long y = -1;
    if (json_is_integer(v)) {
        y = (long)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        y = strtol(s, &end, 10);
        if (end == s || (*end && !(*end == '-' && strlen(end) == 3 &&
                                   strtol(end + 1, NULL, 10) == (y + 1) % 100))) {
            y = -1;
        }
    }
    if (y < 1850 || y > 2200) {
        char *t = json_dumps(v, JSON_ENCODE_ANY);
        int rc =
            bp_err(err, BP_E_INVAL, "season %s is not a season (\"2023-24\" or 2023)", t ? t : "?");
        free(t);
        return rc;
    }
    *out = (int32_t)y;
    return BP_OK;
}

/* A league code -> its store id. */
static int league_id_of(const bp_host *h, const char *code, int64_t *out, bp_error *err)
{
    json_t *l = NULL;
    bp_error e = {0};
    int rc = h->store->find_league(h, NULL, "betpipe", code, &l, &e);
    if (rc == BP_E_NOTFOUND) {
        return bp_err(err, BP_E_INVAL,
                      "unknown league '%s' (known: the codes of `betpipe run "
                      "data.import`: E0, SP1, D1, I1, F1)",
                      code);
    }
    if (rc != BP_OK) {
        return bp_err(err, rc, "league %s: %s", code, e.msg);
    }
    *out = json_integer_value(json_object_get(l, "id"));
    json_decref(l);
    return BP_OK;
}

static int cmp_result(const void *pa, const void *pb)
{
    const bp_match_result *a = pa, *b = pb;
    if (a->kickoff_ms != b->kickoff_ms) {
        return a->kickoff_ms < b->kickoff_ms ? -1 : 1;
    }
    return (a->match_id > b->match_id) - (a->match_id < b->match_id);
}

/* The model named `name`, with a message listing the loaded ones when there is none. */
static int find_model(const bp_host *h, const char *name, const bp_model_type **out_desc,
                      void **out_state, bp_error *err)
{
    if (h->find_model(h, name, out_desc, out_state) == BP_OK) {
        return BP_OK;
    }
    json_t *names = h->list_names(h, "model");
    char *list = names ? json_dumps(names, JSON_COMPACT) : NULL;
    int rc =
        bp_err(err, BP_E_INVAL, "no model '%s' is loaded (loaded: %s)", name, list ? list : "[]");
    free(list);
    json_decref(names);
    return rc;
}

/* ============================================================================================
 * The training set
 * ========================================================================================== */

typedef struct training_set {
    bp_match_result *rows;
    size_t n;
    char what[256]; /* "E0 2023-24", "E0 since 2019-07-01" ... for messages */
} training_set;

static void training_free(training_set *t)
{
    free(t->rows);
    t->rows = NULL;
    t->n = 0;
}

/* Append the rows of one store query to t (copied: t owns its array). */
static int training_add(const bp_host *h, training_set *t, const bp_match_query *q, bp_error *err)
{
    bp_match_result *rows = NULL, *all;
    size_t n = 0;
    int rc = h->store->match_results(h, q, DEFAULT_BOOKMAKER, &rows, &n, err);
    if (rc != BP_OK || n == 0) {
        return rc;
    }
    all = realloc(t->rows, (t->n + n) * sizeof *all);
    if (!all) {
        h->store->free_results(h, rows);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    memcpy(all + t->n, rows, n * sizeof *all);
    h->store->free_results(h, rows);
    t->rows = all;
    t->n += n;
    return BP_OK;
}

/* Finished matches of the league per the job's seasons / since / until. */
static int load_training(const bp_host *h, const char *code, int64_t league_id, const json_t *args,
                         training_set *t, bp_error *err)
{
    const json_t *seasons = json_object_get(args, "seasons");
    const char *since = json_string_value(json_object_get(args, "since"));
    const char *until = json_string_value(json_object_get(args, "until"));
    bp_match_query q = {.struct_size = sizeof q, .league_id = league_id};
    size_t used = 0;
    int rc;

    memset(t, 0, sizeof *t);
    if (since && (rc = parse_date(since, "since", &q.from_ms, err)) != BP_OK) {
        return rc;
    }
    if (until && (rc = parse_date(until, "until", &q.to_ms, err)) != BP_OK) {
        return rc;
    }
    used = (size_t)snprintf(t->what, sizeof t->what, "%s", code);
    if (json_array_size(seasons) > 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(seasons, i, v)
        {
            int32_t year = 0;
            if ((rc = parse_season(v, &year, err)) != BP_OK) {
                training_free(t);
                return rc;
            }
            q.season = year;
            if ((rc = training_add(h, t, &q, err)) != BP_OK) {
                training_free(t);
                return rc;
            }
            if (used < sizeof t->what) {
                used += (size_t)snprintf(t->what + used, sizeof t->what - used, " %d-%02d",
                                         (int)year, (int)((year + 1) % 100));
            }
        }
        if (t->n) {
            qsort(t->rows, t->n, sizeof *t->rows, cmp_result);
        }
    } else {
        if ((rc = training_add(h, t, &q, err)) != BP_OK) {
            return rc;
        }
    }
    if (used < sizeof t->what && (since || until)) {
        snprintf(t->what + used, sizeof t->what - used, "%s%s%s%s", since ? " since " : "",
                 since ? since : "", until ? " until " : "", until ? until : "");
    } else if (used < sizeof t->what && json_array_size(seasons) == 0) {
        snprintf(t->what + used, sizeof t->what - used, " (all seasons)");
    }
    if (t->n == 0) {
        return bp_err(err, BP_E_INVAL,
                      "no finished %s matches in the store to train on (import them first: "
                      "betpipe run data.import)",
                      t->what);
    }
    return BP_OK;
}

/* ============================================================================================
 * ml.train
 * ========================================================================================== */

static double now_ms_mono(const bp_host *h)
{
    return (double)h->mono_ns(h) / 1e6;
}

/*
 * Score the fitted model on its own training matches (in-sample: optimistic by construction,
 * kept as a sanity figure next to what the model itself reports).
 */
static json_t *in_sample(const bp_model_type *d, void *model, const training_set *t)
{
    bpm_scores s;
    bp_prediction p;
    bp_error e = {0};
    bpm_scores_init(&s, 10, NULL);
    for (size_t k = 0; k < t->n; k++) {
        const bp_match_result *m = &t->rows[k];
        if (d->predict(model, m->home_team, m->away_team, m->kickoff_ms, &p, &e) != BP_OK) {
            continue;
        }
        double pr[3] = {p.p_home, p.p_draw, p.p_away};
        (void)bpm_scores_add(&s, pr, bpm_outcome(m->home_goals, m->away_goals), NULL);
    }
    if (s.n == 0) {
        return json_pack("{s:i}", "n", 0);
    }
    return json_pack("{s:I, s:f, s:f, s:f, s:f}", "n", (json_int_t)s.n, "rps", bpm_scores_rps(&s),
                     "log_loss", bpm_scores_log_loss(&s), "brier", bpm_scores_brier(&s), "accuracy",
                     bpm_scores_accuracy(&s));
}

/*
 * The saved state must load into a fresh instance and predict what the fitted one predicts:
 * otherwise the stored model would not be the model we fitted, and storing it would replace a
 * good model with a broken one.
 */
static int check_round_trip(const bp_model_type *d, void *plugin_state, const json_t *params,
                            void *fitted, const json_t *state, const training_set *t, bp_error *err)
{
    void *copy = NULL;
    bp_prediction a, b;
    const bp_match_result *m = &t->rows[t->n - 1];
    int rc = d->create(plugin_state, params, &copy, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = d->load(copy, state, err);
    if (rc == BP_OK) {
        int ra = d->predict(fitted, m->home_team, m->away_team, m->kickoff_ms, &a, err);
        int rb = d->predict(copy, m->home_team, m->away_team, m->kickoff_ms, &b, err);
        if (ra != rb ||
            (ra == BP_OK && (fabs(a.p_home - b.p_home) > 1e-9 || fabs(a.p_draw - b.p_draw) > 1e-9 ||
                             fabs(a.p_away - b.p_away) > 1e-9))) {
            rc = bp_err(err, BP_E_INTERNAL,
                        "%s: the saved state does not reproduce the fit (match %lld: %.6f/%.6f/"
                        "%.6f fitted, %.6f/%.6f/%.6f reloaded)",
                        d->name, (long long)m->match_id, a.p_home, a.p_draw, a.p_away, b.p_home,
                        b.p_draw, b.p_away);
        }
    } else {
        bp_err_prefix(err, "the saved state does not load back: ");
    }
    d->destroy(copy);
    return rc;
}

static int run_train(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    const char *name = json_string_value(json_object_get(job->args, "model"));
    const char *code = json_string_value(json_object_get(job->args, "league"));
    const json_t *params = json_object_get(job->args, "params");
    const bp_model_type *d = NULL;
    void *pstate = NULL, *model = NULL;
    training_set t = {0};
    json_t *metrics = NULL, *state = NULL, *result = NULL, *previous = NULL;
    int64_t league_id = 0, model_id = 0, replaced = 0;
    double t0, fit_ms;
    char text[512];
    int rc;

    if (!h->store) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store in this process");
    }
    if ((rc = find_model(h, name, &d, &pstate, err)) != BP_OK ||
        (rc = league_id_of(h, code, &league_id, err)) != BP_OK) {
        return rc;
    }
    if (h->store->get_model(h, 0, name, league_id, &previous, NULL) != BP_OK) {
        previous = NULL;
    }
    if ((rc = load_training(h, code, league_id, job->args, &t, err)) != BP_OK) {
        goto fail;
    }
    snprintf(text, sizeof text, "fitting %s on %zu matches of %s", name, t.n, t.what);
    h->progress(job, 0.1, text);
    BP_LOGI(h, "train started model=%s league=%s matches=%zu data=%s", name, code, t.n, t.what);

    if ((rc = d->create(pstate, params, &model, err)) != BP_OK) {
        goto fail;
    }
    if (h->cancelled(job)) {
        rc = bp_err(err, BP_E_CANCELLED, "cancelled before the fit");
        goto fail;
    }
    bp_match_set set = {sizeof set, 0, t.rows, t.n, 0};
    t0 = now_ms_mono(h);
    rc = d->fit(model, &set, &metrics, err);
    fit_ms = now_ms_mono(h) - t0;
    if (rc != BP_OK) {
        goto fail;
    }
    h->progress(job, 0.7, "saving");
    if ((rc = d->save(model, &state, err)) != BP_OK) {
        goto fail;
    }
    if (!json_is_object(state)) {
        rc = bp_err(err, BP_E_INTERNAL, "%s: save() did not return a JSON object", name);
        goto fail;
    }
    if ((rc = check_round_trip(d, pstate, params, model, state, &t, err)) != BP_OK) {
        goto fail;
    }
    if (!json_is_object(metrics)) {
        json_decref(metrics);
        metrics = json_object();
    }
    if (!json_object_get(metrics, "n_matches")) {
        json_object_set_new(metrics, "n_matches", json_integer((json_int_t)t.n));
    }
    json_object_set_new(metrics, "train_matches", json_integer((json_int_t)t.n));
    json_object_set_new(metrics, "fit_ms", json_real(fit_ms));
    json_object_set_new(metrics, "in_sample", in_sample(d, model, &t));

    bp_model_rec rec = {
        .struct_size = sizeof rec,
        .state_version = d->state_version,
        .model = name,
        .league_id = league_id,
        .params = json_is_object(params) ? params : NULL,
        .state = state,
        .metrics = metrics,
        .train_from_ms = t.rows[0].kickoff_ms,
        .train_to_ms = t.rows[t.n - 1].kickoff_ms,
        .n_matches = (int64_t)t.n,
        .trained_ms = h->now_ms(h),
        .job_id = job->id,
        .activate = 1,
    };
    if ((rc = h->store->save_model(h, &rec, &model_id, &replaced, err)) != BP_OK) {
        goto fail;
    }
    {
        const json_t *ll = json_object_get(metrics, "loglik");
        char llt[48] = "";
        if (json_is_number(ll)) {
            snprintf(llt, sizeof llt, ", log-likelihood %.4f", json_number_value(ll));
        }
        snprintf(text, sizeof text,
                 "%s for %s: model %lld fitted on %zu matches (%s) in %.1f ms%s, now active%s",
                 name, code, (long long)model_id, t.n, t.what, fit_ms, llt,
                 replaced ? " (replaces the previous one)" : "");
    }
    result = json_pack("{s:I, s:s, s:s, s:I, s:s, s:o, s:o, s:f, s:O, s:o, s:s}", "model_id",
                       (json_int_t)model_id, "model", name, "league", code, "n_matches",
                       (json_int_t)t.n, "data", t.what, "train_from", date_json(rec.train_from_ms),
                       "train_to", date_json(rec.train_to_ms), "fit_ms", fit_ms, "metrics", metrics,
                       "replaced_model_id", replaced ? json_integer(replaced) : json_null(),
                       "summary", text);
    if (!result) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    BP_LOGI(h, "train done: %s", text);
    h->progress(job, 1.0, "stored");
    *out_result = result;
    rc = BP_OK;

fail:
    if (rc != BP_OK && rc != BP_E_CANCELLED && err) {
        /* Say what the failure left in place: nothing was stored. */
        char keep[160] = "; nothing stored";
        size_t len;
        if (previous) {
            snprintf(keep, sizeof keep, "; nothing stored: model %lld (trained %s) stays active",
                     (long long)json_integer_value(json_object_get(previous, "id")),
                     json_string_value(json_object_get(previous, "trained_at")));
        }
        bp_err_prefix(err, "%s on %s: ", name, t.what[0] ? t.what : code);
        len = strlen(err->msg);
        snprintf(err->msg + len, sizeof err->msg - len, "%s", keep);
        BP_LOGW(h, "train failed model=%s league=%s: %s", name, code, err->msg);
    }
    if (model) {
        d->destroy(model);
    }
    json_decref(metrics);
    json_decref(state);
    json_decref(previous);
    training_free(&t);
    return rc;
}

/* ============================================================================================
 * ml.train_all
 * ========================================================================================== */

/* The model names to train: args, else config "models", else the defaults. */
static json_t *models_to_train(const bp_host *h, const json_t *args)
{
    const json_t *v = json_object_get(args, "models");
    if (json_array_size(v) > 0) {
        return json_deep_copy(v);
    }
    v = json_object_get(h->config(h), "models");
    if (json_array_size(v) > 0) {
        return json_deep_copy(v);
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < sizeof default_models / sizeof default_models[0]; i++) {
        json_array_append_new(arr, json_string(default_models[i]));
    }
    return arr;
}

/* Every league that has finished matches, as codes. */
static int leagues_with_data(const bp_host *h, json_t **out, bp_error *err)
{
    json_t *leagues = NULL, *codes = json_array(), *l;
    size_t i;
    int rc = h->store->list_leagues(h, &leagues, err);
    if (rc != BP_OK || !codes) {
        json_decref(codes);
        return rc != BP_OK ? rc : bp_err(err, BP_E_NOMEM, "out of memory");
    }
    json_array_foreach(leagues, i, l)
    {
        bp_match_result *rows = NULL;
        size_t n = 0;
        bp_match_query q = {.struct_size = sizeof q,
                            .league_id = json_integer_value(json_object_get(l, "id")),
                            .limit = 1};
        if (json_integer_value(json_object_get(l, "matches")) <= 0 ||
            h->store->match_results(h, &q, NULL, &rows, &n, NULL) != BP_OK) {
            continue;
        }
        if (n > 0) {
            json_array_append(codes, json_object_get(l, "code"));
        }
        h->store->free_results(h, rows);
    }
    json_decref(leagues);
    *out = codes;
    return BP_OK;
}

static int run_train_all(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    json_t *models = models_to_train(h, job->args), *leagues = NULL;
    json_t *children = json_array(), *skipped = json_array(), *failed = json_array();
    const json_t *all_params = json_object_get(job->args, "params");
    size_t i, j;
    json_t *lv, *mv;
    int rc = BP_OK;
    char text[256];

    if (!models || !children || !skipped || !failed) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    json_array_foreach(models, i, mv)
    {
        const bp_model_type *d;
        void *st;
        if (!json_is_string(mv)) {
            rc = bp_err(err, BP_E_CONFIG, "models[%zu] is not a model name", i);
            goto fail;
        }
        if ((rc = find_model(h, json_string_value(mv), &d, &st, err)) != BP_OK) {
            goto fail;
        }
    }
    if (json_array_size(json_object_get(job->args, "leagues")) > 0) {
        leagues = json_deep_copy(json_object_get(job->args, "leagues"));
    } else if ((rc = leagues_with_data(h, &leagues, err)) != BP_OK) {
        goto fail;
    }
    if (json_array_size(leagues) == 0) {
        rc = bp_err(err, BP_E_INVAL,
                    "no league has finished matches in the store (import them "
                    "first: betpipe run data.import)");
        goto fail;
    }
    json_array_foreach(leagues, i, lv)
    {
        json_array_foreach(models, j, mv)
        {
            const char *model = json_string_value(mv);
            char id[BP_JOB_ID_SIZE] = "";
            bp_error e = {0};
            bp_enqueue_opts opts = {.struct_size = sizeof opts};
            json_t *args = json_pack("{s:s, s:O}", "model", model, "league", lv);
            static const char *const copy[] = {"seasons", "since", "until"};
            if (!args) {
                rc = bp_err(err, BP_E_NOMEM, "out of memory");
                goto fail;
            }
            for (size_t c = 0; c < sizeof copy / sizeof copy[0]; c++) {
                if (json_object_get(job->args, copy[c])) {
                    json_object_set(args, copy[c], json_object_get(job->args, copy[c]));
                }
            }
            if (json_is_object(json_object_get(all_params, model))) {
                json_object_set(args, "params", json_object_get(all_params, model));
            }
            int erc = h->enqueue(h, "ml.train", args, &opts, id, &e);
            json_decref(args);
            if (erc == BP_OK) {
                json_array_append_new(
                    children, json_pack("{s:s, s:s, s:O}", "id", id, "model", model, "league", lv));
            } else if (erc == BP_E_EXISTS) {
                json_array_append_new(skipped,
                                      json_pack("{s:s, s:O, s:s, s:s}", "model", model, "league",
                                                lv, "held_by", id, "reason", e.msg));
            } else {
                json_array_append_new(failed, json_pack("{s:s, s:O, s:s}", "model", model, "league",
                                                        lv, "error", e.msg));
                BP_LOGW(h, "could not enqueue ml.train model=%s league=%s: %s", model,
                        json_string_value(lv), e.msg);
            }
        }
    }
    if (json_array_size(children) == 0 && json_array_size(skipped) == 0) {
        const json_t *first = json_array_get(failed, 0);
        rc = bp_err(err, BP_E_UNAVAILABLE, "no ml.train could be enqueued; first: %s",
                    json_string_value(json_object_get(first, "error")));
        goto fail;
    }
    snprintf(text, sizeof text,
             "%zu ml.train jobs enqueued (%zu leagues x %zu models), %zu already queued or "
             "running, %zu failed to enqueue",
             json_array_size(children), json_array_size(leagues), json_array_size(models),
             json_array_size(skipped), json_array_size(failed));
    *out_result =
        json_pack("{s:O, s:O, s:O, s:O, s:O, s:s}", "children", children, "skipped", skipped,
                  "failed", failed, "leagues", leagues, "models", models, "summary", text);
    rc = *out_result ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
    h->progress(job, 1.0, "enqueued");

fail:
    json_decref(models);
    json_decref(leagues);
    json_decref(children);
    json_decref(skipped);
    json_decref(failed);
    return rc;
}

/* ============================================================================================
 * ml.predict
 * ========================================================================================== */

/* Rounded to 6 decimals: the markets are read by people and alerts, not refitted. */
static json_t *num(double v)
{
    if (!isfinite(v)) {
        return json_null();
    }
    return json_real(round(v * 1e6) / 1e6);
}

static json_t *settle_json(const bpm_settle *s)
{
    double fair = bpm_settle_fair_price(s);
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "win", num(s->win), "half_win",
                     num(s->half_win), "push", num(s->push), "half_loss", num(s->half_loss), "loss",
                     num(s->loss), "fair_price", num(fair));
}

/* Every market a prediction prices. */
static json_t *markets_json(const bp_prediction *p)
{
    json_t *mk = json_object();
    double dnb = 1.0 - p->p_draw;
    if (!mk) {
        return NULL;
    }
    json_object_set_new(mk, "1x2",
                        json_pack("{s:o, s:o, s:o}", "home", num(p->p_home), "draw", num(p->p_draw),
                                  "away", num(p->p_away)));
    json_object_set_new(mk, "double_chance",
                        json_pack("{s:o, s:o, s:o}", "1x", num(p->p_home + p->p_draw), "12",
                                  num(p->p_home + p->p_away), "x2", num(p->p_draw + p->p_away)));
    json_object_set_new(mk, "draw_no_bet",
                        json_pack("{s:o, s:o}", "home",
                                  num(dnb > 0 ? p->p_home / dnb : (double)NAN), "away",
                                  num(dnb > 0 ? p->p_away / dnb : (double)NAN)));
    if (!p->has_score_matrix) {
        return mk;
    }
    const double *sc = p->score;
    json_t *totals = json_object(), *ah = json_object(), *cs = json_object();
    for (int l = 0; l <= 4; l++) {
        char key[8];
        bpm_settle over, under;
        snprintf(key, sizeof key, "%d.5", l);
        if (bpm_market_total(sc, l + 0.5, BPM_OVER, &over, NULL) == BP_OK &&
            bpm_market_total(sc, l + 0.5, BPM_UNDER, &under, NULL) == BP_OK) {
            json_object_set_new(
                totals, key,
                json_pack("{s:o, s:o}", "over", num(over.win), "under", num(under.win)));
        }
    }
    json_object_set_new(mk, "totals", totals);
    double yes, no;
    bpm_market_btts(sc, &yes, &no);
    json_object_set_new(mk, "btts", json_pack("{s:o, s:o}", "yes", num(yes), "no", num(no)));
    for (int q = -10; q <= 10; q++) {
        double line = q * 0.25;
        char key[16];
        bpm_settle home, away;
        snprintf(key, sizeof key, "%+.2f", line);
        if (bpm_market_asian_handicap(sc, line, BPM_SIDE_HOME, &home, NULL) == BP_OK &&
            bpm_market_asian_handicap(sc, -line, BPM_SIDE_AWAY, &away, NULL) == BP_OK) {
            json_object_set_new(
                ah, key,
                json_pack("{s:o, s:o}", "home", settle_json(&home), "away", settle_json(&away)));
        }
    }
    json_object_set_new(mk, "asian_handicap", ah);
    double table[6 * 6], other = 0;
    if (bpm_market_correct_score_table(sc, 5, table, &other, NULL) == BP_OK) {
        for (int i = 0; i <= 5; i++) {
            for (int j = 0; j <= 5; j++) {
                char key[8];
                snprintf(key, sizeof key, "%d-%d", i, j);
                json_object_set_new(cs, key, num(table[i * 6 + j]));
            }
        }
        json_object_set_new(cs, "other", num(other));
    }
    json_object_set_new(mk, "correct_score", cs);
    return mk;
}

/* ============================================================================================
 * The market: each predicted match's latest odds, read through the cache, margin removed, and
 * the model's edge over the best price
 * ========================================================================================== */

/* How the odds of the predicted matches were found, for the job's result. */
typedef struct odds_tally {
    json_int_t from_cache;   /* a fresh cache entry (data.collect_odds's, or an earlier read's) */
    json_int_t from_store;   /* a miss: read from the store (and cached) */
    json_int_t stale;        /* the store read failed; a stale entry was served */
    json_int_t without_odds; /* the store has no odds for the match */
    json_int_t unreadable;   /* the read failed and nothing stale was there */
    json_int_t with_market;  /* matches whose predictions carry a market section */
} odds_tally;

typedef struct odds_read {
    const bp_host *h;
    int64_t match_id;
    bool computed;
} odds_read;

/* The cache-aside compute: the store's latest odds of the match (every market), the value
 * data.collect_odds caches for it. No odds is BP_E_NOTFOUND, so that nothing is cached: the
 * next read looks again, and finds the odds as soon as they are stored. */
static int odds_from_store(void *ud, json_t **out_value, bp_error *err)
{
    odds_read *r = ud;
    json_t *quotes = NULL;
    int rc = r->h->store->get_odds(r->h, r->match_id, -1, BP_ODDS_LATEST, &quotes, err);
    r->computed = true;
    if (rc != BP_OK) {
        return rc;
    }
    if (json_array_size(quotes) == 0) {
        json_decref(quotes);
        return bp_err(err, BP_E_NOTFOUND, "no odds for match %lld in the store",
                      (long long)r->match_id);
    }
    *out_value = quotes;
    return BP_OK;
}

/*
 * The match's latest odds from the cache entry ("odds", {"match_id": id}) - the one
 * data.collect_odds writes - or, on a miss, from the store (and then cached for the others).
 * A cache that is down costs only the store read. NULL when there are no odds to read.
 */
static json_t *latest_odds(const bp_host *h, int64_t match_id, odds_tally *t, bool *out_stale)
{
    odds_read r = {h, match_id, false};
    json_t *filters = json_pack("{s:I}", "match_id", (json_int_t)match_id), *quotes = NULL;
    bp_error e = {0};
    int stale = 0, rc;
    if (!filters) {
        t->unreadable++;
        return NULL;
    }
    rc = h->cache ? h->cache->get_or_compute(h, "odds", filters, odds_from_store, &r, &quotes,
                                             &stale, &e)
                  : odds_from_store(&r, &quotes, &e);
    json_decref(filters);
    if (rc == BP_E_NOTFOUND) {
        t->without_odds++;
        return NULL;
    }
    if (rc != BP_OK) {
        BP_LOGW(h, "odds of match %lld unreadable, predicted without the market: %s",
                (long long)match_id, e.msg);
        t->unreadable++;
        return NULL;
    }
    if (stale) {
        t->stale++;
    } else if (r.computed) {
        t->from_store++;
    } else {
        t->from_cache++;
    }
    *out_stale = stale != 0;
    return quotes;
}

static const char *const sel_names[3] = {"home", "draw", "away"};

/* football-data's aggregates (market_max, market_avg, betbrain_max, betbrain_avg) are not
 * bookmakers one can bet with: they neither give the best price nor serve as the reference. */
static bool is_aggregate(const char *book)
{
    size_t n = strlen(book);
    return n > 4 && (strcmp(book + n - 4, "_max") == 0 || strcmp(book + n - 4, "_avg") == 0);
}

/* One bookmaker's latest 1X2 prices (0: not quoted). */
typedef struct book_1x2 {
    const char *name; /* borrowed from the quotes */
    double odds[3];
} book_1x2;

#define MAX_BOOKS 64

/*
 * The market's side of one match, from its latest quotes (only the 1X2 is read):
 *   "best"      per selection, the highest price any bookmaker offers and who offers it;
 *   "reference" one complete book - Pinnacle's when it prices all three (the sharp book the
 *               evaluation compares with), else the one with the lowest booksum - with its
 *               overround and its margin-removed probabilities (Shin, as `models evaluate`;
 *               multiplicative when Shin refuses a book);
 * plus how many bookmakers priced it, the newest quote's time, and whether the odds were a stale
 * serve. NULL when no bookmaker prices the 1X2.
 */
static json_t *market_base(const json_t *quotes, bool stale)
{
    book_1x2 books[MAX_BOOKS];
    size_t n_books = 0, i;
    const json_t *q;
    const char *newest_at = NULL;
    int64_t newest_ms = -1;
    int best_book[3] = {-1, -1, -1};
    int ref = -1;
    double ref_sum = INFINITY;

    json_array_foreach(quotes, i, q)
    {
        const char *book = json_string_value(json_object_get(q, "bookmaker"));
        const char *market = json_string_value(json_object_get(q, "market"));
        const char *sel = json_string_value(json_object_get(q, "selection"));
        double price = json_number_value(json_object_get(q, "price"));
        size_t b;
        int si = -1;
        if (!book || !sel || !market || strcmp(market, "1x2") != 0 || is_aggregate(book) ||
            !(isfinite(price) && price > 1.0)) {
            continue;
        }
        for (int k = 0; k < 3; k++) {
            si = strcmp(sel, sel_names[k]) == 0 ? k : si;
        }
        if (si < 0) {
            continue;
        }
        for (b = 0; b < n_books && strcmp(books[b].name, book) != 0; b++) {
        }
        if (b == n_books) {
            if (n_books == MAX_BOOKS) {
                continue;
            }
            books[n_books++] = (book_1x2){.name = book};
        }
        books[b].odds[si] = price;
        if (best_book[si] < 0 || price > books[best_book[si]].odds[si]) {
            best_book[si] = (int)b;
        }
        if (json_integer_value(json_object_get(q, "captured_ms")) > newest_ms) {
            newest_ms = json_integer_value(json_object_get(q, "captured_ms"));
            newest_at = json_string_value(json_object_get(q, "captured_at"));
        }
    }
    if (n_books == 0) {
        return NULL;
    }
    for (size_t b = 0; b < n_books; b++) {
        const double *o = books[b].odds;
        double sum = bpm_booksum(o, 3);
        if (!(o[0] > 1.0 && o[1] > 1.0 && o[2] > 1.0) ||
            (ref >= 0 && strcmp(books[ref].name, "pinnacle") == 0)) {
            continue;
        }
        if (strcmp(books[b].name, "pinnacle") == 0 || sum < ref_sum) {
            ref = (int)b;
            ref_sum = sum;
        }
    }

    json_t *m = json_pack("{s:I, s:s?, s:b, s:{}}", "bookmakers", (json_int_t)n_books,
                          "captured_at", newest_at, "stale", stale, "best");
    if (!m) {
        return NULL;
    }
    for (int k = 0; k < 3; k++) {
        if (best_book[k] >= 0) {
            json_object_set_new(json_object_get(m, "best"), sel_names[k],
                                json_pack("{s:o, s:s}", "price", num(books[best_book[k]].odds[k]),
                                          "bookmaker", books[best_book[k]].name));
        }
    }
    if (ref >= 0) {
        double p[3];
        bpm_margin_method method = BPM_MARGIN_SHIN;
        if (bpm_remove_margin(method, books[ref].odds, 3, p, NULL, NULL) != BP_OK) {
            method = BPM_MARGIN_MULTIPLICATIVE;
            (void)bpm_remove_margin(method, books[ref].odds, 3, p, NULL, NULL);
        }
        json_object_set_new(m, "reference",
                            json_pack("{s:s, s:o, s:s, s:o, s:o, s:o}", "bookmaker",
                                      books[ref].name, "overround", num(ref_sum - 1.0),
                                      "margin_method", bpm_margin_method_name(method), "p_home",
                                      num(p[0]), "p_draw", num(p[1]), "p_away", num(p[2])));
    }
    return m;
}

/* The market section of one model's prediction: the match's market and the edge
 * p_model x best price - 1 of each 1X2 selection (null where nobody prices it). */
static json_t *market_for(const json_t *base, const bp_prediction *p)
{
    const double pm[3] = {p->p_home, p->p_draw, p->p_away};
    json_t *m = json_deep_copy(base), *edge = json_object();
    if (!m || !edge) {
        json_decref(m);
        json_decref(edge);
        return NULL;
    }
    for (int k = 0; k < 3; k++) {
        const json_t *best = json_object_get(json_object_get(base, "best"), sel_names[k]);
        json_object_set_new(
            edge, sel_names[k],
            best ? num(pm[k] * json_number_value(json_object_get(best, "price")) - 1.0)
                 : json_null());
    }
    json_object_set_new(m, "edge", edge);
    return m;
}

/* One active model, loaded and ready to predict. */
typedef struct loaded_model {
    const bp_model_type *d;
    void *inst;
    int64_t id;
    const char *name; /* borrowed from the descriptor */
    char trained_at[40];
} loaded_model;

static int load_active(const bp_host *h, const char *name, int64_t league_id, const char *code,
                       loaded_model *out, bp_error *err)
{
    void *pstate = NULL;
    json_t *m = NULL;
    bp_error e = {0};
    int rc;
    memset(out, 0, sizeof *out);
    if ((rc = find_model(h, name, &out->d, &pstate, err)) != BP_OK) {
        return rc;
    }
    out->name = out->d->name;
    rc = h->store->get_model(h, 0, name, league_id, &m, &e);
    if (rc == BP_E_NOTFOUND) {
        return bp_err(err, BP_E_INVAL,
                      "no active %s model for %s: train one first (betpipe run ml.train --arg "
                      "model=%s --arg league=%s)",
                      name, code, name, code);
    }
    if (rc != BP_OK) {
        return bp_err(err, rc, "%s for %s: %s", name, code, e.msg);
    }
    out->id = json_integer_value(json_object_get(m, "id"));
    snprintf(out->trained_at, sizeof out->trained_at, "%s",
             json_string_value(json_object_get(m, "trained_at")));
    if (json_integer_value(json_object_get(m, "state_version")) != out->d->state_version) {
        rc = bp_err(err, BP_E_INVAL,
                    "%s model %lld for %s was saved with state version %lld; this build reads "
                    "version %d: retrain it with ml.train",
                    name, (long long)out->id, code,
                    (long long)json_integer_value(json_object_get(m, "state_version")),
                    (int)out->d->state_version);
    }
    if (rc == BP_OK) {
        const json_t *params = json_object_get(m, "params");
        rc = out->d->create(pstate, json_object_size(params) ? params : NULL, &out->inst, err);
    }
    if (rc == BP_OK && (rc = out->d->load(out->inst, json_object_get(m, "state"), err)) != BP_OK) {
        bp_err_prefix(err, "%s model %lld for %s does not load: ", name, (long long)out->id, code);
    }
    if (rc != BP_OK && out->inst) {
        out->d->destroy(out->inst);
        out->inst = NULL;
    }
    json_decref(m);
    return rc;
}

/* The matches to predict: one, a date range, or the upcoming ones. */
static int matches_to_predict(const bp_job *job, int64_t *io_league_id, char *code, size_t code_len,
                              json_t **out, char *what, size_t what_len, bp_error *err)
{
    const bp_host *h = job->host;
    const json_t *a = job->args;
    const char *from = json_string_value(json_object_get(a, "from"));
    const char *to = json_string_value(json_object_get(a, "to"));
    bp_match_query q = {.struct_size = sizeof q, .league_id = *io_league_id};
    int rc;

    if (json_is_integer(json_object_get(a, "match"))) {
        q.match_id = json_integer_value(json_object_get(a, "match"));
        q.league_id = 0;
        if ((rc = h->store->list_matches(h, &q, out, err)) != BP_OK) {
            return rc;
        }
        if (json_array_size(*out) == 0) {
            json_decref(*out);
            *out = NULL;
            return bp_err(err, BP_E_INVAL, "no match with id %lld in the store",
                          (long long)q.match_id);
        }
        /* the match says which league's models apply */
        const char *lc = json_string_value(json_object_get(json_array_get(*out, 0), "league"));
        snprintf(code, code_len, "%s", lc ? lc : "");
        if ((rc = league_id_of(h, code, io_league_id, err)) != BP_OK) {
            json_decref(*out);
            *out = NULL;
            return rc;
        }
        snprintf(what, what_len, "match %lld", (long long)q.match_id);
        return BP_OK;
    }
    if (from || to) {
        if ((from && (rc = parse_date(from, "from", &q.from_ms, err)) != BP_OK) ||
            (to && (rc = parse_date(to, "to", &q.to_ms, err)) != BP_OK)) {
            return rc;
        }
        if (q.from_ms && q.to_ms && q.to_ms <= q.from_ms) {
            return bp_err(err, BP_E_INVAL, "to (%s) must be after from (%s)", to, from);
        }
        snprintf(what, what_len, "%s matches from %s to %s", code, from ? from : "the start",
                 to ? to : "the end");
    } else {
        int64_t days = json_is_integer(json_object_get(a, "days"))
                           ? json_integer_value(json_object_get(a, "days"))
                           : 14;
        int64_t now = h->now_ms(h);
        q.status = BP_MATCH_SCHEDULED;
        q.from_ms = now - 6 * 3600 * 1000LL; /* a kick-off a few hours ago may still be on */
        q.to_ms = now + days * 86400000LL;
        snprintf(what, what_len, "scheduled %s matches of the next %lld days", code,
                 (long long)days);
    }
    return h->store->list_matches(h, &q, out, err);
}

/* The prediction as the cache and the job's result show it. */
static json_t *prediction_json(const json_t *match, const loaded_model *lm, const bp_prediction *p,
                               json_t *markets)
{
    json_t *o = json_pack(
        "{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:O}", "match_id",
        json_object_get(match, "id"), "league", json_object_get(match, "league"), "season",
        json_object_get(match, "season"), "kickoff", json_object_get(match, "kickoff"), "home",
        json_object_get(json_object_get(match, "home"), "name"), "away",
        json_object_get(json_object_get(match, "away"), "name"), "status",
        json_object_get(match, "status"), "model", lm->name, "model_id", (json_int_t)lm->id,
        "p_home", num(p->p_home), "p_draw", num(p->p_draw), "p_away", num(p->p_away),
        "exp_home_goals", num(p->exp_home_goals), "exp_away_goals", num(p->exp_away_goals),
        "markets", markets ? markets : json_null());
    if (o && json_is_integer(json_object_get(match, "home_goals"))) {
        json_object_set(o, "home_goals", json_object_get(match, "home_goals"));
        json_object_set(o, "away_goals", json_object_get(match, "away_goals"));
    }
    return o;
}

/* A short line per prediction for the job's result. */
static json_t *prediction_brief(const json_t *full)
{
    json_t *b = json_pack(
        "{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "match_id",
        json_object_get(full, "match_id"), "kickoff", json_object_get(full, "kickoff"), "home",
        json_object_get(full, "home"), "away", json_object_get(full, "away"), "model",
        json_object_get(full, "model"), "p_home", json_object_get(full, "p_home"), "p_draw",
        json_object_get(full, "p_draw"), "p_away", json_object_get(full, "p_away"),
        "exp_home_goals", json_object_get(full, "exp_home_goals"), "exp_away_goals",
        json_object_get(full, "exp_away_goals"));
    const json_t *mk = json_object_get(full, "markets");
    if (b && json_object_get(mk, "totals")) {
        json_object_set(
            b, "over_2_5",
            json_object_get(json_object_get(json_object_get(mk, "totals"), "2.5"), "over"));
        json_object_set(b, "btts_yes", json_object_get(json_object_get(mk, "btts"), "yes"));
    }
    if (b && json_object_get(full, "home_goals")) {
        json_object_set(b, "home_goals", json_object_get(full, "home_goals"));
        json_object_set(b, "away_goals", json_object_get(full, "away_goals"));
    }
    if (b && json_object_get(mk, "market")) {
        json_object_set(b, "market", json_object_get(mk, "market"));
    }
    return b;
}

/* Models name teams by store id ("team 14 has no rating"): say which club that is. */
static void name_teams(char *msg, size_t len, const json_t *match)
{
    static const char *const sides[] = {"home", "away"};
    for (size_t k = 0; k < 2; k++) {
        const json_t *t = json_object_get(match, sides[k]);
        char needle[48], *at;
        snprintf(needle, sizeof needle, "team %lld ",
                 (long long)json_integer_value(json_object_get(t, "id")));
        at = strstr(msg, needle);
        if (at && json_string_value(json_object_get(t, "name"))) {
            char rest[BP_ERROR_MSG_MAX];
            snprintf(rest, sizeof rest, "%s", at + strlen(needle));
            snprintf(at, len - (size_t)(at - msg), "%s (team %lld) %s",
                     json_string_value(json_object_get(t, "name")),
                     (long long)json_integer_value(json_object_get(t, "id")), rest);
        }
    }
}

static int run_predict(const bp_job *job, json_t **out_result, bp_error *err)
{
    const bp_host *h = job->host;
    const char *model_arg = json_string_value(json_object_get(job->args, "model"));
    const char *league_arg = json_string_value(json_object_get(job->args, "league"));
    bool single = json_is_integer(json_object_get(job->args, "match"));
    loaded_model lms[16];
    size_t n_lms = 0, n_recs = 0, i, k;
    json_t *matches = NULL, *models = NULL, *skipped = json_array(), *shown = json_array();
    json_t **full = NULL, *market = NULL;
    bp_prediction_rec *recs = NULL;
    bp_store_counts counts = {0, 0, 0};
    odds_tally odds = {0};
    int64_t league_id = 0;
    json_int_t cached = 0;
    char code[16] = "", what[200] = "", text[640];
    int rc = BP_OK;

    memset(lms, 0, sizeof lms);
    if (!skipped || !shown) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    if (!h->store) {
        rc = bp_err(err, BP_E_UNAVAILABLE, "no store in this process");
        goto fail;
    }
    if (single == (league_arg != NULL)) {
        rc = bp_err(err, BP_E_INVAL,
                    "give either match (a match id) or league (with from/to "
                    "for a date range, or alone for the upcoming matches)");
        goto fail;
    }
    if (single && (json_object_get(job->args, "from") || json_object_get(job->args, "to"))) {
        rc = bp_err(err, BP_E_INVAL, "from/to go with league, not with match");
        goto fail;
    }
    if (league_arg) {
        snprintf(code, sizeof code, "%s", league_arg);
        if ((rc = league_id_of(h, code, &league_id, err)) != BP_OK) {
            goto fail;
        }
    }
    if ((rc = matches_to_predict(job, &league_id, code, sizeof code, &matches, what, sizeof what,
                                 err)) != BP_OK) {
        goto fail;
    }

    /* the models: the one asked for, or every active model of the league */
    if (model_arg) {
        models = json_pack("[s]", model_arg);
    } else {
        json_t *active = NULL;
        models = json_array();
        if ((rc = h->store->list_models(h, NULL, league_id, 1, &active, err)) != BP_OK) {
            goto fail;
        }
        for (i = 0; i < json_array_size(active); i++) {
            json_array_append(models, json_object_get(json_array_get(active, i), "model"));
        }
        json_decref(active);
        if (json_array_size(models) == 0) {
            rc = bp_err(err, BP_E_INVAL,
                        "no active model for %s: train one first (betpipe run "
                        "ml.train --arg model=dixon_coles --arg league=%s)",
                        code, code);
            goto fail;
        }
    }
    for (i = 0; i < json_array_size(models) && n_lms < sizeof lms / sizeof lms[0]; i++) {
        const char *name = json_string_value(json_array_get(models, i));
        if ((rc = load_active(h, name, league_id, code, &lms[n_lms], err)) != BP_OK) {
            goto fail;
        }
        n_lms++;
    }

    size_t n_matches = json_array_size(matches);
    if (n_matches == 0) {
        snprintf(text, sizeof text, "nothing to predict: no %s", what);
        *out_result =
            json_pack("{s:i, s:s, s:s}", "predicted", 0, "matches", what, "summary", text);
        rc = *out_result ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    recs = calloc(n_matches * n_lms, sizeof *recs);
    full = calloc(n_matches * n_lms, sizeof *full);
    if (!recs || !full) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    for (k = 0; k < n_matches; k++) {
        const json_t *m = json_array_get(matches, k);
        int64_t home = json_integer_value(json_object_get(json_object_get(m, "home"), "id"));
        int64_t away = json_integer_value(json_object_get(json_object_get(m, "away"), "id"));
        int64_t kickoff = json_integer_value(json_object_get(m, "kickoff_ms"));
        bool odds_looked_up = false;
        if (h->cancelled(job)) {
            rc = bp_err(err, BP_E_CANCELLED, "cancelled after %zu of %zu matches (nothing stored)",
                        k, n_matches);
            goto fail;
        }
        for (i = 0; i < n_lms; i++) {
            bp_prediction p;
            bp_error e = {0};
            int prc = lms[i].d->predict(lms[i].inst, home, away, kickoff, &p, &e);
            if (prc == BP_OK && !(isfinite(p.p_home) && isfinite(p.p_draw) && isfinite(p.p_away))) {
                prc = bp_err(&e, BP_E_INTERNAL, "the model returned non-finite probabilities");
            }
            if (prc != BP_OK) {
                char reason[BP_ERROR_MSG_MAX + 64];
                name_teams(e.msg, sizeof e.msg, m);
                snprintf(reason, sizeof reason, "%s (model %lld, trained %s)", e.msg,
                         (long long)lms[i].id, lms[i].trained_at);
                if (single) {
                    rc = bp_err(
                        err, prc == BP_E_NOTFOUND ? BP_E_INVAL : prc,
                        "cannot predict %s v %s with %s: %s",
                        json_string_value(json_object_get(json_object_get(m, "home"), "name")),
                        json_string_value(json_object_get(json_object_get(m, "away"), "name")),
                        lms[i].name, reason);
                    goto fail;
                }
                json_array_append_new(
                    skipped,
                    json_pack("{s:O, s:O, s:O, s:s, s:s}", "match_id", json_object_get(m, "id"),
                              "home", json_object_get(json_object_get(m, "home"), "name"), "away",
                              json_object_get(json_object_get(m, "away"), "name"), "model",
                              lms[i].name, "reason", reason));
                continue;
            }
            if (!odds_looked_up) {
                /* once per match, for its first prediction: the market is the models' common
                 * yardstick */
                bool stale = false;
                json_t *quotes =
                    latest_odds(h, json_integer_value(json_object_get(m, "id")), &odds, &stale);
                market = quotes ? market_base(quotes, stale) : NULL;
                json_decref(quotes);
                odds.with_market += market != NULL;
                odds_looked_up = true;
            }
            json_t *markets = markets_json(&p);
            if (markets && market &&
                json_object_set_new(markets, "market", market_for(market, &p)) != 0) {
                json_decref(markets);
                markets = NULL;
            }
            full[n_recs] = prediction_json(m, &lms[i], &p, markets);
            json_decref(markets); /* full[n_recs] holds it now; recs borrow it from there */
            if (!markets || !full[n_recs]) {
                json_decref(full[n_recs]);
                full[n_recs] = NULL;
                rc = bp_err(err, BP_E_NOMEM, "out of memory");
                goto fail;
            }
            recs[n_recs] = (bp_prediction_rec){
                .match_id = json_integer_value(json_object_get(m, "id")),
                .model_id = lms[i].id,
                .p_home = p.p_home,
                .p_draw = p.p_draw,
                .p_away = p.p_away,
                .exp_home_goals = p.exp_home_goals > 0 ? p.exp_home_goals : (double)NAN,
                .exp_away_goals = p.exp_away_goals > 0 ? p.exp_away_goals : (double)NAN,
                .markets = markets, /* borrowed from full[n_recs] */
            };
            n_recs++;
        }
        json_decref(market);
        market = NULL;
        h->progress(job, 0.9 * (double)(k + 1) / (double)n_matches, "predicting");
    }
    if (n_recs == 0) {
        const json_t *first = json_array_get(skipped, 0);
        rc = bp_err(err, BP_E_INVAL, "none of the %zu %s could be predicted; first: %s v %s: %s",
                    n_matches, what, json_string_value(json_object_get(first, "home")),
                    json_string_value(json_object_get(first, "away")),
                    json_string_value(json_object_get(first, "reason")));
        goto fail;
    }
    if ((rc = h->store->put_predictions(h, recs, n_recs, &counts, err)) != BP_OK) {
        goto fail;
    }
    /* into the cache only once stored: the cache never holds what the store does not */
    for (k = 0; k < n_recs; k++) {
        json_t *filters = json_pack("{s:I, s:s}", "match_id", (json_int_t)recs[k].match_id, "model",
                                    json_string_value(json_object_get(full[k], "model")));
        if (h->cache && filters &&
            h->cache->set(h, "predictions", filters, full[k], NULL) == BP_OK) {
            cached++;
        }
        json_decref(filters);
        if (k < MAX_LIST_IN_RESULT) {
            json_array_append_new(shown, prediction_brief(full[k]));
        }
    }
    snprintf(text, sizeof text,
             "%zu predictions of %zu %s with %zu model%s (%lld new, %lld updated, %lld "
             "unchanged), %zu skipped, %lld cached; the market's odds for %lld match%s (%lld from "
             "the cache, %lld from the store, %lld stale), %lld without odds",
             n_recs, n_matches, what, n_lms, n_lms == 1 ? "" : "s", (long long)counts.inserted,
             (long long)counts.updated, (long long)counts.unchanged, json_array_size(skipped),
             (long long)cached, (long long)odds.with_market, odds.with_market == 1 ? "" : "es",
             (long long)odds.from_cache, (long long)odds.from_store, (long long)odds.stale,
             (long long)odds.without_odds);
    *out_result = json_pack(
        "{s:I, s:s, s:{s:I, s:I, s:I}, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:O, s:O, s:s}",
        "predicted", (json_int_t)n_recs, "matches", what, "stored", "inserted",
        (json_int_t)counts.inserted, "updated", (json_int_t)counts.updated, "unchanged",
        (json_int_t)counts.unchanged, "cached", cached, "odds", "with_market", odds.with_market,
        "from_cache", odds.from_cache, "from_store", odds.from_store, "stale", odds.stale,
        "without_odds", odds.without_odds, "unreadable", odds.unreadable, "skipped", skipped,
        "predictions", shown, "summary", text);
    rc = *out_result ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
    if (rc == BP_OK) {
        BP_LOGI(h, "predict done: %s", text);
        h->progress(job, 1.0, "stored");
    }

fail:
    for (i = 0; i < n_lms; i++) {
        if (lms[i].inst) {
            lms[i].d->destroy(lms[i].inst);
        }
    }
    for (k = 0; full && k < n_recs; k++) {
        json_decref(full[k]);
    }
    free(full);
    free(recs);
    json_decref(market);
    json_decref(matches);
    json_decref(models);
    json_decref(skipped);
    json_decref(shown);
    return rc;
}

/* ============================================================================================
 * Registration
 * ========================================================================================== */

#define TRAIN_DATA_SCHEMA                                                                          \
    "\"seasons\": {\"type\": \"array\", \"minItems\": 1, \"items\": {\"type\": [\"string\", "      \
    "\"integer\"]}, \"description\": \"train on these seasons (\\\"2023-24\\\" or 2023); "         \
    "default every finished match\"},"                                                             \
    "\"since\": {\"type\": \"string\", \"minLength\": 10, \"description\": \"train on matches "    \
    "kicked off since this UTC date (2019-07-01)\"},"                                              \
    "\"until\": {\"type\": \"string\", \"minLength\": 10, \"description\": \"and before this "     \
    "UTC date (default: every finished match)\"}"

static const bp_job_type ml_jobs[] = {
    {
        .struct_size = sizeof(bp_job_type),
        .flags = BP_JOB_F_ISOLATE,
        .name = "ml.train",
        .description = "Fit a model on a league's finished matches and store it as the league's "
                       "active model of that type (a failed fit stores nothing)",
        .queue = "ml_queue",
        .args_schema =
            "{\"type\": \"object\", \"additionalProperties\": false, "
            "\"required\": [\"model\", \"league\"], \"properties\": {"
            "\"model\": {\"type\": \"string\", \"pattern\": \"^[a-z0-9_]+$\", \"description\": "
            "\"model type: dixon_coles, poisson, elo, pi_rating, logistic, random_forest, "
            "ensemble\"},"
            "\"league\": {\"type\": \"string\", \"pattern\": \"^[A-Z]{1,3}[0-9]?$\", "
            "\"description\": \"league code (E0, SP1, D1)\"},"
            "\"params\": {\"type\": \"object\", \"description\": \"model parameters (see the "
            "model's params_schema in `betpipe plugins`)\"}," TRAIN_DATA_SCHEMA "}}",
        .soft_time_limit_s = 1800,
        .max_retries = 1,
        .run = run_train,
        .unique_args = "model,league",
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "ml.train_all",
        .description = "Enqueue one ml.train per league with matches and configured model "
                       "(plugins.config.ml.models; default dixon_coles, elo, pi_rating)",
        .queue = "ml_queue",
        .args_schema =
            "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
            "\"leagues\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"pattern\": "
            "\"^[A-Z]{1,3}[0-9]?$\"}, \"description\": \"default: every league with finished "
            "matches\"},"
            "\"models\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"pattern\": "
            "\"^[a-z0-9_]+$\"}, \"description\": \"default: plugins.config.ml.models, else "
            "dixon_coles, elo, pi_rating\"},"
            "\"params\": {\"type\": \"object\", \"description\": \"params per model: "
            "{\\\"dixon_coles\\\": {\\\"xi\\\": 0.002}}\"}," TRAIN_DATA_SCHEMA "}}",
        .soft_time_limit_s = 300,
        .max_retries = 2,
        .run = run_train_all,
    },
    {
        .struct_size = sizeof(bp_job_type),
        .name = "ml.predict",
        .description = "Predict matches with the league's active models; store the predictions "
                       "(1X2, goals, totals, BTTS, Asian handicap, correct score) and cache them, "
                       "each beside the market (latest odds through the cache, margin removed, "
                       "edge over the best price)",
        .queue = "ml_queue",
        .args_schema =
            "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
            "\"model\": {\"type\": \"string\", \"pattern\": \"^[a-z0-9_]+$\", \"description\": "
            "\"default: every active model of the league\"},"
            "\"match\": {\"type\": \"integer\", \"minimum\": 1, \"description\": \"one match "
            "(store id)\"},"
            "\"league\": {\"type\": \"string\", \"pattern\": \"^[A-Z]{1,3}[0-9]?$\"},"
            "\"from\": {\"type\": \"string\", \"minLength\": 10, \"description\": \"with league: "
            "every match kicked off from this UTC date...\"},"
            "\"to\": {\"type\": \"string\", \"minLength\": 10, \"description\": \"...to this one "
            "(exclusive), played or not\"},"
            "\"days\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 366, \"description\": "
            "\"with league alone: the scheduled matches of the next N days (default 14)\"}}}",
        .soft_time_limit_s = 600,
        .max_retries = 2,
        .run = run_predict,
    },
};

static int ml_init(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err)
{
    (void)host;
    *out_state = NULL;
    for (size_t i = 0; i < sizeof ml_jobs / sizeof ml_jobs[0]; i++) {
        int rc = reg->add_job_type(reg, &ml_jobs[i], err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static void ml_fini(void *state)
{
    (void)state;
}

BP_PLUGIN_DEFINE("ml", "1.0.0",
                 "Model jobs: train models on the store's history, fan out training, predict "
                 "matches and price their markets",
                 ml_init, ml_fini)
