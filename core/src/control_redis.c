/*
 * control_redis.c - inspect/control over Redis pub/sub and reply lists (control_redis.h).
 */
#include "control_redis.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "redis_conn.h"
#include "util.h"

#define CR_WAIT_SLICE_MS 1000 /* the server notices a stop request at least this often */

struct control_redis_server {
    redis_conn *sub;   /* SUBSCRIBEd to P:control */
    redis_conn *reply; /* RPUSHes the answers */
    char *channel;
    char *worker_id;
    control_handler_fn fn;
    void *ud;
    pthread_t thread;
    atomic_bool stop;
};

/* Open a connection for the control channel; *out_prefix gets the broker's key prefix. */
static int open_conn(const char *broker_url, const char *client_name, bool lazy, redis_conn **out,
                     char **out_prefix, bp_error *err)
{
    redis_conn_options o;
    char *url = NULL, *prefix = NULL;
    int rc = broker_redis_split_url(broker_url, &url, &prefix, err);
    *out = NULL;
    if (rc != BP_OK) {
        return rc;
    }
    redis_conn_options_default(&o);
    o.client_name = client_name;
    o.log_component = "control";
    o.lazy = lazy;
    rc = redis_conn_open(url, &o, out, err);
    free(url);
    if (rc == BP_OK && out_prefix) {
        *out_prefix = prefix;
    } else {
        free(prefix);
    }
    return rc;
}

/* Answer one request message (JSON text). */
static void answer(control_redis_server *s, const char *text)
{
    json_t *req = json_loads(text, 0, NULL), *reply;
    const char *reply_to = json_string_value(json_object_get(req, "reply_to"));
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    json_int_t ttl = json_integer_value(json_object_get(req, "ttl_ms"));
    bp_error err = {0};
    char *out;
    if (!json_is_object(req) || !reply_to || !*reply_to) {
        log_warn("control", "ignored a control message that is not a request: %.120s", text);
        json_decref(req);
        return;
    }
    if (!cmd) {
        reply = json_pack("{s:s, s:b, s:s}", "worker", s->worker_id, "ok", 0, "error",
                          "request must be a JSON object with a string \"cmd\"");
    } else if (!control_destined_for(json_string_value(json_object_get(req, "destination")),
                                     s->worker_id)) {
        reply = json_pack("{s:s, s:b}", "worker", s->worker_id, "skipped", 1);
    } else {
        json_t *r = s->fn(s->ud, cmd, json_object_get(req, "args"), &err);
        reply = r ? json_pack("{s:s, s:b, s:o}", "worker", s->worker_id, "ok", 1, "reply", r)
                  : json_pack("{s:s, s:b, s:s}", "worker", s->worker_id, "ok", 0, "error",
                              err.msg[0] ? err.msg : "failed");
    }
    out = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    if (out) {
        bp_error e = {0};
        redisReply *rs[2] = {NULL, NULL};
        int rc = redis_conn_append(s->reply, &e, "RPUSH %s %s", reply_to, out);
        if (rc == BP_OK) {
            rc = redis_conn_append(s->reply, &e, "PEXPIRE %s %lld", reply_to,
                                   (long long)(ttl > 0 ? ttl : 60000));
            if (rc != BP_OK) {
                redis_conn_drop(s->reply);
            }
        }
        if (rc == BP_OK && (rc = redis_conn_read_replies(s->reply, rs, 2, &e)) == BP_OK) {
            freeReplyObject(rs[0]);
            freeReplyObject(rs[1]);
        }
        if (rc != BP_OK) {
            log_warn("control", "could not deliver the reply to %s: %s", cmd ? cmd : "?", e.msg);
        }
    }
    free(out);
    json_decref(reply);
    json_decref(req);
}

static void *server_main(void *arg)
{
    control_redis_server *s = arg;
    uint64_t gen = 0;
    bool subscribed = false;
    while (!atomic_load(&s->stop)) {
        redisReply *r = NULL;
        bp_error e = {0};
        int rc;
        /* (Re)subscribe after a start or an outage: a subscription does not survive one. */
        if (!subscribed || redis_conn_generation(s->sub) != gen || !redis_conn_is_up(s->sub)) {
            rc = redis_conn_command(s->sub, &r, &e, "SUBSCRIBE %s", s->channel);
            if (rc != BP_OK) {
                int64_t wait = redis_conn_retry_in_ms(s->sub);
                subscribed = false;
                util_sleep_ms(wait < 50 ? 50 : wait > CR_WAIT_SLICE_MS ? CR_WAIT_SLICE_MS : wait);
                continue;
            }
            freeReplyObject(r);
            redis_conn_set_subscribed(s->sub, true);
            subscribed = true;
            gen = redis_conn_generation(s->sub);
            continue;
        }
        rc = redis_conn_wait_reply(s->sub, CR_WAIT_SLICE_MS, &r, &e);
        if (rc == BP_E_TIMEOUT || rc == BP_E_CANCELLED) {
            continue;
        }
        if (rc != BP_OK) {
            subscribed = false;
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            answer(s, r->element[2]->str);
        }
        freeReplyObject(r);
    }
    return NULL;
}

