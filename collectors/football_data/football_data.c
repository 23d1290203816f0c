/*
 * football_data - the football-data.co.uk collector: season CSVs into the store.
 *
 * A request names a source - an http(s):// URL of one CSV, a file:// URL or a path of a file or
 * of a folder of them - and optionally the leagues and seasons to take. Each file becomes one
 * store batch (one transaction): its matches, their odds (every bookmaker, closing and
 * pre-closing, 1X2, over/under and Asian handicap) and the teams and seasons they need. A file
 * that fails midway - unreadable, an HTML page where a CSV was expected, a store error, the job
 * cancelled - is rolled back whole and named in the report; the files before it stay stored. A
 * bad row only costs that row: it is rejected with the reason and file:line, and the good rows
 * of the file are kept.
 *
 * Which season a file holds comes from its name or URL, never from its dates: E0/2023-24.csv,
 * .../mmz4281/2324/E0.csv, Premier_League_2024_2025.csv. (A row dated outside that season is
 * rejected: it means the file is misnamed.) The league comes from the Div column, checked
 * against the division in the path when there is one (E0/2023-24.csv, .../2324/E0.csv).
 *
 * Re-importing a file changes nothing: matches are keyed by (season, home, away) and odds by
 * everything but the price, and the report counts them as unchanged. Pre-closing prices have no
 * capture time in the files (captured_ms 0); closing prices are captured at kick-off.
 *
 * Request: {"source": "...", "leagues": ["E0", ...], "seasons": ["2023-24", 2024, ...]}
 * Report:  {"source", "files", "files_failed", "rows", "matches": {inserted, updated,
 *           unchanged}, "odds": {...}, "rejected_rows", "rejected": [{file, line, column,
 *           reason}], "dropped_quotes", "dropped": [...], "teams_created": [...],
 *           "leagues_created": [...], "skipped_files": [...], "per_file": [...], "failed":
 *           [{file, error}], "duration_ms"}
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "betpipe/betpipe.h"
#include "fdcsv.h"

#define FD_MAX_FILE_BYTES  (64u * 1024u * 1024u)
#define FD_MAX_LISTED      100 /* rejected rows listed in the report (all are counted) */
#define FD_MAX_DROPPED     20
#define FD_CANCEL_EVERY    128 /* rows between cancellation checks */
#define FD_HTTP_TIMEOUT_MS 60000

typedef struct fd_state {
    const bp_host *host; /* this plugin's own table: its store, HTTP client and log */
} fd_state;

/* ---- the request ------------------------------------------------------------------------------
 */

typedef struct fd_request {
    const char *source;
    const json_t *leagues; /* array of strings, or NULL = all */
    int32_t seasons[64];   /* starting years; n_seasons 0 = all */
    size_t n_seasons;
} fd_request;

/* "2023-24", "2023/24", "2023-2024", "2023" or 2023 -> 2023. */
static int parse_season_arg(const json_t *v, int32_t *out)
{
    if (json_is_integer(v)) {
        json_int_t y = json_integer_value(v);
        if (y < 1850 || y > 2200) {
            return BP_E_INVAL;
        }
        *out = (int32_t)y;
        return BP_OK;
    }
    const char *s = json_string_value(v);
    int y = 0, y2 = 0, n = 0;
    char sep = 0;
    if (!s) {
        return BP_E_INVAL;
    }
    if (sscanf(s, "%4d%n", &y, &n) != 1 || n != 4 || y < 1850 || y > 2200) {
        return BP_E_INVAL;
    }
    if (s[4] == '\0') {
        *out = y;
        return BP_OK;
    }
    sep = s[4];
    if (sep != '-' && sep != '/') {
        return BP_E_INVAL;
    }
    size_t rest = strlen(s + 5);
    if ((rest != 2 && rest != 4) || sscanf(s + 5, "%d", &y2) != 1) {
        return BP_E_INVAL;
    }
    if ((rest == 2 && y2 != (y + 1) % 100) || (rest == 4 && y2 != y + 1)) {
        return BP_E_INVAL;
    }
    *out = y;
    return BP_OK;
}

