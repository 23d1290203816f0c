/*
 * test_cli_errors.c - bad input at the command line: each case gets a clear message naming what
 * is wrong, a non-zero documented exit code, and leaves what is stored unchanged.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "engine.h"
#include "util.h"

static char *dd;

static void setup(void)
{
    bpt_engine_env_setup();
    dd = bpt_tmpdir("clierr");
}

static void teardown(void)
{
    bpt_rm_rf(dd);
    free(dd);
}

TestSuite(cli_errors, .init = setup, .fini = teardown, .timeout = 60);

/* Total number of jobs the broker knows, from `status --json`. */
static long long stored_jobs(void)
{
    bpt_result r = bpt_betpipe(dd, "status", "--json", NULL);
    json_t *o = json_loads(r.out, 0, NULL), *q;
    const char *name;
    long long total = 0;
    cr_assert(o, "status --json: %s %s", r.out, r.err);
    json_object_foreach(json_object_get(o, "queues"), name, q)
    {
        const char *k;
        json_t *v;
        json_object_foreach(q, k, v)
        {
            total += json_integer_value(v);
        }
    }
    json_decref(o);
    bpt_result_free(&r);
    return total;
}

static void expect_refused(int exit_code, const char *needle, ...)
{
    const char *argv[32];
    int n = 0;
    va_list ap;
    long long before = stored_jobs();
    argv[n++] = "betpipe";
    argv[n++] = "--data-dir";
    argv[n++] = dd;
    va_start(ap, needle);
    for (const char *a = va_arg(ap, const char *); a && n < 30; a = va_arg(ap, const char *)) {
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    bpt_result r = bpt_run(argv, NULL, NULL, 30000);
    cr_assert_eq(r.exit_code, exit_code, "exit %d (expected %d)\nstderr: %s", r.exit_code,
                 exit_code, r.err);
    cr_assert(strstr(r.err, needle), "stderr should say '%s': %s", needle, r.err);
    bpt_result_free(&r);
    cr_assert_eq(stored_jobs(), before, "nothing may be stored by a refused command");
}

Test(cli_errors, unknown_job_type)
{
    expect_refused(2, "unknown job type 'sys.nope'", "run", "sys.nope", NULL);
}

Test(cli_errors, args_failing_the_schema_name_the_field)
{
    expect_refused(2, "args.seconds", "run", "sys.sleep", "--args", "{\"seconds\": \"ten\"}", NULL);
    expect_refused(2, "seconds", "run", "sys.sleep", "--args", "{}", NULL);
    expect_refused(2, "keeep", "run", "maint.backup_db", "--args", "{\"keeep\": 3}", NULL);
    expect_refused(2, "args.keep", "run", "maint.backup_db", "--arg", "keep=0", NULL);
}

Test(cli_errors, malformed_json)
{
    expect_refused(2, "--args is not valid JSON", "run", "sys.echo", "--args", "{\"a\": ", NULL);
    expect_refused(2, "must be a JSON object", "run", "sys.echo", "--args", "[1, 2]", NULL);
}

Test(cli_errors, bad_eta_countdown_priority)
{
    expect_refused(2, "--eta", "run", "sys.noop", "--eta", "next tuesday", NULL);
    expect_refused(2, "2026-02-30", "run", "sys.noop", "--eta", "2026-02-30T10:00Z", NULL);
    expect_refused(2, "--countdown", "run", "sys.noop", "--countdown", "soon", NULL);
    expect_refused(2, "--priority", "run", "sys.noop", "--priority", "11", NULL);
    expect_refused(2, "exclude each other", "run", "sys.noop", "--eta", "2030-01-01", "--countdown",
                   "5", NULL);
    expect_refused(2, "unknown option --bogus", "run", "sys.noop", "--bogus", NULL);
}

Test(cli_errors, unknown_queue)
{
    expect_refused(2, "unknown queue 'gpu_queue'", "run", "sys.noop", "--queue", "gpu_queue", NULL);
}

Test(cli_errors, unreadable_and_invalid_config)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/missing.json", dd);
    expect_refused(3, "missing.json", "--config", path, "run", "sys.noop", NULL);
    snprintf(path, sizeof path, "%s/bad.json", dd);
    f = fopen(path, "w");
    fputs("{\"queues\": {\"ml_queue\": {\"concurency\": 4}}}", f);
    fclose(f);
    expect_refused(3, "concurency", "--config", path, "run", "sys.noop", NULL);
    f = fopen(path, "w");
    fputs("{\"broker\": {\"lease\": \"forever\"}}", f);
    fclose(f);
    expect_refused(3, "config.broker.lease", "--config", path, "status", NULL);
    f = fopen(path, "w");
    fputs("{\"queues\": ", f);
    fclose(f);
    expect_refused(3, "line 1", "--config", path, "status", NULL);
}

