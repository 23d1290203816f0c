/*
 * ensemble.c - weighted blend of member models, weights by walk-forward RPS.
 */
#include "ensemble.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpm.h"
#include "bpm_blend.h"
#include "bpm_metrics.h"
#include "bpm_opt.h"
#include "dixon_coles.h"
#include "elo.h"
#include "logistic.h"
#include "pi_rating.h"
#include "poisson.h"
#include "random_forest.h"

#define MODEL "ensemble"
#define MAXM  BPM_ENSEMBLE_MAX_MEMBERS

/* ---- the weights -------------------------------------------------------------------------- */

int bpm_ensemble_weights(const double *p, const int *y, size_t rows, size_t members, double *out_w,
                         double *out_rps, bp_error *err)
{
    return bpm_blend_weights(p, y, rows, members, out_w, out_rps, MODEL ": weights", err);
}

/* ---- members ----------------------------------------------------------------------------------
 */

const bp_model_type *bpm_ensemble_member_type(const char *name)
{
    static const bp_model_type *const types[] = {&bpm_dixon_coles_type, &bpm_poisson_type,
                                                 &bpm_elo_type,         &bpm_pi_rating_type,
                                                 &bpm_logistic_type,    &bpm_random_forest_type};
    for (size_t i = 0; name != NULL && i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(types[i]->name, name) == 0) {
            return types[i];
        }
    }
    return NULL;
}

typedef struct member_set {
    size_t n;
    const bp_model_type *type[MAXM];
    void *inst[MAXM];
} member_set;

static void members_destroy(member_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->inst[i] != NULL) {
            s->type[i]->destroy(s->inst[i]);
            s->inst[i] = NULL;
        }
    }
}

typedef struct ensemble_model {
    json_t *members;       /* array of names */
    json_t *member_params; /* object name -> params */
    int refit_days, burn_in_days;
    size_t min_predictions;
    bool fitted;
    member_set set;
    double w[MAXM];
} ensemble_model;

/* Create one instance of every member (params from member_params). */
static int members_create(const ensemble_model *e, member_set *out, bp_error *err)
{
    memset(out, 0, sizeof *out);
    size_t n = json_array_size(e->members);
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(e->members, i));
        const bp_model_type *type = bpm_ensemble_member_type(name);
        if (type == NULL) { /* create() validated the names; a state may not have been */
            members_destroy(out);
            return bp_err(err, BP_E_INVAL, MODEL ": unknown member model '%s'",
                          name ? name : "(not a string)");
        }
        out->type[i] = type;
        out->n = i + 1;
        int rc = type->create(NULL, json_object_get(e->member_params, name), &out->inst[i], err);
        if (rc != BP_OK) {
            out->inst[i] = NULL;
            members_destroy(out);
            bp_err_prefix(err, MODEL ": member %s: ", name);
            return rc;
        }
    }
    return BP_OK;
}

static const char *const own_keys[] = {"members",      "member_params",   "refit_days",
                                       "burn_in_days", "min_predictions", NULL};

