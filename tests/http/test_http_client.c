/*
 * test_http_client.c - the core HTTP client against a real HTTP server on loopback
 * (tests/support/http_fixture) replaying recorded API responses: retries, Retry-After, 4xx,
 * body limits, timeouts, truncated bodies, gzip, rate limits, secrets in logs and errors.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "betpipe/host.h"
#include "http_client.h"
#include "http_fixture.h"
#include "log.h"
#include "support.h"

static bpt_http *srv;

static void setup(void)
{
    bp_error err = {0};
    cr_assert_eq(http_client_global_init(&err), BP_OK, "%s", err.msg);
    srv = bpt_http_start();
}

static void teardown(void)
{
    bpt_http_stop(srv);
    http_client_global_cleanup();
}

TestSuite(http_client, .init = setup, .fini = teardown);

static char *url_of(const char *path)
{
    size_t n = strlen(bpt_http_url(srv)) + strlen(path) + 1;
    char *u = malloc(n);
    cr_assert(u);
    snprintf(u, n, "%s%s", bpt_http_url(srv), path);
    return u;
}

static char *fixture_path(const char *rel)
{
    const char *d = bpt_env("BP_TEST_DATA_DIR");
    size_t n = strlen(d) + strlen(rel) + 2;
    char *p = malloc(n);
    cr_assert(p);
    snprintf(p, n, "%s/%s", d, rel);
    return p;
}

static bpt_http_reply recorded(const char *rel)
{
    char *p = fixture_path(rel);
    bpt_http_reply r = bpt_http_recorded(srv, p);
    free(p);
    return r;
}

/* A request with fast retries so the tests do not wait on backoff. */
static bp_http_request fast_req(const char *url)
{
    bp_http_request r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.url = url;
    r.retry.base_delay_ms = 5;
    r.retry.max_delay_ms = 20;
    return r;
}

Test(http_client, get_returns_body_headers_and_sends_encoded_params)
{
    bpt_http_reply rep = recorded("api-fixtures/api-football/fixtures");
    bpt_http_script(srv, "/fixtures", &rep, 1);
    char *url = url_of("/fixtures?league=39");
    bp_http_param params[] = {{.name = "season", .value = "2024"},
                              {.name = "q", .value = "a b&c=d/\xc3\xa9"}};
    bp_http_request req = fast_req(url);
    req.params = params;
    req.n_params = 2;
    bp_http_response *resp = NULL;
    bp_error err = {0};

    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->status, 200);
    cr_expect_eq(resp->attempts, 1);
    cr_expect_eq(resp->body_len, rep.body_len);
    cr_expect(memcmp(resp->body, rep.body, rep.body_len) == 0);
    cr_expect_eq(resp->body[resp->body_len], '\0');
    /* response headers: case-insensitive lookup */
    cr_expect_str_eq(http_client_header(resp, "X-RATELIMIT-REQUESTS-REMAINING"), "7412");
    cr_expect_str_eq(http_client_header(resp, "x-ratelimit-remaining"), "297");
    cr_expect_str_eq(http_client_header(resp, "content-type"), "application/json");
    cr_expect_null(http_client_header(resp, "x-not-there"));

    /* what the server received */
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/fixtures", 0, &seen));
    cr_expect_str_eq(seen.method, "GET");
    cr_expect_str_eq(seen.uri, "/fixtures?league=39&season=2024&q=a%20b%26c%3Dd%2F%C3%A9");
    char *ua = bpt_http_seen_header(&seen, "user-agent");
    cr_expect_str_eq(ua, "betpipe/" BP_VERSION);
    cr_expect_str_eq(http_client_user_agent(), "betpipe/" BP_VERSION);
    free(ua);
    http_client_response_free(resp);
    free(url);
}

