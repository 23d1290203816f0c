/*
 * test_model_markets.c - markets from a score matrix, margin removal, scoring rules, the ordered
 * logit and the BFGS2 wrapper, checked against values worked out by hand.
 */
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>

#include "bpm.h"
#include "bpm_goals.h"
#include "bpm_margin.h"
#include "bpm_markets.h"
#include "bpm_metrics.h"
#include "bpm_ologit.h"
#include "bpm_opt.h"

#define DIM             BP_SCORE_DIM
#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))

static void setup(void)
{
    gsl_set_error_handler_off();
}

TestSuite(markets, .init = setup);
TestSuite(margin, .init = setup);
TestSuite(metrics, .init = setup);
TestSuite(ologit, .init = setup);
TestSuite(optimizer, .init = setup);

/*
 * A hand-made matrix with mass on seven scores:
 *   0-0 .10  1-0 .20  2-1 .15  1-1 .15  0-2 .10  3-0 .10  2-2 .20
 * By hand: home .45, draw .45, away .10; totals T=0 .10, T=1 .20, T=2 .25, T=3 .25, T=4 .20;
 * goal margins: +1 .35, +3 .10, 0 .45, -2 .10; both teams score .50.
 */
static void toy_matrix(double *score)
{
    memset(score, 0, DIM * DIM * sizeof *score);
    score[0 * DIM + 0] = 0.10;
    score[1 * DIM + 0] = 0.20;
    score[2 * DIM + 1] = 0.15;
    score[1 * DIM + 1] = 0.15;
    score[0 * DIM + 2] = 0.10;
    score[3 * DIM + 0] = 0.10;
    score[2 * DIM + 2] = 0.20;
}

static void assert_settle(bpm_settle s, double win, double half_win, double push, double half_loss,
                          double loss)
{
    cr_assert(NEAR(s.win, win, 1e-12), "win %g != %g", s.win, win);
    cr_assert(NEAR(s.half_win, half_win, 1e-12), "half_win %g != %g", s.half_win, half_win);
    cr_assert(NEAR(s.push, push, 1e-12), "push %g != %g", s.push, push);
    cr_assert(NEAR(s.half_loss, half_loss, 1e-12), "half_loss %g != %g", s.half_loss, half_loss);
    cr_assert(NEAR(s.loss, loss, 1e-12), "loss %g != %g", s.loss, loss);
}

Test(markets, one_x_two_double_chance_btts_on_a_hand_matrix)
{
    double score[DIM * DIM];
    toy_matrix(score);
    bpm_1x2 r = bpm_market_1x2(score);
    cr_assert(NEAR(r.home, 0.45, 1e-12) && NEAR(r.draw, 0.45, 1e-12) && NEAR(r.away, 0.10, 1e-12));
    bpm_double_chance dc = bpm_market_double_chance(score);
    cr_assert(NEAR(dc.home_or_draw, 0.90, 1e-12));
    cr_assert(NEAR(dc.home_or_away, 0.55, 1e-12));
    cr_assert(NEAR(dc.draw_or_away, 0.55, 1e-12));
    double yes, no;
    bpm_market_btts(score, &yes, &no);
    cr_assert(NEAR(yes, 0.50, 1e-12) && NEAR(no, 0.50, 1e-12));
    cr_assert(NEAR(bpm_market_correct_score(score, 2, 1), 0.15, 1e-15));
    cr_assert_eq(bpm_market_correct_score(score, DIM, 0), 0.0);

    double table[4], other;
    cr_assert_eq(bpm_market_correct_score_table(score, 1, table, &other, NULL), BP_OK);
    cr_assert(NEAR(table[0], 0.10, 1e-15) && NEAR(table[1], 0.0, 1e-15));
    cr_assert(NEAR(table[2], 0.20, 1e-15) && NEAR(table[3], 0.15, 1e-15));
    cr_assert(NEAR(other, 0.55, 1e-12), "any other score %g", other);
    bp_error err = {0};
    cr_assert_eq(bpm_market_correct_score_table(score, DIM, table, &other, &err), BP_E_INVAL);
}

