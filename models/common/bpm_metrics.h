/*
 * bpm_metrics.h - scoring 1X2 forecasts: RPS, log loss, Brier, accuracy, calibration.
 *
 * Definitions (outcomes ordered home, draw, away; o = the one-hot observed outcome):
 *   RPS       = 1/2 [ (p_H - o_H)^2 + (p_H + p_D - o_H - o_D)^2 ]    (Epstein 1969; r = 3)
 *   log loss  = -ln p_observed, with p floored at 1e-15 so a confident miss costs ~34.5, not inf
 *   Brier     = sum_i (p_i - o_i)^2                                  (multiclass, range 0..2)
 *   accuracy  = 1 when the observed outcome has the largest probability (ties go to the
 *               earlier outcome in H, D, A order), else 0
 * Lower is better for all but accuracy.
 *
 * bpm_scores accumulates these over many forecasts, plus a calibration table: each of the three
 * probabilities of a forecast is one binary forecast ("home wins with p_H") dropped into one of
 * `bins` equal-width bins on [0, 1]; per bin we keep the count, the mean forecast and the
 * observed frequency. A calibrated model has mean forecast ~ observed frequency in every bin.
 *
 * Pure functions are thread-safe; a bpm_scores belongs to one thread at a time.
 */
#ifndef BPM_METRICS_H
#define BPM_METRICS_H

#include <stddef.h>

#include <jansson.h>

#include "betpipe/status.h"

/* p[3] = {home, draw, away}; outcome = BPM_HOME / BPM_DRAW / BPM_AWAY. */
double bpm_rps(const double p[3], int outcome);
double bpm_log_loss(const double p[3], int outcome);
double bpm_brier(const double p[3], int outcome);
int bpm_hit(const double p[3], int outcome);

#define BPM_CALIB_MAX_BINS 100

typedef struct bpm_scores {
    size_t n;
    double rps, log_loss, brier, hits; /* sums */
    int bins;
    size_t bin_count[BPM_CALIB_MAX_BINS];
    double bin_forecast[BPM_CALIB_MAX_BINS]; /* sum of forecasts */
    double bin_observed[BPM_CALIB_MAX_BINS]; /* sum of outcomes (0/1) */
} bpm_scores;

/* Start an empty accumulator with `bins` calibration bins (1..BPM_CALIB_MAX_BINS). */
int bpm_scores_init(bpm_scores *s, int bins, bp_error *err);

/* Add one forecast. BP_E_INVAL when p is not three finite probabilities in [0, 1] summing to 1
 * within 1e-6, or the outcome is not 0..2. */
int bpm_scores_add(bpm_scores *s, const double p[3], int outcome, bp_error *err);

/* Means (NAN when n == 0). */
double bpm_scores_rps(const bpm_scores *s);
double bpm_scores_log_loss(const bpm_scores *s);
double bpm_scores_brier(const bpm_scores *s);
double bpm_scores_accuracy(const bpm_scores *s);

/*
 * The summary as a new JSON object: {"n", "rps", "log_loss", "brier", "accuracy",
 * "calibration": [{"lo", "hi", "n", "mean_forecast", "observed"} ...]} (empty bins left out).
 * NULL when out of memory.
 */
json_t *bpm_scores_json(const bpm_scores *s);

#endif
