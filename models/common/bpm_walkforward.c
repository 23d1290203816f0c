/*
 * bpm_walkforward.c - walk-forward evaluation (see bpm_walkforward.h).
 */
#include "bpm_walkforward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpm.h"
#include "bpm_blend.h"
#include "bpm_metrics.h"

static double mono_s(void)
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

/* ---- the mask ----------------------------------------------------------------------------- */

void bpm_wf_mask(const bp_match_result *m, size_t n, const bpm_wf_mask_opts *o,
                 const bool *has_odds, bool *out)
{
    for (size_t k = 0; k < n; k++) {
        const bp_match_result *x = &m[k];
        int64_t day = bpm_day_of(x->kickoff_ms);
        int gh = 0, ga = 0;
        out[k] = false;
        if ((o->from_ms && x->kickoff_ms < o->from_ms) || (o->to_ms && x->kickoff_ms >= o->to_ms) ||
            (has_odds && !has_odds[k])) {
            continue;
        }
        /* count each team's matches on earlier days inside the window, newest first */
        for (size_t j = k; j-- > 0;) {
            int64_t dj = bpm_day_of(m[j].kickoff_ms);
            if (dj >= day) {
                continue;
            }
            if (day - dj > o->window_days) {
                break;
            }
            gh += m[j].home_team == x->home_team || m[j].away_team == x->home_team;
            ga += m[j].home_team == x->away_team || m[j].away_team == x->away_team;
        }
        out[k] = gh >= o->min_games && ga >= o->min_games;
    }
}

/* ---- one model ---------------------------------------------------------------------------- */

int bpm_wf_run(const bp_match_result *m, size_t n, const bool *eval, bpm_wf_model *w,
               bpm_wf_cancel_fn cancel, void *cancel_ud, bp_error *err)
{
    void *model = NULL;
    bp_error ferr = {0};
    int64_t last_fit_day = INT64_MIN / 2;
    bool fitted = false;
    double t0;
    int rc;

    w->p = NULL;
    w->seconds = 0;
    w->fits = w->fit_failures = 0;
    w->predicted = w->unpredicted = 0;
    w->first_failure[0] = '\0';
    if (w->refit_days < 1) {
        return bp_err(err, BP_E_INVAL, "%s: refit_days must be at least 1", w->label);
    }
    w->p = malloc((n ? n : 1) * sizeof *w->p);
    if (!w->p) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        w->p[k][0] = w->p[k][1] = w->p[k][2] = (double)NAN;
    }
    rc = w->type->create(w->plugin_state, w->params, &model, err);
    if (rc != BP_OK) {
        bpm_wf_model_free(w);
        return rc;
    }
    t0 = mono_s();
    for (size_t d = 0; d < n;) {
        size_t end = bpm_day_end(m, n, d);
        bool any = false;
        for (size_t k = d; k < end; k++) {
            any = any || eval[k];
        }
        if (any && cancel && cancel(cancel_ud)) {
            w->type->destroy(model);
            bpm_wf_model_free(w);
            return bp_err(err, BP_E_CANCELLED, "%s: walk-forward cancelled", w->label);
        }
        int64_t day = bpm_day_of(m[d].kickoff_ms);
        if (any && d > 0 && (!fitted || day - last_fit_day >= w->refit_days)) {
            bp_match_set train = {sizeof train, 0, m, d, day * 86400000LL};
            if (w->type->fit(model, &train, NULL, &ferr) == BP_OK) {
                fitted = true;
                last_fit_day = day;
            } else {
                if (w->fit_failures == 0) {
                    memcpy(w->first_failure, ferr.msg, sizeof w->first_failure);
                }
                w->fit_failures++;
            }
            w->fits++;
        }
        for (size_t k = d; k < end; k++) {
            bp_prediction p;
            if (!eval[k]) {
                continue;
            }
            if (fitted && w->type->predict(model, m[k].home_team, m[k].away_team, m[k].kickoff_ms,
                                           &p, &ferr) == BP_OK) {
                w->p[k][0] = p.p_home;
                w->p[k][1] = p.p_draw;
                w->p[k][2] = p.p_away;
                w->predicted++;
            } else {
                w->unpredicted++;
            }
        }
        d = end;
    }
    w->seconds = mono_s() - t0;
    w->type->destroy(model);
    return BP_OK;
}

void bpm_wf_model_free(bpm_wf_model *w)
{
    free(w->p);
    w->p = NULL;
}

/* ---- the ensemble --------------------------------------------------------------------------- */

