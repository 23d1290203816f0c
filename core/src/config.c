/*
 * config.c - loading, validating and resolving the instance configuration (see config.h).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonschema.h"
#include "log.h"
#include "redis_conn.h"
#include "util.h"

#define CONFIG_MAX_BYTES (4 * 1024 * 1024)

/* The queues of the MaraBet spec with their concurrency, plus `default` for diagnostics jobs
 * (sys.*). A config file can change any of them and add its own. */
static const config_queue default_queues[] = {
    {"ml_queue", 2, 0},           {"backtesting_queue", 1, 0}, {"data_queue", 3, 0},
    {"notification_queue", 2, 0}, {"maintenance_queue", 1, 0}, {"default", 2, 0},
};

/* Durations are a number of seconds or a string with a unit ("30s", "5m", "1d"). */
#define DURATION "{\"type\": [\"number\", \"string\"]}"

static const char config_schema[] =
    "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "  \"data_dir\": {\"type\": \"string\", \"minLength\": 1},"
    "  \"log\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "    \"level\": {\"enum\": [\"error\", \"warn\", \"info\", \"debug\", \"trace\"]},"
    "    \"format\": {\"enum\": [\"text\", \"json\"]}}},"
    "  \"broker\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "    \"url\": {\"type\": \"string\"},"
    "    \"prefix\": {\"type\": \"string\", \"pattern\": \"^[A-Za-z0-9_.-]+$\"},"
    "    \"lease\": " DURATION ","
    "    \"result_expires\": " DURATION ","
    "    \"max_crashes\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 1000},"
    "    \"worker_timeout\": " DURATION "}},"
    "  \"queues\": {\"type\": \"object\"},"
    "  \"jobs\": {\"type\": \"object\"},"
    "  \"retry\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "    \"max_retries\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 1000},"
    "    \"interval_start\": " DURATION ","
    "    \"interval_step\": " DURATION ","
    "    \"interval_max\": " DURATION ","
    "    \"jitter\": {\"type\": \"boolean\"}}},"
    "  \"daemon\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "    \"shutdown_grace\": " DURATION ","
    "    \"isolation\": {\"enum\": [\"flagged\", \"all\", \"none\"]},"
    "    \"beat\": {\"type\": \"boolean\"}}},"
    "  \"plugins\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "    \"dir\": {\"type\": \"string\"},"
    "    \"load\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"pattern\": "
    "      \"^[a-z0-9_]+$\"}},"
    "    \"config\": {\"type\": \"object\"}}},"
    "  \"cache\": {\"type\": \"object\"},"
    "  \"beat\": {\"type\": \"object\"}"
    "}}";

static const char queue_schema[] =
    "{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"concurrency\"], "
    "\"properties\": {\"concurrency\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 256}, "
    "\"global_concurrency\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 1000000}}}";

static const char job_schema[] =
    "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "  \"queue\": {\"type\": \"string\", \"minLength\": 1},"
    "  \"priority\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 9},"
    "  \"max_retries\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 1000},"
    "  \"soft_time_limit\": " DURATION ","
    "  \"rate_limit\": {\"type\": \"string\"},"
    "  \"time_limit\": " DURATION ","
    "  \"isolate\": {\"type\": \"boolean\"},"
    "  \"max_memory\": {\"type\": [\"integer\", \"string\"], \"pattern\": "
    "\"^[0-9]+(\\\\.[0-9]+)?[kKmMgG]?$\"},"
    "  \"retry\": {\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "    \"interval_start\": " DURATION ","
    "    \"interval_step\": " DURATION ","
    "    \"interval_max\": " DURATION ","
    "    \"jitter\": {\"type\": \"boolean\"}}}}}";

static char *queue_names_buf;

