/*
 * test_model_ratings.c - the Elo and pi-rating models: their update rules checked by hand, the
 * newcomer rule, the fitted ordered logit, and the model contract on real Premier League data.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>

#include "bpm.h"
#include "elo.h"
#include "model_contract.h"
#include "pi_rating.h"

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

TestSuite(elo, .init = setup, .fini = teardown);
TestSuite(pi_rating, .init = setup, .fini = teardown);

Test(elo, update_rule_by_hand)
{
    bpm_elo_params p;
    bpm_elo_defaults(&p);
    bpm_elo_state s;
    cr_assert_eq(bpm_elo_state_init(&s, 4, NULL), BP_OK);
    bpm_elo_enter(&p, &s, 0, 0);
    bpm_elo_enter(&p, &s, 1, 0);
    cr_assert_eq(s.rating[0], 1500.0);
    /* 3-1 home win between equals: E = 1 / (1 + 10^(-70/400)), change = 20 sqrt(2) (1 - E) */
    double e = 1.0 / (1.0 + pow(10.0, -70.0 / 400.0));
    double change = 20.0 * sqrt(2.0) * (1.0 - e);
    bpm_elo_update(&p, &s, 0, 1, 3, 1);
    cr_assert(NEAR(s.rating[0], 1500.0 + change, 1e-9), "%.9f", s.rating[0]);
    cr_assert(NEAR(s.rating[1], 1500.0 - change, 1e-9));
    /* a draw moves the home side down when it was expected to win (multiplier 1) */
    double before = s.rating[0];
    double dr = s.rating[0] + 70.0 - s.rating[1];
    bpm_elo_update(&p, &s, 0, 1, 0, 0);
    cr_assert(
        NEAR(s.rating[0], before + 20.0 * (0.5 - 1.0 / (1.0 + pow(10.0, -dr / 400.0))), 1e-9));
    /* a newcomer 200 days later starts 100 below the mean of the teams already rated */
    double mean = (s.rating[0] + s.rating[1]) / 2.0;
    bpm_elo_enter(&p, &s, 2, 200LL * 86400000);
    cr_assert(NEAR(s.rating[2], mean - 100.0, 1e-9), "%.9f vs %.9f", s.rating[2], mean - 100.0);
    /* ... but within the 60-day grace period a team is a founder */
    bpm_elo_state t;
    cr_assert_eq(bpm_elo_state_init(&t, 2, NULL), BP_OK);
    bpm_elo_enter(&p, &t, 0, 0);
    bpm_elo_enter(&p, &t, 1, 30LL * 86400000);
    cr_assert_eq(t.rating[1], 1500.0);
    bpm_elo_state_free(&s);
    bpm_elo_state_free(&t);
}

Test(elo, ordered_logit_link_is_fitted_on_history)
{
    void *m = mc_create(&bpm_elo_type, NULL);
    bp_match_set s = {sizeof s, 0, matches, n_matches, 0};
    json_t *metrics = NULL;
    bp_error err = {0};
    cr_assert_eq(bpm_elo_type.fit(m, &s, &metrics, &err), BP_OK, "%s", err.msg);
    double beta = json_number_value(json_object_get(metrics, "beta"));
    /* research/models.md: beta = 0.00456 per Elo point on EPL 2006-23 with this Elo */
    cr_assert(beta > 0.002 && beta < 0.008, "beta %g", beta);
    cr_assert_lt(json_number_value(json_object_get(metrics, "c1")),
                 json_number_value(json_object_get(metrics, "c2")));
    /* rows exclude each team's first 10 matches */
    cr_assert_lt(json_integer_value(json_object_get(metrics, "n_rows")), (json_int_t)n_matches);
    json_decref(metrics);

    /* the stronger side by rating is the favourite */
    bp_prediction a, b;
    int64_t city = fd_team_id(&teams, "Man City"), burnley = fd_team_id(&teams, "Burnley");
    cr_assert_eq(bpm_elo_type.predict(m, city, burnley, 0, &a, NULL), BP_OK);
    cr_assert_eq(bpm_elo_type.predict(m, burnley, city, 0, &b, NULL), BP_OK);
    cr_assert_gt(a.p_home, 0.6);
    cr_assert_gt(b.p_away, 0.5);
    cr_assert_gt(a.p_home, b.p_away, "home advantage helps the home side");
    cr_assert(isnan(a.exp_home_goals) && a.has_score_matrix == 0);
    bpm_elo_type.destroy(m);
}

