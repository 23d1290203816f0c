/*
 * logistic.c - multinomial logistic regression on engineered features.
 */
#include "logistic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpm.h"
#include "bpm_features.h"
#include "bpm_metrics.h"
#include "bpm_opt.h"

#define MODEL    "logistic"
#define MIN_ROWS 50
/* elo_diff, pi_gd and market (bits 0, 1, 8 of bpm_features.h's order) */
#define DEFAULT_FEATURES ((1u << 0) | (1u << 1) | (1u << 8))

typedef struct logistic_model {
    bpm_features_opts fopts;
    double l2;
    int max_iter;
    bool fitted;
    bpm_features feat;
    double mean[BPM_FEATURES_MAX], sd[BPM_FEATURES_MAX];
    double coef[2 * (BPM_FEATURES_MAX + 1)]; /* a_H, w_H[d], a_A, w_A[d] */
} logistic_model;

static const char *const own_keys[] = {"l2", "max_iter", NULL};

static int read_params(const json_t *params, bpm_features_opts *fo, double *l2, int *max_iter,
                       bp_error *err)
{
    const char *const *lists[] = {own_keys, bpm_features_param_keys, bpm_elo_param_keys,
                                  bpm_pi_param_keys};
    int64_t mi = 500;
    int rc = bpm_params_check_lists(MODEL, params, lists, 4, err);
    if (rc == BP_OK) {
        rc = bpm_features_opts_read(MODEL, params, fo, err);
    }
    if (rc == BP_OK && (params == NULL || json_object_get(params, "features") == NULL)) {
        fo->select = DEFAULT_FEATURES;
    }
    if (rc == BP_OK) {
        rc = bpm_param_double(MODEL, params, "l2", 10.0, 0.0, 1e6, l2, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(MODEL, params, "max_iter", mi, 1, 100000, &mi, err);
    }
    if (rc == BP_OK) {
        *max_iter = (int)mi;
    }
    return rc;
}

static int lr_create(void *plugin_state, const json_t *params, void **out_model, bp_error *err)
{
    (void)plugin_state;
    logistic_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
    }
    int rc = read_params(params, &m->fopts, &m->l2, &m->max_iter, err);
    if (rc != BP_OK) {
        free(m);
        return rc;
    }
    *out_model = m;
    return BP_OK;
}

/* ---- the softmax objective --------------------------------------------------------------------
 */

typedef struct lr_data {
    const double *z; /* rows x dim, standardised */
    const int *y;
    size_t rows, dim;
    double l2;
} lr_data;

/* Class probabilities {H, D, A} for standardised row z. */
static void softmax(const double *coef, const double *z, size_t dim, double p[3])
{
    const double *wh = coef, *wa = coef + dim + 1;
    double sh = wh[0], sa = wa[0];
    for (size_t k = 0; k < dim; k++) {
        sh += wh[k + 1] * z[k];
        sa += wa[k + 1] * z[k];
    }
    double mx = fmax(0.0, fmax(sh, sa));
    double eh = exp(sh - mx), ed = exp(-mx), ea = exp(sa - mx);
    double s = eh + ed + ea;
    p[BPM_HOME] = eh / s;
    p[BPM_DRAW] = ed / s;
    p[BPM_AWAY] = ea / s;
}

static double lr_fdf(const double *coef, double *g, void *ud)
{
    const lr_data *d = ud;
    size_t dim = d->dim, np = 2 * (dim + 1);
    double f = 0.0;
    if (g != NULL) {
        memset(g, 0, np * sizeof *g);
    }
    for (size_t r = 0; r < d->rows; r++) {
        const double *z = d->z + r * dim;
        double p[3];
        softmax(coef, z, dim, p);
        double q = p[d->y[r]];
        f -= log(q > 1e-300 ? q : 1e-300);
        if (g != NULL) {
            double rh = p[BPM_HOME] - (d->y[r] == BPM_HOME);
            double ra = p[BPM_AWAY] - (d->y[r] == BPM_AWAY);
            g[0] += rh;
            g[dim + 1] += ra;
            for (size_t k = 0; k < dim; k++) {
                g[k + 1] += rh * z[k];
                g[dim + 2 + k] += ra * z[k];
            }
        }
    }
    double pen = 0.0;
    for (size_t k = 0; k < dim; k++) {
        pen += coef[k + 1] * coef[k + 1] + coef[dim + 2 + k] * coef[dim + 2 + k];
    }
    double inv = 1.0 / (double)d->rows;
    if (g != NULL) {
        for (size_t i = 0; i < np; i++) {
            g[i] *= inv;
        }
        for (size_t k = 0; k < dim; k++) {
            g[k + 1] += d->l2 * inv * coef[k + 1];
            g[dim + 2 + k] += d->l2 * inv * coef[dim + 2 + k];
        }
    }
    return f * inv + 0.5 * d->l2 * inv * pen;
}

