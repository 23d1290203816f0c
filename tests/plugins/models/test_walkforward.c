/*
 * test_walkforward.c - the walk-forward itself (models/common/bpm_walkforward.c), on small
 * histories built by hand so every expected value can be worked out on paper:
 *   - no look-ahead: every fit that predicts day d saw exactly the matches of the days before d
 *     (a kick-off earlier the same day never leaks), with as_of at d's midnight;
 *   - the refit cadence (refit_days), days with nothing to score, a failed fit keeping the
 *     previous one and the next scored day retrying;
 *   - the mask: both teams with min_games on earlier days inside window_days (the boundary day
 *     included), the kick-off range, the odds condition;
 *   - the ensemble: each day's weights come from earlier days' forecasts only, equal weights
 *     until min_rows forecasts exist;
 *   - the scores of a row (RPS, log loss, Brier, accuracy, the difference to a reference and its
 *     bootstrap over whole match days) against values computed by hand.
 *
 * The model under the walk-forward is a recorder written for this test: a bp_model_type that
 * remembers every training set it is given and forecasts the Laplace-smoothed outcome
 * frequencies of its current training set, so a forecast also tells which fit made it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>

#include "bpm.h"
#include "bpm_blend.h"
#include "bpm_metrics.h"
#include "bpm_walkforward.h"

#define NEAR(a, b, tol) (fabs((a) - (b)) <= (tol))
#define DAY_MS          86400000LL
#define HOUR_MS         3600000LL
/* 2023-08-11, a Friday: the days of the hand-made histories count from here */
#define DAY0 19580LL

static void setup(void)
{
    gsl_set_error_handler_off(); /* bpm_wf_blend runs BFGS2; the core does this in the daemon */
}

TestSuite(walkforward, .init = setup);

/* ---- a hand-made history ------------------------------------------------------------------ */

#define MAX_MATCHES 32

typedef struct history {
    bp_match_result m[MAX_MATCHES];
    size_t n;
} history;

static void add(history *h, int day, int hour, int64_t home, int64_t away, int hg, int ag)
{
    cr_assert_lt(h->n, MAX_MATCHES);
    bp_match_result *r = &h->m[h->n];
    memset(r, 0, sizeof *r);
    r->match_id = 100 + (int64_t)h->n;
    r->kickoff_ms = (DAY0 + day) * DAY_MS + hour * HOUR_MS;
    r->home_team = home;
    r->away_team = away;
    r->home_goals = hg;
    r->away_goals = ag;
    h->n++;
}

/* ---- the recorder ------------------------------------------------------------------------- */

#define MAX_CALLS 64

typedef struct recorder {
    /* every fit() call: the training set's size, as_of and last kick-off */
    int fit_calls;
    size_t fit_n[MAX_CALLS];
    int64_t fit_as_of[MAX_CALLS];
    int fail_call; /* this fit() call (1-based) fails; 0 = none */
    /* the current fit */
    bool fitted;
    size_t cur_n;
    int64_t cur_last_kickoff;
    int cur_counts[3];
    /* every predict() call: the kick-off asked about and the size of the fit that answered */
    int predictions;
    int64_t pred_kickoff[MAX_CALLS];
    size_t pred_fit_n[MAX_CALLS];
    int leaks; /* predictions made by a fit that had seen a match of the predicted day or later */
} recorder;

static int rec_create(void *plugin_state, const json_t *params, void **out_model, bp_error *err)
{
    (void)params;
    (void)err;
    *out_model = plugin_state;
    return BP_OK;
}

static int rec_fit(void *model, const bp_match_set *train, json_t **out_metrics, bp_error *err)
{
    recorder *r = model;
    int call = r->fit_calls++;
    cr_assert_lt(call, MAX_CALLS);
    r->fit_n[call] = train->n_matches;
    r->fit_as_of[call] = train->as_of_ms;
    if (call + 1 == r->fail_call) {
        return bp_err(err, BP_E_INVAL, "recorder: fit %d refused on purpose", call + 1);
    }
    memset(r->cur_counts, 0, sizeof r->cur_counts);
    for (size_t k = 0; k < train->n_matches; k++) {
        const bp_match_result *x = &train->matches[k];
        r->cur_counts[bpm_outcome(x->home_goals, x->away_goals)]++;
    }
    r->cur_n = train->n_matches;
    r->cur_last_kickoff = train->matches[train->n_matches - 1].kickoff_ms;
    r->fitted = true;
    if (out_metrics) {
        *out_metrics = json_object();
    }
    return BP_OK;
}