static int ens_create(void *plugin_state, const json_t *params, void **out_model, bp_error *err)
{
    (void)plugin_state;
    int rc = bpm_params_check(MODEL, params, own_keys, err);
    if (rc != BP_OK) {
        return rc;
    }
    ensemble_model *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
    }
    const json_t *members = params ? json_object_get(params, "members") : NULL;
    const json_t *mparams = params ? json_object_get(params, "member_params") : NULL;
    int64_t refit, burn, minp;
    e->members = members ? json_deep_copy(members)
                         : json_pack("[s, s, s, s]", "dixon_coles", "elo", "pi_rating", "logistic");
    e->member_params = mparams ? json_deep_copy(mparams)
                               : json_pack("{s:{s:i}}", "dixon_coles", "window_days", 1100);
    if (e->members == NULL || e->member_params == NULL) {
        rc = bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
        goto fail;
    }
    if (!json_is_array(e->members) || json_array_size(e->members) < 2 ||
        json_array_size(e->members) > MAXM) {
        rc = bp_err(err, BP_E_INVAL,
                    MODEL ": params.members: expected an array of 2..%d model "
                          "names",
                    MAXM);
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(e->members); i++) {
        const char *name = json_string_value(json_array_get(e->members, i));
        if (bpm_ensemble_member_type(name) == NULL) {
            rc = bp_err(err, BP_E_INVAL,
                        MODEL ": params.members[%zu]: '%s' is not a model the ensemble can use "
                              "(dixon_coles, poisson, elo, pi_rating, logistic, random_forest)",
                        i, name ? name : "(not a string)");
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(name, json_string_value(json_array_get(e->members, j))) == 0) {
                rc = bp_err(err, BP_E_INVAL, MODEL ": params.members: '%s' is listed twice", name);
                goto fail;
            }
        }
    }
    if (!json_is_object(e->member_params)) {
        rc = bp_err(err, BP_E_INVAL, MODEL ": params.member_params: expected an object");
        goto fail;
    }
    const char *key;
    json_t *v;
    json_object_foreach(e->member_params, key, v)
    {
        bool listed = false;
        for (size_t i = 0; i < json_array_size(e->members) && !listed; i++) {
            listed = strcmp(key, json_string_value(json_array_get(e->members, i))) == 0;
        }
        if (!listed) {
            rc =
                bp_err(err, BP_E_INVAL,
                       MODEL ": params.member_params.%s: '%s' is not one of the members", key, key);
            goto fail;
        }
    }
    if ((rc = bpm_param_int(MODEL, params, "refit_days", 7, 1, 365, &refit, err)) != BP_OK ||
        (rc = bpm_param_int(MODEL, params, "burn_in_days", 365, 0, 36500, &burn, err)) != BP_OK ||
        (rc = bpm_param_int(MODEL, params, "min_predictions", 100, 1, 1000000, &minp, err)) !=
            BP_OK) {
        goto fail;
    }
    e->refit_days = (int)refit;
    e->burn_in_days = (int)burn;
    e->min_predictions = (size_t)minp;
    /* create the members once now, so their params are validated at create time */
    member_set probe;
    if ((rc = members_create(e, &probe, err)) != BP_OK) {
        goto fail;
    }
    members_destroy(&probe);
    *out_model = e;
    return BP_OK;
fail:
    json_decref(e->members);
    json_decref(e->member_params);
    free(e);
    return rc;
}

/* ---- fit ----------------------------------------------------------------------------------------
 */

static int ens_fit(void *model, const bp_match_set *train, json_t **out_metrics, bp_error *err)
{
    ensemble_model *e = model;
    int rc = bpm_match_set_check(MODEL, train, 1, err);
    if (rc != BP_OK) {
        return rc;
    }
    const bp_match_result *r = train->matches;
    size_t n = train->n_matches, M = json_array_size(e->members);
    member_set s;
    if ((rc = members_create(e, &s, err)) != BP_OK) {
        return rc;
    }
    double *p = malloc(n * M * 3 * sizeof *p);
    int *y = malloc(n * sizeof *y);
    json_t *metrics = NULL;
    size_t rows = 0;
    if (p == NULL || y == NULL) {
        rc = bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
        goto fail;
    }

    /* 1. walk forward over the history to collect out-of-sample member forecasts */
    int64_t start_day = bpm_day_of(r[0].kickoff_ms) + e->burn_in_days;
    int64_t last_fit = INT64_MIN / 2;
    bool ready = false;
    for (size_t d = 0; d < n;) {
        size_t end = bpm_day_end(r, n, d);
        int64_t day = bpm_day_of(r[d].kickoff_ms);
        if (day < start_day) {
            d = end;
            continue;
        }
        if (day - last_fit >= e->refit_days) {
            bp_match_set prefix = {sizeof prefix, 0, r, d, day * 86400000LL};
            bool all = true;
            for (size_t m = 0; m < M; m++) {
                bp_error ignored;
                all = s.type[m]->fit(s.inst[m], &prefix, NULL, &ignored) == BP_OK && all;
            }
            /* a member that cannot fit yet (too little history) keeps the ensemble waiting */
            ready = ready || all;
            if (all) {
                last_fit = day;
            }
        }
        for (size_t k = d; ready && k < end; k++) {
            bool ok = true;
            for (size_t m = 0; m < M && ok; m++) {
                bp_prediction pr;
                ok = s.type[m]->predict(s.inst[m], r[k].home_team, r[k].away_team, r[k].kickoff_ms,
                                        &pr, NULL) == BP_OK;
                double *q = p + (rows * M + m) * 3;
                q[0] = pr.p_home;
                q[1] = pr.p_draw;
                q[2] = pr.p_away;
            }
            if (ok) {
                y[rows++] = bpm_outcome(r[k].home_goals, r[k].away_goals);
            }
        }
        d = end;
    }
    if (rows < e->min_predictions) {
        rc = bp_err(err, BP_E_INVAL,
                    MODEL ": too few matches to choose weights: %zu out-of-sample forecasts after "
                          "the %d-day burn-in (need at least %zu)",
                    rows, e->burn_in_days, e->min_predictions);
        goto fail;
    }

    /* 2. the weights */
    double w[MAXM], blend_rps;
    if ((rc = bpm_ensemble_weights(p, y, rows, M, w, &blend_rps, err)) != BP_OK) {
        goto fail;
    }

    /* 3. every member on the whole history */
    json_t *member_metrics = json_object();
    if (member_metrics == NULL) {
        rc = bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
        goto fail;
    }
    for (size_t m = 0; m < M; m++) {
        json_t *mm = NULL;
        rc = s.type[m]->fit(s.inst[m], train, &mm, err);
        if (rc != BP_OK) {
            json_decref(member_metrics);
            bp_err_prefix(err, MODEL ": member %s: ", s.type[m]->name);
            goto fail;
        }
        json_object_set_new(member_metrics, s.type[m]->name, mm);
    }
    if (out_metrics != NULL) {
        json_t *weights = json_object(), *oos = json_object();
        for (size_t m = 0; weights && oos && m < M; m++) {
            double sum = 0.0;
            for (size_t k = 0; k < rows; k++) {
                sum += bpm_rps(p + (k * M + m) * 3, y[k]);
            }
            json_object_set_new(weights, s.type[m]->name, json_real(w[m]));
            json_object_set_new(oos, s.type[m]->name, json_real(sum / (double)rows));
        }
        metrics =
            json_pack("{s:o, s:I, s:f, s:o, s:o}", "weights", weights, "oos_rows", (json_int_t)rows,
                      "oos_rps", blend_rps, "member_oos_rps", oos, "members", member_metrics);
        if (metrics == NULL) {
            rc = bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
            goto fail;
        }
    } else {
        json_decref(member_metrics);
    }

    /* commit */
    if (e->fitted) {
        members_destroy(&e->set);
    }
    e->set = s;
    memcpy(e->w, w, sizeof w);
    e->fitted = true;
    memset(&s, 0, sizeof s);
    if (out_metrics != NULL) {
        *out_metrics = metrics;
        metrics = NULL;
    }
    rc = BP_OK;
fail:
    json_decref(metrics);
    members_destroy(&s);
    free(p);
    free(y);
    return rc;
}

