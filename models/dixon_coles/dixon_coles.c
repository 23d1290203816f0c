/*
 * dixon_coles.c - the Dixon-Coles model descriptor over the shared goal engine.
 */
#include "dixon_coles.h"

#include "bpm_goals_model.h"

static int dc_create(void *plugin_state, const json_t *params, void **out_model, bp_error *err)
{
    (void)plugin_state;
    return bpm_goals_model_create("dixon_coles", true, BPM_DIXON_COLES_STATE_VERSION, params,
                                  out_model, err);
}

const bp_model_type bpm_dixon_coles_type = {
    .struct_size = (uint32_t)sizeof(bp_model_type),
    .state_version = BPM_DIXON_COLES_STATE_VERSION,
    .name = "dixon_coles",
    .description = "Dixon-Coles: Poisson goals with the low-score correction rho, attack/defence/"
                   "home ratings, time decay xi per day, exact maximum likelihood (GSL BFGS2)",
    .params_schema = BPM_GOALS_PARAMS_SCHEMA,
    .create = dc_create,
    .fit = bpm_goals_model_fit,
    .predict = bpm_goals_model_predict,
    .save = bpm_goals_model_save,
    .load = bpm_goals_model_load,
    .destroy = bpm_goals_model_destroy,
};