Test(http_client, a_429_then_200_is_retried_to_success)
{
    bpt_http_reply seq[] = {recorded("api-fixtures/api-football/error-ratelimit-429"),
                            recorded("api-fixtures/api-football/fixtures")};
    bpt_http_script(srv, "/fixtures", seq, 2);
    char *url = url_of("/fixtures");
    bp_http_request req = fast_req(url);
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->status, 200);
    cr_expect_eq(resp->attempts, 2);
    cr_expect_eq(bpt_http_hits(srv, "/fixtures"), 2);
    cr_expect(strstr(resp->body, "\"id\": 9900001") != NULL);
    http_client_response_free(resp);

    /* 5xx are retried too; when they never stop the last response is returned */
    bpt_http_reply five[] = {{.status = 503}, {.status = 502}, {.status = 500, .body = "down"}};
    bpt_http_script(srv, "/down", five, 3);
    free(url);
    url = url_of("/down");
    req = fast_req(url);
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->status, 500);
    cr_expect_eq(resp->attempts, 3);
    cr_expect_str_eq(resp->body, "down");
    cr_expect_eq(bpt_http_hits(srv, "/down"), 3);
    http_client_response_free(resp);

    /* a policy without 5xx leaves them alone */
    req.retry.on = BP_HTTP_RETRY_429;
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK);
    cr_expect_eq(resp->attempts, 1);
    http_client_response_free(resp);
    free(url);
}

Test(http_client, retry_after_is_honoured)
{
    bpt_http_reply seq[] = {{.status = 429, .headers = "Retry-After: 1\r\n", .body = "slow down"},
                            {.status = 200, .body = "ok"}};
    bpt_http_script(srv, "/limited", seq, 2);
    char *url = url_of("/limited");
    bp_http_request req = fast_req(url); /* backoff alone would wait 5 ms at most */
    bp_http_response *resp = NULL;
    bp_error err = {0};
    int64_t t0 = bpt_now_ms();
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    int64_t took = bpt_now_ms() - t0;
    cr_expect_eq(resp->status, 200);
    cr_expect_eq(resp->attempts, 2);
    cr_expect_geq(took, 990, "waited only %lld ms for Retry-After: 1", (long long)took);
    cr_expect_geq(resp->elapsed_ms, 990);
    http_client_response_free(resp);

    /* a Retry-After beyond what the caller accepts returns the 429 at once, for rescheduling */
    bpt_http_reply longwait = {.status = 429, .headers = "Retry-After: 3600\r\n", .body = "later"};
    bpt_http_script(srv, "/limited", &longwait, 1);
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->status, 429);
    cr_expect_eq(resp->attempts, 1);
    cr_expect_str_eq(http_client_header(resp, "retry-after"), "3600");
    http_client_response_free(resp);
    free(url);
}

Test(http_client, client_errors_are_not_retried)
{
    static const char *const cases[] = {"api-fixtures/the-odds-api/error-401-invalid-key",
                                        "api-fixtures/the-odds-api/error-401-out-of-usage-credits",
                                        "api-fixtures/the-odds-api/error-422-missing-region",
                                        "api-fixtures/api-football/error-rapidapi-invalid-key-401"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[32];
        snprintf(path, sizeof path, "/case%zu", i);
        bpt_http_reply rep = recorded(cases[i]);
        bpt_http_script(srv, path, &rep, 1);
        char *url = url_of(path);
        bp_http_request req = fast_req(url);
        bp_http_response *resp = NULL;
        bp_error err = {0};
        cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
        cr_expect_eq(resp->status, rep.status, "%s", cases[i]);
        cr_expect_eq(resp->attempts, 1);
        cr_expect_eq(bpt_http_hits(srv, path), 1, "%s was retried", cases[i]);
        cr_expect_str_eq(resp->body, rep.body);
        http_client_response_free(resp);
        free(url);
    }
}

