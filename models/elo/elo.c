/*
 * elo.c - Elo ratings (ClubElo style) and the elo model: ratings + ordered logit.
 */
#include "elo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpm.h"
#include "bpm_ologit.h"

/* ---- the rating engine ------------------------------------------------------------------- */

void bpm_elo_defaults(bpm_elo_params *p)
{
    p->k = 20.0;
    p->home_advantage = 70.0;
    p->initial = 1500.0;
    p->new_team_offset = 100.0;
    p->new_team_grace_days = 60.0;
    p->goal_multiplier = true;
    p->min_games = 10;
}

const char *const bpm_elo_param_keys[] = {"k",
                                          "home_advantage",
                                          "initial",
                                          "new_team_offset",
                                          "new_team_grace_days",
                                          "goal_multiplier",
                                          "min_games",
                                          NULL};

int bpm_elo_params_parse(const char *model, const json_t *params, bpm_elo_params *out,
                         bp_error *err)
{
    bpm_elo_params p;
    bpm_elo_defaults(&p);
    int64_t min_games = p.min_games;
    int rc = bpm_param_double(model, params, "k", p.k, 0.0, 200.0, &p.k, err);
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "home_advantage", p.home_advantage, -400.0, 400.0,
                              &p.home_advantage, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "initial", p.initial, 0.0, 5000.0, &p.initial, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "new_team_offset", p.new_team_offset, -1000.0, 1000.0,
                              &p.new_team_offset, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "new_team_grace_days", p.new_team_grace_days, 0.0,
                              3650.0, &p.new_team_grace_days, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_bool(model, params, "goal_multiplier", p.goal_multiplier, &p.goal_multiplier,
                            err);
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

int bpm_elo_state_init(bpm_elo_state *s, size_t n_teams, bp_error *err)
{
    memset(s, 0, sizeof *s);
    s->n = n_teams;
    s->rating = calloc(n_teams ? n_teams : 1, sizeof *s->rating);
    s->games = calloc(n_teams ? n_teams : 1, sizeof *s->games);
    s->seen = calloc(n_teams ? n_teams : 1, sizeof *s->seen);
    if (s->rating == NULL || s->games == NULL || s->seen == NULL) {
        bpm_elo_state_free(s);
        return bp_err(err, BP_E_NOMEM, "elo: out of memory for %zu teams", n_teams);
    }
    return BP_OK;
}

void bpm_elo_state_free(bpm_elo_state *s)
{
    free(s->rating);
    free(s->games);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

void bpm_elo_enter(const bpm_elo_params *p, bpm_elo_state *s, size_t t, int64_t kickoff_ms)
{
    if (s->seen[t]) {
        return;
    }
    if (!s->started) {
        s->started = true;
        s->first_kickoff = kickoff_ms;
    }
    double days = (double)(kickoff_ms - s->first_kickoff) / BPM_MS_PER_DAY;
    bool founder = days <= p->new_team_grace_days || s->n_seen == 0;
    s->rating[t] = founder ? p->initial : s->sum_seen / (double)s->n_seen - p->new_team_offset;
    s->seen[t] = true;
    s->n_seen++;
    s->sum_seen += s->rating[t];
}

double bpm_elo_diff(const bpm_elo_params *p, const bpm_elo_state *s, size_t h, size_t a)
{
    return s->rating[h] + p->home_advantage - s->rating[a];
}

void bpm_elo_update(const bpm_elo_params *p, bpm_elo_state *s, size_t h, size_t a, int home_goals,
                    int away_goals)
{
    double dr = bpm_elo_diff(p, s, h, a);
    double expected = 1.0 / (1.0 + pow(10.0, -dr / 400.0));
    double w = home_goals > away_goals ? 1.0 : home_goals == away_goals ? 0.5 : 0.0;
    double f = 1.0;
    if (p->goal_multiplier && home_goals != away_goals) {
        f = sqrt((double)abs(home_goals - away_goals));
    }
    double delta = p->k * f * (w - expected);
    s->rating[h] += delta;
    s->rating[a] -= delta;
    s->games[h]++;
    s->games[a]++;
    /* the exchange is zero-sum, so sum_seen does not change */
}

/* ---- the model ----------------------------------------------------------------------------- */

typedef struct elo_model {
    bpm_elo_params p;
    bool fitted;
    bpm_teams teams;
    double *rating;
    double home_advantage; /* the H the fitted ratings and link were built with */
    bpm_ologit link;
} elo_model;

static void elo_clear(elo_model *m)
{
    bpm_teams_free(&m->teams);
    free(m->rating);
    m->rating = NULL;
    m->fitted = false;
}

static int elo_create(void *plugin_state, const json_t *params, void **out_model, bp_error *err)
{
    (void)plugin_state;
    elo_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return bp_err(err, BP_E_NOMEM, "elo: out of memory");
    }
    int rc = bpm_params_check("elo", params, bpm_elo_param_keys, err);
    if (rc == BP_OK) {
        rc = bpm_elo_params_parse("elo", params, &m->p, err);
    }
    if (rc != BP_OK) {
        free(m);
        return rc;
    }
    *out_model = m;
    return BP_OK;
}

/* Fewer rows than this cannot pin down three link coefficients with any confidence. */
#define ELO_MIN_ROWS 30

static int elo_fit(void *model, const bp_match_set *train, json_t **out_metrics, bp_error *err)
{
    elo_model *m = model;
    int rc = bpm_match_set_check("elo", train, 1, err);
    if (rc != BP_OK) {
        return rc;
    }
    const bp_match_result *r = train->matches;
    size_t n = train->n_matches;
    bpm_teams teams = {NULL, 0};
    bpm_elo_state s;
    memset(&s, 0, sizeof s);
    double *x = NULL, *rating = NULL;
    int *y = NULL;
    size_t *hi = NULL, *ai = NULL;
    json_t *metrics = NULL;
    if ((rc = bpm_teams_build(r, n, &teams, err)) != BP_OK ||
        (rc = bpm_elo_state_init(&s, teams.n, err)) != BP_OK) {
        goto fail;
    }
    x = malloc(n * sizeof *x);
    y = malloc(n * sizeof *y);
    hi = malloc(n * sizeof *hi);
    ai = malloc(n * sizeof *ai);
    rating = malloc(teams.n * sizeof *rating);
    if (x == NULL || y == NULL || hi == NULL || ai == NULL || rating == NULL) {
        rc = bp_err(err, BP_E_NOMEM, "elo: out of memory for %zu matches", n);
        goto fail;
    }
    size_t rows = 0;
    for (size_t d = 0; d < n;) {
        size_t end = bpm_day_end(r, n, d);
        for (size_t k = d; k < end; k++) {
            hi[k] = (size_t)bpm_teams_find(&teams, r[k].home_team);
            ai[k] = (size_t)bpm_teams_find(&teams, r[k].away_team);
            bpm_elo_enter(&m->p, &s, hi[k], r[k].kickoff_ms);
            bpm_elo_enter(&m->p, &s, ai[k], r[k].kickoff_ms);
            if (s.games[hi[k]] >= m->p.min_games && s.games[ai[k]] >= m->p.min_games) {
                x[rows] = bpm_elo_diff(&m->p, &s, hi[k], ai[k]);
                y[rows] = bpm_outcome(r[k].home_goals, r[k].away_goals);
                rows++;
            }
        }
        for (size_t k = d; k < end; k++) {
            bpm_elo_update(&m->p, &s, hi[k], ai[k], r[k].home_goals, r[k].away_goals);
        }
        d = end;
    }
    if (rows < ELO_MIN_ROWS) {
        rc = bp_err(err, BP_E_INVAL,
                    "elo: too few matches to fit the outcome model: %zu of %zu matches had both "
                    "teams with %d earlier games (need at least %d)",
                    rows, n, m->p.min_games, ELO_MIN_ROWS);
        goto fail;
    }
    bpm_ologit link;
    double loglik;
    rc = bpm_ologit_fit(x, y, rows, &link, &loglik, err);
    if (rc != BP_OK) {
        bp_err_prefix(err, "elo: ");
        goto fail;
    }
    if (out_metrics != NULL) {
        metrics = json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f}", "n_matches", (json_int_t)n,
                            "n_rows", (json_int_t)rows, "n_teams", (json_int_t)teams.n, "loglik",
                            loglik, "beta", link.beta, "c1", link.c1, "c2", link.c2);
        if (metrics == NULL) {
            rc = bp_err(err, BP_E_NOMEM, "elo: out of memory");
            goto fail;
        }
    }
    memcpy(rating, s.rating, teams.n * sizeof *rating);
    elo_clear(m);
    m->teams = teams;
    m->rating = rating;
    m->home_advantage = m->p.home_advantage;
    m->link = link;
    m->fitted = true;
    teams.ids = NULL;
    rating = NULL;
    if (out_metrics != NULL) {
        *out_metrics = metrics;
        metrics = NULL;
    }
    rc = BP_OK;
