/*
 * store.c - the SQLite store: connection pool, statement cache, migrations, maintenance and
 * the job history.
 *
 * Why a pool and not one connection: the daemon runs jobs on several threads at once, and a
 * long import must not make a prediction wait to read. WAL lets any number of readers run
 * beside one writer, but only on separate connections. Each connection caches its prepared
 * statements keyed by the address of the (static) SQL text, so a hot statement is prepared once
 * per connection for the life of the process.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sqlite_util.h"
#include "util.h"

#define STORE_MAX_CONNS       8
#define STORE_STMT_SLOTS      256 /* open addressing, power of two */
#define STORE_BUSY_TIMEOUT_MS 10000

struct store_conn {
    sqlite3 *db;
    bool in_use;
    struct {
        const char *sql;
        sqlite3_stmt *stmt;
    } stmts[STORE_STMT_SLOTS];
};

struct store {
    char *path;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    int n_conns;
    store_conn *conns[STORE_MAX_CONNS];
};

int store_sqlite_err(sqlite3 *db, int rc, const char *what, bp_error *err)
{
    return bp_err(err, sqlite_status(rc), "%s: %s", what,
                  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* ============================================================================================
 * Connections
 * ========================================================================================== */

static int exec_sql(sqlite3 *db, const char *sql, const char *what, bp_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = store_sqlite_err(db, rc, what, err);
        sqlite3_free(msg);
        return code;
    }
    return BP_OK;
}

static int conn_open(const char *path, int flags, store_conn **out, bp_error *err)
{
    store_conn *c = calloc(1, sizeof *c);
    int rc;
    *out = NULL;
    if (!c) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int code = store_sqlite_err(c->db, rc, path, err);
        sqlite3_close(c->db);
        free(c);
        return code;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS);
    *out = c;
    return BP_OK;
}

static void conn_close(store_conn *c)
{
    if (!c) {
        return;
    }
    for (int i = 0; i < STORE_STMT_SLOTS; i++) {
        sqlite3_finalize(c->stmts[i].stmt);
    }
    sqlite3_close(c->db);
    free(c);
}

/* Per-connection settings. journal_mode is a property of the file and was set at open. */
static int conn_configure(store_conn *c, const char *path, bp_error *err)
{
    int rc = exec_sql(c->db,
                      "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                      "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16000;",
                      path, err);
    return rc;
}

sqlite3 *store_conn_db(store_conn *c)
{
    return c->db;
}

sqlite3_stmt *store_conn_stmt(store_conn *c, const char *sql, bp_error *err)
{
    uintptr_t h = (uintptr_t)sql;
    h ^= h >> 17;
    h *= 0x9e3779b1u;
    for (unsigned probe = 0; probe < STORE_STMT_SLOTS; probe++) {
        unsigned i = (unsigned)((h + probe) & (STORE_STMT_SLOTS - 1));
        if (c->stmts[i].sql == sql) {
            sqlite3_reset(c->stmts[i].stmt);
            sqlite3_clear_bindings(c->stmts[i].stmt);
            return c->stmts[i].stmt;
        }
        if (c->stmts[i].sql == NULL) {
            sqlite3_stmt *st = NULL;
            int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
            if (rc != SQLITE_OK) {
                store_sqlite_err(c->db, rc, "prepare", err);
                return NULL;
            }
            c->stmts[i].sql = sql;
            c->stmts[i].stmt = st;
            return st;
        }
    }
    /* The cache is full: hand out a statement that is not cached would leak, so refuse. */
    bp_err(err, BP_E_LIMIT, "statement cache full (%d statements)", STORE_STMT_SLOTS);
    return NULL;
}

int store_conn_begin(store_conn *c, bp_error *err)
{
    return exec_sql(c->db, "BEGIN IMMEDIATE", "begin transaction", err);
}

int store_conn_commit(store_conn *c, bp_error *err)
{
    int rc = exec_sql(c->db, "COMMIT", "commit", err);
    if (rc != BP_OK) {
        store_conn_rollback(c);
    }
    return rc;
}

void store_conn_rollback(store_conn *c)
{
    if (!sqlite3_get_autocommit(c->db)) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
}

