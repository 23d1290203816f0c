/*
 * store_domain.c - leagues, seasons, teams, matches, odds and team statistics in the store.
 *
 * The file tells three stories, in this order:
 *
 *  1. Batches and their caches. An import of the bundled history resolves the same twenty team
 *     names, one season and a dozen bookmakers tens of thousands of times; each resolution is a
 *     hash probe in the batch instead of a query. The caches live and die with the transaction.
 *
 *  2. Upserts. Matches and team statistics are one statement each: INSERT ... ON CONFLICT DO
 *     UPDATE SET <merged values> WHERE <merged values differ> RETURNING rev. "Merged" means a
 *     value the source does not give (NULL) keeps what is stored, so football-data (stats,
 *     referee, closing odds) and API-Football (exact kick-off, live status) complement each
 *     other instead of erasing each other.
 *     Odds are different: ~60 quotes per match and ~900,000 in the bundled set. They are
 *     diffed in C - the match's stored quotes are read once (not at all when the batch has just
 *     inserted the match), both sides are sorted by key and merged - and only new and changed
 *     prices reach SQLite, as plain INSERTs and UPDATEs. Re-importing a file therefore writes
 *     nothing at all.
 *
 *  3. Reads, as JSON for jobs and the CLI, and as bp_match_result rows for the models.
 */
#include "store_domain.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ============================================================================================
 * Small helpers
 * ========================================================================================== */

static const char *const status_names[] = {NULL,        "scheduled", "live",      "finished",
                                           "postponed", "cancelled", "abandoned", "awarded"};

const char *store_match_status_name(int32_t status)
{
    if (status <= 0 || (size_t)status >= BP_ARRAY_LEN(status_names)) {
        return NULL;
    }
    return status_names[status];
}

int32_t store_match_status_parse(const char *name)
{
    for (size_t i = 1; name && i < BP_ARRAY_LEN(status_names); i++) {
        if (strcmp(status_names[i], name) == 0) {
            return (int32_t)i;
        }
    }
    return 0;
}

void store_season_label(int32_t start_year, char *buf, size_t len)
{
    snprintf(buf, len, "%d-%02d", (int)start_year, (int)((start_year + 1) % 100));
}

/* Copy a record the plugin filled into a zeroed struct of our size: a plugin built against an
 * older minor has a smaller struct, and the fields it lacks read as zero ("not given"). */
static int rec_copy(void *dst, size_t dst_size, const void *src, const char *what, bp_error *err)
{
    uint32_t size;
    memset(dst, 0, dst_size);
    if (!src) {
        return bp_err(err, BP_E_INVAL, "%s: no record given", what);
    }
    memcpy(&size, src, sizeof size);
    if (size < sizeof(uint32_t) * 2) {
        return bp_err(err, BP_E_INVAL, "%s: struct_size %u is too small (set it to sizeof)", what,
                      (unsigned)size);
    }
    memcpy(dst, src, size < dst_size ? size : dst_size);
    return BP_OK;
}

static bool is_blank(const char *s)
{
    return !s || !*s;
}

