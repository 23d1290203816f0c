/*
 * bpm_markets.h - betting markets priced from a score matrix.
 *
 * The input is always a score matrix as a bp_prediction carries it: P(home = i, away = j) at
 * score[i * BP_SCORE_DIM + j] for i, j in 0..BP_SCORE_DIM-1. The functions do not require it to
 * sum to exactly 1 (a model may leave the tail beyond 15 goals out): every market is computed on
 * the matrix as given, so complementary selections sum to the matrix total.
 *
 * Asian lines (handicaps and totals with quarter lines) settle in five ways, and we return the
 * probability of each rather than one number, because a price alone cannot be judged without
 * knowing how much of the stake comes back:
 *   win        the whole stake wins
 *   half_win   half the stake wins, half is refunded (quarter line, one half pushes)
 *   push       the stake is refunded
 *   half_loss  half the stake loses, half is refunded
 *   loss       the whole stake loses
 * bpm_settle_ev() turns that into the expected profit per unit staked at a decimal price, and
 * bpm_settle_fair_price() into the price at which that expectation is zero.
 *
 * Lines are given in goals and must be multiples of 0.25 (2.25 = half the stake on 2.0, half on
 * 2.5). Internally lines are handled in integer quarter-goals, so a push is an exact integer
 * comparison, never a floating-point equality.
 *
 * All functions are pure and thread-safe.
 */
#ifndef BPM_MARKETS_H
#define BPM_MARKETS_H

#include "betpipe/registry.h"
#include "betpipe/status.h"

typedef struct bpm_1x2 {
    double home, draw, away;
} bpm_1x2;

typedef struct bpm_double_chance {
    double home_or_draw, home_or_away, draw_or_away;
} bpm_double_chance;

/* Probabilities of the five settlements of a bet; they sum to the matrix total. */
typedef struct bpm_settle {
    double win, half_win, push, half_loss, loss;
} bpm_settle;

typedef enum bpm_side { BPM_SIDE_HOME = 0, BPM_SIDE_AWAY = 1 } bpm_side;
typedef enum bpm_total_side { BPM_OVER = 0, BPM_UNDER = 1 } bpm_total_side;

/* Sum of all cells. */
double bpm_matrix_total(const double *score);

/* Home win (i > j), draw (i == j), away win (i < j). */
bpm_1x2 bpm_market_1x2(const double *score);

/* The three double-chance selections (1X, 12, X2). */
bpm_double_chance bpm_market_double_chance(const double *score);

/* Both teams to score: yes = P(i >= 1 and j >= 1); no = total - yes. */
void bpm_market_btts(const double *score, double *out_yes, double *out_no);

/* Correct score i-j (0 when outside the matrix). */
double bpm_market_correct_score(const double *score, int home_goals, int away_goals);

/*
 * Correct-score table up to max_goals a side: out[i * (max_goals + 1) + j] = P(i-j) for
 * i, j <= max_goals, and *out_other = the rest of the matrix ("any other score").
 * max_goals in 0..BP_SCORE_DIM-1, else BP_E_INVAL.
 */
int bpm_market_correct_score_table(const double *score, int max_goals, double *out,
                                   double *out_other, bp_error *err);

/*
 * Totals (over/under) at `line` goals: over wins when i + j > line, under when i + j < line.
 * Integer lines push on equality; quarter lines split the stake. BP_E_INVAL when line is not a
 * non-negative multiple of 0.25 (or beyond the matrix).
 */
int bpm_market_total(const double *score, double line, bpm_total_side side, bpm_settle *out,
                     bp_error *err);

/*
 * Asian handicap: `line` goals are added to the chosen side's score (-0.5 = the side gives half
 * a goal). The home side wins when i - j + line > 0; the away side when j - i + line > 0.
 * BP_E_INVAL when line is not a multiple of 0.25 or |line| > 10.
 * AH 0 is draw-no-bet: win = home win, push = draw.
 */
int bpm_market_asian_handicap(const double *score, double line, bpm_side side, bpm_settle *out,
                              bp_error *err);

/* Expected profit per unit staked at decimal `price`: (win + half_win/2)(price - 1)
 * - (loss + half_loss/2). */
double bpm_settle_ev(const bpm_settle *s, double price);

/* The decimal price at which bpm_settle_ev is zero (INFINITY when the bet cannot win). */
double bpm_settle_fair_price(const bpm_settle *s);

#endif
