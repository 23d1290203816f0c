/*
 * http_client.c - the core's HTTP client on libcurl (see betpipe/http.h for the contract).
 *
 * A request goes through four stages: it is validated and its URL built (query parameters
 * URL-encoded, scheme limited to http/https); the secrets it carries are collected so that every
 * string that may reach a log line or an error message can be masked; then the attempt loop runs
 * - wait for the host's rate-limit token, perform, classify the outcome, and either return,
 * or sleep (backoff with jitter, or Retry-After) and go again.
 *
 * Why one curl handle per thread: an easy handle owns its connection cache, so reusing it keeps
 * the TLS connection to an API open across the pages of a paged endpoint, and a thread-local
 * handle needs no locking. curl_easy_reset() between requests clears the options but keeps the
 * connections.
 *
 * Why secrets are masked twice: the URL shown in logs is rebuilt with the values of secret
 * parameters replaced by ***, and then every text we print (that URL, libcurl's own error
 * buffer) is scanned for the raw and URL-encoded secret values as a second line of defence, in
 * case a key was also pasted into the URL or a path segment.
 */
#include "http_client.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "betpipe/host.h"
#include "log.h"
#include "util.h"

#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_TIMEOUT_MS         30000
#define HTTP_DEFAULT_MAX_BODY           (16 * 1024 * 1024)
#define HTTP_DEFAULT_ATTEMPTS           3
#define HTTP_DEFAULT_BASE_DELAY_MS      500
#define HTTP_DEFAULT_MAX_DELAY_MS       30000
#define HTTP_DEFAULT_MAX_RETRY_AFTER_MS 60000
#define HTTP_MAX_REDIRECTS              5
#define HTTP_WAIT_SLICE_MS              50
#define HTTP_MASK                       "***"
#define HTTP_TEXT_MAX                   1024

#ifndef BP_VERSION
#define BP_VERSION "0"
#endif

static const char http_user_agent[] = "betpipe/" BP_VERSION;

/* Names treated as secret even when the caller forgot to say so (compared case-insensitively). */
static const char *const sensitive_params[] = {"apikey",       "api_key",  "key",    "token",
                                               "access_token", "password", "secret", "api-key"};
static const char *const sensitive_headers[] = {
    "authorization",  "proxy-authorization", "cookie",  "x-apisports-key",
    "x-rapidapi-key", "x-api-key",           "api-key", "x-auth-token"};

/* ============================================================================================
 * Global state: curl_global_init, per-thread handles, rate-limit buckets
 * ========================================================================================== */

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static bool global_ready;
static bool handle_key_ready;
static pthread_key_t handle_key;

static void handle_destroy(void *p)
{
    curl_easy_cleanup(p);
}

int http_client_global_init(bp_error *err)
{
    int rc = BP_OK;
    pthread_mutex_lock(&global_lock);
    if (!global_ready) {
        CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (cc != CURLE_OK) {
            rc = bp_err(err, BP_E_INTERNAL, "http: curl_global_init failed: %s",
                        curl_easy_strerror(cc));
        } else if (!handle_key_ready && pthread_key_create(&handle_key, handle_destroy) != 0) {
            curl_global_cleanup();
            rc = bp_err(err, BP_E_NOMEM, "http: cannot create the per-thread handle key");
        } else {
            handle_key_ready = true;
            global_ready = true;
        }
    }
    pthread_mutex_unlock(&global_lock);
    return rc;
}

void http_client_global_cleanup(void)
{
    pthread_mutex_lock(&global_lock);
    if (global_ready) {
        CURL *mine = pthread_getspecific(handle_key);
        if (mine) {
            curl_easy_cleanup(mine);
            pthread_setspecific(handle_key, NULL);
        }
        curl_global_cleanup();
        global_ready = false;
    }
    pthread_mutex_unlock(&global_lock);
}

const char *http_client_user_agent(void)
{
    return http_user_agent;
}

/* This thread's easy handle, reset to default options (connections kept). */
static CURL *thread_handle(void)
{
    CURL *c = pthread_getspecific(handle_key);
    if (c) {
        curl_easy_reset(c);
        return c;
    }
    c = curl_easy_init();
    if (c && pthread_setspecific(handle_key, c) != 0) {
        curl_easy_cleanup(c);
        return NULL;
    }
    return c;
}

/* One token bucket per host. `tokens` may go negative: a caller takes its token at once and then
 * sleeps for as long as the debt takes to refill, so concurrent callers queue fairly without
 * holding the lock while they wait. */
