/*
 * sqlite_util.h - what the store and the embedded broker share about SQLite.
 */
#ifndef BP_CORE_SQLITE_UTIL_H
#define BP_CORE_SQLITE_UTIL_H

/* The BP_E_* status for an SQLite result code: CORRUPT/NOTADB -> BP_E_CORRUPT, BUSY/LOCKED ->
 * BP_E_UNAVAILABLE, NOMEM -> BP_E_NOMEM, CONSTRAINT -> BP_E_EXISTS, anything else -> BP_E_IO. */
int sqlite_status(int rc);

#endif
