/*
 * test_store_models.c - fitted models and predictions in a real store file: activation in the
 * save transaction, refusals that store nothing, old fits dropping their state, re-activation,
 * prediction batches checked whole, replacement and "latest" listing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "store.h"
#include "store_domain.h"
#include "store_models.h"
#include "support.h"

static char *tmp;
static store *s;
static int64_t e0, home, away, match;

static void setup(void)
{
    char path[512];
    bp_error err = {0};
    tmp = bpt_tmpdir("store-models");
    snprintf(path, sizeof path, "%s/betpipe.db", tmp);
    cr_assert_eq(store_open(path, &s, &err), BP_OK, "%s", err.msg);
    json_t *l = NULL;
    cr_assert_eq(store_find_league(s, NULL, "betpipe", "E0", &l, NULL), BP_OK);
    e0 = json_integer_value(json_object_get(l, "id"));
    json_decref(l);
    cr_assert_eq(store_resolve_team(s, NULL, e0, "football_data", "Arsenal", &home, NULL, NULL),
                 BP_OK);
    cr_assert_eq(store_resolve_team(s, NULL, e0, "football_data", "Man City", &away, NULL, NULL),
                 BP_OK);
    bp_match_rec m = {.struct_size = sizeof m,
                      .season = 2023,
                      .league_id = e0,
                      .home_team_id = home,
                      .away_team_id = away,
                      .kickoff_ms = 1696777200000,
                      .kickoff_exact = 1,
                      .status = BP_MATCH_FINISHED,
                      .home_goals = 1,
                      .away_goals = 0,
                      .ht_home_goals = -1,
                      .ht_away_goals = -1,
                      .elapsed = -1,
                      .source = "football_data"};
    cr_assert_eq(store_upsert_match(s, NULL, &m, &match, NULL, &err), BP_OK, "%s", err.msg);
}

static void teardown(void)
{
    store_close(s);
    bpt_rm_rf(tmp);
    free(tmp);
}

TestSuite(store_models, .init = setup, .fini = teardown);

static int64_t save(const char *model, double mark, int activate, int64_t *out_replaced)
{
    json_t *state = json_pack("{s:s, s:i, s:f}", "model", model, "state_version", 1, "mark", mark);
    json_t *metrics = json_pack("{s:f}", "loglik", -mark);
    bp_model_rec r = {.struct_size = sizeof r,
                      .state_version = 1,
                      .model = model,
                      .league_id = e0,
                      .state = state,
                      .metrics = metrics,
                      .train_from_ms = 1000,
                      .train_to_ms = 2000,
                      .n_matches = 380,
                      .activate = activate};
    int64_t id = 0;
    bp_error err = {0};
    cr_assert_eq(store_save_model(s, &r, &id, out_replaced, &err), BP_OK, "%s", err.msg);
    json_decref(state);
    json_decref(metrics);
    return id;
}

static int64_t active_id(const char *model)
{
    json_t *m = NULL;
    int64_t id = 0;
    if (store_get_model(s, 0, model, e0, &m, NULL) == BP_OK) {
        id = json_integer_value(json_object_get(m, "id"));
    }
    json_decref(m);
    return id;
}

Test(store_models, save_activates_and_replaces_in_one_go)
{
    int64_t replaced = -1;
    int64_t a = save("dixon_coles", 1, 1, &replaced);
    cr_assert_eq(replaced, 0);
    cr_assert_eq(active_id("dixon_coles"), a);
    int64_t b = save("dixon_coles", 2, 1, &replaced);
    cr_assert_eq(replaced, a);
    cr_assert_eq(active_id("dixon_coles"), b);
    /* another type is another slot */
    int64_t c = save("elo", 3, 1, NULL);
    cr_assert_eq(active_id("dixon_coles"), b);
    cr_assert_eq(active_id("elo"), c);
    /* a fit stored without activate does not replace */
    save("dixon_coles", 4, 0, NULL);
    cr_assert_eq(active_id("dixon_coles"), b);

    json_t *m = NULL;
    cr_assert_eq(store_get_model(s, b, NULL, 0, &m, NULL), BP_OK);
    cr_assert_eq(json_real_value(json_object_get(json_object_get(m, "state"), "mark")), 2.0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "league")), "E0");
    cr_assert_eq(json_integer_value(json_object_get(m, "n_matches")), 380);
    json_decref(m);

    /* refusals store nothing */
    bp_error err = {0};
    json_t *not_object = json_pack("[i]", 1);
    bp_model_rec bad = {.struct_size = sizeof bad,
                        .model = "dixon_coles",
                        .league_id = e0,
                        .state = not_object,
                        .activate = 1};
    cr_assert_eq(store_save_model(s, &bad, NULL, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "state"), "%s", err.msg);
    json_t *empty = json_object();
    bad.state = empty;
    bad.league_id = 999999;
    cr_assert_eq(store_save_model(s, &bad, NULL, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "no league"), "%s", err.msg);
    json_decref(empty);
    json_decref(not_object);
    cr_assert_eq(active_id("dixon_coles"), b);
    json_t *all = NULL;
    cr_assert_eq(store_list_models(s, NULL, 0, 0, &all, NULL), BP_OK);
    cr_assert_eq(json_array_size(all), 4);
    json_decref(all);
}

