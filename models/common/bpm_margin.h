/*
 * bpm_margin.h - fair probabilities from bookmaker prices (margin removal).
 *
 * With inverse odds pi_i = 1 / o_i and booksum S = sum pi_i (the overround is S - 1), each
 * method maps pi to probabilities p that sum to 1:
 *
 *   multiplicative  p_i = pi_i / S                                 (basic normalisation)
 *   additive        p_i = pi_i - (S - 1) / n                       (same margin off each)
 *   power           p_i = pi_i^k, k solved so sum p = 1            (k > 1 when S > 1)
 *   shin            p_i = (sqrt(z^2 + 4 (1 - z) pi_i^2 / S) - z) / (2 (1 - z)),
 *                   z in [0, 1) solved so sum p = 1                (Jullien & Salanie's form of
 *                                                                    Shin's insider model)
 *   odds_ratio      p_i = pi_i / (c + pi_i - c pi_i), c solved     (Cheung; c > 1 when S > 1)
 *
 * The solved parameter (k, z or c; 0 for the closed forms) is returned too: it says how much
 * correction the method applied. Each of power, Shin and odds-ratio sums to a function that is
 * strictly monotone in its parameter, so we bracket the root and polish it with GSL's Brent
 * solver to ~1e-15; every GSL status is checked.
 *
 * Books without a margin (S == 1) come back unchanged. A negative margin (S < 1, an arbitrage
 * across books) is handled by multiplicative, additive, power and odds-ratio; Shin's model has
 * no insider share below zero and refuses it. Additive refuses a book where it would produce a
 * negative probability (a longshot priced shorter than the per-outcome margin).
 *
 * Pure functions, thread-safe. GSL's error handler must be off (the core does that).
 */
#ifndef BPM_MARGIN_H
#define BPM_MARGIN_H

#include <stddef.h>

#include "betpipe/status.h"

typedef enum bpm_margin_method {
    BPM_MARGIN_MULTIPLICATIVE = 0,
    BPM_MARGIN_ADDITIVE,
    BPM_MARGIN_POWER,
    BPM_MARGIN_SHIN,
    BPM_MARGIN_ODDS_RATIO,
} bpm_margin_method;

#define BPM_MARGIN_MAX_OUTCOMES 64

/* "multiplicative", "additive", "power", "shin", "odds_ratio". */
const char *bpm_margin_method_name(bpm_margin_method m);
/* Parse one of the names above; BP_E_INVAL naming the input otherwise. */
int bpm_margin_method_parse(const char *name, bpm_margin_method *out, bp_error *err);

/*
 * Remove the margin from n decimal prices (2 <= n <= BPM_MARGIN_MAX_OUTCOMES, each finite and
 * > 1). On BP_OK out_probs[0..n) sum to 1 (within 1e-12) and *out_param (may be NULL) holds the
 * solved parameter (power k, Shin z, odds-ratio c; 0 for multiplicative and additive).
 * BP_E_INVAL names the bad price or why the method cannot apply; BP_E_INTERNAL if the root
 * finder fails (which a valid book cannot trigger).
 */
int bpm_remove_margin(bpm_margin_method method, const double *odds, size_t n, double *out_probs,
                      double *out_param, bp_error *err);

/* The booksum sum(1 / o_i) of n prices (no validation). */
double bpm_booksum(const double *odds, size_t n);

#endif
