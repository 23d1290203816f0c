/*
 * test_registry.c - the registry of capabilities: descriptor copying by struct_size, name and
 * callback checks, schemas, duplicates, transactions (commit, rollback, refusals, late calls),
 * lookups and listings.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "registry.h"
#include "test_host.h"

static registry *reg;
static bpt_hosts *hosts;

static void setup(void)
{
    bp_error e = {0};
    cr_assert_eq(registry_new(&reg, &e), BP_OK, "%s", e.msg);
    hosts = bpt_hosts_new(reg);
}

static void teardown(void)
{
    registry_free(reg);
    bpt_hosts_free(hosts);
}

TestSuite(registry, .init = setup, .fini = teardown);

/* ---- descriptors the tests register ------------------------------------------------------- */

static int job_run(const bp_job *job, json_t **out_result, bp_error *err)
{
    (void)job;
    (void)err;
    *out_result = json_string("ran");
    return BP_OK;
}

static int m_create(void *ps, const json_t *params, void **out_model, bp_error *err)
{
    (void)ps;
    (void)params;
    (void)err;
    *out_model = NULL;
    return BP_OK;
}
static int m_fit(void *model, const bp_match_set *train, json_t **out_metrics, bp_error *err)
{
    (void)model;
    (void)train;
    (void)out_metrics;
    (void)err;
    return BP_OK;
}
static int m_predict(void *model, int64_t h, int64_t a, int64_t k, bp_prediction *out,
                     bp_error *err)
{
    (void)model;
    (void)h;
    (void)a;
    (void)k;
    (void)out;
    (void)err;
    return BP_OK;
}
static int m_save(void *model, json_t **out_state, bp_error *err)
{
    (void)model;
    (void)out_state;
    (void)err;
    return BP_OK;
}
static int m_load(void *model, const json_t *state, bp_error *err)
{
    (void)model;
    (void)state;
    (void)err;
    return BP_OK;
}
static void m_destroy(void *model)
{
    (void)model;
}
static int c_collect(void *ps, const bp_job *job, int32_t what, const json_t *request,
                     json_t **out_report, bp_error *err)
{
    (void)ps;
    (void)job;
    (void)what;
    (void)request;
    (void)out_report;
    (void)err;
    return BP_OK;
}
static int n_send(void *ps, const json_t *target, const char *event_type, const json_t *payload,
                  json_t **out_receipt, bp_error *err)
{
    (void)ps;
    (void)target;
    (void)event_type;
    (void)payload;
    (void)out_receipt;
    (void)err;
    return BP_OK;
}

static bp_job_type job_desc(const char *name)
{
    return (bp_job_type){
        .struct_size = sizeof(bp_job_type),
        .name = name,
        .description = "a job",
        .queue = "data_queue",
        .args_schema = "{\"type\": \"object\", \"properties\": {\"league\": {\"type\": "
                       "\"string\"}}}",
        .soft_time_limit_s = 30,
        .max_retries = 3,
        .run = job_run,
    };
}

static bp_model_type model_desc(const char *name)
{
    return (bp_model_type){
        .struct_size = sizeof(bp_model_type),
        .state_version = 2,
        .name = name,
        .description = "a model",
        .create = m_create,
        .fit = m_fit,
        .predict = m_predict,
        .save = m_save,
        .load = m_load,
        .destroy = m_destroy,
    };
}

static bp_collector_type collector_desc(const char *name)
{
    return (bp_collector_type){
        .struct_size = sizeof(bp_collector_type),
        .provides = BP_COLLECT_ODDS | BP_COLLECT_FIXTURES,
        .name = name,
        .description = "a collector",
        .collect = c_collect,
    };
}

static bp_notifier_type notifier_desc(const char *name)
{
    return (bp_notifier_type){
        .struct_size = sizeof(bp_notifier_type),
        .name = name,
        .description = "a notifier",
        .target_schema = "{\"type\": \"object\", \"required\": [\"url\"], \"properties\": "
                         "{\"url\": {\"type\": \"string\"}}}",
        .send = n_send,
    };
}

