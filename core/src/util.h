/*
 * util.h - small pure helpers shared by the core: time, ids, strings, paths, numbers.
 * Thread-safe unless noted.
 */
#ifndef BP_CORE_UTIL_H
#define BP_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "betpipe/status.h"

#define BP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- time ---------------------------------------------------------------------------------- */

/* Wall clock in UTC epoch milliseconds. Tests may install an override with util_set_clock(). */
int64_t util_now_ms(void);
/* Monotonic clock in nanoseconds. */
int64_t util_mono_ns(void);
/* Replace the wall clock (NULL restores the real one). For tests and the beat's fast clock. */
void util_set_clock(int64_t (*now_ms_fn)(void));
/* Format an epoch-ms instant as "2026-11-22T10:15:00.123Z" into buf (>= 32 bytes). */
void util_format_iso8601(int64_t ms, char *buf, size_t len);
/* Parse ISO 8601: "2026-11-22", "2026-11-22T10:15", "...:00", fractional seconds, "Z" or
 * "+01:00"/"-0500". A time without an offset is taken as UTC. */
int util_parse_iso8601(const char *s, int64_t *out_ms, bp_error *err);
/* Parse a duration: "90", "90s", "1.5m", "2h", "1d", "250ms" -> milliseconds. */
int util_parse_duration_ms(const char *s, int64_t *out_ms, bp_error *err);
/* Sleep for ms milliseconds (restarts on EINTR until the time has passed). */
void util_sleep_ms(int64_t ms);

/* ---- ids ----------------------------------------------------------------------------------- */

/* A UUIDv7 (RFC 9562): 48-bit ms timestamp, version, random bits; time-sortable.
 * buf must hold 37 bytes. Monotonic within a process even when the clock stalls. */
void util_uuid7(char *buf);

/* ---- strings ------------------------------------------------------------------------------- */

/* Copy with truncation; always NUL-terminates when len > 0. Returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t len);
/* strdup that returns NULL on NULL. */
char *util_strdup(const char *s);
/* printf into a new heap string (NULL on failure). */
char *util_asprintf(const char *fmt, ...) BP_PRINTF(1, 2);
bool util_str_starts_with(const char *s, const char *prefix);
bool util_str_ends_with(const char *s, const char *suffix);
/* The candidate closest to `word` by edit distance, within 1 edit for words of up to 4
 * characters and 2 for longer ones, or NULL: the "did you mean" of error messages. Borrowed from
 * `cands`. */
const char *util_closest(const char *word, const char *const *cands, size_t n);

/* ---- numbers ------------------------------------------------------------------------------- */

/* Strict integer parse of the whole string within [min, max]; `what` names it in the error. */
int util_parse_int64(const char *s, int64_t min, int64_t max, const char *what, int64_t *out,
                     bp_error *err);
int util_parse_double(const char *s, const char *what, double *out, bp_error *err);

/* ---- files and paths ------------------------------------------------------------------------ */

/* mkdir -p with mode for each created component. */
int util_mkdir_p(const char *path, unsigned mode, bp_error *err);
/* Read a whole file into a new NUL-terminated buffer. */
int util_read_file(const char *path, size_t max_bytes, char **out_buf, size_t *out_len,
                   bp_error *err);
/* Write a whole file atomically (tmp + rename). */
int util_write_file_atomic(const char *path, const void *data, size_t len, bp_error *err);
/* The directory holding the running executable (from /proc/self/exe); buf >= PATH_MAX. */
int util_exe_dir(char *buf, size_t len);
/* Size in bytes of a file, or -1 when it does not exist. */
int64_t util_file_size(const char *path);
bool util_path_exists(const char *path);
/* Canonical absolute path (symlinks resolved), new string; NULL when it does not exist. */
char *util_realpath(const char *path);

/* ---- randomness ----------------------------------------------------------------------------- */

/* Uniform double in [0, 1), thread-safe, seeded from getrandom() once per thread. */
double util_rand01(void);
uint64_t util_rand64(void);

#endif