Test(markets, totals_with_pushes_and_quarter_lines)
{
    double score[DIM * DIM];
    bpm_settle s;
    toy_matrix(score);
    cr_assert_eq(bpm_market_total(score, 2.5, BPM_OVER, &s, NULL), BP_OK);
    assert_settle(s, 0.45, 0, 0, 0, 0.55);
    cr_assert_eq(bpm_market_total(score, 2.0, BPM_OVER, &s, NULL), BP_OK);
    assert_settle(s, 0.45, 0, 0.25, 0, 0.30);
    /* 2.25 = half on 2.0 (pushes at T=2) and half on 2.5 (loses at T=2) */
    cr_assert_eq(bpm_market_total(score, 2.25, BPM_OVER, &s, NULL), BP_OK);
    assert_settle(s, 0.45, 0, 0, 0.25, 0.30);
    /* 2.75 = half on 2.5 (wins at T=3) and half on 3.0 (pushes at T=3) */
    cr_assert_eq(bpm_market_total(score, 2.75, BPM_OVER, &s, NULL), BP_OK);
    assert_settle(s, 0.20, 0.25, 0, 0, 0.55);
    cr_assert_eq(bpm_market_total(score, 2.75, BPM_UNDER, &s, NULL), BP_OK);
    assert_settle(s, 0.55, 0, 0, 0.25, 0.20);
    cr_assert_eq(bpm_market_total(score, 0.5, BPM_OVER, &s, NULL), BP_OK);
    assert_settle(s, 0.90, 0, 0, 0, 0.10);
    cr_assert_eq(bpm_market_total(score, 4.5, BPM_UNDER, &s, NULL), BP_OK);
    assert_settle(s, 1.0, 0, 0, 0, 0);

    /* Expected value per unit at evens on over 2.25: win .45, lose a half-stake .25, lose .30 */
    cr_assert_eq(bpm_market_total(score, 2.25, BPM_OVER, &s, NULL), BP_OK);
    cr_assert(NEAR(bpm_settle_ev(&s, 2.0), 0.45 - 0.125 - 0.30, 1e-12));
    double fair = bpm_settle_fair_price(&s);
    cr_assert(NEAR(bpm_settle_ev(&s, fair), 0.0, 1e-12));
    cr_assert(NEAR(fair, 1.0 + 0.425 / 0.45, 1e-12));

    bp_error err = {0};
    cr_assert_eq(bpm_market_total(score, 2.1, BPM_OVER, &s, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "2.1") != NULL, "%s", err.msg);
    cr_assert_eq(bpm_market_total(score, -0.5, BPM_OVER, &s, NULL), BP_E_INVAL);
    cr_assert_eq(bpm_market_total(score, NAN, BPM_OVER, &s, NULL), BP_E_INVAL);
}

Test(markets, asian_handicap_quarter_lines_and_pushes)
{
    double score[DIM * DIM];
    bpm_settle s;
    toy_matrix(score);
    /* home -0.25 = half on 0 (draw pushes) + half on -0.5 (draw loses) */
    cr_assert_eq(bpm_market_asian_handicap(score, -0.25, BPM_SIDE_HOME, &s, NULL), BP_OK);
    assert_settle(s, 0.45, 0, 0, 0.45, 0.10);
    cr_assert(NEAR(bpm_settle_ev(&s, 2.0), 0.45 - 0.225 - 0.10, 1e-12));
    /* home -0.75 = half on -0.5 + half on -1: a one-goal win is a half-win */
    cr_assert_eq(bpm_market_asian_handicap(score, -0.75, BPM_SIDE_HOME, &s, NULL), BP_OK);
    assert_settle(s, 0.10, 0.35, 0, 0, 0.55);
    /* home -1: a one-goal win pushes */
    cr_assert_eq(bpm_market_asian_handicap(score, -1.0, BPM_SIDE_HOME, &s, NULL), BP_OK);
    assert_settle(s, 0.10, 0, 0.35, 0, 0.55);
    /* away +0.25 mirrors home -0.25 */
    cr_assert_eq(bpm_market_asian_handicap(score, 0.25, BPM_SIDE_AWAY, &s, NULL), BP_OK);
    assert_settle(s, 0.10, 0.45, 0, 0, 0.45);
    /* away +2: loses only the 3-0; away +3 pushes it */
    cr_assert_eq(bpm_market_asian_handicap(score, 2.0, BPM_SIDE_AWAY, &s, NULL), BP_OK);
    assert_settle(s, 0.90, 0, 0, 0, 0.10);
    cr_assert_eq(bpm_market_asian_handicap(score, 3.0, BPM_SIDE_AWAY, &s, NULL), BP_OK);
    assert_settle(s, 0.90, 0, 0.10, 0, 0);
    bp_error err = {0};
    cr_assert_eq(bpm_market_asian_handicap(score, 0.3, BPM_SIDE_HOME, &s, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "0.3") != NULL, "%s", err.msg);
}

