/*
 * registry.c - the table of job types, models, collectors and notifiers that plugins register.
 *
 * The interesting part is the boundary with the plugin. A descriptor arrives as a pointer into
 * a shared object built against some version of betpipe/registry.h, so the first thing we do is
 * read its struct_size and copy exactly that many bytes (never more than our own struct) into a
 * zeroed copy: a field the plugin was built without reads as zero, a field we do not know is
 * never read. Everything after that works on the copy. Strings are duplicated too, so nothing
 * the registry hands out points into plugin data, only function pointers point into its code.
 *
 * Registration is transactional in the Redis module spirit: a plugin registers only while its
 * init runs, and if init fails every entry it made is removed again. The bp_registry table the
 * plugin received lives in a "session" that outlives the transaction, so a plugin that keeps the
 * pointer and calls it later gets a clean BP_E_STATE instead of a use-after-free.
 *
 * Storage is a plain array of entries per kind. There are a few dozen items at most, lookups are
 * a strcmp scan over cache-friendly pointers, and after startup nothing changes, so concurrent
 * readers need no lock.
 */
#include "registry.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define REGISTRY_NAME_MAX 63

typedef struct reg_session reg_session;

typedef struct reg_entry {
    registry_kind kind;
    reg_session *owner;
    bool committed;
    char *strings[5]; /* the copies desc's string fields point to */
    union {
        registry_job job;
        registry_model model;
        registry_collector collector;
        registry_notifier notifier;
    } u;
} reg_entry;

struct reg_session {
    bp_registry table; /* handed to the plugin; table.core points back here */
    registry *reg;
    char *plugin;
    const bp_host *host;
    atomic_bool open;
    int refusal_code; /* first add_* refused during the transaction, 0 if none */
    char refusal[BP_ERROR_MSG_MAX];
    reg_session *next;
};

struct registry {
    reg_entry **entries[REGISTRY_KINDS];
    size_t n[REGISTRY_KINDS];
    size_t cap[REGISTRY_KINDS];
    reg_session *sessions; /* every session ever begun, newest first */
    reg_session *current;  /* the open one, or NULL */
};

static const char *const kind_names[REGISTRY_KINDS] = {"job", "model", "collector", "notifier"};
static const char *const kind_labels[REGISTRY_KINDS] = {"job type", "model", "collector",
                                                        "notifier"};

const char *registry_kind_name(registry_kind kind)
{
    return (unsigned)kind < REGISTRY_KINDS ? kind_names[kind] : "?";
}

int registry_kind_parse(const char *name, registry_kind *out_kind, bp_error *err)
{
    static const struct {
        const char *name;
        registry_kind kind;
    } aliases[] = {
        {"job", REGISTRY_JOB},
        {"jobs", REGISTRY_JOB},
        {"job_type", REGISTRY_JOB},
        {"job_types", REGISTRY_JOB},
        {"model", REGISTRY_MODEL},
        {"models", REGISTRY_MODEL},
        {"collector", REGISTRY_COLLECTOR},
        {"collectors", REGISTRY_COLLECTOR},
        {"notifier", REGISTRY_NOTIFIER},
        {"notifiers", REGISTRY_NOTIFIER},
    };
    for (size_t i = 0; name && i < BP_ARRAY_LEN(aliases); i++) {
        if (strcmp(name, aliases[i].name) == 0) {
            *out_kind = aliases[i].kind;
            return BP_OK;
        }
    }
    return bp_err(err, BP_E_INVAL, "unknown kind '%s' (expected job, model, collector or notifier)",
                  name ? name : "(null)");
}

/* ============================================================================================
 * Entries
 * ========================================================================================== */

static const char *entry_name(const reg_entry *e)
{
    switch (e->kind) {
    case REGISTRY_JOB: return e->u.job.desc.name;
    case REGISTRY_MODEL: return e->u.model.desc.name;
    case REGISTRY_COLLECTOR: return e->u.collector.desc.name;
    case REGISTRY_NOTIFIER:
    default: return e->u.notifier.desc.name;
    }
}

