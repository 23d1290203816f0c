/*
 * test_loader.c - the plugin loader against real shared objects: every deliberately broken
 * fixture (tests/loader/fixtures) fails with its documented status and message and leaves
 * nothing behind; healthy plugins load, run, and keep working beside broken ones; unloading
 * calls fini in reverse order; check_file reports what a plugin registers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "loader.h"
#include "registry.h"
#include "support.h"
#include "test_host.h"

static registry *reg;
static bpt_hosts *hosts;
static loader *ld;
static char *tmp;

static void setup(void)
{
    bp_error e = {0};
    cr_assert_eq(registry_new(&reg, &e), BP_OK, "%s", e.msg);
    hosts = bpt_hosts_new(reg);
    cr_assert_eq(loader_new(reg, bpt_host_for, bpt_host_release, hosts, &ld, &e), BP_OK, "%s",
                 e.msg);
    tmp = bpt_tmpdir("loader");
}

static void teardown(void)
{
    loader_free(ld);
    registry_free(reg);
    bpt_hosts_free(hosts);
    bpt_rm_rf(tmp);
    free(tmp);
}

TestSuite(loader, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------------------------- */

/* The path of a fixture plugin in BP_TEST_FIXTURE_PLUGIN_DIR; the caller frees it. */
static char *fixture(const char *name)
{
    char *p = NULL;
    size_t len = strlen(bpt_env("BP_TEST_FIXTURE_PLUGIN_DIR")) + strlen(name) + 16;
    p = malloc(len);
    cr_assert(p);
    snprintf(p, len, "%s/job-%s.so", bpt_env("BP_TEST_FIXTURE_PLUGIN_DIR"), name);
    return p;
}

static char *tmp_path(const char *name)
{
    size_t len = strlen(tmp) + strlen(name) + 2;
    char *p = malloc(len);
    cr_assert(p);
    snprintf(p, len, "%s/%s", tmp, name);
    return p;
}

static void copy_file(const char *src, const char *dst, mode_t mode)
{
    char buf[65536];
    ssize_t n;
    int in = open(src, O_RDONLY);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(in >= 0, "open %s: errno %d", src, errno);
    cr_assert(out >= 0, "open %s: errno %d", dst, errno);
    while ((n = read(in, buf, sizeof buf)) > 0) {
        cr_assert_eq(write(out, buf, (size_t)n), n);
    }
    close(in);
    close(out);
    cr_assert_eq(chmod(dst, mode), 0); /* explicit: the umask must not decide */
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, 0644), 0);
}

/* Load `path` and expect failure with `status` and a message that starts with the path and
 * contains `phrase`. Nothing may stay behind. */
static void load_fails(const char *path, int status, const char *phrase)
{
    bp_error e = {0};
    size_t before = loader_count(ld);
    int rc = loader_load_file(ld, path, &e);
    cr_assert_eq(rc, status, "%s: status %d (%s), want %d (%s); message: %s", path, rc,
                 bp_status_str(rc), status, bp_status_str(status), e.msg);
    cr_assert_eq(e.code, status);
    cr_assert(strncmp(e.msg, path, strlen(path)) == 0, "message should start with the path: %s",
              e.msg);
    cr_assert(strstr(e.msg, phrase) != NULL, "message '%s'\nshould contain '%s'", e.msg, phrase);
    cr_assert_eq(loader_count(ld), before, "a failed load left a plugin loaded");
    cr_assert_eq(bpt_hosts_live(hosts), (int)before, "a failed load kept its host table");
}

static void load_ok(const char *path)
{
    bp_error e = {0};
    cr_assert_eq(loader_load_file(ld, path, &e), BP_OK, "%s: %s", path, e.msg);
}