/* The Laplace-smoothed outcome frequencies of a training set with these counts. */
static void laplace(const int counts[3], double p[3])
{
    double total = counts[0] + counts[1] + counts[2] + 3.0;
    for (int c = 0; c < 3; c++) {
        p[c] = (counts[c] + 1.0) / total;
    }
}

static int rec_predict(void *model, int64_t home_team, int64_t away_team, int64_t kickoff_ms,
                       bp_prediction *out, bp_error *err)
{
    recorder *r = model;
    (void)home_team;
    (void)away_team;
    if (!r->fitted) {
        return bp_err(err, BP_E_STATE, "recorder: not fitted");
    }
    cr_assert_lt(r->predictions, MAX_CALLS);
    r->pred_kickoff[r->predictions] = kickoff_ms;
    r->pred_fit_n[r->predictions] = r->cur_n;
    r->predictions++;
    r->leaks += bpm_day_of(r->cur_last_kickoff) >= bpm_day_of(kickoff_ms);
    memset(out, 0, sizeof *out);
    double p[3];
    laplace(r->cur_counts, p);
    out->p_home = p[0];
    out->p_draw = p[1];
    out->p_away = p[2];
    return BP_OK;
}

static void rec_destroy(void *model)
{
    (void)model; /* the recorder belongs to the test */
}

static const bp_model_type recorder_type = {
    .struct_size = (uint32_t)sizeof(bp_model_type),
    .state_version = 1,
    .name = "recorder",
    .description = "remembers its training sets (test only)",
    .create = rec_create,
    .fit = rec_fit,
    .predict = rec_predict,
    .destroy = rec_destroy,
};

static void all_true(bool *eval, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        eval[k] = true;
    }
}

/* Walk the recorder over h, scoring the matches eval marks (NULL: every match). */
static void run(const history *h, const bool *eval, int refit_days, recorder *rec, bpm_wf_model *w)
{
    bool all[MAX_MATCHES];
    all_true(all, h->n);
    memset(w, 0, sizeof *w);
    w->label = "recorder";
    w->type = &recorder_type;
    w->plugin_state = rec;
    w->refit_days = refit_days;
    bp_error err = {0};
    cr_assert_eq(bpm_wf_run(h->m, h->n, eval ? eval : all, w, NULL, NULL, &err), BP_OK, "%s",
                 err.msg);
}

/* ---- no look-ahead -------------------------------------------------------------------------- */

Test(walkforward, every_fit_saw_only_the_days_before_the_day_it_predicts)
{
    history h = {.n = 0};
    /* teams 1..4; two kick-offs on day 0 and on day 3 (an early and a late one) */
    add(&h, 0, 12, 1, 2, 1, 0); /* H */
    add(&h, 0, 15, 3, 4, 1, 1); /* D */
    add(&h, 1, 19, 2, 3, 0, 2); /* A */
    add(&h, 3, 11, 4, 1, 2, 0); /* H */
    add(&h, 3, 20, 1, 3, 3, 1); /* H */
    add(&h, 4, 19, 2, 4, 0, 0); /* D */
    recorder rec = {0};
    bpm_wf_model w;
    run(&h, NULL, 1, &rec, &w);

    /* day 0 has no earlier day to learn from; days 1, 3 and 4 each get one fit */
    cr_assert_eq(w.fits, 3);
    cr_assert_eq(w.fit_failures, 0);
    cr_assert_eq(w.predicted, 4);
    cr_assert_eq(w.unpredicted, 2);
    const size_t want_n[3] = {2, 3, 5};
    const int want_day[3] = {1, 3, 4};
    for (int f = 0; f < 3; f++) {
        cr_assert_eq(rec.fit_n[f], want_n[f], "fit %d trained on %zu matches", f, rec.fit_n[f]);
        cr_assert_eq(rec.fit_as_of[f], (DAY0 + want_day[f]) * DAY_MS,
                     "fit %d: as_of is the midnight of the day it predicts", f);
    }
    /* the 20:00 match of day 3 is predicted by the fit that predicted 11:00, which had not seen
     * the 11:00 result */
    cr_assert_eq(rec.leaks, 0, "a prediction came from a fit that saw its day");
    cr_assert_eq(rec.predictions, 4);
    cr_assert_eq(rec.pred_fit_n[1], 3);
    cr_assert_eq(rec.pred_fit_n[2], 3);

    /* the forecasts are the earlier days' outcome frequencies, (count + 1) / (n + 3):
     * day 1 from H, D: 2/5, 2/5, 1/5; day 3 from H, D, A: 2/6 each; day 4 from H D A H H: 4/8,
     * 2/8, 2/8 */
    for (size_t k = 0; k < 2; k++) {
        cr_assert(isnan(w.p[k][0]) && isnan(w.p[k][1]) && isnan(w.p[k][2]));
    }
    const double want[4][3] = {{0.4, 0.4, 0.2},
                               {1.0 / 3, 1.0 / 3, 1.0 / 3},
                               {1.0 / 3, 1.0 / 3, 1.0 / 3},
                               {0.5, 0.25, 0.25}};
    for (size_t k = 2; k < h.n; k++) {
        for (int c = 0; c < 3; c++) {
            cr_assert(NEAR(w.p[k][c], want[k - 2][c], 1e-15), "match %zu outcome %d: %.17g", k, c,
                      w.p[k][c]);
        }
    }
    bpm_wf_model_free(&w);
}