typedef struct rate_bucket {
    char host[256];
    double rate;  /* tokens per second; <= 0: no limit */
    double burst; /* bucket capacity */
    double tokens;
    int64_t last_ns;
} rate_bucket;

static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;
static rate_bucket *rate_buckets;
static size_t rate_n, rate_cap;

static rate_bucket *bucket_find(const char *host, bool create)
{
    for (size_t i = 0; i < rate_n; i++) {
        if (strcmp(rate_buckets[i].host, host) == 0) {
            return &rate_buckets[i];
        }
    }
    if (!create) {
        return NULL;
    }
    if (rate_n == rate_cap) {
        size_t ncap = rate_cap ? rate_cap * 2 : 8;
        rate_bucket *nb = realloc(rate_buckets, ncap * sizeof *nb);
        if (!nb) {
            return NULL;
        }
        rate_buckets = nb;
        rate_cap = ncap;
    }
    rate_bucket *b = &rate_buckets[rate_n++];
    memset(b, 0, sizeof *b);
    util_strlcpy(b->host, host, sizeof b->host);
    b->last_ns = util_mono_ns();
    return b;
}

static void bucket_configure(rate_bucket *b, double per_s, int burst)
{
    double nburst = burst > 0 ? (double)burst : 1.0;
    if (b->rate != per_s || b->burst != nburst) {
        bool fresh = b->rate <= 0;
        b->rate = per_s;
        b->burst = nburst;
        if (fresh || b->tokens > nburst) {
            b->tokens = nburst;
        }
    }
}

int http_client_set_host_rate(const char *host, double per_s, int burst, bp_error *err)
{
    if (!host || !*host || strlen(host) >= sizeof((rate_bucket *)0)->host) {
        return bp_err(err, BP_E_INVAL, "http: a rate limit needs a host name");
    }
    pthread_mutex_lock(&rate_lock);
    rate_bucket *b = bucket_find(host, per_s > 0);
    if (b) {
        if (per_s > 0) {
            bucket_configure(b, per_s, burst);
        } else {
            b->rate = 0;
        }
    }
    pthread_mutex_unlock(&rate_lock);
    if (!b && per_s > 0) {
        return bp_err(err, BP_E_NOMEM, "http: out of memory for the rate limit of %s", host);
    }
    return BP_OK;
}

/* Take one token for `host` (updating its limit first when set_rate > 0) and return how long the
 * caller must wait before sending, in ms (0: go now). */
static int64_t rate_reserve(const char *host, double set_rate, int set_burst)
{
    int64_t wait_ms = 0;
    pthread_mutex_lock(&rate_lock);
    rate_bucket *b = bucket_find(host, set_rate > 0);
    if (b && set_rate > 0) {
        bucket_configure(b, set_rate, set_burst);
    }
    if (b && b->rate > 0) {
        int64_t now = util_mono_ns();
        b->tokens += (double)(now - b->last_ns) / 1e9 * b->rate;
        if (b->tokens > b->burst) {
            b->tokens = b->burst;
        }
        b->last_ns = now;
        b->tokens -= 1.0;
        if (b->tokens < 0) {
            wait_ms = (int64_t)(-b->tokens / b->rate * 1000.0 + 0.999);
        }
    }
    pthread_mutex_unlock(&rate_lock);
    return wait_ms;
}

/* ============================================================================================
 * Secrets and masking
 * ========================================================================================== */

typedef struct secret_set {
    const char **values; /* raw values and their URL-encoded forms */
    size_t n, cap;
    char **owned; /* the encoded forms we allocated */
    size_t n_owned;
    const char **names; /* query parameter names whose values are secret */
    size_t n_names, cap_names;
} secret_set;

static bool name_in(const char *name, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(list[i]) == len && strncasecmp(name, list[i], len) == 0) {
            return true;
        }
    }
    return false;
}

static int secret_add(secret_set *ss, const char *v)
{
    if (!v || strlen(v) < 3) {
        /* too short to scan for without garbling every message; such values are still never
         * printed because the URL shown is rebuilt from names */
        return BP_OK;
    }
    if (ss->n + 2 > ss->cap) {
        size_t ncap = ss->cap ? ss->cap * 2 : 8;
        const char **nv = realloc(ss->values, ncap * sizeof *nv);
        char **no = realloc(ss->owned, ncap * sizeof *no);
        if (nv) {
            ss->values = nv;
        }
        if (no) {
            ss->owned = no;
        }
        if (!nv || !no) {
            return BP_E_NOMEM;
        }
        ss->cap = ncap;
    }
    ss->values[ss->n++] = v;
    char *enc = curl_easy_escape(NULL, v, 0);
    if (enc && strcmp(enc, v) != 0) {
        ss->owned[ss->n_owned++] = enc;
        ss->values[ss->n++] = enc;
    } else {
        curl_free(enc);
    }
    return BP_OK;
}

