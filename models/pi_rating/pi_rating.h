/*
 * pi_rating.h - pi-ratings (Constantinou & Fenton 2013, JQAS 9(1):37) mapped to 1X2 by an
 * ordered logit.
 *
 * Each team has a home rating R_H and an away rating R_A, both starting at 0. A rating is worth
 * an expected goal difference against an average team:
 *     g(R) = sign(R) (b^(|R| / c) - 1)
 * and for home team h and away team a the expected goal difference is
 *     gD_hat = g(R_H[h]) - g(R_A[a]).
 * After the match, with observed goal difference gD = home - away goals:
 *     e = |gD - gD_hat|,  psi = c log10(1 + e)      (a diminishing weight for large errors)
 *     psi_H = +psi if gD > gD_hat else -psi,  psi_A = -psi_H
 *     R_H[h] += lambda psi_H;   R_A[h] += gamma (that change)
 *     R_A[a] += lambda psi_A;   R_H[a] += gamma (that change)
 * with the published constants lambda = 0.035 (learning rate), gamma = 0.7 (how much a home
 * result teaches about away form and vice versa), b = 10, c = 3 (the defaults of the reference
 * R package piratings). The paper turns ratings into 1X2 with a Bayesian network; like later
 * work (Hubacek et al. 2019) we use gD_hat as the covariate of an ordered logit fitted on the
 * training history, on matches where both teams had already played min_games matches. A day's
 * matches are all rated before any result of that day is applied.
 */
#ifndef BPM_PI_RATING_H
#define BPM_PI_RATING_H

#include <stddef.h>

#include <jansson.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"

#define BPM_PI_RATING_STATE_VERSION 1

typedef struct bpm_pi_params {
    double lambda; /* learning rate */
    double gamma;  /* cross-learning between home and away ratings */
    double b, c;   /* rating <-> goal-difference scale */
    int min_games;
} bpm_pi_params;

/* Published constants and min_games 10. */
void bpm_pi_defaults(bpm_pi_params *p);
/* The parameter names of the pi engine (NULL-terminated). */
extern const char *const bpm_pi_param_keys[];
/* Read and validate the pi parameters in `params` (NULL = defaults); other keys are left for the
 * caller to check. */
int bpm_pi_params_parse(const char *model, const json_t *params, bpm_pi_params *out, bp_error *err);

/* Expected goal difference against an average team of a rating. */
double bpm_pi_goal_diff(const bpm_pi_params *p, double rating);
/* gD_hat for home h (home rating) v away a (away rating). */
double bpm_pi_expected(const bpm_pi_params *p, const double *r_home, const double *r_away, size_t h,
                       size_t a);
/* Apply a result to the four ratings involved. */
void bpm_pi_update(const bpm_pi_params *p, double *r_home, double *r_away, size_t h, size_t a,
                   int home_goals, int away_goals);

extern const bp_model_type bpm_pi_rating_type;

#endif
