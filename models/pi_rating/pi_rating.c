/*
 * pi_rating.c - pi-ratings and the pi_rating model: ratings + ordered logit.
 */
#include "pi_rating.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpm.h"
#include "bpm_ologit.h"

/* ---- the rating engine ------------------------------------------------------------------- */

void bpm_pi_defaults(bpm_pi_params *p)
{
    p->lambda = 0.035;
    p->gamma = 0.7;
    p->b = 10.0;
    p->c = 3.0;
    p->min_games = 10;
}

const char *const bpm_pi_param_keys[] = {
    "learning_rate", "cross_learning", "b", "c", "min_games", NULL};

int bpm_pi_params_parse(const char *model, const json_t *params, bpm_pi_params *out, bp_error *err)
{
    bpm_pi_params p;
    bpm_pi_defaults(&p);
    int64_t min_games = p.min_games;
    int rc = bpm_param_double(model, params, "learning_rate", p.lambda, 0.0, 1.0, &p.lambda, err);
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "cross_learning", p.gamma, 0.0, 1.0, &p.gamma, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "b", p.b, 1.0001, 1000.0, &p.b, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "c", p.c, 0.01, 100.0, &p.c, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(model, params, "min_games", min_games, 0, 200, &min_games, err);
    }
    if (rc != BP_OK) {
        return rc;
    }
    p.min_games = (int)min_games;
    *out = p;
    return BP_OK;
}

double bpm_pi_goal_diff(const bpm_pi_params *p, double rating)
{
    double g = pow(p->b, fabs(rating) / p->c) - 1.0;
    return rating < 0.0 ? -g : g;
}

double bpm_pi_expected(const bpm_pi_params *p, const double *r_home, const double *r_away, size_t h,
                       size_t a)
{
    return bpm_pi_goal_diff(p, r_home[h]) - bpm_pi_goal_diff(p, r_away[a]);
}

void bpm_pi_update(const bpm_pi_params *p, double *r_home, double *r_away, size_t h, size_t a,
                   int home_goals, int away_goals)
{
    double observed = (double)(home_goals - away_goals);
    double expected = bpm_pi_expected(p, r_home, r_away, h, a);
    double psi = p->c * log10(1.0 + fabs(observed - expected));
    double psi_home = observed > expected ? psi : -psi;
    double psi_away = -psi_home;
    double dh = p->lambda * psi_home, da = p->lambda * psi_away;
    r_home[h] += dh;
    r_away[h] += p->gamma * dh;
    r_away[a] += da;
    r_home[a] += p->gamma * da;
}

/* ---- the model ----------------------------------------------------------------------------- */

typedef struct pi_model {
    bpm_pi_params p;
    bool fitted;
    bpm_teams teams;
    double *r_home, *r_away;
    double b, c; /* the scale the fitted ratings were built with */
    bpm_ologit link;
} pi_model;

static void pi_clear(pi_model *m)
{
    bpm_teams_free(&m->teams);
    free(m->r_home);
    free(m->r_away);
    m->r_home = m->r_away = NULL;
    m->fitted = false;
}

static int pi_create(void *plugin_state, const json_t *params, void **out_model, bp_error *err)
{
    (void)plugin_state;
    pi_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return bp_err(err, BP_E_NOMEM, "pi_rating: out of memory");
    }
    int rc = bpm_params_check("pi_rating", params, bpm_pi_param_keys, err);
    if (rc == BP_OK) {
        rc = bpm_pi_params_parse("pi_rating", params, &m->p, err);
    }
    if (rc != BP_OK) {
        free(m);
        return rc;
    }
    *out_model = m;
    return BP_OK;
}

#define PI_MIN_ROWS 30

