/*
 * elo.h - ClubElo-style Elo ratings for football, mapped to 1X2 by an ordered logit.
 *
 * Before a match, home team h and away team a with ratings R_h, R_a:
 *     dr  = R_h + H - R_a                  (H = home advantage in Elo points)
 *     E_h = 1 / (1 + 10^(-dr / 400))       (expected score of the home side)
 * after it, with W = 1 / 0.5 / 0 for a home win / draw / away win:
 *     R_h += K F (W - E_h),  R_a -= K F (W - E_h)
 * where F = sqrt(|goal difference|) for a decided match and 1 for a draw (ClubElo's goal
 * multiplier; clubelo.com "System"), K = 20 by default.
 *
 * A team starts at `initial` (1500) when it appears in the first `new_team_grace_days` of the
 * history (the founding members of the league); a team that appears later is a newcomer
 * (promoted) and starts `new_team_offset` points below the mean rating of the teams that have
 * played so far - newcomers are on average weaker than the teams they join.
 *
 * The 1X2 mapping is the ordered logit of bpm_ologit.h on dr, fitted on the training history,
 * using only matches where both teams had already played `min_games` matches (so the start-up
 * period, when everyone is still near 1500, does not flatten the slope). Matches of one day are
 * all rated before any of them updates the ratings, so a training row never sees a same-day
 * result.
 */
#ifndef BPM_ELO_H
#define BPM_ELO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"

#include <jansson.h>

#define BPM_ELO_STATE_VERSION 1

typedef struct bpm_elo_params {
    double k;
    double home_advantage;
    double initial;
    double new_team_offset;
    double new_team_grace_days;
    bool goal_multiplier;
    int min_games;
} bpm_elo_params;

/* Defaults: K 20, H 70, initial 1500, newcomer offset 100, grace 60 days, goal multiplier on,
 * min_games 10. */
void bpm_elo_defaults(bpm_elo_params *p);
/* The parameter names of the Elo engine (NULL-terminated). */
extern const char *const bpm_elo_param_keys[];
/* Read and validate the Elo parameters in `params` (NULL = defaults); other keys are left for
 * the caller to check (bpm_params_check_lists). */
int bpm_elo_params_parse(const char *model, const json_t *params, bpm_elo_params *out,
                         bp_error *err);

/* Running Elo ratings over a fixed set of n teams (dense indices). */
typedef struct bpm_elo_state {
    size_t n;
    double *rating;
    int *games;
    bool *seen;
    double sum_seen; /* sum of ratings of seen teams (for the newcomer mean) */
    size_t n_seen;
    int64_t first_kickoff;
    bool started;
} bpm_elo_state;

int bpm_elo_state_init(bpm_elo_state *s, size_t n_teams, bp_error *err);
void bpm_elo_state_free(bpm_elo_state *s);
/* Give team t its starting rating if it has not appeared yet (kickoff decides founder vs
 * newcomer). */
void bpm_elo_enter(const bpm_elo_params *p, bpm_elo_state *s, size_t t, int64_t kickoff_ms);
/* dr = R_h + H - R_a for teams already entered. */
double bpm_elo_diff(const bpm_elo_params *p, const bpm_elo_state *s, size_t h, size_t a);
/* Apply a result. */
void bpm_elo_update(const bpm_elo_params *p, bpm_elo_state *s, size_t h, size_t a, int home_goals,
                    int away_goals);

extern const bp_model_type bpm_elo_type;

#endif
