/*
 * test_store.c - store open/migrate, refusal of foreign files, backup + verify, optimize,
 * job history, WAL (a write commits while a read is open) and the busy timeout (a write waits for
 * another writer).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "store.h"
#include "support.h"
#include "util.h"

static char *tmp;
static char db_path[512];

static void setup(void)
{
    tmp = bpt_tmpdir("store");
    snprintf(db_path, sizeof db_path, "%s/betpipe.db", tmp);
}

static void teardown(void)
{
    bpt_rm_rf(tmp);
    free(tmp);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, migrates_new_file)
{
    store *s = NULL;
    bp_error err = {0};
    cr_assert_eq(store_open(db_path, &s, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(store_schema_version(s), store_migrations[store_migrations_count - 1].version);
    store_close(s);
    /* reopening is a no-op */
    cr_assert_eq(store_open(db_path, &s, &err), BP_OK, "%s", err.msg);
    store_close(s);
}

Test(store, refuses_foreign_file_untouched)
{
    store *s = NULL;
    bp_error err = {0};
    FILE *f = fopen(db_path, "wb");
    for (int i = 0; i < 100; i++) {
        fputs("Div,Date,HomeTeam,AwayTeam\n", f);
    }
    fclose(f);
    char *before = bpt_slurp(db_path);
    cr_assert_neq(store_open(db_path, &s, &err), BP_OK);
    cr_assert(strstr(err.msg, "not a usable betpipe database"), "%s", err.msg);
    char *after = bpt_slurp(db_path);
    cr_assert_str_eq(before, after);
    free(before);
    free(after);
}

Test(store, refuses_newer_schema)
{
    store *s = NULL;
    bp_error err = {0};
    sqlite3 *db;
    cr_assert_eq(store_open(db_path, &s, &err), BP_OK);
    store_close(s);
    sqlite3_open(db_path, &db);
    sqlite3_exec(db, "PRAGMA user_version=999", NULL, NULL, NULL);
    sqlite3_close(db);
    cr_assert_eq(store_open(db_path, &s, &err), BP_E_STATE);
    cr_assert(strstr(err.msg, "newer than this betpipe"), "%s", err.msg);
}

static job *finished_job(const char *type, job_state st)
{
    job *j = job_new();
    util_uuid7(j->id);
    job_set_str(&j->type, type);
    job_set_str(&j->queue, "maintenance_queue");
    j->state = st;
    j->attempts = 1;
    j->started_ms = j->created_ms + 1;
    j->finished_ms = j->created_ms + 2;
    return j;
}

Test(store, history_record_list_get_prune)
{
    store *s = NULL;
    bp_error err = {0};
    job *jobs[3] = {finished_job("maint.backup_db", JOB_SUCCESS),
                    finished_job("maint.backup_db", JOB_FAILURE),
                    finished_job("sys.noop", JOB_SUCCESS)};
    json_t *list = NULL;
    job *got = NULL;
    int64_t deleted = 0;
    cr_assert_eq(store_open(db_path, &s, &err), BP_OK);
    cr_assert_eq(store_history_record(s, jobs, 3, &err), BP_OK, "%s", err.msg);
    /* idempotent: recording again updates, never duplicates */
    job_set_str(&jobs[1]->error, "disk full");
    cr_assert_eq(store_history_record(s, jobs, 3, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(store_history_list(s, NULL, "maint.backup_db", -1, 10, &list, &err), BP_OK);
    cr_assert_eq(json_array_size(list), 2);
    json_decref(list);
    cr_assert_eq(store_history_list(s, NULL, NULL, JOB_FAILURE, 10, &list, &err), BP_OK);
    cr_assert_eq(json_array_size(list), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "error")),
                     "disk full");
    json_decref(list);
    cr_assert_eq(store_history_get(s, jobs[2]->id, &got, &err), BP_OK);
    cr_assert_str_eq(got->type, "sys.noop");
    job_free(got);
    cr_assert_eq(store_history_get(s, "nope", &got, &err), BP_E_NOTFOUND);
    cr_assert_eq(store_history_prune(s, util_now_ms() + 1000, &deleted, &err), BP_OK);
    cr_assert_eq(deleted, 3);
    for (int i = 0; i < 3; i++) {
        job_free(jobs[i]);
    }
    store_close(s);
}

