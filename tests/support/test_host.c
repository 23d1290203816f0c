/*
 * test_host.c - a working bp_host for tests (see test_host.h).
 *
 * Each table carries a pointer back to its record in host->core, which is how every callback
 * knows which plugin is speaking - the same trick the daemon's host uses.
 */
#include "test_host.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support.h"
#include "util.h"

typedef struct host_rec {
    bp_host host;
    struct bpt_hosts *owner;
    char *plugin;
    json_t *config;
    bool released;
    struct host_rec *next;
} host_rec;

typedef struct config_rec {
    char *plugin;
    json_t *config;
    struct config_rec *next;
} config_rec;

struct bpt_hosts {
    pthread_mutex_t lock;
    registry *reg;
    host_rec *hosts;
    config_rec *configs;
    int created, live;
    char *log;
    size_t log_len, log_cap;
    json_t *enqueued;
    char *data_dir;
};

static host_rec *rec_of(const bp_host *h)
{
    return h->core;
}

static void append_log(bpt_hosts *hs, const char *line)
{
    size_t n = strlen(line);
    pthread_mutex_lock(&hs->lock);
    if (hs->log_len + n + 2 > hs->log_cap) {
        size_t cap = hs->log_cap ? hs->log_cap * 2 : 4096;
        while (cap < hs->log_len + n + 2) {
            cap *= 2;
        }
        char *grown = realloc(hs->log, cap);
        cr_assert(grown);
        hs->log = grown;
        hs->log_cap = cap;
    }
    memcpy(hs->log + hs->log_len, line, n);
    hs->log_len += n;
    hs->log[hs->log_len++] = '\n';
    hs->log[hs->log_len] = '\0';
    pthread_mutex_unlock(&hs->lock);
}

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

static BP_PRINTF(3, 4) void host_log(const bp_host *h, int level, const char *fmt, ...)
{
    char msg[1024], line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "%s %s %s", h->plugin_name,
             level >= 0 && level <= BP_LOG_TRACE ? level_names[level] : "?", msg);
    append_log(rec_of(h)->owner, line);
}

static int host_log_enabled(const bp_host *h, int level)
{
    (void)h;
    return level >= BP_LOG_ERROR && level <= BP_LOG_TRACE;
}

static const json_t *host_config(const bp_host *h)
{
    return rec_of(h)->config;
}

static const char *host_data_dir(const bp_host *h)
{
    bpt_hosts *hs = rec_of(h)->owner;
    pthread_mutex_lock(&hs->lock);
    if (!hs->data_dir) {
        hs->data_dir = bpt_tmpdir("host");
    }
    pthread_mutex_unlock(&hs->lock);
    return hs->data_dir;
}

static int64_t host_now_ms(const bp_host *h)
{
    (void)h;
    return util_now_ms();
}

static int64_t host_mono_ns(const bp_host *h)
{
    (void)h;
    return util_mono_ns();
}

static void host_progress(const bp_job *job, double fraction, const char *msg)
{
    char line[600];
    snprintf(line, sizeof line, "%s PROGRESS %.2f %s", job->host->plugin_name, fraction,
             msg ? msg : "");
    append_log(rec_of(job->host)->owner, line);
}

static int host_cancelled(const bp_job *job)
{
    return job->soft_deadline_ms > 0 && util_now_ms() >= job->soft_deadline_ms;
}