Test(elo, contract)
{
    model_contract_check(&bpm_elo_type, NULL, matches, n_matches, fd_team_id(&teams, "Arsenal"),
                         fd_team_id(&teams, "Chelsea"));
}

Test(elo, history_without_draws_is_refused)
{
    bp_match_result *copy = malloc(n_matches * sizeof *copy);
    memcpy(copy, matches, n_matches * sizeof *copy);
    for (size_t k = 0; k < n_matches; k++) {
        if (copy[k].home_goals == copy[k].away_goals) {
            copy[k].home_goals++;
        }
    }
    void *m = mc_create(&bpm_elo_type, NULL);
    bp_match_set s = {sizeof s, 0, copy, n_matches, 0};
    bp_error err = {0};
    cr_assert_eq(bpm_elo_type.fit(m, &s, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "no draw") != NULL, "%s", err.msg);
    bpm_elo_type.destroy(m);
    free(copy);
}

Test(pi_rating, update_rule_by_hand)
{
    bpm_pi_params p;
    bpm_pi_defaults(&p);
    /* g(R) = sign(R) (10^(|R|/3) - 1): a rating of 3 is worth nine goals */
    cr_assert(NEAR(bpm_pi_goal_diff(&p, 3.0), 9.0, 1e-12));
    cr_assert(NEAR(bpm_pi_goal_diff(&p, -3.0), -9.0, 1e-12));
    cr_assert_eq(bpm_pi_goal_diff(&p, 0.0), 0.0);
    double rh[2] = {0, 0}, ra[2] = {0, 0};
    /* 2-0 home win from level ratings: error 2, psi = 3 log10(3) */
    bpm_pi_update(&p, rh, ra, 0, 1, 2, 0);
    double psi = 3.0 * log10(3.0);
    cr_assert(NEAR(rh[0], 0.035 * psi, 1e-12));
    cr_assert(NEAR(ra[0], 0.7 * 0.035 * psi, 1e-12));
    cr_assert(NEAR(ra[1], -0.035 * psi, 1e-12));
    cr_assert(NEAR(rh[1], -0.7 * 0.035 * psi, 1e-12));
    /* the next expectation for the same fixture favours the home side */
    cr_assert_gt(bpm_pi_expected(&p, rh, ra, 0, 1), 0.0);
    /* a result exactly as expected changes nothing */
    double r0[2] = {0, 0}, r1[2] = {0, 0};
    bpm_pi_update(&p, r0, r1, 0, 1, 1, 1);
    cr_assert(r0[0] == 0 && r0[1] == 0 && r1[0] == 0 && r1[1] == 0);
}

Test(pi_rating, contract)
{
    model_contract_check(&bpm_pi_rating_type, NULL, matches, n_matches,
                         fd_team_id(&teams, "Liverpool"), fd_team_id(&teams, "Everton"));
}

Test(pi_rating, params_are_validated)
{
    const char *bad[] = {"{\"learning_rate\": 2}", "{\"b\": 1}", "{\"c\": 0}",
                         "{\"min_games\": -1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *params = json_loads(bad[i], 0, NULL);
        void *m = NULL;
        bp_error err = {0};
        cr_assert_eq(bpm_pi_rating_type.create(NULL, params, &m, &err), BP_E_INVAL, "%s", bad[i]);
        json_decref(params);
    }
}
