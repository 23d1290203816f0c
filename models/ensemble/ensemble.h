/*
 * ensemble.h - a weighted blend of member models whose weights minimise walk-forward RPS.
 *
 * The blend is p = sum_m w_m p_m with w on the simplex (w_m >= 0, sum 1), so it is always a
 * probability vector. The weights are chosen on out-of-sample forecasts only: fit() replays the
 * training history walk-forward - starting burn_in_days after the first match, refitting every
 * member every refit_days on the matches of earlier days and predicting the next days - and
 * minimises the mean RPS of the blended forecasts (the members' own in-sample fits would reward
 * overfitting). Then every member is fitted on the whole training set for prediction.
 *
 * Members are computed inside the plugin: the member models' static libraries are linked in
 * (no plugin calls another). Parameters:
 *   members          model names, default ["dixon_coles", "elo", "pi_rating", "logistic"]
 *                    (any of dixon_coles, poisson, elo, pi_rating, logistic, random_forest)
 *   member_params    {"<name>": {params}} passed to each member's create (default:
 *                    dixon_coles gets {"window_days": 1100})
 *   refit_days       7      burn_in_days   365      min_predictions   100
 *
 * The state saves each member's state (and params) with the weights; a failed fit leaves the
 * previous members and weights in place.
 */
#ifndef BPM_ENSEMBLE_H
#define BPM_ENSEMBLE_H

#include <stddef.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"

#define BPM_ENSEMBLE_STATE_VERSION 1
#define BPM_ENSEMBLE_MAX_MEMBERS   8

/*
 * The simplex weights minimising the mean RPS of the blend of `members` forecasts on `rows`
 * outcomes: p[(r * members + m) * 3 + k] is member m's probability of outcome k for row r,
 * y[r] the outcome. Solved over softmax coordinates with GSL's BFGS2 and the analytic gradient
 * (the RPS is a convex quadratic in the weights). On BP_OK out_w[0..members) sum to 1 and
 * *out_rps (may be NULL) is the blend's mean RPS. BP_E_INVAL for no rows or bad sizes.
 */
int bpm_ensemble_weights(const double *p, const int *y, size_t rows, size_t members, double *out_w,
                         double *out_rps, bp_error *err);

/* The member model descriptors the ensemble can use, by name (NULL when unknown). */
const bp_model_type *bpm_ensemble_member_type(const char *name);

extern const bp_model_type bpm_ensemble_type;

#endif
