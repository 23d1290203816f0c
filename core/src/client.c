/*
 * client.c - enqueue, look up and wait (see client.h).
 */
#include "client.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"
#include "log.h"
#include "util.h"

static int64_t json_duration_ms(const json_t *v)
{
    int64_t ms = 0;
    if (json_is_number(v)) {
        return (int64_t)(json_number_value(v) * 1000.0);
    }
    if (json_is_string(v) && util_parse_duration_ms(json_string_value(v), &ms, NULL) == BP_OK) {
        return ms;
    }
    return 0;
}

/*
 * The default unique key of a job type that declares unique_args: "<type>:<v1>:<v2>..." with
 * string values as they are and other values as compact JSON. A new string, or NULL when out of
 * memory.
 */
static char *default_unique_key(const char *type, const char *names, const json_t *args)
{
    size_t cap = strlen(type) + 64, len;
    char *key = malloc(cap);
    const char *p = names;
    if (!key) {
        return NULL;
    }
    len = (size_t)snprintf(key, cap, "%s", type);
    while (*p) {
        char name[128];
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const json_t *v;
        char *dumped = NULL;
        const char *text = "";
        util_strlcpy(name, p, n + 1 < sizeof name ? n + 1 : sizeof name);
        v = json_object_get(args, name);
        if (json_is_string(v)) {
            text = json_string_value(v);
        } else if (v) {
            dumped = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
            text = dumped ? dumped : "";
        }
        if (len + strlen(text) + 2 > cap) {
            char *bigger;
            cap = len + strlen(text) + 64;
            bigger = realloc(key, cap);
            if (!bigger) {
                free(dumped);
                free(key);
                return NULL;
            }
            key = bigger;
        }
        len += (size_t)snprintf(key + len, cap - len, ":%s", text);
        free(dumped);
        p = end ? end + 1 : p + n;
    }
    return key;
}