store_conn *store_conn_acquire(store *s)
{
    store_conn *c = NULL;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        for (int i = 0; i < s->n_conns; i++) {
            if (!s->conns[i]->in_use) {
                c = s->conns[i];
                break;
            }
        }
        if (c) {
            break;
        }
        if (s->n_conns < STORE_MAX_CONNS) {
            bp_error err;
            if (conn_open(s->path, SQLITE_OPEN_READWRITE, &c, &err) == BP_OK &&
                conn_configure(c, s->path, &err) == BP_OK) {
                s->conns[s->n_conns++] = c;
                break;
            }
            conn_close(c);
            c = NULL;
            log_error("store", "cannot open another connection: %s", err.msg);
            if (s->n_conns == 0) {
                break;
            }
        }
        pthread_cond_wait(&s->freed, &s->lock);
    }
    if (c) {
        c->in_use = true;
    }
    pthread_mutex_unlock(&s->lock);
    return c;
}

void store_conn_release(store *s, store_conn *c)
{
    if (!c) {
        return;
    }
    store_conn_rollback(c);
    pthread_mutex_lock(&s->lock);
    c->in_use = false;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
}

/* ============================================================================================
 * Open and migrate
 * ========================================================================================== */

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out, bp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return store_sqlite_err(db, rc, sql, err);
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        int code = store_sqlite_err(db, rc, sql, err);
        sqlite3_finalize(st);
        return code;
    }
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return BP_OK;
}

static int migrate(store_conn *c, const char *path, bp_error *err)
{
    int64_t version = 0;
    int latest = store_migrations_count ? store_migrations[store_migrations_count - 1].version : 0;
    int rc = pragma_int(c->db, "PRAGMA user_version", &version, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (version > latest) {
        return bp_err(err, BP_E_STATE,
                      "%s: schema version %lld is newer than this betpipe understands (%d); "
                      "upgrade betpipe - the database was left untouched",
                      path, (long long)version, latest);
    }
    if (version == latest) {
        return BP_OK;
    }
    /* One exclusive transaction per migration: a failure leaves the previous version intact. */
    for (size_t i = 0; i < store_migrations_count; i++) {
        const store_migration *m = &store_migrations[i];
        char pragma[64];
        if (m->version <= version) {
            continue;
        }
        rc = exec_sql(c->db, "BEGIN EXCLUSIVE", "begin migration", err);
        if (rc != BP_OK) {
            return rc;
        }
        /* Another process may have applied it while we waited for the lock (two daemons
         * opening a new store together): look again inside the transaction. */
        rc = pragma_int(c->db, "PRAGMA user_version", &version, err);
        if (rc != BP_OK || version >= m->version) {
            store_conn_rollback(c);
            if (rc != BP_OK) {
                return rc;
            }
            continue;
        }
        rc = exec_sql(c->db, m->sql, m->name, err);
        for (size_t k = 0; rc == BP_OK && m->more && m->more[k]; k++) {
            rc = exec_sql(c->db, m->more[k], m->name, err);
        }
        if (rc == BP_OK) {
            snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", m->version);
            rc = exec_sql(c->db, pragma, "set schema version", err);
        }
        if (rc == BP_OK) {
            rc = exec_sql(c->db, "COMMIT", "commit migration", err);
        }
        if (rc != BP_OK) {
            store_conn_rollback(c);
            bp_err_prefix(err, "%s: migration %d (%s) failed: ", path, m->version, m->name);
            return rc;
        }
        log_info("store", "migrated schema path=%s version=%d name=%s", path, m->version, m->name);
    }
    return BP_OK;
}

int store_open(const char *path, store **out, bp_error *err)
{
    store *s = NULL;
    store_conn *c = NULL;
    int64_t page_count = 0;
    char mode[16] = "";
    sqlite3_stmt *st = NULL;
    int rc;

    *out = NULL;
    s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->freed, NULL);

    rc = conn_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &c, err);
    if (rc != BP_OK) {
        goto fail;
    }
    /* Reading the page count makes SQLite read the header: a file that is not a database fails
     * here with SQLITE_NOTADB, before anything is written to it. */
    rc = pragma_int(c->db, "PRAGMA page_count", &page_count, err);
    if (rc != BP_OK) {
        bp_err_prefix(err, "%s is not a usable betpipe database (left untouched): ", path);
        goto fail;
    }
    if (page_count == 0) {
        /* A new file: incremental auto-vacuum must be chosen before the first table exists. */
        rc = exec_sql(c->db, "PRAGMA auto_vacuum=INCREMENTAL", path, err);
        if (rc != BP_OK) {
            goto fail;
        }
    }
    rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        util_strlcpy(mode, (const char *)sqlite3_column_text(st, 0), sizeof mode);
    }
    sqlite3_finalize(st);
    if (strcmp(mode, "wal") != 0) {
        rc = bp_err(err, BP_E_IO, "%s: cannot switch to WAL mode (got '%s'): %s", path, mode,
                    sqlite3_errmsg(c->db));
        goto fail;
    }
    rc = conn_configure(c, path, err);
    if (rc == BP_OK) {
        rc = migrate(c, path, err);
    }
    if (rc != BP_OK) {
        goto fail;
    }
    s->conns[s->n_conns++] = c;
    *out = s;
    return BP_OK;
