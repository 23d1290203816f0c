/*
 * store_migrations.c - the store's schema history.
 *
 * Append only: a released migration is never edited. To change the schema, add an entry with
 * the next version number; store_open() applies every entry newer than the file's
 * PRAGMA user_version, each in its own exclusive transaction.
 */
#include "store.h"

const store_migration store_migrations[] = {
    {1, "job history",
     "CREATE TABLE job_history ("
     "  id          TEXT PRIMARY KEY,"
     "  type        TEXT NOT NULL,"
     "  queue       TEXT NOT NULL,"
     "  state       TEXT NOT NULL,"
     "  args        TEXT NOT NULL,"
     "  result      TEXT,"
     "  error       TEXT,"
     "  attempts    INTEGER NOT NULL DEFAULT 0,"
     "  crashes     INTEGER NOT NULL DEFAULT 0,"
     "  priority    INTEGER NOT NULL DEFAULT 5,"
     "  parent_id   TEXT,"
     "  worker      TEXT,"
     "  created_ms  INTEGER,"
     "  started_ms  INTEGER,"
     "  finished_ms INTEGER"
     ") WITHOUT ROWID;"
     "CREATE INDEX job_history_finished ON job_history(finished_ms);"
     "CREATE INDEX job_history_type ON job_history(type, finished_ms);"},
};

const size_t store_migrations_count = sizeof store_migrations / sizeof store_migrations[0];
