/*
 * bpm.c - the model kit: parameters, versioned state, team index, match-set checks, RNG.
 */
#include "bpm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters -------------------------------------------------------------------------- */

int bpm_params_check_lists(const char *model, const json_t *params, const char *const *const *lists,
                           size_t n_lists, bp_error *err)
{
    if (params == NULL || json_is_null(params)) {
        return BP_OK;
    }
    if (!json_is_object(params)) {
        return bp_err(err, BP_E_INVAL, "%s: params must be a JSON object", model);
    }
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)(uintptr_t)params, key, value)
    {
        (void)value;
        bool known = false;
        for (size_t l = 0; l < n_lists && !known; l++) {
            for (size_t i = 0; lists[l][i] != NULL && !known; i++) {
                known = strcmp(lists[l][i], key) == 0;
            }
        }
        if (!known) {
            char list[384] = "";
            size_t used = 0;
            for (size_t l = 0; l < n_lists; l++) {
                for (size_t i = 0; lists[l][i] != NULL && used < sizeof list; i++) {
                    int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "",
                                     lists[l][i]);
                    if (w < 0) {
                        break;
                    }
                    used += (size_t)w;
                }
            }
            return bp_err(err, BP_E_INVAL, "%s: unknown parameter '%s' (known: %s)", model, key,
                          list[0] ? list : "none");
        }
    }
    return BP_OK;
}

int bpm_params_check(const char *model, const json_t *params, const char *const *allowed,
                     bp_error *err)
{
    return bpm_params_check_lists(model, params, &allowed, 1, err);
}

static const json_t *param_get(const json_t *params, const char *key)
{
    if (params == NULL || !json_is_object(params)) {
        return NULL;
    }
    const json_t *v = json_object_get(params, key);
    return json_is_null(v) ? NULL : v;
}

int bpm_param_double(const char *model, const json_t *params, const char *key, double def,
                     double min, double max, double *out, bp_error *err)
{
    const json_t *v = param_get(params, key);
    if (v == NULL) {
        *out = def;
        return BP_OK;
    }
    if (!json_is_number(v)) {
        return bp_err(err, BP_E_INVAL, "%s: params.%s: expected a number", model, key);
    }
    double x = json_number_value(v);
    if (!isfinite(x) || x < min || x > max) {
        return bp_err(err, BP_E_INVAL, "%s: params.%s: %g is outside [%g, %g]", model, key, x, min,
                      max);
    }
    *out = x;
    return BP_OK;
}

int bpm_param_int(const char *model, const json_t *params, const char *key, int64_t def,
                  int64_t min, int64_t max, int64_t *out, bp_error *err)
{
    const json_t *v = param_get(params, key);
    if (v == NULL) {
        *out = def;
        return BP_OK;
    }
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v) && isfinite(json_real_value(v)) &&
               floor(json_real_value(v)) == json_real_value(v) && fabs(json_real_value(v)) < 9e15) {
        x = (int64_t)json_real_value(v);
    } else {
        return bp_err(err, BP_E_INVAL, "%s: params.%s: expected an integer", model, key);
    }
    if (x < min || x > max) {
        return bp_err(err, BP_E_INVAL, "%s: params.%s: %lld is outside [%lld, %lld]", model, key,
                      (long long)x, (long long)min, (long long)max);
    }
    *out = x;
    return BP_OK;
}

int bpm_param_bool(const char *model, const json_t *params, const char *key, bool def, bool *out,
                   bp_error *err)
{
    const json_t *v = param_get(params, key);
    if (v == NULL) {
        *out = def;
        return BP_OK;
    }
    if (!json_is_boolean(v)) {
        return bp_err(err, BP_E_INVAL, "%s: params.%s: expected true or false", model, key);
    }
    *out = json_is_true(v);
    return BP_OK;
}

/* ---- versioned state ---------------------------------------------------------------------- */

json_t *bpm_state_new(const char *model, int version)
{
    return json_pack("{s:s, s:i}", "model", model, "state_version", version);
}