static int read_request(const json_t *req, fd_request *out, bp_error *err)
{
    const json_t *seasons;
    size_t i;
    json_t *v;
    memset(out, 0, sizeof *out);
    out->source = json_string_value(json_object_get(req, "source"));
    if (!out->source || !*out->source) {
        return bp_err(err, BP_E_INVAL, "request.source: a URL, file:// URL or path is required");
    }
    out->leagues = json_object_get(req, "leagues");
    if (out->leagues && !json_is_array(out->leagues)) {
        return bp_err(err, BP_E_INVAL, "request.leagues: expected an array of division codes");
    }
    if (out->leagues && json_array_size(out->leagues) == 0) {
        out->leagues = NULL;
    }
    json_array_foreach(out->leagues, i, v)
    {
        if (!json_is_string(v)) {
            return bp_err(err, BP_E_INVAL, "request.leagues[%zu]: expected a string", i);
        }
    }
    seasons = json_object_get(req, "seasons");
    json_array_foreach(seasons, i, v)
    {
        if (i >= sizeof out->seasons / sizeof out->seasons[0]) {
            return bp_err(err, BP_E_INVAL, "request.seasons: at most 64 seasons");
        }
        if (parse_season_arg(v, &out->seasons[i]) != BP_OK) {
            return bp_err(err, BP_E_INVAL,
                          "request.seasons[%zu]: expected a season such as \"2023-24\" or 2023", i);
        }
        out->n_seasons++;
    }
    return BP_OK;
}

static bool league_wanted(const fd_request *rq, const char *div)
{
    size_t i;
    json_t *v;
    if (!rq->leagues) {
        return true;
    }
    json_array_foreach(rq->leagues, i, v)
    {
        if (strcmp(json_string_value(v), div) == 0) {
            return true;
        }
    }
    return false;
}

static bool season_wanted(const fd_request *rq, int32_t season)
{
    for (size_t i = 0; i < rq->n_seasons; i++) {
        if (rq->seasons[i] == season) {
            return true;
        }
    }
    return rq->n_seasons == 0;
}

/* ---- what a file name says ------------------------------------------------------------------ */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int digits_at(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/*
 * The starting year of the season a path names, or 0. Accepts YYYY-YY, YYYY-YYYY, YYYY_YY,
 * YYYY_YYYY (and '/' between them) anywhere in the path, and football-data's own URL form, a
 * path component of exactly four digits yyYY with YY = yy + 1 (mmz4281/2324/E0.csv).
 */
static int32_t season_of_path(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i + 7 <= n; i++) {
        int y = digits_at(path + i, 4);
        char sep = path[i + 4];
        if (y < 1900 || y > 2199 || (i > 0 && is_digit(path[i - 1])) ||
            (sep != '-' && sep != '_' && sep != '/')) {
            continue;
        }
        if (i + 9 <= n && digits_at(path + i + 5, 4) == y + 1 && !is_digit(path[i + 9])) {
            return y;
        }
        if (digits_at(path + i + 5, 2) == (y + 1) % 100 && !is_digit(path[i + 7])) {
            return y;
        }
    }
    /* a component of exactly 4 digits: "2324" */
    for (const char *p = path; *p; p++) {
        if ((p == path || p[-1] == '/') && digits_at(p, 4) >= 0 && p[4] == '/') {
            int a = digits_at(p, 2), b = digits_at(p + 2, 2);
            if (b == (a + 1) % 100) {
                return a >= 50 ? 1900 + a : 2000 + a;
            }
        }
    }
    return 0;
}

static bool looks_like_division(const char *s, size_t len)
{
    size_t letters = 0;
    if (len == 0 || len > 4) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z') {
            if (letters != i) {
                return false; /* letters first */
            }
            letters++;
        } else if (!is_digit(s[i])) {
            return false;
        }
    }
    return letters >= 1;
}

/* The division a path names: the file stem (".../2324/E0.csv") or the folder ("E0/2023-24.csv").
 * Written into out ("" when none). */
static void division_of_path(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    const char *stem = base ? base + 1 : path;
    const char *dot = strrchr(stem, '.');
    size_t sl = dot ? (size_t)(dot - stem) : strlen(stem);
    out[0] = '\0';
    if (looks_like_division(stem, sl) && sl < len) {
        memcpy(out, stem, sl);
        out[sl] = '\0';
        return;
    }
    if (base && base > path) {
        const char *dir = base - 1;
        while (dir > path && dir[-1] != '/') {
            dir--;
        }
        size_t dl = (size_t)(base - dir);
        if (looks_like_division(dir, dl) && dl < len) {
            memcpy(out, dir, dl);
            out[dl] = '\0';
        }
    }
}

