/*
 * test_model_ml.c - the feature builder (checked by hand on a tiny history, including the
 * same-day rule and the market rating), the logistic regression (its maximum-likelihood score
 * equations) and the random forest (out-of-bag score, determinism), plus the model contract.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>

#include "bpm.h"
#include "bpm_features.h"
#include "logistic.h"
#include "model_contract.h"
#include "random_forest.h"

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))
#define DAY             86400000LL

static fd_teams teams;
static bp_match_result *matches;
static size_t n_matches;

static void setup(void)
{
    gsl_set_error_handler_off();
    memset(&teams, 0, sizeof teams);
    matches = NULL;
    n_matches = 0;
    mc_load_e0(&teams, 2021, 2023, "PSC", &matches, &n_matches);
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

TestSuite(features, .init = setup_plain);
TestSuite(logistic, .init = setup, .fini = teardown);
TestSuite(random_forest, .init = setup, .fini = teardown);

static bpm_features_opts opts_from(const char *json)
{
    json_t *params = json_loads(json, 0, NULL);
    bpm_features_opts o;
    bp_error err = {0};
    cr_assert_eq(bpm_features_opts_read("test", params, &o, &err), BP_OK, "%s", err.msg);
    json_decref(params);
    return o;
}

/*
 * Day 1: team 1 beats team 2 2-0 at odds 2.0 / 3.4 / 4.0; the same day team 2 hosts team 3 0-0
 * (no odds). Day 2: team 3 v team 1 1-1 at odds 3 / 3 / 3.
 */
Test(features, hand_checked_history)
{
    const bp_match_result m[3] = {
        {1, 10 * DAY, 1, 2, 2, 0, 2.0, 3.4, 4.0},
        {2, 10 * DAY, 2, 3, 0, 0, 0, 0, 0},
        {3, 11 * DAY, 3, 1, 1, 1, 3.0, 3.0, 3.0},
    };
    bpm_features_opts o = opts_from("{\"min_games\": 0}");
    bp_match_set set = {sizeof set, 0, m, 3, 0};
    bpm_features f;
    double *x = NULL;
    int *y = NULL;
    size_t *row_match = NULL, rows = 0;
    bp_error err = {0};
    cr_assert_eq(bpm_features_build("test", &o, &set, &f, &x, &y, &row_match, &rows, &err), BP_OK,
                 "%s", err.msg);
    cr_assert_eq(rows, 3);
    cr_assert_eq(f.dim, 9, "two of three matches have odds: the market feature is on");
    cr_assert_str_eq(bpm_features_name(&f, 0), "elo_diff");
    cr_assert_str_eq(bpm_features_name(&f, 8), "market");
    /* row 0: everybody new -> Elo diff = H / 100, league defaults for form and goals */
    cr_assert(NEAR(x[0], 0.7, 1e-12));
    cr_assert(NEAR(x[2], 1.37, 1e-12) && NEAR(x[4], 1.4, 1e-12));
    cr_assert_eq(y[0], BPM_HOME);
    /* row 1 (same day as row 0): team 2's defeat is not visible yet */
    const double *r1 = x + 9;
    cr_assert(NEAR(r1[0], 0.7, 1e-12), "elo_diff %g", r1[0]);
    cr_assert(NEAR(r1[2], 1.37, 1e-12), "form_home %g", r1[2]);
    cr_assert_eq(r1[8], 0.0, "no market rating moved before day 2");
    /* row 2 (3 v 1 on day 2) sees day 1's results */
    const double *r2 = x + 18;
    cr_assert(NEAR(r2[2], 1.0, 1e-12), "team 3 drew its only match: form %g", r2[2]);
    cr_assert(NEAR(r2[3], 3.0, 1e-12), "team 1 won its only match");
    cr_assert(NEAR(r2[6], 2.0, 1e-12) && NEAR(r2[7], 0.0, 1e-12), "team 1 scored 2, conceded 0");
    /* market after day 1: t = ln(pH / pA) = ln 2 (margin removal keeps the ratio), both teams
     * new so eta = 1/2, home term rate/10 = 0.035 */
    double t = log(2.0);
    cr_assert(NEAR(r2[8], 0.035 * t + 0.0 - 0.5 * t, 1e-12), "market %g", r2[8]);

    /* the state after the history: features of 1 v 3. Day 2's even odds say t = 0; both teams
     * have one game, so eta = max(0.35, 1/3) = 0.35 */
    double q[BPM_FEATURES_MAX];
    cr_assert_eq(bpm_features_for("test", &f, 1, 3, q, &err), BP_OK);
    cr_assert(NEAR(q[2], 2.0, 1e-12), "team 1: a win and a draw");
    cr_assert(NEAR(q[4], 1.5, 1e-12) && NEAR(q[5], 0.5, 1e-12));
    double h = 0.035 * t, m1 = 0.5 * t, m3 = 0.0;
    double e = 0.0 - (h + m3 - m1);
    m3 += 0.35 * e;
    m1 -= 0.35 * e;
    h += 0.035 * e;
    cr_assert(NEAR(q[8], h + m1 - m3, 1e-12), "market %.15g vs %.15g", q[8], h + m1 - m3);
    cr_assert_eq(bpm_features_for("test", &f, 1, 99, q, &err), BP_E_NOTFOUND);
    cr_assert(strstr(err.msg, "99") != NULL);

    /* save / load keeps every feature */
    json_t *state = json_object();
    cr_assert_eq(bpm_features_save(&f, state, &err), BP_OK, "%s", err.msg);
    bpm_features g;
    cr_assert_eq(bpm_features_load("test", state, &g, &err), BP_OK, "%s", err.msg);
    double q2[BPM_FEATURES_MAX];
    cr_assert_eq(bpm_features_for("test", &g, 1, 3, q2, &err), BP_OK);
    cr_assert_eq(memcmp(q, q2, 9 * sizeof *q), 0);
    /* a damaged state is refused */
    json_object_set_new(json_object_get(state, "features"), "recent", json_array());
    bpm_features damaged;
    cr_assert_eq(bpm_features_load("test", state, &damaged, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "recent") != NULL, "%s", err.msg);
    json_decref(state);
    bpm_features_free(&g);
    bpm_features_free(&f);
    free(x);
    free(y);
    free(row_match);
}