static int secret_name_add(secret_set *ss, const char *name)
{
    if (ss->n_names == ss->cap_names) {
        size_t ncap = ss->cap_names ? ss->cap_names * 2 : 8;
        const char **nn = realloc(ss->names, ncap * sizeof *nn);
        if (!nn) {
            return BP_E_NOMEM;
        }
        ss->names = nn;
        ss->cap_names = ncap;
    }
    ss->names[ss->n_names++] = name;
    return BP_OK;
}

static void secret_free(secret_set *ss)
{
    for (size_t i = 0; i < ss->n_owned; i++) {
        curl_free(ss->owned[i]);
    }
    free(ss->owned);
    free(ss->values);
    free(ss->names);
}

/* Copy `in` to `out` with every occurrence of a secret value replaced by ***. */
static void redact(const char *in, const secret_set *ss, char *out, size_t out_len)
{
    size_t o = 0;
    if (out_len == 0) {
        return;
    }
    for (const char *p = in; *p && o + 1 < out_len;) {
        size_t hit = 0;
        for (size_t i = 0; i < ss->n; i++) {
            size_t n = strlen(ss->values[i]);
            if (n > hit && strncmp(p, ss->values[i], n) == 0) {
                hit = n;
            }
        }
        if (hit) {
            for (const char *m = HTTP_MASK; *m && o + 1 < out_len; m++) {
                out[o++] = *m;
            }
            p += hit;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

static bool param_is_secret(const secret_set *ss, const char *name, size_t len)
{
    for (size_t i = 0; i < ss->n_names; i++) {
        if (strlen(ss->names[i]) == len && strncmp(ss->names[i], name, len) == 0) {
            return true;
        }
    }
    return name_in(name, len, sensitive_params, BP_ARRAY_LEN(sensitive_params));
}

/* The URL as logs may show it: a password in the user info and the values of secret query
 * parameters become ***, then any remaining secret value is masked. */
static void display_url(const char *url, const secret_set *ss, char *out, size_t out_len)
{
    char tmp[HTTP_TEXT_MAX * 2];
    size_t o = 0;
    const char *p = url;
    const char *scheme_end = strstr(url, "://");
    const char *auth_start = scheme_end ? scheme_end + 3 : url;
    const char *at = NULL;
    /* user info: "user:password@" before the first '/' */
    for (const char *q = auth_start; *q && *q != '/' && *q != '?' && *q != '#'; q++) {
        if (*q == '@') {
            at = q;
        }
    }
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o + 1 < sizeof tmp) {                                                                  \
            tmp[o++] = (c);                                                                        \
        }                                                                                          \
    } while (0)
    if (at) {
        const char *colon = memchr(auth_start, ':', (size_t)(at - auth_start));
        for (; p < (colon ? colon + 1 : at); p++) {
            PUT(*p);
        }
        if (colon) {
            for (const char *m = HTTP_MASK; *m; m++) {
                PUT(*m);
            }
        }
        p = at;
    }
    /* up to the query */
    while (*p && *p != '?') {
        PUT(*p++);
    }
    if (*p == '?') {
        PUT(*p++);
        while (*p && *p != '#') {
            const char *amp = strchr(p, '&');
            const char *hash = strchr(p, '#');
            const char *end = amp && (!hash || amp < hash) ? amp : hash ? hash : p + strlen(p);
            const char *eq = memchr(p, '=', (size_t)(end - p));
            if (eq && param_is_secret(ss, p, (size_t)(eq - p))) {
                for (; p <= eq; p++) {
                    PUT(*p);
                }
                for (const char *m = HTTP_MASK; *m; m++) {
                    PUT(*m);
                }
            } else {
                for (; p < end; p++) {
                    PUT(*p);
                }
            }
            p = end;
            if (*p == '&') {
                PUT(*p++);
            }
        }
    }
    while (*p) {
        PUT(*p++);
    }
#undef PUT
    tmp[o] = '\0';
    redact(tmp, ss, out, out_len);
}

/* ============================================================================================
 * One attempt: buffers and callbacks
 * ========================================================================================== */

typedef struct body_buf {
    char *data;
    size_t len, cap;
    size_t max;
    bool over; /* the body passed max and the transfer was aborted */
} body_buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    body_buf *b = ud;
    size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->over = true;
        return 0; /* abort the transfer */
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 16384;
        while (ncap < b->len + n + 1) {
            ncap *= 2;
        }
        char *nd = realloc(b->data, ncap);
        if (!nd) {
            return 0;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

/* Response headers as "name\0value\0" pairs; a new status line (redirect, 100 Continue) starts
 * the list over, so the list always describes the final response. */
typedef struct header_buf {
    char *text;
    size_t len, cap;
    size_t n; /* pairs */
    bool oom;
} header_buf;

static bool header_put(header_buf *h, const char *s, size_t n)
{
    if (h->len + n + 1 > h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 1024;
        while (ncap < h->len + n + 1) {
            ncap *= 2;
        }
        char *nt = realloc(h->text, ncap);
        if (!nt) {
            h->oom = true;
            return false;
        }
        h->text = nt;
        h->cap = ncap;
    }
    memcpy(h->text + h->len, s, n);
    h->len += n;
    h->text[h->len++] = '\0';
    return true;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    header_buf *h = ud;
    size_t n = size * nmemb, len = n;
    while (len > 0 && (ptr[len - 1] == '\r' || ptr[len - 1] == '\n')) {
        len--;
    }
    if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        h->len = 0;
        h->n = 0;
        return n;
    }
    char *colon = len ? memchr(ptr, ':', len) : NULL;
    if (!colon || colon == ptr) {
        return n; /* blank line at the end, or an obsolete continuation line */
    }
    const char *name_end = colon, *v = colon + 1, *v_end = ptr + len;
    while (name_end > ptr && (name_end[-1] == ' ' || name_end[-1] == '\t')) {
        name_end--;
    }
    while (v < v_end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t')) {
        v_end--;
    }
    if (header_put(h, ptr, (size_t)(name_end - ptr)) && header_put(h, v, (size_t)(v_end - v))) {
        h->n++;
    }
    return n;
}

static bool job_cancelled(const bp_job *job)
{
    return job && job->host && job->host->cancelled && job->host->cancelled(job);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return job_cancelled(((const bp_http_request *)ud)->job) ? 1 : 0;
}

/* Sleep `ms`, waking every slice to see whether the job was cancelled. */
static int wait_ms(int64_t ms, const bp_job *job)
{
    int64_t end = util_mono_ns() / 1000000 + ms;
    for (;;) {
        if (job_cancelled(job)) {
            return BP_E_CANCELLED;
        }
        int64_t left = end - util_mono_ns() / 1000000;
        if (left <= 0) {
            return BP_OK;
        }
        util_sleep_ms(left < HTTP_WAIT_SLICE_MS ? left : HTTP_WAIT_SLICE_MS);
    }
}

/* The response object: the public part first, so the pointer converts both ways. */
typedef struct http_response_impl {
    bp_http_response pub;
    char *body;
    char *header_text;
    bp_http_header *headers;
} http_response_impl;

void http_client_response_free(bp_http_response *resp)
{
    http_response_impl *r = (http_response_impl *)resp;
    if (!r) {
        return;
    }
    free(r->body);
    free(r->header_text);
    free(r->headers);
    free(r);
}

const char *http_client_header(const bp_http_response *resp, const char *name)
{
    if (!resp || !name) {
        return NULL;
    }
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (strcasecmp(resp->headers[i].name, name) == 0) {
            return resp->headers[i].value;
        }
    }
    return NULL;
}