static int ens_predict(void *model, int64_t home, int64_t away, int64_t kickoff_ms,
                       bp_prediction *out, bp_error *err)
{
    const ensemble_model *e = model;
    if (!e->fitted) {
        return bp_err(err, BP_E_STATE, MODEL ": predict before fit or load");
    }
    double b[3] = {0, 0, 0};
    for (size_t m = 0; m < e->set.n; m++) {
        bp_prediction pr;
        int rc = e->set.type[m]->predict(e->set.inst[m], home, away, kickoff_ms, &pr, err);
        if (rc != BP_OK) {
            bp_err_prefix(err, MODEL ": member %s: ", e->set.type[m]->name);
            return rc;
        }
        b[0] += e->w[m] * pr.p_home;
        b[1] += e->w[m] * pr.p_draw;
        b[2] += e->w[m] * pr.p_away;
    }
    memset(out, 0, sizeof *out);
    out->p_home = b[0];
    out->p_draw = b[1];
    out->p_away = b[2];
    out->exp_home_goals = (double)NAN;
    out->exp_away_goals = (double)NAN;
    return BP_OK;
}

/* ---- save / load ------------------------------------------------------------------------------
 */

static int ens_save(void *model, json_t **out_state, bp_error *err)
{
    const ensemble_model *e = model;
    if (!e->fitted) {
        return bp_err(err, BP_E_STATE, MODEL ": nothing to save: the model is not fitted");
    }
    json_t *state = bpm_state_new(MODEL, BPM_ENSEMBLE_STATE_VERSION);
    json_t *states = json_array();
    if (state == NULL || states == NULL) {
        json_decref(state);
        json_decref(states);
        return bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
    }
    int rc = BP_OK;
    for (size_t m = 0; m < e->set.n && rc == BP_OK; m++) {
        json_t *ms = NULL;
        rc = e->set.type[m]->save(e->set.inst[m], &ms, err);
        if (rc == BP_OK && json_array_append_new(states, ms) != 0) {
            rc = bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
        }
    }
    if (rc == BP_OK) {
        json_object_set(state, "members", e->members);
        json_object_set(state, "member_params", e->member_params);
        json_object_set_new(state, "member_states", states);
        states = NULL;
        rc = bpm_state_set_doubles(state, "weights", e->w, e->set.n, err);
    }
    json_decref(states);
    if (rc != BP_OK) {
        json_decref(state);
        return rc;
    }
    *out_state = state;
    return BP_OK;
}