int bpm_state_check(const char *model, int version, const json_t *state, bp_error *err)
{
    if (!json_is_object(state)) {
        return bp_err(err, BP_E_INVAL, "%s: saved state must be a JSON object", model);
    }
    const json_t *name = json_object_get(state, "model");
    if (!json_is_string(name) || strcmp(json_string_value(name), model) != 0) {
        return bp_err(err, BP_E_INVAL, "%s: saved state belongs to model '%s', not '%s'", model,
                      json_is_string(name) ? json_string_value(name) : "(missing)", model);
    }
    const json_t *v = json_object_get(state, "state_version");
    if (!json_is_integer(v)) {
        return bp_err(err, BP_E_INVAL, "%s: saved state has no integer state_version", model);
    }
    if (json_integer_value(v) != version) {
        return bp_err(err, BP_E_INVAL,
                      "%s: saved state has state_version %lld; this build reads only version %d "
                      "(refit the model)",
                      model, (long long)json_integer_value(v), version);
    }
    return BP_OK;
}

int bpm_state_set_doubles(json_t *state, const char *key, const double *v, size_t n, bp_error *err)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        return bp_err(err, BP_E_NOMEM, "out of memory saving %s", key);
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            json_decref(arr);
            return bp_err(err, BP_E_INVAL, "cannot save %s[%zu]: value is not finite", key, i);
        }
        if (json_array_append_new(arr, json_real(v[i])) != 0) {
            json_decref(arr);
            return bp_err(err, BP_E_NOMEM, "out of memory saving %s", key);
        }
    }
    if (json_object_set_new(state, key, arr) != 0) {
        return bp_err(err, BP_E_NOMEM, "out of memory saving %s", key);
    }
    return BP_OK;
}

int bpm_state_set_ids(json_t *state, const char *key, const int64_t *v, size_t n, bp_error *err)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        return bp_err(err, BP_E_NOMEM, "out of memory saving %s", key);
    }
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(arr, json_integer((json_int_t)v[i])) != 0) {
            json_decref(arr);
            return bp_err(err, BP_E_NOMEM, "out of memory saving %s", key);
        }
    }
    if (json_object_set_new(state, key, arr) != 0) {
        return bp_err(err, BP_E_NOMEM, "out of memory saving %s", key);
    }
    return BP_OK;
}

int bpm_state_set_double(json_t *state, const char *key, double v, bp_error *err)
{
    if (!isfinite(v)) {
        return bp_err(err, BP_E_INVAL, "cannot save %s: value is not finite", key);
    }
    if (json_object_set_new(state, key, json_real(v)) != 0) {
        return bp_err(err, BP_E_NOMEM, "out of memory saving %s", key);
    }
    return BP_OK;
}

int bpm_state_get_doubles(const char *model, const json_t *state, const char *key, double *out,
                          size_t n, bp_error *err)
{
    const json_t *arr = json_object_get(state, key);
    if (!json_is_array(arr)) {
        return bp_err(err, BP_E_INVAL, "%s: state.%s: expected an array of %zu numbers", model, key,
                      n);
    }
    if (json_array_size(arr) != n) {
        return bp_err(err, BP_E_INVAL, "%s: state.%s: expected %zu numbers, found %zu", model, key,
                      n, json_array_size(arr));
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(arr, i);
        if (!json_is_number(x) || !isfinite(json_number_value(x))) {
            return bp_err(err, BP_E_INVAL, "%s: state.%s[%zu]: expected a finite number", model,
                          key, i);
        }
        out[i] = json_number_value(x);
    }
    return BP_OK;
}

int bpm_state_get_ids(const char *model, const json_t *state, const char *key, int64_t **out_v,
                      size_t *out_n, bp_error *err)
{
    const json_t *arr = json_object_get(state, key);
    if (!json_is_array(arr)) {
        return bp_err(err, BP_E_INVAL, "%s: state.%s: expected an array of integers", model, key);
    }
    size_t n = json_array_size(arr);
    int64_t *v = malloc((n ? n : 1) * sizeof *v);
    if (v == NULL) {
        return bp_err(err, BP_E_NOMEM, "%s: out of memory reading state.%s", model, key);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(arr, i);
        if (!json_is_integer(x)) {
            free(v);
            return bp_err(err, BP_E_INVAL, "%s: state.%s[%zu]: expected an integer", model, key, i);
        }
        v[i] = (int64_t)json_integer_value(x);
    }
    *out_v = v;
    *out_n = n;
    return BP_OK;
}