/*
 * The Hessian of the objective at coef: (1/n) sum_r B_r (x) zz^T with z = (1, row) and
 * B = [[pH (1 - pH), -pH pA], [-pH pA, pA (1 - pA)]], plus the penalty on the weights. Used as
 * the preconditioner, so BFGS2 converges in a few iterations.
 */
static void lr_hessian(const lr_data *d, const double *coef, double *H)
{
    size_t dim = d->dim, b = dim + 1, np = 2 * b;
    memset(H, 0, np * np * sizeof *H);
    double zt[BPM_FEATURES_MAX + 1];
    for (size_t r = 0; r < d->rows; r++) {
        double p[3];
        softmax(coef, d->z + r * dim, dim, p);
        double bhh = p[BPM_HOME] * (1 - p[BPM_HOME]), baa = p[BPM_AWAY] * (1 - p[BPM_AWAY]);
        double bha = -p[BPM_HOME] * p[BPM_AWAY];
        zt[0] = 1.0;
        memcpy(zt + 1, d->z + r * dim, dim * sizeof *zt);
        for (size_t i = 0; i < b; i++) {
            for (size_t j = 0; j <= i; j++) {
                double zz = zt[i] * zt[j];
                H[i * np + j] += bhh * zz;
                H[(b + i) * np + (b + j)] += baa * zz;
                H[(b + i) * np + j] += bha * zz;
                if (i != j) {
                    H[(b + j) * np + i] += bha * zz;
                }
            }
        }
    }
    double inv = 1.0 / (double)d->rows;
    for (size_t i = 0; i < np; i++) {
        for (size_t j = 0; j <= i; j++) {
            H[i * np + j] *= inv;
            H[j * np + i] = H[i * np + j];
        }
    }
    for (size_t k = 1; k < b; k++) {
        H[k * np + k] += d->l2 * inv;
        H[(b + k) * np + (b + k)] += d->l2 * inv;
    }
}