Test(markets, identities_on_a_dixon_coles_matrix)
{
    double score[DIM * DIM];
    bpm_goals_score_matrix(1.6, 1.1, -0.08, score);
    cr_assert(NEAR(bpm_matrix_total(score), 1.0, 1e-12));
    bpm_1x2 r = bpm_market_1x2(score);
    bpm_settle s, o, u;
    /* AH 0 is draw-no-bet */
    cr_assert_eq(bpm_market_asian_handicap(score, 0.0, BPM_SIDE_HOME, &s, NULL), BP_OK);
    assert_settle(s, r.home, 0, r.draw, 0, r.away);
    /* home -h and away +h are mirror images */
    for (double line = -2.75; line <= 2.75; line += 0.25) {
        bpm_settle h, a;
        cr_assert_eq(bpm_market_asian_handicap(score, line, BPM_SIDE_HOME, &h, NULL), BP_OK);
        cr_assert_eq(bpm_market_asian_handicap(score, -line, BPM_SIDE_AWAY, &a, NULL), BP_OK);
        assert_settle(a, h.loss, h.half_loss, h.push, h.half_win, h.win);
        cr_assert(NEAR(h.win + h.half_win + h.push + h.half_loss + h.loss, 1.0, 1e-12));
    }
    /* over and under at the same line are mirror images too */
    for (double line = 0.5; line <= 4.5; line += 0.25) {
        cr_assert_eq(bpm_market_total(score, line, BPM_OVER, &o, NULL), BP_OK);
        cr_assert_eq(bpm_market_total(score, line, BPM_UNDER, &u, NULL), BP_OK);
        assert_settle(u, o.loss, o.half_loss, o.push, o.half_win, o.win);
    }
    /* P(total < 0.5) is the 0-0 cell */
    cr_assert_eq(bpm_market_total(score, 0.5, BPM_UNDER, &u, NULL), BP_OK);
    cr_assert(NEAR(u.win, score[0], 1e-15));
}

/* ---- margin removal ------------------------------------------------------------------------ */

Test(margin, multiplicative_and_additive_by_hand)
{
    const double odds[3] = {2.0, 3.0, 4.0}; /* 1/2 + 1/3 + 1/4 = 13/12 */
    double p[3], param = -1;
    cr_assert(NEAR(bpm_booksum(odds, 3), 13.0 / 12.0, 1e-15));
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_MULTIPLICATIVE, odds, 3, p, &param, NULL), BP_OK);
    cr_assert(NEAR(p[0], 6.0 / 13.0, 1e-15) && NEAR(p[1], 4.0 / 13.0, 1e-15) &&
              NEAR(p[2], 3.0 / 13.0, 1e-15));
    cr_assert_eq(param, 0.0);
    /* additive: each loses (13/12 - 1) / 3 = 1/36 */
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_ADDITIVE, odds, 3, p, NULL, NULL), BP_OK);
    cr_assert(NEAR(p[0], 0.5 - 1.0 / 36, 1e-15) && NEAR(p[1], 1.0 / 3 - 1.0 / 36, 1e-15) &&
              NEAR(p[2], 0.25 - 1.0 / 36, 1e-15));
}

/*
 * For the solved methods we build a book from known fair probabilities and a known parameter by
 * inverting each method's formula, then check the method recovers both:
 *   power       pi = p^(1/k)
 *   shin        pi_i = sqrt(S) sqrt((1-z) p_i^2 + z p_i), sqrt(S) = sum_i sqrt((1-z) p_i^2 + z p_i)
 *   odds ratio  pi = c p / (1 - p + c p)
 */