Test(http_client, the_body_limit_aborts_the_transfer)
{
    bpt_http_reply big = {.generate_bytes = 2 * 1024 * 1024};
    bpt_http_reply big_chunked = {.generate_bytes = 2 * 1024 * 1024, .chunked = true};
    bpt_http_reply bomb = {.generate_bytes = 8 * 1024 * 1024, .gzip = true};
    bpt_http_reply exact = {.generate_bytes = 1024 * 1024};
    bpt_http_script(srv, "/big", &big, 1);
    bpt_http_script(srv, "/chunked", &big_chunked, 1);
    bpt_http_script(srv, "/bomb", &bomb, 1);
    bpt_http_script(srv, "/exact", &exact, 1);
    static const char *const paths[] = {"/big", "/chunked", "/bomb"};
    for (size_t i = 0; i < 3; i++) {
        char *url = url_of(paths[i]);
        bp_http_request req = fast_req(url);
        req.max_body_bytes = 1024 * 1024;
        bp_http_response *resp = NULL;
        bp_error err = {0};
        cr_expect_eq(http_client_request("test", &req, &resp, &err), BP_E_LIMIT, "%s: %s", paths[i],
                     err.msg);
        cr_expect_null(resp);
        cr_expect(strstr(err.msg, "larger than the limit of 1048576 bytes"), "%s", err.msg);
        cr_expect_eq(bpt_http_hits(srv, paths[i]), 1, "%s: a limit is not retried", paths[i]);
        free(url);
    }
    /* the gzip bomb really was small on the wire: the limit applies to the decoded body */
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/bomb", 0, &seen));
    char *ae = bpt_http_seen_header(&seen, "accept-encoding");
    cr_expect(ae && strstr(ae, "gzip"), "accept-encoding: %s", ae ? ae : "(none)");
    free(ae);

    char *url = url_of("/exact");
    bp_http_request req = fast_req(url);
    req.max_body_bytes = 1024 * 1024;
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->body_len, 1024 * 1024);
    http_client_response_free(resp);
    free(url);
}

Test(http_client, a_slow_server_times_out)
{
    bpt_http_reply slow = {.delay_ms = 20000, .body = "too late"};
    bpt_http_script(srv, "/slow", &slow, 1);
    char *url = url_of("/slow");
    bp_http_request req = fast_req(url);
    req.timeout_ms = 300;
    req.retry.max_attempts = 2;
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_E_TIMEOUT, "%s", err.msg);
    cr_expect_null(resp);
    cr_expect(strstr(err.msg, "timed out (limit 300 ms)"), "%s", err.msg);
    cr_expect(strstr(err.msg, "(attempt 2 of 2)"), "%s", err.msg);
    free(url);
}

Test(http_client, a_body_cut_short_is_retried_then_reported)
{
    bpt_http_reply cut = {.body = "{\"response\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}",
                          .truncate_after = 10};
    bpt_http_reply whole = {.body = "{\"response\": []}"};
    bpt_http_reply seq[] = {cut, whole};
    bpt_http_script(srv, "/flaky", seq, 2);
    char *url = url_of("/flaky");
    bp_http_request req = fast_req(url);
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->attempts, 2);
    cr_expect_str_eq(resp->body, "{\"response\": []}");
    http_client_response_free(resp);

    bpt_http_script(srv, "/flaky", &cut, 1);
    req.retry.max_attempts = 2;
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_E_UNAVAILABLE, "%s", err.msg);
    cr_expect(strstr(err.msg, "closed before the whole body arrived"), "%s", err.msg);
    free(url);
}

Test(http_client, gzip_bodies_are_decoded)
{
    bpt_http_reply rep = recorded("api-fixtures/the-odds-api/odds");
    rep.gzip = true;
    bpt_http_script(srv, "/odds", &rep, 1);
    char *url = url_of("/odds");
    bp_http_request req = fast_req(url);
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_str_eq(http_client_header(resp, "content-encoding"), "gzip");
    cr_expect_eq(resp->body_len, rep.body_len);
    cr_expect_str_eq(resp->body, rep.body);
    http_client_response_free(resp);

    /* without compression the server sends it plain */
    req.flags = BP_HTTP_F_NO_COMPRESSION;
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_null(http_client_header(resp, "content-encoding"));
    cr_expect_str_eq(resp->body, rep.body);
    http_client_response_free(resp);
    free(url);
}

