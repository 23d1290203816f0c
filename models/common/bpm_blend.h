/*
 * bpm_blend.h - the weights of a blend of 1X2 forecasts that minimise the mean RPS.
 *
 * The blend is p = sum_m w_m p_m with w on the simplex (w_m >= 0, sum 1), so it is always a
 * probability vector. Used by the ensemble model (on its own walk-forward forecasts) and by the
 * walk-forward evaluation (bpm_walkforward.h) to blend the models it evaluates.
 *
 * Pure function, thread-safe; GSL's error handler must be off.
 */
#ifndef BPM_BLEND_H
#define BPM_BLEND_H

#include <stddef.h>

#include "betpipe/status.h"

#define BPM_BLEND_MAX_MEMBERS 8

/*
 * The simplex weights minimising the mean RPS of the blend of `members` forecasts on `rows`
 * outcomes: p[(r * members + m) * 3 + k] is member m's probability of outcome k for row r,
 * y[r] the outcome. Solved over softmax coordinates with GSL's BFGS2 and the analytic gradient
 * (the RPS is a convex quadratic in the weights). On BP_OK out_w[0..members) sum to 1 and
 * *out_rps (may be NULL) is the blend's mean RPS. `what` names the caller in messages.
 * BP_E_INVAL for no rows or bad sizes.
 */
int bpm_blend_weights(const double *p, const int *y, size_t rows, size_t members, double *out_w,
                      double *out_rps, const char *what, bp_error *err);

#endif