static const double fair[3] = {0.52, 0.27, 0.21};

static void recover(bpm_margin_method m, const double *pi, double expect_param)
{
    double odds[3], p[3], param = 0;
    for (int i = 0; i < 3; i++) {
        odds[i] = 1.0 / pi[i];
    }
    bp_error err = {0};
    cr_assert_eq(bpm_remove_margin(m, odds, 3, p, &param, &err), BP_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        cr_assert(NEAR(p[i], fair[i], 1e-12), "%s p[%d] = %.15f, want %.15f",
                  bpm_margin_method_name(m), i, p[i], fair[i]);
    }
    cr_assert(NEAR(param, expect_param, 1e-9), "%s parameter %.12f, want %.12f",
              bpm_margin_method_name(m), param, expect_param);
}

Test(margin, power_shin_odds_ratio_recover_a_constructed_book)
{
    double pi[3];
    double k = 1.08;
    for (int i = 0; i < 3; i++) {
        pi[i] = pow(fair[i], 1.0 / k);
    }
    recover(BPM_MARGIN_POWER, pi, k);

    double z = 0.025, root_s = 0.0;
    for (int i = 0; i < 3; i++) {
        root_s += sqrt((1 - z) * fair[i] * fair[i] + z * fair[i]);
    }
    for (int i = 0; i < 3; i++) {
        pi[i] = root_s * sqrt((1 - z) * fair[i] * fair[i] + z * fair[i]);
    }
    recover(BPM_MARGIN_SHIN, pi, z);

    double c = 1.13;
    for (int i = 0; i < 3; i++) {
        pi[i] = c * fair[i] / (1 - fair[i] + c * fair[i]);
    }
    recover(BPM_MARGIN_ODDS_RATIO, pi, c);
}

Test(margin, favourite_longshot_correction_orders_the_methods)
{
    /* A margin-heavy book with a longshot: Shin and power take more off the longshot than
     * multiplicative does, so the favourite ends higher. */
    const double odds[3] = {1.30, 5.0, 9.0};
    double mult[3], power[3], shin[3], ratio[3];
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_MULTIPLICATIVE, odds, 3, mult, NULL, NULL), BP_OK);
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_POWER, odds, 3, power, NULL, NULL), BP_OK);
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_SHIN, odds, 3, shin, NULL, NULL), BP_OK);
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_ODDS_RATIO, odds, 3, ratio, NULL, NULL), BP_OK);
    cr_assert_gt(power[0], mult[0]);
    cr_assert_gt(shin[0], mult[0]);
    cr_assert_gt(ratio[0], mult[0]);
    cr_assert_lt(shin[2], mult[2]);
    for (int m = 0; m < 5; m++) {
        double p[3];
        if (bpm_remove_margin((bpm_margin_method)m, odds, 3, p, NULL, NULL) == BP_OK) {
            cr_assert(NEAR(p[0] + p[1] + p[2], 1.0, 1e-12));
        }
    }
}

Test(margin, no_margin_and_negative_margin)
{
    const double fair_book[2] = {2.0, 2.0};
    double p[2], param;
    for (int m = 0; m < 5; m++) {
        cr_assert_eq(bpm_remove_margin((bpm_margin_method)m, fair_book, 2, p, &param, NULL), BP_OK);
        cr_assert(p[0] == 0.5 && p[1] == 0.5);
    }
    /* an arbitrage book (sum 0.95): Shin refuses, the others still normalise */
    const double arb[2] = {2.0, 1.0 / 0.45};
    bp_error err = {0};
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_SHIN, arb, 2, p, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "negative margin") != NULL, "%s", err.msg);
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_POWER, arb, 2, p, &param, NULL), BP_OK);
    cr_assert_lt(param, 1.0);
    cr_assert(NEAR(p[0] + p[1], 1.0, 1e-12));
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_ODDS_RATIO, arb, 2, p, &param, NULL), BP_OK);
    cr_assert_lt(param, 1.0);
}