static jsonschema *entry_schema(const reg_entry *e)
{
    switch (e->kind) {
    case REGISTRY_JOB: return e->u.job.args_schema;
    case REGISTRY_MODEL: return e->u.model.params_schema;
    case REGISTRY_COLLECTOR: return e->u.collector.request_schema;
    case REGISTRY_NOTIFIER:
    default: return e->u.notifier.target_schema;
    }
}

static void entry_free(reg_entry *e)
{
    if (!e) {
        return;
    }
    jsonschema_free(entry_schema(e));
    for (size_t i = 0; i < BP_ARRAY_LEN(e->strings); i++) {
        free(e->strings[i]);
    }
    free(e);
}

/* Every kind's public struct starts its tail the same way; set the owner fields through this. */
static void entry_set_owner(reg_entry *e, const char *plugin, const bp_host *host, void *state)
{
    switch (e->kind) {
    case REGISTRY_JOB:
        e->u.job.plugin = plugin;
        e->u.job.host = host;
        e->u.job.plugin_state = state;
        break;
    case REGISTRY_MODEL:
        e->u.model.plugin = plugin;
        e->u.model.host = host;
        e->u.model.plugin_state = state;
        break;
    case REGISTRY_COLLECTOR:
        e->u.collector.plugin = plugin;
        e->u.collector.host = host;
        e->u.collector.plugin_state = state;
        break;
    case REGISTRY_NOTIFIER:
    default:
        e->u.notifier.plugin = plugin;
        e->u.notifier.host = host;
        e->u.notifier.plugin_state = state;
        break;
    }
}

static const reg_entry *find_entry(const registry *reg, registry_kind kind, const char *name,
                                   bool committed_only)
{
    if (!reg || !name) {
        return NULL;
    }
    for (size_t i = 0; i < reg->n[kind]; i++) {
        const reg_entry *e = reg->entries[kind][i];
        if ((e->committed || !committed_only) && strcmp(entry_name(e), name) == 0) {
            return e;
        }
    }
    return NULL;
}

static int add_entry(registry *reg, reg_entry *e)
{
    registry_kind k = e->kind;
    if (reg->n[k] == reg->cap[k]) {
        size_t cap = reg->cap[k] ? reg->cap[k] * 2 : 16;
        reg_entry **grown = realloc(reg->entries[k], cap * sizeof *grown);
        if (!grown) {
            return BP_E_NOMEM;
        }
        reg->entries[k] = grown;
        reg->cap[k] = cap;
    }
    reg->entries[k][reg->n[k]++] = e;
    return BP_OK;
}

/* Remove (and free) the entries for which drop() is true, keeping the order of the rest. */
static void remove_entries(registry *reg, bool (*drop)(const reg_entry *, const void *),
                           const void *ud)
{
    for (int k = 0; k < REGISTRY_KINDS; k++) {
        size_t o = 0;
        for (size_t i = 0; i < reg->n[k]; i++) {
            reg_entry *e = reg->entries[k][i];
            if (drop(e, ud)) {
                entry_free(e);
            } else {
                reg->entries[k][o++] = e;
            }
        }
        reg->n[k] = o;
    }
}

/* ============================================================================================
 * Checking what a plugin hands us
 * ========================================================================================== */

static bool name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* [a-z0-9_]+, at most REGISTRY_NAME_MAX characters. */
static bool simple_name_ok(const char *s)
{
    size_t n = 0;
    if (!s || !*s) {
        return false;
    }
    for (; s[n]; n++) {
        if (!name_char_ok(s[n]) || n >= REGISTRY_NAME_MAX) {
            return false;
        }
    }
    return true;
}