static void bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (s) {
        sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

static void bind_int_or_null(sqlite3_stmt *st, int idx, int64_t v, bool known)
{
    if (known) {
        sqlite3_bind_int64(st, idx, v);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

static json_t *column_json_int(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL
               ? json_null()
               : json_integer(sqlite3_column_int64(st, col));
}

static json_t *column_json_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? json_string((const char *)t) : json_null();
}

/* A JSON-text column parsed back into JSON (null when absent or unparseable). */
static json_t *column_json_doc(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    json_t *v = t ? json_loads((const char *)t, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *iso_or_null(int64_t ms)
{
    char buf[40];
    if (ms <= 0) {
        return json_null();
    }
    util_format_iso8601(ms, buf, sizeof buf);
    return json_string(buf);
}

/* ============================================================================================
 * 1. Batches and their caches
 * ========================================================================================== */

/* A string -> int64 map with open addressing (keys are copied). */
typedef struct id_slot {
    char *key; /* NULL = empty */
    size_t len;
    uint64_t hash;
    int64_t val;
} id_slot;

typedef struct id_map {
    id_slot *slots;
    size_t cap; /* power of two */
    size_t n;
} id_map;

static uint64_t hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool map_get(const id_map *m, const void *key, size_t len, int64_t *out)
{
    uint64_t h;
    if (m->n == 0) {
        return false;
    }
    h = hash_bytes(key, len);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const id_slot *sl = &m->slots[i];
        if (!sl->key) {
            return false;
        }
        if (sl->hash == h && sl->len == len && memcmp(sl->key, key, len) == 0) {
            *out = sl->val;
            return true;
        }
    }
}

static int map_put(id_map *m, const void *key, size_t len, int64_t val)
{
    uint64_t h = hash_bytes(key, len);
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        id_slot *ns = calloc(ncap, sizeof *ns);
        if (!ns) {
            return BP_E_NOMEM;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slots[i].key) {
                size_t j = m->slots[i].hash & (ncap - 1);
                while (ns[j].key) {
                    j = (j + 1) & (ncap - 1);
                }
                ns[j] = m->slots[i];
            }
        }
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        id_slot *sl = &m->slots[i];
        if (!sl->key) {
            sl->key = malloc(len ? len : 1);
            if (!sl->key) {
                return BP_E_NOMEM;
            }
            memcpy(sl->key, key, len);
            sl->len = len;
            sl->hash = h;
            sl->val = val;
            m->n++;
            return BP_OK;
        }
        if (sl->hash == h && sl->len == len && memcmp(sl->key, key, len) == 0) {
            sl->val = val;
            return BP_OK;
        }
    }
}

static void map_free(id_map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
    }
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* One odds row while diffing (stored or incoming). */
typedef struct odds_row {
    int64_t book;
    int64_t captured;
    double line;
    double price;
    int32_t market;
    int32_t closing;
    int32_t selection;
    uint32_t idx; /* position in the caller's array (incoming), for stable duplicates */
} odds_row;

struct bp_store_batch {
    store *s;
    store_conn *c;
    int64_t now_ms;
    id_map ids;   /* cache keys start with a kind letter; see the key_* helpers */
    id_map fresh; /* match ids inserted by this batch: they have no stored odds yet */
    odds_row *in, *ex;
    size_t in_cap, ex_cap;
};

/* Cache keys: a kind letter, then the parts separated by 0x1f. */
static size_t key_of(char *buf, size_t cap, char kind, int64_t a, const char *s1, const char *s2)
{
    int n = snprintf(buf, cap, "%c\x1f%lld\x1f%s\x1f%s", kind, (long long)a, s1 ? s1 : "",
                     s2 ? s2 : "");
    if (n < 0) {
        return 0;
    }
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

int store_batch_begin(store *s, bp_store_batch **out, bp_error *err)
{
    bp_store_batch *b;
    int rc;
    *out = NULL;
    b = calloc(1, sizeof *b);
    if (!b) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    b->s = s;
    b->now_ms = util_now_ms();
    b->c = store_conn_acquire(s);
    if (!b->c) {
        free(b);
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    rc = store_conn_begin(b->c, err);
    if (rc != BP_OK) {
        store_conn_release(s, b->c);
        free(b);
        return rc;
    }
    *out = b;
    return BP_OK;
}

static void batch_free(bp_store_batch *b)
{
    store_conn_release(b->s, b->c);
    map_free(&b->ids);
    map_free(&b->fresh);
    free(b->in);
    free(b->ex);
    free(b);
}

int store_batch_commit(bp_store_batch *b, bp_error *err)
{
    int rc;
    if (!b) {
        return bp_err(err, BP_E_INVAL, "no batch to commit");
    }
    rc = store_conn_commit(b->c, err);
    batch_free(b);
    return rc;
}

void store_batch_rollback(bp_store_batch *b)
{
    if (b) {
        store_conn_rollback(b->c);
        batch_free(b);
    }
}

/*
 * Every operation runs through an op: the caller's batch, or a batch of its own (writes) / a
 * bare pooled connection (reads) that op_end finishes.
 */
typedef struct op {
    store *s;
    bp_store_batch *b; /* the batch in use (caller's or own); NULL for a bare read */
    bp_store_batch *own;
    store_conn *c;
    bool bare; /* c acquired without a batch */
} op;

static int op_write(store *s, bp_store_batch *b, op *o, bp_error *err)
{
    memset(o, 0, sizeof *o);
    o->s = s;
    if (b) {
        o->b = b;
        o->c = b->c;
        return BP_OK;
    }
    int rc = store_batch_begin(s, &o->own, err);
    if (rc == BP_OK) {
        o->b = o->own;
        o->c = o->own->c;
    }
    return rc;
}

static int op_read(store *s, bp_store_batch *b, op *o, bp_error *err)
{
    memset(o, 0, sizeof *o);
    o->s = s;
    if (b) {
        o->b = b;
        o->c = b->c;
        return BP_OK;
    }
    o->c = store_conn_acquire(s);
    if (!o->c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    o->bare = true;
    return BP_OK;
}

/* Finish an op: commit our own batch when rc is BP_OK, else roll it back. Returns rc (or the
 * commit's failure). */
static int op_end(op *o, int rc, bp_error *err)
{
    if (o->own) {
        if (rc == BP_OK) {
            rc = store_batch_commit(o->own, err);
        } else {
            store_batch_rollback(o->own);
        }
        o->own = NULL;
    } else if (o->bare) {
        store_conn_release(o->s, o->c);
    }
    o->c = NULL;
    o->b = NULL;
    return rc;
}

static sqlite3_stmt *op_stmt(op *o, const char *sql, int *rc, bp_error *err)
{
    sqlite3_stmt *st = store_conn_stmt(o->c, sql, err);
    if (!st) {
        *rc = err && err->code ? err->code : BP_E_IO;
    }
    return st;
}

static int step_err(op *o, sqlite3_stmt *st, int step, const char *what, bp_error *err)
{
    int rc = store_sqlite_err(store_conn_db(o->c), step, what, err);
    sqlite3_reset(st);
    return rc;
}

/* Cache lookups need a batch; a bare read has none and always asks SQLite. */
static bool cache_get(op *o, const char *key, size_t len, int64_t *out)
{
    return o->b && map_get(&o->b->ids, key, len, out);
}

static void cache_put(op *o, const char *key, size_t len, int64_t val)
{
    if (o->b) {
        (void)map_put(&o->b->ids, key, len, val); /* a failed put only costs a later query */
    }
}

/* ============================================================================================
 * 2. Upserts: leagues, teams, seasons
 * ========================================================================================== */

static const char SQL_LEAGUE_UPSERT[] =
    "INSERT INTO leagues (code, name, country, fd_division, af_league_id, toa_sport_key) "
    "VALUES (?1, coalesce(?2, ?1), ?3, ?4, ?5, ?6) "
    "ON CONFLICT (code) DO UPDATE SET name = coalesce(?2, name), country = coalesce(?3, country), "
    "fd_division = coalesce(?4, fd_division), af_league_id = coalesce(?5, af_league_id), "
    "toa_sport_key = coalesce(?6, toa_sport_key), rev = rev + 1 "
    "WHERE coalesce(?2, leagues.name) IS NOT leagues.name "
    "OR coalesce(?3, leagues.country) IS NOT leagues.country "
    "OR coalesce(?4, leagues.fd_division) IS NOT leagues.fd_division "
    "OR coalesce(?5, leagues.af_league_id) IS NOT leagues.af_league_id "
    "OR coalesce(?6, leagues.toa_sport_key) IS NOT leagues.toa_sport_key "
    "RETURNING id, rev";

static const char SQL_LEAGUE_BY_CODE[] = "SELECT id FROM leagues WHERE code = ?1";

int store_upsert_league(store *s, bp_store_batch *b, const bp_league_rec *in, int64_t *out_id,
                        int32_t *out_outcome, bp_error *err)
{
    bp_league_rec rec;
    op o;
    sqlite3_stmt *st;
    int rc = rec_copy(&rec, sizeof rec, in, "league", err), step;
    int64_t id = 0;
    int32_t outcome = BP_UPSERT_UNCHANGED;
    if (rc != BP_OK) {
        return rc;
    }
    if (is_blank(rec.code)) {
        return bp_err(err, BP_E_INVAL, "league: code is required");
    }
    if (rec.af_league_id < 0) {
        return bp_err(err, BP_E_INVAL, "league %s: af_league_id %lld is negative", rec.code,
                      (long long)rec.af_league_id);
    }
    rc = op_write(s, b, &o, err);
    if (rc != BP_OK) {
        return rc;
    }
    st = op_stmt(&o, SQL_LEAGUE_UPSERT, &rc, err);
    if (st) {
        bind_text(st, 1, rec.code);
        bind_text(st, 2, is_blank(rec.name) ? NULL : rec.name);
        bind_text(st, 3, is_blank(rec.country) ? NULL : rec.country);
        bind_text(st, 4, is_blank(rec.fd_division) ? NULL : rec.fd_division);
        bind_int_or_null(st, 5, rec.af_league_id, rec.af_league_id > 0);
        bind_text(st, 6, is_blank(rec.toa_sport_key) ? NULL : rec.toa_sport_key);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            id = sqlite3_column_int64(st, 0);
            outcome = sqlite3_column_int64(st, 1) == 0 ? BP_UPSERT_INSERTED : BP_UPSERT_UPDATED;
            sqlite3_reset(st);
        } else if (step == SQLITE_DONE) {
            sqlite3_reset(st);
            st = op_stmt(&o, SQL_LEAGUE_BY_CODE, &rc, err);
            if (st) {
                bind_text(st, 1, rec.code);
                if (sqlite3_step(st) == SQLITE_ROW) {
                    id = sqlite3_column_int64(st, 0);
                } else {
                    rc = bp_err(err, BP_E_INTERNAL, "league %s vanished", rec.code);
                }
                sqlite3_reset(st);
            }
        } else {
            rc = step_err(&o, st, step, "store league", err);
            if (rc == BP_E_EXISTS) {
                bp_err_prefix(err,
                              "league %s: an external id already belongs to another "
                              "league: ",
                              rec.code);
            }
        }
    }
    rc = op_end(&o, rc, err);
    if (rc == BP_OK) {
        if (out_id) {
            *out_id = id;
        }
        if (out_outcome) {
            *out_outcome = outcome;
        }
    }
    return rc;
}

static const char SQL_LEAGUE_FIND_CODE[] =
    "SELECT id, code, name, country, fd_division, af_league_id, toa_sport_key FROM leagues "
    "WHERE code = ?1";
static const char SQL_LEAGUE_FIND_FD[] =
    "SELECT id, code, name, country, fd_division, af_league_id, toa_sport_key FROM leagues "
    "WHERE fd_division = ?1";
static const char SQL_LEAGUE_FIND_AF[] =
    "SELECT id, code, name, country, fd_division, af_league_id, toa_sport_key FROM leagues "
    "WHERE af_league_id = ?1";
static const char SQL_LEAGUE_FIND_TOA[] =
    "SELECT id, code, name, country, fd_division, af_league_id, toa_sport_key FROM leagues "
    "WHERE toa_sport_key = ?1";

static json_t *league_json(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                     (json_int_t)sqlite3_column_int64(st, 0), "code", column_json_text(st, 1),
                     "name", column_json_text(st, 2), "country", column_json_text(st, 3),
                     "fd_division", column_json_text(st, 4), "af_league_id", column_json_int(st, 5),
                     "toa_sport_key", column_json_text(st, 6));
}

int store_find_league(store *s, bp_store_batch *b, const char *source, const char *name,
                      json_t **out_league, bp_error *err)
{
    const char *sql;
    op o;
    sqlite3_stmt *st;
    int rc, step;
    *out_league = NULL;
    if (is_blank(source) || is_blank(name)) {
        return bp_err(err, BP_E_INVAL, "find league: source and name are required");
    }
    if (strcmp(source, "betpipe") == 0) {
        sql = SQL_LEAGUE_FIND_CODE;
    } else if (strcmp(source, BP_SOURCE_FOOTBALL_DATA) == 0) {
        sql = SQL_LEAGUE_FIND_FD;
    } else if (strcmp(source, BP_SOURCE_API_FOOTBALL) == 0) {
        sql = SQL_LEAGUE_FIND_AF;
    } else if (strcmp(source, BP_SOURCE_THE_ODDS_API) == 0) {
        sql = SQL_LEAGUE_FIND_TOA;
    } else {
        return bp_err(err, BP_E_INVAL,
                      "find league: unknown source '%s' (betpipe, football_data, api_football or "
                      "the_odds_api)",
                      source);
    }
    rc = op_read(s, b, &o, err);
    if (rc != BP_OK) {
        return rc;
    }
    st = op_stmt(&o, sql, &rc, err);
    if (st) {
        bind_text(st, 1, name);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            *out_league = league_json(st);
            rc = *out_league ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
            sqlite3_reset(st);
        } else if (step == SQLITE_DONE) {
            rc = bp_err(err, BP_E_NOTFOUND, "no league is known as %s '%s'", source, name);
            sqlite3_reset(st);
        } else {
            rc = step_err(&o, st, step, "find league", err);
        }
    }
    return op_end(&o, rc, err);
}

static const char SQL_LEAGUE_LIST[] =
    "SELECT l.id, l.code, l.name, l.country, l.fd_division, l.af_league_id, l.toa_sport_key, "
    "(SELECT count(*) FROM teams t WHERE t.league_id = l.id), "
    "(SELECT count(*) FROM matches m WHERE m.league_id = l.id) "
    "FROM leagues l ORDER BY l.code";

int store_list_leagues(store *s, json_t **out_leagues, bp_error *err)
{
    op o;
    sqlite3_stmt *st;
    int rc, step = SQLITE_DONE;
    json_t *arr = json_array();
    *out_leagues = NULL;
    if (!arr) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = op_read(s, NULL, &o, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    st = op_stmt(&o, SQL_LEAGUE_LIST, &rc, err);
    while (st && (step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *l = league_json(st);
        if (!l) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        json_object_set_new(l, "teams", json_integer(sqlite3_column_int64(st, 7)));
        json_object_set_new(l, "matches", json_integer(sqlite3_column_int64(st, 8)));
        json_array_append_new(arr, l);
    }
    if (st && rc == BP_OK && step != SQLITE_DONE) {
        rc = step_err(&o, st, step, "list leagues", err);
    } else if (st) {
        sqlite3_reset(st);
    }
    rc = op_end(&o, rc, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out_leagues = arr;
    return BP_OK;
}

/* ---- teams ------------------------------------------------------------------------------------
 */

static const char SQL_TEAM_BY_SOURCE_ALIAS[] =
    "SELECT team_id FROM team_aliases WHERE league_id = ?1 AND source = ?2 AND alias = ?3";
static const char SQL_TEAM_BY_NAME[] = "SELECT id FROM teams WHERE league_id = ?1 AND name = ?2";
static const char SQL_TEAM_BY_ANY_ALIAS[] =
    "SELECT min(team_id), count(DISTINCT team_id) FROM team_aliases "
    "WHERE league_id = ?1 AND alias = ?2";
static const char SQL_TEAM_INSERT[] =
    "INSERT INTO teams (league_id, name, created_by, created_ms) VALUES (?1, ?2, ?3, ?4) "
    "RETURNING id";
static const char SQL_ALIAS_INSERT[] =
    "INSERT INTO team_aliases (league_id, source, alias, team_id) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (league_id, source, alias) DO NOTHING";
static const char SQL_ALIAS_GET[] =
    "SELECT team_id FROM team_aliases WHERE league_id = ?1 AND source = ?2 AND alias = ?3";
static const char SQL_TEAM_LEAGUE[] = "SELECT league_id FROM teams WHERE id = ?1";

/* Run a one-column, one-row integer query. BP_OK with the value, BP_E_NOTFOUND without a row. */
static int query_id(op *o, const char *sql, int64_t a, const char *t1, const char *t2, int64_t *out,
                    const char *what, bp_error *err)
{
    int rc = BP_OK, step;
    sqlite3_stmt *st = op_stmt(o, sql, &rc, err);
    if (!st) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, a);
    if (t1) {
        bind_text(st, 2, t1);
    }
    if (t2) {
        bind_text(st, 3, t2);
    }
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
            rc = BP_E_NOTFOUND;
        } else {
            *out = sqlite3_column_int64(st, 0);
        }
        sqlite3_reset(st);
        return rc;
    }
    if (step == SQLITE_DONE) {
        sqlite3_reset(st);
        return BP_E_NOTFOUND;
    }
    return step_err(o, st, step, what, err);
}

/* The league of a team (cached per batch). BP_E_NOTFOUND names the team. */
static int team_league(op *o, int64_t team_id, int64_t *out, bp_error *err)
{
    char key[64];
    size_t len = key_of(key, sizeof key, 'k', team_id, NULL, NULL);
    int rc;
    if (cache_get(o, key, len, out)) {
        return BP_OK;
    }
    rc = query_id(o, SQL_TEAM_LEAGUE, team_id, NULL, NULL, out, "read team", err);
    if (rc == BP_E_NOTFOUND) {
        return bp_err(err, BP_E_NOTFOUND, "no team with id %lld", (long long)team_id);
    }
    if (rc == BP_OK) {
        cache_put(o, key, len, *out);
    }
    return rc;
}

static int league_exists(op *o, int64_t league_id, bp_error *err)
{
    char key[64];
    size_t len = key_of(key, sizeof key, 'l', league_id, NULL, NULL);
    int64_t v;
    static const char sql[] = "SELECT id FROM leagues WHERE id = ?1";
    int rc;
    if (cache_get(o, key, len, &v)) {
        return BP_OK;
    }
    rc = query_id(o, sql, league_id, NULL, NULL, &v, "read league", err);
    if (rc == BP_E_NOTFOUND) {
        return bp_err(err, BP_E_NOTFOUND, "no league with id %lld", (long long)league_id);
    }
    if (rc == BP_OK) {
        cache_put(o, key, len, v);
    }
    return rc;
}

static int resolve_team(op *o, int64_t league_id, const char *source, const char *name,
                        int64_t *out_id, int32_t *out_created, bp_error *err)
{
    char key[600];
    size_t len = key_of(key, sizeof key, 't', league_id, source, name);
    int64_t id = 0;
    int rc, step;
    sqlite3_stmt *st;

    *out_created = 0;
    if (cache_get(o, key, len, out_id)) {
        return BP_OK;
    }
    rc = league_exists(o, league_id, err);
    if (rc != BP_OK) {
        return rc;
    }
    /* 1. this source's spelling; 2. the team's own name */
    rc = query_id(o, SQL_TEAM_BY_SOURCE_ALIAS, league_id, source, name, &id, "resolve team", err);
    if (rc == BP_E_NOTFOUND) {
        rc = query_id(o, SQL_TEAM_BY_NAME, league_id, name, NULL, &id, "resolve team", err);
    }
    /* 3. another source's spelling, when it names exactly one team */
    if (rc == BP_E_NOTFOUND) {
        st = op_stmt(o, SQL_TEAM_BY_ANY_ALIAS, &rc, err);
        if (!st) {
            return rc;
        }
        sqlite3_bind_int64(st, 1, league_id);
        bind_text(st, 2, name);
        step = sqlite3_step(st);
        if (step != SQLITE_ROW) {
            return step_err(o, st, step, "resolve team", err);
        }
        rc = BP_E_NOTFOUND;
        if (sqlite3_column_int64(st, 1) == 1) {
            id = sqlite3_column_int64(st, 0);
            rc = BP_OK;
        }
        sqlite3_reset(st);
    }
    /* 4. nobody knows the name: a new team, remembered under this source's spelling */
    if (rc == BP_E_NOTFOUND) {
        st = op_stmt(o, SQL_TEAM_INSERT, &rc, err);
        if (!st) {
            return rc;
        }
        sqlite3_bind_int64(st, 1, league_id);
        bind_text(st, 2, name);
        bind_text(st, 3, source);
        sqlite3_bind_int64(st, 4, o->b ? o->b->now_ms : util_now_ms());
        step = sqlite3_step(st);
        if (step != SQLITE_ROW) {
            return step_err(o, st, step, "create team", err);
        }
        id = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        st = op_stmt(o, SQL_ALIAS_INSERT, &rc, err);
        if (!st) {
            return rc;
        }
        sqlite3_bind_int64(st, 1, league_id);
        bind_text(st, 2, source);
        bind_text(st, 3, name);
        sqlite3_bind_int64(st, 4, id);
        step = sqlite3_step(st);
        if (step != SQLITE_DONE) {
            return step_err(o, st, step, "create team alias", err);
        }
        sqlite3_reset(st);
        *out_created = 1;
        rc = BP_OK;
    }
    if (rc != BP_OK) {
        return rc;
    }
    cache_put(o, key, len, id);
    *out_id = id;
    return BP_OK;
}

int store_resolve_team(store *s, bp_store_batch *b, int64_t league_id, const char *source,
                       const char *name, int64_t *out_team_id, int32_t *out_created, bp_error *err)
{
    op o;
    int rc;
    int64_t id = 0;
    int32_t created = 0;
    if (league_id <= 0 || is_blank(source) || is_blank(name)) {
        return bp_err(err, BP_E_INVAL,
                      "resolve team: league, source and a non-empty name are "
                      "required");
    }
    if (strlen(name) > 200) {
        return bp_err(err, BP_E_INVAL, "team name longer than 200 bytes: '%.40s...'", name);
    }
    rc = op_write(s, b, &o, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = resolve_team(&o, league_id, source, name, &id, &created, err);
    rc = op_end(&o, rc, err);
    if (rc == BP_OK) {
        *out_team_id = id;
        if (out_created) {
            *out_created = created;
        }
    }
    return rc;
}

int store_add_team_alias(store *s, bp_store_batch *b, int64_t team_id, const char *source,
                         const char *alias, bp_error *err)
{
    op o;
    int rc;
    int64_t league = 0, holder = 0;
    sqlite3_stmt *st;
    if (team_id <= 0 || is_blank(source) || is_blank(alias)) {
        return bp_err(err, BP_E_INVAL, "team alias: team, source and alias are required");
    }
    rc = op_write(s, b, &o, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = team_league(&o, team_id, &league, err);
    if (rc == BP_OK) {
        rc = query_id(&o, SQL_ALIAS_GET, league, source, alias, &holder, "read alias", err);
        if (rc == BP_OK && holder != team_id) {
            rc = bp_err(err, BP_E_EXISTS, "alias '%s' (%s) already means team %lld, not %lld",
                        alias, source, (long long)holder, (long long)team_id);
        } else if (rc == BP_E_NOTFOUND) {
            st = op_stmt(&o, SQL_ALIAS_INSERT, &rc, err);
            if (st) {
                int step;
                sqlite3_bind_int64(st, 1, league);
                bind_text(st, 2, source);
                bind_text(st, 3, alias);
                sqlite3_bind_int64(st, 4, team_id);
                step = sqlite3_step(st);
                rc = step == SQLITE_DONE ? BP_OK : step_err(&o, st, step, "add alias", err);
                sqlite3_reset(st);
            }
        }
    }
    if (rc == BP_OK && o.b) {
        /* The cached resolution of this spelling may now be stale. */
        char key[600];
        size_t len = key_of(key, sizeof key, 't', league, source, alias);
        cache_put(&o, key, len, team_id);
    }
    return op_end(&o, rc, err);
}

static const char SQL_TEAM_LIST[] =
    "SELECT t.id, t.name, t.created_by, "
    "(SELECT json_group_array(json_object('source', a.source, 'alias', a.alias)) "
    " FROM (SELECT source, alias FROM team_aliases WHERE team_id = t.id "
    "       ORDER BY source, alias) a) "
    "FROM teams t WHERE t.league_id = ?1 ORDER BY t.name";

int store_list_teams(store *s, int64_t league_id, json_t **out_teams, bp_error *err)
{
    op o;
    sqlite3_stmt *st;
    int rc, step = SQLITE_DONE;
    json_t *arr = json_array();
    *out_teams = NULL;
    if (!arr) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = op_read(s, NULL, &o, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    st = op_stmt(&o, SQL_TEAM_LIST, &rc, err);
    if (st) {
        sqlite3_bind_int64(st, 1, league_id);
    }
    while (st && (step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *t = json_pack("{s:I, s:o, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                              "name", column_json_text(st, 1), "created_by",
                              column_json_text(st, 2), "aliases", column_json_doc(st, 3));
        if (!t) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        json_array_append_new(arr, t);
    }
    if (st && rc == BP_OK && step != SQLITE_DONE) {
        rc = step_err(&o, st, step, "list teams", err);
    } else if (st) {
        sqlite3_reset(st);
    }
    rc = op_end(&o, rc, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out_teams = arr;
    return BP_OK;
}

/* ---- seasons and bookmakers ------------------------------------------------------------------ */

static const char SQL_SEASON_INSERT[] =
    "INSERT INTO seasons (league_id, start_year, label) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (league_id, start_year) DO NOTHING";
static const char SQL_SEASON_GET[] =
    "SELECT id FROM seasons WHERE league_id = ?1 AND start_year = ?2";

static int season_id(op *o, int64_t league_id, int32_t start_year, int64_t *out, bp_error *err)
{
    char key[64], label[16];
    size_t len = key_of(key, sizeof key, 's', league_id, NULL, NULL);
    int rc = BP_OK, step;
    sqlite3_stmt *st;
    len += (size_t)snprintf(key + len, sizeof key - len, "%d", (int)start_year);
    if (cache_get(o, key, len, out)) {
        return BP_OK;
    }
    st = op_stmt(o, SQL_SEASON_INSERT, &rc, err);
    if (!st) {
        return rc;
    }
    store_season_label(start_year, label, sizeof label);
    sqlite3_bind_int64(st, 1, league_id);
    sqlite3_bind_int(st, 2, start_year);
    bind_text(st, 3, label);
    step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        return step_err(o, st, step, "create season", err);
    }
    sqlite3_reset(st);
    st = op_stmt(o, SQL_SEASON_GET, &rc, err);
    if (!st) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, league_id);
    sqlite3_bind_int(st, 2, start_year);
    step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        return step_err(o, st, step, "read season", err);
    }
    *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    cache_put(o, key, len, *out);
    return BP_OK;
}

static const char SQL_BOOK_INSERT[] =
    "INSERT INTO bookmakers (key) VALUES (?1) ON CONFLICT (key) DO NOTHING";
static const char SQL_BOOK_GET[] = "SELECT id FROM bookmakers WHERE key = ?1";

static bool valid_book_key(const char *k)
{
    size_t n = 0;
    for (const char *p = k; *p; p++, n++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return false;
        }
    }
    return n > 0 && n <= 64;
}

static int bookmaker_id(op *o, const char *bookmaker, int64_t *out, bp_error *err)
{
    char key[80];
    size_t len;
    int rc = BP_OK, step;
    sqlite3_stmt *st;
    if (!bookmaker || strlen(bookmaker) > 64) {
        return BP_E_INVAL;
    }
    key[0] = 'b';
    len = strlen(bookmaker);
    memcpy(key + 1, bookmaker, len);
    len += 1;
    if (cache_get(o, key, len, out)) {
        return BP_OK;
    }
    if (!valid_book_key(bookmaker)) {
        return BP_E_INVAL;
    }
    st = op_stmt(o, SQL_BOOK_INSERT, &rc, err);
    if (!st) {
        return rc;
    }
    bind_text(st, 1, bookmaker);
    step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        return step_err(o, st, step, "create bookmaker", err);
    }
    sqlite3_reset(st);
    st = op_stmt(o, SQL_BOOK_GET, &rc, err);
    if (!st) {
        return rc;
    }
    bind_text(st, 1, bookmaker);
    step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        return step_err(o, st, step, "read bookmaker", err);
    }
    *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    cache_put(o, key, len, *out);
    return BP_OK;
}