Test(store_models, old_fits_drop_their_state_and_can_be_reactivated_until_then)
{
    int64_t ids[14];
    for (int i = 0; i < 14; i++) {
        ids[i] = save("dixon_coles", i, 1, NULL);
    }
    /* the newest 10 keep their state */
    json_t *all = NULL, *m;
    size_t i;
    int with_state = 0;
    cr_assert_eq(store_list_models(s, "dixon_coles", e0, 0, &all, NULL), BP_OK);
    cr_assert_eq(json_array_size(all), 14);
    json_array_foreach(all, i, m)
    {
        with_state += json_is_true(json_object_get(m, "has_state"));
    }
    cr_assert_eq(with_state, 10);
    json_decref(all);
    bp_error err = {0};
    cr_assert_eq(store_activate_model(s, ids[0], &err), BP_E_STATE, "%s", err.msg);
    cr_assert_eq(active_id("dixon_coles"), ids[13]);
    cr_assert_eq(store_activate_model(s, ids[8], &err), BP_OK, "%s", err.msg);
    cr_assert_eq(active_id("dixon_coles"), ids[8]);
    cr_assert_eq(store_activate_model(s, 424242, &err), BP_E_NOTFOUND);
    all = NULL;
    cr_assert_eq(store_list_models(s, NULL, e0, 1, &all, NULL), BP_OK);
    cr_assert_eq(json_array_size(all), 1, "one active model per type and league");
    json_decref(all);
}

Test(store_models, predictions_are_checked_whole_replaced_and_listed)
{
    int64_t a = save("dixon_coles", 1, 1, NULL);
    int64_t b = save("dixon_coles", 2, 1, NULL);
    json_t *mk = json_pack("{s:{s:f}}", "btts", "yes", 0.5);
    bp_prediction_rec r[2] = {
        {match, a, 0.45, 0.27, 0.28, 1.4, 1.1, mk},
        {match, b, 0.5, 0.2, 0.3, (double)NAN, (double)NAN, NULL},
    };
    bp_store_counts c = {0, 0, 0};
    bp_error err = {0};
    cr_assert_eq(store_put_predictions(s, r, 2, &c, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(c.inserted, 2);
    cr_assert_eq(store_put_predictions(s, r, 2, &c, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(c.unchanged, 2);
    r[0].p_home = 0.46;
    r[0].p_away = 0.27;
    cr_assert_eq(store_put_predictions(s, r, 1, &c, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(c.updated, 1);

    /* a bad record anywhere: nothing of the batch is stored */
    bp_prediction_rec bad[2] = {
        {match, a, 0.1, 0.1, 0.8, 1, 1, NULL},
        {match, b, 0.5, 0.5, 0.5, 1, 1, NULL},
    };
    cr_assert_eq(store_put_predictions(s, bad, 2, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "prediction 1") && strstr(err.msg, "sum"), "%s", err.msg);
    bad[1] = (bp_prediction_rec){match + 1000, b, 0.5, 0.2, 0.3, 1, 1, NULL};
    cr_assert_eq(store_put_predictions(s, bad, 2, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "no match"), "%s", err.msg);

    json_t *list = NULL;
    bp_prediction_query q = {.struct_size = sizeof q, .match_id = match};
    cr_assert_eq(store_list_predictions(s, &q, &list, NULL), BP_OK);
    cr_assert_eq(json_array_size(list), 2);
    json_t *first = json_array_get(list, 0), *second = json_array_get(list, 1);
    cr_assert_eq(json_integer_value(json_object_get(first, "model_id")), b, "newest fit first");
    cr_assert_eq(json_real_value(json_object_get(second, "p_home")), 0.46,
                 "the failed batch changed nothing");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(first, "home"), "name")),
                     "Arsenal");
    json_decref(list);
    q.latest = 1;
    cr_assert_eq(store_list_predictions(s, &q, &list, NULL), BP_OK);
    cr_assert_eq(json_array_size(list), 1, "latest: one per match and model type");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(list, 0), "model_id")), b);
    cr_assert(json_is_null(json_object_get(json_array_get(list, 0), "exp_home_goals")));
    json_decref(list);
    json_decref(mk);
}