static int run_job(const char *type, const char *args_json, json_t **out, bp_error *err)
{
    const registry_job *jt = registry_find_job(reg, type);
    cr_assert_not_null(jt, "job type %s is not registered", type);
    json_t *args = json_loads(args_json, 0, NULL);
    cr_assert_not_null(args);
    int rc = jsonschema_validate(jt->args_schema, args, err);
    if (rc == BP_OK) {
        cr_assert_eq(jsonschema_apply_defaults(jt->args_schema, args), BP_OK);
        bp_job job = {
            .struct_size = sizeof job,
            .id = "0190d5c0-0000-7000-8000-000000000001",
            .type = jt->desc.name,
            .queue = jt->desc.queue,
            .args = args,
            .attempt = 1,
            .max_retries = jt->desc.max_retries,
            .host = jt->host,
            .plugin_state = jt->plugin_state,
        };
        *out = NULL;
        rc = jt->desc.run(&job, out, err);
    }
    json_decref(args);
    return rc;
}

/* ---- each broken fixture ------------------------------------------------------------------- */

Test(loader, no_entry_symbol)
{
    char *p = fixture("bad_noentry");
    load_fails(p, BP_E_NOTFOUND, ": not a betpipe plugin: no bp_plugin_entry symbol");
    cr_assert_eq(bpt_hosts_created(hosts), 0, "no host table before the checks pass");
    free(p);
}

Test(loader, entry_returns_null)
{
    char *p = fixture("bad_null_entry");
    load_fails(p, BP_E_INVAL, ": bp_plugin_entry() returned NULL");
    free(p);
}

Test(loader, bad_magic)
{
    char *p = fixture("bad_magic");
    load_fails(p, BP_E_CORRUPT,
               ": bad magic 0xdeadbeef, expected 0x4250504c: corrupt or foreign plugin");
    cr_assert_eq(bpt_hosts_created(hosts), 0);
    free(p);
}

Test(loader, abi_major_plus_one)
{
    char *p = fixture("bad_major");
    load_fails(p, BP_E_ABI,
               ": built for ABI 2.x, this betpipe provides 1.0: rebuild the plugin against "
               "betpipe 1.x headers");
    free(p);
}

Test(loader, abi_minor_plus_one)
{
    char *p = fixture("bad_minor");
    load_fails(p, BP_E_ABI, ": needs ABI 1.1, this betpipe provides 1.0: upgrade betpipe");
    free(p);
}

Test(loader, wrong_build_signature)
{
    char *p = fixture("bad_sig");
    char want[160];
    snprintf(want, sizeof want,
             ": not binary compatible: build signature bp1;ptr4;long4;int4, expected %s",
             BP_BUILD_SIG);
    load_fails(p, BP_E_ABI, want);
    free(p);
}

Test(loader, descriptor_too_small)
{
    char *p = fixture("bad_size");
    char want[160];
    snprintf(want, sizeof want,
             ": not binary compatible: descriptor size 16, expected at least %zu",
             (size_t)LOADER_PLUGIN_SIZE_1_0);
    load_fails(p, BP_E_ABI, want);
    free(p);
}

Test(loader, invalid_plugin_name)
{
    char *p = fixture("bad_name");
    load_fails(p, BP_E_INVAL, ": plugin name 'Bad-Name' is invalid");
    free(p);
}

Test(loader, failing_init_is_rolled_back_and_fini_not_called)
{
    char *p = fixture("bad_initfail");
    load_fails(p, BP_E_CONFIG, ": plugin 'initfail' init failed: the 'api_key' setting is missing");
    /* it did register before failing ... */
    cr_assert(bpt_hosts_log_contains(hosts, "initfail registered initfail.partial"));
    /* ... and none of it survived */
    cr_assert_null(registry_find_job(reg, "initfail.partial"));
    cr_assert_eq(registry_count(reg, "initfail"), 0);
    cr_assert_eq(registry_count(reg, NULL), 0);
    json_t *names = registry_names(reg, REGISTRY_JOB);
    cr_assert_eq(json_array_size(names), 0);
    json_decref(names);
    cr_assert_eq(bpt_hosts_created(hosts), 1);
    cr_assert_eq(bpt_hosts_live(hosts), 0, "the host table was not released");
    /* fini traps if called: the unload below proves it was not recorded for later either */
    loader_unload_all(ld);
    free(p);
}

