/*
 * bpm_ologit.h - the ordered logit that turns a rating difference into 1X2 probabilities.
 *
 * With F the logistic cdf and x the covariate (e.g. an Elo difference, home minus away):
 *     P(away)          = F(c1 - beta x)
 *     P(away or draw)  = F(c2 - beta x),  c1 < c2
 *     P(home)          = 1 - F(c2 - beta x)
 * fitted by maximum likelihood. To keep c1 < c2 without a constraint we optimise
 * (beta, c1, log(c2 - c1)); the fit is a 3-parameter convex-in-practice problem solved with
 * GSL's BFGS2 and the analytic gradient, started from the class frequencies (beta = 0).
 *
 * Pure, thread-safe.
 */
#ifndef BPM_OLOGIT_H
#define BPM_OLOGIT_H

#include <stddef.h>

#include <jansson.h>

#include "betpipe/status.h"

typedef struct bpm_ologit {
    double beta;
    double c1, c2;
} bpm_ologit;

/*
 * Fit on n observations: covariate x[k] and outcome y[k] (BPM_HOME/DRAW/AWAY). Needs at least
 * one observation of each outcome (otherwise the cut points run to infinity: BP_E_INVAL naming
 * the missing outcome), finite covariates, and converges to a gradient norm below 1e-8 * n
 * (BP_E_LIMIT when it does not). *out_loglik (may be NULL) gets the maximised log-likelihood.
 */
int bpm_ologit_fit(const double *x, const int *y, size_t n, bpm_ologit *out, double *out_loglik,
                   bp_error *err);

/* Probabilities {home, draw, away} at covariate x. */
void bpm_ologit_predict(const bpm_ologit *m, double x, double out_p[3]);

/* Store the coefficients in state["link"] = {"beta", "c1", "c2"}; read them back (c1 < c2 and
 * finiteness are checked, the message names `model`). */
int bpm_ologit_save(const bpm_ologit *m, json_t *state, bp_error *err);
int bpm_ologit_load(const char *model, const json_t *state, bpm_ologit *out, bp_error *err);

#endif