/* ---- refit cadence -------------------------------------------------------------------------- */

Test(walkforward, refits_when_refit_days_have_passed_on_a_day_to_score)
{
    history h = {.n = 0};
    const int days[] = {0, 1, 2, 3, 5, 6, 9, 10};
    for (size_t i = 0; i < sizeof days / sizeof days[0]; i++) {
        add(&h, days[i], 15, 1 + (int64_t)(i % 2), 2 - (int64_t)(i % 2), (int)(i % 3), 1);
    }
    /* every 3 days: fits on day 1 (the first day with history), 5 (4 days later), 9 (4 later);
     * days 2, 3, 6 and 10 reuse the last fit */
    recorder rec = {0};
    bpm_wf_model w;
    run(&h, NULL, 3, &rec, &w);
    cr_assert_eq(w.fits, 3);
    const size_t want_n[] = {1, 4, 6};
    for (int f = 0; f < 3; f++) {
        cr_assert_eq(rec.fit_n[f], want_n[f], "fit %d trained on %zu", f, rec.fit_n[f]);
    }
    const size_t used[] = {1, 1, 1, 4, 4, 6, 6}; /* the fit that predicted days 1..10 */
    cr_assert_eq(rec.predictions, 7);
    for (int k = 0; k < 7; k++) {
        cr_assert_eq(rec.pred_fit_n[k], used[k], "prediction %d made by a fit of %zu matches", k,
                     rec.pred_fit_n[k]);
    }
    cr_assert_eq(rec.leaks, 0);
    bpm_wf_model_free(&w);

    /* a day with nothing to score triggers no fit: with day 5 left out, the second fit waits for
     * day 6 (5 days after day 1), then day 9 */
    bool eval[MAX_MATCHES];
    all_true(eval, h.n);
    eval[4] = false;
    recorder rec2 = {0};
    run(&h, eval, 3, &rec2, &w);
    cr_assert_eq(w.fits, 3);
    cr_assert_eq(rec2.fit_n[1], 5);
    cr_assert_eq(rec2.fit_n[2], 6);
    cr_assert_eq(w.unpredicted + w.predicted, 7);
    bpm_wf_model_free(&w);
    eval[4] = true;

    /* a failed fit keeps the previous one for its day and is retried on the next scored day */
    recorder rec3 = {.fail_call = 2};
    run(&h, eval, 3, &rec3, &w);
    cr_assert_eq(w.fits, 4);
    cr_assert_eq(w.fit_failures, 1);
    cr_assert_str_eq(w.first_failure, "recorder: fit 2 refused on purpose");
    const size_t tried[] = {1, 4, 5, 6}; /* day 1, day 5 (refused), day 6 (retry), day 9 */
    for (int f = 0; f < 4; f++) {
        cr_assert_eq(rec3.fit_n[f], tried[f], "fit call %d trained on %zu", f, rec3.fit_n[f]);
    }
    cr_assert_eq(rec3.pred_fit_n[3], 1, "day 5 is predicted by the day-1 fit");
    cr_assert_eq(rec3.pred_fit_n[4], 5, "day 6 by the retried fit");
    cr_assert_eq(w.predicted, 7);
    bpm_wf_model_free(&w);

    /* refit_days below 1 is refused */
    bp_error err = {0};
    w = (bpm_wf_model){.label = "recorder", .type = &recorder_type, .plugin_state = &rec};
    cr_assert_eq(bpm_wf_run(h.m, h.n, eval, &w, NULL, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "refit_days") != NULL, "%s", err.msg);
}

