/*
 * bpm_metrics.c - scoring rules and the calibration table.
 */
#include "bpm_metrics.h"

#include <math.h>
#include <string.h>

#define LOG_FLOOR 1e-15

double bpm_rps(const double p[3], int outcome)
{
    double o0 = outcome == 0, o1 = outcome == 1;
    double c1 = p[0] - o0;
    double c2 = p[0] + p[1] - o0 - o1;
    return 0.5 * (c1 * c1 + c2 * c2);
}

double bpm_log_loss(const double p[3], int outcome)
{
    double q = p[outcome];
    return -log(q > LOG_FLOOR ? q : LOG_FLOOR);
}

double bpm_brier(const double p[3], int outcome)
{
    double s = 0.0;
    for (int k = 0; k < 3; k++) {
        double d = p[k] - (k == outcome);
        s += d * d;
    }
    return s;
}

int bpm_hit(const double p[3], int outcome)
{
    int best = 0;
    for (int k = 1; k < 3; k++) {
        if (p[k] > p[best]) {
            best = k;
        }
    }
    return best == outcome;
}

int bpm_scores_init(bpm_scores *s, int bins, bp_error *err)
{
    if (bins < 1 || bins > BPM_CALIB_MAX_BINS) {
        return bp_err(err, BP_E_INVAL, "calibration bins %d outside 1..%d", bins,
                      BPM_CALIB_MAX_BINS);
    }
    memset(s, 0, sizeof *s);
    s->bins = bins;
    return BP_OK;
}

int bpm_scores_add(bpm_scores *s, const double p[3], int outcome, bp_error *err)
{
    if (outcome < 0 || outcome > 2) {
        return bp_err(err, BP_E_INVAL, "outcome %d is not home/draw/away (0..2)", outcome);
    }
    double sum = 0.0;
    for (int k = 0; k < 3; k++) {
        if (!isfinite(p[k]) || p[k] < 0.0 || p[k] > 1.0) {
            return bp_err(err, BP_E_INVAL, "forecast %g/%g/%g is not three probabilities", p[0],
                          p[1], p[2]);
        }
        sum += p[k];
    }
    if (fabs(sum - 1.0) > 1e-6) {
        return bp_err(err, BP_E_INVAL, "forecast %g/%g/%g sums to %.9f, not 1", p[0], p[1], p[2],
                      sum);
    }
    s->n++;
    s->rps += bpm_rps(p, outcome);
    s->log_loss += bpm_log_loss(p, outcome);
    s->brier += bpm_brier(p, outcome);
    s->hits += bpm_hit(p, outcome);
    for (int k = 0; k < 3; k++) {
        int b = (int)(p[k] * s->bins);
        if (b >= s->bins) {
            b = s->bins - 1;
        }
        s->bin_count[b]++;
        s->bin_forecast[b] += p[k];
        s->bin_observed[b] += (k == outcome);
    }
    return BP_OK;
}

static double mean(double sum, size_t n)
{
    return n ? sum / (double)n : (double)NAN;
}

double bpm_scores_rps(const bpm_scores *s)
{
    return mean(s->rps, s->n);
}

double bpm_scores_log_loss(const bpm_scores *s)
{
    return mean(s->log_loss, s->n);
}

double bpm_scores_brier(const bpm_scores *s)
{
    return mean(s->brier, s->n);
}

double bpm_scores_accuracy(const bpm_scores *s)
{
    return mean(s->hits, s->n);
}

json_t *bpm_scores_json(const bpm_scores *s)
{
    json_t *calib = json_array();
    if (calib == NULL) {
        return NULL;
    }
    for (int b = 0; b < s->bins; b++) {
        if (s->bin_count[b] == 0) {
            continue;
        }
        double n = (double)s->bin_count[b];
        json_t *row =
            json_pack("{s:f, s:f, s:I, s:f, s:f}", "lo", (double)b / s->bins, "hi",
                      (double)(b + 1) / s->bins, "n", (json_int_t)s->bin_count[b], "mean_forecast",
                      s->bin_forecast[b] / n, "observed", s->bin_observed[b] / n);
        if (row == NULL || json_array_append_new(calib, row) != 0) {
            json_decref(calib);
            return NULL;
        }
    }
    if (s->n == 0) {
        return json_pack("{s:I, s:o}", "n", (json_int_t)0, "calibration", calib);
    }
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:o}", "n", (json_int_t)s->n, "rps",
                     bpm_scores_rps(s), "log_loss", bpm_scores_log_loss(s), "brier",
                     bpm_scores_brier(s), "accuracy", bpm_scores_accuracy(s), "calibration", calib);
}