/* Take the buffers of the last attempt into a response object. */
static int make_response(long status, body_buf *body, header_buf *hb, int64_t elapsed_ms,
                         int64_t rate_wait_ms, int attempts, bp_http_response **out)
{
    http_response_impl *r = calloc(1, sizeof *r);
    if (!r) {
        return BP_E_NOMEM;
    }
    if (!body->data) {
        body->data = malloc(1);
        if (!body->data) {
            free(r);
            return BP_E_NOMEM;
        }
    }
    body->data[body->len] = '\0';
    if (hb->n) {
        r->headers = calloc(hb->n, sizeof *r->headers);
        if (!r->headers) {
            free(r);
            return BP_E_NOMEM;
        }
        const char *p = hb->text;
        for (size_t i = 0; i < hb->n; i++) {
            r->headers[i].name = p;
            p += strlen(p) + 1;
            r->headers[i].value = p;
            p += strlen(p) + 1;
        }
    }
    r->body = body->data;
    r->header_text = hb->text;
    body->data = NULL;
    hb->text = NULL;
    r->pub.struct_size = sizeof r->pub;
    r->pub.status = (int32_t)status;
    r->pub.body = r->body;
    r->pub.body_len = body->len;
    r->pub.headers = r->headers;
    r->pub.n_headers = hb->n;
    r->pub.elapsed_ms = elapsed_ms;
    r->pub.rate_wait_ms = rate_wait_ms;
    r->pub.attempts = attempts;
    *out = &r->pub;
    return BP_OK;
}