char *config_default_data_dir(void)
{
    const char *v = getenv("BETPIPE_DATA_DIR");
    if (v && *v) {
        return strdup(v);
    }
    v = getenv("XDG_DATA_HOME");
    if (v && *v) {
        return util_asprintf("%s/betpipe", v);
    }
    v = getenv("HOME");
    if (v && *v) {
        return util_asprintf("%s/.local/share/betpipe", v);
    }
    return strdup("/var/lib/betpipe");
}

/* A duration value at `key` of `obj` (number of seconds or "30s"-style string). */
static int get_duration(const json_t *obj, const char *key, const char *where, int64_t dflt,
                        int64_t *out, bp_error *err)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    *out = dflt;
    if (!v) {
        return BP_OK;
    }
    if (json_is_number(v)) {
        double s = json_number_value(v);
        if (s < 0 || s > 9.0e12) {
            return bp_err(err, BP_E_CONFIG, "%s.%s: %g is not a valid number of seconds", where,
                          key, s);
        }
        *out = (int64_t)(s * 1000.0);
        return BP_OK;
    }
    if (util_parse_duration_ms(json_string_value(v), out, err) != BP_OK) {
        bp_err_prefix(err, "%s.%s: ", where, key);
        if (err) {
            err->code = BP_E_CONFIG;
        }
        return BP_E_CONFIG;
    }
    return BP_OK;
}

static int validate_with(const char *schema_text, const json_t *value, const char *root,
                         bp_error *err)
{
    jsonschema *s = NULL;
    int rc = jsonschema_compile(schema_text, &s, err);
    if (rc != BP_OK) {
        return bp_err(err, BP_E_INTERNAL, "built-in config schema is invalid: %s",
                      err ? err->msg : "");
    }
    rc = jsonschema_validate_at(s, value, root, err);
    jsonschema_free(s);
    if (rc != BP_OK && err) {
        err->code = BP_E_CONFIG;
        rc = BP_E_CONFIG;
    }
    return rc;
}

static int add_queue(config *c, const char *name, int concurrency, int global_concurrency,
                     bp_error *err)
{
    config_queue *nq;
    for (size_t i = 0; i < c->n_queues; i++) {
        if (strcmp(c->queues[i].name, name) == 0) {
            c->queues[i].concurrency = concurrency;
            c->queues[i].global_concurrency = global_concurrency;
            return BP_OK;
        }
    }
    if (strlen(name) >= CONFIG_QUEUE_NAME_MAX) {
        return bp_err(err, BP_E_CONFIG, "queues: queue name '%s' is longer than %d characters",
                      name, CONFIG_QUEUE_NAME_MAX - 1);
    }
    nq = realloc(c->queues, (c->n_queues + 1) * sizeof *nq);
    if (!nq) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    c->queues = nq;
    util_strlcpy(c->queues[c->n_queues].name, name, CONFIG_QUEUE_NAME_MAX);
    c->queues[c->n_queues].concurrency = concurrency;
    c->queues[c->n_queues].global_concurrency = global_concurrency;
    c->n_queues++;
    return BP_OK;
}

/* Where the broker URL comes from, first found wins: --broker, BETPIPE_BROKER_URL, the config
 * file's broker.url, then the seed names (generic variables other software sets too, so any
 * betpipe setting beats them) REDIS_URL, CELERY_BROKER_URL and REDIS_HOST/PORT/DB/PASSWORD. The
 * last are assembled by redis_url_from_env, which escapes the password and turns a host that is
 * a socket path into a unix:// URL. */
static int set_broker(config *c, const char *url, const char *source)
{
    c->broker_url = strdup(url);
    c->broker_source = strdup(source);
    return c->broker_url && c->broker_source ? BP_OK : BP_E_NOMEM;
}