Test(loader, duplicate_job_name_is_refused_for_the_second_plugin)
{
    char *a = fixture("healthy_a"), *d = fixture("dup_echo");
    load_ok(a);
    load_fails(d, BP_E_EXISTS,
               ": plugin 'dup_echo' init failed: plugin 'dup_echo': job type 'fixture.echo' is "
               "already registered by plugin 'healthy_a'");
    /* what dup_echo registered before the duplicate is gone too */
    cr_assert_null(registry_find_job(reg, "dup.own"));
    cr_assert_eq(registry_count(reg, "dup_echo"), 0);
    /* and the first owner still works */
    json_t *out = NULL;
    bp_error e = {0};
    cr_assert_eq(run_job("fixture.echo", "{\"message\": \"hi\"}", &out, &e), BP_OK, "%s", e.msg);
    cr_assert_str_eq(json_string_value(json_object_get(out, "echo")), "hi");
    json_decref(out);
    free(a);
    free(d);
}

Test(loader, registering_nothing_is_refused_after_fini)
{
    char *p = fixture("bad_nothing");
    load_fails(p, BP_E_INVAL,
               ": plugin 'nothing' registers nothing: its init must register at least one job "
               "type, model, collector or notifier");
    cr_assert(bpt_hosts_log_contains(hosts, "nothing fini called"),
              "fini must run after an init that succeeded");
    free(p);
}

Test(loader, refusal_ignored_by_init_still_fails_the_load)
{
    char *p = fixture("bad_refused_ok");
    load_fails(p, BP_E_INVAL,
               ": plugin 'refused_ok': a registration was refused: plugin 'refused_ok': job type "
               "name 'Bad Name' is invalid");
    cr_assert_null(registry_find_job(reg, "refused.valid"), "the valid item was rolled back");
    cr_assert_eq(registry_count(reg, NULL), 0);
    cr_assert(bpt_hosts_log_contains(hosts, "refused_ok fini called"));
    free(p);
}

Test(loader, bad_schema_names_plugin_item_and_problem)
{
    char *p = fixture("bad_schema");
    load_fails(p, BP_E_INVAL,
               ": plugin 'bad_schema' init failed: plugin 'bad_schema': job type "
               "'schema.broken': bad args_schema: schema.properties.season.pattern: "
               "'^[0-9{4}$' is not a valid POSIX extended regex");
    free(p);
}

Test(loader, registering_after_init_is_a_state_error)
{
    char *p = fixture("bad_late");
    load_ok(p);
    json_t *out = NULL;
    bp_error e = {0};
    int rc = run_job("late.register", "{}", &out, &e);
    cr_assert_eq(rc, BP_E_STATE, "status %d: %s", rc, e.msg);
    cr_assert_str_eq(e.msg, "plugin 'late': add_job_type called after init returned; "
                            "capabilities can only be registered inside init");
    cr_assert_null(registry_find_job(reg, "late.sneaky"));
    /* from fini too (fini logs the answer it got) */
    loader_unload_all(ld);
    cr_assert(bpt_hosts_log_contains(hosts, "late add_model from fini: status=-12 msg=plugin "
                                            "'late': add_model called after init returned"));
    free(p);
}

/* ---- file checks ------------------------------------------------------------------------------
 */

Test(loader, missing_file)
{
    char *p = tmp_path("absent.so");
    load_fails(p, BP_E_NOTFOUND, ": no such file");
    free(p);
}

Test(loader, symlink_is_refused)
{
    char *src = fixture("healthy_a"), *link = tmp_path("link.so");
    cr_assert_eq(symlink(src, link), 0);
    load_fails(link, BP_E_INVAL, ": is a symbolic link; plugins must be regular files");
    free(src);
    free(link);
}

Test(loader, directory_and_fifo_are_refused)
{
    char *dir = tmp_path("dir.so"), *fifo = tmp_path("fifo.so");
    cr_assert_eq(mkdir(dir, 0755), 0);
    load_fails(dir, BP_E_INVAL, ": is a directory, not a plugin file");
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    load_fails(fifo, BP_E_INVAL, ": is not a regular file");
    free(dir);
    free(fifo);
}

