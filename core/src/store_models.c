/*
 * store_models.c - fitted models and predictions (see store_models.h).
 */
#include "store_models.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define DEFAULT_KEEP 10

/* ============================================================================================
 * Small helpers
 * ========================================================================================== */

/* Copy a record the plugin filled into a zeroed struct of our size (a plugin built against an
 * older minor has a smaller one; the fields it lacks read as zero, "not given"). */
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

static void bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (s) {
        sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

static void bind_real_or_null(sqlite3_stmt *st, int idx, double v)
{
    if (isfinite(v)) {
        sqlite3_bind_double(st, idx, v);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

static json_t *column_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? json_string((const char *)t) : json_null();
}

static json_t *column_doc(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    json_t *v = t ? json_loads((const char *)t, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *column_int(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL
               ? json_null()
               : json_integer(sqlite3_column_int64(st, col));
}

static json_t *column_real(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? json_null()
                                                       : json_real(sqlite3_column_double(st, col));
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

static json_t *column_iso(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? json_null()
                                                       : iso_or_null(sqlite3_column_int64(st, col));
}

/* A prepared statement on c; on failure *rc is set from err (BP_E_IO when err is NULL). */
static sqlite3_stmt *stmt(store_conn *c, const char *sql, int *rc, bp_error *err)
{
    sqlite3_stmt *st = store_conn_stmt(c, sql, err);
    if (!st) {
        *rc = err && err->code ? err->code : BP_E_IO;
    }
    return st;
}

/* Fill err from a failed step and reset the statement. */
static int step_fail(store_conn *c, sqlite3_stmt *st, int step, const char *what, bp_error *err)
{
    int rc = store_sqlite_err(store_conn_db(c), step, what, err);
    sqlite3_reset(st);
    return rc;
}

/* Run a statement that returns at most one integer. BP_E_NOTFOUND without a row. The caller
 * has bound the parameters. */
static int one_int(store_conn *c, sqlite3_stmt *st, const char *what, int64_t *out, bp_error *err)
{
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return BP_OK;
    }
    if (step == SQLITE_DONE) {
        sqlite3_reset(st);
        return BP_E_NOTFOUND;
    }
    return step_fail(c, st, step, what, err);
}

/* Run a statement that returns nothing. */
static int exec_stmt(store_conn *c, sqlite3_stmt *st, const char *what, bp_error *err)
{
    int step = sqlite3_step(st);
    if (step != SQLITE_DONE && step != SQLITE_ROW) {
        return step_fail(c, st, step, what, err);
    }
    sqlite3_reset(st);
    return BP_OK;
}

/* [a-z0-9_]+, like the registry's names. */
static bool model_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 64) {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) {
            return false;
        }
    }
    return true;
}

/* ============================================================================================
 * Models
 * ========================================================================================== */

static const char SQL_LEAGUE_EXISTS[] = "SELECT id FROM leagues WHERE id = ?1";
static const char SQL_MODEL_ACTIVE_ID[] =
    "SELECT id FROM models WHERE model = ?1 AND league_id = ?2 AND active = 1";
static const char SQL_MODEL_DEACTIVATE[] =
    "UPDATE models SET active = 0 WHERE model = ?1 AND league_id = ?2 AND active = 1";
static const char SQL_MODEL_INSERT[] =
    "INSERT INTO models (model, league_id, params, state, state_version, metrics, train_from_ms, "
    "train_to_ms, n_matches, trained_ms, job_id, active) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
/* Old inactive fits keep their record but not their state. */
static const char SQL_MODEL_PRUNE[] =
    "UPDATE models SET state = NULL WHERE model = ?1 AND league_id = ?2 AND active = 0 AND "
    "state IS NOT NULL AND id NOT IN (SELECT id FROM models WHERE model = ?1 AND league_id = ?2 "
    "ORDER BY trained_ms DESC, id DESC LIMIT ?3)";

/* The JSON text of an optional object; `def` when absent. NULL (with err) when not an object or
 * it cannot be written (a non-finite number cannot be in a json_t, so it is not a concern). */
static char *object_text(const json_t *v, const char *what, const char *def, bp_error *err)
{
    char *s;
    if (!v) {
        s = util_strdup(def);
    } else if (!json_is_object(v)) {
        bp_err(err, BP_E_INVAL, "save model: %s must be a JSON object", what);
        return NULL;
    } else {
        s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    }
    if (!s) {
        bp_err(err, BP_E_NOMEM, "out of memory");
    }
    return s;
}

int store_save_model(store *s, const bp_model_rec *in, int64_t *out_model_id,
                     int64_t *out_replaced_id, bp_error *err)
{
    bp_model_rec r;
    char *params = NULL, *state = NULL, *metrics = NULL;
    store_conn *c = NULL;
    sqlite3_stmt *st;
    int64_t replaced = 0, id = 0, ignored;
    int rc = rec_copy(&r, sizeof r, in, "save model", err);

    if (out_model_id) {
        *out_model_id = 0;
    }
    if (out_replaced_id) {
        *out_replaced_id = 0;
    }
    if (rc != BP_OK) {
        return rc;
    }
    if (!model_name_ok(r.model)) {
        return bp_err(err, BP_E_INVAL,
                      "save model: model type '%s' is not a model name ([a-z0-9_])",
                      r.model ? r.model : "(null)");
    }
    if (!r.state) {
        return bp_err(err, BP_E_INVAL, "save model: %s has no state", r.model);
    }
    if (r.n_matches < 0 || r.keep < 0 || r.league_id <= 0) {
        return bp_err(err, BP_E_INVAL,
                      "save model: %s: league id, n_matches and keep must not "
                      "be negative (and a league is required)",
                      r.model);
    }
    if (!(params = object_text(r.params, "params", "{}", err)) ||
        !(state = object_text(r.state, "state", "{}", err)) ||
        !(metrics = object_text(r.metrics, "metrics", "{}", err))) {
        rc = err && err->code ? err->code : BP_E_INVAL;
        goto fail;
    }

    c = store_conn_acquire(s);
    if (!c) {
        rc = bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
        goto fail;
    }
    rc = store_conn_begin(c, err);
    if (rc != BP_OK) {
        goto fail;
    }
    if ((st = stmt(c, SQL_LEAGUE_EXISTS, &rc, err)) != NULL) {
        sqlite3_bind_int64(st, 1, r.league_id);
        rc = one_int(c, st, "find league", &ignored, err);
        if (rc == BP_E_NOTFOUND) {
            rc = bp_err(err, BP_E_INVAL, "save model: %s: no league with id %lld", r.model,
                        (long long)r.league_id);
        }
    }
    if (rc == BP_OK && r.activate && (st = stmt(c, SQL_MODEL_ACTIVE_ID, &rc, err)) != NULL) {
        sqlite3_bind_text(st, 1, r.model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r.league_id);
        rc = one_int(c, st, "find the active model", &replaced, err);
        if (rc == BP_E_NOTFOUND) {
            replaced = 0;
            rc = BP_OK;
        }
    }
    if (rc == BP_OK && replaced && (st = stmt(c, SQL_MODEL_DEACTIVATE, &rc, err)) != NULL) {
        sqlite3_bind_text(st, 1, r.model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r.league_id);
        rc = exec_stmt(c, st, "deactivate the previous model", err);
    }
    if (rc == BP_OK && (st = stmt(c, SQL_MODEL_INSERT, &rc, err)) != NULL) {
        sqlite3_bind_text(st, 1, r.model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r.league_id);
        sqlite3_bind_text(st, 3, params, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, state, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, r.state_version);
        sqlite3_bind_text(st, 6, metrics, -1, SQLITE_STATIC);
        if (r.train_from_ms) {
            sqlite3_bind_int64(st, 7, r.train_from_ms);
        }
        if (r.train_to_ms) {
            sqlite3_bind_int64(st, 8, r.train_to_ms);
        }
        sqlite3_bind_int64(st, 9, r.n_matches);
        sqlite3_bind_int64(st, 10, r.trained_ms > 0 ? r.trained_ms : util_now_ms());
        bind_text(st, 11, r.job_id);
        sqlite3_bind_int(st, 12, r.activate ? 1 : 0);
        rc = exec_stmt(c, st, "insert model", err);
        id = sqlite3_last_insert_rowid(store_conn_db(c));
    }
    if (rc == BP_OK && (st = stmt(c, SQL_MODEL_PRUNE, &rc, err)) != NULL) {
        sqlite3_bind_text(st, 1, r.model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r.league_id);
        sqlite3_bind_int(st, 3, r.keep > 0 ? r.keep : DEFAULT_KEEP);
        rc = exec_stmt(c, st, "drop old model states", err);
    }
    if (rc == BP_OK) {
        rc = store_conn_commit(c, err);
    } else {
        store_conn_rollback(c);
    }
    if (rc == BP_OK) {
        if (out_model_id) {
            *out_model_id = id;
        }
        if (out_replaced_id) {
            *out_replaced_id = replaced;
        }
    }

fail:
    if (c) {
        store_conn_release(s, c);
    }
    free(params);
    free(state);
    free(metrics);
    return rc;
}

#define MODEL_COLUMNS                                                                              \
    "SELECT m.id, m.model, m.league_id, l.code, m.params, m.state_version, m.metrics, "            \
    "m.train_from_ms, m.train_to_ms, m.n_matches, m.trained_ms, m.job_id, m.active, "              \
    "m.state IS NOT NULL, "
static const char SQL_MODEL_BY_ID[] =
    MODEL_COLUMNS "m.state FROM models m JOIN leagues l ON l.id = m.league_id WHERE m.id = ?1";
static const char SQL_MODEL_ACTIVE[] =
    MODEL_COLUMNS "m.state FROM models m JOIN leagues l ON l.id = m.league_id "
                  "WHERE m.model = ?1 AND m.league_id = ?2 AND m.active = 1";
static const char SQL_MODEL_LIST[] =
    MODEL_COLUMNS "NULL FROM models m JOIN leagues l ON l.id = m.league_id "
                  "WHERE (?1 IS NULL OR m.model = ?1) AND (?2 = 0 OR m.league_id = ?2) "
                  "AND (?3 = 0 OR m.active = 1) ORDER BY m.trained_ms DESC, m.id DESC";

/* One model row; with_state adds "state", else "has_state". */
static json_t *model_json(sqlite3_stmt *st, bool with_state)
{
    json_t *m = json_object();
    if (!m) {
        return NULL;
    }
    json_object_set_new(m, "id", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(m, "model", column_text(st, 1));
    json_object_set_new(m, "league_id", json_integer(sqlite3_column_int64(st, 2)));
    json_object_set_new(m, "league", column_text(st, 3));
    json_object_set_new(m, "params", column_doc(st, 4));
    json_object_set_new(m, "state_version", json_integer(sqlite3_column_int(st, 5)));
    json_object_set_new(m, "metrics", column_doc(st, 6));
    json_object_set_new(m, "train_from", column_iso(st, 7));
    json_object_set_new(m, "train_from_ms", column_int(st, 7));
    json_object_set_new(m, "train_to", column_iso(st, 8));
    json_object_set_new(m, "train_to_ms", column_int(st, 8));
    json_object_set_new(m, "n_matches", json_integer(sqlite3_column_int64(st, 9)));
    json_object_set_new(m, "trained_at", iso_or_null(sqlite3_column_int64(st, 10)));
    json_object_set_new(m, "trained_ms", json_integer(sqlite3_column_int64(st, 10)));
    json_object_set_new(m, "job_id", column_text(st, 11));
    json_object_set_new(m, "active", json_boolean(sqlite3_column_int(st, 12)));
    if (with_state) {
        json_object_set_new(m, "state", column_doc(st, 14));
    } else {
        json_object_set_new(m, "has_state", json_boolean(sqlite3_column_int(st, 13)));
    }
    return m;
}

int store_get_model(store *s, int64_t model_id, const char *model, int64_t league_id,
                    json_t **out_model, bp_error *err)
{
    store_conn *c;
    sqlite3_stmt *st;
    int rc = BP_OK, step;
    *out_model = NULL;
    if (model_id <= 0 && (!model || league_id <= 0)) {
        return bp_err(err, BP_E_INVAL, "get model: give a model id, or a model type and league");
    }
    c = store_conn_acquire(s);
    if (!c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    st = stmt(c, model_id > 0 ? SQL_MODEL_BY_ID : SQL_MODEL_ACTIVE, &rc, err);
    if (st) {
        if (model_id > 0) {
            sqlite3_bind_int64(st, 1, model_id);
        } else {
            sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, league_id);
        }
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            *out_model = model_json(st, true);
            rc = *out_model ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
            sqlite3_reset(st);
        } else if (step == SQLITE_DONE) {
            sqlite3_reset(st);
            rc = model_id > 0 ? bp_err(err, BP_E_NOTFOUND, "no stored model with id %lld",
                                       (long long)model_id)
                              : bp_err(err, BP_E_NOTFOUND,
                                       "no active %s model for league id %lld (train one with "
                                       "ml.train)",
                                       model, (long long)league_id);
        } else {
            rc = step_fail(c, st, step, "read model", err);
        }
    }
    store_conn_release(s, c);
    return rc;
}

int store_list_models(store *s, const char *model, int64_t league_id, int32_t active_only,
                      json_t **out_models, bp_error *err)
{
    store_conn *c;
    sqlite3_stmt *st;
    json_t *arr = json_array();
    int rc = BP_OK, step = SQLITE_DONE;
    *out_models = NULL;
    if (!arr) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    c = store_conn_acquire(s);
    if (!c) {
        json_decref(arr);
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    st = stmt(c, SQL_MODEL_LIST, &rc, err);
    if (st) {
        bind_text(st, 1, model);
        sqlite3_bind_int64(st, 2, league_id);
        sqlite3_bind_int(st, 3, active_only ? 1 : 0);
    }
    while (st && (step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *m = model_json(st, false);
        if (!m) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        json_array_append_new(arr, m);
    }
    if (st && rc == BP_OK && step != SQLITE_DONE) {
        rc = step_fail(c, st, step, "list models", err);
    } else if (st) {
        sqlite3_reset(st);
    }
    store_conn_release(s, c);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out_models = arr;
    return BP_OK;
}

static const char SQL_MODEL_KEY[] =
    "SELECT model, league_id, state IS NOT NULL FROM models WHERE id = ?1";
static const char SQL_MODEL_SET_ACTIVE[] = "UPDATE models SET active = 1 WHERE id = ?1";

int store_activate_model(store *s, int64_t model_id, bp_error *err)
{
    store_conn *c = store_conn_acquire(s);
    sqlite3_stmt *st;
    char model[80] = "";
    int64_t league_id = 0;
    int rc, step;
    if (!c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    rc = store_conn_begin(c, err);
    if (rc == BP_OK && (st = stmt(c, SQL_MODEL_KEY, &rc, err)) != NULL) {
        sqlite3_bind_int64(st, 1, model_id);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            util_strlcpy(model, (const char *)sqlite3_column_text(st, 0), sizeof model);
            league_id = sqlite3_column_int64(st, 1);
            if (!sqlite3_column_int(st, 2)) {
                rc = bp_err(err, BP_E_STATE,
                            "model %lld (%s) no longer has its state (only the newest fits keep "
                            "theirs): train a new one",
                            (long long)model_id, model);
            }
            sqlite3_reset(st);
        } else if (step == SQLITE_DONE) {
            sqlite3_reset(st);
            rc = bp_err(err, BP_E_NOTFOUND, "no stored model with id %lld", (long long)model_id);
        } else {
            rc = step_fail(c, st, step, "read model", err);
        }
    }
    if (rc == BP_OK && (st = stmt(c, SQL_MODEL_DEACTIVATE, &rc, err)) != NULL) {
        sqlite3_bind_text(st, 1, model, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, league_id);
        rc = exec_stmt(c, st, "deactivate the previous model", err);
    }
    if (rc == BP_OK && (st = stmt(c, SQL_MODEL_SET_ACTIVE, &rc, err)) != NULL) {
        sqlite3_bind_int64(st, 1, model_id);
        rc = exec_stmt(c, st, "activate model", err);
    }
    if (rc == BP_OK) {
        rc = store_conn_commit(c, err);
    } else {
        store_conn_rollback(c);
    }
    store_conn_release(s, c);
    return rc;
}

/* ============================================================================================
 * Predictions
 * ========================================================================================== */

static const char SQL_MATCH_EXISTS[] = "SELECT id FROM matches WHERE id = ?1";
static const char SQL_MODEL_EXISTS[] = "SELECT id FROM models WHERE id = ?1";
static const char SQL_PRED_GET[] =
    "SELECT p_home, p_draw, p_away, exp_home_goals, exp_away_goals, markets FROM predictions "
    "WHERE match_id = ?1 AND model_id = ?2";
static const char SQL_PRED_INSERT[] =
    "INSERT INTO predictions (match_id, model_id, p_home, p_draw, p_away, exp_home_goals, "
    "exp_away_goals, markets, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
static const char SQL_PRED_UPDATE[] =
    "UPDATE predictions SET p_home = ?3, p_draw = ?4, p_away = ?5, exp_home_goals = ?6, "
    "exp_away_goals = ?7, markets = ?8, created_ms = ?9 WHERE match_id = ?1 AND model_id = ?2";

static bool prob_ok(double p)
{
    return isfinite(p) && p >= 0.0 && p <= 1.0;
}

static int check_prediction(const bp_prediction_rec *r, size_t i, bp_error *err)
{
    if (r->match_id <= 0 || r->model_id <= 0) {
        return bp_err(err, BP_E_INVAL, "prediction %zu: match id and model id are required", i);
    }
    if (!prob_ok(r->p_home) || !prob_ok(r->p_draw) || !prob_ok(r->p_away) ||
        fabs(r->p_home + r->p_draw + r->p_away - 1.0) > 1e-6) {
        return bp_err(err, BP_E_INVAL,
                      "prediction %zu (match %lld): 1X2 probabilities %g / %g / %g are not "
                      "finite probabilities summing to 1",
                      i, (long long)r->match_id, r->p_home, r->p_draw, r->p_away);
    }
    if ((!isnan(r->exp_home_goals) && !(isfinite(r->exp_home_goals) && r->exp_home_goals >= 0)) ||
        (!isnan(r->exp_away_goals) && !(isfinite(r->exp_away_goals) && r->exp_away_goals >= 0))) {
        return bp_err(err, BP_E_INVAL,
                      "prediction %zu (match %lld): expected goals must be NAN or a finite "
                      "number >= 0",
                      i, (long long)r->match_id);
    }
    if (r->markets && !json_is_object(r->markets)) {
        return bp_err(err, BP_E_INVAL, "prediction %zu (match %lld): markets must be an object", i,
                      (long long)r->match_id);
    }
    return BP_OK;
}

static bool same_real(sqlite3_stmt *st, int col, double v)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        return !isfinite(v);
    }
    return isfinite(v) && sqlite3_column_double(st, col) == v;
}

/* Write one checked prediction: insert, update, or nothing when it is stored as is. */
static int put_one(store_conn *c, const bp_prediction_rec *r, size_t i, int64_t now,
                   int64_t *last_model, bp_store_counts *cnt, bp_error *err)
{
    sqlite3_stmt *st;
    int64_t ignored;
    char *markets = NULL;
    int rc = BP_OK, step;
    bool exists = false, same = false;

    if ((st = stmt(c, SQL_MATCH_EXISTS, &rc, err)) != NULL) {
        sqlite3_bind_int64(st, 1, r->match_id);
        rc = one_int(c, st, "find match", &ignored, err);
        if (rc == BP_E_NOTFOUND) {
            return bp_err(err, BP_E_INVAL, "prediction %zu: no match with id %lld", i,
                          (long long)r->match_id);
        }
    }
    if (rc == BP_OK && r->model_id != *last_model &&
        (st = stmt(c, SQL_MODEL_EXISTS, &rc, err)) != NULL) {
        sqlite3_bind_int64(st, 1, r->model_id);
        rc = one_int(c, st, "find model", &ignored, err);
        if (rc == BP_E_NOTFOUND) {
            return bp_err(err, BP_E_INVAL, "prediction %zu: no stored model with id %lld", i,
                          (long long)r->model_id);
        }
        *last_model = r->model_id;
    }
    if (rc != BP_OK) {
        return rc;
    }
    if (r->markets && !(markets = json_dumps(r->markets, JSON_COMPACT | JSON_SORT_KEYS))) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((st = stmt(c, SQL_PRED_GET, &rc, err)) != NULL) {
        sqlite3_bind_int64(st, 1, r->match_id);
        sqlite3_bind_int64(st, 2, r->model_id);
        step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            const unsigned char *old = sqlite3_column_text(st, 5);
            exists = true;
            same =
                same_real(st, 0, r->p_home) && same_real(st, 1, r->p_draw) &&
                same_real(st, 2, r->p_away) && same_real(st, 3, r->exp_home_goals) &&
                same_real(st, 4, r->exp_away_goals) &&
                ((!old && !markets) || (old && markets && strcmp((const char *)old, markets) == 0));
            sqlite3_reset(st);
        } else if (step == SQLITE_DONE) {
            sqlite3_reset(st);
        } else {
            rc = step_fail(c, st, step, "read prediction", err);
        }
    }
    if (rc == BP_OK && same) {
        cnt->unchanged++;
    } else if (rc == BP_OK &&
               (st = stmt(c, exists ? SQL_PRED_UPDATE : SQL_PRED_INSERT, &rc, err)) != NULL) {
        sqlite3_bind_int64(st, 1, r->match_id);
        sqlite3_bind_int64(st, 2, r->model_id);
        sqlite3_bind_double(st, 3, r->p_home);
        sqlite3_bind_double(st, 4, r->p_draw);
        sqlite3_bind_double(st, 5, r->p_away);
        bind_real_or_null(st, 6, r->exp_home_goals);
        bind_real_or_null(st, 7, r->exp_away_goals);
        bind_text(st, 8, markets);
        sqlite3_bind_int64(st, 9, now);
        rc = exec_stmt(c, st, "write prediction", err);
        if (rc == BP_OK && exists) {
            cnt->updated++;
        } else if (rc == BP_OK) {
            cnt->inserted++;
        }
    }
    free(markets);
    return rc;
}

