/*
 * betpipe/registry.h - what a plugin can register from its init(): job types, models,
 * collectors and notifiers.
 *
 * Part of the plugin ABI. Every descriptor begins with struct_size; the core copies the
 * descriptor (so plugins may keep them `static const`) and reads only the fields that struct_size
 * covers, so a plugin built against an older minor version keeps working. Names are unique per
 * kind across all loaded plugins: a duplicate is refused with BP_E_EXISTS. Calling any add_*
 * after init has returned fails with BP_E_STATE.
 */
#ifndef BETPIPE_REGISTRY_H
#define BETPIPE_REGISTRY_H

#include <stdint.h>

#include <jansson.h>

#include "betpipe/job.h"
#include "betpipe/status.h"

typedef struct bp_host bp_host;
typedef struct bp_registry bp_registry;

/* ------------------------------------------------------------------------------------------- */
/* Job types                                                                                    */
/* ------------------------------------------------------------------------------------------- */

/* The job may run in a child process (crash and hard-limit isolation) when the engine offers it. */
#define BP_JOB_F_ISOLATE 0x1

/*
 * run - do the work of one job.
 *   job:        the job; borrowed.
 *   out_result: on BP_OK, set it to a new JSON reference (object preferred) the core stores as
 *               the result. NULL is allowed (stored as null).
 *   err:        on failure, say what went wrong.
 * Return BP_OK; BP_E_RETRY, BP_E_UNAVAILABLE or BP_E_TIMEOUT for transient failures (retried with
 * backoff while retries remain); BP_E_CANCELLED after host->cancelled() turned true; any other
 * negative status fails the job at once.
 * Threading: run() may be called from several worker threads at the same time for different
 * jobs; plugin state shared between runs must be protected by the plugin.
 */
typedef int (*bp_job_run_fn)(const bp_job *job, json_t **out_result, bp_error *err);

typedef struct bp_job_type {
    uint32_t struct_size;
    int32_t flags;           /* BP_JOB_F_* */
    const char *name;        /* "<area>.<verb>", e.g. "maint.backup_db" */
    const char *description; /* one line, shown by `betpipe plugins` */
    const char *queue;       /* default queue, e.g. "maintenance_queue" */
    /* JSON Schema subset the args must satisfy before enqueue (see core docs): type, properties,
     * required, additionalProperties, enum, minimum, maximum, minLength, maxLength, items,
     * minItems, maxItems, pattern, default. NULL means the job takes no arguments ({}). */
    const char *args_schema;
    int32_t soft_time_limit_s; /* cancelled() turns true after this many seconds; 0 = none */
    int32_t max_retries;       /* default for jobs of this type; -1 = engine default */
    bp_job_run_fn run;
    /* Argument names, comma-separated ("model,league"). When set and an enqueue brings no
     * unique_key of its own, the job's unique key is "<type>:<value>:<value>..." of these
     * arguments (after defaults: strings as they are, other values as compact JSON, an absent
     * one as ""), so two jobs of this type with the same values are never live at once: the
     * second enqueue is refused with BP_E_EXISTS. NULL = no default key. (Added after 1.0's
     * size: a descriptor without it reads NULL.) */
    const char *unique_args;
} bp_job_type;

/* ------------------------------------------------------------------------------------------- */
/* Models                                                                                        */
/* ------------------------------------------------------------------------------------------- */

/* Dimension of a score matrix: goals 0..BP_SCORE_DIM-1 for each side. */
#define BP_SCORE_DIM 16

/* One finished match as a model sees it. Teams are store ids. Odds are decimal, 0 = unknown. */
typedef struct bp_match_result {
    int64_t match_id;
    int64_t kickoff_ms;
    int64_t home_team;
    int64_t away_team;
    int32_t home_goals;
    int32_t away_goals;
    double odds_home;
    double odds_draw;
    double odds_away;
} bp_match_result;