Test(margin, bad_books_are_refused_with_a_reason)
{
    double p[3];
    bp_error err = {0};
    const double one[1] = {2.0};
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_SHIN, one, 1, p, NULL, &err), BP_E_INVAL);
    const double bad[3] = {2.0, 1.0, 4.0};
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_POWER, bad, 3, p, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "price 1") != NULL, "%s", err.msg);
    const double nan_book[3] = {2.0, NAN, 4.0};
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_MULTIPLICATIVE, nan_book, 3, p, NULL, &err),
                 BP_E_INVAL);
    /* additive on a 20% margin with a 50.0 longshot would go negative */
    const double steep[3] = {1.25, 3.0, 50.0};
    cr_assert_eq(bpm_remove_margin(BPM_MARGIN_ADDITIVE, steep, 3, p, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "additive") != NULL, "%s", err.msg);
    bpm_margin_method m;
    cr_assert_eq(bpm_margin_method_parse("shin", &m, NULL), BP_OK);
    cr_assert_eq(m, BPM_MARGIN_SHIN);
    cr_assert_eq(bpm_margin_method_parse("shine", &m, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "shine") != NULL);
}

/* ---- scoring rules ------------------------------------------------------------------------- */

Test(metrics, scoring_rules_by_hand)
{
    const double sure_home[3] = {1, 0, 0}, sure_away[3] = {0, 0, 1};
    const double third[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
    const double p[3] = {0.5, 0.3, 0.2};
    cr_assert_eq(bpm_rps(sure_home, BPM_HOME), 0.0);
    cr_assert(NEAR(bpm_rps(sure_away, BPM_HOME), 1.0, 1e-15));
    cr_assert(NEAR(bpm_rps(third, BPM_DRAW), 1.0 / 9, 1e-15));
    /* (0.5 - 1)^2 + (0.8 - 1)^2 = 0.29 -> 0.145 */
    cr_assert(NEAR(bpm_rps(p, BPM_HOME), 0.145, 1e-15));
    /* away: 0.5^2 + 0.8^2 = 0.89 -> 0.445 */
    cr_assert(NEAR(bpm_rps(p, BPM_AWAY), 0.445, 1e-15));
    cr_assert(NEAR(bpm_log_loss(p, BPM_DRAW), -log(0.3), 1e-15));
    cr_assert(NEAR(bpm_log_loss(sure_away, BPM_HOME), -log(1e-15), 1e-9));
    cr_assert(NEAR(bpm_brier(p, BPM_HOME), 0.25 + 0.09 + 0.04, 1e-15));
    cr_assert_eq(bpm_hit(p, BPM_HOME), 1);
    cr_assert_eq(bpm_hit(p, BPM_DRAW), 0);
    cr_assert_eq(bpm_hit(third, BPM_HOME), 1); /* ties go to the earlier outcome */
}

Test(metrics, accumulator_and_calibration_table)
{
    bpm_scores s;
    cr_assert_eq(bpm_scores_init(&s, 10, NULL), BP_OK);
    const double p[3] = {0.55, 0.25, 0.20};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(bpm_scores_add(&s, p, k < 2 ? BPM_HOME : BPM_AWAY, NULL), BP_OK);
    }
    cr_assert_eq(s.n, 4);
    double want = (2 * bpm_rps(p, BPM_HOME) + 2 * bpm_rps(p, BPM_AWAY)) / 4;
    cr_assert(NEAR(bpm_scores_rps(&s), want, 1e-15));
    cr_assert(NEAR(bpm_scores_accuracy(&s), 0.5, 1e-15));
    /* the 0.55 forecasts sit in bin 5 and came true 2 times out of 4 */
    cr_assert_eq(s.bin_count[5], 4);
    cr_assert(NEAR(s.bin_observed[5] / 4, 0.5, 1e-15));
    cr_assert(NEAR(s.bin_forecast[5] / 4, 0.55, 1e-15));
    json_t *j = bpm_scores_json(&s);
    cr_assert_not_null(j);
    cr_assert_eq(json_integer_value(json_object_get(j, "n")), 4);
    cr_assert_eq(json_array_size(json_object_get(j, "calibration")), 2); /* bins 2 and 5 */
    json_decref(j);

    bp_error err = {0};
    const double bad[3] = {0.5, 0.5, 0.5};
    cr_assert_eq(bpm_scores_add(&s, bad, BPM_HOME, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "sums to") != NULL, "%s", err.msg);
    cr_assert_eq(bpm_scores_add(&s, p, 3, &err), BP_E_INVAL);
    cr_assert_eq(s.n, 4);
    cr_assert_eq(bpm_scores_init(&s, 0, &err), BP_E_INVAL);
}