fail:
    conn_close(c);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->freed);
    free(s->path);
    free(s);
    return rc;
}

void store_close(store *s)
{
    if (!s) {
        return;
    }
    for (int i = 0; i < s->n_conns; i++) {
        conn_close(s->conns[i]);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->freed);
    free(s->path);
    free(s);
}

const char *store_path(const store *s)
{
    return s->path;
}

int store_schema_version(store *s)
{
    int64_t v = -1;
    store_conn *c = store_conn_acquire(s);
    if (c) {
        pragma_int(c->db, "PRAGMA user_version", &v, NULL);
        store_conn_release(s, c);
    }
    return (int)v;
}

/* ============================================================================================
 * Maintenance
 * ========================================================================================== */

int store_backup(store *s, const char *dest_path, bp_error *err)
{
    sqlite3 *dest = NULL;
    sqlite3_backup *bk;
    store_conn *c;
    int rc;

    if (util_path_exists(dest_path)) {
        return bp_err(err, BP_E_EXISTS, "backup target %s already exists", dest_path);
    }
    rc = sqlite3_open_v2(dest_path, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        int code = store_sqlite_err(dest, rc, dest_path, err);
        sqlite3_close(dest);
        return code;
    }
    c = store_conn_acquire(s);
    if (!c) {
        sqlite3_close(dest);
        unlink(dest_path);
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    bk = sqlite3_backup_init(dest, "main", c->db, "main");
    if (!bk) {
        rc = store_sqlite_err(dest, sqlite3_errcode(dest), "backup init", err);
        goto done;
    }
    /* Copy in steps of 256 pages so writers are locked out only for short moments; a write
     * during the copy makes SQLite restart it, which the loop absorbs. */
    do {
        rc = sqlite3_backup_step(bk, 256);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
            util_sleep_ms(5);
        }
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish(bk);
    if (rc != SQLITE_DONE) {
        rc = store_sqlite_err(dest, rc, "backup", err);
        goto done;
    }
    /* The copy carries the source's WAL flag in its header, so whoever opens it later (our own
     * verify, a user's sqlite3) would create -wal and -shm files beside it that retention never
     * removes. A backup is one self-contained file: switch it to a rollback journal. */
    rc = sqlite3_exec(dest, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = store_sqlite_err(dest, rc, "backup journal mode", err);
        goto done;
    }
    rc = BP_OK;
done:
    store_conn_release(s, c);
    sqlite3_close(dest);
    if (rc != BP_OK) {
        unlink(dest_path);
    }
    return rc;
}

int store_verify_file(const char *path, bp_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char problems[BP_ERROR_MSG_MAX] = "";
    size_t used = 0;
    int rows = 0, rc;
    bool ok = false;

    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        int code = store_sqlite_err(db, rc, path, err);
        sqlite3_close(db);
        return code;
    }
    rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(20)", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        int code = store_sqlite_err(db, rc, path, err);
        sqlite3_close(db);
        return code;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        rows++;
        if (rows == 1 && line && strcmp(line, "ok") == 0) {
            ok = true;
        } else if (line && used < sizeof problems - 1) {
            int n =
                snprintf(problems + used, sizeof problems - used, "%s%s", used ? "; " : "", line);
            used += n > 0 ? (size_t)n : 0;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rc = store_sqlite_err(db, rc, path, err);
        sqlite3_close(db);
        return rc;
    }
    sqlite3_close(db);
    if (!ok) {
        return bp_err(err, BP_E_CORRUPT, "%s failed the integrity check: %s", path, problems);
    }
    return BP_OK;
}

static int64_t wal_size(const char *path)
{
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", path);
    int64_t n = util_file_size(wal);
    return n < 0 ? 0 : n;
}