/* "<area>.<verb>": two non-empty [a-z0-9_]+ parts. */
static bool job_name_ok(const char *s)
{
    const char *dot = s ? strchr(s, '.') : NULL;
    size_t n = 0;
    if (!dot || dot == s || !dot[1] || strchr(dot + 1, '.') || strlen(s) > REGISTRY_NAME_MAX) {
        return false;
    }
    for (; s[n]; n++) {
        if (s + n != dot && !name_char_ok(s[n])) {
            return false;
        }
    }
    return true;
}

/* A name for messages: the string if it is printable and short, else a placeholder. */
static void shown_name(const char *s, char *buf, size_t len)
{
    size_t o = 0;
    if (!s) {
        util_strlcpy(buf, "(null)", len);
        return;
    }
    for (; s[o] && o + 4 < len && o < 64; o++) {
        buf[o] = ((unsigned char)s[o] < 0x20 || s[o] == 0x7f) ? '?' : s[o];
    }
    if (s[o]) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

/*
 * Copy a descriptor across the ABI boundary: read its struct_size, refuse it below the ABI 1.0
 * size, then copy min(struct_size, sizeof ours) bytes into `dst` (already zeroed) and record the
 * size actually taken.
 */
static int copy_descriptor(void *dst, size_t ours, size_t min_1_0, const void *src,
                           const reg_session *ss, const char *label, bp_error *err)
{
    uint32_t declared;
    size_t take;
    memcpy(&declared, src, sizeof declared);
    if (declared < min_1_0) {
        return bp_err(err, BP_E_ABI,
                      "plugin '%s': %s descriptor declares struct_size %u, smaller than the %zu "
                      "bytes of ABI 1.0 (struct_size not set, or not a %s descriptor)",
                      ss->plugin, label, (unsigned)declared, min_1_0, label);
    }
    take = declared < ours ? declared : ours;
    memcpy(dst, src, take);
    declared = (uint32_t)take;
    memcpy(dst, &declared, sizeof declared);
    return BP_OK;
}

/* Duplicate a descriptor string into the entry; NULL stays NULL unless `empty_for_null`. */
static int own_string(reg_entry *e, size_t slot, const char **field, bool empty_for_null)
{
    const char *src = *field ? *field : (empty_for_null ? "" : NULL);
    if (!src) {
        return BP_OK;
    }
    e->strings[slot] = util_strdup(src);
    if (!e->strings[slot]) {
        return BP_E_NOMEM;
    }
    *field = e->strings[slot];
    return BP_OK;
}

static int compile_schema(const reg_session *ss, const char *label, const char *name,
                          const char *which, const char *text, jsonschema **out, bp_error *err)
{
    bp_error serr = {0};
    int rc = jsonschema_compile(text, out, &serr);
    if (rc != BP_OK) {
        return bp_err(err, rc, "plugin '%s': %s '%s': bad %s: %s", ss->plugin, label, name, which,
                      serr.msg);
    }
    return BP_OK;
}

/* ============================================================================================
 * The bp_registry functions a plugin calls
 * ========================================================================================== */

/* Remember the first refusal: registry_commit turns it into a failed load even if the plugin
 * ignored the status and returned BP_OK from init. */
static int refuse(reg_session *ss, int code, bp_error *err, const bp_error *why)
{
    if (ss->refusal_code == 0) {
        ss->refusal_code = code;
        util_strlcpy(ss->refusal, why->msg, sizeof ss->refusal);
    }
    if (err) {
        *err = *why;
    }
    return code;
}

/* Common preamble of every add_*: the table is ours and its transaction is open. */
static int session_of(bp_registry *table, const void *desc, registry_kind kind, reg_session **out,
                      bp_error *err)
{
    reg_session *ss = table ? table->core : NULL;
    *out = NULL;
    if (!ss) {
        return bp_err(err, BP_E_INVAL, "add_%s: no registry", kind_names[kind]);
    }
    if (!atomic_load(&ss->open)) {
        return bp_err(err, BP_E_STATE,
                      "plugin '%s': add_%s called after init returned; capabilities can only "
                      "be registered inside init",
                      ss->plugin, kind == REGISTRY_JOB ? "job_type" : kind_names[kind]);
    }
    if (!desc) {
        return bp_err(err, BP_E_INVAL, "plugin '%s': add_%s with a NULL descriptor", ss->plugin,
                      kind == REGISTRY_JOB ? "job_type" : kind_names[kind]);
    }
    *out = ss;
    return BP_OK;
}

/* Checks shared by every kind once the descriptor is copied: the name, and uniqueness. */
static int check_name_and_add(reg_session *ss, reg_entry *e, bp_error *err)
{
    registry *reg = ss->reg;
    const char *label = kind_labels[e->kind];
    const char *name = entry_name(e);
    char shown[80];
    const reg_entry *other;
    shown_name(name, shown, sizeof shown);
    if (e->kind == REGISTRY_JOB ? !job_name_ok(name) : !simple_name_ok(name)) {
        return bp_err(err, BP_E_INVAL,
                      e->kind == REGISTRY_JOB
                          ? "plugin '%s': %s name '%s' is invalid: expected '<area>.<verb>' made "
                            "of a-z, 0-9 and _ (e.g. 'data.import'), at most 63 characters"
                          : "plugin '%s': %s name '%s' is invalid: expected a-z, 0-9 and _ "
                            "only, at most 63 characters",
                      ss->plugin, label, shown);
    }
    other = find_entry(reg, e->kind, name, false);
    if (other && other->owner && strcmp(other->owner->plugin, ss->plugin) == 0) {
        return bp_err(err, BP_E_EXISTS, "plugin '%s' registers %s '%s' twice", ss->plugin, label,
                      name);
    }
    if (other) {
        return bp_err(err, BP_E_EXISTS, "plugin '%s': %s '%s' is already registered by plugin '%s'",
                      ss->plugin, label, name, other->owner ? other->owner->plugin : "?");
    }
    if (add_entry(reg, e) != BP_OK) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    return BP_OK;
}

/* The part of every add_* after the kind-specific checks: own the entry or free it. */
static int finish_add(reg_session *ss, reg_entry *e, int rc, bp_error *err, bp_error *why)
{
    if (rc == BP_OK) {
        rc = check_name_and_add(ss, e, why);
    }
    if (rc != BP_OK) {
        entry_free(e);
        return refuse(ss, rc, err, why);
    }
    return BP_OK;
}

static reg_entry *entry_new(reg_session *ss, registry_kind kind)
{
    reg_entry *e = calloc(1, sizeof *e);
    if (e) {
        e->kind = kind;
        e->owner = ss;
        entry_set_owner(e, ss->plugin, ss->host, NULL);
    }
    return e;
}

/* "model,league": names of [A-Za-z0-9_] separated by single commas. */
static bool unique_args_ok(const char *s)
{
    bool in_name = false;
    for (; *s; s++) {
        if (*s == ',') {
            if (!in_name) {
                return false;
            }
            in_name = false;
        } else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                   (*s >= '0' && *s <= '9') || *s == '_') {
            in_name = true;
        } else {
            return false;
        }
    }
    return in_name;
}