Test(loader, world_and_group_writable_files_are_refused)
{
    char *src = fixture("healthy_a"), *ww = tmp_path("ww.so"), *gw = tmp_path("gw.so");
    char want[512];
    copy_file(src, ww, 0666);
    snprintf(want, sizeof want,
             ": is group- or world-writable (mode 0666), so others could "
             "replace the code betpipe runs: chmod go-w %s",
             ww);
    load_fails(ww, BP_E_INVAL, want);
    copy_file(src, gw, 0664);
    load_fails(gw, BP_E_INVAL, ": is group- or world-writable (mode 0664)");
    cr_assert_eq(bpt_hosts_created(hosts), 0);
    /* the same copy, once fixed, loads */
    cr_assert_eq(chmod(gw, 0644), 0);
    load_ok(gw);
    free(src);
    free(ww);
    free(gw);
}

Test(loader, text_file_is_not_an_elf)
{
    char *p = tmp_path("notes.so");
    write_text(p, "this is not a plugin\n");
    load_fails(p, BP_E_INVAL, ": not a shared object (not an ELF file)");
    free(p);
}

Test(loader, truncated_elf_reports_dlerror_and_ldd_hint)
{
    char *src = fixture("healthy_a"), *p = tmp_path("truncated.so");
    char want[512];
    copy_file(src, p, 0644);
    cr_assert_eq(truncate(p, 200), 0);
    snprintf(want, sizeof want, "(check with: ldd %s)", p);
    load_fails(p, BP_E_IO, ": cannot be loaded: ");
    load_fails(p, BP_E_IO, want);
    free(src);
    free(p);
}

Test(loader, same_plugin_twice_is_refused)
{
    char *a = fixture("healthy_a"), *copy = tmp_path("copy.so");
    char want[512];
    load_ok(a);
    snprintf(want, sizeof want, ": plugin 'healthy_a' is already loaded from %s", a);
    load_fails(a, BP_E_EXISTS, want);
    /* a copy elsewhere is a different object with the same name: refused before its init */
    copy_file(a, copy, 0755);
    load_fails(copy, BP_E_EXISTS, want);
    cr_assert_eq(bpt_hosts_created(hosts), 1);
    free(a);
    free(copy);
}

Test(loader, relative_path_without_slash_is_a_file_not_a_library_name)
{
    char *src = fixture("healthy_a"), *p = tmp_path("job-healthy_a.so");
    copy_file(src, p, 0755);
    cr_assert_eq(chdir(tmp), 0);
    load_ok("job-healthy_a.so");
    free(src);
    free(p);
}

/* ---- healthy plugins ---------------------------------------------------------------------- */

