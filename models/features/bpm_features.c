/*
 * bpm_features.c - engineered features from the match history.
 */
#include "bpm_features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpm_margin.h"

static const char *const feature_names[BPM_FEATURES_MAX] = {"elo_diff",  "pi_gd",   "form_home",
                                                            "form_away", "gf_home", "ga_home",
                                                            "gf_away",   "ga_away", "market"};

const char *const bpm_features_param_keys[] = {"features", "form_games",  "goals_games",
                                               "market",   "market_rate", NULL};

#define MARKET_FEATURE 8
#define ALL_FEATURES   ((1u << BPM_FEATURES_MAX) - 1)

static int read_select(const char *model, const json_t *params, unsigned *out, bp_error *err)
{
    const json_t *list = params ? json_object_get(params, "features") : NULL;
    if (list == NULL || json_is_null(list)) {
        *out = ALL_FEATURES;
        return BP_OK;
    }
    if (!json_is_array(list) || json_array_size(list) == 0) {
        return bp_err(err, BP_E_INVAL,
                      "%s: params.features: expected a non-empty array of "
                      "feature names",
                      model);
    }
    unsigned sel = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *name = json_string_value(json_array_get(list, i));
        size_t k = 0;
        while (k < BPM_FEATURES_MAX && (name == NULL || strcmp(name, feature_names[k]) != 0)) {
            k++;
        }
        if (k == BPM_FEATURES_MAX) {
            return bp_err(err, BP_E_INVAL,
                          "%s: params.features[%zu]: '%s' is not a feature (elo_diff, pi_gd, "
                          "form_home, form_away, gf_home, ga_home, gf_away, ga_away, market)",
                          model, i, name ? name : "(not a string)");
        }
        sel |= 1u << k;
    }
    *out = sel;
    return BP_OK;
}

/* Fill f->cols and f->dim from the selection and whether the market feature is available. */
static void set_columns(bpm_features *f)
{
    f->dim = 0;
    for (int k = 0; k < BPM_FEATURES_MAX; k++) {
        if ((f->opts.select & (1u << k)) && (k != MARKET_FEATURE || f->use_market)) {
            f->cols[f->dim++] = k;
        }
    }
}

/* League averages used before any match was played (EPL long-run values). */
#define DEFAULT_GOALS  1.4
#define DEFAULT_POINTS 1.37