static int add_job_type(bp_registry *table, const bp_job_type *desc, bp_error *err)
{
    reg_session *ss;
    reg_entry *e;
    bp_error why = {0};
    char shown[80];
    int rc = session_of(table, desc, REGISTRY_JOB, &ss, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!(e = entry_new(ss, REGISTRY_JOB))) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    bp_job_type *d = &e->u.job.desc;
    rc = copy_descriptor(d, sizeof *d, REGISTRY_JOB_TYPE_SIZE_1_0, desc, ss, "job type", &why);
    if (rc == BP_OK) {
        shown_name(d->name, shown, sizeof shown);
        if (!d->name) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': job type without a name", ss->plugin);
        } else if (own_string(e, 0, &d->name, false) || own_string(e, 1, &d->description, true) ||
                   own_string(e, 2, &d->queue, false) || own_string(e, 3, &d->args_schema, false) ||
                   own_string(e, 4, &d->unique_args, false)) {
            rc = bp_err(&why, BP_E_NOMEM, "out of memory");
        } else if (!d->run) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': job type '%s' has no run function",
                        ss->plugin, shown);
        } else if (!simple_name_ok(d->queue)) {
            rc = bp_err(&why, BP_E_INVAL,
                        "plugin '%s': job type '%s': default queue '%s' is missing or invalid "
                        "(a-z, 0-9 and _ only, e.g. 'data_queue')",
                        ss->plugin, shown, d->queue ? d->queue : "(null)");
        } else if (d->flags & ~(int32_t)BP_JOB_F_ISOLATE) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': job type '%s': unknown flags 0x%x",
                        ss->plugin, shown, (unsigned)(d->flags & ~(int32_t)BP_JOB_F_ISOLATE));
        } else if (d->unique_args && !unique_args_ok(d->unique_args)) {
            rc = bp_err(&why, BP_E_INVAL,
                        "plugin '%s': job type '%s': unique_args '%s' is not a comma-separated "
                        "list of argument names",
                        ss->plugin, shown, d->unique_args);
        } else if (d->soft_time_limit_s < 0) {
            rc = bp_err(&why, BP_E_INVAL,
                        "plugin '%s': job type '%s': soft_time_limit_s is negative (%d)",
                        ss->plugin, shown, (int)d->soft_time_limit_s);
        } else if (d->max_retries < -1) {
            rc = bp_err(&why, BP_E_INVAL,
                        "plugin '%s': job type '%s': max_retries must be -1 (engine default) or "
                        ">= 0, got %d",
                        ss->plugin, shown, (int)d->max_retries);
        } else if (job_name_ok(d->name)) {
            /* the schema is compiled only for a well-formed name, so the message names it */
            rc = compile_schema(ss, "job type", d->name, "args_schema", d->args_schema,
                                &e->u.job.args_schema, &why);
        }
    }
    return finish_add(ss, e, rc, err, &why);
}