int store_optimize(store *s, json_t **out_report, bp_error *err)
{
    int64_t free_before = 0, free_after = 0, page_size = 0;
    int64_t bytes_before = util_file_size(s->path), wal_before = wal_size(s->path);
    store_conn *c = store_conn_acquire(s);
    int rc;
    *out_report = NULL;
    if (!c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    rc = pragma_int(c->db, "PRAGMA freelist_count", &free_before, err);
    if (rc == BP_OK) {
        rc = pragma_int(c->db, "PRAGMA page_size", &page_size, err);
    }
    if (rc == BP_OK) {
        rc = exec_sql(c->db, "ANALYZE; PRAGMA optimize; PRAGMA incremental_vacuum;", "optimize",
                      err);
    }
    if (rc == BP_OK) {
        rc = exec_sql(c->db, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint", err);
    }
    if (rc == BP_OK) {
        rc = pragma_int(c->db, "PRAGMA freelist_count", &free_after, err);
    }
    store_conn_release(s, c);
    if (rc != BP_OK) {
        return rc;
    }
    *out_report =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "bytes_before", (json_int_t)bytes_before,
                  "bytes_after", (json_int_t)util_file_size(s->path), "wal_bytes_before",
                  (json_int_t)wal_before, "wal_bytes_after", (json_int_t)wal_size(s->path),
                  "freelist_pages_before", (json_int_t)free_before, "freelist_pages_after",
                  (json_int_t)free_after, "page_size", (json_int_t)page_size);
    return *out_report ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
}

/* ============================================================================================
 * Job history
 * ========================================================================================== */

static const char SQL_HISTORY_UPSERT[] =
    "INSERT INTO job_history (id, type, queue, state, args, result, error, attempts, crashes, "
    "priority, parent_id, worker, created_ms, started_ms, finished_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
    "ON CONFLICT(id) DO UPDATE SET state=excluded.state, result=excluded.result, "
    "error=excluded.error, attempts=excluded.attempts, crashes=excluded.crashes, "
    "worker=excluded.worker, started_ms=excluded.started_ms, finished_ms=excluded.finished_ms";

static void bind_text_or_null(sqlite3_stmt *st, int idx, const char *s)
{
    if (s) {
        sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

static void bind_ms_or_null(sqlite3_stmt *st, int idx, int64_t ms)
{
    if (ms > 0) {
        sqlite3_bind_int64(st, idx, ms);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

int store_history_record(store *s, job *const *jobs, size_t n, bp_error *err)
{
    store_conn *c;
    int rc;
    if (n == 0) {
        return BP_OK;
    }
    c = store_conn_acquire(s);
    if (!c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    rc = store_conn_begin(c, err);
    for (size_t i = 0; rc == BP_OK && i < n; i++) {
        const job *j = jobs[i];
        sqlite3_stmt *st = store_conn_stmt(c, SQL_HISTORY_UPSERT, err);
        if (!st) {
            rc = err ? err->code : BP_E_IO;
            break;
        }
        sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, j->type ? j->type : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, j->queue ? j->queue : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, job_state_name(j->state), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, j->args ? j->args : "{}", -1, SQLITE_STATIC);
        bind_text_or_null(st, 6, j->result);
        bind_text_or_null(st, 7, j->error);
        sqlite3_bind_int(st, 8, j->attempts);
        sqlite3_bind_int(st, 9, j->crashes);
        sqlite3_bind_int(st, 10, j->priority);
        bind_text_or_null(st, 11, j->parent_id);
        bind_text_or_null(st, 12, j->worker);
        bind_ms_or_null(st, 13, j->created_ms);
        bind_ms_or_null(st, 14, j->started_ms);
        bind_ms_or_null(st, 15, j->finished_ms);
        int step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            rc = store_sqlite_err(c->db, step, "record job history", err);
        }
    }
    if (rc == BP_OK) {
        rc = store_conn_commit(c, err);
    }
    store_conn_release(s, c);
    return rc;
}

static int history_row(sqlite3_stmt *st, job **out)
{
    job *j = job_new();
    const char *state;
    if (!j) {
        return BP_E_NOMEM;
    }
    util_strlcpy(j->id, (const char *)sqlite3_column_text(st, 0), sizeof j->id);
    state = (const char *)sqlite3_column_text(st, 3);
    if (!state || job_state_parse(state, &j->state) != BP_OK) {
        j->state = JOB_FAILURE;
    }
    if (job_set_str(&j->type, (const char *)sqlite3_column_text(st, 1)) ||
        job_set_str(&j->queue, (const char *)sqlite3_column_text(st, 2)) ||
        job_set_str(&j->args, (const char *)sqlite3_column_text(st, 4)) ||
        job_set_str(&j->result, (const char *)sqlite3_column_text(st, 5)) ||
        job_set_str(&j->error, (const char *)sqlite3_column_text(st, 6)) ||
        job_set_str(&j->parent_id, (const char *)sqlite3_column_text(st, 10)) ||
        job_set_str(&j->worker, (const char *)sqlite3_column_text(st, 11))) {
        job_free(j);
        return BP_E_NOMEM;
    }
    j->attempts = sqlite3_column_int(st, 7);
    j->crashes = sqlite3_column_int(st, 8);
    j->priority = sqlite3_column_int(st, 9);
    j->created_ms = sqlite3_column_int64(st, 12);
    j->started_ms = sqlite3_column_int64(st, 13);
    j->finished_ms = sqlite3_column_int64(st, 14);
    *out = j;
    return BP_OK;
}

int store_history_list(store *s, const char *queue, const char *type, int state, int limit,
                       json_t **out, bp_error *err)
{
    static const char sql[] =
        "SELECT id, type, queue, state, args, result, error, attempts, crashes, priority, "
        "parent_id, worker, created_ms, started_ms, finished_ms FROM job_history "
        "WHERE (?1 IS NULL OR queue=?1) AND (?2 IS NULL OR type=?2) AND (?3 IS NULL OR state=?3) "
        "ORDER BY coalesce(finished_ms, started_ms, created_ms) DESC LIMIT ?4";
    store_conn *c;
    sqlite3_stmt *st;
    json_t *arr;
    int rc = BP_OK, step = SQLITE_DONE;
    *out = NULL;
    c = store_conn_acquire(s);
    if (!c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    st = store_conn_stmt(c, sql, err);
    if (!st) {
        store_conn_release(s, c);
        return err ? err->code : BP_E_IO;
    }
    bind_text_or_null(st, 1, queue);
    bind_text_or_null(st, 2, type);
    bind_text_or_null(st, 3, state >= 0 ? job_state_name((job_state)state) : NULL);
    sqlite3_bind_int(st, 4, limit > 0 ? limit : 100);
    arr = json_array();
    while (arr && (step = sqlite3_step(st)) == SQLITE_ROW) {
        job *j = NULL;
        if (history_row(st, &j) != BP_OK) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        json_array_append_new(arr, job_to_json(j));
        job_free(j);
    }
    if (arr && rc == BP_OK && step != SQLITE_DONE) {
        rc = store_sqlite_err(c->db, step, "list job history", err);
    }
    store_conn_release(s, c);
    if (!arr) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return BP_OK;
}

int store_history_get(store *s, const char *id, job **out, bp_error *err)
{
    static const char sql[] =
        "SELECT id, type, queue, state, args, result, error, attempts, crashes, priority, "
        "parent_id, worker, created_ms, started_ms, finished_ms FROM job_history WHERE id=?1";
    store_conn *c = store_conn_acquire(s);
    sqlite3_stmt *st;
    int rc, step;
    *out = NULL;
    if (!c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    st = store_conn_stmt(c, sql, err);
    if (!st) {
        store_conn_release(s, c);
        return err ? err->code : BP_E_IO;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        rc = history_row(st, out);
    } else if (step == SQLITE_DONE) {
        rc = bp_err(err, BP_E_NOTFOUND, "no job %s in the history", id);
    } else {
        rc = store_sqlite_err(c->db, step, "read job history", err);
    }
    store_conn_release(s, c);
    return rc;
}

int store_history_prune(store *s, int64_t before_ms, int64_t *out_deleted, bp_error *err)
{
    static const char sql[] = "DELETE FROM job_history WHERE finished_ms < ?1";
    store_conn *c = store_conn_acquire(s);
    sqlite3_stmt *st;
    int rc = BP_OK, step;
    *out_deleted = 0;
    if (!c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    st = store_conn_stmt(c, sql, err);
    if (!st) {
        store_conn_release(s, c);
        return err ? err->code : BP_E_IO;
    }
    sqlite3_bind_int64(st, 1, before_ms);
    step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        rc = store_sqlite_err(c->db, step, "prune job history", err);
    } else {
        *out_deleted = sqlite3_changes(c->db);
    }
    store_conn_release(s, c);
    return rc;
}
