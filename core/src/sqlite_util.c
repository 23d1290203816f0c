/*
 * sqlite_util.c - SQLite helpers shared by the store and the embedded broker.
 */
#include "sqlite_util.h"

#include <sqlite3.h>

#include "betpipe/status.h"

int sqlite_status(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return BP_E_CORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return BP_E_UNAVAILABLE;
    case SQLITE_NOMEM: return BP_E_NOMEM;
    case SQLITE_CONSTRAINT: return BP_E_EXISTS;
    default: return BP_E_IO;
    }
}
