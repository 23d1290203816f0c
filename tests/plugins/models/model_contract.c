/*
 * model_contract.c - the checks every model must pass (see model_contract.h).
 */
#include "model_contract.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support.h"

void mc_load_e0(fd_teams *teams, int first, int last, const char *odds_prefix, bp_match_result **m,
                size_t *n)
{
    for (int y = first; y <= last; y++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/data/football-data/E0/%d-%02d.csv",
                 bpt_env("BP_TEST_SOURCE_DIR"), y, (y + 1) % 100);
        bp_error err = {0};
        cr_assert_eq(fd_matches_load(path, odds_prefix, teams, m, n, &err), BP_OK, "%s", err.msg);
    }
}

void *mc_create(const bp_model_type *type, const char *params_json)
{
    json_error_t jerr;
    json_t *params = params_json ? json_loads(params_json, 0, &jerr) : NULL;
    cr_assert(params_json == NULL || params != NULL, "bad test params %s", params_json);
    void *model = NULL;
    bp_error err = {0};
    cr_assert_eq(type->create(NULL, params, &model, &err), BP_OK, "%s: %s", type->name, err.msg);
    cr_assert_not_null(model);
    json_decref(params);
    return model;
}

static void check_params(const bp_model_type *type)
{
    json_t *schema = json_loads(type->params_schema, 0, NULL);
    cr_assert_not_null(schema, "%s: params_schema is not valid JSON", type->name);
    cr_assert(json_is_false(json_object_get(schema, "additionalProperties")),
              "%s: the schema must refuse unknown parameters", type->name);
    const char *key;
    json_t *v;
    size_t n = 0;
    json_object_foreach(json_object_get(schema, "properties"), key, v)
    {
        n++;
        const json_t *def = json_object_get(v, "default");
        if (def == NULL) {
            continue;
        }
        json_t *params = json_pack("{s:O}", key, def);
        void *m = NULL;
        bp_error err = {0};
        cr_assert_eq(type->create(NULL, params, &m, &err), BP_OK,
                     "%s: the schema's default for %s is refused: %s", type->name, key, err.msg);
        type->destroy(m);
        json_decref(params);
    }
    cr_assert_gt(n, 0, "%s: the schema lists no parameter", type->name);
    json_decref(schema);

    json_t *bad = json_pack("{s:i}", "no_such_parameter", 1);
    void *m = NULL;
    bp_error err = {0};
    cr_assert_eq(type->create(NULL, bad, &m, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "no_such_parameter") != NULL, "%s", err.msg);
    json_decref(bad);
}

static void predict_ok(const bp_model_type *type, void *m, int64_t home, int64_t away,
                       bp_prediction *p)
{
    bp_error err = {0};
    cr_assert_eq(type->predict(m, home, away, 0, p, &err), BP_OK, "%s: %s", type->name, err.msg);
    double s = p->p_home + p->p_draw + p->p_away;
    cr_assert(isfinite(s) && fabs(s - 1.0) < 1e-9, "%s: probabilities sum to %.12f", type->name, s);
    cr_assert(p->p_home > 0 && p->p_home < 1 && p->p_draw > 0 && p->p_draw < 1 && p->p_away > 0 &&
                  p->p_away < 1,
              "%s: %g/%g/%g", type->name, p->p_home, p->p_draw, p->p_away);
}

static void same_prediction(const bp_prediction *a, const bp_prediction *b, const char *what)
{
    cr_assert(a->p_home == b->p_home && a->p_draw == b->p_draw && a->p_away == b->p_away,
              "%s: %.17g/%.17g/%.17g != %.17g/%.17g/%.17g", what, a->p_home, a->p_draw, a->p_away,
              b->p_home, b->p_draw, b->p_away);
}

