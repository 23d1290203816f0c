/*
 * bpm_goals.h - the goal models: Maher's independent Poisson and Dixon-Coles.
 *
 * Match k, home team i, away team j, goals x (home) and y (away):
 *     lambda_k = exp(mu + home + attack_i + defence_j)      home scoring rate
 *     nu_k     = exp(mu + attack_j + defence_i)             away scoring rate
 *     P(x, y)  = tau(x, y) Pois(x; lambda) Pois(y; nu)
 * with Dixon and Coles's low-score correction tau(0,0) = 1 - lambda nu rho, tau(0,1) =
 * 1 + lambda rho, tau(1,0) = 1 + nu rho, tau(1,1) = 1 - rho, tau = 1 elsewhere (rho = 0 gives
 * Maher's model). `defence` is a weakness: higher concedes more.
 *
 * The fit maximises the weighted log-likelihood sum_k w_k log P(x_k, y_k) (lgamma terms kept, so
 * values compare with goalmodel and penaltyblog), w_k = exp(-xi * days before the reference
 * instant), optionally restricted to a window of days and shrunk by a ridge penalty.
 *
 * Identifiability. Shifting every attack by c and every defence by -c, or every defence by c
 * and mu by -c, leaves the likelihood unchanged, so the MLE is a line, not a point. We add
 * kappa/2 (sum attack)^2 + kappa/2 (sum defence)^2 to the objective: the likelihood's gradient
 * is exactly zero along both flat directions, so at the penalised optimum both sums are zero and
 * every likelihood quantity equals the unpenalised MLE. Unlike eliminating one team's parameters
 * this keeps all teams symmetric and the Hessian well conditioned. Ratings are reported centred.
 *
 * Optimisation. GSL's BFGS2 keeps only the last step (a memoryless update), so it is only as fast
 * as the problem is well scaled. We therefore run it on preconditioned coordinates
 * theta = theta0 + L^-T z, where L L^T is the Hessian of the Poisson part at theta0 (exact for
 * the Poisson terms, which dominate) plus the rho curvature. In z the problem is close to the
 * identity, BFGS2 converges in a handful of iterations, and the z-gradient norm is the Newton
 * decrement, a scale-free convergence test (we stop when it is below 1e-7: the remaining
 * log-likelihood gain is then ~1e-14). If a round stops early the preconditioner is rebuilt at
 * the current point and BFGS2 restarts. A refit may be warm-started from a previous fit: teams it
 * knew start from their old ratings.
 *
 * rho must keep every tau positive. Inside the objective log(tau) is continued below tau = 1e-6
 * by its second-order Taylor expansion, so a line search that strays outside the valid region
 * sees a finite, smooth, rising objective; after the fit we check that no training match has
 * tau below that point (otherwise the fit is refused).
 *
 * Thread-safety: a bpm_goals_fit is immutable after a successful fit; predictions may run from
 * several threads at once.
 */
#ifndef BPM_GOALS_H
#define BPM_GOALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"

#include "bpm.h"

typedef struct bpm_goals_opts {
    const char *model;  /* "dixon_coles" or "poisson": used in messages and saved state */
    bool use_rho;       /* Dixon-Coles low-score correction */
    double xi;          /* time decay per day (0 = none) */
    double window_days; /* only matches at most this many days before the reference (0 = all) */
    double ridge;       /* L2 penalty ridge/2 * sum(attack^2 + defence^2); 0 = pure MLE */
    int max_iter;       /* total BFGS2 iterations allowed over all rounds */
} bpm_goals_opts;

typedef struct bpm_goals_fit {
    bpm_teams teams;
    double *attack;  /* teams.n, centred */
    double *defence; /* teams.n, centred */
    double mu, home, rho;
    /* diagnostics of the fit that produced it */
    double loglik;       /* weighted log-likelihood at the optimum (lgamma terms included) */
    double total_weight; /* sum of weights of the matches used */
    size_t n_used;       /* matches inside the window */
    int iterations;
    int rounds;
    double newton_decrement; /* final |grad| in preconditioned coordinates */
} bpm_goals_fit;

/*
 * Fit `set`. `warm` (may be NULL) is a previous fit to start from. On BP_OK *out is a new fit the
 * caller frees with bpm_goals_free; on failure *out is untouched and err says why:
 *   BP_E_INVAL  too few matches for the number of teams, teams that split into groups which never
 *               meet, a team (or all home/away sides) without a goal scored or conceded when
 *               ridge is 0 (no finite MLE), rho leaving its valid range, bad data in the set;
 *   BP_E_LIMIT  no convergence within max_iter.
 */
int bpm_goals_fit_set(const bpm_goals_opts *opts, const bp_match_set *set,
                      const bpm_goals_fit *warm, bpm_goals_fit *out, bp_error *err);

void bpm_goals_free(bpm_goals_fit *f);

/* Scoring rates for home v away. BP_E_NOTFOUND (message names the team) for an unknown team. */
int bpm_goals_rates(const bpm_goals_fit *f, const char *model, int64_t home, int64_t away,
                    double *out_lambda, double *out_nu, bp_error *err);

/*
 * The score matrix for rates (lambda, nu) and rho, normalised to sum 1 over the
 * BP_SCORE_DIM x BP_SCORE_DIM grid (a tau below zero, possible only for extreme rates, is
 * clipped to zero before normalising).
 */
void bpm_goals_score_matrix(double lambda, double nu, double rho, double *score);

/* Fill a full prediction (1X2, expected goals, score matrix) for home v away. */
int bpm_goals_predict(const bpm_goals_fit *f, const char *model, int64_t home, int64_t away,
                      bp_prediction *out, bp_error *err);

/* Metrics of the fit as a new JSON object (NULL when out of memory). */
json_t *bpm_goals_metrics(const bpm_goals_fit *f, const bpm_goals_opts *opts);

/* Add the fitted state to `state` (teams, attack, defence, mu, home, rho, loglik). */
int bpm_goals_save(const bpm_goals_fit *f, json_t *state, bp_error *err);
/* Read a fit back from `state` into a new *out; validates sizes and finiteness. */
int bpm_goals_load(const char *model, const json_t *state, bpm_goals_fit *out, bp_error *err);

#endif
