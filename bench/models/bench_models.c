/*
 * bench_models.c - how fast and how good the models are. The walk-forward itself (mask, refits,
 * ensemble, bootstrap) is models/common/bpm_walkforward.c, which `betpipe models evaluate` runs
 * on the store too.
 *
 *   1. Fit time: Dixon-Coles (no decay) on one season, cold start each time, median of many runs.
 *   2. Walk-forward: every model predicts every match of the evaluation seasons from the matches
 *      played before that day only, refitting on each match day (warm-started where the model
 *      supports it). Scored with RPS, log loss, Brier and accuracy on a common match set, next to
 *      Pinnacle's closing prices after margin removal, with a paired bootstrap (over match days)
 *      of each model's RPS minus Pinnacle's.
 *
 * Evaluation set (the mask of research/models.md, so the figures compare): matches of the
 * evaluation seasons where both teams have played at least 10 matches in the 1100 days before
 * the match day, and Pinnacle closing odds exist. The history starts with the first season
 * loaded; there is no earlier data in the repository, so that first season is partly burn-in
 * through the mask (its first ~10 match rounds are not scored, and its other matches are
 * predicted from in-season data only). Every model is scored on the same matches. The reference
 * figures of research/models.md (4,345 matches) use the same rule over a history that starts
 * years earlier: counting the 2010-11 and 2011-12 Premier League games the rule sees there gives
 * exactly 4,345 - ours plus 81 opening-round matches of 2012-13 that no model here can forecast
 * from data before them.
 *
 * Goal-model params: BPM_WF_GOALS_PARAMS (bpm_walkforward.h: xi, the 1100-day window and a weak
 * ridge chosen on 2012-13 .. 2016-17 only).
 *
 * Inputs the models see: results, and the Pinnacle closing 1X2 odds (PSCH/PSCD/PSCA) of matches
 * played on earlier days (the market-rating feature of logistic / random_forest). A fixture's
 * own odds are never an input. Refits: every match day (random_forest: every 7 days). The
 * ensembles refit their weights every match day on the members' forecasts of earlier days.
 *
 * Two tables: all scored matches, and the held-out seasons from --holdout-from (default 2017):
 * the logistic and feature defaults were chosen on the seasons before it.
 *
 * Usage: bench_models --data DIR [--first YEAR] [--last YEAR] [--fit-season 2023-24]
 *                     [--fit-runs N (0 = skip)] [--models a,b,...] [--boot N]
 *                     [--eval-from YEAR] [--holdout-from YEAR] [--params label=JSON]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>

#include "bpm.h"
#include "bpm_goals.h"
#include "bpm_margin.h"
#include "bpm_metrics.h"
#include "bpm_walkforward.h"
#include "dixon_coles.h"
#include "elo.h"
#include "ensemble.h"
#include "fd_matches.h"
#include "logistic.h"
#include "pi_rating.h"
#include "poisson.h"
#include "random_forest.h"

#define WINDOW_DAYS BPM_WF_WINDOW_DAYS
#define MIN_GAMES   BPM_WF_MIN_GAMES

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what, const bp_error *err)
{
    fprintf(stderr, "bench_models: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

/* ---- data -------------------------------------------------------------------------------- */

typedef struct history {
    fd_teams teams;
    bp_match_result *m;
    size_t n;
    int *season; /* season index per match (0 = first loaded) */
} history;

static void load_seasons(history *h, const char *dir, int first_year, int last_year)
{
    memset(h, 0, sizeof *h);
    for (int y = first_year; y <= last_year; y++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%d-%02d.csv", dir, y, (y + 1) % 100);
        size_t before = h->n;
        bp_error err = {0};
        if (fd_matches_load(path, "PSC", &h->teams, &h->m, &h->n, &err) != BP_OK) {
            die(path, &err);
        }
        h->season = realloc(h->season, h->n * sizeof *h->season);
        for (size_t k = before; k < h->n; k++) {
            h->season[k] = y - first_year;
        }
    }
}

/* ---- fit timing -------------------------------------------------------------------------- */

