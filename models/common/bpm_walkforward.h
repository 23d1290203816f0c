/*
 * bpm_walkforward.h - walk-forward evaluation of models on a match history.
 *
 * Shared by bench/models (history from the football-data CSVs) and `betpipe models evaluate`
 * (history from the store): both score the same way, so their figures compare.
 *
 * The procedure, for one model over a history m[0..n) sorted by kick-off:
 *   - walk the history one UTC match day at a time;
 *   - on a day with at least one match to score, refit the model on the matches of earlier days
 *     only (a bp_match_set of m[0..first match of the day), as_of = the day's midnight) when
 *     refit_days have passed since the last successful fit (1 = every match day); a failed fit
 *     keeps the previous one (counted in fit_failures, the first message kept);
 *   - predict every match of that day that is to be scored.
 * No match is ever predicted by a model that saw its result, or any result of its day.
 *
 * Which matches are scored is the caller's mask; bpm_wf_mask builds the usual one: candidates
 * in a kick-off range whose two teams both played at least min_games matches in the
 * window_days before the match day (new and promoted teams are left out until the models have
 * seen them: an MLE model is overconfident about a team it saw twice), and - when given - that
 * have bookmaker odds to compare with. Callers then score every model on the matches all of them
 * predicted, so every row of a table is on the same matches.
 *
 * bpm_wf_score scores one row of forecasts on those matches (RPS, log loss, Brier, accuracy,
 * calibration) and, against a reference row (the bookmaker), the mean RPS difference with its
 * paired bootstrap interval.
 *
 * bpm_wf_blend is the walk-forward ensemble: each match day the simplex weights minimising RPS
 * are refitted on the members' forecasts of every earlier scored day, and that day's forecasts
 * blended (equal weights until min_rows forecasts exist).
 *
 * Thread-safety: no globals; a bpm_wf_model belongs to one thread. GSL's error handler must be
 * off.
 */
#ifndef BPM_WALKFORWARD_H
#define BPM_WALKFORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"

#include "bpm_metrics.h"

#define BPM_WF_WINDOW_DAYS 1100
#define BPM_WF_MIN_GAMES   10

/*
 * The evaluation params of the goal models (dixon_coles, poisson) in the bench and in `betpipe
 * models evaluate`: time decay 0.0018 per day over the last 1100 days, and a weak Gaussian prior
 * on the attack and defence ratings (ridge 4 = precision, i.e. a prior sd of 0.5 towards the
 * average team). The ridge was chosen on the walk-forward of the early seasons 2012-13 ..
 * 2016-17 alone (RPS by ridge 0, 1, 2, 3, 4, 5, 6: 0.20085, 0.20072, 0.20063, 0.20058, 0.20057,
 * 0.20058, 0.20062; the same optimum for poisson) and frozen for the later ones. Besides
 * tempering ratings built on few games, it keeps a fit finite at a season start where a promoted
 * team has not scored yet (the pure MLE has no finite optimum then and the refit fails). The
 * models' own default stays the exact maximum likelihood (ridge 0).
 */
#define BPM_WF_GOALS_PARAMS "{\"xi\": 0.0018, \"window_days\": 1100, \"ridge\": 4}"

/* Which matches are candidates for scoring (bpm_wf_mask). */
typedef struct bpm_wf_mask_opts {
    int64_t from_ms; /* kick-off >= from_ms (0 = from the first match) */
    int64_t to_ms;   /* kick-off < to_ms (0 = to the last) */
    int window_days; /* the min-games rule looks this many days back (BPM_WF_WINDOW_DAYS) */
    int min_games;   /* matches each team must have played in that window (BPM_WF_MIN_GAMES) */
} bpm_wf_mask_opts;

/*
 * out[k] = true when m[k] kicks off in [from_ms, to_ms), both its teams played at least
 * min_games matches on earlier days within window_days of its day, and has_odds[k] (when
 * has_odds is not NULL). m sorted by kick-off.
 */
void bpm_wf_mask(const bp_match_result *m, size_t n, const bpm_wf_mask_opts *o,
                 const bool *has_odds, bool *out);