/* ============================================================================================
 * 2. Upserts: matches
 * ========================================================================================== */

/* ?1 league ?2 season_id ?3 home ?4 away ?5 kickoff ?6 exact ?7 status|NULL ?8 elapsed
 * ?9 hg ?10 ag ?11 hthg ?12 htag ?13 referee ?14 stats (JSON text) ?15 source ?16 now */
#define MATCH_NEW_KICKOFF                                                                          \
    "CASE WHEN ?6 >= matches.kickoff_exact THEN ?5 ELSE matches.kickoff_ms END"
#define MATCH_NEW_STATS                                                                            \
    "CASE WHEN ?14 IS NULL THEN matches.stats WHEN matches.stats IS NULL THEN json(?14) "          \
    "ELSE json_patch(matches.stats, ?14) END"
static const char SQL_MATCH_UPSERT[] =
    "INSERT INTO matches (league_id, season_id, home_team_id, away_team_id, kickoff_ms, "
    "kickoff_exact, status, elapsed, home_goals, away_goals, ht_home_goals, ht_away_goals, "
    "referee, stats, source, updated_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, coalesce(?7, 'scheduled'), ?8, ?9, ?10, ?11, ?12, ?13, "
    "json(?14), ?15, ?16) "
    "ON CONFLICT (season_id, home_team_id, away_team_id) DO UPDATE SET "
    "kickoff_ms = " MATCH_NEW_KICKOFF ", "
    "kickoff_exact = max(matches.kickoff_exact, ?6), "
    "status = coalesce(?7, matches.status), "
    "elapsed = coalesce(?8, matches.elapsed), "
    "home_goals = coalesce(?9, matches.home_goals), "
    "away_goals = coalesce(?10, matches.away_goals), "
    "ht_home_goals = coalesce(?11, matches.ht_home_goals), "
    "ht_away_goals = coalesce(?12, matches.ht_away_goals), "
    "referee = coalesce(?13, matches.referee), "
    "stats = " MATCH_NEW_STATS ", "
    "source = ?15, rev = matches.rev + 1, updated_ms = ?16 "
    "WHERE " MATCH_NEW_KICKOFF " IS NOT matches.kickoff_ms "
    "OR max(matches.kickoff_exact, ?6) IS NOT matches.kickoff_exact "
    "OR coalesce(?7, matches.status) IS NOT matches.status "
    "OR coalesce(?8, matches.elapsed) IS NOT matches.elapsed "
    "OR coalesce(?9, matches.home_goals) IS NOT matches.home_goals "
    "OR coalesce(?10, matches.away_goals) IS NOT matches.away_goals "
    "OR coalesce(?11, matches.ht_home_goals) IS NOT matches.ht_home_goals "
    "OR coalesce(?12, matches.ht_away_goals) IS NOT matches.ht_away_goals "
    "OR coalesce(?13, matches.referee) IS NOT matches.referee "
    "OR " MATCH_NEW_STATS " IS NOT matches.stats "
    "RETURNING id, rev";