int bpm_features_opts_read(const char *model, const json_t *params, bpm_features_opts *out,
                           bp_error *err)
{
    bpm_features_opts o;
    int64_t form = 6, goals = 10;
    int rc = bpm_elo_params_parse(model, params, &o.elo, err);
    if (rc == BP_OK) {
        rc = bpm_pi_params_parse(model, params, &o.pi, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(model, params, "form_games", form, 1, BPM_FEATURES_MAX_RECENT, &form,
                           err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(model, params, "goals_games", goals, 1, BPM_FEATURES_MAX_RECENT, &goals,
                           err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_bool(model, params, "market", true, &o.market, err);
    }
    if (rc == BP_OK) {
        rc = read_select(model, params, &o.select, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "market_rate", 0.35, 0.001, 1.0, &o.market_rate, err);
    }
    if (rc != BP_OK) {
        return rc;
    }
    o.form_games = (int)form;
    o.goals_games = (int)goals;
    o.min_games = o.elo.min_games;
    *out = o;
    return BP_OK;
}

json_t *bpm_features_opts_json(const bpm_features_opts *o)
{
    json_t *names = json_array();
    for (int k = 0; names != NULL && k < BPM_FEATURES_MAX; k++) {
        if (o->select & (1u << k)) {
            json_array_append_new(names, json_string(feature_names[k]));
        }
    }
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:b, s:i, s:f, s:f, s:f, s:f, s:i, s:i, s:b, "
                     "s:f, s:o}",
                     "k", o->elo.k, "home_advantage", o->elo.home_advantage, "initial",
                     o->elo.initial, "new_team_offset", o->elo.new_team_offset,
                     "new_team_grace_days", o->elo.new_team_grace_days, "goal_multiplier",
                     (int)o->elo.goal_multiplier, "min_games", o->min_games, "learning_rate",
                     o->pi.lambda, "cross_learning", o->pi.gamma, "b", o->pi.b, "c", o->pi.c,
                     "form_games", o->form_games, "goals_games", o->goals_games, "market",
                     (int)o->market, "market_rate", o->market_rate, "features", names);
}

/* ---- per-team state -------------------------------------------------------------------------- */

static int alloc_state(bpm_features *f, size_t n, bp_error *err)
{
    size_t m = n ? n : 1;
    f->elo = calloc(m, sizeof *f->elo);
    f->pi_home = calloc(m, sizeof *f->pi_home);
    f->pi_away = calloc(m, sizeof *f->pi_away);
    f->market = calloc(m, sizeof *f->market);
    f->games = calloc(m, sizeof *f->games);
    f->recent_n = calloc(m, sizeof *f->recent_n);
    f->recent = calloc(m * f->K * 3, sizeof *f->recent);
    if (!f->elo || !f->pi_home || !f->pi_away || !f->market || !f->games || !f->recent_n ||
        !f->recent) {
        return bp_err(err, BP_E_NOMEM, "features: out of memory for %zu teams", n);
    }
    return BP_OK;
}

void bpm_features_free(bpm_features *f)
{
    bpm_teams_free(&f->teams);
    free(f->elo);
    free(f->pi_home);
    free(f->pi_away);
    free(f->market);
    free(f->games);
    free(f->recent_n);
    free(f->recent);
    f->elo = f->pi_home = f->pi_away = f->market = f->recent = NULL;
    f->games = f->recent_n = NULL;
}

static void push_recent(bpm_features *f, size_t t, double points, double gf, double ga)
{
    double *r = f->recent + t * f->K * 3;
    if ((size_t)f->recent_n[t] == f->K) {
        memmove(r, r + 3, (f->K - 1) * 3 * sizeof *r);
        f->recent_n[t]--;
    }
    double *slot = r + (size_t)f->recent_n[t] * 3;
    slot[0] = points;
    slot[1] = gf;
    slot[2] = ga;
    f->recent_n[t]++;
}

/* Mean of `field` over the last `last` results of team t, or `fallback` without results. */
static double recent_mean(const bpm_features *f, size_t t, int last, int field, double fallback)
{
    int have = f->recent_n[t];
    int use = have < last ? have : last;
    if (use == 0) {
        return fallback;
    }
    const double *r = f->recent + t * f->K * 3;
    double s = 0.0;
    for (int k = have - use; k < have; k++) {
        s += r[(size_t)k * 3 + (size_t)field];
    }
    return s / use;
}

static void features_of(const bpm_features *f, size_t i, size_t j, double *x)
{
    const bpm_features_opts *o = &f->opts;
    double goals = f->team_games > 0 ? f->sum_goals / f->team_games : DEFAULT_GOALS;
    double points = f->team_games > 0 ? f->sum_points / f->team_games : DEFAULT_POINTS;
    double all[BPM_FEATURES_MAX];
    all[0] = (f->elo[i] + o->elo.home_advantage - f->elo[j]) / 100.0;
    all[1] = bpm_pi_expected(&o->pi, f->pi_home, f->pi_away, i, j);
    all[2] = recent_mean(f, i, o->form_games, 0, points);
    all[3] = recent_mean(f, j, o->form_games, 0, points);
    all[4] = recent_mean(f, i, o->goals_games, 1, goals);
    all[5] = recent_mean(f, i, o->goals_games, 2, goals);
    all[6] = recent_mean(f, j, o->goals_games, 1, goals);
    all[7] = recent_mean(f, j, o->goals_games, 2, goals);
    all[MARKET_FEATURE] = f->market_home + f->market[i] - f->market[j];
    for (size_t c = 0; c < f->dim; c++) {
        x[c] = all[f->cols[c]];
    }
}

static void apply_market(bpm_features *f, size_t i, size_t j, const bp_match_result *m)
{
    if (!(m->odds_home > 1.0 && m->odds_draw > 1.0 && m->odds_away > 1.0)) {
        return;
    }
    double odds[3] = {m->odds_home, m->odds_draw, m->odds_away}, p[3];
    if (bpm_remove_margin(BPM_MARGIN_MULTIPLICATIVE, odds, 3, p, NULL, NULL) != BP_OK) {
        return;
    }
    double rate = f->opts.market_rate;
    double e = log(p[0] / p[2]) - (f->market_home + f->market[i] - f->market[j]);
    double ei = fmax(rate, 1.0 / (f->games[i] + 2.0)), ej = fmax(rate, 1.0 / (f->games[j] + 2.0));
    f->market[i] += ei * e;
    f->market[j] -= ej * e;
    f->market_home += rate / 10.0 * e;
}

/* ---- building ------------------------------------------------------------------------------- */

int bpm_features_build(const char *model, const bpm_features_opts *opts, const bp_match_set *set,
                       bpm_features *out, double **out_x, int **out_y, size_t **out_match,
                       size_t *out_rows, bp_error *err)
{
    int rc = bpm_match_set_check(model, set, 1, err);
    if (rc != BP_OK) {
        return rc;
    }
    const bp_match_result *r = set->matches;
    size_t n = set->n_matches;
    bpm_features f;
    memset(&f, 0, sizeof f);
    f.opts = *opts;
    f.K = (size_t)(opts->form_games > opts->goals_games ? opts->form_games : opts->goals_games);
    bpm_elo_state elo;
    memset(&elo, 0, sizeof elo);
    double *x = NULL;
    int *y = NULL;
    size_t *hi = NULL, *ai = NULL, *rowm = NULL;

    size_t with_odds = 0;
    for (size_t k = 0; k < n; k++) {
        with_odds += r[k].odds_home > 1.0 && r[k].odds_draw > 1.0 && r[k].odds_away > 1.0;
    }
    f.use_market = opts->market && (opts->select & (1u << MARKET_FEATURE)) && 2 * with_odds >= n;
    set_columns(&f);
    if (f.dim == 0) {
        return bp_err(err, BP_E_INVAL,
                      "%s: no feature left to use: the market feature needs market on and 1X2 "
                      "odds in at least half of the training matches (%zu of %zu have them)",
                      model, with_odds, n);
    }
    if ((rc = bpm_teams_build(r, n, &f.teams, err)) != BP_OK) {
        goto fail;
    }
    if ((rc = alloc_state(&f, f.teams.n, err)) != BP_OK ||
        (rc = bpm_elo_state_init(&elo, f.teams.n, err)) != BP_OK) {
        goto fail;
    }
    x = malloc(n * f.dim * sizeof *x);
    y = malloc(n * sizeof *y);
    rowm = malloc(n * sizeof *rowm);
    hi = malloc(n * sizeof *hi);
    ai = malloc(n * sizeof *ai);
    if (!x || !y || !rowm || !hi || !ai) {
        rc = bp_err(err, BP_E_NOMEM, "%s: out of memory for %zu matches", model, n);
        goto fail;
    }
    size_t rows = 0;
    for (size_t d = 0; d < n;) {
        size_t end = bpm_day_end(r, n, d);
        /* 1. every match of the day sees the state as it was before the day */
        for (size_t k = d; k < end; k++) {
            hi[k] = (size_t)bpm_teams_find(&f.teams, r[k].home_team);
            ai[k] = (size_t)bpm_teams_find(&f.teams, r[k].away_team);
            bpm_elo_enter(&opts->elo, &elo, hi[k], r[k].kickoff_ms);
            bpm_elo_enter(&opts->elo, &elo, ai[k], r[k].kickoff_ms);
            f.elo[hi[k]] = elo.rating[hi[k]];
            f.elo[ai[k]] = elo.rating[ai[k]];
            if (f.games[hi[k]] >= opts->min_games && f.games[ai[k]] >= opts->min_games) {
                features_of(&f, hi[k], ai[k], x + rows * f.dim);
                y[rows] = bpm_outcome(r[k].home_goals, r[k].away_goals);
                rowm[rows] = k;
                rows++;
            }
        }
        /* 2. then the day's results update it */
        for (size_t k = d; k < end; k++) {
            size_t i = hi[k], j = ai[k];
            int hg = r[k].home_goals, ag = r[k].away_goals;
            bpm_elo_update(&opts->elo, &elo, i, j, hg, ag);
            bpm_pi_update(&opts->pi, f.pi_home, f.pi_away, i, j, hg, ag);
            if (f.use_market) {
                apply_market(&f, i, j, &r[k]);
            }
            double ph = hg > ag ? 3.0 : hg == ag ? 1.0 : 0.0;
            double pa = ag > hg ? 3.0 : hg == ag ? 1.0 : 0.0;
            push_recent(&f, i, ph, hg, ag);
            push_recent(&f, j, pa, ag, hg);
            f.games[i]++;
            f.games[j]++;
            f.sum_goals += hg + ag;
            f.sum_points += ph + pa;
            f.team_games += 2.0;
        }
        d = end;
    }
    memcpy(f.elo, elo.rating, f.teams.n * sizeof *f.elo);
    *out = f;
    memset(&f, 0, sizeof f);
    *out_rows = rows;
    if (out_x != NULL) {
        *out_x = x;
        x = NULL;
    }
    if (out_y != NULL) {
        *out_y = y;
        y = NULL;
    }
    if (out_match != NULL) {
        *out_match = rowm;
        rowm = NULL;
    }
    rc = BP_OK;
fail:
    bpm_features_free(&f);
    bpm_elo_state_free(&elo);
    free(x);
    free(y);
    free(rowm);
    free(hi);
    free(ai);
    return rc;
}

int bpm_features_for(const char *model, const bpm_features *f, int64_t home, int64_t away,
                     double *out_x, bp_error *err)
{
    long i = bpm_teams_find(&f->teams, home), j = bpm_teams_find(&f->teams, away);
    if (i < 0 || j < 0) {
        return bp_err(err, BP_E_NOTFOUND,
                      "%s: team %lld has no history (it is not in the training matches)", model,
                      (long long)(i < 0 ? home : away));
    }
    if (home == away) {
        return bp_err(err, BP_E_INVAL, "%s: team %lld cannot play itself", model, (long long)home);
    }
    features_of(f, (size_t)i, (size_t)j, out_x);
    return BP_OK;
}

const char *bpm_features_name(const bpm_features *f, size_t k)
{
    return k < f->dim ? feature_names[f->cols[k]] : "?";
}

/* ---- save / load ---------------------------------------------------------------------------- */

static const char *const team_keys[] = {"elo", "pi_home", "pi_away", "market", "games", "recent_n"};

int bpm_features_save(const bpm_features *f, json_t *state, bp_error *err)
{
    json_t *fs = json_object();
    json_t *opts = bpm_features_opts_json(&f->opts);
    size_t n = f->teams.n;
    double *games = malloc((n ? n : 1) * 2 * sizeof *games);
    int rc = BP_OK;
    if (fs == NULL || opts == NULL || games == NULL || json_object_set_new(fs, "opts", opts)) {
        json_decref(fs);
        free(games);
        return bp_err(err, BP_E_NOMEM, "features: out of memory saving");
    }
    double *recent_n = games + n;
    for (size_t t = 0; t < n; t++) {
        games[t] = f->games[t];
        recent_n[t] = f->recent_n[t];
    }
    double *const arrays[] = {f->elo, f->pi_home, f->pi_away, f->market, games, recent_n};
    rc = bpm_state_set_team_arrays(fs, &f->teams, team_keys, arrays, 6, err);
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(fs, "recent", f->recent, n * f->K * 3, err);
    }
    if (rc == BP_OK && json_object_set_new(fs, "use_market", json_boolean(f->use_market))) {
        rc = bp_err(err, BP_E_NOMEM, "features: out of memory saving");
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_double(fs, "market_home", f->market_home, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_double(fs, "sum_goals", f->sum_goals, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_double(fs, "sum_points", f->sum_points, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_double(fs, "team_games", f->team_games, err);
    }
    free(games);
    if (rc == BP_OK && json_object_set_new(state, "features", fs) != 0) {
        return bp_err(err, BP_E_NOMEM, "features: out of memory saving");
    }
    if (rc != BP_OK) {
        json_decref(fs);
    }
    return rc;
}

static int count_of(const char *model, double v, int max, const char *what, int *out, bp_error *err)
{
    if (!(v >= 0.0) || v > max || floor(v) != v) {
        return bp_err(err, BP_E_INVAL, "%s: state.features.%s: %g is not a count in 0..%d", model,
                      what, v, max);
    }
    *out = (int)v;
    return BP_OK;
}

int bpm_features_load(const char *model, const json_t *state, bpm_features *out, bp_error *err)
{
    const json_t *fs = json_object_get(state, "features");
    if (!json_is_object(fs)) {
        return bp_err(err, BP_E_INVAL, "%s: state.features: expected an object", model);
    }
    bpm_features f;
    memset(&f, 0, sizeof f);
    double *arrays[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    int rc = bpm_features_opts_read(model, json_object_get(fs, "opts"), &f.opts, err);
    if (rc != BP_OK) {
        bp_err_prefix(err, "state.features.opts: ");
        return rc;
    }
    const json_t *um = json_object_get(fs, "use_market");
    if (!json_is_boolean(um)) {
        return bp_err(err, BP_E_INVAL, "%s: state.features.use_market: expected a boolean", model);
    }
    f.use_market = json_is_true(um);
    set_columns(&f);
    if (f.dim == 0) {
        return bp_err(err, BP_E_INVAL, "%s: state.features selects no usable feature", model);
    }
    f.K = (size_t)(f.opts.form_games > f.opts.goals_games ? f.opts.form_games : f.opts.goals_games);
    if ((rc = bpm_state_get_double(model, fs, "market_home", &f.market_home, err)) != BP_OK ||
        (rc = bpm_state_get_double(model, fs, "sum_goals", &f.sum_goals, err)) != BP_OK ||
        (rc = bpm_state_get_double(model, fs, "sum_points", &f.sum_points, err)) != BP_OK ||
        (rc = bpm_state_get_double(model, fs, "team_games", &f.team_games, err)) != BP_OK) {
        return rc;
    }
    rc = bpm_state_get_team_arrays(model, fs, team_keys, 6, 2, &f.teams, arrays, err);
    if (rc != BP_OK) {
        return rc;
    }
    size_t n = f.teams.n;
    f.elo = arrays[0];
    f.pi_home = arrays[1];
    f.pi_away = arrays[2];
    f.market = arrays[3];
    f.games = malloc(n * sizeof *f.games);
    f.recent_n = malloc(n * sizeof *f.recent_n);
    f.recent = malloc(n * f.K * 3 * sizeof *f.recent);
    if (!f.games || !f.recent_n || !f.recent) {
        rc = bp_err(err, BP_E_NOMEM, "%s: out of memory loading state", model);
        goto fail;
    }
    for (size_t t = 0; t < n && rc == BP_OK; t++) {
        rc = count_of(model, arrays[4][t], 1 << 30, "games", &f.games[t], err);
        if (rc == BP_OK) {
            rc = count_of(model, arrays[5][t], (int)f.K, "recent_n", &f.recent_n[t], err);
        }
    }
    if (rc == BP_OK) {
        rc = bpm_state_get_doubles(model, fs, "recent", f.recent, n * f.K * 3, err);
    }
    if (rc != BP_OK) {
        goto fail;
    }
    free(arrays[4]);
    free(arrays[5]);
    *out = f;
    return BP_OK;
fail:
    free(arrays[4]);
    free(arrays[5]);
    bpm_features_free(&f);
    return rc;
}
