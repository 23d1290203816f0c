/*
 * bpm_opt.h - unconstrained minimisation with GSL's BFGS2 (gsl_multimin_fdfminimizer_vector_bfgs2).
 *
 * Every model that fits by maximum likelihood goes through bpm_minimize(): the caller supplies
 * one function computing f and (when asked) its gradient; this wrapper owns the GSL objects,
 * checks every GSL status, and decides convergence the same way everywhere:
 *
 *   converged   the gradient norm fell below opts.grad_tol;
 *   stalled     BFGS2 reports no progress (GSL_ENOPROG) - which happens when the line search can
 *               no longer decrease f in floating point - with the gradient norm below
 *               opts.grad_accept: that is the optimum to machine precision, so we accept it;
 *   failed      anything else: a GSL error, a non-finite f, the iteration limit, or a stall with
 *               a large gradient. On BP_E_LIMIT x holds the last iterate (so a caller may
 *               rebuild a preconditioner and restart from it); on other failures x is
 *               untouched.
 *
 * Thread-safe (no shared state); GSL's error handler must be off.
 */
#ifndef BPM_OPT_H
#define BPM_OPT_H

#include <stddef.h>

#include "betpipe/status.h"

/* f(x); when grad != NULL also write the gradient (n entries). Must not fail: return +INFINITY
 * (or NAN) for a point outside the domain and the minimiser reports it. */
typedef double (*bpm_fdf_fn)(const double *x, double *grad, void *ud);

typedef struct bpm_min_opts {
    int max_iter;       /* iteration limit (e.g. 500) */
    double grad_tol;    /* converged when |grad| < grad_tol */
    double grad_accept; /* a stall is accepted when |grad| < grad_accept */
    double step;        /* first trial step length (BFGS2's step_size); <= 0 means the norm of
                         * the starting gradient clipped to [1e-4, 1] - the Newton step length
                         * when the problem is well preconditioned */
    double line_tol;    /* line-search accuracy (BFGS2's tol; 0.1 is GSL's advice) */
} bpm_min_opts;

typedef struct bpm_min_info {
    int iterations;
    double f;
    double grad_norm;
    int stalled; /* 1 when accepted on a stall rather than the gradient test */
} bpm_min_info;

/*
 * Minimise fn from x[0..n) (in: start, out: minimiser on BP_OK, last iterate on BP_E_LIMIT). `what`
 * names the problem in messages ("dixon_coles: fit did not converge after 500 iterations
 * (|grad| 3.1e-02)"). Returns BP_OK, BP_E_LIMIT (iteration limit or stall far from a stationary
 * point), BP_E_INVAL (f not finite at the start), BP_E_INTERNAL (GSL failure) or BP_E_NOMEM.
 */
int bpm_minimize(size_t n, double *x, bpm_fdf_fn fn, void *ud, const bpm_min_opts *opts,
                 bpm_min_info *out_info, const char *what, bp_error *err);

/*
 * Minimise with a preconditioner. GSL's BFGS2 keeps only the last step (a memoryless update), so
 * it converges only as fast as the problem is well scaled. Given an approximation H (n x n,
 * row-major, symmetric positive definite) of the Hessian at the start x, we factor H = L L^T and
 * minimise g(z) = f(x + L^-T z), whose Hessian is close to the identity: BFGS2 then converges in a
 * handful of iterations, and |grad g| is the Newton decrement, a scale-free convergence test
 * (opts grad_tol / grad_accept apply to it). If H is not positive definite its diagonal is used.
 * H is not modified. On BP_OK or BP_E_LIMIT x holds the last iterate in original coordinates.
 */
int bpm_minimize_preconditioned(size_t n, double *x, bpm_fdf_fn fn, void *ud, const double *H,
                                const bpm_min_opts *opts, bpm_min_info *out_info, const char *what,
                                bp_error *err);

#endif
