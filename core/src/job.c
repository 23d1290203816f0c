/*
 * job.c - the job record: construction, states, backoff, JSON form.
 */
#include "job.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const state_names[JOB_STATE_COUNT] = {
    "PENDING", "SCHEDULED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED", "EXPIRED", "DEAD",
};

const char *job_state_name(job_state s)
{
    return (unsigned)s < JOB_STATE_COUNT ? state_names[s] : "UNKNOWN";
}

int job_state_parse(const char *name, job_state *out)
{
    for (int i = 0; i < JOB_STATE_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (job_state)i;
            return BP_OK;
        }
    }
    return BP_E_INVAL;
}

bool job_state_is_final(job_state s)
{
    return s == JOB_SUCCESS || s == JOB_FAILURE || s == JOB_REVOKED || s == JOB_EXPIRED ||
           s == JOB_DEAD;
}

job *job_new(void)
{
    job *j = calloc(1, sizeof *j);
    if (!j) {
        return NULL;
    }
    j->args = strdup("{}");
    if (!j->args) {
        free(j);
        return NULL;
    }
    j->priority = BP_PRIORITY_DEFAULT;
    j->max_retries = JOB_DEFAULT_MAX_RETRIES;
    j->retry.interval_start_ms = JOB_DEFAULT_RETRY_START_MS;
    j->retry.interval_step_ms = JOB_DEFAULT_RETRY_STEP_MS;
    j->retry.interval_max_ms = JOB_DEFAULT_RETRY_MAX_MS;
    j->retry.jitter = true;
    j->state = JOB_PENDING;
    j->progress = -1.0;
    j->created_ms = util_now_ms();
    return j;
}

void job_free(job *j)
{
    if (!j) {
        return;
    }
    free(j->type);
    free(j->queue);
    free(j->args);
    free(j->unique_key);
    free(j->parent_id);
    free(j->result);
    free(j->error);
    free(j->worker);
    free(j->progress_msg);
    free(j);
}

int job_set_str(char **field, const char *value)
{
    char *copy = NULL;
    if (value) {
        copy = strdup(value);
        if (!copy) {
            return BP_E_NOMEM;
        }
    }
    free(*field);
    *field = copy;
    return BP_OK;
}

job *job_clone(const job *j)
{
    job *c = malloc(sizeof *c);
    if (!c) {
        return NULL;
    }
    *c = *j;
    c->type = util_strdup(j->type);
    c->queue = util_strdup(j->queue);
    c->args = util_strdup(j->args);
    c->unique_key = util_strdup(j->unique_key);
    c->parent_id = util_strdup(j->parent_id);
    c->result = util_strdup(j->result);
    c->error = util_strdup(j->error);
    c->worker = util_strdup(j->worker);
    c->progress_msg = util_strdup(j->progress_msg);
    if ((j->type && !c->type) || (j->queue && !c->queue) || (j->args && !c->args) ||
        (j->unique_key && !c->unique_key) || (j->parent_id && !c->parent_id) ||
        (j->result && !c->result) || (j->error && !c->error) || (j->worker && !c->worker) ||
        (j->progress_msg && !c->progress_msg)) {
        job_free(c);
        return NULL;
    }
    return c;
}

int64_t job_retry_delay_ms(const retry_policy *p, int n)
{
    double delay;
    if (n < 1) {
        n = 1;
    }
    /* 2^(n-1) - 1 grows fast; cap the exponent so the double never overflows. */
    delay = (double)p->interval_start_ms +
            (double)p->interval_step_ms * (ldexp(1.0, n - 1 > 60 ? 60 : n - 1) - 1.0);
    if (p->interval_max_ms > 0 && delay > (double)p->interval_max_ms) {
        delay = (double)p->interval_max_ms;
    }
    if (delay < 0) {
        delay = 0;
    }
    if (p->jitter) {
        delay = delay / 2.0 + util_rand01() * delay / 2.0;
    }
    return (int64_t)delay;
}