static int pi_fit(void *model, const bp_match_set *train, json_t **out_metrics, bp_error *err)
{
    pi_model *m = model;
    int rc = bpm_match_set_check("pi_rating", train, 1, err);
    if (rc != BP_OK) {
        return rc;
    }
    const bp_match_result *r = train->matches;
    size_t n = train->n_matches;
    bpm_teams teams = {NULL, 0};
    double *x = NULL, *rh = NULL, *ra = NULL;
    int *y = NULL, *games = NULL;
    size_t *hi = NULL, *ai = NULL;
    json_t *metrics = NULL;
    if ((rc = bpm_teams_build(r, n, &teams, err)) != BP_OK) {
        return rc;
    }
    x = malloc(n * sizeof *x);
    y = malloc(n * sizeof *y);
    hi = malloc(n * sizeof *hi);
    ai = malloc(n * sizeof *ai);
    rh = calloc(teams.n, sizeof *rh);
    ra = calloc(teams.n, sizeof *ra);
    games = calloc(teams.n, sizeof *games);
    if (!x || !y || !hi || !ai || !rh || !ra || !games) {
        rc = bp_err(err, BP_E_NOMEM, "pi_rating: out of memory for %zu matches", n);
        goto fail;
    }
    size_t rows = 0;
    for (size_t d = 0; d < n;) {
        size_t end = bpm_day_end(r, n, d);
        for (size_t k = d; k < end; k++) {
            hi[k] = (size_t)bpm_teams_find(&teams, r[k].home_team);
            ai[k] = (size_t)bpm_teams_find(&teams, r[k].away_team);
            if (games[hi[k]] >= m->p.min_games && games[ai[k]] >= m->p.min_games) {
                x[rows] = bpm_pi_expected(&m->p, rh, ra, hi[k], ai[k]);
                y[rows] = bpm_outcome(r[k].home_goals, r[k].away_goals);
                rows++;
            }
        }
        for (size_t k = d; k < end; k++) {
            bpm_pi_update(&m->p, rh, ra, hi[k], ai[k], r[k].home_goals, r[k].away_goals);
            games[hi[k]]++;
            games[ai[k]]++;
        }
        d = end;
    }
    if (rows < PI_MIN_ROWS) {
        rc = bp_err(err, BP_E_INVAL,
                    "pi_rating: too few matches to fit the outcome model: %zu of %zu matches had "
                    "both teams with %d earlier games (need at least %d)",
                    rows, n, m->p.min_games, PI_MIN_ROWS);
        goto fail;
    }
    bpm_ologit link;
    double loglik;
    rc = bpm_ologit_fit(x, y, rows, &link, &loglik, err);
    if (rc != BP_OK) {
        bp_err_prefix(err, "pi_rating: ");
        goto fail;
    }
    if (out_metrics != NULL) {
        metrics = json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "n_matches", (json_int_t)n,
                            "n_rows", (json_int_t)rows, "n_teams", (json_int_t)teams.n, "loglik",
                            loglik, "beta", link.beta, "c1", link.c1, "c2", link.c2);
        if (metrics == NULL) {
            rc = bp_err(err, BP_E_NOMEM, "pi_rating: out of memory");
            goto fail;
        }
    }
    pi_clear(m);
    m->teams = teams;
    m->r_home = rh;
    m->r_away = ra;
    m->b = m->p.b;
    m->c = m->p.c;
    m->link = link;
    m->fitted = true;
    teams.ids = NULL;
    rh = ra = NULL;
    if (out_metrics != NULL) {
        *out_metrics = metrics;
        metrics = NULL;
    }
    rc = BP_OK;
fail:
    json_decref(metrics);
    bpm_teams_free(&teams);
    free(x);
    free(y);
    free(hi);
    free(ai);
    free(rh);
    free(ra);
    free(games);
    return rc;
}

static int pi_predict(void *model, int64_t home, int64_t away, int64_t kickoff_ms,
                      bp_prediction *out, bp_error *err)
{
    const pi_model *m = model;
    (void)kickoff_ms;
    if (!m->fitted) {
        return bp_err(err, BP_E_STATE, "pi_rating: predict before fit or load");
    }
    long h = bpm_teams_find(&m->teams, home), a = bpm_teams_find(&m->teams, away);
    if (h < 0 || a < 0) {
        return bp_err(err, BP_E_NOTFOUND,
                      "pi_rating: team %lld has no rating (not in the training matches)",
                      (long long)(h < 0 ? home : away));
    }
    if (home == away) {
        return bp_err(err, BP_E_INVAL, "pi_rating: team %lld cannot play itself", (long long)home);
    }
    bpm_pi_params scale = m->p;
    scale.b = m->b;
    scale.c = m->c;
    double p[3];
    bpm_ologit_predict(&m->link,
                       bpm_pi_expected(&scale, m->r_home, m->r_away, (size_t)h, (size_t)a), p);
    memset(out, 0, sizeof *out);
    out->p_home = p[BPM_HOME];
    out->p_draw = p[BPM_DRAW];
    out->p_away = p[BPM_AWAY];
    out->exp_home_goals = (double)NAN;
    out->exp_away_goals = (double)NAN;
    return BP_OK;
}