static int ens_load(void *model, const json_t *state, bp_error *err)
{
    ensemble_model *e = model;
    int rc = bpm_state_check(MODEL, BPM_ENSEMBLE_STATE_VERSION, state, err);
    if (rc != BP_OK) {
        return rc;
    }
    /* Rebuild a throw-away configuration from the state, validated like create's params. */
    json_t *cfg = json_pack("{s:O, s:O}", "members", json_object_get(state, "members"),
                            "member_params", json_object_get(state, "member_params"));
    if (cfg == NULL) {
        return bp_err(err, BP_E_INVAL, MODEL ": state: members and member_params are required");
    }
    void *probe = NULL;
    rc = ens_create(NULL, cfg, &probe, err);
    json_decref(cfg);
    if (rc != BP_OK) {
        bp_err_prefix(err, "state: ");
        return rc;
    }
    ensemble_model *loaded = probe;
    size_t M = json_array_size(loaded->members);
    const json_t *states = json_object_get(state, "member_states");
    double w[MAXM];
    member_set s;
    memset(&s, 0, sizeof s);
    if (!json_is_array(states) || json_array_size(states) != M) {
        rc = bp_err(err, BP_E_INVAL, MODEL ": state.member_states: expected %zu member states", M);
        goto done;
    }
    if ((rc = bpm_state_get_doubles(MODEL, state, "weights", w, M, err)) != BP_OK) {
        goto done;
    }
    double sum = 0.0;
    for (size_t m = 0; m < M; m++) {
        if (!(w[m] >= 0.0)) {
            rc = bp_err(err, BP_E_INVAL, MODEL ": state.weights[%zu] is negative", m);
            goto done;
        }
        sum += w[m];
    }
    if (fabs(sum - 1.0) > 1e-9) {
        rc = bp_err(err, BP_E_INVAL, MODEL ": state.weights sum to %.12f, not 1", sum);
        goto done;
    }
    if ((rc = members_create(loaded, &s, err)) != BP_OK) {
        goto done;
    }
    for (size_t m = 0; m < M; m++) {
        rc = s.type[m]->load(s.inst[m], json_array_get(states, m), err);
        if (rc != BP_OK) {
            bp_err_prefix(err, MODEL ": state.member_states[%zu]: ", m);
            goto done;
        }
    }
    /* commit: configuration, members and weights from the state */
    if (e->fitted) {
        members_destroy(&e->set);
    }
    json_decref(e->members);
    json_decref(e->member_params);
    e->members = json_incref(loaded->members);
    e->member_params = json_incref(loaded->member_params);
    e->set = s;
    memcpy(e->w, w, sizeof w);
    e->fitted = true;
    memset(&s, 0, sizeof s);
done:
    members_destroy(&s);
    json_decref(loaded->members);
    json_decref(loaded->member_params);
    free(loaded);
    return rc;
}

static void ens_destroy(void *model)
{
    ensemble_model *e = model;
    if (e == NULL) {
        return;
    }
    if (e->fitted) {
        members_destroy(&e->set);
    }
    json_decref(e->members);
    json_decref(e->member_params);
    free(e);
}

const bp_model_type bpm_ensemble_type = {
    .struct_size = (uint32_t)sizeof(bp_model_type),
    .state_version = BPM_ENSEMBLE_STATE_VERSION,
    .name = MODEL,
    .description = "weighted blend of member models (Dixon-Coles, Elo, pi-ratings, logistic...) "
                   "with weights minimising walk-forward RPS",
    .params_schema =
        "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
        "\"members\":{\"type\":\"array\",\"minItems\":2,\"maxItems\":8,\"items\":{\"type\":"
        "\"string\",\"enum\":[\"dixon_coles\",\"poisson\",\"elo\",\"pi_rating\",\"logistic\","
        "\"random_forest\"]},\"default\":[\"dixon_coles\",\"elo\",\"pi_rating\",\"logistic\"]},"
        "\"member_params\":{\"type\":\"object\",\"default\":{\"dixon_coles\":{\"window_days\":"
        "1100}}},"
        "\"refit_days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":365,\"default\":7},"
        "\"burn_in_days\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":36500,\"default\":365},"
        "\"min_predictions\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000000,"
        "\"default\":100}}}",
    .create = ens_create,
    .fit = ens_fit,
    .predict = ens_predict,
    .save = ens_save,
    .load = ens_load,
    .destroy = ens_destroy,
};