Test(features, selection_and_missing_odds)
{
    const bp_match_result m[2] = {
        {1, 10 * DAY, 1, 2, 2, 0, 0, 0, 0},
        {2, 11 * DAY, 2, 1, 1, 1, 0, 0, 0},
    };
    bp_match_set set = {sizeof set, 0, m, 2, 0};
    bpm_features f;
    size_t rows;
    bp_error err = {0};
    bpm_features_opts o = opts_from("{\"min_games\": 0, \"features\": [\"pi_gd\", \"market\"]}");
    cr_assert_eq(bpm_features_build("test", &o, &set, &f, NULL, NULL, NULL, &rows, &err), BP_OK);
    cr_assert_eq(f.dim, 1, "no odds: only pi_gd is left");
    cr_assert_str_eq(bpm_features_name(&f, 0), "pi_gd");
    bpm_features_free(&f);
    o = opts_from("{\"features\": [\"market\"]}");
    cr_assert_eq(bpm_features_build("test", &o, &set, &f, NULL, NULL, NULL, &rows, &err),
                 BP_E_INVAL);
    cr_assert(strstr(err.msg, "no feature left") != NULL, "%s", err.msg);
    json_t *bad = json_loads("{\"features\": [\"elo\"]}", 0, NULL);
    cr_assert_eq(bpm_features_opts_read("test", bad, &o, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "'elo'") != NULL, "%s", err.msg);
    json_decref(bad);
}

/*
 * Without a penalty, the multinomial logit's MLE satisfies the intercept score equations: over
 * the training rows the mean predicted probability of each outcome equals its observed
 * frequency.
 */
Test(logistic, score_equations_hold_without_penalty)
{
    void *m = mc_create(&bpm_logistic_type, "{\"l2\": 0}");
    bp_match_set s = {sizeof s, 0, matches, n_matches, 0};
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(bpm_logistic_type.fit(m, &s, &metrics, &err), BP_OK, "%s", err.msg);
    cr_assert(json_is_true(json_object_get(metrics, "uses_market")));
    json_t *mean = json_object_get(metrics, "in_sample_mean"),
           *freq = json_object_get(metrics, "in_sample_frequency");
    cr_assert(json_is_array(mean) && json_is_array(freq));
    for (size_t k = 0; k < 3; k++) {
        double a = json_number_value(json_array_get(mean, k));
        double b = json_number_value(json_array_get(freq, k));
        cr_assert(NEAR(a, b, 1e-6), "outcome %zu: mean forecast %.9f, frequency %.9f", k, a, b);
    }
    cr_assert_lt(json_number_value(json_object_get(metrics, "in_sample_rps")), 0.2);
    json_decref(metrics);
    bpm_logistic_type.destroy(m);
}

static int gsl_errors;
static char gsl_reason[256];

static void count_gsl_error(const char *reason, const char *file, int line, int gsl_errno)
{
    (void)file;
    (void)line;
    (void)gsl_errno;
    gsl_errors++;
    snprintf(gsl_reason, sizeof gsl_reason, "%s", reason);
}

/*
 * One season from the start of the history with Elo's k = 0: every team keeps its start rating,
 * so elo_diff is the same in every row and, without a penalty, the Hessian is singular. GSL's
 * Cholesky reports that through its error handler (which would abort by default: the premise of
 * test_ml's a_gsl_error_inside_a_model_is_a_status_not_an_abort); the fit falls back to a
 * diagonal preconditioner and finds the intercept-only model.
 */