Test(loader, healthy_plugins_load_run_and_unload_in_reverse_order)
{
    char *a = fixture("healthy_a"), *b = fixture("healthy_b");
    bp_error e = {0};
    json_t *out = NULL;
    load_ok(a);
    load_ok(b);
    cr_assert_eq(loader_count(ld), 2);
    cr_assert_eq(bpt_hosts_live(hosts), 2);

    /* the job runs with validated args, defaults filled, and the state init built */
    cr_assert_eq(run_job("fixture.echo", "{\"message\": \"ab\", \"times\": 3}", &out, &e), BP_OK,
                 "%s", e.msg);
    cr_assert_str_eq(json_string_value(json_object_get(out, "echo")), "ababab");
    cr_assert_eq(json_integer_value(json_object_get(out, "runs")), 1);
    json_decref(out);
    cr_assert_eq(run_job("fixture.echo", "{\"message\": \"x\"}", &out, &e), BP_OK, "%s", e.msg);
    cr_assert_str_eq(json_string_value(json_object_get(out, "echo")), "x");
    cr_assert_eq(json_integer_value(json_object_get(out, "runs")), 2);
    json_decref(out);
    cr_assert_eq(run_job("fixture.echo", "{\"message\": \"x\", \"times\": 9}", &out, &e),
                 BP_E_INVAL);
    cr_assert_str_eq(e.msg, "args.times: 9 is greater than the maximum 5");

    /* the model, collector and notifier work through the core's copies */
    const registry_model *m = registry_find_model(reg, "fixture_freq");
    cr_assert_not_null(m);
    void *model = NULL;
    cr_assert_eq(m->desc.create(m->plugin_state, NULL, &model, &e), BP_OK, "%s", e.msg);
    bp_match_result games[3] = {
        {.match_id = 1, .home_goals = 2, .away_goals = 0},
        {.match_id = 2, .home_goals = 1, .away_goals = 1},
        {.match_id = 3, .home_goals = 3, .away_goals = 1},
    };
    bp_match_set set = {.struct_size = sizeof set, .matches = games, .n_matches = 3};
    json_t *metrics = NULL;
    cr_assert_eq(m->desc.fit(model, &set, &metrics, &e), BP_OK, "%s", e.msg);
    json_decref(metrics);
    bp_prediction pred;
    cr_assert_eq(m->desc.predict(model, 1, 2, 0, &pred, &e), BP_OK);
    cr_assert_float_eq(pred.p_home, 3.0 / 6.0, 1e-9); /* (prior 1 + 2 home wins) / (3 + 3) */
    m->desc.destroy(model);

    const registry_collector *c = registry_find_collector(reg, "fixture_static");
    json_t *req = json_pack("{s:s}", "league", "E0"), *report = NULL;
    cr_assert_eq(jsonschema_validate_at(c->request_schema, req, "request", &e), BP_OK, "%s", e.msg);
    cr_assert_eq(c->desc.collect(c->plugin_state, NULL, BP_COLLECT_STATIC, req, &report, &e),
                 BP_OK);
    cr_assert_str_eq(json_string_value(json_object_get(report, "league")), "E0");
    json_decref(report);
    json_decref(req);

    const registry_notifier *n = registry_find_notifier(reg, "fixture_log");
    json_t *target = json_pack("{s:s}", "channel", "alerts"), *receipt = NULL;
    cr_assert_eq(n->desc.send(n->plugin_state, target, "value_bet", NULL, &receipt, &e), BP_OK);
    cr_assert(
        bpt_hosts_log_contains(hosts, "healthy_b INFO notify channel=alerts event=value_bet"));
    json_decref(receipt);
    json_decref(target);

    loader_unload_all(ld);
    cr_assert_eq(loader_count(ld), 0);
    cr_assert_eq(bpt_hosts_live(hosts), 0);
    cr_assert_eq(registry_count(reg, NULL), 0, "unloading removes the items");
    char *log = bpt_hosts_log(hosts);
    char *fa = strstr(log, "healthy_a fini runs=2"), *fb = strstr(log, "healthy_b fini");
    cr_assert(fa && fb, "both finis ran: %s", log);
    cr_assert(fb < fa, "fini runs in reverse load order: %s", log);
    free(log);
    free(a);
    free(b);
}

Test(loader, describe_lists_plugins_and_their_items)
{
    char *a = fixture("healthy_a"), *b = fixture("healthy_b");
    json_t *d = NULL;
    bp_error e = {0};
    load_ok(a);
    load_ok(b);
    cr_assert_eq(loader_describe(ld, &d, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(json_array_size(d), 2);
    json_t *pa = json_array_get(d, 0), *pb = json_array_get(d, 1);
    cr_assert_str_eq(json_string_value(json_object_get(pa, "name")), "healthy_a");
    cr_assert_str_eq(json_string_value(json_object_get(pa, "version")), "1.2.3");
    cr_assert_str_eq(json_string_value(json_object_get(pa, "description")), "echo fixture");
    cr_assert_str_eq(json_string_value(json_object_get(pa, "file")), a);
    cr_assert_str_eq(json_string_value(json_object_get(pa, "abi")), "1.0");
    cr_assert_str_eq(json_string_value(json_object_get(pa, "build_sig")), BP_BUILD_SIG);
    json_t *jobs = json_object_get(pa, "job_types");
    cr_assert_eq(json_array_size(jobs), 1);
    json_t *echo = json_array_get(jobs, 0);
    cr_assert_str_eq(json_string_value(json_object_get(echo, "name")), "fixture.echo");
    cr_assert_str_eq(json_string_value(json_object_get(echo, "queue")), "data_queue");
    cr_assert_str_eq(json_string_value(json_object_get(echo, "description")), "repeat a message");
    json_t *schema = json_object_get(echo, "args_schema");
    cr_assert(json_is_false(json_object_get(schema, "additionalProperties")));
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(schema, "properties"), "times"), "default")),
                 1);
    cr_assert_eq(json_array_size(json_object_get(pa, "models")), 0);
    cr_assert_eq(json_array_size(json_object_get(pb, "job_types")), 0);
    cr_assert_eq(json_array_size(json_object_get(pb, "models")), 1);
    cr_assert_eq(json_array_size(json_object_get(pb, "collectors")), 1);
    cr_assert_eq(json_array_size(json_object_get(pb, "notifiers")), 1);
    json_decref(d);
    free(a);
    free(b);
}

