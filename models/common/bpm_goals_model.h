/*
 * bpm_goals_model.h - the bp_model_type callbacks shared by the poisson and dixon_coles models.
 *
 * The two models differ only in their name, state version and whether rho is fitted; the
 * callbacks below implement everything else once. A model's .c file writes a create() that calls
 * bpm_goals_model_create() with its identity, and points the other callbacks here.
 *
 * Parameters (validated in create; the schema string each model publishes says the same):
 *   xi           time decay per day, default 0.0018, 0..1 (0 = every match weighs the same)
 *   window_days  use only matches at most this many days before as_of; 0 (default) = all
 *   ridge        L2 shrinkage of attack/defence towards the average team, default 0 (pure MLE)
 *   max_iter     optimiser iteration limit, default 500
 *   warm_start   start each refit from the previous fit's ratings, default true
 *
 * An instance holds at most one fitted state. fit() replaces it only on success, so a failed fit
 * leaves the previous model in place. Not thread-safe for fit/load against other calls on the
 * same instance; predict() calls may run concurrently with each other.
 */
#ifndef BPM_GOALS_MODEL_H
#define BPM_GOALS_MODEL_H

#include <stdbool.h>

#include <jansson.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"

/* The params schema both goal models publish. */
#define BPM_GOALS_PARAMS_SCHEMA                                                                    \
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"                         \
    "\"xi\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1,\"default\":0.0018},"                 \
    "\"window_days\":{\"type\":\"number\",\"minimum\":0,\"maximum\":36500,\"default\":0},"         \
    "\"ridge\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1000000,\"default\":0},"             \
    "\"max_iter\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000,\"default\":500},"        \
    "\"warm_start\":{\"type\":\"boolean\",\"default\":true}}}"

/* Create an instance of goal model `model` (static string) with the given state version. */
int bpm_goals_model_create(const char *model, bool use_rho, int state_version, const json_t *params,
                           void **out_model, bp_error *err);

int bpm_goals_model_fit(void *model, const bp_match_set *train, json_t **out_metrics,
                        bp_error *err);
int bpm_goals_model_predict(void *model, int64_t home_team, int64_t away_team, int64_t kickoff_ms,
                            bp_prediction *out, bp_error *err);
int bpm_goals_model_save(void *model, json_t **out_state, bp_error *err);
int bpm_goals_model_load(void *model, const json_t *state, bp_error *err);
void bpm_goals_model_destroy(void *model);

/* The current fit of an instance (NULL before the first successful fit or load). Borrowed. */
struct bpm_goals_fit;
const struct bpm_goals_fit *bpm_goals_model_current(const void *model);

#endif