static int cancel_at_once(void *ud)
{
    (void)ud;
    return 1;
}

Test(walkforward, cancel_stops_the_run)
{
    history h = {.n = 0};
    add(&h, 0, 15, 1, 2, 1, 0);
    add(&h, 1, 15, 2, 1, 1, 0);
    bool eval[MAX_MATCHES];
    all_true(eval, h.n);
    recorder rec = {0};
    bpm_wf_model w = {
        .label = "recorder", .type = &recorder_type, .plugin_state = &rec, .refit_days = 1};
    bp_error err = {0};
    cr_assert_eq(bpm_wf_run(h.m, h.n, eval, &w, cancel_at_once, NULL, &err), BP_E_CANCELLED);
    cr_assert_null(w.p, "a cancelled run leaves no output behind");
    cr_assert_eq(rec.fit_calls, 0);
}

/* ---- the mask ------------------------------------------------------------------------------- */

/* A = 1, B = 2, C = 3. A and B meet twice on day 2 (a data quirk, but it shows that a match
 * earlier the same day never counts). */
static void mask_history(history *h)
{
    add(h, 0, 10, 1, 2, 1, 0);  /* k0 A-B */
    add(h, 0, 15, 3, 1, 1, 0);  /* k1 C-A, same day */
    add(h, 1, 15, 2, 3, 1, 0);  /* k2 B-C */
    add(h, 2, 12, 1, 2, 1, 0);  /* k3 A-B */
    add(h, 2, 17, 1, 2, 1, 0);  /* k4 A-B again, same day as k3 */
    add(h, 12, 15, 1, 2, 1, 0); /* k5 A-B, day 2 is exactly 10 days back */
    add(h, 13, 15, 3, 1, 1, 0); /* k6 C-A, C's last match 12 days back */
}

static void assert_mask(const history *h, const bpm_wf_mask_opts *o, const bool *has_odds,
                        const char *want)
{
    bool out[MAX_MATCHES];
    bpm_wf_mask(h->m, h->n, o, has_odds, out);
    for (size_t k = 0; k < h->n; k++) {
        cr_assert_eq(out[k], want[k] == 'T',
                     "match k%zu: mask %d, want %c (min_games %d, window %d)", k, out[k], want[k],
                     o->min_games, o->window_days);
    }
}

Test(walkforward, mask_counts_earlier_days_inside_the_window)
{
    history h = {.n = 0};
    mask_history(&h);
    /* two games each: k3 (A: k0 k1; B: k0 k2), k4 (the same, k3 being the same day) and k5
     * (k3 and k4, exactly 10 days back); k6: C has nothing in the window */
    bpm_wf_mask_opts two = {0, 0, 10, 2};
    assert_mask(&h, &two, NULL, "FFFTTTF");
    /* three games: k4 would reach them only by counting k3 of its own day */
    bpm_wf_mask_opts three = {0, 0, 10, 3};
    assert_mask(&h, &three, NULL, "FFFFFFF");
    /* one game each: not k1 (A's only earlier match is the same day's k0), k2 on; a 9-day window
     * no longer reaches day 2 from k5 */
    bpm_wf_mask_opts one = {0, 0, 10, 1};
    assert_mask(&h, &one, NULL, "FFTTTTF");
    bpm_wf_mask_opts shorter = {0, 0, 9, 1};
    assert_mask(&h, &shorter, NULL, "FFTTTFF");
    /* a kick-off range [k3, k5) and no odds for k4 */
    bool odds[MAX_MATCHES];
    all_true(odds, h.n);
    odds[4] = false;
    bpm_wf_mask_opts range = {h.m[3].kickoff_ms, h.m[5].kickoff_ms, 10, 1};
    assert_mask(&h, &range, odds, "FFFTFFF");
    bpm_wf_mask_opts none = {0, 0, 10, 0};
    assert_mask(&h, &none, odds, "TTTTFTT");
}

/* ---- the ensemble --------------------------------------------------------------------------- */

/* Two matches a day on days 0..3, outcomes H, A, D, H, A, H, D, A. */
static void blend_history(history *h)
{
    const int goals[8][2] = {{1, 0}, {0, 1}, {1, 1}, {2, 0}, {0, 2}, {3, 1}, {0, 0}, {1, 2}};
    for (int k = 0; k < 8; k++) {
        add(h, k / 2, 12 + k % 2, 1 + k % 2, 3 + k % 2, goals[k][0], goals[k][1]);
    }
}