/* ---- directories ------------------------------------------------------------------------------
 */

static const char *report_error(json_t *report, const char *file_suffix)
{
    for (size_t i = 0; i < json_array_size(report); i++) {
        json_t *row = json_array_get(report, i);
        const char *file = json_string_value(json_object_get(row, "file"));
        size_t fl = strlen(file), sl = strlen(file_suffix);
        if (fl >= sl && strcmp(file + fl - sl, file_suffix) == 0) {
            return json_is_true(json_object_get(row, "ok"))
                       ? "OK"
                       : json_string_value(json_object_get(row, "error"));
        }
    }
    return NULL;
}

Test(loader, directory_mixing_broken_and_healthy_plugins)
{
    static const struct {
        const char *fixture, *as;
    } files[] = {
        {"healthy_a", "a-healthy_a.so"}, {"bad_magic", "b-bad_magic.so"},
        {"dup_echo", "c-dup_echo.so"},   {"bad_initfail", "d-initfail.so"},
        {"healthy_b", "e-healthy_b.so"}, {"bad_nothing", "f-nothing.so"},
        {"bad_noentry", "g-noentry.so"}, {"bad_major", "h-major.so"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *src = fixture(files[i].fixture), *dst = tmp_path(files[i].as);
        copy_file(src, dst, 0755);
        free(src);
        free(dst);
    }
    char *text = tmp_path("i-notes.so"), *other = tmp_path("readme.txt");
    write_text(text, "not a plugin");
    write_text(other, "ignored: not *.so");

    json_t *report = NULL;
    bp_error e = {0};
    cr_assert_eq(loader_load_dir(ld, tmp, &report, &e), BP_OK, "%s", e.msg);
    cr_assert_eq(json_array_size(report), 9, "one row per *.so");
    /* name order */
    cr_assert(strstr(json_string_value(json_object_get(json_array_get(report, 0), "file")),
                     "/a-healthy_a.so"));
    cr_assert_str_eq(report_error(report, "/a-healthy_a.so"), "OK");
    cr_assert_str_eq(report_error(report, "/e-healthy_b.so"), "OK");
    cr_assert(strstr(report_error(report, "/b-bad_magic.so"), "bad magic"));
    cr_assert(strstr(report_error(report, "/c-dup_echo.so"), "already registered by plugin "
                                                             "'healthy_a'"));
    cr_assert(strstr(report_error(report, "/d-initfail.so"), "'api_key' setting is missing"));
    cr_assert(strstr(report_error(report, "/f-nothing.so"), "registers nothing"));
    cr_assert(strstr(report_error(report, "/g-noentry.so"), "no bp_plugin_entry symbol"));
    cr_assert(strstr(report_error(report, "/h-major.so"), "built for ABI 2.x"));
    cr_assert(strstr(report_error(report, "/i-notes.so"), "not an ELF file"));
    json_t *row = json_array_get(report, 1);
    cr_assert_eq(json_integer_value(json_object_get(row, "status")), BP_E_CORRUPT);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(report, 0), "plugin")),
                     "healthy_a");
    json_decref(report);

    /* exactly the healthy ones are loaded, and they work */
    cr_assert_eq(loader_count(ld), 2);
    cr_assert_eq(bpt_hosts_live(hosts), 2);
    cr_assert_eq(registry_count(reg, NULL), 4);
    cr_assert_str_eq(registry_find_job(reg, "fixture.echo")->plugin, "healthy_a");
    cr_assert_null(registry_find_job(reg, "dup.own"));
    cr_assert_null(registry_find_job(reg, "initfail.partial"));
    json_t *out = NULL;
    cr_assert_eq(run_job("fixture.echo", "{\"message\": \"still here\"}", &out, &e), BP_OK, "%s",
                 e.msg);
    cr_assert_str_eq(json_string_value(json_object_get(out, "echo")), "still here");
    json_decref(out);
    cr_assert_not_null(registry_find_notifier(reg, "fixture_log"));
    free(text);
    free(other);
}