Test(logistic, a_singular_hessian_raises_a_gsl_error_and_the_fit_recovers)
{
    gsl_set_error_handler(count_gsl_error);
    void *m = mc_create(&bpm_logistic_type, "{\"features\": [\"elo_diff\"], \"k\": 0, \"l2\": 0}");
    bp_match_set s = {sizeof s, 0, matches, 380, 0};
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(bpm_logistic_type.fit(m, &s, &metrics, &err), BP_OK, "%s", err.msg);
    cr_assert_gt(gsl_errors, 0, "GSL reported no error: the premise does not hold");
    cr_assert(strstr(gsl_reason, "positive definite") != NULL, "%s", gsl_reason);
    json_t *mean = json_object_get(metrics, "in_sample_mean"),
           *freq = json_object_get(metrics, "in_sample_frequency");
    for (size_t k = 0; k < 3; k++) {
        cr_assert(NEAR(json_number_value(json_array_get(mean, k)),
                       json_number_value(json_array_get(freq, k)), 1e-6));
    }
    bp_prediction a, b;
    cr_assert_eq(bpm_logistic_type.predict(m, fd_team_id(&teams, "Arsenal"),
                                           fd_team_id(&teams, "Burnley"), 0, &a, &err),
                 BP_OK, "%s", err.msg);
    cr_assert_eq(bpm_logistic_type.predict(m, fd_team_id(&teams, "Norwich"),
                                           fd_team_id(&teams, "Man City"), 0, &b, &err),
                 BP_OK, "%s", err.msg);
    cr_assert(a.p_home == b.p_home && a.p_draw == b.p_draw, "a constant feature carries no weight");
    json_decref(metrics);
    bpm_logistic_type.destroy(m);
}

Test(logistic, contract)
{
    model_contract_check(&bpm_logistic_type, NULL, matches, n_matches,
                         fd_team_id(&teams, "Arsenal"), fd_team_id(&teams, "Man United"));
}

Test(logistic, market_off_and_feature_selection)
{
    void *m = mc_create(&bpm_logistic_type, "{\"market\": false, \"features\": [\"elo_diff\", "
                                            "\"form_home\", \"form_away\"]}");
    bp_match_set s = {sizeof s, 0, matches, n_matches, 0};
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(bpm_logistic_type.fit(m, &s, &metrics, &err), BP_OK, "%s", err.msg);
    cr_assert(json_is_false(json_object_get(metrics, "uses_market")));
    cr_assert_eq(json_array_size(json_object_get(metrics, "features")), 3);
    json_decref(metrics);
    bpm_logistic_type.destroy(m);
}

Test(random_forest, out_of_bag_score_and_determinism)
{
    const char *params = "{\"n_trees\": 40, \"seed\": 7}";
    void *a = mc_create(&bpm_random_forest_type, params);
    void *b = mc_create(&bpm_random_forest_type, params);
    void *c = mc_create(&bpm_random_forest_type, "{\"n_trees\": 40, \"seed\": 8}");
    bp_match_set s = {sizeof s, 0, matches, n_matches, 0};
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(bpm_random_forest_type.fit(a, &s, &metrics, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(bpm_random_forest_type.fit(b, &s, NULL, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(bpm_random_forest_type.fit(c, &s, NULL, &err), BP_OK, "%s", err.msg);
    double rows = json_number_value(json_object_get(metrics, "n_rows"));
    double oob_rows = json_number_value(json_object_get(metrics, "oob_rows"));
    double oob_rps = json_number_value(json_object_get(metrics, "oob_rps"));
    /* with 40 trees a row is out of bag for some tree with probability 1 - (1 - e^-1)^40 */
    cr_assert_gt(oob_rows, 0.99 * rows, "%g of %g rows scored out of bag", oob_rows, rows);
    cr_assert(oob_rps > 0.17 && oob_rps < 0.23, "oob rps %g", oob_rps);
    cr_assert_gt(json_number_value(json_object_get(metrics, "n_nodes")), 40);
    json_decref(metrics);

    int64_t h = fd_team_id(&teams, "Tottenham"), w = fd_team_id(&teams, "Wolves");
    bp_prediction pa, pb, pc;
    cr_assert_eq(bpm_random_forest_type.predict(a, h, w, 0, &pa, NULL), BP_OK);
    cr_assert_eq(bpm_random_forest_type.predict(b, h, w, 0, &pb, NULL), BP_OK);
    cr_assert_eq(bpm_random_forest_type.predict(c, h, w, 0, &pc, NULL), BP_OK);
    cr_assert(pa.p_home == pb.p_home && pa.p_draw == pb.p_draw, "same seed, same forest");
    cr_assert(pa.p_home != pc.p_home || pa.p_draw != pc.p_draw, "another seed, another forest");
    bpm_random_forest_type.destroy(a);
    bpm_random_forest_type.destroy(b);
    bpm_random_forest_type.destroy(c);
}

Test(random_forest, contract)
{
    model_contract_check(&bpm_random_forest_type, "{\"n_trees\": 30}", matches, n_matches,
                         fd_team_id(&teams, "Newcastle"), fd_team_id(&teams, "Brighton"));
}

Test(random_forest, params_are_validated)
{
    const char *bad[] = {"{\"n_trees\": 0}", "{\"bins\": 65}", "{\"min_leaf\": 0}",
                         "{\"features\": []}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *params = json_loads(bad[i], 0, NULL);
        void *m = NULL;
        bp_error err = {0};
        cr_assert_eq(bpm_random_forest_type.create(NULL, params, &m, &err), BP_E_INVAL, "%s",
                     bad[i]);
        json_decref(params);
    }
}
