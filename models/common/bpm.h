/*
 * bpm.h - the model kit: small helpers every model library shares.
 *
 * `bpm_` is the prefix of the model libraries (models/common and models/<name>/): static
 * archives linked into the model plugins, the tests and the benchmarks. They include only the
 * plugin ABI headers, never a core header, so a plugin that links them still needs no core
 * symbol (-z defs).
 *
 * This header holds the plumbing: reading validated parameters from a params object, writing and
 * checking versioned state objects, the dense team index, match-set validation and a small
 * deterministic random generator. The numerical pieces live beside it (bpm_markets.h,
 * bpm_margin.h, bpm_metrics.h, bpm_ologit.h, bpm_goals.h).
 *
 * Every function is re-entrant: no globals, thread-safe for distinct arguments.
 */
#ifndef BPM_H
#define BPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"

#define BPM_MS_PER_DAY 86400000.0

/* 1X2 outcome classes, in the order RPS ranks them. */
enum { BPM_HOME = 0, BPM_DRAW = 1, BPM_AWAY = 2 };

/* The outcome class of a finished match. */
static inline int bpm_outcome(int32_t home_goals, int32_t away_goals)
{
    return home_goals > away_goals ? BPM_HOME : home_goals == away_goals ? BPM_DRAW : BPM_AWAY;
}

/* ---- parameters -------------------------------------------------------------------------- */

/*
 * Check that `params` is NULL or an object whose keys are all in `allowed` (NULL-terminated).
 * `model` names the model in the message: "dixon_coles: unknown parameter 'xii' (known: xi,
 * window_days, ...)". Unknown keys are an error rather than silently ignored, because a typo
 * would otherwise fit a different model than the user asked for.
 */
int bpm_params_check(const char *model, const json_t *params, const char *const *allowed,
                     bp_error *err);

/* Like bpm_params_check, but a key is known when it is in any of the n_lists lists. */
int bpm_params_check_lists(const char *model, const json_t *params, const char *const *const *lists,
                           size_t n_lists, bp_error *err);

/*
 * Read a number parameter: absent -> `def`; present -> must be a finite JSON number (integer or
 * real) in [min, max]. The message names model and key and the accepted range.
 */
int bpm_param_double(const char *model, const json_t *params, const char *key, double def,
                     double min, double max, double *out, bp_error *err);

/* Read an integer parameter in [min, max] (a real with an integral value is accepted). */
int bpm_param_int(const char *model, const json_t *params, const char *key, int64_t def,
                  int64_t min, int64_t max, int64_t *out, bp_error *err);

/* Read a boolean parameter. */
int bpm_param_bool(const char *model, const json_t *params, const char *key, bool def, bool *out,
                   bp_error *err);

/* ---- versioned state ---------------------------------------------------------------------- */

/* A new state object {"model": model, "state_version": version}; NULL when out of memory. */
json_t *bpm_state_new(const char *model, int version);

/*
 * Check a state object written by save(): it must be an object whose "model" is `model` and whose
 * "state_version" is exactly `version`. A different version is refused with a message that says
 * which version was found and which this build reads (BP_E_INVAL).
 */
int bpm_state_check(const char *model, int version, const json_t *state, bp_error *err);

/* Set state[key] to a JSON array of n finite doubles. BP_E_INVAL on a non-finite value. */
int bpm_state_set_doubles(json_t *state, const char *key, const double *v, size_t n, bp_error *err);
/* Set state[key] to a JSON array of n integers. */
int bpm_state_set_ids(json_t *state, const char *key, const int64_t *v, size_t n, bp_error *err);
/* Set state[key] to a finite number. */
int bpm_state_set_double(json_t *state, const char *key, double v, bp_error *err);

/*
 * Read state[key] as an array of exactly n finite numbers into out (caller-sized). The message
 * names model and key ("elo: state.ratings: expected 20 numbers, found 19").
 */
int bpm_state_get_doubles(const char *model, const json_t *state, const char *key, double *out,
                          size_t n, bp_error *err);
/* Read state[key] as an array of integers: *out_v is a new malloc'd array of *out_n entries. */
int bpm_state_get_ids(const char *model, const json_t *state, const char *key, int64_t **out_v,
                      size_t *out_n, bp_error *err);
/* Read state[key] as a finite number. */
int bpm_state_get_double(const char *model, const json_t *state, const char *key, double *out,
                         bp_error *err);

/* ---- team index ---------------------------------------------------------------------------- */

struct bpm_teams;

/*
 * Per-team arrays in a state: state["teams"] = the ids, state[keys[k]] = arrays[k] (teams->n
 * numbers each), for k < n_keys.
 */
int bpm_state_set_team_arrays(json_t *state, const struct bpm_teams *teams, const char *const *keys,
                              double *const *arrays, size_t n_keys, bp_error *err);
/*
 * Read them back: *out_teams gets the index (ids sorted and distinct, at least min_teams), and
 * out_arrays[k] a new malloc'd array of teams->n numbers per key. All or nothing: on failure
 * nothing is allocated.
 */
int bpm_state_get_team_arrays(const char *model, const json_t *state, const char *const *keys,
                              size_t n_keys, size_t min_teams, struct bpm_teams *out_teams,
                              double **out_arrays, bp_error *err);

/*
 * A dense index of team ids: ids[0..n) sorted ascending and distinct; a team's index is its
 * position. Lookups are a binary search.
 */
typedef struct bpm_teams {
    int64_t *ids;
    size_t n;
} bpm_teams;

/* Build the index of every team that appears in matches[0..n). Replaces nothing on failure. */
int bpm_teams_build(const bp_match_result *matches, size_t n, bpm_teams *out, bp_error *err);
/* Take ownership of ids[0..n) (sorted, distinct is checked; BP_E_INVAL otherwise). */
int bpm_teams_take(int64_t *ids, size_t n, bpm_teams *out, bp_error *err);
/* Index of team `id`, or -1 when it is not in the index. */
long bpm_teams_find(const bpm_teams *t, int64_t id);
void bpm_teams_free(bpm_teams *t);

/* ---- match sets ---------------------------------------------------------------------------- */

/*
 * Validate a training set before a model touches it: struct_size, a non-NULL array when n > 0,
 * at least `min_matches` matches, kickoffs in non-decreasing order, no match after as_of_ms
 * (when as_of_ms != 0), goals in [0, 99], home != away, odds either 0 (unknown) or finite and
 * > 1. The message names the model, the match index and its match_id.
 */
int bpm_match_set_check(const char *model, const bp_match_set *set, size_t min_matches,
                        bp_error *err);

/* The reference instant of a set: as_of_ms, or the last kickoff when as_of_ms is 0. */
int64_t bpm_match_set_as_of(const bp_match_set *set);

/* The UTC day number of an instant (floor(ms / 86400000)). */
int64_t bpm_day_of(int64_t kickoff_ms);

/* The index after the last match that falls on the same UTC day as m[start] (m sorted). Rating
 * models rate all of a day's matches before applying any of its results, so no training row sees
 * a same-day result (kickoff times are often unknown or only dates). */
size_t bpm_day_end(const bp_match_result *m, size_t n, size_t start);

/* ---- deterministic random numbers (xoshiro256**, seeded through splitmix64) --------------- */

typedef struct bpm_rng {
    uint64_t s[4];
} bpm_rng;

void bpm_rng_seed(bpm_rng *r, uint64_t seed);
uint64_t bpm_rng_next(bpm_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t bpm_rng_below(bpm_rng *r, uint64_t n);

#endif