Test(loader, directory_errors)
{
    json_t *report = (json_t *)1;
    bp_error e = {0};
    char *missing = tmp_path("nope");
    cr_assert_eq(loader_load_dir(ld, missing, &report, &e), BP_E_NOTFOUND);
    cr_assert_null(report);
    cr_assert(strstr(e.msg, "plugin directory") && strstr(e.msg, "does not exist"), "%s", e.msg);
    cr_assert_eq(loader_load_dir(ld, tmp, &report, &e), BP_OK, "%s", e.msg);
    cr_assert(json_is_array(report) && json_array_size(report) == 0);
    json_decref(report);
    free(missing);
}

/* ---- check_file -------------------------------------------------------------------------------
 */

Test(loader, check_file_reports_what_a_plugin_registers)
{
    char *b = fixture("healthy_b");
    json_t *r = NULL;
    bp_error e = {0};
    cr_assert_eq(loader_check_file(b, bpt_host_for, bpt_host_release, hosts, &r, &e), BP_OK, "%s",
                 e.msg);
    cr_assert_str_eq(json_string_value(json_object_get(r, "name")), "healthy_b");
    cr_assert_str_eq(json_string_value(json_object_get(r, "version")), "0.9.0");
    cr_assert_str_eq(json_string_value(json_object_get(r, "description")),
                     "model, collector and notifier fixture");
    cr_assert_str_eq(json_string_value(json_object_get(r, "abi")), "1.0");
    cr_assert_str_eq(json_string_value(json_object_get(r, "build_sig")), BP_BUILD_SIG);
    cr_assert_str_eq(json_string_value(json_object_get(r, "file")), b);
    json_t *models = json_object_get(r, "models");
    cr_assert_eq(json_array_size(models), 1);
    json_t *m = json_array_get(models, 0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "name")), "fixture_freq");
    cr_assert_eq(json_integer_value(json_object_get(m, "state_version")), 1);
    cr_assert(json_is_object(json_object_get(m, "params_schema")));
    json_t *c = json_array_get(json_object_get(r, "collectors"), 0);
    json_t *want = json_loads("[\"results\", \"static\"]", 0, NULL);
    cr_assert(json_equal(json_object_get(c, "provides"), want));
    json_decref(want);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(r, "notifiers"), 0), "name")),
                     "fixture_log");
    cr_assert_eq(json_array_size(json_object_get(r, "job_types")), 0);
    json_decref(r);
    /* it ran init and fini, and gave its host table back */
    cr_assert(bpt_hosts_log_contains(hosts, "healthy_b fini"));
    cr_assert_eq(bpt_hosts_created(hosts), 1);
    cr_assert_eq(bpt_hosts_live(hosts), 0);
    /* and it touched no other registry */
    cr_assert_eq(registry_count(reg, NULL), 0);
    free(b);
}

Test(loader, check_file_fails_like_a_load)
{
    char *p = fixture("bad_minor");
    json_t *r = (json_t *)1;
    bp_error e = {0};
    cr_assert_eq(loader_check_file(p, bpt_host_for, bpt_host_release, hosts, &r, &e), BP_E_ABI);
    cr_assert_null(r);
    cr_assert(strstr(e.msg, "needs ABI 1.1, this betpipe provides 1.0: upgrade betpipe"), "%s",
              e.msg);
    free(p);
    p = fixture("bad_initfail");
    cr_assert_eq(loader_check_file(p, bpt_host_for, bpt_host_release, hosts, &r, &e), BP_E_CONFIG);
    cr_assert(strstr(e.msg, "init failed: the 'api_key' setting is missing"), "%s", e.msg);
    cr_assert_eq(bpt_hosts_live(hosts), 0);
    free(p);
}