static int add_model(bp_registry *table, const bp_model_type *desc, bp_error *err)
{
    reg_session *ss;
    reg_entry *e;
    bp_error why = {0};
    char shown[80];
    int rc = session_of(table, desc, REGISTRY_MODEL, &ss, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!(e = entry_new(ss, REGISTRY_MODEL))) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    bp_model_type *d = &e->u.model.desc;
    rc = copy_descriptor(d, sizeof *d, REGISTRY_MODEL_TYPE_SIZE_1_0, desc, ss, "model", &why);
    if (rc == BP_OK) {
        const char *missing = !d->create    ? "create"
                              : !d->fit     ? "fit"
                              : !d->predict ? "predict"
                              : !d->save    ? "save"
                              : !d->load    ? "load"
                              : !d->destroy ? "destroy"
                                            : NULL;
        shown_name(d->name, shown, sizeof shown);
        if (!d->name) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': model without a name", ss->plugin);
        } else if (own_string(e, 0, &d->name, false) || own_string(e, 1, &d->description, true) ||
                   own_string(e, 2, &d->params_schema, false)) {
            rc = bp_err(&why, BP_E_NOMEM, "out of memory");
        } else if (missing) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': model '%s' has no %s function", ss->plugin,
                        shown, missing);
        } else if (d->state_version < 0) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': model '%s': state_version is negative",
                        ss->plugin, shown);
        } else if (simple_name_ok(d->name)) {
            rc = compile_schema(ss, "model", d->name, "params_schema", d->params_schema,
                                &e->u.model.params_schema, &why);
        }
    }
    return finish_add(ss, e, rc, err, &why);
}

#define COLLECT_KNOWN_BITS                                                                         \
    (BP_COLLECT_FIXTURES | BP_COLLECT_RESULTS | BP_COLLECT_ODDS | BP_COLLECT_STATS |               \
     BP_COLLECT_LIVE | BP_COLLECT_STATIC)