static const char SQL_MATCH_GET[] =
    "SELECT id FROM matches WHERE season_id = ?1 AND home_team_id = ?2 AND away_team_id = ?3";
static const char SQL_MATCH_EXT_UPSERT[] =
    "INSERT INTO match_external_ids (source, external_id, match_id) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (source, external_id) DO UPDATE SET match_id = excluded.match_id "
    "WHERE match_external_ids.match_id IS NOT excluded.match_id";

static int check_goals(const char *what, int32_t v, bp_error *err)
{
    if (v < -1 || v > 99) {
        return bp_err(err, BP_E_INVAL, "match: %s %d is out of range (-1 = unknown, 0..99)", what,
                      (int)v);
    }
    return BP_OK;
}

static int check_match(const bp_match_rec *m, bp_error *err)
{
    int rc;
    if (is_blank(m->source)) {
        return bp_err(err, BP_E_INVAL, "match: source is required");
    }
    if (m->league_id <= 0 || m->home_team_id <= 0 || m->away_team_id <= 0) {
        return bp_err(err, BP_E_INVAL,
                      "match: league_id, home_team_id and away_team_id are "
                      "required");
    }
    if (m->home_team_id == m->away_team_id) {
        return bp_err(err, BP_E_INVAL, "match: a team cannot play itself (team %lld)",
                      (long long)m->home_team_id);
    }
    if (m->season < 1850 || m->season > 2200) {
        return bp_err(err, BP_E_INVAL, "match: season %d is not a starting year", (int)m->season);
    }
    if (m->kickoff_ms <= 0) {
        return bp_err(err, BP_E_INVAL, "match: kickoff_ms is required");
    }
    if (m->status < 0 || m->status > BP_MATCH_AWARDED) {
        return bp_err(err, BP_E_INVAL, "match: status %d is not a BP_MATCH_* value",
                      (int)m->status);
    }
    if ((rc = check_goals("home_goals", m->home_goals, err)) != BP_OK ||
        (rc = check_goals("away_goals", m->away_goals, err)) != BP_OK ||
        (rc = check_goals("ht_home_goals", m->ht_home_goals, err)) != BP_OK ||
        (rc = check_goals("ht_away_goals", m->ht_away_goals, err)) != BP_OK) {
        return rc;
    }
    if (m->elapsed < -1 || m->elapsed > 200) {
        return bp_err(err, BP_E_INVAL, "match: elapsed %d is out of range", (int)m->elapsed);
    }
    if (m->stats && !json_is_object(m->stats)) {
        return bp_err(err, BP_E_INVAL, "match: stats must be a JSON object");
    }
    return BP_OK;
}