static int resolve_broker_url(config *c, const config_overrides *ov, bp_error *err)
{
    const char *file_url =
        json_string_value(json_object_get(json_object_get(c->root, "broker"), "url"));
    struct {
        const char *source;
        const char *value;
    } candidates[] = {
        {"--broker", ov ? ov->broker_url : NULL},
        {"BETPIPE_BROKER_URL", getenv("BETPIPE_BROKER_URL")},
        {c->path ? c->path : "config", file_url},
        {"REDIS_URL", getenv("REDIS_URL")},
        {"CELERY_BROKER_URL", getenv("CELERY_BROKER_URL")},
    };
    char *parts = NULL;
    int rc;
    for (size_t i = 0; i < BP_ARRAY_LEN(candidates); i++) {
        if (candidates[i].value && *candidates[i].value) {
            rc = set_broker(c, candidates[i].value, candidates[i].source);
            return rc == BP_OK ? BP_OK : bp_err(err, rc, "out of memory");
        }
    }
    rc = redis_url_from_env(&parts, err);
    if (rc == BP_E_NOTFOUND) {
        rc = set_broker(c, "", "default (embedded SQLite broker)");
    } else if (rc == BP_OK) {
        rc = set_broker(c, parts, "REDIS_HOST/REDIS_PORT/REDIS_DB/REDIS_PASSWORD");
    } else {
        free(parts);
        return rc; /* err names the bad setting */
    }
    free(parts);
    return rc == BP_OK ? BP_OK : bp_err(err, rc, "out of memory");
}

static char *default_plugin_dir(void)
{
    char exe[PATH_MAX];
    char *dir;
    if (util_exe_dir(exe, sizeof exe) == BP_OK) {
        dir = util_asprintf("%s/../lib/betpipe/plugins", exe);
        if (dir && util_path_exists(dir)) {
            char *real = util_realpath(dir);
            free(dir);
            return real;
        }
        free(dir);
    }
    return strdup("/usr/local/lib/betpipe/plugins");
}

static int load_file(const char *path, json_t **out, bp_error *err)
{
    char *text = NULL;
    json_error_t jerr;
    int rc = util_read_file(path, CONFIG_MAX_BYTES, &text, NULL, err);
    *out = NULL;
    if (rc != BP_OK) {
        bp_err_prefix(err, "config: ");
        if (err) {
            err->code = BP_E_CONFIG;
        }
        return BP_E_CONFIG;
    }
    *out = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!*out) {
        return bp_err(err, BP_E_CONFIG, "config %s: line %d, column %d: %s", path, jerr.line,
                      jerr.column, jerr.text);
    }
    return BP_OK;
}

static int apply_retry(const json_t *r, const char *where, retry_policy *p, bp_error *err)
{
    int rc =
        get_duration(r, "interval_start", where, p->interval_start_ms, &p->interval_start_ms, err);
    if (rc == BP_OK) {
        rc =
            get_duration(r, "interval_step", where, p->interval_step_ms, &p->interval_step_ms, err);
    }
    if (rc == BP_OK) {
        rc = get_duration(r, "interval_max", where, p->interval_max_ms, &p->interval_max_ms, err);
    }
    if (rc == BP_OK && json_is_boolean(json_object_get(r, "jitter"))) {
        p->jitter = json_is_true(json_object_get(r, "jitter"));
    }
    return rc;
}

