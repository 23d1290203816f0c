/*
 * bpm_blend.c - blend weights by mean RPS (see bpm_blend.h).
 */
#include "bpm_blend.h"

#include <math.h>

#include "bpm.h"
#include "bpm_opt.h"

#define MAXM BPM_BLEND_MAX_MEMBERS

typedef struct blend_data {
    const double *p;
    const int *y;
    size_t rows, members;
} blend_data;

static void softmax_weights(const double *u, size_t m, double *w)
{
    double mx = u[0];
    for (size_t i = 1; i < m; i++) {
        mx = fmax(mx, u[i]);
    }
    double s = 0.0;
    for (size_t i = 0; i < m; i++) {
        w[i] = exp(u[i] - mx);
        s += w[i];
    }
    for (size_t i = 0; i < m; i++) {
        w[i] /= s;
    }
}

/* Mean RPS of the blend as a function of the softmax coordinates u. */
static double blend_fdf(const double *u, double *g, void *ud)
{
    const blend_data *d = ud;
    size_t M = d->members;
    double w[MAXM], gw[MAXM] = {0};
    softmax_weights(u, M, w);
    double f = 0.0;
    for (size_t r = 0; r < d->rows; r++) {
        const double *pr = d->p + r * M * 3;
        double bh = 0.0, bd = 0.0;
        for (size_t m = 0; m < M; m++) {
            bh += w[m] * pr[m * 3];
            bd += w[m] * pr[m * 3 + 1];
        }
        double oh = d->y[r] == BPM_HOME, od = d->y[r] == BPM_DRAW;
        double c1 = bh - oh, c2 = bh + bd - oh - od;
        f += 0.5 * (c1 * c1 + c2 * c2);
        if (g != NULL) {
            for (size_t m = 0; m < M; m++) {
                gw[m] += c1 * pr[m * 3] + c2 * (pr[m * 3] + pr[m * 3 + 1]);
            }
        }
    }
    double inv = 1.0 / (double)d->rows;
    if (g != NULL) {
        double mean = 0.0;
        for (size_t m = 0; m < M; m++) {
            mean += w[m] * gw[m];
        }
        for (size_t m = 0; m < M; m++) {
            g[m] = w[m] * (gw[m] - mean) * inv;
        }
    }
    return f * inv;
}

int bpm_blend_weights(const double *p, const int *y, size_t rows, size_t members, double *out_w,
                      double *out_rps, const char *what, bp_error *err)
{
    if (rows == 0 || members == 0 || members > MAXM) {
        return bp_err(err, BP_E_INVAL,
                      "%s: weights need at least one forecast and 1..%d members (got %zu rows, "
                      "%zu members)",
                      what, MAXM, rows, members);
    }
    double u[MAXM] = {0};
    blend_data d = {p, y, rows, members};
    /* A weight that should be 0 sends its coordinate towards -infinity, where the gradient
     * vanishes slowly and BFGS2 eventually stalls. A gradient below 1e-5 (in softmax
     * coordinates, on the mean RPS) leaves at most ~1e-10 of RPS on the table: accept it. */
    bpm_min_opts o = {500, 1e-10, 1e-5, 0.5, 0.1};
    bpm_min_info info;
    int rc = bpm_minimize(members, u, blend_fdf, &d, &o, &info, what, err);
    if (rc == BP_E_LIMIT && info.grad_norm < 1e-5) {
        rc = BP_OK; /* the iteration cap with a negligible gradient: as good as converged */
    }
    if (rc != BP_OK) {
        return rc;
    }
    softmax_weights(u, members, out_w);
    if (out_rps != NULL) {
        *out_rps = blend_fdf(u, NULL, &d);
    }
    return BP_OK;
}
