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
    /* What the beat noticed about its entries beyond the jobs themselves: slots skipped
     * because the previous run was live, missed slots at start, manual runs, enqueue errors.
     * `schedule list` reads it; the beat keeps the newest 500 per entry. */
    {2, "beat events",
     "CREATE TABLE beat_events ("
     "  seq     INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  entry   TEXT NOT NULL,"
     "  kind    TEXT NOT NULL,"
     "  slot_ms INTEGER,"
     "  at_ms   INTEGER NOT NULL,"
     "  job_id  TEXT,"
     "  worker  TEXT,"
     "  detail  TEXT"
     ");"
     "CREATE UNIQUE INDEX beat_events_slot ON beat_events(entry, slot_ms, kind);"
     "CREATE INDEX beat_events_entry ON beat_events(entry, seq);"},
};

const size_t store_migrations_count = sizeof store_migrations / sizeof store_migrations[0];
