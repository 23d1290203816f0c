/*
 * http_client.h - the core's HTTP client (libcurl), behind the host table's bp_http_api.
 *
 * The host table's http functions are thin wrappers over these: they pass the calling plugin's
 * name as `who` (it labels log lines) and forward the rest. Behaviour, retry rules and the result
 * convention are documented in betpipe/http.h.
 *
 * State shared by all threads: the per-host rate-limit buckets (behind a mutex). Each thread
 * keeps one curl easy handle of its own for connection reuse (freed when the thread exits).
 */
#ifndef BP_CORE_HTTP_CLIENT_H
#define BP_CORE_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "betpipe/http.h"
#include "betpipe/status.h"

/* curl_global_init and the client's own state. Call once at start-up, before any thread uses
 * the client (curl_global_init is not thread-safe). Idempotent. */
int http_client_global_init(bp_error *err);
/* Undo http_client_global_init at shutdown, after every thread stopped using the client. */
void http_client_global_cleanup(void);

/* Perform one request with retries (see betpipe/http.h). `who` names the caller in log lines
 * (a plugin name, or "core"); may be NULL. Thread-safe. */
int http_client_request(const char *who, const bp_http_request *req, bp_http_response **out_resp,
                        bp_error *err);
/* Case-insensitive lookup of a response header; NULL when absent. */
const char *http_client_header(const bp_http_response *resp, const char *name);
/* Free a response from http_client_request (NULL is fine). */
void http_client_response_free(bp_http_response *resp);

/* Set the rate limit of `host` ("api.the-odds-api.com", or "host:port" for a non-default port)
 * to `per_s` requests per second with bursts of `burst`; per_s <= 0 removes the limit. For the
 * configuration loader. Thread-safe. */
int http_client_set_host_rate(const char *host, double per_s, int burst, bp_error *err);

/* The User-Agent sent by default: "betpipe/<version>". */
const char *http_client_user_agent(void);

#endif