static void bench_fit_time(const char *dir, const char *season, int runs)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s.csv", dir, season);
    fd_teams teams = {0};
    bp_match_result *m = NULL;
    size_t n = 0;
    bp_error err = {0};
    if (fd_matches_load(path, NULL, &teams, &m, &n, &err) != BP_OK) {
        die(path, &err);
    }
    bp_match_set set = {sizeof set, 0, m, n, 0};
    const struct {
        const char *label;
        bool rho;
    } kinds[] = {{"dixon_coles", true}, {"poisson", false}};
    printf("== Fit time: one season (%s, %zu matches), cold start, no decay, %d runs\n", season, n,
           runs);
    for (size_t k = 0; k < 2; k++) {
        bpm_goals_opts o = {kinds[k].label, kinds[k].rho, 0.0, 0.0, 0.0, 500};
        double *t = malloc((size_t)runs * sizeof *t);
        bpm_goals_fit f;
        int iters = 0;
        double ll = 0;
        for (int r = 0; r < runs; r++) {
            double t0 = now_s();
            if (bpm_goals_fit_set(&o, &set, NULL, &f, &err) != BP_OK) {
                die("fit", &err);
            }
            t[r] = now_s() - t0;
            iters = f.iterations;
            ll = f.loglik;
            bpm_goals_free(&f);
        }
        qsort(t, (size_t)runs, sizeof *t, cmp_double);
        printf("  %-12s median %.3f ms  min %.3f ms  p90 %.3f ms  (%d BFGS2 iterations, "
               "loglik %.4f)\n",
               kinds[k].label, t[runs / 2] * 1e3, t[0] * 1e3, t[(runs * 9) / 10] * 1e3, iters, ll);
        free(t);
    }
    free(m);
    fd_teams_free(&teams);
}

/* ---- walk-forward (the library both this bench and `betpipe models evaluate` use) ---------- */

typedef struct wf_model {
    const char *label;
    const bp_model_type *type;
    const char *params;
    int refit_days;
    bpm_wf_model run; /* the walk-forward's outputs; run.p is NULL when the model did not run */
} wf_model;

static void run_walk_forward(const history *h, const bool *eval_mask, wf_model *w)
{
    json_t *params = w->params ? json_loads(w->params, 0, NULL) : NULL;
    bp_error err = {0};
    w->run = (bpm_wf_model){
        .label = w->label, .type = w->type, .params = params, .refit_days = w->refit_days};
    if (bpm_wf_run(h->m, h->n, eval_mask, &w->run, NULL, NULL, &err) != BP_OK) {
        die(w->label, &err);
    }
    if (w->run.fit_failures && getenv("BENCH_VERBOSE") != NULL) {
        fprintf(stderr, "%s: first failed fit: %s\n", w->label, w->run.first_failure);
    }
    w->run.params = NULL;
    json_decref(params);
}