static int add_collector(bp_registry *table, const bp_collector_type *desc, bp_error *err)
{
    reg_session *ss;
    reg_entry *e;
    bp_error why = {0};
    char shown[80];
    int rc = session_of(table, desc, REGISTRY_COLLECTOR, &ss, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!(e = entry_new(ss, REGISTRY_COLLECTOR))) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    bp_collector_type *d = &e->u.collector.desc;
    rc = copy_descriptor(d, sizeof *d, REGISTRY_COLLECTOR_TYPE_SIZE_1_0, desc, ss, "collector",
                         &why);
    if (rc == BP_OK) {
        shown_name(d->name, shown, sizeof shown);
        if (!d->name) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': collector without a name", ss->plugin);
        } else if (own_string(e, 0, &d->name, false) || own_string(e, 1, &d->description, true) ||
                   own_string(e, 2, &d->request_schema, false)) {
            rc = bp_err(&why, BP_E_NOMEM, "out of memory");
        } else if (!d->collect) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': collector '%s' has no collect function",
                        ss->plugin, shown);
        } else if (d->provides == 0 || (d->provides & ~(int32_t)COLLECT_KNOWN_BITS)) {
            rc = bp_err(&why, BP_E_INVAL,
                        "plugin '%s': collector '%s': provides 0x%x must be a non-empty set of "
                        "BP_COLLECT_* bits",
                        ss->plugin, shown, (unsigned)d->provides);
        } else if (simple_name_ok(d->name)) {
            rc = compile_schema(ss, "collector", d->name, "request_schema", d->request_schema,
                                &e->u.collector.request_schema, &why);
        }
    }
    return finish_add(ss, e, rc, err, &why);
}

static int add_notifier(bp_registry *table, const bp_notifier_type *desc, bp_error *err)
{
    reg_session *ss;
    reg_entry *e;
    bp_error why = {0};
    char shown[80];
    int rc = session_of(table, desc, REGISTRY_NOTIFIER, &ss, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (!(e = entry_new(ss, REGISTRY_NOTIFIER))) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    bp_notifier_type *d = &e->u.notifier.desc;
    rc = copy_descriptor(d, sizeof *d, REGISTRY_NOTIFIER_TYPE_SIZE_1_0, desc, ss, "notifier", &why);
    if (rc == BP_OK) {
        shown_name(d->name, shown, sizeof shown);
        if (!d->name) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': notifier without a name", ss->plugin);
        } else if (own_string(e, 0, &d->name, false) || own_string(e, 1, &d->description, true) ||
                   own_string(e, 2, &d->target_schema, false)) {
            rc = bp_err(&why, BP_E_NOMEM, "out of memory");
        } else if (!d->send) {
            rc = bp_err(&why, BP_E_INVAL, "plugin '%s': notifier '%s' has no send function",
                        ss->plugin, shown);
        } else if (simple_name_ok(d->name)) {
            rc = compile_schema(ss, "notifier", d->name, "target_schema", d->target_schema,
                                &e->u.notifier.target_schema, &why);
        }
    }
    return finish_add(ss, e, rc, err, &why);
}

/* ============================================================================================
 * Transactions
 * ========================================================================================== */

int registry_new(registry **out, bp_error *err)
{
    registry *reg = calloc(1, sizeof *reg);
    *out = NULL;
    if (!reg) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    *out = reg;
    return BP_OK;
}

void registry_free(registry *reg)
{
    if (!reg) {
        return;
    }
    registry_rollback(reg);
    for (int k = 0; k < REGISTRY_KINDS; k++) {
        for (size_t i = 0; i < reg->n[k]; i++) {
            entry_free(reg->entries[k][i]);
        }
        free(reg->entries[k]);
    }
    while (reg->sessions) {
        reg_session *next = reg->sessions->next;
        free(reg->sessions->plugin);
        free(reg->sessions);
        reg->sessions = next;
    }
    free(reg);
}

