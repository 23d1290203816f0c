/*
 * test_model_ensemble.c - the RPS-minimising weights (against closed forms and a brute-force
 * grid) and the ensemble model: its blend equals the weighted members, its parameters are
 * checked, and it keeps the model contract.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>

#include "bpm.h"
#include "bpm_metrics.h"
#include "dixon_coles.h"
#include "elo.h"
#include "ensemble.h"
#include "model_contract.h"

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))

static fd_teams teams;
static bp_match_result *matches;
static size_t n_matches;

static void setup(void)
{
    gsl_set_error_handler_off();
    memset(&teams, 0, sizeof teams);
    matches = NULL;
    n_matches = 0;
    mc_load_e0(&teams, 2021, 2023, NULL, &matches, &n_matches);
}

static void teardown(void)
{
    free(matches);
    fd_teams_free(&teams);
}

static void setup_plain(void)
{
    gsl_set_error_handler_off();
}

TestSuite(weights, .init = setup_plain);
TestSuite(ensemble, .init = setup, .fini = teardown);

Test(weights, a_perfect_member_takes_all_the_weight)
{
    enum { N = 300 };
    static double p[N * 2 * 3];
    static int y[N];
    bpm_rng rng;
    bpm_rng_seed(&rng, 3);
    for (int r = 0; r < N; r++) {
        y[r] = (int)bpm_rng_below(&rng, 3);
        for (int k = 0; k < 3; k++) {
            p[(r * 2 + 0) * 3 + k] = k == y[r]; /* member 0 knows the result */
            p[(r * 2 + 1) * 3 + k] = 1.0 / 3;   /* member 1 knows nothing */
        }
    }
    double w[2], rps;
    bp_error err = {0};
    cr_assert_eq(bpm_ensemble_weights(p, y, N, 2, w, &rps, &err), BP_OK, "%s", err.msg);
    cr_assert_gt(w[0], 0.999, "w = %g %g", w[0], w[1]);
    cr_assert(NEAR(w[0] + w[1], 1.0, 1e-12));
    cr_assert_lt(rps, 1e-5);
    cr_assert_eq(bpm_ensemble_weights(p, y, 0, 2, w, NULL, &err), BP_E_INVAL);
}

static double blend_rps(const double *p, const int *y, size_t rows, double w0)
{
    double s = 0.0;
    for (size_t r = 0; r < rows; r++) {
        double b[3];
        for (size_t k = 0; k < 3; k++) {
            b[k] = w0 * p[(r * 2) * 3 + k] + (1 - w0) * p[(r * 2 + 1) * 3 + k];
        }
        s += bpm_rps(b, y[r]);
    }
    return s / (double)rows;
}

/* Two noisy members: the optimum matches a fine grid search over w0 in [0, 1]. */
Test(weights, matches_a_brute_force_grid)
{
    enum { N = 2000 };
    static double p[N * 2 * 3];
    static int y[N];
    bpm_rng rng;
    bpm_rng_seed(&rng, 11);
    for (int r = 0; r < N; r++) {
        double u = (double)bpm_rng_below(&rng, 1000) / 1000.0;
        double truth[3] = {0.2 + 0.4 * u, 0.25, 0.55 - 0.4 * u};
        double v = (double)bpm_rng_below(&rng, 1000000) / 1e6;
        y[r] = v < truth[0] ? 0 : v < truth[0] + truth[1] ? 1 : 2;
        for (int m = 0; m < 2; m++) {
            double noise = ((double)bpm_rng_below(&rng, 1000) / 1000.0 - 0.5) * (m ? 0.3 : 0.1);
            double q[3] = {truth[0] + noise, truth[1], truth[2] - noise};
            for (int k = 0; k < 3; k++) {
                p[(r * 2 + m) * 3 + k] = q[k];
            }
        }
    }
    double w[2], rps;
    cr_assert_eq(bpm_ensemble_weights(p, y, N, 2, w, &rps, NULL), BP_OK);
    double best_w = 0, best = INFINITY;
    for (int i = 0; i <= 1000; i++) {
        double s = blend_rps(p, y, N, i / 1000.0);
        if (s < best) {
            best = s;
            best_w = i / 1000.0;
        }
    }
    cr_assert(NEAR(w[0], best_w, 0.002), "w0 %.4f, grid %.4f", w[0], best_w);
    cr_assert_leq(rps, best + 1e-9);
    cr_assert(NEAR(rps, blend_rps(p, y, N, w[0]), 1e-12));
}

#define SMALL                                                                                      \
    "{\"members\": [\"dixon_coles\", \"elo\"], \"member_params\": {\"dixon_coles\": "              \
    "{\"window_days\": 1100}}, \"burn_in_days\": 300, \"refit_days\": 28, "                        \
    "\"min_predictions\": 50}"