static json_t *time_or_null(int64_t ms)
{
    char buf[40];
    if (ms <= 0) {
        return json_null();
    }
    util_format_iso8601(ms, buf, sizeof buf);
    return json_string(buf);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *parsed_or_null(const char *text)
{
    json_t *v;
    if (!text) {
        return json_null();
    }
    v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(text);
}

json_t *job_to_json(const job *j)
{
    json_t *o = json_object();
    json_t *retry = json_pack("{s:I, s:I, s:I, s:b}", "interval_start_ms",
                              (json_int_t)j->retry.interval_start_ms, "interval_step_ms",
                              (json_int_t)j->retry.interval_step_ms, "interval_max_ms",
                              (json_int_t)j->retry.interval_max_ms, "jitter", j->retry.jitter);
    if (!o || !retry) {
        json_decref(o);
        json_decref(retry);
        return NULL;
    }
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "type", str_or_null(j->type));
    json_object_set_new(o, "queue", str_or_null(j->queue));
    json_object_set_new(o, "state", json_string(job_state_name(j->state)));
    json_object_set_new(o, "args", parsed_or_null(j->args));
    json_object_set_new(o, "priority", json_integer(j->priority));
    json_object_set_new(o, "eta", time_or_null(j->eta_ms));
    json_object_set_new(o, "expires", time_or_null(j->expires_ms));
    json_object_set_new(o, "max_retries", json_integer(j->max_retries));
    json_object_set_new(o, "retry_policy", retry);
    json_object_set_new(o, "soft_time_limit_ms", json_integer(j->soft_time_limit_ms));
    json_object_set_new(o, "unique_key", str_or_null(j->unique_key));
    json_object_set_new(o, "parent_id", str_or_null(j->parent_id));
    json_object_set_new(o, "attempts", json_integer(j->attempts));
    json_object_set_new(o, "crashes", json_integer(j->crashes));
    json_object_set_new(o, "result", parsed_or_null(j->result));
    json_object_set_new(o, "error", str_or_null(j->error));
    json_object_set_new(o, "worker", str_or_null(j->worker));
    json_object_set_new(o, "created", time_or_null(j->created_ms));
    json_object_set_new(o, "started", time_or_null(j->started_ms));
    json_object_set_new(o, "finished", time_or_null(j->finished_ms));
    json_object_set_new(o, "lease_until", time_or_null(j->lease_until_ms));
    if (j->started_ms > 0 && j->finished_ms >= j->started_ms) {
        json_object_set_new(o, "runtime_ms", json_integer(j->finished_ms - j->started_ms));
    }
    if (j->started_ms > 0 && j->created_ms > 0) {
        json_object_set_new(o, "wait_ms", json_integer(j->started_ms - j->created_ms));
    }
    json_object_set_new(o, "progress", j->progress >= 0 ? json_real(j->progress) : json_null());
    json_object_set_new(o, "progress_msg", str_or_null(j->progress_msg));
    return o;
}

static int64_t json_time_ms(const json_t *v)
{
    int64_t ms = 0;
    if (json_is_string(v) && util_parse_iso8601(json_string_value(v), &ms, NULL) == BP_OK) {
        return ms;
    }
    if (json_is_integer(v)) {
        return json_integer_value(v);
    }
    return 0;
}

static int dup_json_text(const json_t *v, char **out)
{
    *out = NULL;
    if (!v || json_is_null(v)) {
        return BP_OK;
    }
    *out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return *out ? BP_OK : BP_E_NOMEM;
}

int job_from_json(const json_t *o, job **out, bp_error *err)
{
    job *j;
    const json_t *v;
    const char *s;
    *out = NULL;
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "id"))) {
        return bp_err(err, BP_E_CORRUPT, "job record is not an object with an id");
    }
    j = job_new();
    if (!j) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    util_strlcpy(j->id, json_string_value(json_object_get(o, "id")), sizeof j->id);
    s = json_string_value(json_object_get(o, "state"));
    if (!s || job_state_parse(s, &j->state) != BP_OK) {
        job_free(j);
        return bp_err(err, BP_E_CORRUPT, "job %s has an unknown state", j->id);
    }
    free(j->args);
    j->args = NULL;
    if (dup_json_text(json_object_get(o, "args"), &j->args) != BP_OK ||
        dup_json_text(json_object_get(o, "result"), &j->result) != BP_OK ||
        job_set_str(&j->type, json_string_value(json_object_get(o, "type"))) != BP_OK ||
        job_set_str(&j->queue, json_string_value(json_object_get(o, "queue"))) != BP_OK ||
        job_set_str(&j->unique_key, json_string_value(json_object_get(o, "unique_key"))) != BP_OK ||
        job_set_str(&j->parent_id, json_string_value(json_object_get(o, "parent_id"))) != BP_OK ||
        job_set_str(&j->error, json_string_value(json_object_get(o, "error"))) != BP_OK ||
        job_set_str(&j->worker, json_string_value(json_object_get(o, "worker"))) != BP_OK ||
        job_set_str(&j->progress_msg, json_string_value(json_object_get(o, "progress_msg"))) !=
            BP_OK) {
        job_free(j);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (!j->args && !(j->args = strdup("{}"))) {
        job_free(j);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    j->priority = (int)json_integer_value(json_object_get(o, "priority"));
    j->max_retries = (int)json_integer_value(json_object_get(o, "max_retries"));
    j->soft_time_limit_ms = json_integer_value(json_object_get(o, "soft_time_limit_ms"));
    j->attempts = (int)json_integer_value(json_object_get(o, "attempts"));
    j->crashes = (int)json_integer_value(json_object_get(o, "crashes"));
    j->eta_ms = json_time_ms(json_object_get(o, "eta"));
    j->expires_ms = json_time_ms(json_object_get(o, "expires"));
    j->created_ms = json_time_ms(json_object_get(o, "created"));
    j->started_ms = json_time_ms(json_object_get(o, "started"));
    j->finished_ms = json_time_ms(json_object_get(o, "finished"));
    j->lease_until_ms = json_time_ms(json_object_get(o, "lease_until"));
    v = json_object_get(o, "progress");
    j->progress = json_is_number(v) ? json_number_value(v) : -1.0;
    v = json_object_get(o, "retry_policy");
    if (json_is_object(v)) {
        j->retry.interval_start_ms = json_integer_value(json_object_get(v, "interval_start_ms"));
        j->retry.interval_step_ms = json_integer_value(json_object_get(v, "interval_step_ms"));
        j->retry.interval_max_ms = json_integer_value(json_object_get(v, "interval_max_ms"));
        j->retry.jitter = json_is_true(json_object_get(v, "jitter"));
    }
    *out = j;
    return BP_OK;
}