Test(http_client, connection_refused_is_unavailable_after_retries)
{
    bpt_http *gone = bpt_http_start();
    int port = bpt_http_port(gone);
    bpt_http_stop(gone);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    bp_http_request req = fast_req(url);
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_E_UNAVAILABLE, "%s", err.msg);
    cr_expect(strstr(err.msg, "(attempt 3 of 3)"), "%s", err.msg);
}

/* ---- secrets -------------------------------------------------------------------------------- */

static char *read_fd_file(const char *path)
{
    char *s = bpt_slurp(path);
    cr_assert(s, "cannot read %s", path);
    return s;
}

Test(http_client, secrets_never_reach_logs_or_errors)
{
    char *dir = bpt_tmpdir("http-secrets");
    char logpath[512];
    snprintf(logpath, sizeof logpath, "%s/log.txt", dir);
    int fd = open(logpath, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    log_set_fd(fd);
    log_set_level(BP_LOG_DEBUG);

    bpt_http_reply fail = {.status = 500, .body = "oops"};
    bpt_http_script(srv, "/botPathTok000/sendMessage", &fail, 1);
    char *url = url_of("/botPathTok000/sendMessage?api_key=UrlSecret789&plain=visible");
    bp_http_param params[] = {{.name = "apiKey", .value = "SeCrEtKey123", .secret = 1},
                              {.name = "sig", .value = "Flagged321", .secret = 1},
                              {.name = "regions", .value = "uk"}};
    bp_http_header headers[] = {{.name = "x-apisports-key", .value = "HdrSecret456"},
                                {.name = "X-Custom", .value = "Marked654", .secret = 1}};
    const char *const extra[] = {"PathTok000"};
    bp_http_request req = fast_req(url);
    req.params = params;
    req.n_params = 3;
    req.headers = headers;
    req.n_headers = 2;
    req.secrets = extra;
    req.n_secrets = 1;
    req.retry.max_attempts = 2;
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->status, 500);
    http_client_response_free(resp);

    /* the server got the real values */
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/botPathTok000/sendMessage", 0, &seen));
    cr_expect(strstr(seen.uri, "apiKey=SeCrEtKey123"), "%s", seen.uri);
    char *h = bpt_http_seen_header(&seen, "x-apisports-key");
    cr_expect_str_eq(h, "HdrSecret456");
    free(h);

    /* now a failure with no response: the error message */
    bpt_http *gone = bpt_http_start();
    char dead[256];
    snprintf(dead, sizeof dead,
             "http://127.0.0.1:%d/botPathTok000/x?api_key=UrlSecret789&token=Tok11111",
             bpt_http_port(gone));
    bpt_http_stop(gone);
    req.url = dead;
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_E_UNAVAILABLE);
    log_set_fd(2);
    close(fd);

    static const char *const secrets[] = {"SeCrEtKey123", "HdrSecret456", "UrlSecret789",
                                          "PathTok000",   "Flagged321",   "Marked654",
                                          "Tok11111"};
    char *log = read_fd_file(logpath);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        cr_expect_null(strstr(log, secrets[i]), "log shows %s:\n%s", secrets[i], log);
        cr_expect_null(strstr(err.msg, secrets[i]), "error shows %s: %s", secrets[i], err.msg);
    }
    /* and what is shown is still useful */
    cr_expect(strstr(log, "apiKey=***"), "%s", log);
    cr_expect(strstr(log, "api_key=***"), "%s", log);
    cr_expect(strstr(log, "plain=visible&"), "%s", log);
    cr_expect(strstr(log, "regions=uk"), "%s", log);
    cr_expect(strstr(log, "/bot***/sendMessage"), "%s", log);
    cr_expect(strstr(log, "retry 2 of 2"), "%s", log);
    cr_expect(strstr(err.msg, "token=***"), "%s", err.msg);
    cr_expect(strstr(err.msg, "/bot***/x?api_key=***"), "%s", err.msg);
    free(log);
    free(url);
    bpt_rm_rf(dir);
    free(dir);
}

