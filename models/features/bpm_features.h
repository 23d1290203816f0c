/*
 * bpm_features.h - engineered match features for the machine-learning models (logistic,
 * random_forest), computed from the match history alone.
 *
 * Walking the history in date order, we keep per team: an Elo rating and pi-ratings (the engines
 * of the elo and pi_rating models, linked in - no other plugin is called), the last results
 * (points, goals for and against), and, when the history carries 1X2 odds, a market rating. For
 * each match we read the features as they stood before that day, then apply the day's results:
 *
 *   elo_diff      (R_home + H - R_away) / 100
 *   pi_gd         pi-rating expected goal difference
 *   form_home     points per game of the home team over its last form_games matches
 *   form_away     same for the away team
 *   gf_home, ga_home, gf_away, ga_away
 *                 goals scored / conceded per game over the last goals_games matches
 *   market        (only when market is on and at least half the history has odds)
 *                 h + m_home - m_away, where m are team ratings tracking the market's view:
 *                 for each past match with odds, the margin-free (multiplicative) probabilities
 *                 give the target t = ln(p_home / p_away); the prediction error e = t - (h + m_i
 *                 - m_j) moves m_i up and m_j down by eta e, with eta = max(market_rate,
 *                 1 / (games + 2)) so a team's first matches count fully, and h by market_rate e
 *                 / 10. Odds of past matches are information available before the prediction
 *                 day; the fixture's own odds are never used.
 *
 * A team with no recent matches takes league averages. Training rows are the matches where both
 * teams had played at least min_games earlier matches in the history.
 *
 * A bpm_features value is the state after the history; it predicts features for any pair of
 * teams it has seen, and saves/loads itself (with the options it was built with) so a loaded
 * model predicts exactly like the fitted one. Not thread-safe while building; reading features
 * from a built value is.
 */
#ifndef BPM_FEATURES_H
#define BPM_FEATURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"

#include "bpm.h"
#include "elo.h"
#include "pi_rating.h"

#define BPM_FEATURES_MAX        9
#define BPM_FEATURES_MAX_RECENT 50

typedef struct bpm_features_opts {
    bpm_elo_params elo;
    bpm_pi_params pi;
    int form_games;
    int goals_games;
    bool market;
    double market_rate;
    int min_games;
    unsigned select; /* bit k: use feature k (in the order listed above); default all */
} bpm_features_opts;

/* The params-schema properties of the feature parameters (and the Elo and pi constants), for a
 * model's params_schema: "{... \"properties\":{" BPM_FEATURES_SCHEMA_PROPS ", <own>}}". */
#define BPM_FEATURES_SCHEMA_PROPS                                                                  \
    "\"features\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"string\",\"enum\":"     \
    "[\"elo_diff\",\"pi_gd\",\"form_home\",\"form_away\",\"gf_home\",\"ga_home\",\"gf_away\","     \
    "\"ga_away\",\"market\"]}},"                                                                   \
    "\"form_games\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50,\"default\":6},"            \
    "\"goals_games\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50,\"default\":10},"          \
    "\"market\":{\"type\":\"boolean\",\"default\":true},"                                          \
    "\"market_rate\":{\"type\":\"number\",\"minimum\":0.001,\"maximum\":1,\"default\":0.35},"      \
    "\"k\":{\"type\":\"number\",\"minimum\":0,\"maximum\":200,\"default\":20},"                    \
    "\"home_advantage\":{\"type\":\"number\",\"minimum\":-400,\"maximum\":400,\"default\":70},"    \
    "\"initial\":{\"type\":\"number\",\"minimum\":0,\"maximum\":5000,\"default\":1500},"           \
    "\"new_team_offset\":{\"type\":\"number\",\"minimum\":-1000,\"maximum\":1000,\"default\":100}" \
    ","                                                                                            \
    "\"new_team_grace_days\":{\"type\":\"number\",\"minimum\":0,\"maximum\":3650,\"default\":60}," \
    "\"goal_multiplier\":{\"type\":\"boolean\",\"default\":true},"                                 \
    "\"min_games\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":200,\"default\":10},"           \
    "\"learning_rate\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1,\"default\":0.035},"       \
    "\"cross_learning\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1,\"default\":0.7},"        \
    "\"b\":{\"type\":\"number\",\"minimum\":1.0001,\"maximum\":1000,\"default\":10},"              \
    "\"c\":{\"type\":\"number\",\"minimum\":0.01,\"maximum\":100,\"default\":3}"

/* The parameter names bpm_features_opts_read understands (NULL-terminated), so a model can
 * accept them next to its own. */
extern const char *const bpm_features_param_keys[];

/*
 * The `features` parameter (an array of the names above, default all) picks the features a model
 * uses; the market feature is used only when selected, `market` is true and the history has odds.
 * A selection that leaves no feature is refused at fit time.
 *
 * Defaults (Elo and pi defaults, form_games 6, goals_games 10, market on, market_rate 0.35,
 * min_games 10) overridden by params. Unknown keys are not checked here: the caller checks the
 * union of its own keys and bpm_features_param_keys.
 */
int bpm_features_opts_read(const char *model, const json_t *params, bpm_features_opts *out,
                           bp_error *err);

/* Options as a JSON object (saved with a model so load restores them). NULL on no memory. */
json_t *bpm_features_opts_json(const bpm_features_opts *o);

typedef struct bpm_features {
    bpm_features_opts opts;
    bool use_market;
    size_t dim;
    int cols[BPM_FEATURES_MAX]; /* the feature id of each output column */
    bpm_teams teams;
    /* per team */
    double *elo, *pi_home, *pi_away, *market;
    int *games;
    int *recent_n;  /* results kept, <= K */
    double *recent; /* teams.n * K * 3: (points, gf, ga), oldest first */
    size_t K;       /* max(form_games, goals_games) */
    /* league */
    double market_home;
    double sum_goals, sum_points; /* per team-game sums */
    double team_games;
} bpm_features;

/*
 * Walk `set` and build the training rows. On BP_OK *out_x is a new array of *out_rows x dim
 * doubles (row-major), *out_y the outcomes, *out_match the index in the set of each row (all
 * three malloc'd; may be NULL when not wanted), and *out is the state after the whole set.
 * Fails on bad data in the set (bpm_match_set_check) or out of memory; *out untouched then.
 */
int bpm_features_build(const char *model, const bpm_features_opts *opts, const bp_match_set *set,
                       bpm_features *out, double **out_x, int **out_y, size_t **out_match,
                       size_t *out_rows, bp_error *err);

/* Features of home v away from the built state. BP_E_NOTFOUND naming the unseen team. */
int bpm_features_for(const char *model, const bpm_features *f, int64_t home, int64_t away,
                     double *out_x, bp_error *err);

/* Name of feature k for the state's layout ("elo_diff", ...). */
const char *bpm_features_name(const bpm_features *f, size_t k);

void bpm_features_free(bpm_features *f);

/* Save into state["features"] / load from it (with validation of every size). */
int bpm_features_save(const bpm_features *f, json_t *state, bp_error *err);
int bpm_features_load(const char *model, const json_t *state, bpm_features *out, bp_error *err);

#endif
