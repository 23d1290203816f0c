/*
 * bpm_goals_model.c - bp_model_type callbacks for the goal models.
 */
#include "bpm_goals_model.h"

#include <stdlib.h>
#include <string.h>

#include "bpm.h"
#include "bpm_goals.h"

typedef struct goals_model {
    bpm_goals_opts opts;
    bool warm_start;
    int state_version;
    bool fitted;
    bpm_goals_fit fit;
} goals_model;

static const char *const goals_params[] = {"xi",       "window_days", "ridge",
                                           "max_iter", "warm_start",  NULL};

int bpm_goals_model_create(const char *model, bool use_rho, int state_version, const json_t *params,
                           void **out_model, bp_error *err)
{
    goals_model *gm = calloc(1, sizeof *gm);
    if (gm == NULL) {
        return bp_err(err, BP_E_NOMEM, "%s: out of memory", model);
    }
    gm->opts.model = model;
    gm->opts.use_rho = use_rho;
    gm->state_version = state_version;
    int64_t max_iter = 0;
    int rc = bpm_params_check(model, params, goals_params, err);
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "xi", 0.0018, 0.0, 1.0, &gm->opts.xi, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "window_days", 0.0, 0.0, 36500.0,
                              &gm->opts.window_days, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_double(model, params, "ridge", 0.0, 0.0, 1e6, &gm->opts.ridge, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(model, params, "max_iter", 500, 1, 100000, &max_iter, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_bool(model, params, "warm_start", true, &gm->warm_start, err);
    }
    if (rc != BP_OK) {
        free(gm);
        return rc;
    }
    gm->opts.max_iter = (int)max_iter;
    *out_model = gm;
    return BP_OK;
}

int bpm_goals_model_fit(void *model, const bp_match_set *train, json_t **out_metrics, bp_error *err)
{
    goals_model *gm = model;
    bpm_goals_fit fit;
    const bpm_goals_fit *warm = gm->fitted && gm->warm_start ? &gm->fit : NULL;
    int rc = bpm_goals_fit_set(&gm->opts, train, warm, &fit, err);
    if (rc != BP_OK) {
        return rc;
    }
    json_t *metrics = NULL;
    if (out_metrics != NULL) {
        metrics = bpm_goals_metrics(&fit, &gm->opts);
        if (metrics == NULL) {
            bpm_goals_free(&fit);
            return bp_err(err, BP_E_NOMEM, "%s: out of memory", gm->opts.model);
        }
    }
    if (gm->fitted) {
        bpm_goals_free(&gm->fit);
    }
    gm->fit = fit;
    gm->fitted = true;
    if (out_metrics != NULL) {
        *out_metrics = metrics;
    }
    return BP_OK;
}

int bpm_goals_model_predict(void *model, int64_t home_team, int64_t away_team, int64_t kickoff_ms,
                            bp_prediction *out, bp_error *err)
{
    const goals_model *gm = model;
    (void)kickoff_ms; /* ratings are static between fits */
    if (!gm->fitted) {
        return bp_err(err, BP_E_STATE, "%s: predict before fit or load", gm->opts.model);
    }
    return bpm_goals_predict(&gm->fit, gm->opts.model, home_team, away_team, out, err);
}

int bpm_goals_model_save(void *model, json_t **out_state, bp_error *err)
{
    const goals_model *gm = model;
    if (!gm->fitted) {
        return bp_err(err, BP_E_STATE, "%s: nothing to save: the model is not fitted",
                      gm->opts.model);
    }
    json_t *state = bpm_state_new(gm->opts.model, gm->state_version);
    if (state == NULL) {
        return bp_err(err, BP_E_NOMEM, "%s: out of memory", gm->opts.model);
    }
    int rc = bpm_goals_save(&gm->fit, state, err);
    if (rc != BP_OK) {
        json_decref(state);
        return rc;
    }
    *out_state = state;
    return BP_OK;
}

int bpm_goals_model_load(void *model, const json_t *state, bp_error *err)
{
    goals_model *gm = model;
    int rc = bpm_state_check(gm->opts.model, gm->state_version, state, err);
    if (rc != BP_OK) {
        return rc;
    }
    bpm_goals_fit fit;
    rc = bpm_goals_load(gm->opts.model, state, &fit, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!gm->opts.use_rho && fit.rho != 0.0) {
        bpm_goals_free(&fit);
        return bp_err(err, BP_E_INVAL, "%s: state.rho must be 0 for this model", gm->opts.model);
    }
    if (gm->fitted) {
        bpm_goals_free(&gm->fit);
    }
    gm->fit = fit;
    gm->fitted = true;
    return BP_OK;
}

void bpm_goals_model_destroy(void *model)
{
    goals_model *gm = model;
    if (gm == NULL) {
        return;
    }
    if (gm->fitted) {
        bpm_goals_free(&gm->fit);
    }
    free(gm);
}

const struct bpm_goals_fit *bpm_goals_model_current(const void *model)
{
    const goals_model *gm = model;
    return gm->fitted ? &gm->fit : NULL;
}