/* Seconds asked for by a Retry-After header (delta-seconds or an HTTP date), or -1. */
static int64_t retry_after_ms(const header_buf *hb)
{
    const char *p = hb->text;
    for (size_t i = 0; i < hb->n; i++) {
        const char *name = p;
        p += strlen(p) + 1;
        const char *value = p;
        p += strlen(p) + 1;
        if (strcasecmp(name, "Retry-After") != 0) {
            continue;
        }
        int64_t secs;
        if (util_parse_int64(value, 0, 7 * 86400, "Retry-After", &secs, NULL) == BP_OK) {
            return secs * 1000;
        }
        time_t when = curl_getdate(value, NULL);
        if (when > 0) {
            int64_t d = (int64_t)when * 1000 - util_now_ms();
            return d > 0 ? d : 0;
        }
        return -1;
    }
    return -1;
}

static bool status_retryable(long status, int on)
{
    if (status == 429) {
        return (on & BP_HTTP_RETRY_429) != 0;
    }
    if (status == 500 || status == 502 || status == 503 || status == 504) {
        return (on & BP_HTTP_RETRY_5XX) != 0;
    }
    return false;
}

/* Map a libcurl failure to our status; *retryable says whether trying again may help. */
static int curl_status(CURLcode cc, const body_buf *body, bool *retryable)
{
    *retryable = false;
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT: *retryable = true; return BP_E_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR: *retryable = true; return BP_E_UNAVAILABLE;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE: return BP_E_UNAVAILABLE;
    case CURLE_FILESIZE_EXCEEDED: return BP_E_LIMIT;
    case CURLE_WRITE_ERROR: return body->over ? BP_E_LIMIT : BP_E_NOMEM;
    case CURLE_ABORTED_BY_CALLBACK: return BP_E_CANCELLED;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return BP_E_INVAL;
    case CURLE_OUT_OF_MEMORY: return BP_E_NOMEM;
    default: return BP_E_IO;
    }
}

/* ============================================================================================
 * The request
 * ========================================================================================== */

