/*
 * random_forest.c - bagged classification trees with out-of-bag scoring.
 */
#include "random_forest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpm.h"
#include "bpm_features.h"
#include "bpm_metrics.h"

#define MODEL    "random_forest"
#define MIN_ROWS 50
#define MAX_BINS 64

typedef struct rf_node {
    int feature;      /* -1 for a leaf */
    double threshold; /* x[feature] < threshold goes left */
    int left, right;  /* node indices (absolute) */
    double p[3];      /* leaf class frequencies */
} rf_node;

typedef struct rf_params {
    int n_trees, max_depth, min_leaf, mtry, bins;
    uint64_t seed;
} rf_params;

typedef struct rf_model {
    bpm_features_opts fopts;
    rf_params rp;
    bool fitted;
    bpm_features feat;
    rf_node *nodes;
    size_t n_nodes;
    int *roots; /* rp.n_trees */
    int n_trees;
} rf_model;

static const char *const own_keys[] = {"n_trees", "max_depth", "min_leaf", "mtry",
                                       "bins",    "seed",      NULL};

static int rf_create(void *plugin_state, const json_t *params, void **out_model, bp_error *err)
{
    (void)plugin_state;
    rf_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
    }
    const char *const *lists[] = {own_keys, bpm_features_param_keys, bpm_elo_param_keys,
                                  bpm_pi_param_keys};
    int64_t n_trees, depth, leaf, mtry, bins, seed;
    int rc = bpm_params_check_lists(MODEL, params, lists, 4, err);
    if (rc == BP_OK) {
        rc = bpm_features_opts_read(MODEL, params, &m->fopts, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(MODEL, params, "n_trees", 200, 1, 5000, &n_trees, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(MODEL, params, "max_depth", 10, 1, 40, &depth, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(MODEL, params, "min_leaf", 25, 1, 100000, &leaf, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(MODEL, params, "mtry", 0, 0, BPM_FEATURES_MAX, &mtry, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(MODEL, params, "bins", 32, 2, MAX_BINS, &bins, err);
    }
    if (rc == BP_OK) {
        rc = bpm_param_int(MODEL, params, "seed", 1, 0, INT64_MAX, &seed, err);
    }
    if (rc != BP_OK) {
        free(m);
        return rc;
    }
    m->rp = (rf_params){(int)n_trees, (int)depth, (int)leaf, (int)mtry, (int)bins, (uint64_t)seed};
    *out_model = m;
    return BP_OK;
}

static void rf_clear(rf_model *m)
{
    if (m->fitted) {
        bpm_features_free(&m->feat);
    }
    free(m->nodes);
    free(m->roots);
    m->nodes = NULL;
    m->roots = NULL;
    m->n_nodes = 0;
    m->fitted = false;
}

/* ---- growing ----------------------------------------------------------------------------------
 */

typedef struct grower {
    size_t rows, dim;
    const unsigned char *xb; /* rows x dim bin indices */
    const int *y;
    const double *cuts; /* dim x (MAX_BINS - 1) cut values */
    const int *n_cuts;  /* per feature */
    const rf_params *rp;
    int mtry;
    bpm_rng rng;
    rf_node *nodes;
    size_t n_nodes, cap;
} grower;

static int push_node(grower *g, bp_error *err)
{
    if (g->n_nodes == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 1024;
        rf_node *nn = realloc(g->nodes, cap * sizeof *nn);
        if (nn == NULL) {
            return bp_err(err, BP_E_NOMEM, MODEL ": out of memory growing trees");
        }
        g->nodes = nn;
        g->cap = cap;
    }
    g->n_nodes++;
    return BP_OK;
}

static void make_leaf(rf_node *nd, const size_t *idx, size_t lo, size_t hi, const int *y)
{
    double c[3] = {0, 0, 0};
    for (size_t k = lo; k < hi; k++) {
        c[y[idx[k]]] += 1.0;
    }
    double n = (double)(hi - lo);
    nd->feature = -1;
    nd->threshold = 0.0;
    nd->left = nd->right = -1;
    for (int k = 0; k < 3; k++) {
        nd->p[k] = c[k] / n;
    }
}

/*
 * Grow one tree over idx[0..n) (bootstrap draws, with repeats). Nodes are created depth-first
 * with an explicit stack; the sample indices of a node are a contiguous range of idx that the
 * split partitions in place.
 */
static int grow_tree(grower *g, size_t *idx, size_t n, int *out_root, bp_error *err)
{
    typedef struct task {
        size_t lo, hi;
        int depth, node;
    } task;
    task stack[128];
    int sp = 0;
    int rc = push_node(g, err);
    if (rc != BP_OK) {
        return rc;
    }
    *out_root = (int)(g->n_nodes - 1);
    stack[sp++] = (task){0, n, 0, *out_root};
    int feats[BPM_FEATURES_MAX];
    double hist[MAX_BINS][3];
    while (sp > 0) {
        task t = stack[--sp];
        size_t size = t.hi - t.lo;
        double tot[3] = {0, 0, 0};
        for (size_t k = t.lo; k < t.hi; k++) {
            tot[g->y[idx[k]]] += 1.0;
        }
        int pure = (tot[0] == (double)size) + (tot[1] == (double)size) + (tot[2] == (double)size);
        int best_f = -1, best_b = -1;
        double best_score = (tot[0] * tot[0] + tot[1] * tot[1] + tot[2] * tot[2]) / (double)size;
        if (t.depth < g->rp->max_depth && size >= 2 * (size_t)g->rp->min_leaf && !pure &&
            sp < 120) {
            /* mtry distinct features by a partial Fisher-Yates shuffle */
            for (size_t k = 0; k < g->dim; k++) {
                feats[k] = (int)k;
            }
            for (int k = 0; k < g->mtry; k++) {
                size_t j = (size_t)k + (size_t)bpm_rng_below(&g->rng, g->dim - (size_t)k);
                int tmp = feats[k];
                feats[k] = feats[j];
                feats[j] = tmp;
            }
            for (int q = 0; q < g->mtry; q++) {
                int f = feats[q];
                int nb = g->n_cuts[f] + 1;
                memset(hist, 0, (size_t)nb * sizeof hist[0]);
                for (size_t k = t.lo; k < t.hi; k++) {
                    size_t r = idx[k];
                    hist[g->xb[r * g->dim + (size_t)f]][g->y[r]] += 1.0;
                }
                double l[3] = {0, 0, 0};
                double nl = 0.0;
                for (int b = 0; b < nb - 1; b++) {
                    for (int c = 0; c < 3; c++) {
                        l[c] += hist[b][c];
                    }
                    nl += hist[b][0] + hist[b][1] + hist[b][2];
                    double nr = (double)size - nl;
                    if (nl < g->rp->min_leaf || nr < g->rp->min_leaf) {
                        continue;
                    }
                    double r0 = tot[0] - l[0], r1 = tot[1] - l[1], r2 = tot[2] - l[2];
                    /* maximising sum c^2/n over both children = minimising weighted Gini */
                    double score = (l[0] * l[0] + l[1] * l[1] + l[2] * l[2]) / nl +
                                   (r0 * r0 + r1 * r1 + r2 * r2) / nr;
                    if (score > best_score + 1e-12) {
                        best_score = score;
                        best_f = f;
                        best_b = b;
                    }
                }
            }
        }
        if (best_f < 0) {
            make_leaf(&g->nodes[t.node], idx, t.lo, t.hi, g->y);
            continue;
        }
        /* partition: bins <= best_b go left */
        size_t i = t.lo, j = t.hi;
        while (i < j) {
            if (g->xb[idx[i] * g->dim + (size_t)best_f] <= best_b) {
                i++;
            } else {
                size_t tmp = idx[i];
                idx[i] = idx[--j];
                idx[j] = tmp;
            }
        }
        if ((rc = push_node(g, err)) != BP_OK || (rc = push_node(g, err)) != BP_OK) {
            return rc;
        }
        int left = (int)(g->n_nodes - 2), right = (int)(g->n_nodes - 1);
        rf_node *nd = &g->nodes[t.node];
        nd->feature = best_f;
        nd->threshold = g->cuts[(size_t)best_f * (MAX_BINS - 1) + (size_t)best_b];
        nd->left = left;
        nd->right = right;
        nd->p[0] = nd->p[1] = nd->p[2] = 0.0;
        stack[sp++] = (task){t.lo, i, t.depth + 1, left};
        stack[sp++] = (task){i, t.hi, t.depth + 1, right};
    }
    return BP_OK;
}

static const double *tree_leaf(const rf_node *nodes, int root, const double *x)
{
    const rf_node *nd = &nodes[root];
    while (nd->feature >= 0) {
        nd = &nodes[x[nd->feature] < nd->threshold ? nd->left : nd->right];
    }
    return nd->p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile cut points of column f (distinct, ascending), and every row's bin. */
static void bin_column(const double *x, size_t rows, size_t dim, size_t f, int bins, double *sorted,
                       double *cuts, int *n_cuts, unsigned char *xb)
{
    for (size_t r = 0; r < rows; r++) {
        sorted[r] = x[r * dim + f];
    }
    qsort(sorted, rows, sizeof *sorted, cmp_double);
    int nc = 0;
    for (int b = 1; b < bins; b++) {
        double c = sorted[(size_t)b * rows / (size_t)bins];
        /* a cut must separate values: keep it only above the previous cut and the minimum */
        if (c > sorted[0] && (nc == 0 || c > cuts[nc - 1])) {
            cuts[nc++] = c;
        }
    }
    *n_cuts = nc;
    for (size_t r = 0; r < rows; r++) {
        double v = x[r * dim + f];
        int b = 0;
        while (b < nc && v >= cuts[b]) {
            b++;
        }
        xb[r * dim + f] = (unsigned char)b;
    }
}

static int rf_fit(void *model, const bp_match_set *train, json_t **out_metrics, bp_error *err)
{
    rf_model *m = model;
    bpm_features feat;
    double *x = NULL, *sorted = NULL, *cuts = NULL, *oob = NULL;
    int *y = NULL, *n_cuts = NULL, *roots = NULL, *oob_n = NULL;
    unsigned char *xb = NULL;
    size_t *idx = NULL, rows = 0;
    json_t *metrics = NULL;
    grower g;
    memset(&g, 0, sizeof g);
    int rc = bpm_features_build(MODEL, &m->fopts, train, &feat, &x, &y, NULL, &rows, err);
    if (rc != BP_OK) {
        return rc;
    }
    size_t dim = feat.dim;
    if (rows < MIN_ROWS) {
        rc = bp_err(err, BP_E_INVAL,
                    MODEL ": too few matches to fit: %zu of %zu matches had both teams with %d "
                          "earlier games (need at least %d)",
                    rows, train->n_matches, m->fopts.min_games, MIN_ROWS);
        goto fail;
    }
    sorted = malloc(rows * sizeof *sorted);
    cuts = malloc(dim * (MAX_BINS - 1) * sizeof *cuts);
    n_cuts = malloc(dim * sizeof *n_cuts);
    xb = malloc(rows * dim);
    idx = malloc(rows * sizeof *idx);
    oob = calloc(rows * 3, sizeof *oob);
    oob_n = calloc(rows, sizeof *oob_n);
    roots = malloc((size_t)m->rp.n_trees * sizeof *roots);
    int *drawn = calloc(rows, sizeof *drawn);
    if (!sorted || !cuts || !n_cuts || !xb || !idx || !oob || !oob_n || !roots || !drawn) {
        free(drawn);
        rc = bp_err(err, BP_E_NOMEM, MODEL ": out of memory for %zu rows", rows);
        goto fail;
    }
    for (size_t f = 0; f < dim; f++) {
        bin_column(x, rows, dim, f, m->rp.bins, sorted, cuts + f * (MAX_BINS - 1), &n_cuts[f], xb);
    }
    g.rows = rows;
    g.dim = dim;
    g.xb = xb;
    g.y = y;
    g.cuts = cuts;
    g.n_cuts = n_cuts;
    g.rp = &m->rp;
    g.mtry = m->rp.mtry > 0 ? m->rp.mtry : (int)lround(sqrt((double)dim));
    if (g.mtry > (int)dim) {
        g.mtry = (int)dim;
    }
    bpm_rng_seed(&g.rng, m->rp.seed);
    for (int t = 0; t < m->rp.n_trees; t++) {
        memset(drawn, 0, rows * sizeof *drawn);
        for (size_t k = 0; k < rows; k++) {
            idx[k] = (size_t)bpm_rng_below(&g.rng, rows);
            drawn[idx[k]] = 1;
        }
        if ((rc = grow_tree(&g, idx, rows, &roots[t], err)) != BP_OK) {
            free(drawn);
            goto fail;
        }
        for (size_t r = 0; r < rows; r++) {
            if (!drawn[r]) {
                const double *p = tree_leaf(g.nodes, roots[t], x + r * dim);
                oob[r * 3] += p[0];
                oob[r * 3 + 1] += p[1];
                oob[r * 3 + 2] += p[2];
                oob_n[r]++;
            }
        }
    }
    free(drawn);
    if (out_metrics != NULL) {
        bpm_scores s;
        bpm_scores_init(&s, 10, NULL);
        for (size_t r = 0; r < rows; r++) {
            if (oob_n[r] > 0) {
                double p[3] = {oob[r * 3] / oob_n[r], oob[r * 3 + 1] / oob_n[r],
                               oob[r * 3 + 2] / oob_n[r]};
                bpm_scores_add(&s, p, y[r], NULL);
            }
        }
        metrics =
            json_pack("{s:I, s:I, s:i, s:I, s:I, s:f, s:f, s:f, s:b}", "n_matches",
                      (json_int_t)train->n_matches, "n_rows", (json_int_t)rows, "n_trees",
                      m->rp.n_trees, "n_nodes", (json_int_t)g.n_nodes, "oob_rows", (json_int_t)s.n,
                      "oob_rps", s.n ? bpm_scores_rps(&s) : 0.0, "oob_log_loss",
                      s.n ? bpm_scores_log_loss(&s) : 0.0, "oob_accuracy",
                      s.n ? bpm_scores_accuracy(&s) : 0.0, "uses_market", (int)feat.use_market);
        if (metrics == NULL) {
            rc = bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
            goto fail;
        }
    }
    rf_clear(m);
    m->feat = feat;
    m->nodes = g.nodes;
    m->n_nodes = g.n_nodes;
    m->roots = roots;
    m->n_trees = m->rp.n_trees;
    m->fitted = true;
    memset(&feat, 0, sizeof feat);
    g.nodes = NULL;
    roots = NULL;
    if (out_metrics != NULL) {
        *out_metrics = metrics;
        metrics = NULL;
    }
    rc = BP_OK;
fail:
    json_decref(metrics);
    bpm_features_free(&feat);
    free(g.nodes);
    free(x);
    free(y);
    free(sorted);
    free(cuts);
    free(n_cuts);
    free(xb);
    free(idx);
    free(oob);
    free(oob_n);
    free(roots);
    return rc;
}

static int rf_predict(void *model, int64_t home, int64_t away, int64_t kickoff_ms,
                      bp_prediction *out, bp_error *err)
{
    const rf_model *m = model;
    (void)kickoff_ms;
    if (!m->fitted) {
        return bp_err(err, BP_E_STATE, MODEL ": predict before fit or load");
    }
    double x[BPM_FEATURES_MAX];
    int rc = bpm_features_for(MODEL, &m->feat, home, away, x, err);
    if (rc != BP_OK) {
        return rc;
    }
    double p[3] = {0, 0, 0};
    for (int t = 0; t < m->n_trees; t++) {
        const double *q = tree_leaf(m->nodes, m->roots[t], x);
        p[0] += q[0];
        p[1] += q[1];
        p[2] += q[2];
    }
    memset(out, 0, sizeof *out);
    out->p_home = p[0] / m->n_trees;
    out->p_draw = p[1] / m->n_trees;
    out->p_away = p[2] / m->n_trees;
    out->exp_home_goals = (double)NAN;
    out->exp_away_goals = (double)NAN;
    return BP_OK;
}

/* ---- save / load -------------------------------------------------------------------------------
 */

static int rf_save(void *model, json_t **out_state, bp_error *err)
{
    const rf_model *m = model;
    if (!m->fitted) {
        return bp_err(err, BP_E_STATE, MODEL ": nothing to save: the model is not fitted");
    }
    json_t *state = bpm_state_new(MODEL, BPM_RANDOM_FOREST_STATE_VERSION);
    size_t n = m->n_nodes;
    double *buf = malloc((n * 7 + (size_t)m->n_trees + 1) * sizeof *buf);
    if (state == NULL || buf == NULL) {
        json_decref(state);
        free(buf);
        return bp_err(err, BP_E_NOMEM, MODEL ": out of memory");
    }
    double *feature = buf, *threshold = buf + n, *left = buf + 2 * n, *right = buf + 3 * n;
    double *p = buf + 4 * n, *roots = buf + 7 * n;
    for (size_t i = 0; i < n; i++) {
        feature[i] = m->nodes[i].feature;
        threshold[i] = m->nodes[i].threshold;
        left[i] = m->nodes[i].left;
        right[i] = m->nodes[i].right;
        memcpy(p + 3 * i, m->nodes[i].p, sizeof m->nodes[i].p);
    }
    for (int t = 0; t < m->n_trees; t++) {
        roots[t] = m->roots[t];
    }
    int rc = bpm_features_save(&m->feat, state, err);
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(state, "node_feature", feature, n, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(state, "node_threshold", threshold, n, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(state, "node_left", left, n, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(state, "node_right", right, n, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(state, "node_p", p, 3 * n, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_doubles(state, "roots", roots, (size_t)m->n_trees, err);
    }
    free(buf);
    if (rc != BP_OK) {
        json_decref(state);
        return rc;
    }
    *out_state = state;
    return BP_OK;
}

static int int_of(double v, double lo, double hi, int *out)
{
    if (!(v >= lo && v <= hi) || floor(v) != v) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Validate and convert the node arrays: indices in range, children after their parent (so a
 * loaded forest cannot loop), a leaf's frequencies in [0, 1]. */
static int load_nodes(const json_t *state, size_t dim, rf_node **out_nodes, size_t *out_n,
                      int **out_roots, int *out_trees, bp_error *err)
{
    const json_t *fa = json_object_get(state, "node_feature");
    const json_t *ra = json_object_get(state, "roots");
    if (!json_is_array(fa) || json_array_size(fa) == 0 || !json_is_array(ra) ||
        json_array_size(ra) == 0) {
        return bp_err(err, BP_E_INVAL,
                      MODEL ": state: node_feature and roots must be non-empty "
                            "arrays");
    }
    size_t n = json_array_size(fa), nt = json_array_size(ra);
    double *buf = malloc((7 * n + nt) * sizeof *buf);
    rf_node *nodes = malloc(n * sizeof *nodes);
    int *roots = malloc(nt * sizeof *roots);
    int rc = BP_OK;
    if (buf == NULL || nodes == NULL || roots == NULL) {
        rc = bp_err(err, BP_E_NOMEM, MODEL ": out of memory loading state");
        goto fail;
    }
    if ((rc = bpm_state_get_doubles(MODEL, state, "node_feature", buf, n, err)) != BP_OK ||
        (rc = bpm_state_get_doubles(MODEL, state, "node_threshold", buf + n, n, err)) != BP_OK ||
        (rc = bpm_state_get_doubles(MODEL, state, "node_left", buf + 2 * n, n, err)) != BP_OK ||
        (rc = bpm_state_get_doubles(MODEL, state, "node_right", buf + 3 * n, n, err)) != BP_OK ||
        (rc = bpm_state_get_doubles(MODEL, state, "node_p", buf + 4 * n, 3 * n, err)) != BP_OK ||
        (rc = bpm_state_get_doubles(MODEL, state, "roots", buf + 7 * n, nt, err)) != BP_OK) {
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        rf_node *nd = &nodes[i];
        nd->threshold = buf[n + i];
        memcpy(nd->p, buf + 4 * n + 3 * i, sizeof nd->p);
        if (int_of(buf[i], -1, (double)dim - 1, &nd->feature) != 0) {
            rc = bp_err(err, BP_E_INVAL, MODEL ": state.node_feature[%zu] is invalid", i);
            goto fail;
        }
        if (nd->feature >= 0 &&
            (int_of(buf[2 * n + i], (double)i + 1, (double)n - 1, &nd->left) != 0 ||
             int_of(buf[3 * n + i], (double)i + 1, (double)n - 1, &nd->right) != 0)) {
            rc = bp_err(err, BP_E_INVAL, MODEL ": state: node %zu has invalid children", i);
            goto fail;
        }
        if (nd->feature < 0) {
            nd->left = nd->right = -1;
            for (int c = 0; c < 3; c++) {
                if (!(nd->p[c] >= 0.0 && nd->p[c] <= 1.0)) {
                    rc = bp_err(err, BP_E_INVAL, MODEL ": state: leaf %zu has p outside [0, 1]", i);
                    goto fail;
                }
            }
        }
    }
    for (size_t t = 0; t < nt; t++) {
        if (int_of(buf[7 * n + t], 0, (double)n - 1, &roots[t]) != 0) {
            rc = bp_err(err, BP_E_INVAL, MODEL ": state.roots[%zu] is invalid", t);
            goto fail;
        }
    }
    free(buf);
    *out_nodes = nodes;
    *out_n = n;
    *out_roots = roots;
    *out_trees = (int)nt;
    return BP_OK;
fail:
    free(buf);
    free(nodes);
    free(roots);
    return rc;
}

static int rf_load(void *model, const json_t *state, bp_error *err)
{
    rf_model *m = model;
    int rc = bpm_state_check(MODEL, BPM_RANDOM_FOREST_STATE_VERSION, state, err);
    if (rc != BP_OK) {
        return rc;
    }
    bpm_features feat;
    if ((rc = bpm_features_load(MODEL, state, &feat, err)) != BP_OK) {
        return rc;
    }
    rf_node *nodes = NULL;
    size_t n = 0;
    int *roots = NULL, nt = 0;
    if ((rc = load_nodes(state, feat.dim, &nodes, &n, &roots, &nt, err)) != BP_OK) {
        bpm_features_free(&feat);
        return rc;
    }
    rf_clear(m);
    m->feat = feat;
    m->fopts = feat.opts;
    m->nodes = nodes;
    m->n_nodes = n;
    m->roots = roots;
    m->n_trees = nt;
    m->fitted = true;
    return BP_OK;
}

static void rf_destroy(void *model)
{
    rf_model *m = model;
    if (m != NULL) {
        rf_clear(m);
        free(m);
    }
}

const bp_model_type bpm_random_forest_type = {
    .struct_size = (uint32_t)sizeof(bp_model_type),
    .state_version = BPM_RANDOM_FOREST_STATE_VERSION,
    .name = MODEL,
    .description = "random forest of classification trees (bagging, Gini, out-of-bag score) on "
                   "engineered features",
    .params_schema =
        "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
        "\"n_trees\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":5000,\"default\":200},"
        "\"max_depth\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":40,\"default\":10},"
        "\"min_leaf\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000,\"default\":25},"
        "\"mtry\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9,\"default\":0},"
        "\"bins\":{\"type\":\"integer\",\"minimum\":2,\"maximum\":64,\"default\":32},"
        "\"seed\":{\"type\":\"integer\",\"minimum\":0,\"default\":1}," BPM_FEATURES_SCHEMA_PROPS
        "}}",
    .create = rf_create,
    .fit = rf_fit,
    .predict = rf_predict,
    .save = rf_save,
    .load = rf_load,
    .destroy = rf_destroy,
};
