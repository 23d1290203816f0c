/*
 * config.h - the instance configuration: one JSON file plus environment plus command line.
 *
 * Precedence, highest first: command-line flags, BETPIPE_* environment variables, the config
 * file, built-in defaults. The broker URL has a last resort below the file: the seed names
 * REDIS_URL, CELERY_BROKER_URL, then REDIS_HOST/PORT/DB/PASSWORD (generic variables that other
 * software sets too, so any betpipe setting beats them). The file is validated against a schema: an
 * unknown key, a wrong type or a bad duration is an error that names the key path and the file.
 *
 * Which file: --config FILE, else $BETPIPE_CONFIG, else <data_dir>/betpipe.json when it exists,
 * else /etc/betpipe/betpipe.json when it exists, else none (all defaults).
 *
 * The loaded config is immutable; SIGHUP builds a new one and swaps it in.
 */
#ifndef BP_CORE_CONFIG_H
#define BP_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"
#include "broker.h"
#include "job.h"

#define CONFIG_QUEUE_NAME_MAX 64

typedef struct config_queue {
    char name[CONFIG_QUEUE_NAME_MAX];
    int concurrency;        /* threads per daemon */
    int global_concurrency; /* jobs leased at once across every daemon (0 = no cap) */
} config_queue;

/* What the command line can override. NULL/-1 = not given. */
typedef struct config_overrides {
    const char *config_path;
    const char *data_dir;
    const char *broker_url;
    const char *plugin_dir;
    const char *log_level;
} config_overrides;

typedef struct config {
    json_t *root;        /* the validated document with defaults applied */
    char *path;          /* the file it came from, or NULL */
    char *data_dir;      /* absolute */
    char *broker_url;    /* NULL/"" = the embedded broker in data_dir */
    char *broker_source; /* where broker_url came from ("BETPIPE_BROKER_URL", "config", ...) */
    broker_options broker_opts;
    config_queue *queues; /* every known queue with its default concurrency */
    size_t n_queues;
    char *plugin_dir;
    const json_t *plugin_load; /* array of plugin names, or NULL = every .so in plugin_dir */
    int log_level;
    bool log_level_explicit; /* set by --log-level, BETPIPE_LOG_LEVEL or the file */
    bool log_json;
    int64_t shutdown_grace_ms;
    retry_policy retry; /* default retry policy */
    int max_retries;    /* default max retries */
} config;

/* Load and validate. On failure nothing is returned and err names the file and key. */
int config_load(const config_overrides *ov, config **out, bp_error *err);
void config_free(config *c);

/* The queue named `name`, or NULL. */
const config_queue *config_find_queue(const config *c, const char *name);
/* Comma-separated queue names, for error messages ("ml_queue, data_queue, ..."); static buffer
 * owned by the config. */
const char *config_queue_names(const config *c);
/* Per job type overrides: {"queue", "priority", "max_retries", "soft_time_limit", "retry",
 * "rate_limit"} or NULL. Borrowed. */
const json_t *config_job(const config *c, const char *type);
/* A plugin's own section ("plugins": {"config": {"<name>": {...}}}) or NULL. Borrowed. */
const json_t *config_plugin(const config *c, const char *plugin);
/* Any other top-level section (e.g. "cache", "beat", "http") or NULL. Borrowed. */
const json_t *config_section(const config *c, const char *name);

/* The effective configuration as JSON (secrets masked), for `betpipe config check`. */
json_t *config_effective(const config *c);

/* The default data dir: $BETPIPE_DATA_DIR, $XDG_DATA_HOME/betpipe, ~/.local/share/betpipe. */
char *config_default_data_dir(void);

#endif