/* Replace the SQLite file `name` of the instance (and its WAL) with text; returns the bytes. */
static char *corrupt(const char *name, const char *line, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s-wal", dd, name);
    remove(path);
    snprintf(path, cap, "%s/%s", dd, name);
    remove(path);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    for (int i = 0; i < 300; i++) {
        fputs(line, f);
    }
    fclose(f);
    return bpt_slurp(path);
}

/* The file at path still holds exactly `before` (the refusal did not touch it). */
static void expect_untouched(const char *path, char *before)
{
    char *after = bpt_slurp(path);
    cr_assert_str_eq(before, after, "the corrupt file %s was modified", path);
    free(before);
    free(after);
}

Test(cli_errors, corrupt_sqlite_files_are_refused_untouched)
{
    char path[1024];
    char *before;
    bpt_result r;

    /* a healthy instance with one job first */
    r = bpt_betpipe(dd, "run", "sys.noop", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    bpt_result_free(&r);
    before = corrupt("broker.db", "garbage garbage garbage garbage\n", path, sizeof path);
    r = bpt_betpipe(dd, "run", "sys.noop", NULL);
    cr_assert_eq(r.exit_code, 4, "%s", r.err);
    cr_assert(strstr(r.err, "broker.db") && strstr(r.err, "not a usable"), "%s", r.err);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "status", NULL);
    cr_assert_eq(r.exit_code, 4);
    bpt_result_free(&r);
    expect_untouched(path, before);

    /* the store (betpipe.db) likewise, beside a fresh broker */
    snprintf(path, sizeof path, "%s/broker.db", dd);
    remove(path);
    before = corrupt("betpipe.db", "not a database at all, not at all\n", path, sizeof path);
    r = bpt_betpipe(dd, "run", "maint.backup_db", "--wait", NULL);
    cr_assert_eq(r.exit_code, 4, "%s %s", r.out, r.err);
    cr_assert(strstr(r.err, "betpipe.db"), "%s", r.err);
    bpt_result_free(&r);
    expect_untouched(path, before);
}

Test(cli_errors, task_and_revoke_of_unknown_ids)
{
    bpt_result r = bpt_betpipe(dd, "task", "01234567-no-such-job", NULL);
    cr_assert_eq(r.exit_code, 5, "%s", r.err);
    cr_assert(strstr(r.err, "no job 01234567-no-such-job"), "%s", r.err);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "revoke", "nope", NULL);
    cr_assert_eq(r.exit_code, 5, "%s", r.err);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "frobnicate", NULL);
    cr_assert_eq(r.exit_code, 2);
    cr_assert(strstr(r.err, "unknown command 'frobnicate'"));
    bpt_result_free(&r);
}

/* Sections and keys nothing reads, a config path that is a directory, a typo'd job type under
 * "jobs": the first are errors naming the key or file, the last a warning of config check with a
 * hint. */
