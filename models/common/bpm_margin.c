/*
 * bpm_margin.c - margin removal: closed forms and 1-D roots with GSL's Brent solver.
 */
#include "bpm_margin.h"

#include <math.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_roots.h>

static const char *const method_names[] = {"multiplicative", "additive", "power", "shin",
                                           "odds_ratio"};

const char *bpm_margin_method_name(bpm_margin_method m)
{
    if ((int)m < 0 || (size_t)m >= sizeof method_names / sizeof method_names[0]) {
        return "unknown";
    }
    return method_names[m];
}

int bpm_margin_method_parse(const char *name, bpm_margin_method *out, bp_error *err)
{
    for (size_t i = 0; name != NULL && i < sizeof method_names / sizeof method_names[0]; i++) {
        if (strcmp(name, method_names[i]) == 0) {
            *out = (bpm_margin_method)i;
            return BP_OK;
        }
    }
    return bp_err(err, BP_E_INVAL,
                  "margin method '%s' is unknown (multiplicative, additive, power, shin, "
                  "odds_ratio)",
                  name ? name : "(null)");
}

double bpm_booksum(const double *odds, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += 1.0 / odds[i];
    }
    return s;
}

/* ---- the three solved methods ------------------------------------------------------------ */

typedef struct book {
    const double *pi; /* inverse odds */
    size_t n;
    double s; /* booksum */
    bpm_margin_method method;
} book;

/* p_i(param) for the solved methods. */
static double prob_at(const book *b, size_t i, double x)
{
    double pi = b->pi[i];
    switch (b->method) {
    case BPM_MARGIN_POWER: return pow(pi, x);
    case BPM_MARGIN_SHIN:
        return (sqrt(x * x + 4.0 * (1.0 - x) * pi * pi / b->s) - x) / (2.0 * (1.0 - x));
    default: return pi / (x + pi - x * pi); /* odds ratio */
    }
}

/* sum p_i(x) - 1: strictly decreasing in x for all three methods. */
static double excess(double x, void *ud)
{
    const book *b = ud;
    double sum = 0.0;
    for (size_t i = 0; i < b->n; i++) {
        sum += prob_at(b, i, x);
    }
    return sum - 1.0;
}

/*
 * Find the root of the decreasing function excess() in (lo, hi). `grow` says whether hi may be
 * doubled when the bracket does not yet hold a sign change (power and odds-ratio parameters are
 * unbounded above; Shin's z lives in [0, 1)).
 */
static int solve(book *b, double lo, double hi, int grow, double *out_x, bp_error *err)
{
    double f_lo = excess(lo, b), f_hi = excess(hi, b);
    for (int k = 0; grow && f_hi > 0.0 && k < 60; k++) {
        lo = hi;
        f_lo = f_hi;
        hi *= 2.0;
        f_hi = excess(hi, b);
    }
    if (!(f_lo >= 0.0 && f_hi <= 0.0) || !isfinite(f_lo) || !isfinite(f_hi)) {
        return bp_err(err, BP_E_INTERNAL,
                      "%s: could not bracket the margin parameter (f(%g)=%g, f(%g)=%g)",
                      bpm_margin_method_name(b->method), lo, f_lo, hi, f_hi);
    }
    if (f_lo == 0.0) {
        *out_x = lo;
        return BP_OK;
    }
    if (f_hi == 0.0) {
        *out_x = hi;
        return BP_OK;
    }
    gsl_root_fsolver *s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
    if (s == NULL) {
        return bp_err(err, BP_E_NOMEM, "out of memory allocating a root solver");
    }
    gsl_function fn = {excess, b};
    int rc = BP_OK;
    int status = gsl_root_fsolver_set(s, &fn, lo, hi);
    if (status != GSL_SUCCESS) {
        rc = bp_err(err, BP_E_INTERNAL, "%s: root solver refused the bracket: %s",
                    bpm_margin_method_name(b->method), gsl_strerror(status));
        goto done;
    }
    status = GSL_CONTINUE;
    for (int iter = 0; iter < 200 && status == GSL_CONTINUE; iter++) {
        status = gsl_root_fsolver_iterate(s);
        if (status != GSL_SUCCESS) {
            rc = bp_err(err, BP_E_INTERNAL, "%s: root solver failed: %s",
                        bpm_margin_method_name(b->method), gsl_strerror(status));
            goto done;
        }
        status = gsl_root_test_interval(gsl_root_fsolver_x_lower(s), gsl_root_fsolver_x_upper(s),
                                        0.0, 1e-15);
    }
    if (status != GSL_SUCCESS) {
        rc = bp_err(err, BP_E_INTERNAL, "%s: root solver did not converge in 200 iterations",
                    bpm_margin_method_name(b->method));
        goto done;
    }
    *out_x = gsl_root_fsolver_root(s);
done:
    gsl_root_fsolver_free(s);
    return rc;
}