fail:
    json_decref(metrics);
    bpm_teams_free(&teams);
    bpm_elo_state_free(&s);
    free(x);
    free(y);
    free(hi);
    free(ai);
    free(rating);
    return rc;
}

static int elo_predict(void *model, int64_t home, int64_t away, int64_t kickoff_ms,
                       bp_prediction *out, bp_error *err)
{
    const elo_model *m = model;
    (void)kickoff_ms;
    if (!m->fitted) {
        return bp_err(err, BP_E_STATE, "elo: predict before fit or load");
    }
    long h = bpm_teams_find(&m->teams, home), a = bpm_teams_find(&m->teams, away);
    if (h < 0 || a < 0) {
        return bp_err(err, BP_E_NOTFOUND,
                      "elo: team %lld has no rating (not in the training matches)",
                      (long long)(h < 0 ? home : away));
    }
    if (home == away) {
        return bp_err(err, BP_E_INVAL, "elo: team %lld cannot play itself", (long long)home);
    }
    double p[3];
    bpm_ologit_predict(&m->link, m->rating[h] + m->home_advantage - m->rating[a], p);
    memset(out, 0, sizeof *out);
    out->p_home = p[BPM_HOME];
    out->p_draw = p[BPM_DRAW];
    out->p_away = p[BPM_AWAY];
    out->exp_home_goals = (double)NAN;
    out->exp_away_goals = (double)NAN;
    return BP_OK;
}

