/*
 * test_model_plugins.c - the model plugins as the daemon meets them: each built .so goes
 * through the real loader (file checks, dlopen, entry point, ABI checks, init) into the real
 * registry (which compiles every params_schema), with host tables from tests/support/test_host.
 * The model each registers is then exercised through the registry's copy of its descriptor on
 * real data: the reference check again, through model-dixon_coles.so, and the model contract for
 * every model. The schema the registry compiled and the model's own create() must agree on what
 * is a valid params object.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>

#include "jsonschema.h"
#include "loader.h"
#include "model_contract.h"
#include "registry.h"
#include "support.h"
#include "test_host.h"

static const char *const shipped[] = {"dixon_coles", "poisson",       "elo",     "pi_rating",
                                      "logistic",    "random_forest", "ensemble"};
#define N_SHIPPED (sizeof shipped / sizeof shipped[0])

static registry *reg;
static bpt_hosts *hosts;
static loader *ld;
static fd_teams teams;
static bp_match_result *matches;
static size_t n_matches;

static void setup(void)
{
    gsl_set_error_handler_off(); /* the core's start-up does this in the daemon */
    bp_error err = {0};
    cr_assert_eq(registry_new(&reg, &err), BP_OK, "%s", err.msg);
    hosts = bpt_hosts_new(reg);
    cr_assert_eq(loader_new(reg, bpt_host_for, bpt_host_release, hosts, &ld, &err), BP_OK, "%s",
                 err.msg);
    memset(&teams, 0, sizeof teams);
    matches = NULL;
    n_matches = 0;
    mc_load_e0(&teams, 2022, 2023, "PSC", &matches, &n_matches);
}

static void teardown(void)
{
    loader_free(ld);
    bpt_hosts_free(hosts);
    registry_free(reg);
    free(matches);
    fd_teams_free(&teams);
}

TestSuite(plugins, .init = setup, .fini = teardown);

/* Load model-<name>.so and return the registry's entry for the model it registers. */
static const registry_model *load_model(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model-%s.so", bpt_env("BP_TEST_PLUGIN_DIR"), name);
    bp_error err = {0};
    cr_assert_eq(loader_load_file(ld, path, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(registry_count(reg, name), 1, "%s registers exactly one item", name);
    const registry_model *m = registry_find_model(reg, name);
    cr_assert_not_null(m, "%s registers no model called %s", path, name);
    cr_assert_str_eq(m->plugin, name);
    cr_assert_eq(m->desc.struct_size, sizeof(bp_model_type));
    return m;
}

Test(plugins, all_models_load_into_one_registry)
{
    for (size_t i = 0; i < N_SHIPPED; i++) {
        load_model(shipped[i]);
    }
    cr_assert_eq(loader_count(ld), N_SHIPPED);
    json_t *names = registry_names(reg, REGISTRY_MODEL);
    cr_assert_eq(json_array_size(names), N_SHIPPED);
    json_decref(names);
}

/* The reference check, this time through the shipped shared object. */
Test(plugins, dixon_coles_so_reproduces_the_reference)
{
    const bp_model_type *t = &load_model("dixon_coles")->desc;
    size_t first = n_matches - 380; /* 2023-24 only */
    bp_match_set s = {sizeof s, 0, matches + first, 380, 0};
    void *m = mc_create(t, "{\"xi\": 0}");
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(t->fit(m, &s, &metrics, &err), BP_OK, "%s", err.msg);
    double ll = json_number_value(json_object_get(metrics, "loglik"));
    cr_assert(fabs(ll - -1135.2510) < 1e-3, "loglik %.6f", ll);
    bp_prediction p;
    cr_assert_eq(
        t->predict(m, fd_team_id(&teams, "Arsenal"), fd_team_id(&teams, "Man City"), 0, &p, &err),
        BP_OK);
    cr_assert(fabs(p.p_home - 0.4543) < 5e-5 && fabs(p.p_draw - 0.2694) < 5e-5 &&
              fabs(p.p_away - 0.2763) < 5e-5);
    json_decref(metrics);
    t->destroy(m);
}

/*
 * The compiled schema and create() agree: defaults (filled in by the schema) are accepted by
 * both, and each bad params object is refused by both.
 */
Test(plugins, compiled_schemas_agree_with_create)
{
    static const struct {
        const char *model, *params;
    } bad[] = {
        {"dixon_coles", "{\"xi\": -0.1}"},   {"dixon_coles", "{\"xii\": 0.1}"},
        {"poisson", "{\"max_iter\": 0}"},    {"elo", "{\"k\": \"twenty\"}"},
        {"pi_rating", "{\"b\": 1}"},         {"logistic", "{\"features\": [\"elo\"]}"},
        {"random_forest", "{\"bins\": 99}"}, {"ensemble", "{\"members\": [\"elo\"]}"},
    };
    for (size_t i = 0; i < N_SHIPPED; i++) {
        const registry_model *m = load_model(shipped[i]);
        json_t *params = json_object();
        cr_assert_eq(jsonschema_apply_defaults(m->params_schema, params), BP_OK);
        bp_error err = {0};
        cr_assert_eq(jsonschema_validate(m->params_schema, params, &err), BP_OK, "%s: %s",
                     shipped[i], err.msg);
        void *inst = NULL;
        cr_assert_eq(m->desc.create(m->plugin_state, params, &inst, &err), BP_OK,
                     "%s refuses its schema's defaults: %s", shipped[i], err.msg);
        m->desc.destroy(inst);
        json_decref(params);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const registry_model *m = registry_find_model(reg, bad[i].model);
        json_t *params = json_loads(bad[i].params, 0, NULL);
        bp_error err = {0};
        void *inst = NULL;
        cr_assert_eq(jsonschema_validate(m->params_schema, params, &err), BP_E_INVAL,
                     "the schema of %s accepts %s", bad[i].model, bad[i].params);
        cr_assert_eq(m->desc.create(m->plugin_state, params, &inst, &err), BP_E_INVAL,
                     "%s accepts %s", bad[i].model, bad[i].params);
        json_decref(params);
    }
}

static void contract_through_so(const char *name, const char *params)
{
    const registry_model *m = load_model(name);
    model_contract_check(&m->desc, params, matches, n_matches, fd_team_id(&teams, "Arsenal"),
                         fd_team_id(&teams, "Liverpool"));
}

Test(plugins, poisson_so)
{
    contract_through_so("poisson", NULL);
}

Test(plugins, dixon_coles_so)
{
    contract_through_so("dixon_coles", NULL);
}

Test(plugins, elo_so)
{
    contract_through_so("elo", NULL);
}

Test(plugins, pi_rating_so)
{
    contract_through_so("pi_rating", NULL);
}

Test(plugins, logistic_so)
{
    contract_through_so("logistic", NULL);
}

Test(plugins, random_forest_so)
{
    contract_through_so("random_forest", "{\"n_trees\": 25}");
}

Test(plugins, ensemble_so)
{
    contract_through_so("ensemble", "{\"members\": [\"dixon_coles\", \"pi_rating\"], "
                                    "\"burn_in_days\": 300, \"refit_days\": 28, "
                                    "\"min_predictions\": 50}");
}