int bpm_wf_blend(const bp_match_result *m, size_t n, const bool *use,
                 const bpm_wf_model *const *members, size_t n_members, size_t min_rows,
                 double (*out)[3], double *out_weights, bp_error *err)
{
    double w[BPM_BLEND_MAX_MEMBERS];
    double *p;
    int *y;
    size_t rows = 0;
    int rc = BP_OK;
    if (n_members < 2 || n_members > BPM_BLEND_MAX_MEMBERS) {
        return bp_err(err, BP_E_INVAL, "ensemble: 2..%d members, not %zu", BPM_BLEND_MAX_MEMBERS,
                      n_members);
    }
    p = malloc((n ? n : 1) * n_members * 3 * sizeof *p);
    y = malloc((n ? n : 1) * sizeof *y);
    if (!p || !y) {
        free(p);
        free(y);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n_members; i++) {
        w[i] = 1.0 / (double)n_members;
    }
    for (size_t d = 0; d < n && rc == BP_OK;) {
        size_t end = bpm_day_end(m, n, d);
        if (rows >= min_rows && rows > 0) {
            rc = bpm_blend_weights(p, y, rows, n_members, w, NULL, "ensemble", err);
        }
        for (size_t k = d; k < end && rc == BP_OK; k++) {
            out[k][0] = out[k][1] = out[k][2] = (double)NAN;
            if (!use[k]) {
                continue;
            }
            double b[3] = {0, 0, 0};
            for (size_t i = 0; i < n_members; i++) {
                for (int c = 0; c < 3; c++) {
                    b[c] += w[i] * members[i]->p[k][c];
                }
            }
            memcpy(out[k], b, sizeof b);
        }
        /* the day's forecasts join the weights' data only after the day is blended */
        for (size_t k = d; k < end; k++) {
            if (!use[k]) {
                continue;
            }
            for (size_t i = 0; i < n_members; i++) {
                memcpy(p + (rows * n_members + i) * 3, members[i]->p[k], 3 * sizeof(double));
            }
            y[rows++] = bpm_outcome(m[k].home_goals, m[k].away_goals);
        }
        d = end;
    }
    if (rc == BP_OK && out_weights) {
        memcpy(out_weights, w, n_members * sizeof *w);
    }
    free(p);
    free(y);
    return rc;
}

/* ---- scoring ------------------------------------------------------------------------------ */

int bpm_wf_score(const bp_match_result *m, size_t n, const bool *use, double (*p)[3],
                 double (*ref)[3], int bins, int boot_reps, uint64_t seed, bpm_wf_scores *out,
                 bp_error *err)
{
    double *diff = NULL, sum = 0.0;
    int rc = bpm_scores_init(&out->s, bins, err);
    out->d_mean = out->d_lo = out->d_hi = (double)NAN;
    if (rc != BP_OK) {
        return rc;
    }
    if (ref && !(diff = calloc(n ? n : 1, sizeof *diff))) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        if (!use[k]) {
            continue;
        }
        int o = bpm_outcome(m[k].home_goals, m[k].away_goals);
        if ((rc = bpm_scores_add(&out->s, p[k], o, err)) != BP_OK) {
            bp_err_prefix(err, "match %lld: ", (long long)m[k].match_id);
            goto fail;
        }
        if (diff) {
            diff[k] = bpm_rps(p[k], o) - bpm_rps(ref[k], o);
            sum += diff[k];
        }
    }
    if (diff && out->s.n > 0) {
        out->d_mean = sum / (double)out->s.n;
        rc = bpm_wf_bootstrap_days(m, n, use, diff, boot_reps, seed, &out->d_lo, &out->d_hi, err);
    }
fail:
    free(diff);
    return rc;
}

/* ---- bootstrap ------------------------------------------------------------------------------ */

int bpm_wf_bootstrap_days(const bp_match_result *m, size_t n, const bool *use, const double *diff,
                          int reps, uint64_t seed, double *out_lo, double *out_hi, bp_error *err)
{
    size_t n_days = 0, total = 0;
    size_t *day_start = malloc((n + 1) * sizeof *day_start);
    double *sum = NULL, *means = NULL;
    size_t *cnt = NULL;
    bpm_rng rng;
    int rc = BP_OK;

    if (reps < 10) {
        free(day_start);
        return bp_err(err, BP_E_INVAL, "bootstrap: at least 10 resamples, not %d", reps);
    }
    if (!day_start) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (size_t d = 0; d < n;) {
        day_start[n_days++] = d;
        d = bpm_day_end(m, n, d);
    }
    day_start[n_days] = n;
    sum = calloc(n_days ? n_days : 1, sizeof *sum);
    cnt = calloc(n_days ? n_days : 1, sizeof *cnt);
    means = malloc((size_t)reps * sizeof *means);
    if (!sum || !cnt || !means) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_days; i++) {
        for (size_t k = day_start[i]; k < day_start[i + 1]; k++) {
            if (use[k]) {
                sum[i] += diff[k];
                cnt[i]++;
                total++;
            }
        }
    }
    if (total == 0) {
        rc = bp_err(err, BP_E_INVAL, "bootstrap: no match to resample");
        goto fail;
    }
    bpm_rng_seed(&rng, seed);
    for (int r = 0; r < reps; r++) {
        double s = 0;
        size_t c = 0;
        for (size_t i = 0; i < n_days; i++) {
            size_t j = (size_t)bpm_rng_below(&rng, n_days);
            s += sum[j];
            c += cnt[j];
        }
        means[r] = c ? s / (double)c : 0.0;
    }
    qsort(means, (size_t)reps, sizeof *means, cmp_double);
    *out_lo = means[(size_t)(0.025 * reps)];
    *out_hi = means[(size_t)(0.975 * reps)];

fail:
    free(means);
    free(sum);
    free(cnt);
    free(day_start);
    return rc;
}