static void score_row(const char *label, const history *h, const bool *use, double (*p)[3],
                      double (*ref)[3], int boot, double seconds, int fits)
{
    bpm_wf_scores sc;
    bp_error err = {0};
    if (bpm_wf_score(h->m, h->n, use, p, ref, 10, boot, 20240519, &sc, &err) != BP_OK) {
        die(label, &err);
    }
    printf("  %-22s %5zu  %.4f  %.4f  %.4f  %.4f", label, sc.s.n, bpm_scores_rps(&sc.s),
           bpm_scores_log_loss(&sc.s), bpm_scores_brier(&sc.s), bpm_scores_accuracy(&sc.s));
    if (ref != NULL) {
        printf("  %+.4f [%+.4f, %+.4f]", sc.d_mean, sc.d_lo, sc.d_hi);
    } else {
        printf("  %25s", "");
    }
    if (seconds >= 0) {
        printf("  %7.2f s  %5d fits", seconds, fits);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *fit_season = "2023-24", *only = NULL;
    const char *overrides[16];
    int n_overrides = 0;
    int first = 2012, last = 2023, eval_from = 0, holdout = 2017, runs = 200, boot = 2000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc) {
            first = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--last") == 0 && i + 1 < argc) {
            last = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--holdout-from") == 0 && i + 1 < argc) {
            holdout = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--eval-from") == 0 && i + 1 < argc) {
            eval_from = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--fit-season") == 0 && i + 1 < argc) {
            fit_season = argv[++i];
        } else if (strcmp(argv[i], "--fit-runs") == 0 && i + 1 < argc) {
            runs = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--boot") == 0 && i + 1 < argc) {
            boot = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--params") == 0 && i + 1 < argc && n_overrides < 16) {
            overrides[n_overrides++] = argv[++i]; /* label=JSON */
        } else if (strcmp(argv[i], "--models") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: %s --data DIR [--first YEAR] [--last YEAR] [--fit-season S] "
                    "[--fit-runs N] [--boot N] [--models a,b] [--eval-from YEAR] "
                    "[--params label=JSON]\n",
                    argv[0]);
            return 2;
        }
    }
    if (dir == NULL || runs < 0 || boot < 10 || first > last) {
        fprintf(stderr, "bench_models: --data DIR is required (e.g. data/football-data/E0)\n");
        return 2;
    }
    gsl_set_error_handler_off();

    if (runs > 0) {
        bench_fit_time(dir, fit_season, runs);
    }

    history h;
    load_seasons(&h, dir, first, last);

    /* the evaluation mask (bpm_wf_mask): eval seasons, both teams with MIN_GAMES in the window,
     * Pinnacle closing odds present */
    bool *eval = calloc(h.n, sizeof *eval);
    bool *has_odds = calloc(h.n, sizeof *has_odds);
    bpm_wf_mask_opts mo = {0, 0, WINDOW_DAYS, MIN_GAMES};
    size_t n_eval = 0;
    for (size_t k = 0; k < h.n; k++) {
        has_odds[k] = h.m[k].odds_home > 1.0 && h.m[k].odds_draw > 1.0 && h.m[k].odds_away > 1.0;
        if (mo.from_ms == 0 && h.season[k] + first >= eval_from) {
            mo.from_ms = h.m[k].kickoff_ms;
        }
    }
    bpm_wf_mask(h.m, h.n, &mo, has_odds, eval);
    for (size_t k = 0; k < h.n; k++) {
        n_eval += eval[k];
    }
    free(has_odds);

    wf_model models[] = {
        {.label = "dixon_coles",
         .type = &bpm_dixon_coles_type,
         .params = BPM_WF_GOALS_PARAMS,
         .refit_days = 1},
        {.label = "poisson",
         .type = &bpm_poisson_type,
         .params = BPM_WF_GOALS_PARAMS,
         .refit_days = 1},
        {.label = "elo", .type = &bpm_elo_type, .params = NULL, .refit_days = 1},
        {.label = "pi_rating", .type = &bpm_pi_rating_type, .params = NULL, .refit_days = 1},
        {.label = "logistic",
         .type = &bpm_logistic_type,
         .params = "{\"market\": false, \"features\": [\"elo_diff\", \"pi_gd\", \"form_home\", "
                   "\"form_away\", \"gf_home\", \"ga_home\", \"gf_away\", \"ga_away\"]}",
         .refit_days = 1},
        {.label = "logistic_market", .type = &bpm_logistic_type, .params = NULL, .refit_days = 1},
        {.label = "random_forest",
         .type = &bpm_random_forest_type,
         .params = NULL,
         .refit_days = 7},
    };
    size_t n_models = sizeof models / sizeof models[0];
    printf("\n== Walk-forward E0 %d-%02d .. %d-%02d: %zu matches loaded, %zu scored\n", first,
           (first + 1) % 100, last, (last + 1) % 100, h.n, n_eval);
    printf("   scored = both teams >= %d matches in the %d days before the match day and "
           "Pinnacle closing odds present;\n   each model refits on every match day from the "
           "matches of earlier days only.\n",
           MIN_GAMES, WINDOW_DAYS);

    for (int o = 0; o < n_overrides; o++) {
        const char *eq = strchr(overrides[o], '=');
        for (size_t i = 0; eq != NULL && i < n_models; i++) {
            if (strncmp(models[i].label, overrides[o], (size_t)(eq - overrides[o])) == 0 &&
                models[i].label[eq - overrides[o]] == '\0') {
                models[i].params = eq + 1;
            }
        }
    }
    for (size_t i = 0; i < n_models; i++) {
        if (only != NULL && strstr(only, models[i].label) == NULL) {
            continue;
        }
        run_walk_forward(&h, eval, &models[i]);
    }

    /* the common set: scored and predicted by every model that ran */
    bool *use = calloc(h.n, sizeof *use);
    for (size_t k = 0; k < h.n; k++) {
        use[k] = eval[k];
        for (size_t i = 0; i < n_models; i++) {
            if (models[i].run.p != NULL && isnan(models[i].run.p[k][0])) {
                use[k] = false;
            }
        }
    }
    /* Pinnacle closing, margin removed */
    double(*pin_shin)[3] = malloc(h.n * sizeof *pin_shin);
    double(*pin_mult)[3] = malloc(h.n * sizeof *pin_mult);
    for (size_t k = 0; k < h.n; k++) {
        if (!use[k]) {
            continue;
        }
        double odds[3] = {h.m[k].odds_home, h.m[k].odds_draw, h.m[k].odds_away};
        bp_error err = {0};
        if (bpm_remove_margin(BPM_MARGIN_SHIN, odds, 3, pin_shin[k], NULL, &err) != BP_OK ||
            bpm_remove_margin(BPM_MARGIN_MULTIPLICATIVE, odds, 3, pin_mult[k], NULL, &err) !=
                BP_OK) {
            die("pinnacle", &err);
        }
    }

    /* ensembles over the members that ran: their forecasts become two more rows */
    const char *const ens_default[] = {"dixon_coles", "elo", "pi_rating", "logistic_market"};
    const struct {
        const char *label;
        const char *const *names;
        size_t n;
    } ensembles[] = {{"ensemble", ens_default, 4}, {"ensemble_all", NULL, 0}};
    struct {
        const char *label;
        double (*p)[3];
        double seconds;
    } ens[2];
    memset(ens, 0, sizeof ens);
    for (size_t e = 0; e < 2; e++) {
        const bpm_wf_model *members[BPM_ENSEMBLE_MAX_MEMBERS];
        const char *labels[BPM_ENSEMBLE_MAX_MEMBERS];
        double w[BPM_ENSEMBLE_MAX_MEMBERS];
        size_t M = 0;
        bp_error err = {0};
        for (size_t i = 0; i < n_models && M < BPM_ENSEMBLE_MAX_MEMBERS; i++) {
            bool wanted = ensembles[e].names == NULL;
            for (size_t j = 0; j < ensembles[e].n; j++) {
                wanted = wanted || strcmp(models[i].label, ensembles[e].names[j]) == 0;
            }
            if (wanted && models[i].run.p != NULL) {
                labels[M] = models[i].label;
                members[M++] = &models[i].run;
            }
        }
        if (M < 2 || (ensembles[e].names != NULL && M != ensembles[e].n)) {
            continue;
        }
        ens[e].label = ensembles[e].label;
        ens[e].p = malloc(h.n * sizeof *ens[e].p);
        double t0 = now_s();
        if (bpm_wf_blend(h.m, h.n, use, members, M, 200, ens[e].p, w, &err) != BP_OK) {
            die("ensemble weights", &err);
        }
        ens[e].seconds = now_s() - t0;
        printf("   %s weights at the end (refitted every match day):", ens[e].label);
        for (size_t m = 0; m < M; m++) {
            printf(" %s %.3f", labels[m], w[m]);
        }
        printf("\n");
    }

    for (int table = 0; table < 2; table++) {
        bool *subset = calloc(h.n, sizeof *subset);
        for (size_t k = 0; k < h.n; k++) {
            subset[k] = use[k] && (table == 0 || h.season[k] + first >= holdout);
        }
        if (table == 0) {
            printf("\n== All scored matches, %d-%02d .. %d-%02d\n", first, (first + 1) % 100, last,
                   (last + 1) % 100);
        } else if (holdout > first && holdout <= last) {
            printf("\n== Held-out seasons %d-%02d .. %d-%02d (the logistic/feature defaults were "
                   "chosen on the seasons before)\n",
                   holdout, (holdout + 1) % 100, last, (last + 1) % 100);
        } else {
            free(subset);
            break;
        }
        /* run times belong to the whole walk-forward: shown once, in the first table */
        printf("  %-22s %5s  %-6s  %-6s  %-6s  %-6s  %-25s  %s\n", "model", "n", "RPS", "logloss",
               "Brier", "acc", "RPS - Pinnacle [95% CI]", table == 0 ? "walk-forward time" : "");
        score_row("pinnacle_close_shin", &h, subset, pin_shin, NULL, boot, -1, 0);
        score_row("pinnacle_close_mult", &h, subset, pin_mult, pin_shin, boot, -1, 0);
        for (size_t i = 0; i < n_models; i++) {
            if (models[i].run.p != NULL) {
                score_row(models[i].label, &h, subset, models[i].run.p, pin_shin, boot,
                          table == 0 ? models[i].run.seconds : -1, models[i].run.fits);
            }
        }
        for (size_t e = 0; e < 2; e++) {
            if (ens[e].p != NULL) {
                score_row(ens[e].label, &h, subset, ens[e].p, pin_shin, boot,
                          table == 0 ? ens[e].seconds : -1, 0);
            }
        }
        free(subset);
    }
    for (size_t i = 0; i < n_models; i++) {
        if (models[i].run.fit_failures) {
            printf("  note: %s: %d of %d fits failed (too little data at a season start: a new "
                   "team without a goal, or too few rows); the previous fit was used\n",
                   models[i].label, models[i].run.fit_failures, models[i].run.fits);
        }
    }
    free(ens[0].p);
    free(ens[1].p);
    for (size_t i = 0; i < n_models; i++) {
        bpm_wf_model_free(&models[i].run);
    }
    free(use);
    free(eval);
    free(pin_shin);
    free(pin_mult);
    free(h.m);
    free(h.season);
    fd_teams_free(&h.teams);
    return 0;
}