static bool method_valid(const char *m)
{
    static const char *const ok[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
    for (size_t i = 0; i < BP_ARRAY_LEN(ok); i++) {
        if (strcmp(m, ok[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool has_crlf(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

/* Build the request URL: the caller's URL plus the URL-encoded parameters. Checks the scheme and
 * extracts the rate-limit key ("host" or "host:port" for a non-default port). */
static int build_url(const bp_http_request *req, char **out_url, char *host_key, size_t key_len,
                     char *why, size_t why_len)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *full_own = NULL;
    int rc = BP_OK;
    CURLUcode uc;
    if (!u) {
        return BP_E_NOMEM;
    }
    uc = curl_url_set(u, CURLUPART_URL, req->url, 0);
    if (uc != CURLUE_OK) {
        snprintf(why, why_len, "not a valid URL (%s)", curl_url_strerror(uc));
        rc = BP_E_INVAL;
        goto fail;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        snprintf(why, why_len, "only http and https URLs are allowed");
        rc = BP_E_INVAL;
        goto fail;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, why_len, "the URL has no host");
        rc = BP_E_INVAL;
        goto fail;
    }
    /* The final URL is the caller's (fragment dropped) plus our encoded pairs, assembled here
     * rather than through curl_url_set: curl 7.88 rewrites percent-escapes in lower case, and
     * some APIs sign or compare the query exactly as written. */
    const char *hash = strchr(req->url, '#');
    size_t base_len = hash ? (size_t)(hash - req->url) : strlen(req->url);
    size_t cap = base_len + 2, len = base_len;
    for (size_t i = 0; i < req->n_params; i++) {
        const bp_http_param *pm = &req->params[i];
        if (!pm->name || !*pm->name) {
            snprintf(why, why_len, "query parameter %zu has no name", i);
            rc = BP_E_INVAL;
            goto fail;
        }
        cap += 3 * (strlen(pm->name) + (pm->value ? strlen(pm->value) : 0)) + 2;
    }
    full_own = malloc(cap);
    if (!full_own) {
        rc = BP_E_NOMEM;
        goto fail;
    }
    memcpy(full_own, req->url, base_len);
    bool has_query = memchr(req->url, '?', base_len) != NULL;
    for (size_t i = 0; i < req->n_params; i++) {
        const bp_http_param *pm = &req->params[i];
        char *n = curl_easy_escape(NULL, pm->name, 0);
        char *v = curl_easy_escape(NULL, pm->value ? pm->value : "", 0);
        if (!n || !v) {
            curl_free(n);
            curl_free(v);
            rc = BP_E_NOMEM;
            goto fail;
        }
        char last = len ? full_own[len - 1] : '\0';
        if (!has_query) {
            full_own[len++] = '?';
            has_query = true;
        } else if (last != '?' && last != '&') {
            full_own[len++] = '&';
        }
        len += (size_t)snprintf(full_own + len, cap - len, "%s=%s", n, v);
        curl_free(n);
        curl_free(v);
    }
    full_own[len] = '\0';
    uc = curl_url_set(u, CURLUPART_URL, full_own, 0);
    if (uc != CURLUE_OK) {
        snprintf(why, why_len, "the URL with its parameters is not valid (%s)",
                 curl_url_strerror(uc));
        rc = BP_E_INVAL;
        goto fail;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
        bool is_default = (strcasecmp(scheme, "http") == 0 && strcmp(port, "80") == 0) ||
                          (strcasecmp(scheme, "https") == 0 && strcmp(port, "443") == 0);
        snprintf(host_key, key_len, is_default ? "%s" : "%s:%s", host, port);
    } else {
        snprintf(host_key, key_len, "%s", host);
    }
    for (char *k = host_key; *k; k++) {
        if (*k >= 'A' && *k <= 'Z') {
            *k = (char)(*k - 'A' + 'a');
        }
    }
    *out_url = full_own;
    full_own = NULL;
fail:
    free(full_own);
    curl_free(port);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* Fill err with a message made only of masked text. */
static BP_PRINTF(4, 5) int fail_masked(bp_error *err, int code, const secret_set *ss,
                                       const char *fmt, ...)
{
    char raw[HTTP_TEXT_MAX], clean[HTTP_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    redact(raw, ss, clean, sizeof clean);
    return bp_err(err, code, "%s", clean);
}

int http_client_request(const char *who, const bp_http_request *req_in, bp_http_response **out_resp,
                        bp_error *err)
{
    bp_http_request req;
    secret_set ss = {0};
    struct curl_slist *hdrs = NULL;
    char *url = NULL;
    char shown[HTTP_TEXT_MAX];
    char host_key[300];
    char why[256] = "";
    char curl_err[CURL_ERROR_SIZE];
    body_buf body = {0};
    header_buf hb = {0};
    int rc = BP_OK;
    int64_t t0 = util_mono_ns(), rate_waited = 0;
    const char *method;

    if (!who) {
        who = "core";
    }
    if (out_resp) {
        *out_resp = NULL;
    }
    if (!req_in || !out_resp || req_in->struct_size < offsetof(bp_http_request, params)) {
        return bp_err(err, BP_E_INVAL,
                      "http: request and out_resp are required, with "
                      "struct_size set");
    }
    /* read only what the caller's version of the struct has */
    memset(&req, 0, sizeof req);
    memcpy(&req, req_in, req_in->struct_size < sizeof req ? req_in->struct_size : sizeof req);
    if (!req.url || !*req.url) {
        return bp_err(err, BP_E_INVAL, "http: the request has no URL");
    }
    method = req.method ? req.method : "GET";
    if (!method_valid(method)) {
        return bp_err(err, BP_E_INVAL, "http: unsupported method '%.16s'", method);
    }
    if (req.body_len > 0 && !req.body) {
        return bp_err(err, BP_E_INVAL, "http: body_len is %zu but body is NULL", req.body_len);
    }
    if (req.body_len > 0 && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
        return bp_err(err, BP_E_INVAL, "http: a %s request cannot carry a body", method);
    }
    rc = http_client_global_init(err);
    if (rc != BP_OK) {
        return rc;
    }

    int max_attempts = req.retry.max_attempts > 0 ? req.retry.max_attempts : HTTP_DEFAULT_ATTEMPTS;
    int retry_on = req.retry.on ? req.retry.on : BP_HTTP_RETRY_DEFAULT;
    int64_t base_delay =
        req.retry.base_delay_ms > 0 ? req.retry.base_delay_ms : HTTP_DEFAULT_BASE_DELAY_MS;
    int64_t max_delay =
        req.retry.max_delay_ms > 0 ? req.retry.max_delay_ms : HTTP_DEFAULT_MAX_DELAY_MS;
    int64_t max_retry_after = req.retry.max_retry_after_ms > 0 ? req.retry.max_retry_after_ms
                                                               : HTTP_DEFAULT_MAX_RETRY_AFTER_MS;
    long connect_timeout =
        req.connect_timeout_ms > 0 ? req.connect_timeout_ms : HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    long timeout = req.timeout_ms > 0 ? req.timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    body.max = req.max_body_bytes > 0 ? (size_t)req.max_body_bytes : HTTP_DEFAULT_MAX_BODY;

    /* collect the secrets before anything can be printed */
    for (size_t i = 0; i < req.n_params; i++) {
        const bp_http_param *pm = &req.params[i];
        bool secret =
            pm->secret || (pm->name && name_in(pm->name, strlen(pm->name), sensitive_params,
                                               BP_ARRAY_LEN(sensitive_params)));
        if (secret && ((pm->name && secret_name_add(&ss, pm->name) != BP_OK) ||
                       secret_add(&ss, pm->value) != BP_OK)) {
            rc = bp_err(err, BP_E_NOMEM, "http: out of memory");
            goto done;
        }
    }
    for (size_t i = 0; i < req.n_headers; i++) {
        const bp_http_header *hd = &req.headers[i];
        bool secret =
            hd->secret || (hd->name && name_in(hd->name, strlen(hd->name), sensitive_headers,
                                               BP_ARRAY_LEN(sensitive_headers)));
        if (secret && secret_add(&ss, hd->value) != BP_OK) {
            rc = bp_err(err, BP_E_NOMEM, "http: out of memory");
            goto done;
        }
    }
    for (size_t i = 0; i < req.n_secrets; i++) {
        if (secret_add(&ss, req.secrets[i]) != BP_OK) {
            rc = bp_err(err, BP_E_NOMEM, "http: out of memory");
            goto done;
        }
    }
    /* secrets pasted straight into the URL's query are found by name */
    display_url(req.url, &ss, shown, sizeof shown);

    rc = build_url(&req, &url, host_key, sizeof host_key, why, sizeof why);
    if (rc != BP_OK) {
        rc = fail_masked(err, rc, &ss, "http: %s %s: %s", method, shown,
                         rc == BP_E_NOMEM ? "out of memory" : why);
        goto done;
    }
    display_url(url, &ss, shown, sizeof shown);

    for (size_t i = 0; i < req.n_headers; i++) {
        const bp_http_header *hd = &req.headers[i];
        char *line;
        if (!hd->name || !*hd->name || strchr(hd->name, ':') || has_crlf(hd->name) ||
            has_crlf(hd->value)) {
            rc = fail_masked(err, BP_E_INVAL, &ss,
                             "http: %s %s: header %zu has an invalid name or a line break", method,
                             shown, i);
            goto done;
        }
        /* "Name;" is curl's way to send a header with an empty value */
        line = hd->value && *hd->value ? util_asprintf("%s: %s", hd->name, hd->value)
                                       : util_asprintf("%s;", hd->name);
        struct curl_slist *nl = line ? curl_slist_append(hdrs, line) : NULL;
        free(line);
        if (!nl) {
            rc = bp_err(err, BP_E_NOMEM, "http: out of memory");
            goto done;
        }
        hdrs = nl;
    }
    if (req.body_len > 0) {
        struct curl_slist *nl = curl_slist_append(hdrs, "Expect:");
        if (!nl) {
            rc = bp_err(err, BP_E_NOMEM, "http: out of memory");
            goto done;
        }
        hdrs = nl;
    }

    for (int attempt = 1;; attempt++) {
        CURL *c;
        CURLcode cc;
        long status = 0;
        bool retryable = false;
        int64_t delay = -1;
        char reason[HTTP_TEXT_MAX];

        if (job_cancelled(req.job)) {
            rc = fail_masked(err, BP_E_CANCELLED, &ss, "http: %s %s: cancelled before attempt %d",
                             method, shown, attempt);
            goto done;
        }
        int64_t rw = rate_reserve(host_key, req.rate_per_s, req.rate_burst);
        if (rw > 0) {
            log_debug("http", "rate limit: waiting %lld ms host=%s who=%s", (long long)rw, host_key,
                      who);
            rate_waited += rw;
            if (wait_ms(rw, req.job) != BP_OK) {
                rc = fail_masked(err, BP_E_CANCELLED, &ss,
                                 "http: %s %s: cancelled while waiting for the rate limit", method,
                                 shown);
                goto done;
            }
        }

        c = thread_handle();
        if (!c) {
            rc = bp_err(err, BP_E_NOMEM, "http: cannot create a curl handle");
            goto done;
        }
        body.len = 0;
        body.over = false;
        hb.len = 0;
        hb.n = 0;
        curl_err[0] = '\0';
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_USERAGENT, http_user_agent);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)body.max);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        if (req.job) {
            curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(c, CURLOPT_XFERINFODATA, &req);
        }
        if (!(req.flags & BP_HTTP_F_NO_COMPRESSION)) {
            curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
        }
        if (req.flags & BP_HTTP_F_FOLLOW_REDIRECTS) {
            curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
            curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRECTS);
        }
        if (strcmp(method, "HEAD") == 0) {
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        } else if (strcmp(method, "GET") != 0) {
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
            if (req.body_len > 0) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req.body_len);
            }
        }

        cc = curl_easy_perform(c);
        /* the handle outlives the call: do not leave it pointing at our stack */
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
        if (hb.oom) {
            rc = bp_err(err, BP_E_NOMEM, "http: out of memory for response headers");
            goto done;
        }
        if (cc == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            retryable = status_retryable(status, retry_on);
            snprintf(reason, sizeof reason, "HTTP %ld", status);
            if (retryable) {
                delay = retry_after_ms(&hb);
                if (delay > max_retry_after) {
                    log_warn("http",
                             "%s %s: HTTP %ld asks to retry after %lld ms, more than the %lld ms "
                             "this request waits; returning the response who=%s",
                             method, shown, status, (long long)delay, (long long)max_retry_after,
                             who);
                    retryable = false;
                }
            }
            if (!retryable || attempt >= max_attempts) {
                int64_t elapsed = (util_mono_ns() - t0) / 1000000;
                rc = make_response(status, &body, &hb, elapsed, rate_waited, attempt, out_resp);
                if (rc != BP_OK) {
                    rc = bp_err(err, rc, "http: out of memory for the response");
                    goto done;
                }
                if (status >= 400 || attempt > 1) {
                    log_info("http", "%s %s status=%ld bytes=%zu ms=%lld attempts=%d who=%s",
                             method, shown, status, (*out_resp)->body_len, (long long)elapsed,
                             attempt, who);
                } else {
                    log_debug("http", "%s %s status=%ld bytes=%zu ms=%lld who=%s", method, shown,
                              status, (*out_resp)->body_len, (long long)elapsed, who);
                }
                goto done;
            }
        } else {
            char ce[CURL_ERROR_SIZE + 64];
            int code = curl_status(cc, &body, &retryable);
            retryable = retryable && (retry_on & BP_HTTP_RETRY_TRANSPORT);
            redact(curl_err[0] ? curl_err : curl_easy_strerror(cc), &ss, ce, sizeof ce);
            if (code == BP_E_LIMIT) {
                snprintf(reason, sizeof reason,
                         "the response body is larger than the limit of %zu bytes", body.max);
            } else if (code == BP_E_TIMEOUT) {
                snprintf(reason, sizeof reason, "timed out (limit %ld ms): %s", timeout, ce);
            } else if (code == BP_E_CANCELLED) {
                snprintf(reason, sizeof reason, "cancelled during the transfer");
            } else if (cc == CURLE_PARTIAL_FILE) {
                snprintf(reason, sizeof reason,
                         "the connection closed before the whole body "
                         "arrived (%s)",
                         ce);
            } else {
                snprintf(reason, sizeof reason, "%s", ce);
            }
            if (!retryable || attempt >= max_attempts) {
                char raw[3 * HTTP_TEXT_MAX], clean[HTTP_TEXT_MAX];
                snprintf(raw, sizeof raw, "%s %s: %s (attempt %d of %d)", method, shown, reason,
                         attempt, max_attempts);
                redact(raw, &ss, clean, sizeof clean);
                rc = bp_err(err, code, "http: %s", clean);
                log_warn("http", "%s who=%s", clean, who);
                goto done;
            }
        }

        /* retry */
        if (delay < 0) {
            int64_t d = base_delay;
            for (int k = 1; k < attempt && d < max_delay; k++) {
                d *= 2;
            }
            if (d > max_delay) {
                d = max_delay;
            }
            delay = d / 2 + (int64_t)(util_rand01() * (double)(d - d / 2));
        }
        log_warn("http", "%s %s: %s; retry %d of %d in %lld ms who=%s", method, shown, reason,
                 attempt + 1, max_attempts, (long long)delay, who);
        if (wait_ms(delay, req.job) != BP_OK) {
            rc = fail_masked(err, BP_E_CANCELLED, &ss,
                             "http: %s %s: cancelled while waiting to retry (after %s)", method,
                             shown, reason);
            goto done;
        }
    }

done:
    curl_slist_free_all(hdrs);
    free(url);
    free(body.data);
    free(hb.text);
    secret_free(&ss);
    return rc;
}
