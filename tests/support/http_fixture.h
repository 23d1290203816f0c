/*
 * http_fixture.h - a real HTTP server on 127.0.0.1 (libmicrohttpd, port chosen by the kernel)
 * that replays scripted or recorded responses, for tests of the HTTP client, the collectors and
 * the notifiers. No test talks to the internet: point the code under test at bpt_http_url().
 *
 * Each path gets a script: a sequence of replies served one per request, the last one repeated
 * (e.g. 429 then 200). A reply can be delayed, cut short (the connection is dropped after some
 * body bytes), generated (a huge body), sent chunked, or gzip-compressed. Recorded replies come
 * from a pair of files: <base>.headers (status line and headers, as in
 * research/api-fixtures) and <base>.json (the body). Unscripted paths answer 404.
 *
 * The server records what it received (method, raw path+query, headers, body) so tests can check
 * what the client sent. All functions fail the test (cr_assert) on setup errors. Thread-safe: the
 * server runs one thread per connection.
 */
#ifndef BP_TEST_HTTP_FIXTURE_H
#define BP_TEST_HTTP_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bpt_http bpt_http;

typedef struct bpt_http_reply {
    int status;             /* 0 = 200 */
    const char *headers;    /* extra headers, "Name: value" lines (LF or CRLF); may be NULL */
    const char *body;       /* NULL = empty */
    size_t body_len;        /* 0 with a body = strlen(body) */
    int64_t delay_ms;       /* wait this long before answering */
    int64_t truncate_after; /* > 0: announce the full length, send this many bytes, drop */
    int64_t generate_bytes; /* > 0: the body is this many bytes of 'x' instead of `body` */
    bool chunked;           /* no Content-Length: chunked transfer encoding */
    bool gzip;              /* gzip the body when the request accepts gzip */
} bpt_http_reply;

/* What the server received for one request. Strings are owned by the server. */
typedef struct bpt_http_seen {
    const char *method;
    const char *uri;     /* raw path and query, exactly as sent ("/odds?apiKey=k&x=a%20b") */
    const char *headers; /* "name: value\n" per header, names lower-cased */
    const char *body;
    size_t body_len;
} bpt_http_seen;

/* Start / stop. bpt_http_stop interrupts pending delays and frees everything. */
bpt_http *bpt_http_start(void);
void bpt_http_stop(bpt_http *s);
int bpt_http_port(const bpt_http *s);
/* "http://127.0.0.1:<port>" (borrowed). */
const char *bpt_http_url(const bpt_http *s);

/* Serve `replies[0..n)` to successive requests of `path` (without query), the last repeated.
 * The replies and the strings they point to are copied. Replaces an earlier script. */
void bpt_http_script(bpt_http *s, const char *path, const bpt_http_reply *replies, size_t n);
/* A reply from <base>.headers + <base>.json (e.g. ".../api-football/error-ratelimit-429").
 * Strings are owned by the server (freed by bpt_http_stop). */
bpt_http_reply bpt_http_recorded(bpt_http *s, const char *base);

/* Requests received for `path` so far. */
size_t bpt_http_hits(bpt_http *s, const char *path);
/* The i-th request (0-based) received for `path`; false when there is none. The strings stay
 * valid until bpt_http_stop. */
bool bpt_http_request_seen(bpt_http *s, const char *path, size_t i, bpt_http_seen *out);
/* Value of header `name` (lower-case) in a seen request, as a new string (free it), or NULL. */
char *bpt_http_seen_header(const bpt_http_seen *seen, const char *name);

#endif
