/*
 * bpm_opt.c - the BFGS2 wrapper.
 */
#include "bpm_opt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_multimin.h>

typedef struct adapter {
    bpm_fdf_fn fn;
    void *ud;
} adapter;

/* GSL vectors from gsl_vector_alloc have stride 1, so ->data is the plain array. */
static double gsl_f(const gsl_vector *x, void *p)
{
    const adapter *a = p;
    return a->fn(x->data, NULL, a->ud);
}

static void gsl_df(const gsl_vector *x, void *p, gsl_vector *g)
{
    const adapter *a = p;
    (void)a->fn(x->data, g->data, a->ud);
}

static void gsl_fdf(const gsl_vector *x, void *p, double *f, gsl_vector *g)
{
    const adapter *a = p;
    *f = a->fn(x->data, g->data, a->ud);
}

int bpm_minimize(size_t n, double *x, bpm_fdf_fn fn, void *ud, const bpm_min_opts *opts,
                 bpm_min_info *out_info, const char *what, bp_error *err)
{
    int rc = BP_OK;
    adapter a = {fn, ud};
    gsl_multimin_function_fdf fdf = {gsl_f, gsl_df, gsl_fdf, n, &a};
    gsl_multimin_fdfminimizer *s = NULL;
    gsl_vector *x0 = gsl_vector_alloc(n);
    bpm_min_info info = {0, NAN, NAN, 0};

    if (x0 == NULL) {
        return bp_err(err, BP_E_NOMEM, "%s: out of memory", what);
    }
    for (size_t i = 0; i < n; i++) {
        x0->data[i] = x[i];
    }
    double *g0 = malloc(n * sizeof *g0);
    if (g0 == NULL) {
        rc = bp_err(err, BP_E_NOMEM, "%s: out of memory", what);
        goto done;
    }
    double f0 = fn(x, g0, ud);
    double step = opts->step;
    if (step <= 0.0) {
        double g2 = 0.0;
        for (size_t i = 0; i < n; i++) {
            g2 += g0[i] * g0[i];
        }
        step = fmin(1.0, fmax(1e-4, sqrt(g2)));
    }
    free(g0);
    if (!isfinite(f0)) {
        rc = bp_err(err, BP_E_INVAL, "%s: the objective is not finite at the starting point", what);
        goto done;
    }
    s = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, n);
    if (s == NULL) {
        rc = bp_err(err, BP_E_NOMEM, "%s: out of memory allocating the minimiser", what);
        goto done;
    }
    int status = gsl_multimin_fdfminimizer_set(s, &fdf, x0, step, opts->line_tol);
    if (status != GSL_SUCCESS) {
        rc = bp_err(err, BP_E_INTERNAL, "%s: minimiser set-up failed: %s", what,
                    gsl_strerror(status));
        goto done;
    }
    info.grad_norm = gsl_blas_dnrm2(s->gradient);
    info.f = s->f;
    while (info.grad_norm >= opts->grad_tol) {
        if (info.iterations >= opts->max_iter) {
            rc = bp_err(err, BP_E_LIMIT,
                        "%s: fit did not converge after %d iterations (gradient norm %.3g)", what,
                        info.iterations, info.grad_norm);
            for (size_t i = 0; i < n; i++) {
                x[i] = s->x->data[i];
            }
            goto done;
        }
        status = gsl_multimin_fdfminimizer_iterate(s);
        info.iterations++;
        if (!isfinite(s->f)) {
            rc = bp_err(err, BP_E_LIMIT, "%s: the objective became non-finite at iteration %d",
                        what, info.iterations);
            goto done;
        }
        info.f = s->f;
        info.grad_norm = gsl_blas_dnrm2(s->gradient);
        if (status == GSL_ENOPROG) {
            if (info.grad_norm < opts->grad_accept) {
                info.stalled = 1;
                break;
            }
            rc = bp_err(err, BP_E_LIMIT,
                        "%s: fit stopped making progress at iteration %d with gradient norm "
                        "%.3g (the optimum may not exist for this data)",
                        what, info.iterations, info.grad_norm);
            for (size_t i = 0; i < n; i++) {
                x[i] = s->x->data[i];
            }
            goto done;
        }
        if (status != GSL_SUCCESS) {
            rc = bp_err(err, BP_E_INTERNAL, "%s: minimiser failed at iteration %d: %s", what,
                        info.iterations, gsl_strerror(status));
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        x[i] = s->x->data[i];
    }
done:
    if (s != NULL) {
        gsl_multimin_fdfminimizer_free(s);
    }
    gsl_vector_free(x0);
    if (out_info != NULL) {
        *out_info = info;
    }
    return rc;
}

