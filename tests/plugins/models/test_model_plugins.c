/*
 * test_model_plugins.c - the model plugins as the daemon meets them: each built .so is opened
 * with dlopen, its descriptor checked, init run against a small registry, and the model it
 * registers exercised through the registered descriptor on real data (the reference check
 * again, through model-dixon_coles.so, and the model contract for every model).
 *
 * The registry and host here are a minimal stand-in local to this test (the shared test host of
 * tests/support is not on main yet): model plugins use neither logging nor config, so the host
 * only has to exist; the registry records what add_model receives.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>

#include "betpipe/betpipe.h"

#include "model_contract.h"
#include "support.h"

/* ---- a minimal registry and host ------------------------------------------------------------ */

typedef struct test_registry {
    bp_registry reg;
    int n_models;
    bp_model_type model; /* a copy, as the core keeps one */
    int refuse;          /* make add_model fail with this status (0 = accept) */
} test_registry;

static int add_model(bp_registry *reg, const bp_model_type *desc, bp_error *err)
{
    test_registry *r = (test_registry *)reg;
    if (r->refuse) {
        return bp_err(err, r->refuse, "test registry refuses %s", desc->name);
    }
    if (desc->struct_size < sizeof(bp_model_type)) {
        return bp_err(err, BP_E_ABI, "model descriptor too small");
    }
    r->model = *desc;
    r->n_models++;
    return BP_OK;
}

static int add_other(bp_registry *reg, const void *desc, bp_error *err)
{
    (void)reg;
    (void)desc;
    return bp_err(err, BP_E_INVAL, "a model plugin registered something that is not a model");
}

static int add_job(bp_registry *reg, const bp_job_type *d, bp_error *err)
{
    return add_other(reg, d, err);
}
static int add_collector(bp_registry *reg, const bp_collector_type *d, bp_error *err)
{
    return add_other(reg, d, err);
}
static int add_notifier(bp_registry *reg, const bp_notifier_type *d, bp_error *err)
{
    return add_other(reg, d, err);
}

static void host_log(const bp_host *h, int level, const char *fmt, ...)
{
    (void)h;
    (void)level;
    (void)fmt;
}

static int host_log_enabled(const bp_host *h, int level)
{
    (void)h;
    (void)level;
    return 0;
}

static bp_host test_host(void)
{
    bp_host h;
    memset(&h, 0, sizeof h);
    h.struct_size = sizeof h;
    h.abi_major = BP_ABI_MAJOR;
    h.abi_minor = BP_ABI_MINOR;
    h.plugin_name = "test";
    h.log = host_log;
    h.log_enabled = host_log_enabled;
    return h;
}

static void registry_init(test_registry *r)
{
    memset(r, 0, sizeof *r);
    r->reg.struct_size = sizeof r->reg;
    r->reg.add_job_type = add_job;
    r->reg.add_model = add_model;
    r->reg.add_collector = add_collector;
    r->reg.add_notifier = add_notifier;
}

/* ---- loading ----------------------------------------------------------------------------------
 */

typedef struct loaded {
    void *handle;
    const bp_plugin *desc;
    void *state;
    test_registry reg;
    bp_host host;
} loaded;

static void load_plugin(const char *name, loaded *out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model-%s.so", bpt_env("BP_TEST_PLUGIN_DIR"), name);
    out->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(out->handle, "dlopen %s: %s", path, dlerror());
    bp_plugin_entry_fn entry;
    *(void **)&entry = dlsym(out->handle, BP_PLUGIN_ENTRY_SYMBOL);
    cr_assert_not_null(entry, "%s exports no %s", path, BP_PLUGIN_ENTRY_SYMBOL);
    out->desc = entry();
    const bp_plugin *d = out->desc;
    cr_assert_eq(d->magic, BP_PLUGIN_MAGIC);
    cr_assert_eq(d->abi_major, BP_ABI_MAJOR);
    cr_assert_eq(d->struct_size, sizeof(bp_plugin));
    cr_assert_str_eq(d->build_sig, BP_BUILD_SIG);
    cr_assert_str_eq(d->name, name);
    cr_assert(d->version != NULL && d->description != NULL && d->init && d->fini);

    /* hidden visibility: the model libraries' symbols stay inside the plugin */
    const char *internal[] = {"bpm_minimize",         "bpm_goals_fit_set",  "bpm_remove_margin",
                              "bpm_dixon_coles_type", "bpm_features_build", "bpm_ologit_fit"};
    for (size_t i = 0; i < sizeof internal / sizeof internal[0]; i++) {
        cr_assert_null(dlsym(out->handle, internal[i]), "%s exports %s", path, internal[i]);
    }

    out->host = test_host();
    registry_init(&out->reg);
    bp_error err = {0};
    cr_assert_eq(d->init(&out->host, &out->reg.reg, &out->state, &err), BP_OK, "%s: %s", name,
                 err.msg);
    cr_assert_eq(out->reg.n_models, 1, "%s registers exactly one model", name);
    cr_assert_str_eq(out->reg.model.name, name);
}

static void unload_plugin(loaded *l)
{
    l->desc->fini(l->state);
    dlclose(l->handle);
}

static fd_teams teams;
static bp_match_result *matches;
static size_t n_matches;

static void setup(void)
{
    gsl_set_error_handler_off();
    memset(&teams, 0, sizeof teams);
    matches = NULL;
    n_matches = 0;
    mc_load_e0(&teams, 2022, 2023, "PSC", &matches, &n_matches);
}

static void teardown(void)
{
    free(matches);
    fd_teams_free(&teams);
}

TestSuite(plugins, .init = setup, .fini = teardown);

/* The reference check, this time through the shipped shared object. */
Test(plugins, dixon_coles_so_reproduces_the_reference)
{
    loaded l;
    load_plugin("dixon_coles", &l);
    const bp_model_type *t = &l.reg.model;
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
    cr_assert(fabs(p.p_home - 0.4543) < 5e-5 && fabs(p.p_draw - 0.2694) < 5e-5);
    json_decref(metrics);
    t->destroy(m);
    unload_plugin(&l);
}

static void contract_through_so(const char *name, const char *params)
{
    loaded l;
    load_plugin(name, &l);
    model_contract_check(&l.reg.model, params, matches, n_matches, fd_team_id(&teams, "Arsenal"),
                         fd_team_id(&teams, "Liverpool"));
    unload_plugin(&l);
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

/* A registry that refuses the model (a duplicate name) makes init fail with its status. */
Test(plugins, init_reports_a_refused_registration)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model-elo.so", bpt_env("BP_TEST_PLUGIN_DIR"));
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h, "%s", dlerror());
    bp_plugin_entry_fn entry;
    *(void **)&entry = dlsym(h, BP_PLUGIN_ENTRY_SYMBOL);
    test_registry r;
    registry_init(&r);
    r.refuse = BP_E_EXISTS;
    bp_host host = test_host();
    void *state = NULL;
    bp_error err = {0};
    cr_assert_eq(entry()->init(&host, &r.reg, &state, &err), BP_E_EXISTS);
    cr_assert(strstr(err.msg, "elo") != NULL, "%s", err.msg);
    dlclose(h);
}