/* ---- the import of one file ------------------------------------------------------------------ */

typedef struct import_ctx {
    const bp_host *h;
    const bp_job *job;
    const fd_request *rq;
    json_t *report;
    /* the file */
    bp_store_batch *batch;
    const char *name;    /* as reported: relative path or URL */
    char path_div[8];    /* division named by the path, "" if none */
    int32_t season;      /* starting year */
    int64_t season_from; /* rows must fall in [from, to) */
    int64_t season_to;
    char last_div[16]; /* one-entry cache of the league id of a division */
    int64_t last_league;
    bp_odds_quote *quotes;
    size_t quotes_cap;
    size_t rows, rejected, skipped;
    bp_store_counts matches, odds;
    json_t *created; /* {"teams_created": [], "leagues_created": []} of this file: they count
                        only once the file is committed */
    bp_error err;    /* what stopped the file */
} import_ctx;

static void counts_add(json_t *obj, const char *key, const bp_store_counts *c)
{
    json_t *o = json_object_get(obj, key);
    json_object_set_new(
        o, "inserted",
        json_integer(json_integer_value(json_object_get(o, "inserted")) + c->inserted));
    json_object_set_new(
        o, "updated", json_integer(json_integer_value(json_object_get(o, "updated")) + c->updated));
    json_object_set_new(
        o, "unchanged",
        json_integer(json_integer_value(json_object_get(o, "unchanged")) + c->unchanged));
}

static json_t *counts_json(const bp_store_counts *c)
{
    return json_pack("{s:I, s:I, s:I}", "inserted", (json_int_t)c->inserted, "updated",
                     (json_int_t)c->updated, "unchanged", (json_int_t)c->unchanged);
}

static void count_outcome(bp_store_counts *c, int32_t outcome)
{
    if (outcome == BP_UPSERT_INSERTED) {
        c->inserted++;
    } else if (outcome == BP_UPSERT_UPDATED) {
        c->updated++;
    } else {
        c->unchanged++;
    }
}

static void add_counter(json_t *report, const char *key, json_int_t by)
{
    json_object_set_new(report, key,
                        json_integer(json_integer_value(json_object_get(report, key)) + by));
}

static void reject_row(import_ctx *x, size_t line, const char *column, const char *reason)
{
    json_t *list = json_object_get(x->report, "rejected");
    x->rejected++;
    add_counter(x->report, "rejected_rows", 1);
    if (json_array_size(list) < FD_MAX_LISTED) {
        json_t *r = json_pack("{s:s, s:I, s:s}", "file", x->name, "line", (json_int_t)line,
                              "reason", reason);
        if (r && column) {
            json_object_set_new(r, "column", json_string(column));
        }
        json_array_append_new(list, r);
    }
}

static void on_reject(void *ud, const fdcsv_reject *r)
{
    import_ctx *x = ud;
    if (r->row_kept) {
        json_t *list = json_object_get(x->report, "dropped");
        add_counter(x->report, "dropped_quotes", 1);
        if (json_array_size(list) < FD_MAX_DROPPED) {
            json_array_append_new(list, json_string(r->message));
        }
        return;
    }
    reject_row(x, r->line, r->column, r->message);
}

/* Add `text` to the report's list `key` once. */
static void note_once(json_t *report, const char *key, const char *text)
{
    json_t *list = json_object_get(report, key);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (strcmp(json_string_value(v), text) == 0) {
            return;
        }
    }
    json_array_append_new(list, json_string(text));
}