typedef struct bp_match_set {
    uint32_t struct_size;
    uint32_t reserved0;
    const bp_match_result *matches; /* sorted by kickoff, oldest first */
    size_t n_matches;
    int64_t as_of_ms; /* the fit's reference instant (time decay is relative to it) */
} bp_match_set;

/* A model's forecast for one fixture. Fields a model cannot produce are NAN / 0. */
typedef struct bp_prediction {
    double p_home;
    double p_draw;
    double p_away;
    double exp_home_goals;
    double exp_away_goals;
    int32_t has_score_matrix;
    int32_t reserved0;
    double score[BP_SCORE_DIM * BP_SCORE_DIM]; /* P(home = i, away = j) at [i * BP_SCORE_DIM + j] */
} bp_prediction;

typedef struct bp_model_type {
    uint32_t struct_size;
    int32_t state_version; /* bumped whenever save()'s format changes */
    const char *name;
    const char *description;
    const char *params_schema; /* schema subset for the params object, NULL = none */
    int (*create)(void *plugin_state, const json_t *params, void **out_model, bp_error *err);
    int (*fit)(void *model, const bp_match_set *train, json_t **out_metrics, bp_error *err);
    int (*predict)(void *model, int64_t home_team, int64_t away_team, int64_t kickoff_ms,
                   bp_prediction *out, bp_error *err);
    int (*save)(void *model, json_t **out_state, bp_error *err);
    int (*load)(void *model, const json_t *state, bp_error *err);
    void (*destroy)(void *model);
} bp_model_type;

/* ------------------------------------------------------------------------------------------- */
/* Collectors                                                                                    */
/* ------------------------------------------------------------------------------------------- */

#define BP_COLLECT_FIXTURES 0x01
#define BP_COLLECT_RESULTS  0x02
#define BP_COLLECT_ODDS     0x04
#define BP_COLLECT_STATS    0x08
#define BP_COLLECT_LIVE     0x10
#define BP_COLLECT_STATIC   0x20

/*
 * collect - pull data of kind `what` (one BP_COLLECT_* bit) described by `request` from the
 * source and write it through host->store. Set *out_report to a new JSON object with counts
 * (inserted, updated, unchanged, rejected[...]).
 */
typedef struct bp_collector_type {
    uint32_t struct_size;
    int32_t provides; /* BP_COLLECT_* bits */
    const char *name;
    const char *description;
    const char *request_schema; /* schema subset for `request`, NULL = none */
    int (*collect)(void *plugin_state, const bp_job *job, int32_t what, const json_t *request,
                   json_t **out_report, bp_error *err);
} bp_collector_type;

/* ------------------------------------------------------------------------------------------- */
/* Notifiers                                                                                     */
/* ------------------------------------------------------------------------------------------- */

/*
 * send - deliver one message to one target (a subscriber's endpoint and secrets, validated
 * against target_schema). Set *out_receipt to a new JSON object describing the delivery (status
 * code, attempt, latency). Return BP_E_RETRY / BP_E_UNAVAILABLE for failures worth retrying.
 */
typedef struct bp_notifier_type {
    uint32_t struct_size;
    int32_t reserved0;
    const char *name;
    const char *description;
    const char *target_schema;
    int (*send)(void *plugin_state, const json_t *target, const char *event_type,
                const json_t *payload, json_t **out_receipt, bp_error *err);
} bp_notifier_type;

/* ------------------------------------------------------------------------------------------- */
/* The registry handed to init()                                                                 */
/* ------------------------------------------------------------------------------------------- */

struct bp_registry {
    uint32_t struct_size;
    uint32_t reserved0;
    void *core; /* core-private */
    int (*add_job_type)(bp_registry *reg, const bp_job_type *desc, bp_error *err);
    int (*add_model)(bp_registry *reg, const bp_model_type *desc, bp_error *err);
    int (*add_collector)(bp_registry *reg, const bp_collector_type *desc, bp_error *err);
    int (*add_notifier)(bp_registry *reg, const bp_notifier_type *desc, bp_error *err);
};

#endif