int control_redis_server_start(const char *broker_url, const char *worker_id, control_handler_fn fn,
                               void *ud, control_redis_server **out, bp_error *err)
{
    control_redis_server *s = calloc(1, sizeof *s);
    char *prefix = NULL;
    int rc;
    *out = NULL;
    if (!s || !(s->worker_id = strdup(worker_id))) {
        free(s);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->fn = fn;
    s->ud = ud;
    atomic_init(&s->stop, false);
    rc = open_conn(broker_url, "betpipe-control", true, &s->sub, &prefix, err);
    if (rc == BP_OK) {
        rc = open_conn(broker_url, "betpipe-control-reply", true, &s->reply, NULL, err);
    }
    if (rc == BP_OK && !(s->channel = util_asprintf("%s:control", prefix))) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
    }
    free(prefix);
    if (rc == BP_OK && pthread_create(&s->thread, NULL, server_main, s) != 0) {
        rc = bp_err(err, BP_E_NOMEM, "cannot start the control thread");
    }
    if (rc != BP_OK) {
        redis_conn_close(s->sub);
        redis_conn_close(s->reply);
        free(s->channel);
        free(s->worker_id);
        free(s);
        return rc;
    }
    *out = s;
    return BP_OK;
}

void control_redis_server_stop(control_redis_server *s)
{
    if (!s) {
        return;
    }
    atomic_store(&s->stop, true);
    redis_conn_interrupt(s->sub);
    pthread_join(s->thread, NULL);
    redis_conn_close(s->sub);
    redis_conn_close(s->reply);
    free(s->channel);
    free(s->worker_id);
    free(s);
}

int control_redis_broadcast(const char *broker_url, const char *cmd, const json_t *args,
                            const char *destination, int64_t timeout_ms, json_t **out_replies,
                            bp_error *err)
{
    redis_conn *c = NULL;
    redisReply *r = NULL;
    char *prefix = NULL, *channel = NULL, *reply_to = NULL, *text = NULL;
    char id[BP_JOB_ID_SIZE];
    json_t *req = NULL, *replies = json_object();
    int64_t end = util_now_ms() + timeout_ms, receivers = 0, answered = 0;
    int rc;
    *out_replies = NULL;
    if (!replies) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((rc = open_conn(broker_url, "betpipe-control-client", false, &c, &prefix, err)) != BP_OK) {
        json_decref(replies);
        return rc;
    }
    util_uuid7(id);
    channel = util_asprintf("%s:control", prefix);
    reply_to = util_asprintf("%s:reply:%s", prefix, id);
    req = json_pack("{s:s, s:s, s:O?, s:s?, s:s?, s:I}", "id", id, "cmd", cmd, "args", args,
                    "destination", destination, "reply_to", reply_to, "ttl_ms",
                    (json_int_t)(timeout_ms + 10000));
    text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!channel || !reply_to || !text) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = redis_conn_command(c, &r, err, "PUBLISH %s %s", channel, text)) != BP_OK) {
        goto done;
    }
    receivers = r->integer;
    freeReplyObject(r);
    r = NULL;
    /* Every receiver answers, if only "skipped": wait until all did or time is up. */
    while (answered < receivers) {
        int64_t left = end - util_now_ms();
        char secs[32];
        const char *argv[3] = {"BLPOP", reply_to, secs};
        if (left <= 0) {
            break;
        }
        snprintf(secs, sizeof secs, "%.3f", (double)left / 1000.0);
        rc = redis_conn_command_blocking(c, left, 3, argv, NULL, &r, err);
        if (rc != BP_OK) {
            goto done;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
            json_t *reply = json_loads(r->element[1]->str, 0, NULL);
            answered++;
            if (reply && !json_is_true(json_object_get(reply, "skipped")) &&
                json_is_string(json_object_get(reply, "worker"))) {
                json_object_set(replies, json_string_value(json_object_get(reply, "worker")),
                                reply);
            }
            json_decref(reply);
        }
        freeReplyObject(r);
        r = NULL;
    }
    redis_conn_command(c, NULL, NULL, "DEL %s", reply_to);
    *out_replies = replies;
    replies = NULL;
done:
    if (r) {
        freeReplyObject(r);
    }
    redis_conn_close(c);
    free(prefix);
    free(channel);
    free(reply_to);
    free(text);
    json_decref(req);
    json_decref(replies);
    return rc;
}