static int host_enqueue(const bp_host *h, const char *type, const json_t *args,
                        const bp_enqueue_opts *opts, char out_id[BP_JOB_ID_SIZE], bp_error *err)
{
    bpt_hosts *hs = rec_of(h)->owner;
    char id[40];
    (void)opts;
    if (hs->reg) {
        const registry_job *jt = registry_find_job(hs->reg, type);
        if (!jt) {
            return bp_err(err, BP_E_NOTFOUND, "no job type '%s' is registered", type);
        }
        int rc = jsonschema_validate(jt->args_schema, args, err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    util_uuid7(id);
    if (out_id) {
        util_strlcpy(out_id, id, BP_JOB_ID_SIZE);
    }
    pthread_mutex_lock(&hs->lock);
    json_array_append_new(hs->enqueued, json_pack("{s:s, s:s, s:o*}", "id", id, "type", type,
                                                  "args", json_deep_copy(args)));
    pthread_mutex_unlock(&hs->lock);
    return BP_OK;
}

static int host_find_model(const bp_host *h, const char *name, const bp_model_type **out_desc,
                           void **out_plugin_state)
{
    const registry_model *m = registry_find_model(rec_of(h)->owner->reg, name);
    if (!m) {
        return BP_E_NOTFOUND;
    }
    *out_desc = &m->desc;
    *out_plugin_state = m->plugin_state;
    return BP_OK;
}

static int host_find_collector(const bp_host *h, const char *name,
                               const bp_collector_type **out_desc, void **out_plugin_state)
{
    const registry_collector *c = registry_find_collector(rec_of(h)->owner->reg, name);
    if (!c) {
        return BP_E_NOTFOUND;
    }
    *out_desc = &c->desc;
    *out_plugin_state = c->plugin_state;
    return BP_OK;
}

static int host_find_notifier(const bp_host *h, const char *name, const bp_notifier_type **out_desc,
                              void **out_plugin_state)
{
    const registry_notifier *n = registry_find_notifier(rec_of(h)->owner->reg, name);
    if (!n) {
        return BP_E_NOTFOUND;
    }
    *out_desc = &n->desc;
    *out_plugin_state = n->plugin_state;
    return BP_OK;
}

static json_t *host_list_names(const bp_host *h, const char *kind)
{
    registry_kind k;
    registry *reg = rec_of(h)->owner->reg;
    if (!reg || registry_kind_parse(kind, &k, NULL) != BP_OK) {
        return json_array();
    }
    return registry_names(reg, k);
}

bpt_hosts *bpt_hosts_new(registry *reg)
{
    bpt_hosts *hs = calloc(1, sizeof *hs);
    cr_assert(hs);
    pthread_mutex_init(&hs->lock, NULL);
    hs->reg = reg;
    hs->enqueued = json_array();
    return hs;
}

void bpt_hosts_free(bpt_hosts *hs)
{
    if (!hs) {
        return;
    }
    while (hs->hosts) {
        host_rec *next = hs->hosts->next;
        json_decref(hs->hosts->config);
        free(hs->hosts->plugin);
        free(hs->hosts);
        hs->hosts = next;
    }
    while (hs->configs) {
        config_rec *next = hs->configs->next;
        json_decref(hs->configs->config);
        free(hs->configs->plugin);
        free(hs->configs);
        hs->configs = next;
    }
    if (hs->data_dir) {
        bpt_rm_rf(hs->data_dir);
        free(hs->data_dir);
    }
    json_decref(hs->enqueued);
    free(hs->log);
    pthread_mutex_destroy(&hs->lock);
    free(hs);
}

const bp_host *bpt_host_for(void *ud, const char *plugin_name)
{
    bpt_hosts *hs = ud;
    host_rec *r = calloc(1, sizeof *r);
    cr_assert(r);
    r->owner = hs;
    r->plugin = util_strdup(plugin_name);
    cr_assert(r->plugin);
    pthread_mutex_lock(&hs->lock);
    for (config_rec *c = hs->configs; c; c = c->next) {
        if (strcmp(c->plugin, plugin_name) == 0) {
            r->config = json_deep_copy(c->config);
        }
    }
    if (!r->config) {
        r->config = json_object();
    }
    r->host = (bp_host){
        .struct_size = (uint32_t)sizeof(bp_host),
        .abi_major = BP_ABI_MAJOR,
        .abi_minor = BP_ABI_MINOR,
        .plugin_name = r->plugin,
        .core = r,
        .log = host_log,
        .log_enabled = host_log_enabled,
        .config = host_config,
        .data_dir = host_data_dir,
        .now_ms = host_now_ms,
        .mono_ns = host_mono_ns,
        .progress = host_progress,
        .cancelled = host_cancelled,
        .enqueue = host_enqueue,
        .find_model = host_find_model,
        .find_collector = host_find_collector,
        .find_notifier = host_find_notifier,
        .list_names = host_list_names,
    };
    r->next = hs->hosts;
    hs->hosts = r;
    hs->created++;
    hs->live++;
    pthread_mutex_unlock(&hs->lock);
    return &r->host;
}

void bpt_host_release(void *ud, const bp_host *host)
{
    bpt_hosts *hs = ud;
    host_rec *r = rec_of(host);
    pthread_mutex_lock(&hs->lock);
    cr_assert(!r->released, "host table of plugin '%s' released twice", r->plugin);
    r->released = true;
    hs->live--;
    pthread_mutex_unlock(&hs->lock);
}

void bpt_hosts_set_config(bpt_hosts *hs, const char *plugin_name, json_t *config)
{
    config_rec *c = calloc(1, sizeof *c);
    cr_assert(c);
    c->plugin = util_strdup(plugin_name);
    c->config = config;
    pthread_mutex_lock(&hs->lock);
    c->next = hs->configs;
    hs->configs = c;
    pthread_mutex_unlock(&hs->lock);
}

int bpt_hosts_created(bpt_hosts *hs)
{
    pthread_mutex_lock(&hs->lock);
    int n = hs->created;
    pthread_mutex_unlock(&hs->lock);
    return n;
}

int bpt_hosts_live(bpt_hosts *hs)
{
    pthread_mutex_lock(&hs->lock);
    int n = hs->live;
    pthread_mutex_unlock(&hs->lock);
    return n;
}

char *bpt_hosts_log(bpt_hosts *hs)
{
    pthread_mutex_lock(&hs->lock);
    char *copy = util_strdup(hs->log ? hs->log : "");
    pthread_mutex_unlock(&hs->lock);
    cr_assert(copy);
    return copy;
}

bool bpt_hosts_log_contains(bpt_hosts *hs, const char *needle)
{
    char *text = bpt_hosts_log(hs);
    bool found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

json_t *bpt_hosts_enqueued(bpt_hosts *hs)
{
    pthread_mutex_lock(&hs->lock);
    json_t *copy = json_deep_copy(hs->enqueued);
    pthread_mutex_unlock(&hs->lock);
    return copy;
}
