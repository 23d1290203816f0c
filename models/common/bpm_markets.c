/*
 * bpm_markets.c - markets from a score matrix.
 *
 * Every Asian-style market reduces to one question per cell: by how many quarter-goals does the
 * selection beat the line? (a "margin" m in quarter-goals, an integer). A whole or half line
 * settles once: m > 0 wins, m == 0 pushes, m < 0 loses. A quarter line is two half-stakes on
 * the neighbouring lines (line - 0.25 and line + 0.25), and the two half results combine into
 * win / half-win / push / half-loss / loss. settle_cells() does that for any margin function.
 */
#include "bpm_markets.h"

#include <math.h>

#define DIM BP_SCORE_DIM

double bpm_matrix_total(const double *score)
{
    double s = 0.0;
    for (int k = 0; k < DIM * DIM; k++) {
        s += score[k];
    }
    return s;
}

bpm_1x2 bpm_market_1x2(const double *score)
{
    bpm_1x2 r = {0.0, 0.0, 0.0};
    for (int i = 0; i < DIM; i++) {
        for (int j = 0; j < DIM; j++) {
            double p = score[i * DIM + j];
            if (i > j) {
                r.home += p;
            } else if (i == j) {
                r.draw += p;
            } else {
                r.away += p;
            }
        }
    }
    return r;
}

bpm_double_chance bpm_market_double_chance(const double *score)
{
    bpm_1x2 x = bpm_market_1x2(score);
    bpm_double_chance r = {x.home + x.draw, x.home + x.away, x.draw + x.away};
    return r;
}

void bpm_market_btts(const double *score, double *out_yes, double *out_no)
{
    double yes = 0.0, total = 0.0;
    for (int i = 0; i < DIM; i++) {
        for (int j = 0; j < DIM; j++) {
            total += score[i * DIM + j];
            if (i >= 1 && j >= 1) {
                yes += score[i * DIM + j];
            }
        }
    }
    *out_yes = yes;
    *out_no = total - yes;
}

double bpm_market_correct_score(const double *score, int home_goals, int away_goals)
{
    if (home_goals < 0 || away_goals < 0 || home_goals >= DIM || away_goals >= DIM) {
        return 0.0;
    }
    return score[home_goals * DIM + away_goals];
}

int bpm_market_correct_score_table(const double *score, int max_goals, double *out,
                                   double *out_other, bp_error *err)
{
    if (max_goals < 0 || max_goals >= DIM) {
        return bp_err(err, BP_E_INVAL, "correct score: max_goals %d is outside 0..%d", max_goals,
                      DIM - 1);
    }
    double listed = 0.0;
    for (int i = 0; i <= max_goals; i++) {
        for (int j = 0; j <= max_goals; j++) {
            out[i * (max_goals + 1) + j] = score[i * DIM + j];
            listed += score[i * DIM + j];
        }
    }
    *out_other = bpm_matrix_total(score) - listed;
    return BP_OK;
}

/* A line in goals as an integer number of quarter-goals; -1 status when it is not on the grid. */
static int line_quarters(double line, double max_abs, int *out_q)
{
    if (!isfinite(line) || fabs(line) > max_abs) {
        return -1;
    }
    double q = line * 4.0;
    double r = nearbyint(q);
    if (fabs(q - r) > 1e-9) {
        return -1;
    }
    *out_q = (int)r;
    return 0;
}

/* One half-stake's result for margin m (quarter-goals): +1 win, 0 push, -1 loss. */
static int sign_of(int m)
{
    return (m > 0) - (m < 0);
}

typedef enum settle_kind { HOME_HANDICAP, AWAY_HANDICAP, OVER, UNDER } settle_kind;

/* By how many quarter-goals score i-j beats a line of q quarter-goals. */
static int margin_quarters(settle_kind kind, int i, int j, int q)
{
    switch (kind) {
    case HOME_HANDICAP: return 4 * (i - j) + q;
    case AWAY_HANDICAP: return 4 * (j - i) + q;
    case OVER: return 4 * (i + j) - q;
    default: return q - 4 * (i + j);
    }
}

/* Settle every cell of the matrix against a line of q quarter-goals. */
static bpm_settle settle_cells(const double *score, settle_kind kind, int q)
{
    bpm_settle s = {0.0, 0.0, 0.0, 0.0, 0.0};
    /* A quarter line (odd q) splits into q - 1 and q + 1; others settle on q twice. */
    int q_lo = (q % 2 != 0) ? q - 1 : q;
    int q_hi = (q % 2 != 0) ? q + 1 : q;
    for (int i = 0; i < DIM; i++) {
        for (int j = 0; j < DIM; j++) {
            int r = sign_of(margin_quarters(kind, i, j, q_lo)) +
                    sign_of(margin_quarters(kind, i, j, q_hi));
            double p = score[i * DIM + j];
            switch (r) {
            case 2: s.win += p; break;
            case 1: s.half_win += p; break;
            case 0: s.push += p; break;
            case -1: s.half_loss += p; break;
            default: s.loss += p; break;
            }
        }
    }
    return s;
}

int bpm_market_total(const double *score, double line, bpm_total_side side, bpm_settle *out,
                     bp_error *err)
{
    int q;
    if (line_quarters(line, 2.0 * (DIM - 1), &q) != 0 || q < 0) {
        return bp_err(err, BP_E_INVAL,
                      "totals: line %g must be a non-negative multiple of 0.25 up to %d", line,
                      2 * (DIM - 1));
    }
    *out = settle_cells(score, side == BPM_OVER ? OVER : UNDER, q);
    return BP_OK;
}

int bpm_market_asian_handicap(const double *score, double line, bpm_side side, bpm_settle *out,
                              bp_error *err)
{
    int q;
    if (line_quarters(line, 10.0, &q) != 0) {
        return bp_err(err, BP_E_INVAL,
                      "asian handicap: line %g must be a multiple of 0.25 between -10 and 10",
                      line);
    }
    *out = settle_cells(score, side == BPM_SIDE_HOME ? HOME_HANDICAP : AWAY_HANDICAP, q);
    return BP_OK;
}

double bpm_settle_ev(const bpm_settle *s, double price)
{
    return (s->win + 0.5 * s->half_win) * (price - 1.0) - (s->loss + 0.5 * s->half_loss);
}

double bpm_settle_fair_price(const bpm_settle *s)
{
    double gain = s->win + 0.5 * s->half_win;
    double lose = s->loss + 0.5 * s->half_loss;
    if (gain <= 0.0) {
        return INFINITY;
    }
    return 1.0 + lose / gain;
}