/* Member a puts 0.9 on the observed outcome of matches before `wrong_from` and 0.9 on another
 * outcome after; member b is uniform. */
static void member_forecasts(const history *h, size_t wrong_from, double (*pa)[3], double (*pb)[3])
{
    for (size_t k = 0; k < h->n; k++) {
        int o = bpm_outcome(h->m[k].home_goals, h->m[k].away_goals);
        int c = k < wrong_from ? o : (o + 1) % 3;
        for (int j = 0; j < 3; j++) {
            pa[k][j] = j == c ? 0.9 : 0.05;
            pb[k][j] = 1.0 / 3;
        }
    }
}

/* The RPS-minimising weights of a and b on the matches rows[0..n_rows), computed directly. */
static void weights_on(const history *h, double (*pa)[3], double (*pb)[3], const size_t *rows,
                       size_t n_rows, double w[2])
{
    double p[MAX_MATCHES * 2 * 3];
    int y[MAX_MATCHES];
    for (size_t r = 0; r < n_rows; r++) {
        size_t k = rows[r];
        memcpy(p + (r * 2) * 3, pa[k], sizeof pa[k]);
        memcpy(p + (r * 2 + 1) * 3, pb[k], sizeof pb[k]);
        y[r] = bpm_outcome(h->m[k].home_goals, h->m[k].away_goals);
    }
    bp_error err = {0};
    cr_assert_eq(bpm_blend_weights(p, y, n_rows, 2, w, NULL, "test", &err), BP_OK, "%s", err.msg);
}

static void assert_blend(double (*out)[3], double (*pa)[3], double (*pb)[3], size_t k,
                         const double w[2])
{
    for (int j = 0; j < 3; j++) {
        cr_assert(NEAR(out[k][j], w[0] * pa[k][j] + w[1] * pb[k][j], 1e-12),
                  "match %zu outcome %d: %.17g with weights %g/%g", k, j, out[k][j], w[0], w[1]);
    }
}

Test(walkforward, ensemble_weights_come_from_earlier_days_only)
{
    history h = {.n = 0};
    blend_history(&h);
    /* a is right on days 0..2 and wrong on day 3: a blend that peeked at day 3 would move weight
     * to b */
    double pa[8][3], pb[8][3];
    member_forecasts(&h, 6, pa, pb);
    bpm_wf_model a = {.p = pa}, b = {.p = pb};
    const bpm_wf_model *members[2] = {&a, &b};
    bool use[MAX_MATCHES];
    all_true(use, h.n);
    double out[8][3], w_last[2];
    bp_error err = {0};
    cr_assert_eq(bpm_wf_blend(h.m, h.n, use, members, 2, 1, out, w_last, &err), BP_OK, "%s",
                 err.msg);

    /* day 0: no earlier forecast, equal weights */
    const double equal[2] = {0.5, 0.5};
    assert_blend(out, pa, pb, 0, equal);
    assert_blend(out, pa, pb, 1, equal);
    /* each later day d: the weights minimising RPS on days 0..d-1 */
    const size_t earlier[6] = {0, 1, 2, 3, 4, 5};
    for (size_t d = 1; d < 4; d++) {
        double w[2];
        weights_on(&h, pa, pb, earlier, 2 * d, w);
        assert_blend(out, pa, pb, 2 * d, w);
        assert_blend(out, pa, pb, 2 * d + 1, w);
        if (d == 3) {
            cr_assert_gt(w[0], 0.9, "before day 3 member a was right: %g", w[0]);
            cr_assert(NEAR(w_last[0], w[0], 1e-15) && NEAR(w_last[1], w[1], 1e-15),
                      "the reported weights are the last day's, fitted before it");
        }
    }
}

Test(walkforward, ensemble_uses_equal_weights_until_min_rows_and_skips_unused_matches)
{
    history h = {.n = 0};
    blend_history(&h);
    double pa[8][3], pb[8][3];
    member_forecasts(&h, h.n, pa, pb);
    bpm_wf_model a = {.p = pa}, b = {.p = pb};
    const bpm_wf_model *members[2] = {&a, &b};
    bool use[MAX_MATCHES];
    all_true(use, h.n);
    use[1] = false; /* not blended, and not part of any day's weights */
    double out[8][3];
    bp_error err = {0};
    /* 5 rows are needed: days 0..2 give 1 + 2 + 2 = 5 only before day 3 */
    cr_assert_eq(bpm_wf_blend(h.m, h.n, use, members, 2, 5, out, NULL, &err), BP_OK, "%s", err.msg);
    cr_assert(isnan(out[1][0]) && isnan(out[1][1]) && isnan(out[1][2]));
    const double equal[2] = {0.5, 0.5};
    for (size_t k = 0; k < 6; k++) {
        if (k != 1) {
            assert_blend(out, pa, pb, k, equal);
        }
    }
    const size_t rows[5] = {0, 2, 3, 4, 5};
    double w[2];
    weights_on(&h, pa, pb, rows, 5, w);
    assert_blend(out, pa, pb, 6, w);
    assert_blend(out, pa, pb, 7, w);
    /* member counts outside 2..BPM_BLEND_MAX_MEMBERS are refused */
    cr_assert_eq(bpm_wf_blend(h.m, h.n, use, members, 1, 5, out, NULL, &err), BP_E_INVAL);
}