static int lr_fit(void *model, const bp_match_set *train, json_t **out_metrics, bp_error *err)
{
    logistic_model *m = model;
    bpm_features feat;
    double *x = NULL;
    int *y = NULL;
    size_t rows = 0;
    int rc = bpm_features_build(MODEL, &m->fopts, train, &feat, &x, &y, NULL, &rows, err);
    if (rc != BP_OK) {
        return rc;
    }
    size_t dim = feat.dim;
    json_t *metrics = NULL;
    size_t count[3] = {0, 0, 0};
    for (size_t r = 0; r < rows; r++) {
        count[y[r]]++;
    }
    if (rows < MIN_ROWS || count[0] == 0 || count[1] == 0 || count[2] == 0) {
        rc = bp_err(err, BP_E_INVAL,
                    MODEL ": too few matches to fit: %zu of %zu matches had both teams with %d "
                          "earlier games (need at least %d, with every outcome present)",
                    rows, train->n_matches, m->fopts.min_games, MIN_ROWS);
        goto fail;
    }
    /* standardise */
    double mean[BPM_FEATURES_MAX] = {0}, sd[BPM_FEATURES_MAX] = {0};
    for (size_t r = 0; r < rows; r++) {
        for (size_t k = 0; k < dim; k++) {
            mean[k] += x[r * dim + k];
        }
    }
    for (size_t k = 0; k < dim; k++) {
        mean[k] /= (double)rows;
    }
    for (size_t r = 0; r < rows; r++) {
        for (size_t k = 0; k < dim; k++) {
            double v = x[r * dim + k] - mean[k];
            sd[k] += v * v;
        }
    }
    for (size_t k = 0; k < dim; k++) {
        sd[k] = sqrt(sd[k] / (double)rows);
        if (!(sd[k] > 1e-12)) {
            sd[k] = 1.0; /* a constant column: its weight stays at 0 */
        }
    }
    for (size_t r = 0; r < rows; r++) {
        for (size_t k = 0; k < dim; k++) {
            x[r * dim + k] = (x[r * dim + k] - mean[k]) / sd[k];
        }
    }
    /* start: the previous fit when it has the same features (a daily refit then needs a few
     * iterations), else base rates and zero weights */
    double coef[2 * (BPM_FEATURES_MAX + 1)] = {0};
    if (m->fitted && m->feat.dim == dim) {
        memcpy(coef, m->coef, 2 * (dim + 1) * sizeof *coef);
    } else {
        coef[0] = log((double)count[BPM_HOME] / (double)count[BPM_DRAW]);
        coef[dim + 1] = log((double)count[BPM_AWAY] / (double)count[BPM_DRAW]);
    }
    lr_data d = {x, y, rows, dim, m->l2};
    double H[4 * (BPM_FEATURES_MAX + 1) * (BPM_FEATURES_MAX + 1)];
    lr_hessian(&d, coef, H);
    /* the tolerances apply to the Newton decrement of the mean log-loss */
    bpm_min_opts mo = {m->max_iter, 1e-7, 1e-5, 0.0, 0.1};
    bpm_min_info info;
    rc = bpm_minimize_preconditioned(2 * (dim + 1), coef, lr_fdf, &d, H, &mo, &info, MODEL, err);
    if (rc != BP_OK) {
        goto fail;
    }
    if (out_metrics != NULL) {
        bpm_scores s;
        bpm_scores_init(&s, 10, NULL);
        double mean_p[3] = {0, 0, 0};
        for (size_t r = 0; r < rows; r++) {
            double p[3];
            softmax(coef, x + r * dim, dim, p);
            bpm_scores_add(&s, p, y[r], NULL);
            for (int c = 0; c < 3; c++) {
                mean_p[c] += p[c] / (double)rows;
            }
        }
        /* mean forecast vs observed frequency per outcome: equal at an unpenalised optimum */
        json_t *calib = json_pack("{s:[f,f,f], s:[f,f,f]}", "mean", mean_p[0], mean_p[1], mean_p[2],
                                  "freq", (double)count[0] / (double)rows,
                                  (double)count[1] / (double)rows, (double)count[2] / (double)rows);
        json_t *names = json_array();
        for (size_t k = 0; names != NULL && k < dim; k++) {
            json_array_append_new(names, json_string(bpm_features_name(&feat, k)));
        }
        metrics =
            json_pack("{s:I, s:I, s:o, s:f, s:f, s:O, s:O, s:i, s:b}", "n_matches",
                      (json_int_t)train->n_matches, "n_rows", (json_int_t)rows, "features", names,
                      "in_sample_rps", bpm_scores_rps(&s), "in_sample_log_loss",
                      bpm_scores_log_loss(&s), "in_sample_mean", json_object_get(calib, "mean"),
                      "in_sample_frequency", json_object_get(calib, "freq"), "iterations",
                      info.iterations, "uses_market", (int)feat.use_market);
        json_decref(calib);
        if (metrics == NULL) {
            rc = bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
            goto fail;
        }
    }
    if (m->fitted) {
        bpm_features_free(&m->feat);
    }
    m->feat = feat;
    memcpy(m->mean, mean, sizeof mean);
    memcpy(m->sd, sd, sizeof sd);
    memcpy(m->coef, coef, sizeof coef);
    m->fitted = true;
    memset(&feat, 0, sizeof feat);
    if (out_metrics != NULL) {
        *out_metrics = metrics;
        metrics = NULL;
    }
    rc = BP_OK;
fail:
    json_decref(metrics);
    bpm_features_free(&feat);
    free(x);
    free(y);
    return rc;
}