int store_upsert_match(store *s, bp_store_batch *b, const bp_match_rec *in, int64_t *out_match_id,
                       int32_t *out_outcome, bp_error *err)
{
    bp_match_rec m;
    op o;
    sqlite3_stmt *st;
    char *stats = NULL;
    int64_t season = 0, home_league = 0, away_league = 0, id = 0;
    int32_t outcome = BP_UPSERT_UNCHANGED;
    int rc = rec_copy(&m, sizeof m, in, "match", err), step;

    if (rc != BP_OK || (rc = check_match(&m, err)) != BP_OK) {
        return rc;
    }
    if (m.stats && json_object_size(m.stats) > 0) {
        stats = json_dumps(m.stats, JSON_COMPACT | JSON_SORT_KEYS);
        if (!stats) {
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    rc = op_write(s, b, &o, err);
    if (rc != BP_OK) {
        free(stats);
        return rc;
    }
    rc = team_league(&o, m.home_team_id, &home_league, err);
    if (rc == BP_OK) {
        rc = team_league(&o, m.away_team_id, &away_league, err);
    }
    if (rc == BP_OK && (home_league != m.league_id || away_league != m.league_id)) {
        rc = bp_err(err, BP_E_INVAL,
                    "match: teams %lld and %lld do not both belong to league %lld (teams are per "
                    "league)",
                    (long long)m.home_team_id, (long long)m.away_team_id, (long long)m.league_id);
    }
    if (rc == BP_OK) {
        rc = season_id(&o, m.league_id, m.season, &season, err);
    }
    st = rc == BP_OK ? op_stmt(&o, SQL_MATCH_UPSERT, &rc, err) : NULL;
    if (st) {
        sqlite3_bind_int64(st, 1, m.league_id);
        sqlite3_bind_int64(st, 2, season);
        sqlite3_bind_int64(st, 3, m.home_team_id);
        sqlite3_bind_int64(st, 4, m.away_team_id);
        sqlite3_bind_int64(st, 5, m.kickoff_ms);
        sqlite3_bind_int(st, 6, m.kickoff_exact ? 1 : 0);
        bind_text(st, 7, store_match_status_name(m.status));
        bind_int_or_null(st, 8, m.elapsed, m.elapsed >= 0);
        bind_int_or_null(st, 9, m.home_goals, m.home_goals >= 0);
        bind_int_or_null(st, 10, m.away_goals, m.away_goals >= 0);
        bind_int_or_null(st, 11, m.ht_home_goals, m.ht_home_goals >= 0);
        bind_int_or_null(st, 12, m.ht_away_goals, m.ht_away_goals >= 0);
        bind_text(st, 13, is_blank(m.referee) ? NULL : m.referee);
        bind_text(st, 14, stats);
        bind_text(st, 15, m.source);
        sqlite3_bind_int64(st, 16, o.b->now_ms);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            id = sqlite3_column_int64(st, 0);
            outcome = sqlite3_column_int64(st, 1) == 0 ? BP_UPSERT_INSERTED : BP_UPSERT_UPDATED;
            sqlite3_reset(st);
        } else if (step == SQLITE_DONE) {
            sqlite3_reset(st);
            st = op_stmt(&o, SQL_MATCH_GET, &rc, err);
            if (st) {
                sqlite3_bind_int64(st, 1, season);
                sqlite3_bind_int64(st, 2, m.home_team_id);
                sqlite3_bind_int64(st, 3, m.away_team_id);
                step = sqlite3_step(st);
                if (step == SQLITE_ROW) {
                    id = sqlite3_column_int64(st, 0);
                    sqlite3_reset(st);
                } else {
                    rc = step_err(&o, st, step, "read match", err);
                }
            }
        } else {
            rc = step_err(&o, st, step, "store match", err);
        }
    }
    if (rc == BP_OK && outcome == BP_UPSERT_INSERTED) {
        /* A match this batch created has no stored odds: upsert_odds need not look. */
        (void)map_put(&o.b->fresh, &id, sizeof id, 1);
    }
    if (rc == BP_OK && !is_blank(m.external_id)) {
        st = op_stmt(&o, SQL_MATCH_EXT_UPSERT, &rc, err);
        if (st) {
            bind_text(st, 1, m.source);
            bind_text(st, 2, m.external_id);
            sqlite3_bind_int64(st, 3, id);
            step = sqlite3_step(st);
            if (step == SQLITE_DONE) {
                if (sqlite3_changes(store_conn_db(o.c)) > 0 && outcome == BP_UPSERT_UNCHANGED) {
                    outcome = BP_UPSERT_UPDATED; /* the match gained an id at this source */
                }
                sqlite3_reset(st);
            } else {
                rc = step_err(&o, st, step, "store match external id", err);
            }
        }
    }
    free(stats);
    rc = op_end(&o, rc, err);
    if (rc == BP_OK) {
        if (out_match_id) {
            *out_match_id = id;
        }
        if (out_outcome) {
            *out_outcome = outcome;
        }
    }
    return rc;
}

static const char SQL_MATCH_BY_EXT[] =
    "SELECT match_id FROM match_external_ids WHERE source = ?2 AND external_id = ?3 AND ?1 = ?1";

int store_find_match(store *s, bp_store_batch *b, const char *source, const char *external_id,
                     int64_t *out_match_id, bp_error *err)
{
    op o;
    int rc;
    if (is_blank(source) || is_blank(external_id)) {
        return bp_err(err, BP_E_INVAL, "find match: source and external id are required");
    }
    rc = op_read(s, b, &o, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = query_id(&o, SQL_MATCH_BY_EXT, 0, source, external_id, out_match_id, "find match", err);
    if (rc == BP_E_NOTFOUND) {
        bp_err(err, BP_E_NOTFOUND, "no match is known to %s as '%s'", source, external_id);
    }
    return op_end(&o, rc, err);
}

static const char SQL_MATCH_BY_TEAMS[] =
    "SELECT id FROM matches WHERE home_team_id = ?1 AND away_team_id = ?2 "
    "AND kickoff_ms BETWEEN ?3 - ?4 AND ?3 + ?4 ORDER BY abs(kickoff_ms - ?3), id LIMIT 1";

int store_find_match_by_teams(store *s, bp_store_batch *b, int64_t home_team_id,
                              int64_t away_team_id, int64_t kickoff_ms, int64_t window_ms,
                              int64_t *out_match_id, bp_error *err)
{
    op o;
    int rc, step;
    sqlite3_stmt *st;
    if (home_team_id <= 0 || away_team_id <= 0 || window_ms < 0) {
        return bp_err(err, BP_E_INVAL, "find match: two teams and a window >= 0 are required");
    }
    rc = op_read(s, b, &o, err);
    if (rc != BP_OK) {
        return rc;
    }
    st = op_stmt(&o, SQL_MATCH_BY_TEAMS, &rc, err);
    if (st) {
        sqlite3_bind_int64(st, 1, home_team_id);
        sqlite3_bind_int64(st, 2, away_team_id);
        sqlite3_bind_int64(st, 3, kickoff_ms);
        sqlite3_bind_int64(st, 4, window_ms);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            *out_match_id = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
        } else if (step == SQLITE_DONE) {
            sqlite3_reset(st);
            rc = bp_err(err, BP_E_NOTFOUND, "no match of team %lld v team %lld near that kick-off",
                        (long long)home_team_id, (long long)away_team_id);
        } else {
            rc = step_err(&o, st, step, "find match", err);
        }
    }
    return op_end(&o, rc, err);
}

/* ============================================================================================
 * 2. Upserts: odds
 * ========================================================================================== */

static const char SQL_ODDS_LOAD[] =
    "SELECT market, closing, bookmaker_id, selection, line, captured_ms, price FROM odds "
    "WHERE match_id = ?1";
static const char SQL_ODDS_INSERT[] =
    "INSERT INTO odds (match_id, market, closing, bookmaker_id, selection, line, captured_ms, "
    "price) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char SQL_ODDS_UPDATE[] =
    "UPDATE odds SET price = ?8 WHERE match_id = ?1 AND market = ?2 AND closing = ?3 AND "
    "bookmaker_id = ?4 AND selection = ?5 AND line = ?6 AND captured_ms = ?7";

/* The quote's identity without its time: (market, closing, bookmaker, selection, line). */
static int cmp_prefix(const odds_row *a, const odds_row *b)
{
    if (a->market != b->market) {
        return a->market < b->market ? -1 : 1;
    }
    if (a->closing != b->closing) {
        return a->closing < b->closing ? -1 : 1;
    }
    if (a->book != b->book) {
        return a->book < b->book ? -1 : 1;
    }
    if (a->selection != b->selection) {
        return a->selection < b->selection ? -1 : 1;
    }
    if (a->line != b->line) {
        return a->line < b->line ? -1 : 1;
    }
    return 0;
}

static int cmp_key(const odds_row *a, const odds_row *b)
{
    int c = cmp_prefix(a, b);
    if (c) {
        return c;
    }
    if (a->captured != b->captured) {
        return a->captured < b->captured ? -1 : 1;
    }
    return 0;
}

static int cmp_row_sort(const void *pa, const void *pb)
{
    const odds_row *a = pa, *b = pb;
    int c = cmp_key(a, b);
    if (c) {
        return c;
    }
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static bool selection_fits(int32_t market, int32_t sel)
{
    switch (market) {
    case BP_MARKET_1X2: return sel == BP_SEL_HOME || sel == BP_SEL_DRAW || sel == BP_SEL_AWAY;
    case BP_MARKET_OU: return sel == BP_SEL_OVER || sel == BP_SEL_UNDER;
    case BP_MARKET_AH: return sel == BP_SEL_HOME || sel == BP_SEL_AWAY;
    default: return false;
    }
}

static int grow(odds_row **arr, size_t *cap, size_t need)
{
    if (need > *cap) {
        size_t ncap = *cap ? *cap : 128;
        while (ncap < need) {
            ncap *= 2;
        }
        odds_row *n = realloc(*arr, ncap * sizeof *n);
        if (!n) {
            return BP_E_NOMEM;
        }
        *arr = n;
        *cap = ncap;
    }
    return BP_OK;
}

static int odds_write(op *o, const char *sql, int64_t match_id, const odds_row *r, bp_error *err)
{
    int rc = BP_OK, step;
    sqlite3_stmt *st = op_stmt(o, sql, &rc, err);
    if (!st) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, match_id);
    sqlite3_bind_int(st, 2, r->market);
    sqlite3_bind_int(st, 3, r->closing);
    sqlite3_bind_int64(st, 4, r->book);
    sqlite3_bind_int(st, 5, r->selection);
    sqlite3_bind_double(st, 6, r->line);
    sqlite3_bind_int64(st, 7, r->captured);
    sqlite3_bind_double(st, 8, r->price);
    step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        return step_err(o, st, step, "store odds", err);
    }
    sqlite3_reset(st);
    return BP_OK;
}

