/*
 * store.h - the SQLite store: domain data, fitted models, predictions, job history.
 *
 * One database file per instance (<data_dir>/betpipe.db) in WAL mode, so readers never block
 * the writer. Connections come from a small pool: each thread that needs the store takes a
 * connection for the duration of one operation (store_conn_acquire/release); each connection
 * keeps its prepared statements. Only prepared statements are used.
 *
 * The schema evolves through numbered migrations (store_migrations.c) recorded in
 * PRAGMA user_version. Opening a database whose version is newer than this build refuses to
 * touch it; opening a file that is not a SQLite database says so and changes nothing.
 */
#ifndef BP_CORE_STORE_H
#define BP_CORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "betpipe/status.h"
#include "job.h"

typedef struct store store;
typedef struct store_conn store_conn;

/* One migration: applied in a transaction when user_version < version. */
typedef struct store_migration {
    int version;
    const char *name;
    const char *sql; /* one or more statements */
    /* Further texts run after `sql` in the same transaction: a NULL-terminated array, or NULL.
     * C compilers only promise string literals of 4095 bytes, so a long migration (one that
     * seeds reference data) is written in parts. */
    const char *const *more;
} store_migration;

/* The migrations this build knows, in order (store_migrations.c). */
extern const store_migration store_migrations[];
extern const size_t store_migrations_count;

/* Open (creating if needed) the store at `path` and bring its schema up to date. */
int store_open(const char *path, store **out, bp_error *err);
void store_close(store *s);
const char *store_path(const store *s);
/* The schema version of the open database. */
int store_schema_version(store *s);

/* Borrow a connection (blocks only while every pooled connection is in use). Thread-safe. */
store_conn *store_conn_acquire(store *s);
void store_conn_release(store *s, store_conn *c);
sqlite3 *store_conn_db(store_conn *c);
/* A cached prepared statement for `sql` on this connection, reset and with bindings cleared.
 * `sql` must be a string with static storage: its address is the cache key. NULL on error
 * (err filled). The statement stays owned by the connection. */
sqlite3_stmt *store_conn_stmt(store_conn *c, const char *sql, bp_error *err);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK on a connection. */
int store_conn_begin(store_conn *c, bp_error *err);
int store_conn_commit(store_conn *c, bp_error *err);
void store_conn_rollback(store_conn *c);
/* Fill err from the connection's last SQLite error with a context prefix; returns BP_E_IO
 * (BP_E_CORRUPT for SQLITE_CORRUPT/NOTADB, BP_E_UNAVAILABLE for BUSY/LOCKED). */
int store_sqlite_err(sqlite3 *db, int rc, const char *what, bp_error *err);

/* ---- maintenance (maint.* jobs) ------------------------------------------------------------ */

/* Online backup into dest_path (must not exist). */
int store_backup(store *s, const char *dest_path, bp_error *err);
/* PRAGMA integrity_check of the database at `path`, opened read-only. */
int store_verify_file(const char *path, bp_error *err);
/* ANALYZE; PRAGMA optimize; PRAGMA incremental_vacuum; wal_checkpoint(TRUNCATE).
 * *out_report: {"bytes_before", "bytes_after", "wal_bytes_before", "wal_bytes_after",
 * "freelist_pages_before", "freelist_pages_after", "page_size"}. */
int store_optimize(store *s, json_t **out_report, bp_error *err);

/* ---- job history ------------------------------------------------------------------------------
 */

/* Insert or update the history rows of finished (or otherwise noteworthy) jobs, in one
 * transaction. Idempotent: a job id appears once, with its latest state. */
int store_history_record(store *s, job *const *jobs, size_t n, bp_error *err);
/* Newest first; filters may be NULL/-1. *out: JSON array of job objects. */
int store_history_list(store *s, const char *queue, const char *type, int state, int limit,
                       json_t **out, bp_error *err);
/* One job by id (BP_E_NOTFOUND when absent). */
int store_history_get(store *s, const char *id, job **out, bp_error *err);
/* Delete history rows finished before `before_ms`; *out_deleted gets the count. */
int store_history_prune(store *s, int64_t before_ms, int64_t *out_deleted, bp_error *err);

#endif