Test(ensemble, blend_is_the_weighted_members)
{
    void *e = mc_create(&bpm_ensemble_type, SMALL);
    bp_match_set s = {sizeof s, 0, matches, n_matches, 0};
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(bpm_ensemble_type.fit(e, &s, &metrics, &err), BP_OK, "%s", err.msg);
    double wd =
        json_number_value(json_object_get(json_object_get(metrics, "weights"), "dixon_coles"));
    double we = json_number_value(json_object_get(json_object_get(metrics, "weights"), "elo"));
    cr_assert(NEAR(wd + we, 1.0, 1e-12));
    cr_assert_geq(json_integer_value(json_object_get(metrics, "oos_rows")), 50);
    cr_assert(json_is_object(json_object_get(json_object_get(metrics, "members"), "elo")));
    /* the blend's out-of-sample RPS is no worse than either member's */
    double blend = json_number_value(json_object_get(metrics, "oos_rps"));
    json_t *oos = json_object_get(metrics, "member_oos_rps");
    cr_assert_leq(blend, json_number_value(json_object_get(oos, "dixon_coles")) + 1e-12);
    cr_assert_leq(blend, json_number_value(json_object_get(oos, "elo")) + 1e-12);

    /* members fitted on their own on the same data give the same blend */
    void *dc = mc_create(&bpm_dixon_coles_type, "{\"window_days\": 1100}");
    void *elo = mc_create(&bpm_elo_type, NULL);
    cr_assert_eq(bpm_dixon_coles_type.fit(dc, &s, NULL, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(bpm_elo_type.fit(elo, &s, NULL, &err), BP_OK, "%s", err.msg);
    int64_t h = fd_team_id(&teams, "Aston Villa"), a = fd_team_id(&teams, "Fulham");
    bp_prediction pe, pd, pl;
    cr_assert_eq(bpm_ensemble_type.predict(e, h, a, 0, &pe, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(bpm_dixon_coles_type.predict(dc, h, a, 0, &pd, NULL), BP_OK);
    cr_assert_eq(bpm_elo_type.predict(elo, h, a, 0, &pl, NULL), BP_OK);
    /* the ensemble's Dixon-Coles member was warm-started: same optimum within 1e-6 */
    cr_assert(NEAR(pe.p_home, wd * pd.p_home + we * pl.p_home, 1e-6));
    cr_assert(NEAR(pe.p_draw, wd * pd.p_draw + we * pl.p_draw, 1e-6));
    cr_assert(NEAR(pe.p_away, wd * pd.p_away + we * pl.p_away, 1e-6));

    /* an unknown team: the member's NOTFOUND comes through, naming the member */
    cr_assert_eq(bpm_ensemble_type.predict(e, h, 4242, 0, &pe, &err), BP_E_NOTFOUND);
    cr_assert(strstr(err.msg, "dixon_coles") != NULL && strstr(err.msg, "4242") != NULL, "%s",
              err.msg);
    json_decref(metrics);
    bpm_dixon_coles_type.destroy(dc);
    bpm_elo_type.destroy(elo);
    bpm_ensemble_type.destroy(e);
}

Test(ensemble, contract)
{
    model_contract_check(&bpm_ensemble_type, SMALL, matches, n_matches,
                         fd_team_id(&teams, "Arsenal"), fd_team_id(&teams, "Chelsea"));
}

Test(ensemble, params_are_validated)
{
    const char *bad[] = {
        "{\"members\": [\"dixon_coles\"]}",
        "{\"members\": [\"dixon_coles\", \"xgboost\"]}",
        "{\"members\": [\"elo\", \"elo\"]}",
        "{\"members\": [\"elo\", \"pi_rating\"], \"member_params\": {\"dixon_coles\": {}}}",
        "{\"members\": [\"elo\", \"dixon_coles\"], \"member_params\": {\"dixon_coles\": "
        "{\"xi\": -1}}}",
        "{\"refit_days\": 0}",
        "{\"members\": [\"elo\", \"ensemble\"]}",
    };
    const char *word[] = {
        "members",    "xgboost", "twice", "not one of the members", "member dixon_coles",
        "refit_days", "ensemble"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *params = json_loads(bad[i], 0, NULL);
        cr_assert_not_null(params, "test JSON %zu", i);
        void *m = NULL;
        bp_error err = {0};
        cr_assert_eq(bpm_ensemble_type.create(NULL, params, &m, &err), BP_E_INVAL, "%s", bad[i]);
        cr_assert(strstr(err.msg, word[i]) != NULL, "%s -> %s", bad[i], err.msg);
        json_decref(params);
    }
}