int config_load(const config_overrides *ov, config **out, bp_error *err)
{
    config *c = calloc(1, sizeof *c);
    char *dd = NULL;
    const char *path = ov ? ov->config_path : NULL;
    const json_t *sec;
    int rc = BP_OK;
    *out = NULL;
    if (!c) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }

    /* 1. Which file. */
    if (!path || !*path) {
        path = getenv("BETPIPE_CONFIG");
    }
    dd = ov && ov->data_dir ? strdup(ov->data_dir) : config_default_data_dir();
    if (!dd) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    if (path && *path) {
        c->path = strdup(path);
    } else {
        char *candidate = util_asprintf("%s/betpipe.json", dd);
        if (candidate && util_path_exists(candidate)) {
            c->path = candidate;
        } else {
            free(candidate);
            if (util_path_exists("/etc/betpipe/betpipe.json")) {
                c->path = strdup("/etc/betpipe/betpipe.json");
            }
        }
    }
    if (c->path) {
        rc = load_file(c->path, &c->root, err);
        if (rc != BP_OK) {
            goto fail;
        }
    } else {
        c->root = json_object();
    }

    /* 2. Validate: the document, then every map entry against its own schema. */
    rc = validate_with(config_schema, c->root, "config", err);
    if (rc == BP_OK) {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(c->root, "queues"), name, v)
        {
            char root[160];
            snprintf(root, sizeof root, "config.queues.%s", name);
            rc = validate_with(queue_schema, v, root, err);
            if (rc != BP_OK) {
                break;
            }
        }
        json_object_foreach(json_object_get(c->root, "jobs"), name, v)
        {
            char root[160];
            if (rc != BP_OK) {
                break;
            }
            snprintf(root, sizeof root, "config.jobs.%s", name);
            rc = validate_with(job_schema, v, root, err);
        }
        json_object_foreach(json_object_get(json_object_get(c->root, "plugins"), "config"), name, v)
        {
            if (rc == BP_OK && !json_is_object(v)) {
                rc = bp_err(err, BP_E_CONFIG, "config.plugins.config.%s: expected an object", name);
            }
        }
    }
    if (rc != BP_OK) {
        if (c->path) {
            bp_err_prefix(err, "%s: ", c->path);
        }
        goto fail;
    }

    /* 3. Resolve values: command line > environment > file > defaults. */
    {
        const char *file_dd = json_string_value(json_object_get(c->root, "data_dir"));
        const char *env_dd = getenv("BETPIPE_DATA_DIR");
        const char *chosen = ov && ov->data_dir  ? ov->data_dir
                             : env_dd && *env_dd ? env_dd
                             : file_dd           ? file_dd
                                                 : dd;
        if (chosen[0] != '/') {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd)) {
                rc = bp_err(err, BP_E_IO, "cannot resolve the data dir %s", chosen);
                goto fail;
            }
            c->data_dir = util_asprintf("%s/%s", cwd, chosen);
        } else {
            c->data_dir = strdup(chosen);
        }
    }
    rc = resolve_broker_url(c, ov, err);
    if (rc != BP_OK) {
        goto fail;
    }

    broker_options_default(&c->broker_opts);
    sec = json_object_get(c->root, "broker");
    rc = get_duration(sec, "lease", "config.broker", c->broker_opts.lease_ms,
                      &c->broker_opts.lease_ms, err);
    if (rc == BP_OK) {
        rc = get_duration(sec, "result_expires", "config.broker", c->broker_opts.result_ttl_ms,
                          &c->broker_opts.result_ttl_ms, err);
    }
    if (rc == BP_OK) {
        rc = get_duration(sec, "worker_timeout", "config.broker", c->broker_opts.worker_timeout_ms,
                          &c->broker_opts.worker_timeout_ms, err);
    }
    if (rc == BP_OK && json_is_integer(json_object_get(sec, "max_crashes"))) {
        c->broker_opts.max_crashes = (int)json_integer_value(json_object_get(sec, "max_crashes"));
    }
    if (rc == BP_OK && c->broker_opts.lease_ms < 1000) {
        rc = bp_err(err, BP_E_CONFIG, "config.broker.lease: at least 1s is needed");
    }
    if (rc != BP_OK) {
        goto fail;
    }

    for (size_t i = 0; i < BP_ARRAY_LEN(default_queues) && rc == BP_OK; i++) {
        rc = add_queue(c, default_queues[i].name, default_queues[i].concurrency, 0, err);
    }
    {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(c->root, "queues"), name, v)
        {
            if (rc == BP_OK) {
                rc = add_queue(c, name, (int)json_integer_value(json_object_get(v, "concurrency")),
                               (int)json_integer_value(json_object_get(v, "global_concurrency")),
                               err);
            }
        }
    }
    if (rc != BP_OK) {
        goto fail;
    }

    sec = json_object_get(c->root, "plugins");
    {
        const char *pd = ov && ov->plugin_dir ? ov->plugin_dir : getenv("BETPIPE_PLUGIN_DIR");
        if (!pd || !*pd) {
            pd = json_string_value(json_object_get(sec, "dir"));
        }
        c->plugin_dir = pd && *pd ? strdup(pd) : default_plugin_dir();
    }
    c->plugin_load = json_object_get(sec, "load");

    c->log_level = BP_LOG_INFO;
    {
        const char *lv = ov && ov->log_level ? ov->log_level : getenv("BETPIPE_LOG_LEVEL");
        if (!lv || !*lv) {
            lv = json_string_value(json_object_get(json_object_get(c->root, "log"), "level"));
        }
        c->log_level_explicit = lv && *lv;
        if (lv && log_level_parse(lv, &c->log_level) != BP_OK) {
            rc = bp_err(err, BP_E_CONFIG,
                        "log level '%s' is not one of error, warn, info, debug, trace", lv);
            goto fail;
        }
        c->log_json =
            json_is_string(json_object_get(json_object_get(c->root, "log"), "format")) &&
            strcmp(json_string_value(json_object_get(json_object_get(c->root, "log"), "format")),
                   "json") == 0;
    }

    rc = get_duration(json_object_get(c->root, "daemon"), "shutdown_grace", "config.daemon", 30000,
                      &c->shutdown_grace_ms, err);
    if (rc != BP_OK) {
        goto fail;
    }
    c->retry = (retry_policy){JOB_DEFAULT_RETRY_START_MS, JOB_DEFAULT_RETRY_STEP_MS,
                              JOB_DEFAULT_RETRY_MAX_MS, true};
    c->max_retries = JOB_DEFAULT_MAX_RETRIES;
    sec = json_object_get(c->root, "retry");
    if (sec) {
        rc = apply_retry(sec, "config.retry", &c->retry, err);
        if (rc != BP_OK) {
            goto fail;
        }
        if (json_is_integer(json_object_get(sec, "max_retries"))) {
            c->max_retries = (int)json_integer_value(json_object_get(sec, "max_retries"));
        }
    }
    /* Per-type durations are checked now so that a typo fails at start-up, not mid-run. */
    {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(c->root, "jobs"), name, v)
        {
            char here[160];
            int64_t ms;
            retry_policy scratch = c->retry;
            snprintf(here, sizeof here, "config.jobs.%s", name);
            rc = get_duration(v, "soft_time_limit", here, 0, &ms, err);
            if (rc == BP_OK && json_is_string(json_object_get(v, "rate_limit"))) {
                int64_t count, period;
                rc = broker_rate_parse(json_string_value(json_object_get(v, "rate_limit")), &count,
                                       &period, err);
                if (rc != BP_OK) {
                    bp_err_prefix(err, "config.jobs.%s.rate_limit: ", name);
                    rc = BP_E_CONFIG;
                    if (err) {
                        err->code = BP_E_CONFIG;
                    }
                }
            }
            if (rc == BP_OK && json_object_get(v, "retry")) {
                snprintf(here, sizeof here, "config.jobs.%s.retry", name);
                rc = apply_retry(json_object_get(v, "retry"), here, &scratch, err);
            }
            if (rc != BP_OK) {
                goto fail;
            }
        }
    }
    free(dd);
    *out = c;
    return BP_OK;