int registry_begin(registry *reg, const char *plugin_name, const bp_host *host,
                   bp_registry **out_table, bp_error *err)
{
    reg_session *ss;
    *out_table = NULL;
    if (reg->current) {
        return bp_err(err, BP_E_STATE,
                      "registry: cannot begin for plugin '%s' while plugin '%s' is registering",
                      plugin_name, reg->current->plugin);
    }
    ss = calloc(1, sizeof *ss);
    if (!ss || !(ss->plugin = util_strdup(plugin_name))) {
        free(ss);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    ss->table.struct_size = (uint32_t)sizeof ss->table;
    ss->table.core = ss;
    ss->table.add_job_type = add_job_type;
    ss->table.add_model = add_model;
    ss->table.add_collector = add_collector;
    ss->table.add_notifier = add_notifier;
    ss->reg = reg;
    ss->host = host;
    atomic_store(&ss->open, true);
    ss->next = reg->sessions;
    reg->sessions = ss;
    reg->current = ss;
    *out_table = &ss->table;
    return BP_OK;
}

static bool owned_by(const reg_entry *e, const void *session)
{
    return e->owner == session;
}

void registry_rollback(registry *reg)
{
    reg_session *ss = reg ? reg->current : NULL;
    if (!ss) {
        return;
    }
    atomic_store(&ss->open, false);
    remove_entries(reg, owned_by, ss);
    reg->current = NULL;
}

int registry_commit(registry *reg, void *plugin_state, bp_error *err)
{
    reg_session *ss = reg->current;
    if (!ss) {
        return bp_err(err, BP_E_STATE, "registry: commit without an open transaction");
    }
    if (ss->refusal_code != 0) {
        int code = ss->refusal_code;
        bp_err(err, code, "%s", ss->refusal);
        registry_rollback(reg);
        return code;
    }
    atomic_store(&ss->open, false);
    for (int k = 0; k < REGISTRY_KINDS; k++) {
        for (size_t i = 0; i < reg->n[k]; i++) {
            reg_entry *e = reg->entries[k][i];
            if (e->owner == ss) {
                entry_set_owner(e, ss->plugin, ss->host, plugin_state);
                e->committed = true;
            }
        }
    }
    reg->current = NULL;
    return BP_OK;
}

size_t registry_count(const registry *reg, const char *plugin_name)
{
    size_t n = 0;
    for (int k = 0; reg && k < REGISTRY_KINDS; k++) {
        for (size_t i = 0; i < reg->n[k]; i++) {
            const reg_entry *e = reg->entries[k][i];
            if (plugin_name ? strcmp(e->owner->plugin, plugin_name) == 0 : e->committed) {
                n++;
            }
        }
    }
    return n;
}

static bool committed_by_plugin(const reg_entry *e, const void *plugin_name)
{
    return e->committed && strcmp(e->owner->plugin, plugin_name) == 0;
}

void registry_remove_plugin(registry *reg, const char *plugin_name)
{
    if (reg && plugin_name) {
        remove_entries(reg, committed_by_plugin, plugin_name);
    }
}

/* ============================================================================================
 * Lookups and listings
 * ========================================================================================== */

const registry_job *registry_find_job(const registry *reg, const char *name)
{
    const reg_entry *e = find_entry(reg, REGISTRY_JOB, name, true);
    return e ? &e->u.job : NULL;
}

const registry_model *registry_find_model(const registry *reg, const char *name)
{
    const reg_entry *e = find_entry(reg, REGISTRY_MODEL, name, true);
    return e ? &e->u.model : NULL;
}

const registry_collector *registry_find_collector(const registry *reg, const char *name)
{
    const reg_entry *e = find_entry(reg, REGISTRY_COLLECTOR, name, true);
    return e ? &e->u.collector : NULL;
}

const registry_notifier *registry_find_notifier(const registry *reg, const char *name)
{
    const reg_entry *e = find_entry(reg, REGISTRY_NOTIFIER, name, true);
    return e ? &e->u.notifier : NULL;
}

static json_t *collect_bits(int32_t provides)
{
    static const struct {
        int32_t bit;
        const char *name;
    } bits[] = {
        {BP_COLLECT_FIXTURES, "fixtures"}, {BP_COLLECT_RESULTS, "results"},
        {BP_COLLECT_ODDS, "odds"},         {BP_COLLECT_STATS, "stats"},
        {BP_COLLECT_LIVE, "live"},         {BP_COLLECT_STATIC, "static"},
    };
    json_t *a = json_array();
    for (size_t i = 0; a && i < BP_ARRAY_LEN(bits); i++) {
        if ((provides & bits[i].bit) && json_array_append_new(a, json_string(bits[i].name))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *entry_json(const reg_entry *e)
{
    json_t *o = NULL;
    json_t *schema = jsonschema_describe(entry_schema(e));
    if (!schema) {
        return NULL;
    }
    switch (e->kind) {
    case REGISTRY_JOB: {
        const registry_job *j = &e->u.job;
        json_t *flags = json_array();
        if (flags && (j->desc.flags & BP_JOB_F_ISOLATE)) {
            json_array_append_new(flags, json_string("isolate"));
        }
        o = json_pack("{s:s, s:s, s:s, s:s, s:o*, s:i, s:i, s:o}", "name", j->desc.name, "plugin",
                      j->plugin, "description", j->desc.description, "queue", j->desc.queue,
                      "flags", flags, "soft_time_limit_s", (int)j->desc.soft_time_limit_s,
                      "max_retries", (int)j->desc.max_retries, "args_schema", schema);
        if (o && j->desc.unique_args) {
            json_object_set_new(o, "unique_args", json_string(j->desc.unique_args));
        }
        break;
    }
    case REGISTRY_MODEL: {
        const registry_model *m = &e->u.model;
        o = json_pack("{s:s, s:s, s:s, s:i, s:o}", "name", m->desc.name, "plugin", m->plugin,
                      "description", m->desc.description, "state_version",
                      (int)m->desc.state_version, "params_schema", schema);
        break;
    }
    case REGISTRY_COLLECTOR: {
        const registry_collector *c = &e->u.collector;
        o = json_pack("{s:s, s:s, s:s, s:o*, s:o}", "name", c->desc.name, "plugin", c->plugin,
                      "description", c->desc.description, "provides",
                      collect_bits(c->desc.provides), "request_schema", schema);
        break;
    }
    case REGISTRY_NOTIFIER:
    default: {
        const registry_notifier *n = &e->u.notifier;
        o = json_pack("{s:s, s:s, s:s, s:o}", "name", n->desc.name, "plugin", n->plugin,
                      "description", n->desc.description, "target_schema", schema);
        break;
    }
    }
    /* json_pack steals the "o" references even when it fails. */
    return o;
}

json_t *registry_list_plugin(const registry *reg, registry_kind kind, const char *plugin_name)
{
    json_t *a = json_array();
    if (!a || (unsigned)kind >= REGISTRY_KINDS) {
        json_decref(a);
        return NULL;
    }
    for (size_t i = 0; reg && i < reg->n[kind]; i++) {
        const reg_entry *e = reg->entries[kind][i];
        if (!e->committed || (plugin_name && strcmp(e->owner->plugin, plugin_name) != 0)) {
            continue;
        }
        json_t *o = entry_json(e);
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *registry_list(const registry *reg, registry_kind kind)
{
    return registry_list_plugin(reg, kind, NULL);
}

json_t *registry_names(const registry *reg, registry_kind kind)
{
    json_t *a = json_array();
    if (!a || (unsigned)kind >= REGISTRY_KINDS) {
        json_decref(a);
        return NULL;
    }
    for (size_t i = 0; reg && i < reg->n[kind]; i++) {
        const reg_entry *e = reg->entries[kind][i];
        if (e->committed && json_array_append_new(a, json_string(entry_name(e))) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}