/* ---- scores --------------------------------------------------------------------------------- */

Test(walkforward, scores_match_hand_computed_values)
{
    history h = {.n = 0};
    add(&h, 0, 12, 1, 2, 2, 0); /* H */
    add(&h, 0, 15, 3, 4, 1, 1); /* D */
    add(&h, 1, 15, 2, 3, 0, 1); /* A */
    add(&h, 1, 18, 4, 1, 1, 0); /* not scored */
    double p[4][3] = {{0.5, 0.3, 0.2}, {0.2, 0.5, 0.3}, {0.6, 0.3, 0.1}, {NAN, NAN, NAN}};
    double uniform[4][3];
    for (int k = 0; k < 4; k++) {
        uniform[k][0] = uniform[k][1] = uniform[k][2] = 1.0 / 3;
    }
    bool use[4] = {true, true, true, false};
    bpm_wf_scores s;
    bp_error err = {0};
    cr_assert_eq(bpm_wf_score(h.m, h.n, use, p, uniform, 10, 2000, 7, &s, &err), BP_OK, "%s",
                 err.msg);
    cr_assert_eq(s.s.n, 3);
    /* RPS: H ((0.5-1)^2 + (0.8-1)^2)/2 = 0.145; D (0.2^2 + (0.7-1)^2)/2 = 0.065;
     *      A (0.6^2 + 0.9^2)/2 = 0.585 -> mean 0.265 */
    cr_assert(NEAR(bpm_scores_rps(&s.s), 0.265, 1e-14), "%.17g", bpm_scores_rps(&s.s));
    /* log loss: -(ln 0.5 + ln 0.5 + ln 0.1)/3 */
    cr_assert(NEAR(bpm_scores_log_loss(&s.s), (2 * log(2.0) + log(10.0)) / 3, 1e-15));
    /* Brier: 0.25+0.09+0.04, 0.04+0.25+0.09, 0.36+0.09+0.81 -> (0.38 + 0.38 + 1.26)/3 */
    cr_assert(NEAR(bpm_scores_brier(&s.s), 2.02 / 3, 1e-14), "%.17g", bpm_scores_brier(&s.s));
    /* the favourite won the first two, not the third */
    cr_assert(NEAR(bpm_scores_accuracy(&s.s), 2.0 / 3, 1e-15));
    /* uniform forecasts score 5/18, 1/9, 5/18: mean 2/9; the difference 0.265 - 2/9 */
    cr_assert(NEAR(s.d_mean, 0.265 - 2.0 / 9, 1e-14), "%.17g", s.d_mean);
    /* the bootstrap draws whole days: day 0 (two matches, differences sum 0.21 - 7/18) and day 1
     * (0.585 - 5/18). Resampling the two days gives the means day0+day0, day0+day1, day1+day1,
     * each with probability >= 1/4, so the 2.5% and 97.5% points are the two extremes. */
    double day0 = 0.21 - 7.0 / 18, day1 = 0.585 - 5.0 / 18;
    cr_assert(NEAR(s.d_lo, day0 / 2, 1e-12), "lo %.17g", s.d_lo);
    cr_assert(NEAR(s.d_hi, day1, 1e-12), "hi %.17g", s.d_hi);

    /* without a reference there is no difference */
    cr_assert_eq(bpm_wf_score(h.m, h.n, use, p, NULL, 10, 2000, 7, &s, &err), BP_OK);
    cr_assert(isnan(s.d_mean) && isnan(s.d_lo) && isnan(s.d_hi));
    /* a scored match without a forecast is refused and named */
    use[3] = true;
    cr_assert_eq(bpm_wf_score(h.m, h.n, use, p, uniform, 10, 2000, 7, &s, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "match 103") != NULL, "%s", err.msg);
}
