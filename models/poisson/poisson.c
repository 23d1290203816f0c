/*
 * poisson.c - the Maher independent-Poisson model descriptor over the shared goal engine.
 */
#include "poisson.h"

#include "bpm_goals_model.h"

static int poisson_create(void *plugin_state, const json_t *params, void **out_model, bp_error *err)
{
    (void)plugin_state;
    return bpm_goals_model_create("poisson", false, BPM_POISSON_STATE_VERSION, params, out_model,
                                  err);
}

const bp_model_type bpm_poisson_type = {
    .struct_size = (uint32_t)sizeof(bp_model_type),
    .state_version = BPM_POISSON_STATE_VERSION,
    .name = "poisson",
    .description = "Maher independent Poisson: attack/defence/home ratings, time decay xi per "
                   "day, exact maximum likelihood (GSL BFGS2)",
    .params_schema = BPM_GOALS_PARAMS_SCHEMA,
    .create = poisson_create,
    .fit = bpm_goals_model_fit,
    .predict = bpm_goals_model_predict,
    .save = bpm_goals_model_save,
    .load = bpm_goals_model_load,
    .destroy = bpm_goals_model_destroy,
};