static int lr_predict(void *model, int64_t home, int64_t away, int64_t kickoff_ms,
                      bp_prediction *out, bp_error *err)
{
    const logistic_model *m = model;
    (void)kickoff_ms;
    if (!m->fitted) {
        return bp_err(err, BP_E_STATE, MODEL ": predict before fit or load");
    }
    double x[BPM_FEATURES_MAX];
    int rc = bpm_features_for(MODEL, &m->feat, home, away, x, err);
    if (rc != BP_OK) {
        return rc;
    }
    for (size_t k = 0; k < m->feat.dim; k++) {
        x[k] = (x[k] - m->mean[k]) / m->sd[k];
    }
    double p[3];
    softmax(m->coef, x, m->feat.dim, p);
    memset(out, 0, sizeof *out);
    out->p_home = p[BPM_HOME];
    out->p_draw = p[BPM_DRAW];
    out->p_away = p[BPM_AWAY];
    out->exp_home_goals = (double)NAN;
    out->exp_away_goals = (double)NAN;
    return BP_OK;
}

static int lr_save(void *model, json_t **out_state, bp_error *err)
{
    const logistic_model *m = model;
    if (!m->fitted) {
        return bp_err(err, BP_E_STATE, MODEL ": nothing to save: the model is not fitted");
    }
    json_t *state = bpm_state_new(MODEL, BPM_LOGISTIC_STATE_VERSION);
    if (state == NULL) {
        return bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
    }
    size_t dim = m->feat.dim;
    int rc = bpm_features_save(&m->feat, state, err);
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(state, "mean", m->mean, dim, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(state, "sd", m->sd, dim, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(state, "coef", m->coef, 2 * (dim + 1), err);
    }
    if (rc != BP_OK) {
        json_decref(state);
        return rc;
    }
    *out_state = state;
    return BP_OK;
}

static int lr_load(void *model, const json_t *state, bp_error *err)
{
    logistic_model *m = model;
    int rc = bpm_state_check(MODEL, BPM_LOGISTIC_STATE_VERSION, state, err);
    if (rc != BP_OK) {
        return rc;
    }
    bpm_features feat;
    if ((rc = bpm_features_load(MODEL, state, &feat, err)) != BP_OK) {
        return rc;
    }
    size_t dim = feat.dim;
    double mean[BPM_FEATURES_MAX], sd[BPM_FEATURES_MAX], coef[2 * (BPM_FEATURES_MAX + 1)];
    if ((rc = bpm_state_get_doubles(MODEL, state, "mean", mean, dim, err)) != BP_OK ||
        (rc = bpm_state_get_doubles(MODEL, state, "sd", sd, dim, err)) != BP_OK ||
        (rc = bpm_state_get_doubles(MODEL, state, "coef", coef, 2 * (dim + 1), err)) != BP_OK) {
        bpm_features_free(&feat);
        return rc;
    }
    for (size_t k = 0; k < dim; k++) {
        if (!(sd[k] > 0.0)) {
            bpm_features_free(&feat);
            return bp_err(err, BP_E_INVAL, MODEL ": state.sd[%zu] must be positive", k);
        }
    }
    if (m->fitted) {
        bpm_features_free(&m->feat);
    }
    m->feat = feat;
    m->fopts = feat.opts;
    memcpy(m->mean, mean, dim * sizeof *mean);
    memcpy(m->sd, sd, dim * sizeof *sd);
    memcpy(m->coef, coef, 2 * (dim + 1) * sizeof *coef);
    m->fitted = true;
    return BP_OK;
}

static void lr_destroy(void *model)
{
    logistic_model *m = model;
    if (m == NULL) {
        return;
    }
    if (m->fitted) {
        bpm_features_free(&m->feat);
    }
    free(m);
}

const bp_model_type bpm_logistic_type = {
    .struct_size = (uint32_t)sizeof(bp_model_type),
    .state_version = BPM_LOGISTIC_STATE_VERSION,
    .name = MODEL,
    .description = "multinomial logistic regression on engineered features (Elo, pi-ratings, "
                   "form, goal averages, market rating)",
    .params_schema =
        "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
        "\"l2\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1000000,\"default\":10},"
        "\"max_iter\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000,\"default\":500}"
        "," BPM_FEATURES_SCHEMA_PROPS "}}",
    .create = lr_create,
    .fit = lr_fit,
    .predict = lr_predict,
    .save = lr_save,
    .load = lr_load,
    .destroy = lr_destroy,
};