fail:
    if (err && err->code == 0) {
        err->code = rc;
    }
    free(dd);
    config_free(c);
    return rc;
}

void config_free(config *c)
{
    if (!c) {
        return;
    }
    json_decref(c->root);
    free(c->path);
    free(c->data_dir);
    free(c->broker_url);
    free(c->broker_source);
    free(c->queues);
    free(c->plugin_dir);
    free(c);
}

const config_queue *config_find_queue(const config *c, const char *name)
{
    for (size_t i = 0; i < c->n_queues; i++) {
        if (strcmp(c->queues[i].name, name) == 0) {
            return &c->queues[i];
        }
    }
    return NULL;
}

const char *config_queue_names(const config *c)
{
    size_t len = 1;
    char *p;
    for (size_t i = 0; i < c->n_queues; i++) {
        len += strlen(c->queues[i].name) + 2;
    }
    free(queue_names_buf);
    queue_names_buf = malloc(len);
    if (!queue_names_buf) {
        return "";
    }
    p = queue_names_buf;
    *p = '\0';
    for (size_t i = 0; i < c->n_queues; i++) {
        p += snprintf(p, len - (size_t)(p - queue_names_buf), "%s%s", i ? ", " : "",
                      c->queues[i].name);
    }
    return queue_names_buf;
}

