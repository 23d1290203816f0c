/*
 * betpipe/http.h - the HTTP client the core offers to plugins (collectors, notifiers).
 *
 * Part of the plugin ABI. No curl type crosses it: a plugin fills a bp_http_request, calls
 * host->http->request() and reads a bp_http_response. The core does the rest:
 *
 *  - timeouts (connect, and whole transfer per attempt), compression (gzip, deflate, br, zstd as
 *    the build of libcurl allows; the size limit applies to the decoded body), the user agent
 *    "betpipe/<version>", no redirects unless asked for, http and https only;
 *  - retries with exponential backoff and jitter on transport failures (refused, reset, DNS,
 *    timeout, a body cut short), on 429 and on 500/502/503/504, honouring Retry-After;
 *  - a maximum body size: the transfer is aborted as soon as it is exceeded (BP_E_LIMIT);
 *  - a per-host rate limit: one token bucket per host, shared by every thread and plugin;
 *  - secrets: query parameters and headers marked `secret` (and any named apiKey, api_key, key,
 *    token, access_token, password, secret, Authorization, Cookie, x-apisports-key,
 *    x-rapidapi-key, x-api-key) are shown as *** in every log line and error message.
 *
 * Result convention: request() returns BP_OK whenever an HTTP response came back, whatever its
 * status - a 401, a 422 or a 429 after the last retry is a response the caller inspects (its body
 * often says why). It returns a negative status only when there is no response to show:
 * BP_E_INVAL (bad URL or request), BP_E_TIMEOUT, BP_E_UNAVAILABLE (cannot connect, connection
 * dropped), BP_E_LIMIT (body too large), BP_E_CANCELLED (the job was cancelled), BP_E_NOMEM,
 * BP_E_IO (anything else libcurl reports).
 */
#ifndef BETPIPE_HTTP_H
#define BETPIPE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "betpipe/job.h"
#include "betpipe/status.h"

typedef struct bp_host bp_host;

/* bp_http_request.flags */
#define BP_HTTP_F_FOLLOW_REDIRECTS 0x1 /* follow up to 5 redirects (http/https only) */
#define BP_HTTP_F_NO_COMPRESSION   0x2 /* do not send Accept-Encoding */

/* bp_http_retry.on: what is retried */
#define BP_HTTP_RETRY_TRANSPORT 0x1 /* refused, reset, DNS failure, timeout, body cut short */
#define BP_HTTP_RETRY_429       0x2 /* Too Many Requests */
#define BP_HTTP_RETRY_5XX       0x4 /* 500, 502, 503, 504 */
#define BP_HTTP_RETRY_DEFAULT   (BP_HTTP_RETRY_TRANSPORT | BP_HTTP_RETRY_429 | BP_HTTP_RETRY_5XX)

/* A header or a query parameter. Mark credentials secret = 1. */
typedef struct bp_http_header {
    const char *name;
    const char *value;
    int32_t secret;
    int32_t reserved0;
} bp_http_header;

typedef struct bp_http_param {
    const char *name;
    const char *value; /* URL-encoded by the client: pass it raw */
    int32_t secret;
    int32_t reserved0;
} bp_http_param;

/* Retry policy; all-zero means the defaults below. Waits between attempts are base_delay_ms *
 * 2^(attempt-1), capped at max_delay_ms, with jitter (a uniform draw in [wait/2, wait]); a
 * Retry-After header replaces the computed wait. A Retry-After longer than max_retry_after_ms is
 * not waited for: the response is returned at once so the caller can reschedule. */
typedef struct bp_http_retry {
    int32_t max_attempts;       /* tries including the first; 0 = 3; 1 = never retry */
    int32_t on;                 /* BP_HTTP_RETRY_* bits; 0 = BP_HTTP_RETRY_DEFAULT */
    int32_t base_delay_ms;      /* 0 = 500 */
    int32_t max_delay_ms;       /* 0 = 30000 */
    int32_t max_retry_after_ms; /* 0 = 60000 */
    int32_t reserved0;
} bp_http_retry;

/* One request. Zero-initialise it, set struct_size = sizeof(bp_http_request), then the fields
 * you need. Everything is borrowed for the duration of the call. */
typedef struct bp_http_request {
    uint32_t struct_size;
    uint32_t flags;              /* BP_HTTP_F_* */
    const char *method;          /* NULL = "GET"; "POST", "PUT", "PATCH", "DELETE", "HEAD" */
    const char *url;             /* absolute http:// or https:// URL; may hold a query */
    const bp_http_param *params; /* appended to the query, URL-encoded */
    size_t n_params;
    const bp_http_header *headers; /* sent as given (a User-Agent here replaces ours) */
    size_t n_headers;
    /* Other secret strings, masked wherever they appear in logs and errors: e.g. a bot token
     * that is part of the URL path. */
    const char *const *secrets;
    size_t n_secrets;
    const void *body; /* sent byte for byte; set Content-Type in headers */
    size_t body_len;
    int32_t connect_timeout_ms; /* 0 = 10000 */
    int32_t timeout_ms;         /* whole transfer of one attempt; 0 = 30000 */
    int64_t max_body_bytes;     /* decoded response body limit; 0 = 16 MiB */
    bp_http_retry retry;
    /* Per-host rate limit: when rate_per_s > 0 the host's bucket is set to this rate and
     * burst (the last setting wins); when 0 the host keeps what config or earlier requests set,
     * or has no limit. */
    double rate_per_s;
    int32_t rate_burst; /* 0 = 1 */
    int32_t reserved0;
    /* Optional: the job this request runs for. Waits (backoff, rate limit) and the transfer
     * stop with BP_E_CANCELLED once host->cancelled(job) turns true. */
    const bp_job *job;
} bp_http_request;

/* The final response. Owned by the core; release it with response_free(). */
typedef struct bp_http_response {
    uint32_t struct_size;
    int32_t status;   /* HTTP status of the last attempt */
    const char *body; /* decoded body, NUL-terminated (the NUL is not counted) */
    size_t body_len;
    const bp_http_header *headers; /* the final response's headers, as received, in order */
    size_t n_headers;
    int64_t elapsed_ms;   /* from the call to the return, all attempts and waits */
    int64_t rate_wait_ms; /* part of elapsed_ms spent waiting for the rate limiter */
    int32_t attempts;     /* 1 when no retry happened */
    int32_t reserved0;
} bp_http_response;

struct bp_http_api {
    uint32_t struct_size;
    uint32_t reserved0;
    /* Perform `req` (with retries). See the result convention at the top of this file. On
     * BP_OK *out_resp is a new response the caller frees with response_free(); on failure it is
     * NULL and err says what failed, where, and after how many attempts (secrets masked).
     * Thread-safe; blocks the calling thread. */
    int (*request)(const bp_host *h, const bp_http_request *req, bp_http_response **out_resp,
                   bp_error *err);
    /* The first header of `resp` named `name` (case-insensitive), or NULL. Borrowed from resp. */
    const char *(*header)(const bp_host *h, const bp_http_response *resp, const char *name);
    /* Free a response (NULL is fine). */
    void (*response_free)(const bp_host *h, bp_http_response *resp);
};

#endif