int client_prepare(app *a, const char *type, const json_t *args, const bp_enqueue_opts *opts,
                   const char *parent_id, job **out, bp_error *err)
{
    const registry_job *rj;
    const json_t *override;
    const char *queue;
    json_t *checked = NULL;
    job *j = NULL;
    int64_t now = util_now_ms();
    int rc;

    *out = NULL;
    rj = registry_find_job(a->reg, type);
    if (!rj) {
        json_t *names = registry_names(a->reg, REGISTRY_JOB);
        char *list = json_dumps(names, JSON_COMPACT);
        rc = bp_err(err, BP_E_NOTFOUND, "unknown job type '%s' (loaded: %s)", type,
                    list ? list : "[]");
        free(list);
        json_decref(names);
        return rc;
    }
    checked = args ? json_deep_copy(args) : json_object();
    if (!checked) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = jsonschema_validate_at(rj->args_schema, checked, "args", err);
    if (rc != BP_OK) {
        json_decref(checked);
        bp_err_prefix(err, "%s: ", type);
        return BP_E_INVAL;
    }
    jsonschema_apply_defaults(rj->args_schema, checked);

    override = config_job(a->cfg, type);
    queue = opts && opts->queue ? opts->queue
            : json_string_value(json_object_get(override, "queue"))
                ? json_string_value(json_object_get(override, "queue"))
                : rj->desc.queue;
    if (!queue || !config_find_queue(a->cfg, queue)) {
        rc = bp_err(err, BP_E_INVAL, "%s: unknown queue '%s' (known: %s)", type,
                    queue ? queue : "(none)", config_queue_names(a->cfg));
        json_decref(checked);
        return rc;
    }

    j = job_new();
    if (!j) {
        json_decref(checked);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    free(j->args);
    j->args = json_dumps(checked, JSON_COMPACT | JSON_SORT_KEYS);
    if (!(opts && opts->unique_key && *opts->unique_key) && rj->desc.unique_args) {
        j->unique_key = default_unique_key(type, rj->desc.unique_args, checked);
        if (!j->unique_key) {
            json_decref(checked);
            job_free(j);
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    json_decref(checked);
    if (!j->args || job_set_str(&j->type, type) || job_set_str(&j->queue, queue) ||
        job_set_str(&j->parent_id, parent_id)) {
        job_free(j);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (opts && opts->job_id) {
        if (!*opts->job_id || strlen(opts->job_id) >= sizeof j->id) {
            job_free(j);
            return bp_err(err, BP_E_INVAL, "job id must be 1-%zu characters", sizeof j->id - 1);
        }
        util_strlcpy(j->id, opts->job_id, sizeof j->id);
    } else {
        util_uuid7(j->id);
    }

    /* Priority: option > config > default. */
    j->priority = BP_PRIORITY_DEFAULT;
    if (json_is_integer(json_object_get(override, "priority"))) {
        j->priority = (int)json_integer_value(json_object_get(override, "priority"));
    }
    if (opts && opts->has_priority) {
        if (opts->priority < BP_PRIORITY_MIN || opts->priority > BP_PRIORITY_MAX) {
            job_free(j);
            return bp_err(err, BP_E_INVAL, "priority %d is out of range %d-%d (higher runs first)",
                          opts->priority, BP_PRIORITY_MIN, BP_PRIORITY_MAX);
        }
        j->priority = opts->priority;
    }

    /* Retries: option > config per type > the type's own default > config default. */
    j->max_retries = rj->desc.max_retries >= 0 ? rj->desc.max_retries : a->cfg->max_retries;
    if (json_is_integer(json_object_get(override, "max_retries"))) {
        j->max_retries = (int)json_integer_value(json_object_get(override, "max_retries"));
    }
    if (opts && opts->has_max_retries) {
        if (opts->max_retries < 0 || opts->max_retries > 1000) {
            job_free(j);
            return bp_err(err, BP_E_INVAL, "max_retries %d is out of range 0-1000",
                          opts->max_retries);
        }
        j->max_retries = opts->max_retries;
    }
    j->retry = a->cfg->retry;
    {
        const json_t *r = json_object_get(override, "retry");
        if (json_object_get(r, "interval_start")) {
            j->retry.interval_start_ms = json_duration_ms(json_object_get(r, "interval_start"));
        }
        if (json_object_get(r, "interval_step")) {
            j->retry.interval_step_ms = json_duration_ms(json_object_get(r, "interval_step"));
        }
        if (json_object_get(r, "interval_max")) {
            j->retry.interval_max_ms = json_duration_ms(json_object_get(r, "interval_max"));
        }
        if (json_is_boolean(json_object_get(r, "jitter"))) {
            j->retry.jitter = json_is_true(json_object_get(r, "jitter"));
        }
    }
    j->soft_time_limit_ms = (int64_t)rj->desc.soft_time_limit_s * 1000;
    if (json_object_get(override, "soft_time_limit")) {
        j->soft_time_limit_ms = json_duration_ms(json_object_get(override, "soft_time_limit"));
    }

    /* Timing. */
    j->created_ms = now;
    if (opts && opts->eta_ms > 0) {
        j->eta_ms = opts->eta_ms;
    } else if (opts && opts->countdown_ms > 0) {
        j->eta_ms = now + opts->countdown_ms;
    } else if (opts && opts->countdown_ms < 0) {
        job_free(j);
        return bp_err(err, BP_E_INVAL, "countdown must not be negative");
    }
    if (j->eta_ms > now) {
        j->state = JOB_SCHEDULED;
    } else {
        j->eta_ms = 0;
    }
    if (opts && opts->expires_ms > 0) {
        j->expires_ms = opts->expires_ms;
        if (j->expires_ms <= now) {
            job_free(j);
            return bp_err(err, BP_E_INVAL, "expires is already in the past");
        }
        if (j->eta_ms > 0 && j->expires_ms <= j->eta_ms) {
            job_free(j);
            return bp_err(err, BP_E_INVAL, "expires is before the eta: the job could never run");
        }
    }
    if (opts && opts->unique_key && *opts->unique_key &&
        job_set_str(&j->unique_key, opts->unique_key) != BP_OK) {
        job_free(j);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    *out = j;
    return BP_OK;
}

int client_enqueue(app *a, const char *type, const json_t *args, const bp_enqueue_opts *opts,
                   const char *parent_id, char out_id[BP_JOB_ID_SIZE], bp_error *err)
{
    job *j = NULL;
    int status = BP_OK;
    int rc = client_prepare(a, type, args, opts, parent_id, &j, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = a->broker->ops->enqueue(a->broker, &j, 1, &status, err);
    if (rc == BP_OK && out_id) {
        util_strlcpy(out_id, j->id, BP_JOB_ID_SIZE);
    }
    if (rc == BP_OK && status == BP_E_EXISTS) {
        if (j->unique_key) {
            rc = bp_err(err, BP_E_EXISTS, "unique key '%s' is held by live job %s", j->unique_key,
                        j->id);
        } else {
            rc = bp_err(err, BP_E_EXISTS, "a job with id %s already exists", j->id);
        }
    }
    if (rc == BP_OK) {
        log_debug("client", "job enqueued id=%s type=%s queue=%s", j->id, j->type, j->queue);
    }
    job_free(j);
    return rc;
}

int client_get(app *a, const char *id, job **out, bp_error *err)
{
    int rc = a->broker ? a->broker->ops->get(a->broker, id, out, err) : BP_E_NOTFOUND;
    if (rc == BP_E_NOTFOUND && a->store) {
        rc = store_history_get(a->store, id, out, NULL);
        if (rc == BP_E_NOTFOUND) {
            rc = bp_err(err, BP_E_NOTFOUND, "no job %s (neither queued nor in the history)", id);
        }
    }
    return rc;
}

int client_wait(app *a, const char *id, int64_t timeout_ms, job **out, bp_error *err)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : util_now_ms() + timeout_ms;
    bool subscribed = a->broker->ops->wake_fd(a->broker) >= 0 ||
                      a->broker->ops->subscribe(a->broker, BROKER_WAKE_DONE, NULL) == BP_OK;
    *out = NULL;
    for (;;) {
        job *j = NULL;
        int rc = client_get(a, id, &j, err);
        int64_t now, wait;
        if (rc != BP_OK) {
            return rc;
        }
        if (job_state_is_final(j->state)) {
            *out = j;
            return BP_OK;
        }
        now = util_now_ms();
        if (now >= deadline) {
            *out = j;
            return bp_err(err, BP_E_TIMEOUT, "job %s is still %s", id, job_state_name(j->state));
        }
        job_free(j);
        /* Block on "something finished"; re-read at least every second in case a wake-up was
         * lost (another host's worker on a shared Redis, a full socket buffer). */
        wait = deadline - now < 1000 ? deadline - now : 1000;
        if (subscribed) {
            struct pollfd pfd = {a->broker->ops->wake_fd(a->broker), POLLIN, 0};
            if (poll(&pfd, 1, (int)wait) > 0) {
                a->broker->ops->drain_wake(a->broker);
            }
        } else {
            util_sleep_ms(wait < 50 ? wait : 50);
        }
    }
}

bool client_queue_served(app *a, const char *queue)
{
    json_t *stats = NULL, *w;
    size_t i;
    bool served = false;
    if (a->broker->ops->stats(a->broker, &stats, NULL) != BP_OK) {
        return false;
    }
    json_array_foreach(json_object_get(stats, "workers"), i, w)
    {
        int64_t age = json_integer_value(json_object_get(w, "heartbeat_age_ms"));
        if (age < a->cfg->broker_opts.worker_timeout_ms &&
            json_integer_value(json_object_get(json_object_get(w, "queues"), queue)) > 0) {
            served = true;
        }
    }
    json_decref(stats);
    return served;
}