Test(store, backup_verify_optimize)
{
    store *s = NULL;
    bp_error err = {0};
    char dest[600];
    json_t *rep = NULL;
    job *many[500];
    cr_assert_eq(store_open(db_path, &s, &err), BP_OK);
    for (int i = 0; i < 500; i++) {
        many[i] = finished_job("sys.noop", JOB_SUCCESS);
    }
    cr_assert_eq(store_history_record(s, many, 500, &err), BP_OK);
    snprintf(dest, sizeof dest, "%s/backup.db", tmp);
    cr_assert_eq(store_backup(s, dest, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(store_verify_file(dest, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(store_backup(s, dest, &err), BP_E_EXISTS, "never overwrite a backup");
    /* the copy holds the rows */
    store *copy = NULL;
    json_t *list = NULL;
    cr_assert_eq(store_open(dest, &copy, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(store_history_list(copy, NULL, NULL, -1, 1000, &list, &err), BP_OK);
    cr_assert_eq(json_array_size(list), 500);
    json_decref(list);
    store_close(copy);
    int64_t deleted;
    store_history_prune(s, util_now_ms() + 1000, &deleted, &err);
    cr_assert_eq(store_optimize(s, &rep, &err), BP_OK, "%s", err.msg);
    cr_assert(json_integer_value(json_object_get(rep, "bytes_after")) > 0);
    cr_assert(json_integer_value(json_object_get(rep, "freelist_pages_after")) <=
              json_integer_value(json_object_get(rep, "freelist_pages_before")));
    json_decref(rep);
    for (int i = 0; i < 500; i++) {
        job_free(many[i]);
    }
    store_close(s);

    /* a damaged copy fails verification */
    FILE *f = fopen(dest, "r+b");
    fseek(f, 4096 + 100, SEEK_SET);
    for (int i = 0; i < 2000; i++) {
        fputc(0xA5, f);
    }
    fclose(f);
    cr_assert_neq(store_verify_file(dest, &err), BP_OK);
}

Test(store, concurrent_first_open_migrates_once)
{
    /* Several processes (two daemons, a CLI) may open a brand-new store at the same moment:
     * each migration must be applied once and every open must succeed. */
    enum { N = 6 };
    pid_t kids[N];
    for (int i = 0; i < N; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            store *s = NULL;
            bp_error err = {0};
            int rc = store_open(db_path, &s, &err);
            if (rc != BP_OK) {
                fprintf(stderr, "child %d: %s\n", i, err.msg);
            }
            store_close(s);
            _exit(rc == BP_OK ? 0 : 1);
        }
    }
    for (int i = 0; i < N; i++) {
        int status = 0;
        waitpid(kids[i], &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "open %d failed", i);
    }
    store *s = NULL;
    cr_assert_eq(store_open(db_path, &s, NULL), BP_OK);
    cr_assert_eq(store_schema_version(s), store_migrations[store_migrations_count - 1].version);
    store_close(s);
}

/* ---- WAL and the busy timeout ------------------------------------------------------------ */

static int64_t history_rows(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM job_history", -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

Test(store, wal_lets_a_writer_commit_while_a_reader_holds_a_snapshot)
{
    /* A long read (a backtest, a model fit reading every match) must not stop a collector from
     * writing. In a rollback journal the writer's commit would wait for the reader's shared lock
     * until the busy timeout and fail; in WAL it commits at once and the reader keeps its
     * snapshot until it ends its transaction. */
    store *reader = NULL, *writer = NULL;
    bp_error err = {0};
    job *j = finished_job("sys.noop", JOB_SUCCESS);
    cr_assert_eq(store_open(db_path, &reader, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(store_open(db_path, &writer, &err), BP_OK, "%s", err.msg);

    /* the mode is the file's: a plain connection that asks finds WAL */
    sqlite3 *plain = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open_v2(db_path, &plain, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(plain, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(plain);

    store_conn *c = store_conn_acquire(reader);
    sqlite3 *rdb = store_conn_db(c);
    cr_assert_eq(sqlite3_exec(rdb, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(history_rows(rdb), 0); /* the read transaction and its snapshot start here */

    cr_assert_eq(store_history_record(writer, &j, 1, &err), BP_OK,
                 "a write while a read is open: %s", err.msg);
    cr_assert_eq(history_rows(rdb), 0, "the reader still sees its snapshot");
    cr_assert_eq(sqlite3_exec(rdb, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(history_rows(rdb), 1, "and the new row once its read is over");
    store_conn_release(reader, c);

    job_free(j);
    store_close(writer);
    store_close(reader);
}

typedef struct blocked_write {
    store *s;
    job *j;
    atomic_bool started;
    int rc;
    bp_error err;
} blocked_write;

static void *write_history(void *arg)
{
    blocked_write *w = arg;
    atomic_store(&w->started, true);
    w->rc = store_history_record(w->s, &w->j, 1, &w->err);
    return NULL;
}

static bool write_started(void *ud)
{
    return atomic_load(&((blocked_write *)ud)->started);
}

Test(store, busy_timeout_waits_for_another_writer_instead_of_failing)
{
    /* Two processes write the store (a daemon's collectors, a CLI import): one waits for the
     * other's transaction rather than failing with "database is locked". */
    store *s = NULL;
    bp_error err = {0};
    cr_assert_eq(store_open(db_path, &s, &err), BP_OK, "%s", err.msg);

    /* every connection of the pool carries the timeout */
    store_conn *c = store_conn_acquire(s);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(store_conn_db(c), "PRAGMA busy_timeout", -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 10000);
    sqlite3_finalize(st);
    store_conn_release(s, c);

    /* another connection (no busy handler of its own) holds the write lock */
    sqlite3 *holder = NULL;
    cr_assert_eq(sqlite3_open_v2(db_path, &holder, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    blocked_write w = {.s = s, .j = finished_job("sys.noop", JOB_SUCCESS)};
    atomic_init(&w.started, false);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, write_history, &w), 0);
    cr_assert(bpt_wait_for(write_started, &w, 10000));
    /* Hold the lock a moment longer so that the write meets it (without a busy timeout it
     * fails at once with SQLITE_BUSY); this is how long the lock is held, not a wait for
     * anything, and nothing is asserted about time. */
    struct timespec hold = {0, 200 * 1000000L};
    nanosleep(&hold, NULL);
    cr_assert_eq(sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, BP_OK, "the write waited for the lock: %s", w.err.msg);
    cr_assert_eq(history_rows(holder), 1);
    sqlite3_close(holder);
    job_free(w.j);
    store_close(s);
}