/* Normalise and check the caller's quotes into b->in (sorted). */
static int odds_incoming(op *o, int64_t match_id, const bp_odds_quote *quotes, size_t n,
                         bp_error *err)
{
    bp_store_batch *b = o->b;
    int rc = grow(&b->in, &b->in_cap, n);
    if (rc != BP_OK) {
        return bp_err(err, rc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const bp_odds_quote *q = &quotes[i];
        odds_row *r = &b->in[i];
        if (!selection_fits(q->market, q->selection)) {
            return bp_err(err, BP_E_INVAL,
                          "match %lld quote %zu: selection %d does not belong to market %d",
                          (long long)match_id, i, (int)q->selection, (int)q->market);
        }
        if (!isfinite(q->price) || q->price <= 1.0 || q->price > 100000.0) {
            return bp_err(err, BP_E_INVAL,
                          "match %lld quote %zu (%s): price %g is not a decimal price > 1.0",
                          (long long)match_id, i, q->bookmaker ? q->bookmaker : "?", q->price);
        }
        if (q->market != BP_MARKET_1X2 && (!isfinite(q->line) || fabs(q->line) > 50.0)) {
            return bp_err(err, BP_E_INVAL, "match %lld quote %zu: line %g is not a goal line",
                          (long long)match_id, i, q->line);
        }
        if (q->captured_ms < 0 || (q->closing != 0 && q->closing != 1) || q->reserved0 != 0) {
            return bp_err(err, BP_E_INVAL,
                          "match %lld quote %zu: captured_ms must be >= 0, closing 0 or 1 and "
                          "reserved0 0",
                          (long long)match_id, i);
        }
        rc = bookmaker_id(o, q->bookmaker, &r->book, err);
        if (rc == BP_E_INVAL) {
            return bp_err(err, BP_E_INVAL,
                          "match %lld quote %zu: bookmaker '%s' is not a key ([a-z0-9_]{1,64})",
                          (long long)match_id, i, q->bookmaker ? q->bookmaker : "(null)");
        }
        if (rc != BP_OK) {
            return rc;
        }
        r->market = q->market;
        r->selection = q->selection;
        r->closing = q->closing;
        r->line = q->market == BP_MARKET_1X2 || q->line == 0.0 ? 0.0 : q->line;
        r->price = q->price;
        r->captured = q->captured_ms;
        r->idx = (uint32_t)i;
    }
    if (n > 1) {
        qsort(b->in, n, sizeof *b->in, cmp_row_sort);
    }
    return BP_OK;
}

static int odds_stored(op *o, int64_t match_id, size_t *out_n, bp_error *err)
{
    bp_store_batch *b = o->b;
    size_t n = 0;
    int rc = BP_OK, step;
    sqlite3_stmt *st = op_stmt(o, SQL_ODDS_LOAD, &rc, err);
    if (!st) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, match_id);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow(&b->ex, &b->ex_cap, n + 1) != BP_OK) {
            sqlite3_reset(st);
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        odds_row *r = &b->ex[n++];
        r->market = sqlite3_column_int(st, 0);
        r->closing = sqlite3_column_int(st, 1);
        r->book = sqlite3_column_int64(st, 2);
        r->selection = sqlite3_column_int(st, 3);
        r->line = sqlite3_column_double(st, 4);
        r->captured = sqlite3_column_int64(st, 5);
        r->price = sqlite3_column_double(st, 6);
        r->idx = 0;
    }
    if (step != SQLITE_DONE) {
        return step_err(o, st, step, "read odds", err);
    }
    sqlite3_reset(st);
    if (n > 1) {
        qsort(b->ex, n, sizeof *b->ex, cmp_row_sort);
    }
    *out_n = n;
    return BP_OK;
}

/*
 * The merge. Both sides are sorted by (prefix, captured); walking them together visits every
 * quote's snapshots oldest first, stored and incoming interleaved. For each incoming row:
 *  - a later incoming row with the same key supersedes it (counted unchanged / updated against
 *    it, only the last is written);
 *  - a stored row with the same key: unchanged when the price is equal, else UPDATE;
 *  - a new key: a non-closing snapshot with a known time whose price equals the snapshot just
 *    before it (same quote) adds nothing and is not stored; anything else is INSERTed.
 */
static int odds_merge(op *o, int64_t match_id, size_t n_in, size_t n_ex, bp_store_counts *cnt,
                      bp_error *err)
{
    const odds_row *in = o->b->in, *ex = o->b->ex;
    const odds_row *prev = NULL; /* the newest snapshot so far of the current prefix */
    size_t i = 0, j = 0;
    int rc;
    while (i < n_in) {
        const odds_row *q = &in[i];
        if (j < n_ex && cmp_key(&ex[j], q) < 0) {
            prev = &ex[j++];
            continue;
        }
        if (i + 1 < n_in && cmp_key(q, &in[i + 1]) == 0) {
            /* superseded by a repeat of the same snapshot later in this call */
            if (q->price == in[i + 1].price) {
                cnt->unchanged++;
            } else {
                cnt->updated++;
            }
            i++;
            continue;
        }
        if (j < n_ex && cmp_key(&ex[j], q) == 0) {
            if (ex[j].price == q->price) {
                cnt->unchanged++;
            } else {
                rc = odds_write(o, SQL_ODDS_UPDATE, match_id, q, err);
                if (rc != BP_OK) {
                    return rc;
                }
                cnt->updated++;
            }
            j++;
        } else if (!q->closing && q->captured > 0 && prev && cmp_prefix(prev, q) == 0 &&
                   prev->price == q->price) {
            cnt->unchanged++;
            i++;
            continue; /* prev stays: it is still the newest stored snapshot */
        } else {
            rc = odds_write(o, SQL_ODDS_INSERT, match_id, q, err);
            if (rc != BP_OK) {
                return rc;
            }
            cnt->inserted++;
        }
        prev = q;
        i++;
    }
    return BP_OK;
}

int store_upsert_odds(store *s, bp_store_batch *b, int64_t match_id, const bp_odds_quote *quotes,
                      size_t n, bp_store_counts *counts, bp_error *err)
{
    op o;
    bp_store_counts local = {0};
    size_t n_ex = 0;
    int64_t dummy;
    int rc;
    if (match_id <= 0 || (n > 0 && !quotes)) {
        return bp_err(err, BP_E_INVAL, "odds: a match id and quotes are required");
    }
    if (n == 0) {
        return BP_OK;
    }
    if (n > 1000000) {
        return bp_err(err, BP_E_LIMIT, "odds: %zu quotes for one match is too many", n);
    }
    rc = op_write(s, b, &o, err);
    if (rc != BP_OK) {
        return rc;
    }
    rc = odds_incoming(&o, match_id, quotes, n, err);
    if (rc == BP_OK && !map_get(&o.b->fresh, &match_id, sizeof match_id, &dummy)) {
        static const char sql[] = "SELECT id FROM matches WHERE id = ?1";
        rc = query_id(&o, sql, match_id, NULL, NULL, &dummy, "read match", err);
        if (rc == BP_E_NOTFOUND) {
            rc = bp_err(err, BP_E_NOTFOUND, "odds: no match with id %lld", (long long)match_id);
        }
        if (rc == BP_OK) {
            rc = odds_stored(&o, match_id, &n_ex, err);
        }
    }
    if (rc == BP_OK) {
        rc = odds_merge(&o, match_id, n, n_ex, &local, err);
    }
    rc = op_end(&o, rc, err);
    if (rc == BP_OK && counts) {
        counts->inserted += local.inserted;
        counts->updated += local.updated;
        counts->unchanged += local.unchanged;
    }
    return rc;
}

/* ============================================================================================
 * 2. Upserts: team statistics
 * ========================================================================================== */

#define TS_NEW_DETAIL                                                                              \
    "CASE WHEN ?12 IS NULL THEN team_stats.detail WHEN team_stats.detail IS NULL THEN json(?12) "  \
    "ELSE json_patch(team_stats.detail, ?12) END"
static const char SQL_TEAM_STATS_UPSERT[] =
    "INSERT INTO team_stats (team_id, season_id, source, rank, points, form, played, wins, draws, "
    "losses, goals_for, goals_against, detail, updated_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?13, json(?12), ?14) "
    "ON CONFLICT (team_id, season_id, source) DO UPDATE SET "
    "rank = coalesce(?4, team_stats.rank), points = coalesce(?5, team_stats.points), "
    "form = coalesce(?6, team_stats.form), played = coalesce(?7, team_stats.played), "
    "wins = coalesce(?8, team_stats.wins), draws = coalesce(?9, team_stats.draws), "
    "losses = coalesce(?10, team_stats.losses), goals_for = coalesce(?11, team_stats.goals_for), "
    "goals_against = coalesce(?13, team_stats.goals_against), detail = " TS_NEW_DETAIL ", "
    "rev = team_stats.rev + 1, updated_ms = ?14 "
    "WHERE coalesce(?4, team_stats.rank) IS NOT team_stats.rank "
    "OR coalesce(?5, team_stats.points) IS NOT team_stats.points "
    "OR coalesce(?6, team_stats.form) IS NOT team_stats.form "
    "OR coalesce(?7, team_stats.played) IS NOT team_stats.played "
    "OR coalesce(?8, team_stats.wins) IS NOT team_stats.wins "
    "OR coalesce(?9, team_stats.draws) IS NOT team_stats.draws "
    "OR coalesce(?10, team_stats.losses) IS NOT team_stats.losses "
    "OR coalesce(?11, team_stats.goals_for) IS NOT team_stats.goals_for "
    "OR coalesce(?13, team_stats.goals_against) IS NOT team_stats.goals_against "
    "OR " TS_NEW_DETAIL " IS NOT team_stats.detail "
    "RETURNING rev";

