/*
 * betpipe/status.h - status codes and the error out-parameter.
 *
 * Part of the plugin ABI. Every fallible function in betpipe returns an int status: BP_OK (0) on
 * success or one of the negative BP_E_* codes below. Detail travels in an optional bp_error that
 * the caller owns (usually on its stack); callees fill it on failure and leave it alone on success.
 * Passing NULL for the bp_error is always allowed.
 *
 * The numeric values are frozen: a code is never renumbered or reused.
 */
#ifndef BETPIPE_STATUS_H
#define BETPIPE_STATUS_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define BP_OK            0
#define BP_E_NOMEM       (-1)  /* allocation failed */
#define BP_E_INVAL       (-2)  /* bad argument, bad input, schema violation */
#define BP_E_IO          (-3)  /* file or socket I/O failed */
#define BP_E_TIMEOUT     (-4)  /* a deadline passed */
#define BP_E_NOTFOUND    (-5)  /* no such job, key, plugin, row ... */
#define BP_E_EXISTS      (-6)  /* duplicate name, unique key already held */
#define BP_E_CONFIG      (-7)  /* configuration is invalid */
#define BP_E_ABI         (-8)  /* plugin not compatible with this daemon */
#define BP_E_UNAVAILABLE (-9)  /* a backend (redis, database, remote API) cannot be reached */
#define BP_E_RETRY       (-10) /* transient failure: the job asks to be retried */
#define BP_E_CANCELLED   (-11) /* cancelled: revoked or soft time limit exceeded */
#define BP_E_STATE       (-12) /* operation not allowed in the current state */
#define BP_E_CORRUPT     (-13) /* stored data is damaged or not what it claims to be */
#define BP_E_LIMIT       (-14) /* a size, rate or quota limit was hit */
#define BP_E_INTERNAL    (-15) /* a bug: an invariant did not hold */

#define BP_ERROR_MSG_MAX 512

/* Error detail. `code` repeats the returned status; `msg` is a NUL-terminated human sentence that
 * names what went wrong and where ("args.league: expected a string"). Layout frozen. */
typedef struct bp_error {
    int code;
    char msg[BP_ERROR_MSG_MAX];
} bp_error;

#if defined(__GNUC__)
#define BP_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define BP_PRINTF(fmt_idx, arg_idx)
#endif

/* Fill `err` (if not NULL) and return `code`, so callers can write
 *     return bp_err(err, BP_E_INVAL, "args.league: expected a string");
 * Header-only so plugins need no core symbol. */
static inline BP_PRINTF(3, 4) int bp_err(bp_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Prefix an existing message with context ("store: " + msg), keeping the code. */
static inline BP_PRINTF(2, 3) void bp_err_prefix(bp_error *err, const char *fmt, ...)
{
    if (err) {
        char prefix[BP_ERROR_MSG_MAX];
        char old[BP_ERROR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        size_t plen = strlen(prefix), olen;
        memcpy(old, err->msg, sizeof old);
        old[sizeof old - 1] = '\0';
        olen = strlen(old);
        if (plen > sizeof err->msg - 1) {
            plen = sizeof err->msg - 1;
        }
        if (olen > sizeof err->msg - 1 - plen) {
            olen = sizeof err->msg - 1 - plen;
        }
        memcpy(err->msg, prefix, plen);
        memcpy(err->msg + plen, old, olen);
        err->msg[plen + olen] = '\0';
    }
}

static inline void bp_err_clear(bp_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

/* Static text for a status code ("invalid argument"). Never NULL. */
static inline const char *bp_status_str(int code)
{
    switch (code) {
    case BP_OK: return "ok";
    case BP_E_NOMEM: return "out of memory";
    case BP_E_INVAL: return "invalid argument";
    case BP_E_IO: return "I/O error";
    case BP_E_TIMEOUT: return "timed out";
    case BP_E_NOTFOUND: return "not found";
    case BP_E_EXISTS: return "already exists";
    case BP_E_CONFIG: return "configuration error";
    case BP_E_ABI: return "incompatible plugin ABI";
    case BP_E_UNAVAILABLE: return "unavailable";
    case BP_E_RETRY: return "retry requested";
    case BP_E_CANCELLED: return "cancelled";
    case BP_E_STATE: return "invalid state";
    case BP_E_CORRUPT: return "corrupt data";
    case BP_E_LIMIT: return "limit exceeded";
    case BP_E_INTERNAL: return "internal error";
    default: return "unknown error";
    }
}

#endif