int bpm_remove_margin(bpm_margin_method method, const double *odds, size_t n, double *out_probs,
                      double *out_param, bp_error *err)
{
    double pi[BPM_MARGIN_MAX_OUTCOMES];
    if (n < 2 || n > BPM_MARGIN_MAX_OUTCOMES) {
        return bp_err(err, BP_E_INVAL, "margin removal needs 2..%d prices, got %zu",
                      BPM_MARGIN_MAX_OUTCOMES, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(odds[i]) || odds[i] <= 1.0) {
            return bp_err(err, BP_E_INVAL, "price %zu is %g: decimal odds must be finite and > 1",
                          i, odds[i]);
        }
        pi[i] = 1.0 / odds[i];
    }
    book b = {pi, n, 0.0, method};
    for (size_t i = 0; i < n; i++) {
        b.s += pi[i];
    }
    double param = 0.0;
    int rc = BP_OK;
    if (fabs(b.s - 1.0) < 1e-15) {
        /* No margin: every method is the identity (power k = 1, Shin z = 0, ratio c = 1). */
        for (size_t i = 0; i < n; i++) {
            out_probs[i] = pi[i];
        }
        param = method == BPM_MARGIN_POWER || method == BPM_MARGIN_ODDS_RATIO ? 1.0 : 0.0;
        goto done;
    }
    switch (method) {
    case BPM_MARGIN_MULTIPLICATIVE:
        for (size_t i = 0; i < n; i++) {
            out_probs[i] = pi[i] / b.s;
        }
        break;
    case BPM_MARGIN_ADDITIVE: {
        double cut = (b.s - 1.0) / (double)n;
        for (size_t i = 0; i < n; i++) {
            if (pi[i] - cut <= 0.0) {
                return bp_err(err, BP_E_INVAL,
                              "additive: price %zu (%g) is longer than the per-outcome margin "
                              "allows; the method would give it a probability <= 0",
                              i, odds[i]);
            }
            out_probs[i] = pi[i] - cut;
        }
        break;
    }
    case BPM_MARGIN_POWER:
        /* sum pi^k falls from n (k -> 0) through S (k = 1) towards 0: k > 1 iff S > 1. */
        rc =
            b.s > 1.0 ? solve(&b, 1.0, 2.0, 1, &param, err) : solve(&b, 1e-12, 1.0, 0, &param, err);
        break;
    case BPM_MARGIN_SHIN:
        if (b.s < 1.0) {
            return bp_err(err, BP_E_INVAL,
                          "shin: the book sums to %.6f < 1 (negative margin); Shin's insider "
                          "share cannot be negative",
                          b.s);
        }
        /* sum at z = 0 is sqrt(S) > 1; as z -> 1 it tends to sum(pi^2)/S < 1. */
        rc = solve(&b, 0.0, 1.0 - 1e-9, 0, &param, err);
        break;
    case BPM_MARGIN_ODDS_RATIO:
        rc =
            b.s > 1.0 ? solve(&b, 1.0, 2.0, 1, &param, err) : solve(&b, 1e-12, 1.0, 0, &param, err);
        break;
    default: return bp_err(err, BP_E_INVAL, "margin method %d is unknown", (int)method);
    }
    if (rc != BP_OK) {
        return rc;
    }
    if (method == BPM_MARGIN_POWER || method == BPM_MARGIN_SHIN ||
        method == BPM_MARGIN_ODDS_RATIO) {
        /* Evaluate at the root and renormalise the last 1e-15 so callers get an exact sum. */
        double sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            out_probs[i] = prob_at(&b, i, param);
            sum += out_probs[i];
        }
        for (size_t i = 0; i < n; i++) {
            out_probs[i] /= sum;
        }
    }
done:
    if (out_param != NULL) {
        *out_param = param;
    }
    return BP_OK;
}