static int elo_save(void *model, json_t **out_state, bp_error *err)
{
    const elo_model *m = model;
    if (!m->fitted) {
        return bp_err(err, BP_E_STATE, "elo: nothing to save: the model is not fitted");
    }
    json_t *state = bpm_state_new("elo", BPM_ELO_STATE_VERSION);
    if (state == NULL) {
        return bp_err(err, BP_E_NOMEM, "elo: out of memory");
    }
    static const char *const keys[] = {"ratings"};
    double *const arrays[] = {m->rating};
    int rc = bpm_state_set_team_arrays(state, &m->teams, keys, arrays, 1, err);
    if (rc == BP_OK) {
        rc = bpm_state_set_double(state, "home_advantage", m->home_advantage, err);
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

static int elo_load(void *model, const json_t *state, bp_error *err)
{
    elo_model *m = model;
    double home_adv;
    bpm_ologit link;
    int rc = bpm_state_check("elo", BPM_ELO_STATE_VERSION, state, err);
    if (rc == BP_OK) {
        rc = bpm_state_get_double("elo", state, "home_advantage", &home_adv, err);
    }
    if (rc == BP_OK) {
        rc = bpm_ologit_load("elo", state, &link, err);
    }
    static const char *const keys[] = {"ratings"};
    double *rating = NULL;
    bpm_teams teams;
    if (rc == BP_OK) {
        rc = bpm_state_get_team_arrays("elo", state, keys, 1, 2, &teams, &rating, err);
    }
    if (rc != BP_OK) {
        return rc;
    }
    elo_clear(m);
    m->teams = teams;
    m->rating = rating;
    m->home_advantage = home_adv;
    m->link = link;
    m->fitted = true;
    return BP_OK;
}

static void elo_destroy(void *model)
{
    elo_model *m = model;
    if (m != NULL) {
        elo_clear(m);
        free(m);
    }
}

#define ELO_PARAMS_SCHEMA                                                                          \
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"                         \
    "\"k\":{\"type\":\"number\",\"minimum\":0,\"maximum\":200,\"default\":20},"                    \
    "\"home_advantage\":{\"type\":\"number\",\"minimum\":-400,\"maximum\":400,\"default\":70},"    \
    "\"initial\":{\"type\":\"number\",\"minimum\":0,\"maximum\":5000,\"default\":1500},"           \
    "\"new_team_offset\":{\"type\":\"number\",\"minimum\":-1000,\"maximum\":1000,"                 \
    "\"default\":100},"                                                                            \
    "\"new_team_grace_days\":{\"type\":\"number\",\"minimum\":0,\"maximum\":3650,"                 \
    "\"default\":60},"                                                                             \
    "\"goal_multiplier\":{\"type\":\"boolean\",\"default\":true},"                                 \
    "\"min_games\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":200,\"default\":10}}}"

const bp_model_type bpm_elo_type = {
    .struct_size = (uint32_t)sizeof(bp_model_type),
    .state_version = BPM_ELO_STATE_VERSION,
    .name = "elo",
    .description = "ClubElo-style Elo ratings (goal-difference multiplier, home advantage) mapped "
                   "to 1X2 by an ordered logit fitted on history",
    .params_schema = ELO_PARAMS_SCHEMA,
    .create = elo_create,
    .fit = elo_fit,
    .predict = elo_predict,
    .save = elo_save,
    .load = elo_load,
    .destroy = elo_destroy,
};