Test(cli_errors, config_keys_nothing_reads_are_named)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/bad.json", dd);
    f = fopen(path, "w");
    fputs("{\"store\": {\"busy_timeout\": 5}}", f);
    fclose(f);
    expect_refused(3, "store", "--config", path, "status", NULL);
    f = fopen(path, "w");
    fputs("{\"daemon\": {\"http\": true}}", f);
    fclose(f);
    expect_refused(3, "http", "--config", path, "status", NULL);
    expect_refused(3, "not a regular file", "--config", dd, "status", NULL);

    f = fopen(path, "w");
    fputs("{\"jobs\": {\"maint.backup_bd\": {\"priority\": 3}}}", f);
    fclose(f);
    bpt_result r = bpt_betpipe(dd, "--config", path, "config", "check", NULL);
    cr_assert_eq(r.exit_code, 0, "a warning, not an error: %s %s", r.out, r.err);
    cr_assert(strstr(r.out, "WARNING: config.jobs.maint.backup_bd: no loaded plugin registers job "
                            "type 'maint.backup_bd'") &&
                  strstr(r.out, "did you mean 'maint.backup_db'?"),
              "%s", r.out);
    bpt_result_free(&r);
}

/* `betpipe plugins` and `plugins check` as a user runs them: every shipped plugin listed with
 * what it registered, a broken file beside healthy ones named and skipped, each check failure an
 * exit 1 with the loader's message, a missing file exit 5. */
Test(cli_errors, plugins_lists_and_checks_files)
{
    char fixture_dir[4096], broken[4200], shipped[4200], missing[4200];
    bpt_result r = bpt_betpipe(dd, "plugins", "--json", NULL);
    json_t *o, *p;
    size_t i;
    int found = 0;
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    o = json_loads(r.out, 0, NULL);
    cr_assert(o, "%s", r.out);
    json_array_foreach(json_object_get(o, "plugins"), i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        found += name && (strcmp(name, "maint") == 0 || strcmp(name, "sys") == 0 ||
                          strcmp(name, "data") == 0 || strcmp(name, "ml") == 0 ||
                          strcmp(name, "dixon_coles") == 0 || strcmp(name, "football_data") == 0);
    }
    cr_assert_eq(found, 6, "the shipped plugins are listed: %s", r.out);
    json_decref(o);
    bpt_result_free(&r);
    r = bpt_betpipe(dd, "plugins", NULL);
    cr_assert(strstr(r.out, "maint 1.0.0") && strstr(r.out, "maint.backup_db") &&
                  strstr(r.out, "model      dixon_coles"),
              "%s", r.out);
    bpt_result_free(&r);

    /* a directory with broken plugins beside healthy ones */
    util_strlcpy(fixture_dir, bpt_env("BP_TEST_FIXTURE_PLUGIN_DIR"), sizeof fixture_dir);
    r = bpt_betpipe(dd, "--plugin-dir", fixture_dir, "plugins", NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "healthy_b 0.9.0  (ABI 1.0)"), "the healthy one is loaded: %s", r.out);
    cr_assert(strstr(r.out, "NOT LOADED") && strstr(r.out, "job-bad_magic.so") &&
                  strstr(r.out, "bad magic 0xdeadbeef"),
              "%s", r.out);
    bpt_result_free(&r);

    snprintf(broken, sizeof broken, "%s/job-bad_magic.so", fixture_dir);
    r = bpt_betpipe(dd, "plugins", "check", broken, NULL);
    cr_assert_eq(r.exit_code, 1, "%s", r.err);
    cr_assert(strstr(r.err, broken) && strstr(r.err, "bad magic"), "%s", r.err);
    bpt_result_free(&r);
    snprintf(broken, sizeof broken, "%s/job-bad_initfail.so", fixture_dir);
    r = bpt_betpipe(dd, "plugins", "check", broken, NULL);
    cr_assert_eq(r.exit_code, 1, "%s", r.err);
    cr_assert(strstr(r.err, broken), "%s", r.err);
    bpt_result_free(&r);

    snprintf(shipped, sizeof shipped, "%s/job-sys.so", bpt_env("BP_TEST_PLUGIN_DIR"));
    r = bpt_betpipe(dd, "plugins", "check", shipped, NULL);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "ok: ") && strstr(r.out, "sys.echo"), "%s", r.out);
    bpt_result_free(&r);

    snprintf(missing, sizeof missing, "%s/job-nothing-here.so", dd);
    r = bpt_betpipe(dd, "plugins", "check", missing, NULL);
    cr_assert_eq(r.exit_code, 5, "%s", r.err);
    cr_assert(strstr(r.err, missing), "%s", r.err);
    bpt_result_free(&r);
}