/* ---- rate limit ------------------------------------------------------------------------------ */

typedef struct rate_run {
    const char *url;
    int n;
    int64_t waited;
    int failures;
} rate_run;

static void *rate_worker(void *ud)
{
    rate_run *r = ud;
    for (int i = 0; i < r->n; i++) {
        bp_http_request req = fast_req(r->url);
        bp_http_response *resp = NULL;
        if (http_client_request("test", &req, &resp, NULL) != BP_OK) {
            r->failures++;
            continue;
        }
        r->waited += resp->rate_wait_ms;
        http_client_response_free(resp);
    }
    return NULL;
}

Test(http_client, the_per_host_rate_limit_is_shared_by_threads)
{
    bpt_http_reply ok = {.body = "ok"};
    bpt_http_script(srv, "/r", &ok, 1);
    char *url = url_of("/r");
    char host[64];
    bp_error err = {0};
    snprintf(host, sizeof host, "127.0.0.1:%d", bpt_http_port(srv));
    cr_assert_eq(http_client_set_host_rate(host, 10.0, 1, &err), BP_OK);

    /* 2 threads x 3 requests at 10/s with a burst of 1: 5 of the 6 must wait 100 ms each */
    rate_run runs[2] = {{.url = url, .n = 3}, {.url = url, .n = 3}};
    pthread_t th[2];
    int64_t t0 = bpt_now_ms();
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, rate_worker, &runs[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    int64_t took = bpt_now_ms() - t0;
    cr_expect_eq(runs[0].failures + runs[1].failures, 0);
    cr_expect_eq(bpt_http_hits(srv, "/r"), 6);
    cr_expect_geq(took, 480, "6 requests at 10/s took only %lld ms", (long long)took);
    cr_expect_geq(runs[0].waited + runs[1].waited, 400);

    /* a request can set its host's rate itself; 0 removes the limit */
    cr_assert_eq(http_client_set_host_rate(host, 0, 0, &err), BP_OK);
    bp_http_request req = fast_req(url);
    bp_http_response *resp = NULL;
    req.rate_per_s = 5.0;
    t0 = bpt_now_ms();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
        http_client_response_free(resp);
    }
    took = bpt_now_ms() - t0;
    cr_expect_geq(took, 390, "3 requests at 5/s took only %lld ms", (long long)took);
    free(url);
}

/* ---- cancellation, methods, redirects, bad input --------------------------------------------- */

static bpt_http *cancel_srv;
static int cancel_when_seen(const bp_job *job)
{
    (void)job;
    /* cancelled as soon as the server has the request in hand: no timing involved */
    return bpt_http_hits(cancel_srv, "/forever") > 0;
}

Test(http_client, a_cancelled_job_stops_the_transfer)
{
    bpt_http_reply forever = {.delay_ms = 60000, .body = "never"};
    bpt_http_script(srv, "/forever", &forever, 1);
    cancel_srv = srv;
    bp_host host;
    memset(&host, 0, sizeof host);
    host.struct_size = sizeof host;
    host.cancelled = cancel_when_seen;
    bp_job job;
    memset(&job, 0, sizeof job);
    job.struct_size = sizeof job;
    job.host = &host;
    char *url = url_of("/forever");
    bp_http_request req = fast_req(url);
    req.job = &job;
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_E_CANCELLED, "%s", err.msg);
    cr_expect_eq(bpt_http_hits(srv, "/forever"), 1);
    free(url);
}