const json_t *config_job(const config *c, const char *type)
{
    return json_object_get(json_object_get(c->root, "jobs"), type);
}

const json_t *config_plugin(const config *c, const char *plugin)
{
    return json_object_get(json_object_get(json_object_get(c->root, "plugins"), "config"), plugin);
}

const json_t *config_section(const config *c, const char *name)
{
    return json_object_get(c->root, name);
}

/* Replace the password of a URL (user:pass@) with ***. */
static char *mask_url(const char *url)
{
    const char *at = strchr(url, '@');
    const char *scheme = strstr(url, "://");
    const char *colon;
    if (!at || !scheme || at < scheme) {
        return strdup(url);
    }
    colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
    if (!colon) {
        return strdup(url);
    }
    return util_asprintf("%.*s:***%s", (int)(colon - url), url, at);
}

json_t *config_effective(const config *c)
{
    json_t *queues = json_object();
    char *masked = mask_url(c->broker_url ? c->broker_url : "");
    json_t *caps = json_object(), *rates = json_object();
    const char *tname;
    json_t *tv;
    for (size_t i = 0; i < c->n_queues; i++) {
        json_object_set_new(queues, c->queues[i].name, json_integer(c->queues[i].concurrency));
        if (c->queues[i].global_concurrency > 0) {
            json_object_set_new(caps, c->queues[i].name,
                                json_integer(c->queues[i].global_concurrency));
        }
    }
    json_object_foreach(json_object_get(c->root, "jobs"), tname, tv)
    {
        if (json_is_string(json_object_get(tv, "rate_limit"))) {
            json_object_set(rates, tname, json_object_get(tv, "rate_limit"));
        }
    }
    json_t *o = json_pack(
        "{s:s?, s:s, s:{s:s, s:s, s:I, s:I, s:i, s:I}, s:o, s:s, s:O?, s:s, s:I, s:{s:i, s:I, "
        "s:I, s:I, s:b}}",
        "config_file", c->path, "data_dir", c->data_dir, "broker", "url",
        *masked ? masked : "(embedded SQLite)", "source", c->broker_source, "lease_ms",
        (json_int_t)c->broker_opts.lease_ms, "result_expires_ms",
        (json_int_t)c->broker_opts.result_ttl_ms, "max_crashes", c->broker_opts.max_crashes,
        "worker_timeout_ms", (json_int_t)c->broker_opts.worker_timeout_ms, "queues", queues,
        "plugin_dir", c->plugin_dir, "plugin_load", c->plugin_load, "log_level",
        log_level_name(c->log_level), "shutdown_grace_ms", (json_int_t)c->shutdown_grace_ms,
        "retry", "max_retries", c->max_retries, "interval_start_ms",
        (json_int_t)c->retry.interval_start_ms, "interval_step_ms",
        (json_int_t)c->retry.interval_step_ms, "interval_max_ms",
        (json_int_t)c->retry.interval_max_ms, "jitter", c->retry.jitter);
    free(masked);
    if (o) {
        json_object_set_new(o, "global_concurrency", caps);
        json_object_set_new(o, "rate_limits", rates);
    } else {
        json_decref(caps);
        json_decref(rates);
    }
    return o;
}