/* ---- ordered logit and the optimiser --------------------------------------------------------- */

Test(ologit, recovers_known_coefficients_from_simulated_outcomes)
{
    /* Simulate 20000 outcomes from beta = 0.005, c1 = -1.0, c2 = 0.2 over x in [-300, 300]. */
    const bpm_ologit truth = {0.005, -1.0, 0.2};
    enum { N = 20000 };
    static double x[N];
    static int y[N];
    bpm_rng rng;
    bpm_rng_seed(&rng, 42);
    for (int k = 0; k < N; k++) {
        x[k] = -300.0 + 600.0 * (double)bpm_rng_below(&rng, 1000000) / 1e6;
        double p[3];
        bpm_ologit_predict(&truth, x[k], p);
        double u = (double)bpm_rng_below(&rng, 1u << 30) / (double)(1u << 30);
        y[k] = u < p[BPM_AWAY] ? BPM_AWAY : u < p[BPM_AWAY] + p[BPM_DRAW] ? BPM_DRAW : BPM_HOME;
    }
    bpm_ologit fit;
    double ll;
    bp_error err = {0};
    cr_assert_eq(bpm_ologit_fit(x, y, N, &fit, &ll, &err), BP_OK, "%s", err.msg);
    /* standard errors at n = 20000 are ~1e-4 for beta and ~0.03 for the cuts */
    cr_assert(NEAR(fit.beta, truth.beta, 4e-4), "beta %g", fit.beta);
    cr_assert(NEAR(fit.c1, truth.c1, 0.1), "c1 %g", fit.c1);
    cr_assert(NEAR(fit.c2, truth.c2, 0.1), "c2 %g", fit.c2);
    cr_assert_lt(ll, 0.0);
    double p[3];
    bpm_ologit_predict(&fit, 0.0, p);
    cr_assert(NEAR(p[0] + p[1] + p[2], 1.0, 1e-12));
}

Test(ologit, refuses_history_without_draws)
{
    const double x[4] = {1, 2, 3, 4};
    const int y[4] = {BPM_HOME, BPM_AWAY, BPM_HOME, BPM_AWAY};
    bpm_ologit fit;
    bp_error err = {0};
    cr_assert_eq(bpm_ologit_fit(x, y, 4, &fit, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "no draw") != NULL, "%s", err.msg);
}

/* Rosenbrock: a curved valley that a memoryless BFGS needs many steps for. */
static double rosenbrock(const double *x, double *g, void *ud)
{
    (void)ud;
    double a = 1 - x[0], b = x[1] - x[0] * x[0];
    if (g != NULL) {
        g[0] = -2 * a - 400 * x[0] * b;
        g[1] = 200 * b;
    }
    return a * a + 100 * b * b;
}

Test(optimizer, converges_or_reports_the_limit)
{
    double x[2] = {-1.2, 1.0};
    bpm_min_opts o = {2000, 1e-8, 1e-6, 0.01, 0.1};
    bpm_min_info info;
    bp_error err = {0};
    cr_assert_eq(bpm_minimize(2, x, rosenbrock, NULL, &o, &info, "rosenbrock", &err), BP_OK, "%s",
                 err.msg);
    cr_assert(NEAR(x[0], 1.0, 1e-5) && NEAR(x[1], 1.0, 1e-5), "x = %g %g", x[0], x[1]);

    double y[2] = {-1.2, 1.0};
    o.max_iter = 3;
    cr_assert_eq(bpm_minimize(2, y, rosenbrock, NULL, &o, &info, "rosenbrock", &err), BP_E_LIMIT);
    cr_assert(strstr(err.msg, "did not converge after 3 iterations") != NULL, "%s", err.msg);
    cr_assert(y[0] != -1.2, "the last iterate is handed back for a restart");
}