/* Stop early: return non-zero to cancel (checked once per match day). */
typedef int (*bpm_wf_cancel_fn)(void *ud);

/* One model's walk-forward: fill the inputs, bpm_wf_run fills the outputs. */
typedef struct bpm_wf_model {
    /* in */
    const char *label;         /* for messages and tables */
    const bp_model_type *type; /* the model */
    void *plugin_state;        /* handed to type->create (NULL for the linked libraries) */
    const json_t *params;      /* create() params, borrowed; NULL = the model's defaults */
    int refit_days;            /* refit when this many days passed since the last fit (>= 1) */
    /* out */
    double (*p)[3];     /* per match: H/D/A forecast, NAN where not predicted (n rows) */
    double seconds;     /* wall time of the whole walk-forward */
    int fits;           /* fit() calls */
    int fit_failures;   /* of which failed (the previous fit was kept) */
    size_t predicted;   /* matches predicted */
    size_t unpredicted; /* masked matches the model could not predict (unknown team, no fit) */
    char first_failure[BP_ERROR_MSG_MAX]; /* the first failed fit's message, "" when none */
} bpm_wf_model;

/*
 * Run w over m[0..n) scoring the matches eval[] marks. BP_OK with the outputs filled (release
 * w->p with bpm_wf_model_free); BP_E_INVAL when the model cannot be created with its params
 * (err names it); BP_E_CANCELLED when cancel() asked to stop; BP_E_NOMEM.
 */
int bpm_wf_run(const bp_match_result *m, size_t n, const bool *eval, bpm_wf_model *w,
               bpm_wf_cancel_fn cancel, void *cancel_ud, bp_error *err);

/* Free the outputs of a run (the inputs are the caller's). */
void bpm_wf_model_free(bpm_wf_model *w);

/*
 * The walk-forward ensemble of members[0..n_members) (2..BPM_BLEND_MAX_MEMBERS) on the matches
 * use[] marks (each must have every member's forecast): out[k] is the blend for those matches,
 * NAN elsewhere (caller-sized, n rows). out_weights (may be NULL) gets the weights of the last
 * day. BP_E_INVAL for a bad member count, BP_E_NOMEM.
 */
int bpm_wf_blend(const bp_match_result *m, size_t n, const bool *use,
                 const bpm_wf_model *const *members, size_t n_members, size_t min_rows,
                 double (*out)[3], double *out_weights, bp_error *err);

/*
 * Paired bootstrap over match days of the mean of diff[k] over the matches use[] marks: `reps`
 * resamples of whole match days (the forecasts of one day share their information), seeded with
 * `seed`. *out_lo / *out_hi get the 2.5% and 97.5% quantiles. BP_E_INVAL for reps < 10 or no
 * marked match, BP_E_NOMEM.
 */
int bpm_wf_bootstrap_days(const bp_match_result *m, size_t n, const bool *use, const double *diff,
                          int reps, uint64_t seed, double *out_lo, double *out_hi, bp_error *err);

/* One row's scores on a common set (bpm_wf_score). */
typedef struct bpm_wf_scores {
    bpm_scores s;
    double d_mean, d_lo, d_hi; /* mean RPS minus the reference's and its 95% interval (NAN: none) */
} bpm_wf_scores;

/*
 * Score forecasts p (n rows) on the matches use[] marks, with `bins` calibration bins. With a
 * reference ref (n rows, may be NULL), d_mean is the mean of RPS(p) - RPS(ref) over those
 * matches and [d_lo, d_hi] its bootstrap interval (bpm_wf_bootstrap_days with boot_reps and
 * seed). BP_E_INVAL when a marked row of p is not a probability vector (err names the match id)
 * or as bpm_wf_bootstrap_days; BP_E_NOMEM.
 */
int bpm_wf_score(const bp_match_result *m, size_t n, const bool *use, double (*p)[3],
                 double (*ref)[3], int bins, int boot_reps, uint64_t seed, bpm_wf_scores *out,
                 bp_error *err);

#endif