int store_upsert_team_stats(store *s, bp_store_batch *b, const bp_team_stats_rec *in,
                            int32_t *out_outcome, bp_error *err)
{
    bp_team_stats_rec r;
    op o;
    sqlite3_stmt *st;
    char *detail = NULL;
    int64_t league = 0, season = 0;
    int32_t outcome = BP_UPSERT_UNCHANGED;
    int rc = rec_copy(&r, sizeof r, in, "team stats", err), step;
    /* points may be negative (a deduction); -1 is "not given" everywhere */
    const int32_t *ints[] = {&r.rank,   &r.played,    &r.wins,         &r.draws,
                             &r.losses, &r.goals_for, &r.goals_against};

    if (rc != BP_OK) {
        return rc;
    }
    if (r.team_id <= 0 || is_blank(r.source) || r.season < 1850 || r.season > 2200) {
        return bp_err(err, BP_E_INVAL, "team stats: team_id, source and season are required");
    }
    for (size_t i = 0; i < BP_ARRAY_LEN(ints); i++) {
        if (*ints[i] < -1 || *ints[i] > 100000) {
            return bp_err(err, BP_E_INVAL, "team stats of team %lld: a count is out of range (%d)",
                          (long long)r.team_id, (int)*ints[i]);
        }
    }
    if (r.detail && !json_is_object(r.detail)) {
        return bp_err(err, BP_E_INVAL, "team stats: detail must be a JSON object");
    }
    if (r.detail && json_object_size(r.detail) > 0) {
        detail = json_dumps(r.detail, JSON_COMPACT | JSON_SORT_KEYS);
        if (!detail) {
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    rc = op_write(s, b, &o, err);
    if (rc != BP_OK) {
        free(detail);
        return rc;
    }
    rc = team_league(&o, r.team_id, &league, err);
    if (rc == BP_OK) {
        rc = season_id(&o, league, r.season, &season, err);
    }
    st = rc == BP_OK ? op_stmt(&o, SQL_TEAM_STATS_UPSERT, &rc, err) : NULL;
    if (st) {
        sqlite3_bind_int64(st, 1, r.team_id);
        sqlite3_bind_int64(st, 2, season);
        bind_text(st, 3, r.source);
        bind_int_or_null(st, 4, r.rank, r.rank >= 0);
        bind_int_or_null(st, 5, r.points, r.points != -1);
        bind_text(st, 6, is_blank(r.form) ? NULL : r.form);
        bind_int_or_null(st, 7, r.played, r.played >= 0);
        bind_int_or_null(st, 8, r.wins, r.wins >= 0);
        bind_int_or_null(st, 9, r.draws, r.draws >= 0);
        bind_int_or_null(st, 10, r.losses, r.losses >= 0);
        bind_int_or_null(st, 11, r.goals_for, r.goals_for >= 0);
        bind_text(st, 12, detail);
        bind_int_or_null(st, 13, r.goals_against, r.goals_against >= 0);
        sqlite3_bind_int64(st, 14, o.b->now_ms);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            outcome = sqlite3_column_int64(st, 0) == 0 ? BP_UPSERT_INSERTED : BP_UPSERT_UPDATED;
            sqlite3_reset(st);
        } else if (step == SQLITE_DONE) {
            sqlite3_reset(st);
        } else {
            rc = step_err(&o, st, step, "store team stats", err);
        }
    }
    free(detail);
    rc = op_end(&o, rc, err);
    if (rc == BP_OK && out_outcome) {
        *out_outcome = outcome;
    }
    return rc;
}

/* ============================================================================================
 * 3. Reads
 * ========================================================================================== */

#define MATCH_COLUMNS                                                                              \
    "SELECT m.id, l.code, s.label, m.kickoff_ms, m.kickoff_exact, m.status, m.elapsed, "           \
    "m.home_team_id, th.name, m.away_team_id, ta.name, m.home_goals, m.away_goals, "               \
    "m.ht_home_goals, m.ht_away_goals, m.referee, m.stats, "                                       \
    "(SELECT json_group_object(x.source, x.external_id) FROM match_external_ids x "                \
    " WHERE x.match_id = m.id) "                                                                   \
    "FROM matches m JOIN leagues l ON l.id = m.league_id JOIN seasons s ON s.id = m.season_id "    \
    "JOIN teams th ON th.id = m.home_team_id JOIN teams ta ON ta.id = m.away_team_id "
#define MATCH_FILTER                                                                               \
    "WHERE (?1 = 0 OR m.league_id = ?1) AND (?2 = 0 OR s.start_year = ?2) "                        \
    "AND (?3 = 0 OR m.home_team_id = ?3 OR m.away_team_id = ?3) "                                  \
    "AND (?4 = 0 OR m.kickoff_ms >= ?4) AND (?5 = 0 OR m.kickoff_ms < ?5) "                        \
    "AND (?6 IS NULL OR m.status = ?6) AND (?9 = 0 OR m.id = ?9) "
static const char SQL_MATCH_LIST_ASC[] =
    MATCH_COLUMNS MATCH_FILTER "ORDER BY m.kickoff_ms, m.id LIMIT ?7";
static const char SQL_MATCH_LIST_DESC[] =
    MATCH_COLUMNS MATCH_FILTER "ORDER BY m.kickoff_ms DESC, m.id DESC LIMIT ?7";

static int query_copy(const bp_match_query *q, bp_match_query *out, bp_error *err)
{
    if (!q) {
        memset(out, 0, sizeof *out);
        return BP_OK;
    }
    int rc = rec_copy(out, sizeof *out, q, "match query", err);
    if (rc == BP_OK && (out->status < 0 || out->status > BP_MATCH_AWARDED || out->limit < 0)) {
        rc = bp_err(err, BP_E_INVAL, "match query: bad status or limit");
    }
    return rc;
}

static void bind_query(sqlite3_stmt *st, const bp_match_query *q)
{
    sqlite3_bind_int64(st, 1, q->league_id);
    sqlite3_bind_int(st, 2, q->season);
    sqlite3_bind_int64(st, 3, q->team_id);
    sqlite3_bind_int64(st, 4, q->from_ms);
    sqlite3_bind_int64(st, 5, q->to_ms);
    bind_text(st, 6, store_match_status_name(q->status));
    sqlite3_bind_int(st, 7, q->limit > 0 ? q->limit : -1);
    sqlite3_bind_int64(st, 9, q->match_id);
}

static json_t *match_json(sqlite3_stmt *st)
{
    json_t *m = json_object();
    char iso[40];
    if (!m) {
        return NULL;
    }
    util_format_iso8601(sqlite3_column_int64(st, 3), iso, sizeof iso);
    json_object_set_new(m, "id", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(m, "league", column_json_text(st, 1));
    json_object_set_new(m, "season", column_json_text(st, 2));
    json_object_set_new(m, "kickoff", json_string(iso));
    json_object_set_new(m, "kickoff_ms", json_integer(sqlite3_column_int64(st, 3)));
    json_object_set_new(m, "kickoff_exact", json_boolean(sqlite3_column_int(st, 4)));
    json_object_set_new(m, "status", column_json_text(st, 5));
    json_object_set_new(m, "elapsed", column_json_int(st, 6));
    json_object_set_new(m, "home",
                        json_pack("{s:I, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 7),
                                  "name", column_json_text(st, 8)));
    json_object_set_new(m, "away",
                        json_pack("{s:I, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 9),
                                  "name", column_json_text(st, 10)));
    json_object_set_new(m, "home_goals", column_json_int(st, 11));
    json_object_set_new(m, "away_goals", column_json_int(st, 12));
    json_object_set_new(m, "ht_home_goals", column_json_int(st, 13));
    json_object_set_new(m, "ht_away_goals", column_json_int(st, 14));
    json_object_set_new(m, "referee", column_json_text(st, 15));
    json_object_set_new(m, "stats", column_json_doc(st, 16));
    json_t *ext = column_json_doc(st, 17);
    json_object_set_new(m, "external_ids", json_is_object(ext) ? ext : json_object());
    if (!json_is_object(ext)) {
        json_decref(ext);
    }
    return m;
}

int store_list_matches(store *s, const bp_match_query *qin, json_t **out_matches, bp_error *err)
{
    bp_match_query q;
    op o;
    sqlite3_stmt *st;
    json_t *arr;
    int rc = query_copy(qin, &q, err), step = SQLITE_DONE;
    *out_matches = NULL;
    if (rc != BP_OK) {
        return rc;
    }
    arr = json_array();
    if (!arr) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = op_read(s, NULL, &o, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    st = op_stmt(&o, q.descending ? SQL_MATCH_LIST_DESC : SQL_MATCH_LIST_ASC, &rc, err);
    if (st) {
        bind_query(st, &q);
    }
    while (st && (step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *m = match_json(st);
        if (!m) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        json_array_append_new(arr, m);
    }
    if (st && rc == BP_OK && step != SQLITE_DONE) {
        rc = step_err(&o, st, step, "list matches", err);
    } else if (st) {
        sqlite3_reset(st);
    }
    rc = op_end(&o, rc, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out_matches = arr;
    return BP_OK;
}

/* Latest: per (market, bookmaker, selection, line) the row with the greatest captured_ms, a
 * closing row winning a tie (SQLite takes the bare columns from the max() row). */
#define ODDS_COLUMNS                                                                               \
    "SELECT b.key, o.market, o.selection, o.line, o.price, o.captured_ms, o.closing "              \
    "FROM odds o JOIN bookmakers b ON b.id = o.bookmaker_id "                                      \
    "WHERE o.match_id = ?1 AND (?2 < 0 OR o.market = ?2) "
static const char SQL_ODDS_LATEST[] =
    "SELECT key, market, selection, line, price, captured_ms, closing FROM ("
    "SELECT b.key, o.market, o.selection, o.line, o.price, o.captured_ms, o.closing, "
    "max(o.captured_ms * 2 + o.closing) FROM odds o JOIN bookmakers b ON b.id = o.bookmaker_id "
    "WHERE o.match_id = ?1 AND (?2 < 0 OR o.market = ?2) "
    "GROUP BY o.market, o.bookmaker_id, o.selection, o.line) "
    "ORDER BY market, key, selection, line";
static const char SQL_ODDS_CLOSING[] =
    "SELECT key, market, selection, line, price, captured_ms, closing FROM ("
    "SELECT b.key, o.market, o.selection, o.line, o.price, o.captured_ms, o.closing, "
    "max(o.captured_ms) FROM odds o JOIN bookmakers b ON b.id = o.bookmaker_id "
    "WHERE o.match_id = ?1 AND (?2 < 0 OR o.market = ?2) AND o.closing = 1 "
    "GROUP BY o.market, o.bookmaker_id, o.selection, o.line) "
    "ORDER BY market, key, selection, line";
static const char SQL_ODDS_ALL[] =
    ODDS_COLUMNS "ORDER BY o.market, b.key, o.selection, o.line, o.captured_ms, o.closing";

static const char *const market_names[] = {"1x2", "ou", "ah"};
static const char *const selection_names[] = {"home", "draw", "away", "over", "under"};

int store_get_odds(store *s, int64_t match_id, int32_t market, int32_t which, json_t **out_quotes,
                   bp_error *err)
{
    const char *sql = which == BP_ODDS_LATEST    ? SQL_ODDS_LATEST
                      : which == BP_ODDS_CLOSING ? SQL_ODDS_CLOSING
                      : which == BP_ODDS_ALL     ? SQL_ODDS_ALL
                                                 : NULL;
    op o;
    sqlite3_stmt *st;
    json_t *arr;
    int rc, step = SQLITE_DONE;
    *out_quotes = NULL;
    if (!sql) {
        return bp_err(err, BP_E_INVAL, "odds: which must be BP_ODDS_LATEST, _CLOSING or _ALL");
    }
    if (market > BP_MARKET_AH) {
        return bp_err(err, BP_E_INVAL, "odds: unknown market %d", (int)market);
    }
    arr = json_array();
    if (!arr) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = op_read(s, NULL, &o, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    st = op_stmt(&o, sql, &rc, err);
    if (st) {
        sqlite3_bind_int64(st, 1, match_id);
        sqlite3_bind_int(st, 2, market < 0 ? -1 : market);
    }
    while (st && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int mk = sqlite3_column_int(st, 1), sel = sqlite3_column_int(st, 2);
        int64_t cap = sqlite3_column_int64(st, 5);
        json_t *q =
            json_pack("{s:o, s:s, s:s, s:o, s:f, s:o, s:I, s:b}", "bookmaker",
                      column_json_text(st, 0), "market", mk >= 0 && mk < 3 ? market_names[mk] : "?",
                      "selection", sel >= 0 && sel < 5 ? selection_names[sel] : "?", "line",
                      mk == BP_MARKET_1X2 ? json_null() : json_real(sqlite3_column_double(st, 3)),
                      "price", sqlite3_column_double(st, 4), "captured_at", iso_or_null(cap),
                      "captured_ms", (json_int_t)cap, "closing", sqlite3_column_int(st, 6));
        if (!q) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        json_array_append_new(arr, q);
    }
    if (st && rc == BP_OK && step != SQLITE_DONE) {
        rc = step_err(&o, st, step, "read odds", err);
    } else if (st) {
        sqlite3_reset(st);
    }
    rc = op_end(&o, rc, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out_quotes = arr;
    return BP_OK;
}

static const char SQL_TEAM_STATS_GET[] =
    "SELECT s.start_year, s.label, t.source, t.rank, t.points, t.form, t.played, t.wins, "
    "t.draws, t.losses, t.goals_for, t.goals_against, t.detail, t.updated_ms "
    "FROM team_stats t JOIN seasons s ON s.id = t.season_id "
    "WHERE t.team_id = ?1 AND (?2 = 0 OR s.start_year = ?2) ORDER BY s.start_year DESC, t.source";

int store_get_team_stats(store *s, int64_t team_id, int32_t season, json_t **out_stats,
                         bp_error *err)
{
    op o;
    sqlite3_stmt *st;
    json_t *arr = json_array();
    int rc, step = SQLITE_DONE;
    *out_stats = NULL;
    if (!arr) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    rc = op_read(s, NULL, &o, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    st = op_stmt(&o, SQL_TEAM_STATS_GET, &rc, err);
    if (st) {
        sqlite3_bind_int64(st, 1, team_id);
        sqlite3_bind_int(st, 2, season);
    }
    while (st && (step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *r =
            json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "season",
                      column_json_text(st, 1), "source", column_json_text(st, 2), "rank",
                      column_json_int(st, 3), "points", column_json_int(st, 4), "form",
                      column_json_text(st, 5), "played", column_json_int(st, 6), "wins",
                      column_json_int(st, 7), "draws", column_json_int(st, 8), "losses",
                      column_json_int(st, 9), "goals_for", column_json_int(st, 10), "goals_against",
                      column_json_int(st, 11), "detail", column_json_doc(st, 12), "updated_at",
                      iso_or_null(sqlite3_column_int64(st, 13)));
        if (!r) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        json_array_append_new(arr, r);
    }
    if (st && rc == BP_OK && step != SQLITE_DONE) {
        rc = step_err(&o, st, step, "read team stats", err);
    } else if (st) {
        sqlite3_reset(st);
    }
    rc = op_end(&o, rc, err);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out_stats = arr;
    return BP_OK;
}

/* The 1X2 price of one selection: the bookmaker's closing price, else its latest. */
#define RESULT_PRICE(sel)                                                                          \
    "(SELECT o.price FROM odds o WHERE o.match_id = m.id AND o.market = 0 AND o.bookmaker_id = "   \
    "?8 AND o.selection = " #sel " ORDER BY o.closing DESC, o.captured_ms DESC LIMIT 1)"
static const char SQL_MATCH_RESULTS[] =
    "SELECT m.id, m.kickoff_ms, m.home_team_id, m.away_team_id, m.home_goals, "
    "m.away_goals, " RESULT_PRICE(0) ", " RESULT_PRICE(1) ", " RESULT_PRICE(
        2) " "
           "FROM matches m JOIN seasons s ON s.id = m.season_id " MATCH_FILTER
           "AND m.status = 'finished' AND m.home_goals IS NOT NULL AND m.away_goals IS NOT NULL "
           "ORDER BY m.kickoff_ms, m.id LIMIT ?7";

int store_match_results(store *s, const bp_match_query *qin, const char *bookmaker,
                        bp_match_result **out_rows, size_t *out_n, bp_error *err)
{
    bp_match_query q;
    op o;
    sqlite3_stmt *st;
    bp_match_result *rows = NULL;
    size_t n = 0, cap = 0;
    int64_t book = -1;
    int rc = query_copy(qin, &q, err), step = SQLITE_DONE;
    *out_rows = NULL;
    *out_n = 0;
    if (rc != BP_OK) {
        return rc;
    }
    q.status = 0; /* results are finished matches, whatever the query says */
    rc = op_read(s, NULL, &o, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (bookmaker) {
        static const char sql[] = "SELECT id FROM bookmakers WHERE key = ?2 AND ?1 = ?1";
        rc = query_id(&o, sql, 0, bookmaker, NULL, &book, "read bookmaker", err);
        if (rc == BP_E_NOTFOUND) {
            book = -1; /* a bookmaker we have no prices of: odds stay 0 */
            rc = BP_OK;
        }
    }
    st = rc == BP_OK ? op_stmt(&o, SQL_MATCH_RESULTS, &rc, err) : NULL;
    if (st) {
        bind_query(st, &q);
        sqlite3_bind_int64(st, 8, book);
    }
    while (st && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 512;
            bp_match_result *nr = realloc(rows, ncap * sizeof *nr);
            if (!nr) {
                rc = bp_err(err, BP_E_NOMEM, "out of memory");
                break;
            }
            rows = nr;
            cap = ncap;
        }
        bp_match_result *r = &rows[n++];
        r->match_id = sqlite3_column_int64(st, 0);
        r->kickoff_ms = sqlite3_column_int64(st, 1);
        r->home_team = sqlite3_column_int64(st, 2);
        r->away_team = sqlite3_column_int64(st, 3);
        r->home_goals = sqlite3_column_int(st, 4);
        r->away_goals = sqlite3_column_int(st, 5);
        r->odds_home = sqlite3_column_double(st, 6); /* NULL reads as 0.0 */
        r->odds_draw = sqlite3_column_double(st, 7);
        r->odds_away = sqlite3_column_double(st, 8);
    }
    if (st && rc == BP_OK && step != SQLITE_DONE) {
        rc = step_err(&o, st, step, "read results", err);
    } else if (st) {
        sqlite3_reset(st);
    }
    rc = op_end(&o, rc, err);
    if (rc != BP_OK || n == 0) {
        free(rows);
        return rc;
    }
    *out_rows = rows;
    *out_n = n;
    return BP_OK;
}

void store_free_results(bp_match_result *rows)
{
    free(rows);
}
