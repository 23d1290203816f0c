/*
 * logistic.h - multinomial logistic regression on engineered match features.
 *
 * Classes home win, draw, away win; the draw is the reference class, so the model is
 *     P(c) = exp(a_c + w_c . z) / (1 + exp(a_H + w_H . z) + exp(a_A + w_A . z)),  c in {H, A}
 * on standardised features z (bpm_features.h: Elo and pi-rating differences, recent form,
 * goal averages and, when the history has odds, a market rating). The weights carry an L2
 * penalty l2/2 |w|^2 (intercepts are not penalised); the fit minimises the mean negative
 * log-likelihood plus the penalty with GSL's BFGS2 and the analytic gradient.
 *
 * Parameters: l2 (default 10), max_iter (500), features (default ["elo_diff", "pi_gd",
 * "market"]; the market feature drops out when the history has no odds), and every feature
 * parameter of bpm_features.h (form_games, goals_games, market, market_rate, the Elo and pi
 * constants, min_games). The defaults l2 = 10, market_rate = 0.35 and the feature set were
 * chosen by walk-forward RPS on the Premier League seasons 2012-13 to 2016-17 only; with all nine
 * features the fit is noisier (form and goal averages add little once ratings are in).
 */
#ifndef BPM_LOGISTIC_H
#define BPM_LOGISTIC_H

#include "betpipe/registry.h"

#define BPM_LOGISTIC_STATE_VERSION 1

extern const bp_model_type bpm_logistic_type;

#endif
