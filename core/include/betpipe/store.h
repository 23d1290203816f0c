/*
 * betpipe/store.h - typed access to the SQLite store (domain data, models, job history).
 *
 * Part of the plugin ABI. No SQLite handle crosses the ABI: plugins call these typed functions
 * and the core owns the connections, transactions and migrations. All functions are safe to call
 * from any thread.
 */
#ifndef BETPIPE_STORE_H
#define BETPIPE_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"

typedef struct bp_host bp_host;

struct bp_store_api {
    uint32_t struct_size;
    uint32_t reserved0;

    /* -- maintenance ---------------------------------------------------------------------- */
    /* the store's database file (absolute path). */
    const char *(*path)(const bp_host *h);
    /* copy the live store into `dest_path` with SQLite's online backup API (readers and writers
     * keep working meanwhile). The file must not exist yet. */
    int (*backup)(const bp_host *h, const char *dest_path, bp_error *err);
    /* run PRAGMA integrity_check on the database file at `path` (opened read-only); BP_OK when
     * it answers "ok", BP_E_CORRUPT with the first problems in err otherwise. */
    int (*verify)(const bp_host *h, const char *path, bp_error *err);
    /* ANALYZE, PRAGMA optimize, incremental vacuum and a WAL checkpoint. *out_report (new
     * reference) gets {"bytes_before", "bytes_after", "pages_freed", "wal_bytes_before", ...}. */
    int (*optimize)(const bp_host *h, json_t **out_report, bp_error *err);
};

#endif