void model_contract_check(const bp_model_type *type, const char *params_json,
                          const bp_match_result *matches, size_t n, int64_t home, int64_t away)
{
    bp_error err = {0};
    cr_assert_eq(type->struct_size, sizeof(bp_model_type));
    cr_assert_gt(type->state_version, 0);
    check_params(type);

    void *m = mc_create(type, params_json);
    bp_prediction p, q;
    json_t *state = NULL;
    cr_assert_eq(type->predict(m, home, away, 0, &p, &err), BP_E_STATE, "%s", type->name);
    cr_assert_eq(type->save(m, &state, &err), BP_E_STATE, "%s", type->name);

    bp_match_set set = {sizeof set, 0, matches, n, 0};
    json_t *metrics = NULL;
    cr_assert_eq(type->fit(m, &set, &metrics, &err), BP_OK, "%s: %s", type->name, err.msg);
    cr_assert(json_is_object(metrics), "%s: fit must report metrics", type->name);
    json_decref(metrics);
    predict_ok(type, m, home, away, &p);

    /* an unknown team */
    cr_assert_eq(type->predict(m, home, 987654321, 0, &q, &err), BP_E_NOTFOUND, "%s", type->name);
    cr_assert(strstr(err.msg, "987654321") != NULL, "%s: %s", type->name, err.msg);

    /* save -> text -> load */
    cr_assert_eq(type->save(m, &state, &err), BP_OK, "%s: %s", type->name, err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(state, "model")), type->name);
    cr_assert_eq(json_integer_value(json_object_get(state, "state_version")), type->state_version);
    char *text = json_dumps(state, JSON_COMPACT);
    cr_assert_not_null(text);
    json_t *back = json_loads(text, 0, NULL);
    void *copy = mc_create(type, params_json);
    cr_assert_eq(type->load(copy, back, &err), BP_OK, "%s: %s", type->name, err.msg);
    predict_ok(type, copy, home, away, &q);
    same_prediction(&p, &q, "a loaded model predicts exactly like the fitted one");

    /* another version is refused and nothing changes */
    json_object_set_new(back, "state_version", json_integer(type->state_version + 1));
    cr_assert_eq(type->load(copy, back, &err), BP_E_INVAL, "%s", type->name);
    char want[64];
    snprintf(want, sizeof want, "state_version %d", type->state_version + 1);
    cr_assert(strstr(err.msg, want) != NULL, "%s: %s", type->name, err.msg);
    predict_ok(type, copy, home, away, &q);
    same_prediction(&p, &q, "a refused load leaves the model as it was");

    /* a failed fit leaves the previous model in place */
    bp_match_result *bad = malloc(n * sizeof *bad);
    memcpy(bad, matches, n * sizeof *bad);
    bad[n / 2].kickoff_ms = bad[0].kickoff_ms - 86400000;
    bp_match_set bad_set = {sizeof bad_set, 0, bad, n, 0};
    cr_assert_eq(type->fit(m, &bad_set, NULL, &err), BP_E_INVAL, "%s", type->name);
    cr_assert(strstr(err.msg, "sorted") != NULL, "%s: %s", type->name, err.msg);
    bp_match_set few = {sizeof few, 0, matches, 5, 0};
    cr_assert_eq(type->fit(m, &few, NULL, &err), BP_E_INVAL, "%s", type->name);
    cr_assert(strstr(err.msg, "too few matches") != NULL, "%s: %s", type->name, err.msg);
    predict_ok(type, m, home, away, &q);
    same_prediction(&p, &q, "a failed fit leaves the model as it was");

    /* non-finite odds anywhere in the set are refused, naming the match */
    const double not_finite[3] = {NAN, INFINITY, -INFINITY};
    for (int field = 0; field < 3; field++) {
        for (int v = 0; v < 3; v++) {
            memcpy(bad, matches, n * sizeof *bad);
            double *odds[3] = {&bad[n / 2].odds_home, &bad[n / 2].odds_draw, &bad[n / 2].odds_away};
            *odds[field] = not_finite[v];
            char where[64];
            snprintf(where, sizeof where, "match %zu (id %lld)", n / 2,
                     (long long)bad[n / 2].match_id);
            cr_assert_eq(type->fit(m, &bad_set, NULL, &err), BP_E_INVAL, "%s: odds %g accepted",
                         type->name, not_finite[v]);
            cr_assert(strstr(err.msg, where) != NULL && strstr(err.msg, "odds") != NULL,
                      "%s: the message should name %s and its odds: %s", type->name, where,
                      err.msg);
            predict_ok(type, m, home, away, &q);
            same_prediction(&p, &q, "a refused fit on non-finite odds leaves the model as it was");
        }
    }

    /* a team with no games in the training set has no forecast: refitted without home's
     * matches, the model keeps nothing of what it knew about home */
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) {
        if (matches[k].home_team != home && matches[k].away_team != home) {
            bad[kept++] = matches[k];
        }
    }
    cr_assert_lt(kept, n, "%s: the contract needs a home team that plays in the set", type->name);
    bp_match_set without = {sizeof without, 0, bad, kept, 0};
    cr_assert_eq(type->fit(m, &without, NULL, &err), BP_OK, "%s: %s", type->name, err.msg);
    char team_id[32];
    snprintf(team_id, sizeof team_id, "%lld", (long long)home);
    cr_assert_eq(type->predict(m, home, away, 0, &q, &err), BP_E_NOTFOUND, "%s", type->name);
    cr_assert(strstr(err.msg, team_id) != NULL, "%s: %s", type->name, err.msg);
    cr_assert_eq(type->predict(m, away, home, 0, &q, &err), BP_E_NOTFOUND, "%s", type->name);
    cr_assert(strstr(err.msg, team_id) != NULL, "%s: %s", type->name, err.msg);

    free(bad);
    free(text);
    json_decref(back);
    json_decref(state);
    type->destroy(copy);
    type->destroy(m);
}