static const char *const pi_state_keys[] = {"home_ratings", "away_ratings"};

static int pi_save(void *model, json_t **out_state, bp_error *err)
{
    const pi_model *m = model;
    if (!m->fitted) {
        return bp_err(err, BP_E_STATE, "pi_rating: nothing to save: the model is not fitted");
    }
    json_t *state = bpm_state_new("pi_rating", BPM_PI_RATING_STATE_VERSION);
    if (state == NULL) {
        return bp_err(err, BP_E_NOMEM, "pi_rating: out of memory");
    }
    double *const arrays[] = {m->r_home, m->r_away};
    int rc = bpm_state_set_team_arrays(state, &m->teams, pi_state_keys, arrays, 2, err);
    if (rc == BP_OK) {
        rc = bpm_state_set_double(state, "b", m->b, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_double(state, "c", m->c, err);
    }
    if (rc == BP_OK) {
        rc = bpm_ologit_save(&m->link, state, err);
    }
    if (rc != BP_OK) {
        json_decref(state);
        return rc;
    }
    *out_state = state;
    return BP_OK;
}

static int pi_load(void *model, const json_t *state, bp_error *err)
{
    pi_model *m = model;
    double b = 0, c = 0;
    bpm_ologit link;
    int rc = bpm_state_check("pi_rating", BPM_PI_RATING_STATE_VERSION, state, err);
    if (rc == BP_OK) {
        rc = bpm_state_get_double("pi_rating", state, "b", &b, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_get_double("pi_rating", state, "c", &c, err);
    }
    if (rc == BP_OK && (!(b > 1.0) || !(c > 0.0))) {
        rc = bp_err(err, BP_E_INVAL, "pi_rating: state.b must be > 1 and state.c > 0");
    }
    if (rc == BP_OK) {
        rc = bpm_ologit_load("pi_rating", state, &link, err);
    }
    double *arrays[2] = {NULL, NULL};
    bpm_teams teams;
    if (rc == BP_OK) {
        rc =
            bpm_state_get_team_arrays("pi_rating", state, pi_state_keys, 2, 2, &teams, arrays, err);
    }
    if (rc != BP_OK) {
        return rc;
    }
    pi_clear(m);
    m->teams = teams;
    m->r_home = arrays[0];
    m->r_away = arrays[1];
    m->b = b;
    m->c = c;
    m->link = link;
    m->fitted = true;
    return BP_OK;
}

static void pi_destroy(void *model)
{
    pi_model *m = model;
    if (m != NULL) {
        pi_clear(m);
        free(m);
    }
}

#define PI_PARAMS_SCHEMA                                                                           \
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"                         \
    "\"learning_rate\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1,\"default\":0.035},"       \
    "\"cross_learning\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1,\"default\":0.7},"        \
    "\"b\":{\"type\":\"number\",\"minimum\":1.0001,\"maximum\":1000,\"default\":10},"              \
    "\"c\":{\"type\":\"number\",\"minimum\":0.01,\"maximum\":100,\"default\":3},"                  \
    "\"min_games\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":200,\"default\":10}}}"

const bp_model_type bpm_pi_rating_type = {
    .struct_size = (uint32_t)sizeof(bp_model_type),
    .state_version = BPM_PI_RATING_STATE_VERSION,
    .name = "pi_rating",
    .description = "pi-ratings (Constantinou & Fenton 2013, published constants) mapped to 1X2 "
                   "by an ordered logit fitted on history",
    .params_schema = PI_PARAMS_SCHEMA,
    .create = pi_create,
    .fit = pi_fit,
    .predict = pi_predict,
    .save = pi_save,
    .load = pi_load,
    .destroy = pi_destroy,
};
