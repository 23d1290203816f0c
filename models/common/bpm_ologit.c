/*
 * bpm_ologit.c - ordered logit fit and prediction.
 *
 * The covariate is standardised before fitting (Elo differences are in the hundreds, a pi-rating
 * goal difference is around 1), so the optimiser always sees a problem of unit scale; the
 * coefficients are mapped back afterwards.
 */
#include "bpm_ologit.h"

#include <math.h>
#include <stdlib.h>

#include "bpm.h"
#include "bpm_opt.h"

static double logistic(double a)
{
    return a >= 0 ? 1.0 / (1.0 + exp(-a)) : exp(a) / (1.0 + exp(a));
}

typedef struct ol_data {
    const double *x; /* standardised */
    const int *y;
    size_t n;
} ol_data;

/* theta = (beta, c1, log(c2 - c1)); f = -loglik / n. */
static double ol_fdf(const double *t, double *g, void *ud)
{
    const ol_data *d = ud;
    double beta = t[0], c1 = t[1], gap = exp(t[2]), c2 = c1 + gap;
    double f = 0.0, gb = 0.0, gc = 0.0, gd = 0.0;
    for (size_t k = 0; k < d->n; k++) {
        double a1 = c1 - beta * d->x[k], a2 = c2 - beta * d->x[k];
        double F1 = logistic(a1), F2 = logistic(a2);
        double da1 = 0.0, da2 = 0.0;
        switch (d->y[k]) {
        case BPM_AWAY:
            f -= log(F1);
            da1 = 1.0 - F1;
            break;
        case BPM_HOME:
            f -= log(1.0 - F2);
            da2 = -F2;
            break;
        default: {
            double pd = F2 - F1;
            if (!(pd > 0.0)) {
                return INFINITY;
            }
            f -= log(pd);
            da1 = -F1 * (1.0 - F1) / pd;
            da2 = F2 * (1.0 - F2) / pd;
            break;
        }
        }
        gb -= -d->x[k] * (da1 + da2);
        gc -= da1 + da2;
        gd -= da2 * gap;
    }
    double inv = 1.0 / (double)d->n;
    if (g != NULL) {
        g[0] = gb * inv;
        g[1] = gc * inv;
        g[2] = gd * inv;
    }
    return f * inv;
}

int bpm_ologit_fit(const double *x, const int *y, size_t n, bpm_ologit *out, double *out_loglik,
                   bp_error *err)
{
    size_t count[3] = {0, 0, 0};
    double mean = 0.0, var = 0.0;
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(x[k])) {
            return bp_err(err, BP_E_INVAL, "ordered logit: covariate %zu is not finite", k);
        }
        if (y[k] < 0 || y[k] > 2) {
            return bp_err(err, BP_E_INVAL, "ordered logit: outcome %zu is %d, not 0..2", k, y[k]);
        }
        count[y[k]]++;
        mean += x[k];
    }
    static const char *const names[3] = {"home win", "draw", "away win"};
    for (int c = 0; c < 3; c++) {
        if (count[c] == 0) {
            return bp_err(err, BP_E_INVAL,
                          "ordered logit: the %zu training matches contain no %s; cannot fit "
                          "the outcome probabilities",
                          n, names[c]);
        }
    }
    mean /= (double)n;
    for (size_t k = 0; k < n; k++) {
        var += (x[k] - mean) * (x[k] - mean);
    }
    double sd = sqrt(var / (double)n);
    if (!(sd > 0.0)) {
        sd = 1.0; /* a constant covariate: beta stays ~0, the cut points carry the base rates */
    }
    double *xs = malloc(n * sizeof *xs);
    if (xs == NULL) {
        return bp_err(err, BP_E_NOMEM, "ordered logit: out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        xs[k] = (x[k] - mean) / sd;
    }
    double pa = (double)count[BPM_AWAY] / (double)n;
    double pad = (double)(count[BPM_AWAY] + count[BPM_DRAW]) / (double)n;
    double c1 = log(pa / (1.0 - pa)), c2 = log(pad / (1.0 - pad));
    double t[3] = {0.0, c1, log(c2 - c1)};
    ol_data d = {xs, y, n};
    bpm_min_opts opts = {200, 1e-9, 1e-6, 0.1, 0.1};
    bpm_min_info info;
    int rc = bpm_minimize(3, t, ol_fdf, &d, &opts, &info, "ordered logit", err);
    free(xs);
    if (rc != BP_OK) {
        return rc;
    }
    /* Undo the standardisation: beta' (x - m)/sd = (beta'/sd) x - beta' m / sd. */
    double beta = t[0] / sd;
    double shift = t[0] * mean / sd;
    out->beta = beta;
    out->c1 = t[1] + shift;
    out->c2 = t[1] + exp(t[2]) + shift;
    if (out_loglik != NULL) {
        *out_loglik = -info.f * (double)n;
    }
    return BP_OK;
}

void bpm_ologit_predict(const bpm_ologit *m, double x, double out_p[3])
{
    double F1 = logistic(m->c1 - m->beta * x);
    double F2 = logistic(m->c2 - m->beta * x);
    out_p[BPM_AWAY] = F1;
    out_p[BPM_DRAW] = F2 - F1;
    out_p[BPM_HOME] = 1.0 - F2;
}

int bpm_ologit_save(const bpm_ologit *m, json_t *state, bp_error *err)
{
    if (!isfinite(m->beta) || !isfinite(m->c1) || !isfinite(m->c2)) {
        return bp_err(err, BP_E_INVAL, "ordered logit: cannot save non-finite coefficients");
    }
    json_t *link = json_pack("{s:f, s:f, s:f}", "beta", m->beta, "c1", m->c1, "c2", m->c2);
    if (link == NULL || json_object_set_new(state, "link", link) != 0) {
        return bp_err(err, BP_E_NOMEM, "out of memory saving the ordered logit");
    }
    return BP_OK;
}

int bpm_ologit_load(const char *model, const json_t *state, bpm_ologit *out, bp_error *err)
{
    const json_t *link = json_object_get(state, "link");
    if (!json_is_object(link)) {
        return bp_err(err, BP_E_INVAL, "%s: state.link: expected an object {beta, c1, c2}", model);
    }
    bpm_ologit m;
    int rc = bpm_state_get_double(model, link, "beta", &m.beta, err);
    if (rc == BP_OK) {
        rc = bpm_state_get_double(model, link, "c1", &m.c1, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_get_double(model, link, "c2", &m.c2, err);
    }
    if (rc != BP_OK) {
        bp_err_prefix(err, "state.link: ");
        return rc;
    }
    if (!(m.c1 < m.c2)) {
        return bp_err(err, BP_E_INVAL, "%s: state.link: c1 (%g) must be below c2 (%g)", model, m.c1,
                      m.c2);
    }
    *out = m;
    return BP_OK;
}