int bpm_state_get_double(const char *model, const json_t *state, const char *key, double *out,
                         bp_error *err)
{
    const json_t *x = json_object_get(state, key);
    if (!json_is_number(x) || !isfinite(json_number_value(x))) {
        return bp_err(err, BP_E_INVAL, "%s: state.%s: expected a finite number", model, key);
    }
    *out = json_number_value(x);
    return BP_OK;
}

/* ---- team index ---------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int bpm_teams_build(const bp_match_result *matches, size_t n, bpm_teams *out, bp_error *err)
{
    int64_t *ids = malloc((2 * n + 1) * sizeof *ids);
    if (ids == NULL) {
        return bp_err(err, BP_E_NOMEM, "out of memory indexing teams");
    }
    for (size_t i = 0; i < n; i++) {
        ids[2 * i] = matches[i].home_team;
        ids[2 * i + 1] = matches[i].away_team;
    }
    size_t m = 2 * n, k = 0;
    qsort(ids, m, sizeof *ids, cmp_i64);
    for (size_t i = 0; i < m; i++) {
        if (k == 0 || ids[k - 1] != ids[i]) {
            ids[k++] = ids[i];
        }
    }
    out->ids = ids;
    out->n = k;
    return BP_OK;
}

int bpm_teams_take(int64_t *ids, size_t n, bpm_teams *out, bp_error *err)
{
    for (size_t i = 1; i < n; i++) {
        if (ids[i] <= ids[i - 1]) {
            return bp_err(err, BP_E_INVAL, "team ids must be sorted and distinct (index %zu)", i);
        }
    }
    out->ids = ids;
    out->n = n;
    return BP_OK;
}

long bpm_teams_find(const bpm_teams *t, int64_t id)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->ids[mid] < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < t->n && t->ids[lo] == id ? (long)lo : -1;
}

void bpm_teams_free(bpm_teams *t)
{
    free(t->ids);
    t->ids = NULL;
    t->n = 0;
}

int bpm_state_set_team_arrays(json_t *state, const bpm_teams *teams, const char *const *keys,
                              double *const *arrays, size_t n_keys, bp_error *err)
{
    int rc = bpm_state_set_ids(state, "teams", teams->ids, teams->n, err);
    for (size_t k = 0; rc == BP_OK && k < n_keys; k++) {
        rc = bpm_state_set_doubles(state, keys[k], arrays[k], teams->n, err);
    }
    return rc;
}

int bpm_state_get_team_arrays(const char *model, const json_t *state, const char *const *keys,
                              size_t n_keys, size_t min_teams, bpm_teams *out_teams,
                              double **out_arrays, bp_error *err)
{
    int64_t *ids = NULL;
    size_t n = 0;
    bpm_teams teams = {NULL, 0};
    int rc = bpm_state_get_ids(model, state, "teams", &ids, &n, err);
    if (rc != BP_OK) {
        return rc;
    }
    if (n < min_teams) {
        free(ids);
        return bp_err(err, BP_E_INVAL,
                      "%s: state.teams: %zu teams, a fitted model has at least %zu", model, n,
                      min_teams);
    }
    if ((rc = bpm_teams_take(ids, n, &teams, err)) != BP_OK) {
        free(ids);
        bp_err_prefix(err, "%s: state.teams: ", model);
        return rc;
    }
    size_t k = 0;
    for (; k < n_keys; k++) {
        out_arrays[k] = malloc((n ? n : 1) * sizeof(double));
        if (out_arrays[k] == NULL) {
            rc = bp_err(err, BP_E_NOMEM, "%s: out of memory loading state", model);
            break;
        }
        rc = bpm_state_get_doubles(model, state, keys[k], out_arrays[k], n, err);
        if (rc != BP_OK) {
            k++;
            break;
        }
    }
    if (rc != BP_OK) {
        for (size_t j = 0; j < k; j++) {
            free(out_arrays[j]);
            out_arrays[j] = NULL;
        }
        bpm_teams_free(&teams);
        return rc;
    }
    *out_teams = teams;
    return BP_OK;
}

/* ---- match sets ---------------------------------------------------------------------------- */