int store_put_predictions(store *s, const bp_prediction_rec *recs, size_t n,
                          bp_store_counts *counts, bp_error *err)
{
    bp_store_counts local = {0, 0, 0};
    store_conn *c;
    int64_t now = util_now_ms(), last_model = 0;
    int rc = BP_OK;
    if (n == 0) {
        return BP_OK;
    }
    if (!recs) {
        return bp_err(err, BP_E_INVAL, "put predictions: no records");
    }
    for (size_t i = 0; i < n; i++) {
        rc = check_prediction(&recs[i], i, err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    c = store_conn_acquire(s);
    if (!c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    rc = store_conn_begin(c, err);
    for (size_t i = 0; rc == BP_OK && i < n; i++) {
        rc = put_one(c, &recs[i], i, now, &last_model, &local, err);
    }
    if (rc == BP_OK) {
        rc = store_conn_commit(c, err);
    } else {
        store_conn_rollback(c);
    }
    store_conn_release(s, c);
    if (rc == BP_OK && counts) {
        counts->inserted += local.inserted;
        counts->updated += local.updated;
        counts->unchanged += local.unchanged;
    }
    return rc;
}

/* Latest per (match, model type): no prediction of that match by a newer fit (a higher model id)
 * of the same type exists. */
static const char SQL_PRED_LIST[] =
    "SELECT p.match_id, l.code, se.label, m.kickoff_ms, m.status, m.home_team_id, th.name, "
    "m.away_team_id, ta.name, m.home_goals, m.away_goals, md.model, p.model_id, p.p_home, "
    "p.p_draw, p.p_away, p.exp_home_goals, p.exp_away_goals, p.markets, p.created_ms "
    "FROM predictions p JOIN models md ON md.id = p.model_id JOIN matches m ON m.id = p.match_id "
    "JOIN leagues l ON l.id = m.league_id JOIN seasons se ON se.id = m.season_id "
    "JOIN teams th ON th.id = m.home_team_id JOIN teams ta ON ta.id = m.away_team_id "
    "WHERE (?1 = 0 OR p.match_id = ?1) AND (?2 = 0 OR m.league_id = ?2) "
    "AND (?3 = 0 OR p.model_id = ?3) AND (?4 IS NULL OR md.model = ?4) "
    "AND (?5 = 0 OR m.kickoff_ms >= ?5) AND (?6 = 0 OR m.kickoff_ms < ?6) "
    "AND (?7 = 0 OR NOT EXISTS (SELECT 1 FROM predictions p2 JOIN models m2 ON m2.id = p2.model_id "
    "WHERE p2.match_id = p.match_id AND m2.model = md.model AND p2.model_id > p.model_id)) "
    "ORDER BY m.kickoff_ms, m.id, md.model, p.model_id DESC LIMIT ?8";

static json_t *prediction_json(sqlite3_stmt *st)
{
    json_t *p = json_object();
    if (!p) {
        return NULL;
    }
    json_object_set_new(p, "match_id", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(p, "league", column_text(st, 1));
    json_object_set_new(p, "season", column_text(st, 2));
    json_object_set_new(p, "kickoff", iso_or_null(sqlite3_column_int64(st, 3)));
    json_object_set_new(p, "kickoff_ms", json_integer(sqlite3_column_int64(st, 3)));
    json_object_set_new(p, "status", column_text(st, 4));
    json_object_set_new(p, "home",
                        json_pack("{s:I, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 5),
                                  "name", column_text(st, 6)));
    json_object_set_new(p, "away",
                        json_pack("{s:I, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 7),
                                  "name", column_text(st, 8)));
    json_object_set_new(p, "home_goals", column_int(st, 9));
    json_object_set_new(p, "away_goals", column_int(st, 10));
    json_object_set_new(p, "model", column_text(st, 11));
    json_object_set_new(p, "model_id", json_integer(sqlite3_column_int64(st, 12)));
    json_object_set_new(p, "p_home", column_real(st, 13));
    json_object_set_new(p, "p_draw", column_real(st, 14));
    json_object_set_new(p, "p_away", column_real(st, 15));
    json_object_set_new(p, "exp_home_goals", column_real(st, 16));
    json_object_set_new(p, "exp_away_goals", column_real(st, 17));
    json_object_set_new(p, "markets", column_doc(st, 18));
    json_object_set_new(p, "created_at", iso_or_null(sqlite3_column_int64(st, 19)));
    return p;
}

int store_list_predictions(store *s, const bp_prediction_query *qin, json_t **out_predictions,
                           bp_error *err)
{
    bp_prediction_query q;
    store_conn *c;
    sqlite3_stmt *st;
    json_t *arr;
    int rc = BP_OK, step = SQLITE_DONE;
    *out_predictions = NULL;
    if (qin) {
        rc = rec_copy(&q, sizeof q, qin, "prediction query", err);
        if (rc != BP_OK) {
            return rc;
        }
    } else {
        memset(&q, 0, sizeof q);
    }
    if (q.limit < 0) {
        return bp_err(err, BP_E_INVAL, "prediction query: limit must not be negative");
    }
    arr = json_array();
    if (!arr) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    c = store_conn_acquire(s);
    if (!c) {
        json_decref(arr);
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    st = stmt(c, SQL_PRED_LIST, &rc, err);
    if (st) {
        sqlite3_bind_int64(st, 1, q.match_id);
        sqlite3_bind_int64(st, 2, q.league_id);
        sqlite3_bind_int64(st, 3, q.model_id);
        bind_text(st, 4, q.model);
        sqlite3_bind_int64(st, 5, q.from_ms);
        sqlite3_bind_int64(st, 6, q.to_ms);
        sqlite3_bind_int(st, 7, q.latest ? 1 : 0);
        sqlite3_bind_int(st, 8, q.limit > 0 ? q.limit : -1);
    }
    while (st && (step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *p = prediction_json(st);
        if (!p) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        json_array_append_new(arr, p);
    }
    if (st && rc == BP_OK && step != SQLITE_DONE) {
        rc = step_fail(c, st, step, "list predictions", err);
    } else if (st) {
        sqlite3_reset(st);
    }
    store_conn_release(s, c);
    if (rc != BP_OK) {
        json_decref(arr);
        return rc;
    }
    *out_predictions = arr;
    return BP_OK;
}

/* ============================================================================================
 * Bookmaker prices for the evaluation
 * ========================================================================================== */

/* Per match and selection the newest price of the kind asked for (SQLite takes the bare price
 * from the max() row). */
static const char SQL_PRICES[] =
    "SELECT o.match_id, o.selection, o.price, max(o.captured_ms) FROM odds o "
    "JOIN matches m ON m.id = o.match_id "
    "WHERE m.league_id = ?1 AND (?2 = 0 OR m.kickoff_ms >= ?2) AND (?3 = 0 OR m.kickoff_ms < ?3) "
    "AND m.status = 'finished' AND o.market = 0 AND o.closing = ?4 "
    "AND o.bookmaker_id = (SELECT id FROM bookmakers WHERE key = ?5) "
    "GROUP BY o.match_id, o.selection ORDER BY o.match_id, o.selection";

int store_match_prices(store *s, int64_t league_id, int64_t from_ms, int64_t to_ms,
                       const char *bookmaker, int closing, store_price3 **out_rows, size_t *out_n,
                       bp_error *err)
{
    store_conn *c;
    sqlite3_stmt *st;
    store_price3 *rows = NULL, cur = {0, 0, 0, 0};
    size_t n = 0, cap = 0;
    int rc = BP_OK, step = SQLITE_DONE;
    *out_rows = NULL;
    *out_n = 0;
    c = store_conn_acquire(s);
    if (!c) {
        return bp_err(err, BP_E_UNAVAILABLE, "no store connection available");
    }
    st = stmt(c, SQL_PRICES, &rc, err);
    if (st) {
        sqlite3_bind_int64(st, 1, league_id);
        sqlite3_bind_int64(st, 2, from_ms);
        sqlite3_bind_int64(st, 3, to_ms);
        sqlite3_bind_int(st, 4, closing ? 1 : 0);
        bind_text(st, 5, bookmaker);
    }
    /* rows arrive sorted by match: a match is complete when its three prices were seen */
    for (;;) {
        int64_t id = 0;
        step = st ? sqlite3_step(st) : SQLITE_DONE;
        if (step == SQLITE_ROW) {
            id = sqlite3_column_int64(st, 0);
        }
        if (cur.match_id && id != cur.match_id) {
            if (cur.home > 1.0 && cur.draw > 1.0 && cur.away > 1.0) {
                if (n == cap) {
                    size_t ncap = cap ? cap * 2 : 1024;
                    store_price3 *nr = realloc(rows, ncap * sizeof *nr);
                    if (!nr) {
                        rc = bp_err(err, BP_E_NOMEM, "out of memory");
                        break;
                    }
                    rows = nr;
                    cap = ncap;
                }
                rows[n++] = cur;
            }
            memset(&cur, 0, sizeof cur);
        }
        if (step != SQLITE_ROW) {
            break;
        }
        cur.match_id = id;
        switch (sqlite3_column_int(st, 1)) {
        case BP_SEL_HOME: cur.home = sqlite3_column_double(st, 2); break;
        case BP_SEL_DRAW: cur.draw = sqlite3_column_double(st, 2); break;
        case BP_SEL_AWAY: cur.away = sqlite3_column_double(st, 2); break;
        default: break;
        }
    }
    if (st && rc == BP_OK && step != SQLITE_DONE && step != SQLITE_ROW) {
        rc = step_fail(c, st, step, "read prices", err);
    } else if (st) {
        sqlite3_reset(st);
    }
    store_conn_release(s, c);
    if (rc != BP_OK || n == 0) {
        free(rows);
        return rc;
    }
    *out_rows = rows;
    *out_n = n;
    return BP_OK;
}