static bp_registry *begin(const char *plugin)
{
    bp_registry *t = NULL;
    bp_error e = {0};
    cr_assert_eq(registry_begin(reg, plugin, bpt_host_for(hosts, plugin), &t, &e), BP_OK, "%s",
                 e.msg);
    cr_assert_not_null(t);
    cr_assert_geq(t->struct_size, sizeof(bp_registry));
    return t;
}

static void commit(void *state)
{
    bp_error e = {0};
    cr_assert_eq(registry_commit(reg, state, &e), BP_OK, "%s", e.msg);
}

static void refused(int rc, const bp_error *e, int want, const char *phrase)
{
    cr_assert_eq(rc, want, "status %d (%s), want %d; message: %s", rc, bp_status_str(rc), want,
                 e->msg);
    cr_assert_eq(e->code, want);
    cr_assert(strstr(e->msg, phrase) != NULL, "message '%s' should contain '%s'", e->msg, phrase);
}

/* ---- registering and finding ------------------------------------------------------------- */

Test(registry, register_all_kinds_and_find_them)
{
    int state = 42;
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    bp_job_type j = job_desc("data.import");
    bp_model_type m = model_desc("dixon_coles");
    bp_collector_type c = collector_desc("the_odds_api");
    bp_notifier_type n = notifier_desc("webhook");
    cr_assert_eq(t->add_job_type(t, &j, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(t->add_model(t, &m, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(t->add_collector(t, &c, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(t->add_notifier(t, &n, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(registry_count(reg, "alpha"), 4);
    commit(&state);

    const registry_job *fj = registry_find_job(reg, "data.import");
    cr_assert_not_null(fj);
    cr_assert_str_eq(fj->plugin, "alpha");
    cr_assert_eq(fj->plugin_state, &state);
    cr_assert_str_eq(fj->host->plugin_name, "alpha");
    cr_assert_eq(fj->desc.run, job_run);
    cr_assert_str_eq(fj->desc.queue, "data_queue");
    cr_assert_eq(fj->desc.soft_time_limit_s, 30);
    cr_assert_eq(fj->desc.max_retries, 3);
    cr_assert_eq(fj->desc.struct_size, sizeof(bp_job_type));
    cr_assert_not_null(fj->args_schema);

    const registry_model *fm = registry_find_model(reg, "dixon_coles");
    cr_assert_not_null(fm);
    cr_assert_eq(fm->desc.state_version, 2);
    cr_assert_eq(fm->desc.destroy, m_destroy);
    cr_assert_eq(fm->plugin_state, &state);
    const registry_collector *fc = registry_find_collector(reg, "the_odds_api");
    cr_assert_not_null(fc);
    cr_assert_eq(fc->desc.provides, BP_COLLECT_ODDS | BP_COLLECT_FIXTURES);
    const registry_notifier *fn = registry_find_notifier(reg, "webhook");
    cr_assert_not_null(fn);
    cr_assert_eq(fn->desc.send, n_send);

    cr_assert_null(registry_find_job(reg, "data.export"));
    cr_assert_null(registry_find_model(reg, "webhook"), "kinds are separate namespaces");
    cr_assert_eq(registry_count(reg, NULL), 4);
}

Test(registry, descriptors_and_strings_are_copied)
{
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    char name[32] = "data.import";
    char schema[128] = "{\"type\": \"object\"}";
    bp_job_type j = job_desc(name);
    j.args_schema = schema;
    cr_assert_eq(t->add_job_type(t, &j, &e), BP_OK, "%s", e.msg);
    commit(NULL);
    /* the plugin reuses its memory: the registry's copy must not notice */
    memset(&j, 0xa5, sizeof j);
    snprintf(name, sizeof name, "xxxx.yyyyyy");
    memset(schema, 0, sizeof schema);
    const registry_job *fj = registry_find_job(reg, "data.import");
    cr_assert_not_null(fj);
    cr_assert_str_eq(fj->desc.name, "data.import");
    cr_assert_str_eq(fj->desc.args_schema, "{\"type\": \"object\"}");
    cr_assert_eq(fj->desc.run, job_run);
}

Test(registry, null_strings_and_schema_defaults)
{
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    bp_job_type j = job_desc("maint.cleanup_cache");
    j.description = NULL;
    j.args_schema = NULL;
    cr_assert_eq(t->add_job_type(t, &j, &e), BP_OK, "%s", e.msg);
    commit(NULL);
    const registry_job *fj = registry_find_job(reg, "maint.cleanup_cache");
    cr_assert_str_eq(fj->desc.description, "");
    cr_assert_null(fj->desc.args_schema);
    /* no schema = no args */
    json_t *empty = json_object(), *some = json_pack("{s:i}", "days", 3);
    cr_assert_eq(jsonschema_validate(fj->args_schema, empty, NULL), BP_OK);
    cr_assert_eq(jsonschema_validate(fj->args_schema, some, &e), BP_E_INVAL);
    cr_assert(strstr(e.msg, "unknown field 'days'") != NULL, "%s", e.msg);
    json_decref(empty);
    json_decref(some);
}

/* ---- struct_size ------------------------------------------------------------------------- */

Test(registry, struct_size_below_abi_1_0_is_refused)
{
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    bp_job_type j = job_desc("data.import");
    j.struct_size = (uint32_t)REGISTRY_JOB_TYPE_SIZE_1_0 - 8;
    char want[96];
    snprintf(want, sizeof want, "smaller than the %zu bytes of ABI 1.0",
             (size_t)REGISTRY_JOB_TYPE_SIZE_1_0);
    refused(t->add_job_type(t, &j, &e), &e, BP_E_ABI, want);
    j.struct_size = 0;
    refused(t->add_job_type(t, &j, &e), &e, BP_E_ABI, "declares struct_size 0");

    bp_model_type m = model_desc("elo");
    m.struct_size = 8;
    refused(t->add_model(t, &m, &e), &e, BP_E_ABI, "plugin 'alpha': model descriptor declares");
    bp_collector_type c = collector_desc("csv");
    c.struct_size = 4;
    refused(t->add_collector(t, &c, &e), &e, BP_E_ABI, "collector descriptor");
    bp_notifier_type n = notifier_desc("slack");
    n.struct_size = (uint32_t)REGISTRY_NOTIFIER_TYPE_SIZE_1_0 - 1;
    refused(t->add_notifier(t, &n, &e), &e, BP_E_ABI, "notifier descriptor");
    cr_assert_eq(registry_count(reg, "alpha"), 0);
}

/* A plugin built against a later minor: a bigger struct with fields we do not know. We read
 * only our own size and record that size in the copy. */
Test(registry, larger_struct_size_reads_only_known_fields)
{
    struct future_job {
        bp_job_type base;
        uint64_t unknown_fields[4];
    } f;
    memset(&f, 0xff, sizeof f);
    f.base = job_desc("data.import");
    f.base.struct_size = (uint32_t)sizeof f;
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    cr_assert_eq(t->add_job_type(t, &f.base, &e), BP_OK, "%s", e.msg);
    commit(NULL);
    cr_assert_eq(registry_find_job(reg, "data.import")->desc.struct_size, sizeof(bp_job_type));
}

/* The descriptor ends exactly at the end of a readable page: reading one byte past
 * struct_size would fault. Today the 1.0 size is the whole struct; once a minor version
 * appends a field, this is the test that proves an old plugin's shorter struct is safe. */
Test(registry, never_reads_past_struct_size)
{
    long page = sysconf(_SC_PAGESIZE);
    /* MAP_ANONYMOUS is not in POSIX 2008; a private mapping of /dev/zero is the same thing. */
    int zero = open("/dev/zero", O_RDWR);
    cr_assert(zero >= 0);
    char *mem = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE, zero, 0);
    close(zero);
    cr_assert(mem != MAP_FAILED);
    cr_assert_eq(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    size_t size = REGISTRY_JOB_TYPE_SIZE_1_0;
    bp_job_type src = job_desc("data.import");
    src.struct_size = (uint32_t)size;
    char *at = mem + page - size;
    memcpy(at, &src, size);
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    cr_assert_eq(t->add_job_type(t, (const bp_job_type *)(void *)at, &e), BP_OK, "%s", e.msg);
    commit(NULL);
    cr_assert_eq(registry_find_job(reg, "data.import")->desc.run, job_run);
    munmap(mem, (size_t)page * 2);
}

/* ---- names --------------------------------------------------------------------------------- */

Test(registry, job_type_names)
{
    static const char *const good[] = {"data.import", "ml.train_all", "a.b", "x9.y_2"};
    static const char *const bad[] = {"import",
                                      "Data.import",
                                      "data.",
                                      ".import",
                                      "a.b.c",
                                      "data-x.import",
                                      "data.im port",
                                      "",
                                      "data.\xc3\xa9",
                                      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnop."
                                      "abcdefghijklmnopqrstuvwxyz"};
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        bp_job_type j = job_desc(good[i]);
        cr_assert_eq(t->add_job_type(t, &j, &e), BP_OK, "%s: %s", good[i], e.msg);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bp_job_type j = job_desc(bad[i]);
        refused(t->add_job_type(t, &j, &e), &e, BP_E_INVAL, "is invalid: expected '<area>.<verb>'");
    }
    bp_job_type j = job_desc(NULL);
    refused(t->add_job_type(t, &j, &e), &e, BP_E_INVAL, "job type without a name");
    refused(t->add_job_type(t, NULL, &e), &e, BP_E_INVAL, "NULL descriptor");
}

Test(registry, other_names)
{
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    bp_model_type m = model_desc("pi_rating");
    cr_assert_eq(t->add_model(t, &m, &e), BP_OK, "%s", e.msg);
    m = model_desc("pi.rating");
    refused(t->add_model(t, &m, &e), &e, BP_E_INVAL,
            "plugin 'alpha': model name 'pi.rating' is invalid: expected a-z, 0-9 and _");
    m = model_desc("Elo");
    refused(t->add_model(t, &m, &e), &e, BP_E_INVAL, "model name 'Elo' is invalid");
    bp_collector_type c = collector_desc("odds-api");
    refused(t->add_collector(t, &c, &e), &e, BP_E_INVAL, "collector name 'odds-api' is invalid");
    bp_notifier_type n = notifier_desc("");
    refused(t->add_notifier(t, &n, &e), &e, BP_E_INVAL, "notifier name '' is invalid");
}

/* ---- required fields -------------------------------------------------------------------- */

Test(registry, required_callbacks)
{
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    bp_job_type j = job_desc("data.import");
    j.run = NULL;
    refused(t->add_job_type(t, &j, &e), &e, BP_E_INVAL,
            "plugin 'alpha': job type 'data.import' has no run function");

    static const char *const fns[] = {"create", "fit", "predict", "save", "load", "destroy"};
    for (size_t i = 0; i < 6; i++) {
        bp_model_type m = model_desc("elo");
        switch (i) {
        case 0: m.create = NULL; break;
        case 1: m.fit = NULL; break;
        case 2: m.predict = NULL; break;
        case 3: m.save = NULL; break;
        case 4: m.load = NULL; break;
        default: m.destroy = NULL; break;
        }
        char want[64];
        snprintf(want, sizeof want, "model 'elo' has no %s function", fns[i]);
        refused(t->add_model(t, &m, &e), &e, BP_E_INVAL, want);
    }
    bp_collector_type c = collector_desc("csv");
    c.collect = NULL;
    refused(t->add_collector(t, &c, &e), &e, BP_E_INVAL, "collector 'csv' has no collect function");
    bp_notifier_type n = notifier_desc("slack");
    n.send = NULL;
    refused(t->add_notifier(t, &n, &e), &e, BP_E_INVAL, "notifier 'slack' has no send function");
    cr_assert_eq(registry_count(reg, "alpha"), 0);
}

Test(registry, job_fields_are_checked)
{
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    bp_job_type j = job_desc("data.import");
    j.queue = NULL;
    refused(t->add_job_type(t, &j, &e), &e, BP_E_INVAL, "default queue '(null)' is missing");
    j = job_desc("data.import");
    j.queue = "Data Queue";
    refused(t->add_job_type(t, &j, &e), &e, BP_E_INVAL, "default queue 'Data Queue'");
    j = job_desc("data.import");
    j.flags = 0x10;
    refused(t->add_job_type(t, &j, &e), &e, BP_E_INVAL, "unknown flags 0x10");
    j = job_desc("data.import");
    j.soft_time_limit_s = -1;
    refused(t->add_job_type(t, &j, &e), &e, BP_E_INVAL, "soft_time_limit_s is negative");
    j = job_desc("data.import");
    j.max_retries = -2;
    refused(t->add_job_type(t, &j, &e), &e, BP_E_INVAL, "max_retries must be -1");
    j = job_desc("data.import");
    j.flags = BP_JOB_F_ISOLATE;
    j.max_retries = -1;
    cr_assert_eq(t->add_job_type(t, &j, &e), BP_OK, "%s", e.msg);

    bp_collector_type c = collector_desc("csv");
    c.provides = 0;
    refused(t->add_collector(t, &c, &e), &e, BP_E_INVAL, "provides 0x0 must be a non-empty set");
    c.provides = 0x100;
    refused(t->add_collector(t, &c, &e), &e, BP_E_INVAL, "provides 0x100");
    bp_model_type m = model_desc("elo");
    m.state_version = -1;
    refused(t->add_model(t, &m, &e), &e, BP_E_INVAL, "state_version is negative");
}

/* ---- schemas ------------------------------------------------------------------------------ */

Test(registry, bad_schemas_name_plugin_item_and_problem)
{
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    bp_job_type j = job_desc("data.import");
    j.args_schema = "{\"properties\": {\"league\": {\"type\": \"str\"}}}";
    refused(t->add_job_type(t, &j, &e), &e, BP_E_INVAL,
            "plugin 'alpha': job type 'data.import': bad args_schema: "
            "schema.properties.league.type: unknown type 'str'");
    bp_model_type m = model_desc("elo");
    m.params_schema = "{\"properties\": {\"k\": {\"minimum\": \"20\"}}}";
    refused(t->add_model(t, &m, &e), &e, BP_E_INVAL,
            "plugin 'alpha': model 'elo': bad params_schema: schema.properties.k.minimum: must "
            "be a number");
    bp_collector_type c = collector_desc("csv");
    c.request_schema = "{\"pattern\": \"(\"}";
    refused(t->add_collector(t, &c, &e), &e, BP_E_INVAL,
            "plugin 'alpha': collector 'csv': bad request_schema: schema.pattern:");
    bp_notifier_type n = notifier_desc("slack");
    n.target_schema = "not json";
    refused(t->add_notifier(t, &n, &e), &e, BP_E_INVAL,
            "plugin 'alpha': notifier 'slack': bad target_schema: schema: not valid JSON");
    cr_assert_eq(registry_count(reg, "alpha"), 0);
}

Test(registry, schemas_are_compiled_and_usable)
{
    bp_registry *t = begin("alpha");
    bp_error e = {0};
    bp_notifier_type n = notifier_desc("webhook");
    cr_assert_eq(t->add_notifier(t, &n, &e), BP_OK, "%s", e.msg);
    commit(NULL);
    const registry_notifier *fn = registry_find_notifier(reg, "webhook");
    json_t *target = json_object();
    cr_assert_eq(jsonschema_validate_at(fn->target_schema, target, "target", &e), BP_E_INVAL);
    cr_assert_str_eq(e.msg, "target: missing required field 'url'");
    json_decref(target);
}

/* ---- duplicates -------------------------------------------------------------------------- */

Test(registry, duplicate_names_name_both_plugins)
{
    bp_error e = {0};
    bp_registry *a = begin("alpha");
    bp_job_type j = job_desc("data.import");
    bp_model_type m = model_desc("elo");
    cr_assert_eq(a->add_job_type(a, &j, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(a->add_model(a, &m, &e), BP_OK, "%s", e.msg);
    refused(a->add_job_type(a, &j, &e), &e, BP_E_EXISTS,
            "plugin 'alpha' registers job type 'data.import' twice");
    /* the refusal makes the whole transaction fail at commit */
    refused(registry_commit(reg, NULL, &e), &e, BP_E_EXISTS,
            "registers job type 'data.import' twice");
    cr_assert_null(registry_find_job(reg, "data.import"));

    a = begin("alpha");
    cr_assert_eq(a->add_job_type(a, &j, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(a->add_model(a, &m, &e), BP_OK, "%s", e.msg);
    commit(NULL);

    bp_registry *b = begin("beta");
    refused(b->add_job_type(b, &j, &e), &e, BP_E_EXISTS,
            "plugin 'beta': job type 'data.import' is already registered by plugin 'alpha'");
    refused(b->add_model(b, &m, &e), &e, BP_E_EXISTS,
            "plugin 'beta': model 'elo' is already registered by plugin 'alpha'");
    /* the same name in another kind is fine */
    bp_collector_type c = collector_desc("elo");
    cr_assert_eq(b->add_collector(b, &c, &e), BP_OK, "%s", e.msg);
    registry_rollback(reg);
    cr_assert_str_eq(registry_find_job(reg, "data.import")->plugin, "alpha");
}

/* ---- transactions ------------------------------------------------------------------------ */

Test(registry, pending_items_are_invisible_until_commit)
{
    bp_error e = {0};
    bp_registry *t = begin("alpha");
    bp_job_type j = job_desc("data.import");
    cr_assert_eq(t->add_job_type(t, &j, &e), BP_OK, "%s", e.msg);
    cr_assert_null(registry_find_job(reg, "data.import"));
    cr_assert_eq(registry_count(reg, "alpha"), 1);
    cr_assert_eq(registry_count(reg, NULL), 0);
    json_t *names = registry_names(reg, REGISTRY_JOB);
    cr_assert_eq(json_array_size(names), 0);
    json_decref(names);
    commit(NULL);
    cr_assert_not_null(registry_find_job(reg, "data.import"));
}

Test(registry, rollback_leaves_no_trace)
{
    bp_error e = {0};
    bp_registry *a = begin("alpha");
    bp_job_type ja = job_desc("data.import");
    cr_assert_eq(a->add_job_type(a, &ja, &e), BP_OK, "%s", e.msg);
    commit(NULL);

    bp_registry *b = begin("beta");
    bp_job_type jb = job_desc("ml.train");
    bp_model_type m = model_desc("elo");
    bp_collector_type c = collector_desc("csv");
    bp_notifier_type n = notifier_desc("slack");
    cr_assert_eq(b->add_job_type(b, &jb, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(b->add_model(b, &m, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(b->add_collector(b, &c, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(b->add_notifier(b, &n, &e), BP_OK, "%s", e.msg);
    registry_rollback(reg);

    cr_assert_eq(registry_count(reg, "beta"), 0);
    cr_assert_null(registry_find_job(reg, "ml.train"));
    cr_assert_null(registry_find_model(reg, "elo"));
    cr_assert_null(registry_find_collector(reg, "csv"));
    cr_assert_null(registry_find_notifier(reg, "slack"));
    for (int k = 0; k < REGISTRY_KINDS; k++) {
        json_t *list = registry_list(reg, (registry_kind)k);
        cr_assert_eq(json_array_size(list), k == REGISTRY_JOB ? 1 : 0);
        json_decref(list);
    }
    cr_assert_not_null(registry_find_job(reg, "data.import"), "alpha is untouched");
    /* the names are free again */
    b = begin("gamma");
    cr_assert_eq(b->add_job_type(b, &jb, &e), BP_OK, "%s", e.msg);
    commit(NULL);
    cr_assert_str_eq(registry_find_job(reg, "ml.train")->plugin, "gamma");
}

Test(registry, adding_after_the_transaction_is_a_state_error)
{
    bp_error e = {0};
    bp_registry *t = begin("alpha");
    bp_job_type j = job_desc("data.import");
    cr_assert_eq(t->add_job_type(t, &j, &e), BP_OK, "%s", e.msg);
    commit(NULL);
    bp_job_type k = job_desc("data.export");
    refused(t->add_job_type(t, &k, &e), &e, BP_E_STATE,
            "plugin 'alpha': add_job_type called after init returned");
    bp_model_type m = model_desc("elo");
    refused(t->add_model(t, &m, &e), &e, BP_E_STATE, "add_model called after init returned");

    /* also after a rollback, and the refused calls left nothing behind */
    bp_registry *u = begin("beta");
    registry_rollback(reg);
    bp_collector_type c = collector_desc("csv");
    refused(u->add_collector(u, &c, &e), &e, BP_E_STATE, "plugin 'beta': add_collector called");
    bp_notifier_type n = notifier_desc("slack");
    refused(u->add_notifier(u, &n, &e), &e, BP_E_STATE, "add_notifier called after init");
    cr_assert_null(registry_find_job(reg, "data.export"));
    cr_assert_eq(registry_count(reg, NULL), 1);
}

Test(registry, one_transaction_at_a_time)
{
    bp_error e = {0};
    bp_registry *t = NULL;
    begin("alpha");
    refused(registry_begin(reg, "beta", NULL, &t, &e), &e, BP_E_STATE,
            "cannot begin for plugin 'beta' while plugin 'alpha' is registering");
    cr_assert_null(t);
    registry_rollback(reg);
    refused(registry_commit(reg, NULL, &e), &e, BP_E_STATE, "commit without an open transaction");
}

Test(registry, commit_refuses_after_an_ignored_refusal)
{
    bp_error e = {0}, ignored = {0};
    bp_registry *t = begin("alpha");
    bp_job_type bad = job_desc("NoDot");
    bp_job_type good = job_desc("data.import");
    bp_model_type m = model_desc("elo");
    cr_assert_neq(t->add_job_type(t, &bad, &ignored), BP_OK);
    cr_assert_eq(t->add_job_type(t, &good, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(t->add_model(t, &m, NULL), BP_OK, "a NULL bp_error is allowed");
    refused(registry_commit(reg, NULL, &e), &e, BP_E_INVAL, "job type name 'NoDot' is invalid");
    cr_assert_eq(registry_count(reg, "alpha"), 0);
    cr_assert_null(registry_find_job(reg, "data.import"));
}

Test(registry, remove_plugin)
{
    bp_error e = {0};
    bp_registry *a = begin("alpha");
    bp_job_type j = job_desc("data.import");
    bp_model_type m = model_desc("elo");
    cr_assert_eq(a->add_job_type(a, &j, &e), BP_OK);
    cr_assert_eq(a->add_model(a, &m, &e), BP_OK);
    commit(NULL);
    bp_registry *b = begin("beta");
    bp_job_type k = job_desc("ml.train");
    cr_assert_eq(b->add_job_type(b, &k, &e), BP_OK);
    commit(NULL);
    registry_remove_plugin(reg, "alpha");
    cr_assert_null(registry_find_job(reg, "data.import"));
    cr_assert_null(registry_find_model(reg, "elo"));
    cr_assert_not_null(registry_find_job(reg, "ml.train"));
    cr_assert_eq(registry_count(reg, NULL), 1);
}

/* ---- listings ---------------------------------------------------------------------------- */

Test(registry, lists_describe_every_kind)
{
    bp_error e = {0};
    bp_registry *t = begin("alpha");
    bp_job_type j = job_desc("data.import");
    j.flags = BP_JOB_F_ISOLATE;
    bp_model_type m = model_desc("elo");
    bp_collector_type c = collector_desc("csv");
    bp_notifier_type n = notifier_desc("webhook");
    cr_assert_eq(t->add_job_type(t, &j, &e), BP_OK);
    cr_assert_eq(t->add_model(t, &m, &e), BP_OK);
    cr_assert_eq(t->add_collector(t, &c, &e), BP_OK);
    cr_assert_eq(t->add_notifier(t, &n, &e), BP_OK);
    commit(NULL);
    t = begin("beta");
    bp_job_type j2 = job_desc("ml.train");
    cr_assert_eq(t->add_job_type(t, &j2, &e), BP_OK);
    commit(NULL);

    json_t *jobs = registry_list(reg, REGISTRY_JOB);
    json_t *want = json_loads(
        "[{\"name\": \"data.import\", \"plugin\": \"alpha\", \"description\": \"a job\","
        "  \"queue\": \"data_queue\", \"flags\": [\"isolate\"], \"soft_time_limit_s\": 30,"
        "  \"max_retries\": 3, \"args_schema\": {\"type\": \"object\", \"properties\":"
        "  {\"league\": {\"type\": \"string\"}}}},"
        " {\"name\": \"ml.train\", \"plugin\": \"beta\", \"description\": \"a job\","
        "  \"queue\": \"data_queue\", \"flags\": [], \"soft_time_limit_s\": 30,"
        "  \"max_retries\": 3, \"args_schema\": {\"type\": \"object\", \"properties\":"
        "  {\"league\": {\"type\": \"string\"}}}}]",
        0, NULL);
    char *got = json_dumps(jobs, JSON_SORT_KEYS);
    cr_assert(json_equal(jobs, want), "got %s", got);
    free(got);
    json_decref(jobs);
    json_decref(want);

    json_t *models = registry_list(reg, REGISTRY_MODEL);
    want = json_loads("[{\"name\": \"elo\", \"plugin\": \"alpha\", \"description\": \"a model\","
                      " \"state_version\": 2, \"params_schema\": {\"type\": \"object\","
                      " \"additionalProperties\": false}}]",
                      0, NULL);
    cr_assert(json_equal(models, want));
    json_decref(models);
    json_decref(want);

    json_t *collectors = registry_list(reg, REGISTRY_COLLECTOR);
    cr_assert_eq(json_array_size(collectors), 1);
    want = json_loads("[\"fixtures\", \"odds\"]", 0, NULL);
    cr_assert(json_equal(json_object_get(json_array_get(collectors, 0), "provides"), want));
    json_decref(collectors);
    json_decref(want);

    json_t *notifiers = registry_list(reg, REGISTRY_NOTIFIER);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(notifiers, 0), "target_schema"), "type")),
                     "object");
    json_decref(notifiers);

    json_t *beta = registry_list_plugin(reg, REGISTRY_JOB, "beta");
    cr_assert_eq(json_array_size(beta), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(beta, 0), "name")),
                     "ml.train");
    json_decref(beta);
    json_t *none = registry_list_plugin(reg, REGISTRY_MODEL, "beta");
    cr_assert_eq(json_array_size(none), 0);
    json_decref(none);

    json_t *names = registry_names(reg, REGISTRY_JOB);
    want = json_loads("[\"data.import\", \"ml.train\"]", 0, NULL);
    cr_assert(json_equal(names, want));
    json_decref(names);
    json_decref(want);
}

Test(registry, kind_names)
{
    registry_kind k;
    bp_error e = {0};
    static const char *const names[] = {"job", "model", "collector", "notifier"};
    for (int i = 0; i < REGISTRY_KINDS; i++) {
        cr_assert_str_eq(registry_kind_name((registry_kind)i), names[i]);
        cr_assert_eq(registry_kind_parse(names[i], &k, &e), BP_OK);
        cr_assert_eq((int)k, i);
    }
    cr_assert_eq(registry_kind_parse("job_types", &k, &e), BP_OK);
    cr_assert_eq(k, REGISTRY_JOB);
    refused(registry_kind_parse("schedule", &k, &e), &e, BP_E_INVAL,
            "unknown kind 'schedule' (expected job, model, collector or notifier)");
}

/* ---- concurrent lookups ---------------------------------------------------------------------- */

static void *lookup_worker(void *arg)
{
    long bad = 0;
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        char name[32];
        snprintf(name, sizeof name, "area.job_%d", i % 40);
        const registry_job *j = registry_find_job(reg, name);
        if (!j || strcmp(j->desc.name, name) != 0 || j->desc.run != job_run) {
            bad++;
        }
        if (registry_find_model(reg, "model_7") == NULL || registry_find_job(reg, "area.nope")) {
            bad++;
        }
    }
    return (void *)bad;
}

Test(registry, lookups_from_many_threads_after_loading)
{
    bp_error e = {0};
    char names[40][32];
    bp_registry *t = begin("alpha");
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "area.job_%d", i);
        bp_job_type j = job_desc(names[i]);
        cr_assert_eq(t->add_job_type(t, &j, &e), BP_OK, "%s", e.msg);
        char mname[32];
        snprintf(mname, sizeof mname, "model_%d", i);
        bp_model_type m = model_desc(mname);
        cr_assert_eq(t->add_model(t, &m, &e), BP_OK, "%s", e.msg);
    }
    commit(NULL);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, lookup_worker, NULL), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *bad = NULL;
        pthread_join(th[i], &bad);
        cr_assert_eq((long)bad, 0, "thread %d saw %ld wrong lookups", i, (long)bad);
    }
}