static bool odds_ok(double o)
{
    return o == 0.0 || (isfinite(o) && o > 1.0);
}

int bpm_match_set_check(const char *model, const bp_match_set *set, size_t min_matches,
                        bp_error *err)
{
    if (set == NULL || set->struct_size < sizeof(bp_match_set)) {
        return bp_err(err, BP_E_INVAL, "%s: match set missing or from an older ABI", model);
    }
    if (set->n_matches > 0 && set->matches == NULL) {
        return bp_err(err, BP_E_INVAL, "%s: match set has %zu matches but no array", model,
                      set->n_matches);
    }
    if (set->n_matches < min_matches) {
        return bp_err(err, BP_E_INVAL, "%s: too few matches to fit: %zu (need at least %zu)", model,
                      set->n_matches, min_matches);
    }
    for (size_t i = 0; i < set->n_matches; i++) {
        const bp_match_result *m = &set->matches[i];
        if (i > 0 && m->kickoff_ms < set->matches[i - 1].kickoff_ms) {
            return bp_err(err, BP_E_INVAL,
                          "%s: match %zu (id %lld) kicks off before the match above it: the set "
                          "must be sorted oldest first",
                          model, i, (long long)m->match_id);
        }
        if (set->as_of_ms != 0 && m->kickoff_ms > set->as_of_ms) {
            return bp_err(err, BP_E_INVAL, "%s: match %zu (id %lld) kicks off after as_of", model,
                          i, (long long)m->match_id);
        }
        if (m->home_goals < 0 || m->home_goals > 99 || m->away_goals < 0 || m->away_goals > 99) {
            return bp_err(err, BP_E_INVAL, "%s: match %zu (id %lld) has goals %d-%d outside 0..99",
                          model, i, (long long)m->match_id, (int)m->home_goals, (int)m->away_goals);
        }
        if (m->home_team == m->away_team) {
            return bp_err(err, BP_E_INVAL, "%s: match %zu (id %lld) has team %lld on both sides",
                          model, i, (long long)m->match_id, (long long)m->home_team);
        }
        if (!odds_ok(m->odds_home) || !odds_ok(m->odds_draw) || !odds_ok(m->odds_away)) {
            return bp_err(err, BP_E_INVAL,
                          "%s: match %zu (id %lld) has odds %g/%g/%g: each must be 0 (unknown) "
                          "or a finite decimal price above 1",
                          model, i, (long long)m->match_id, m->odds_home, m->odds_draw,
                          m->odds_away);
        }
    }
    return BP_OK;
}

int64_t bpm_match_set_as_of(const bp_match_set *set)
{
    if (set->as_of_ms != 0 || set->n_matches == 0) {
        return set->as_of_ms;
    }
    return set->matches[set->n_matches - 1].kickoff_ms;
}

int64_t bpm_day_of(int64_t kickoff_ms)
{
    int64_t d = kickoff_ms / 86400000;
    return kickoff_ms % 86400000 < 0 ? d - 1 : d;
}

size_t bpm_day_end(const bp_match_result *m, size_t n, size_t start)
{
    int64_t day = bpm_day_of(m[start].kickoff_ms);
    size_t end = start + 1;
    while (end < n && bpm_day_of(m[end].kickoff_ms) == day) {
        end++;
    }
    return end;
}

/* ---- deterministic random numbers ---------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void bpm_rng_seed(bpm_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&x);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t bpm_rng_next(bpm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t bpm_rng_below(bpm_rng *r, uint64_t n)
{
    /* Rejection sampling: draw until the value falls below the largest multiple of n. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = bpm_rng_next(r);
    } while (x >= limit);
    return x % n;
}