/* ---- preconditioned coordinates ------------------------------------------------------------ */

typedef struct precond {
    size_t n;
    const double *x0;
    double *L;     /* lower-triangular factor, row-major */
    double *theta; /* scratch: original coordinates */
    double *g;     /* scratch: original gradient */
    bpm_fdf_fn fn;
    void *ud;
} precond;

/* theta = x0 + L^-T z (back substitution on L^T). */
static void z_to_x(const precond *pc, const double *z, double *theta)
{
    size_t n = pc->n;
    for (size_t i = n; i-- > 0;) {
        double s = z[i];
        for (size_t k = i + 1; k < n; k++) {
            s -= pc->L[k * n + i] * theta[k];
        }
        theta[i] = s / pc->L[i * n + i];
    }
    for (size_t i = 0; i < n; i++) {
        theta[i] += pc->x0[i];
    }
}

static double z_fdf(const double *z, double *gz, void *ud)
{
    precond *pc = ud;
    size_t n = pc->n;
    z_to_x(pc, z, pc->theta);
    double f = pc->fn(pc->theta, gz ? pc->g : NULL, pc->ud);
    if (gz != NULL) {
        /* grad_z = L^-1 grad (forward substitution) */
        for (size_t i = 0; i < n; i++) {
            double s = pc->g[i];
            for (size_t k = 0; k < i; k++) {
                s -= pc->L[i * n + k] * gz[k];
            }
            gz[i] = s / pc->L[i * n + i];
        }
    }
    return f;
}

int bpm_minimize_preconditioned(size_t n, double *x, bpm_fdf_fn fn, void *ud, const double *H,
                                const bpm_min_opts *opts, bpm_min_info *out_info, const char *what,
                                bp_error *err)
{
    precond pc = {n, NULL, NULL, NULL, NULL, fn, ud};
    double *x0 = malloc(n * sizeof *x0);
    double *z = calloc(n, sizeof *z);
    pc.L = malloc(n * n * sizeof *pc.L);
    pc.theta = malloc(n * sizeof *pc.theta);
    pc.g = malloc(n * sizeof *pc.g);
    int rc = BP_OK;
    if (x0 == NULL || z == NULL || pc.L == NULL || pc.theta == NULL || pc.g == NULL) {
        rc = bp_err(err, BP_E_NOMEM, "%s: out of memory", what);
        goto done;
    }
    memcpy(x0, x, n * sizeof *x0);
    pc.x0 = x0;
    memcpy(pc.L, H, n * n * sizeof *pc.L);
    gsl_matrix_view hv = gsl_matrix_view_array(pc.L, n, n);
    int status = gsl_linalg_cholesky_decomp1(&hv.matrix);
    if (status == GSL_EDOM) {
        /* not positive definite: fall back to the (positive part of the) diagonal */
        memset(pc.L, 0, n * n * sizeof *pc.L);
        for (size_t i = 0; i < n; i++) {
            double d = H[i * n + i];
            pc.L[i * n + i] = d > 0.0 && isfinite(d) ? sqrt(d) : 1.0;
        }
    } else if (status != GSL_SUCCESS) {
        rc = bp_err(err, BP_E_INTERNAL, "%s: Cholesky factorisation failed: %s", what,
                    gsl_strerror(status));
        goto done;
    }
    rc = bpm_minimize(n, z, z_fdf, &pc, opts, out_info, what, err);
    if (rc == BP_OK || rc == BP_E_LIMIT) {
        z_to_x(&pc, z, x);
    }
done:
    free(x0);
    free(z);
    free(pc.L);
    free(pc.theta);
    free(pc.g);
    return rc;
}