Test(http_client, post_sends_the_body_byte_for_byte)
{
    bpt_http_reply created = {.status = 201, .body = "{\"ok\":true}"};
    bpt_http_script(srv, "/hook", &created, 1);
    char *url = url_of("/hook");
    static const char body[] = "{\"type\":\"value_bet\",\"edge\":0.051,\"name\":\"caf\xc3\xa9\"}";
    bp_http_header headers[] = {{.name = "Content-Type", .value = "application/json"},
                                {.name = "webhook-id", .value = "msg_1"}};
    bp_http_request req = fast_req(url);
    req.method = "POST";
    req.headers = headers;
    req.n_headers = 2;
    req.body = body;
    req.body_len = sizeof body - 1;
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->status, 201);
    http_client_response_free(resp);
    bpt_http_seen seen;
    cr_assert(bpt_http_request_seen(srv, "/hook", 0, &seen));
    cr_expect_str_eq(seen.method, "POST");
    cr_expect_eq(seen.body_len, sizeof body - 1);
    cr_expect(memcmp(seen.body, body, sizeof body - 1) == 0);
    char *ct = bpt_http_seen_header(&seen, "content-type");
    cr_expect_str_eq(ct, "application/json");
    free(ct);
    free(url);
}

Test(http_client, redirects_are_followed_only_when_asked)
{
    char loc[128];
    snprintf(loc, sizeof loc, "Location: %s/target\r\n", bpt_http_url(srv));
    bpt_http_reply moved = {.status = 302, .headers = loc, .body = "moved"};
    bpt_http_reply target = {.body = "arrived"};
    bpt_http_script(srv, "/from", &moved, 1);
    bpt_http_script(srv, "/target", &target, 1);
    char *url = url_of("/from");
    bp_http_request req = fast_req(url);
    bp_http_response *resp = NULL;
    bp_error err = {0};
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->status, 302);
    cr_expect_eq(bpt_http_hits(srv, "/target"), 0);
    http_client_response_free(resp);
    req.flags = BP_HTTP_F_FOLLOW_REDIRECTS;
    cr_assert_eq(http_client_request("test", &req, &resp, &err), BP_OK, "%s", err.msg);
    cr_expect_eq(resp->status, 200);
    cr_expect_str_eq(resp->body, "arrived");
    http_client_response_free(resp);
    free(url);
}

Test(http_client, bad_requests_are_refused_with_a_reason)
{
    bp_http_response *resp = NULL;
    bp_error err = {0};
    bp_http_request req = fast_req("ftp://example.org/file");
    cr_expect_eq(http_client_request("test", &req, &resp, &err), BP_E_INVAL);
    cr_expect(strstr(err.msg, "only http and https URLs are allowed"), "%s", err.msg);

    req = fast_req("file:///etc/passwd");
    cr_expect_eq(http_client_request("test", &req, &resp, &err), BP_E_INVAL);

    req = fast_req("not a url at all");
    cr_expect_eq(http_client_request("test", &req, &resp, &err), BP_E_INVAL);
    cr_expect(strstr(err.msg, "not a valid URL"), "%s", err.msg);

    char *url = url_of("/x");
    bp_http_header evil[] = {{.name = "X-Bad", .value = "a\r\nInjected: yes"}};
    req = fast_req(url);
    req.headers = evil;
    req.n_headers = 1;
    cr_expect_eq(http_client_request("test", &req, &resp, &err), BP_E_INVAL);
    cr_expect(strstr(err.msg, "header 0 has an invalid name or a line break"), "%s", err.msg);

    req = fast_req(url);
    req.body = "x";
    req.body_len = 1;
    cr_expect_eq(http_client_request("test", &req, &resp, &err), BP_E_INVAL);
    cr_expect(strstr(err.msg, "a GET request cannot carry a body"), "%s", err.msg);

    req = fast_req(url);
    req.method = "BREW";
    cr_expect_eq(http_client_request("test", &req, &resp, &err), BP_E_INVAL);

    req = fast_req(url);
    req.struct_size = 0;
    cr_expect_eq(http_client_request("test", &req, &resp, &err), BP_E_INVAL);
    cr_expect_eq(bpt_http_hits(srv, "/x"), 0);
    cr_expect_null(resp);
    free(url);
}