/* The league of a division code; an unknown division becomes a new league (and is reported). */
static int league_of_div(import_ctx *x, const char *div, int64_t *out, bp_error *err)
{
    json_t *l = NULL;
    int rc;
    if (strcmp(x->last_div, div) == 0 && x->last_league > 0) {
        *out = x->last_league;
        return BP_OK;
    }
    rc = x->h->store->find_league(x->h, x->batch, BP_SOURCE_FOOTBALL_DATA, div, &l, err);
    if (rc == BP_OK) {
        *out = json_integer_value(json_object_get(l, "id"));
        json_decref(l);
    } else if (rc == BP_E_NOTFOUND) {
        bp_league_rec rec = {.struct_size = sizeof rec, .code = div, .fd_division = div};
        rc = x->h->store->upsert_league(x->h, x->batch, &rec, out, NULL, err);
        if (rc == BP_OK) {
            note_once(x->created, "leagues_created", div);
            BP_LOGI(x->h, "new league from football-data division=%s file=%s", div, x->name);
        }
    }
    if (rc == BP_OK) {
        snprintf(x->last_div, sizeof x->last_div, "%s", div);
        x->last_league = *out;
    }
    return rc;
}

static int resolve(import_ctx *x, int64_t league, const char *div, const char *name, int64_t *out)
{
    int32_t created = 0;
    int rc = x->h->store->resolve_team(x->h, x->batch, league, BP_SOURCE_FOOTBALL_DATA, name, out,
                                       &created, &x->err);
    if (rc == BP_OK && created) {
        char text[300];
        snprintf(text, sizeof text, "%s: %s", div, name);
        note_once(x->created, "teams_created", text);
        BP_LOGI(x->h, "new team league=%s team=%s file=%s", div, name, x->name);
    }
    return rc;
}

static json_t *stats_json(const fd_match *m)
{
    json_t *o = json_object();
    for (int i = 0; o && i < FD_STAT_COUNT; i++) {
        if (m->stats[i] >= 0) {
            json_object_set_new(o, fdcsv_stat_name(i), json_integer(m->stats[i]));
        }
    }
    return o;
}

static int on_row(void *ud, const fd_match *m)
{
    import_ctx *x = ud;
    const bp_store_api *sa = x->h->store;
    int64_t league = 0, home = 0, away = 0, match_id = 0;
    int32_t outcome = 0;
    char reason[BP_ERROR_MSG_MAX + 128];
    json_t *stats;
    int rc;

    if ((x->rows + x->rejected + x->skipped) % FD_CANCEL_EVERY == 0 && x->h->cancelled(x->job)) {
        return bp_err(&x->err, BP_E_CANCELLED, "cancelled while importing %s (line %zu)", x->name,
                      m->line);
    }
    if (!league_wanted(x->rq, m->div)) {
        x->skipped++;
        return BP_OK;
    }
    if (x->path_div[0] && strcmp(x->path_div, m->div) != 0) {
        snprintf(reason, sizeof reason,
                 "%s:%zu: Div '%s' does not match the division %s the file is named after", x->name,
                 m->line, m->div, x->path_div);
        reject_row(x, m->line, "Div", reason);
        return BP_OK;
    }
    if (m->kickoff_ms < x->season_from || m->kickoff_ms >= x->season_to) {
        snprintf(reason, sizeof reason,
                 "%s:%zu: Date %02d/%02d/%04d is outside season %d-%02d that the file is named "
                 "after",
                 x->name, m->line, (int)m->day, (int)m->month, (int)m->year, (int)x->season,
                 (int)((x->season + 1) % 100));
        reject_row(x, m->line, "Date", reason);
        return BP_OK;
    }
    if ((rc = league_of_div(x, m->div, &league, &x->err)) != BP_OK ||
        (rc = resolve(x, league, m->div, m->home_team, &home)) != BP_OK ||
        (rc = resolve(x, league, m->div, m->away_team, &away)) != BP_OK) {
        return rc;
    }
    stats = stats_json(m);
    bp_match_rec rec = {
        .struct_size = sizeof rec,
        .season = x->season,
        .league_id = league,
        .home_team_id = home,
        .away_team_id = away,
        .kickoff_ms = m->kickoff_ms,
        .kickoff_exact = m->has_time,
        .status = m->fthg >= 0 ? BP_MATCH_FINISHED : BP_MATCH_SCHEDULED,
        .home_goals = m->fthg,
        .away_goals = m->ftag,
        .ht_home_goals = m->hthg,
        .ht_away_goals = m->htag,
        .elapsed = -1,
        .referee = m->referee,
        .stats = stats,
        .source = BP_SOURCE_FOOTBALL_DATA,
    };
    rc = sa->upsert_match(x->h, x->batch, &rec, &match_id, &outcome, &x->err);
    json_decref(stats);
    if (rc == BP_E_INVAL) {
        /* the store refused the row's facts: that row only */
        snprintf(reason, sizeof reason, "%s:%zu: %s", x->name, m->line, x->err.msg);
        reject_row(x, m->line, NULL, reason);
        return BP_OK;
    }
    if (rc != BP_OK) {
        bp_err_prefix(&x->err, "%s:%zu: ", x->name, m->line);
        return rc;
    }
    count_outcome(&x->matches, outcome);
    if (m->n_quotes > x->quotes_cap) {
        size_t cap = m->n_quotes * 2;
        bp_odds_quote *q = realloc(x->quotes, cap * sizeof *q);
        if (!q) {
            return bp_err(&x->err, BP_E_NOMEM, "out of memory");
        }
        x->quotes = q;
        x->quotes_cap = cap;
    }
    for (size_t i = 0; i < m->n_quotes; i++) {
        const fd_quote *f = &m->quotes[i];
        x->quotes[i] = (bp_odds_quote){
            .bookmaker = f->bookmaker,
            .market = f->market, /* FD_MARKET_* and BP_MARKET_* are the same numbers */
            .selection = f->selection,
            .line = f->line,
            .price = f->price,
            .captured_ms = f->closing ? m->kickoff_ms : 0,
            .closing = f->closing,
        };
    }
    rc = sa->upsert_odds(x->h, x->batch, match_id, x->quotes, m->n_quotes, &x->odds, &x->err);
    if (rc != BP_OK) {
        bp_err_prefix(&x->err, "%s:%zu: ", x->name, m->line);
        return rc;
    }
    x->rows++;
    return BP_OK;
}

/* Read a local file whole. */
static int read_local(const char *path, char **out, size_t *out_len, bp_error *err)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char msg[128];
    char *buf;
    size_t n;
    if (!f) {
        int e = errno;
        return bp_err(err, e == ENOENT ? BP_E_NOTFOUND : BP_E_IO, "cannot open %s: %s", path,
                      strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return bp_err(err, BP_E_IO, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > FD_MAX_FILE_BYTES) {
        fclose(f);
        return bp_err(err, BP_E_LIMIT, "%s is larger than %u bytes", path, FD_MAX_FILE_BYTES);
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        free(buf);
        return bp_err(err, BP_E_IO, "short read of %s", path);
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return BP_OK;
}

static int fetch_http(const bp_host *h, const bp_job *job, const char *url, char **out,
                      size_t *out_len, bp_error *err)
{
    bp_http_request req = {.struct_size = sizeof req,
                           .url = url,
                           .timeout_ms = FD_HTTP_TIMEOUT_MS,
                           .max_body_bytes = FD_MAX_FILE_BYTES,
                           .flags = BP_HTTP_F_FOLLOW_REDIRECTS,
                           .job = job};
    bp_http_response *resp = NULL;
    int rc = h->http->request(h, &req, &resp, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (resp->status != 200) {
        rc = bp_err(err, resp->status == 404 ? BP_E_NOTFOUND : BP_E_UNAVAILABLE,
                    "%s answered HTTP %d (after %d attempts)", url, (int)resp->status,
                    (int)resp->attempts);
        h->http->response_free(h, resp);
        return rc;
    }
    *out = malloc(resp->body_len + 1);
    if (!*out) {
        h->http->response_free(h, resp);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    memcpy(*out, resp->body, resp->body_len);
    (*out)[resp->body_len] = '\0';
    *out_len = resp->body_len;
    h->http->response_free(h, resp);
    return BP_OK;
}

/* One file: fetch, parse and store in one batch; the file's entry goes into the report. */
static int import_file(import_ctx *x, const char *location, bool remote)
{
    const bp_host *h = x->h;
    char *data = NULL;
    size_t len = 0;
    fdcsv_stats stats;
    json_t *entry;
    int rc;
    char label[16];

    x->rows = x->rejected = x->skipped = 0;
    memset(&x->matches, 0, sizeof x->matches);
    memset(&x->odds, 0, sizeof x->odds);
    x->last_div[0] = '\0';
    x->last_league = 0;
    bp_err_clear(&x->err);
    json_decref(x->created);
    x->created = json_pack("{s:[], s:[]}", "teams_created", "leagues_created");
    if (!x->created) {
        return bp_err(&x->err, BP_E_NOMEM, "out of memory");
    }
    /* rows must lie between 1 June of the starting year and 1 September of the next */
    x->season_from = fdcsv_uk_local_to_utc_ms(x->season, 6, 1, 0, 0);
    x->season_to = fdcsv_uk_local_to_utc_ms(x->season + 1, 9, 1, 0, 0);

    rc = remote ? fetch_http(h, x->job, location, &data, &len, &x->err)
                : read_local(location, &data, &len, &x->err);
    if (rc == BP_OK) {
        rc = h->store->batch_begin(h, &x->batch, &x->err);
    }
    if (rc == BP_OK) {
        rc = fdcsv_parse(x->name, data, len, on_row, on_reject, x, &stats, &x->err);
        if (rc == BP_OK) {
            rc = h->store->batch_commit(h, x->batch, &x->err);
        } else {
            h->store->batch_rollback(h, x->batch);
        }
        x->batch = NULL;
    }
    free(data);

    snprintf(label, sizeof label, "%d-%02d", (int)x->season, (int)((x->season + 1) % 100));
    if (rc != BP_OK) {
        /* nothing of this file was stored: its counts do not count */
        json_array_append_new(
            json_object_get(x->report, "failed"),
            json_pack("{s:s, s:s, s:s, s:b}", "file", x->name, "error", x->err.msg, "status",
                      bp_status_str(rc), "retryable",
                      rc == BP_E_UNAVAILABLE || rc == BP_E_TIMEOUT || rc == BP_E_RETRY));
        add_counter(x->report, "files_failed", 1);
        BP_LOGW(h, "import failed file=%s: %s", x->name, x->err.msg);
        return rc;
    }
    entry = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "file", x->name, "season", label, "rows",
                      (json_int_t)x->rows, "rejected", (json_int_t)x->rejected, "matches",
                      counts_json(&x->matches), "odds", counts_json(&x->odds));
    if (entry && x->path_div[0]) {
        json_object_set_new(entry, "league", json_string(x->path_div));
    }
    if (entry && x->skipped) {
        json_object_set_new(entry, "skipped_rows", json_integer((json_int_t)x->skipped));
    }
    json_array_append_new(json_object_get(x->report, "per_file"), entry);
    json_array_extend(json_object_get(x->report, "teams_created"),
                      json_object_get(x->created, "teams_created"));
    json_array_extend(json_object_get(x->report, "leagues_created"),
                      json_object_get(x->created, "leagues_created"));
    add_counter(x->report, "rows", (json_int_t)x->rows);
    counts_add(x->report, "matches", &x->matches);
    counts_add(x->report, "odds", &x->odds);
    BP_LOGD(h, "imported file=%s rows=%zu rejected=%zu matches_inserted=%lld odds_inserted=%lld",
            x->name, x->rows, x->rejected, (long long)x->matches.inserted,
            (long long)x->odds.inserted);
    return BP_OK;
}

/* ---- sources ------------------------------------------------------------------------------------
 */

typedef struct file_list {
    char **paths;
    size_t n, cap;
} file_list;

static void files_free(file_list *fl)
{
    for (size_t i = 0; i < fl->n; i++) {
        free(fl->paths[i]);
    }
    free(fl->paths);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with_csv(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && (strcmp(name + n - 4, ".csv") == 0 || strcmp(name + n - 4, ".CSV") == 0);
}

/* Every *.csv below dir (depth-limited), sorted. */
static int list_csv(const char *dir, int depth, file_list *fl, bp_error *err)
{
    DIR *d;
    struct dirent *e;
    if (depth > 6) {
        return BP_OK;
    }
    d = opendir(dir);
    if (!d) {
        char msg[128];
        int en = errno;
        return bp_err(err, en == ENOENT ? BP_E_NOTFOUND : BP_E_IO, "cannot read folder %s: %s", dir,
                      strerror_r(en, msg, sizeof msg) == 0 ? msg : "error");
    }
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (e->d_name[0] == '.') {
            continue;
        }
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            int rc = list_csv(path, depth + 1, fl, err);
            if (rc != BP_OK) {
                closedir(d);
                return rc;
            }
        } else if (S_ISREG(st.st_mode) && ends_with_csv(e->d_name)) {
            if (fl->n == fl->cap) {
                size_t cap = fl->cap ? fl->cap * 2 : 64;
                char **np = realloc(fl->paths, cap * sizeof *np);
                if (!np) {
                    closedir(d);
                    return bp_err(err, BP_E_NOMEM, "out of memory");
                }
                fl->paths = np;
                fl->cap = cap;
            }
            if (!(fl->paths[fl->n] = strdup(path))) {
                closedir(d);
                return bp_err(err, BP_E_NOMEM, "out of memory");
            }
            fl->n++;
        }
    }
    closedir(d);
    return BP_OK;
}

/* file://[localhost]/abs/path with %XX escapes -> /abs/path. */
static int file_url_path(const char *url, char *out, size_t len, bp_error *err)
{
    const char *p = url + strlen("file://");
    size_t o = 0;
    if (strncmp(p, "localhost/", 10) == 0) {
        p += 9;
    }
    if (*p != '/') {
        return bp_err(err, BP_E_INVAL, "%s: a file:// URL needs an absolute path (file:///...)",
                      url);
    }
    for (; *p && o + 1 < len; p++) {
        if (*p == '%' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end == '\0' && v > 0) {
                out[o++] = (char)v;
                p += 2;
                continue;
            }
        }
        out[o++] = *p;
    }
    out[o] = '\0';
    return *p ? bp_err(err, BP_E_INVAL, "%s: path too long", url) : BP_OK;
}

/* The season of one file: from its name, else the only season the request names. */
static int file_season(const fd_request *rq, const char *shown, int32_t *out, bp_error *err)
{
    *out = season_of_path(shown);
    if (*out) {
        return BP_OK;
    }
    if (rq->n_seasons == 1) {
        *out = rq->seasons[0];
        return BP_OK;
    }
    return bp_err(err, BP_E_INVAL,
                  "%s: cannot tell the season from the name; name it <DIV>/<YYYY-YY>.csv (as "
                  "E0/2023-24.csv) or .../mmz4281/2324/E0.csv, or give exactly one season in "
                  "seasons",
                  shown);
}

static json_t *report_new(const char *source)
{
    return json_pack("{s:s, s:i, s:i, s:i, s:{s:i, s:i, s:i}, s:{s:i, s:i, s:i}, s:i, s:[], s:i, "
                     "s:[], s:[], s:[], s:[], s:[], s:[]}",
                     "source", source, "files", 0, "files_failed", 0, "rows", 0, "matches",
                     "inserted", 0, "updated", 0, "unchanged", 0, "odds", "inserted", 0, "updated",
                     0, "unchanged", 0, "rejected_rows", 0, "rejected", "dropped_quotes", 0,
                     "dropped", "teams_created", "leagues_created", "skipped_files", "per_file",
                     "failed");
}

static int fd_collect(void *plugin_state, const bp_job *job, int32_t what, const json_t *request,
                      json_t **out_report, bp_error *err)
{
    fd_state *state = plugin_state;
    const bp_host *h = state->host;
    fd_request rq;
    file_list fl = {0};
    import_ctx x;
    char local[PATH_MAX];
    const char *src;
    bool remote = false;
    struct stat st;
    int64_t t0 = h->mono_ns(h);
    int rc;

    *out_report = NULL;
    if (what != BP_COLLECT_RESULTS) {
        return bp_err(err, BP_E_INVAL,
                      "football_data collects results (history with odds) only, not kind 0x%x",
                      (unsigned)what);
    }
    if (!h->store) {
        return bp_err(err, BP_E_UNAVAILABLE, "football_data: no store in this process");
    }
    rc = read_request(request, &rq, err);
    if (rc != BP_OK) {
        return rc;
    }
    src = rq.source;
    if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0) {
        remote = true;
    } else if (strncmp(src, "file://", 7) == 0) {
        if ((rc = file_url_path(src, local, sizeof local, err)) != BP_OK) {
            return rc;
        }
        src = local;
    } else if (strstr(src, "://")) {
        return bp_err(err, BP_E_INVAL, "source %s: only http://, https://, file:// and paths", src);
    }
    if (!remote) {
        if (stat(src, &st) != 0) {
            return bp_err(err, BP_E_NOTFOUND, "source %s does not exist", src);
        }
        if (S_ISDIR(st.st_mode)) {
            rc = list_csv(src, 0, &fl, err);
            if (rc != BP_OK) {
                files_free(&fl);
                return rc;
            }
            if (fl.n == 0) {
                files_free(&fl);
                return bp_err(err, BP_E_NOTFOUND, "no .csv file under %s", src);
            }
            qsort(fl.paths, fl.n, sizeof *fl.paths, cmp_str);
        }
    }

    memset(&x, 0, sizeof x);
    x.h = h;
    x.job = job;
    x.rq = &rq;
    x.report = report_new(rq.source);
    if (!x.report) {
        files_free(&fl);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    size_t n_files = fl.n ? fl.n : 1;
    for (size_t i = 0; i < n_files; i++) {
        const char *location = fl.n ? fl.paths[i] : src;
        /* shown relative to the folder, so the report reads E0/2023-24.csv */
        const char *shown = fl.n ? location + strlen(src) + (src[strlen(src) - 1] == '/' ? 0 : 1)
                                 : (remote ? rq.source : location);
        bp_error ferr = {0};
        x.name = shown;
        division_of_path(shown, x.path_div, sizeof x.path_div);
        if (x.path_div[0] && !league_wanted(&rq, x.path_div)) {
            continue; /* another league: not even read */
        }
        if (file_season(&rq, shown, &x.season, &ferr) != BP_OK) {
            if (fl.n) {
                /* a folder may hold other CSVs: skip them, saying so */
                json_array_append_new(json_object_get(x.report, "skipped_files"),
                                      json_pack("{s:s, s:s}", "file", shown, "reason", ferr.msg));
                continue;
            }
            json_decref(x.report);
            return bp_err(err, ferr.code, "%s", ferr.msg);
        }
        if (!season_wanted(&rq, x.season)) {
            continue;
        }
        h->progress(job, (double)i / (double)n_files, shown);
        add_counter(x.report, "files", 1);
        rc = import_file(&x, location, remote);
        if (rc == BP_E_CANCELLED) {
            break;
        }
    }
    files_free(&fl);
    free(x.quotes);
    json_decref(x.created);
    json_object_set_new(x.report, "duration_ms", json_integer((h->mono_ns(h) - t0) / 1000000));
    if (rc == BP_E_CANCELLED) {
        /* stop at once: the file in progress was rolled back, the ones before it are stored */
        json_decref(x.report);
        return bp_err(err, BP_E_CANCELLED, "%s", x.err.msg);
    }
    *out_report = x.report;
    return BP_OK;
}

/* ---- registration ------------------------------------------------------------------------------
 */

static const bp_collector_type fd_collector = {
    .struct_size = sizeof(bp_collector_type),
    .provides = BP_COLLECT_RESULTS,
    .name = "football_data",
    .description = "football-data.co.uk season CSVs (results, match stats, every bookmaker's "
                   "pre-closing and closing odds) from a URL, a file or a folder",
    .request_schema =
        "{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"source\"], "
        "\"properties\": {"
        "\"source\": {\"type\": \"string\", \"minLength\": 1, \"description\": \"http(s):// URL "
        "of one CSV, file:// URL or path of a CSV or a folder of them\"},"
        "\"leagues\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"pattern\": "
        "\"^[A-Z]{1,3}[0-9]?$\"}, \"description\": \"football-data divisions to take (E0, SP1, "
        "D1 ...); all when absent\"},"
        "\"seasons\": {\"type\": \"array\", \"items\": {\"type\": [\"string\", \"integer\"]}, "
        "\"description\": \"seasons to take, \\\"2023-24\\\" or 2023; all when absent\"}}}",
    .collect = fd_collect,
};

static int fd_init(const bp_host *host, bp_registry *reg, void **out_state, bp_error *err)
{
    fd_state *s = calloc(1, sizeof *s);
    int rc;
    if (!s) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->host = host;
    rc = reg->add_collector(reg, &fd_collector, err);
    if (rc != BP_OK) {
        free(s);
        return rc;
    }
    *out_state = s;
    return BP_OK;
}

static void fd_fini(void *state)
{
    free(state);
}

BP_PLUGIN_DEFINE("football_data", "1.0.0",
                 "football-data.co.uk CSV collector: results, stats and odds into the store",
                 fd_init, fd_fini)
