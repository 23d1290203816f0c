/*
 * bpm_goals.c - maximum likelihood for the Maher and Dixon-Coles goal models.
 *
 * The story of a fit:
 *   1. select the matches inside the window, weight them, index their teams;
 *   2. refuse data without a finite MLE (too few matches, disconnected groups of teams, a team
 *      that never scored or never conceded) with a message that names the problem;
 *   3. start from smoothed goal rates, or from a previous fit's ratings (warm start);
 *   4. rounds of BFGS2 on preconditioned coordinates until the Newton decrement is tiny;
 *   5. check rho left every tau positive, centre the ratings, compute the log-likelihood.
 * Nothing is written to the caller's output until every step has succeeded.
 */
#include "bpm_goals.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bpm_opt.h"

#define DIM BP_SCORE_DIM
/* Below this tau, log(tau) is continued by its Taylor expansion (see the header). */
#define TAU_MIN 1e-6
/* Convergence: Newton decrement (z-gradient norm) targets. */
#define GRAD_TOL    1e-7
#define GRAD_ACCEPT 1e-4
#define ROUND_ITER  60
#define MAX_ROUNDS  12

typedef struct gm_match {
    size_t i, j; /* home, away team index */
    int x, y;    /* goals */
    double w;
} gm_match;

typedef struct gm_problem {
    const bpm_goals_opts *o;
    size_t n; /* teams */
    size_t p; /* parameters: attack n, defence n, mu, home [, rho] */
    gm_match *m;
    size_t nm;
    double kappa; /* identifiability penalty weight */
} gm_problem;

#define IX_MU(pb)   (2 * (pb)->n)
#define IX_HOME(pb) (2 * (pb)->n + 1)
#define IX_RHO(pb)  (2 * (pb)->n + 2)

/* ln(x!) for a goal count. Not lgamma(): it writes the global signgam, a data race when two
 * fits run in different worker threads. Goals are at most 99, so the sum is short. */
static double log_factorial(int x)
{
    double s = 0.0;
    for (int k = 2; k <= x; k++) {
        s += log((double)k);
    }
    return s;
}

/* log(tau), continued below TAU_MIN by a second-order expansion; *d gets the derivative. */
static double log_tau(double t, double *d)
{
    if (t >= TAU_MIN) {
        *d = 1.0 / t;
        return log(t);
    }
    double u = t - TAU_MIN;
    *d = 1.0 / TAU_MIN - u / (TAU_MIN * TAU_MIN);
    return log(TAU_MIN) + u / TAU_MIN - u * u / (2.0 * TAU_MIN * TAU_MIN);
}

/* tau and its derivatives in log(lambda), log(nu) and rho for a low score (x, y <= 1). */
static double tau_of(int x, int y, double lam, double nu, double rho, double *dl, double *dn,
                     double *dr)
{
    *dl = *dn = 0.0;
    if (x == 0 && y == 0) {
        *dl = *dn = -lam * nu * rho;
        *dr = -lam * nu;
        return 1.0 - lam * nu * rho;
    }
    if (x == 0) { /* 0-1 */
        *dl = lam * rho;
        *dr = lam;
        return 1.0 + lam * rho;
    }
    if (y == 0) { /* 1-0 */
        *dn = nu * rho;
        *dr = nu;
        return 1.0 + nu * rho;
    }
    *dr = -1.0; /* 1-1 */
    return 1.0 - rho;
}

/*
 * The objective in natural coordinates: -loglik (without the constant lgamma terms) plus the
 * identifiability and ridge penalties (when `penalties`). Gradient into g when g != NULL.
 */
static double objective(const gm_problem *pb, const double *th, double *g, int penalties)
{
    size_t n = pb->n;
    const double *att = th, *def = th + n;
    double mu = th[IX_MU(pb)], home = th[IX_HOME(pb)];
    double rho = pb->o->use_rho ? th[IX_RHO(pb)] : 0.0;
    double f = 0.0;
    if (g != NULL) {
        memset(g, 0, pb->p * sizeof *g);
    }
    for (size_t k = 0; k < pb->nm; k++) {
        const gm_match *m = &pb->m[k];
        double eh = mu + home + att[m->i] + def[m->j];
        double ea = mu + att[m->j] + def[m->i];
        double lam = exp(eh), nu = exp(ea);
        double ll = m->x * eh - lam + m->y * ea - nu;
        double gl = m->x - lam, gn = m->y - nu, gr = 0.0;
        if (pb->o->use_rho && m->x <= 1 && m->y <= 1) {
            double dl, dn, dr, dlog;
            double t = tau_of(m->x, m->y, lam, nu, rho, &dl, &dn, &dr);
            ll += log_tau(t, &dlog);
            gl += dlog * dl;
            gn += dlog * dn;
            gr = dlog * dr;
        }
        f -= m->w * ll;
        if (g != NULL) {
            double wl = m->w * gl, wn = m->w * gn;
            g[m->i] -= wl;
            g[n + m->j] -= wl;
            g[m->j] -= wn;
            g[n + m->i] -= wn;
            g[IX_MU(pb)] -= wl + wn;
            g[IX_HOME(pb)] -= wl;
            if (pb->o->use_rho) {
                g[IX_RHO(pb)] -= m->w * gr;
            }
        }
    }
    if (penalties) {
        double sa = 0.0, sd = 0.0, sq = 0.0;
        for (size_t t = 0; t < n; t++) {
            sa += att[t];
            sd += def[t];
            sq += att[t] * att[t] + def[t] * def[t];
        }
        f += 0.5 * pb->kappa * (sa * sa + sd * sd) + 0.5 * pb->o->ridge * sq;
        if (g != NULL) {
            for (size_t t = 0; t < n; t++) {
                g[t] += pb->kappa * sa + pb->o->ridge * att[t];
                g[n + t] += pb->kappa * sd + pb->o->ridge * def[t];
            }
        }
    }
    return f;
}

static double goals_fdf(const double *th, double *g, void *ud)
{
    return objective(ud, th, g, 1);
}

/*
 * The preconditioner at theta: the Hessian of the Poisson terms (each match adds w lambda u u^T
 * for u = the indicator of the parameters in log lambda, and the same for nu; exact for these
 * terms), the penalties, and the rho curvature sum w (dtau/drho / tau)^2.
 */
static void goals_hessian(const gm_problem *pb, const double *th, double *H)
{
    size_t n = pb->n, p = pb->p;
    memset(H, 0, p * p * sizeof *H);
    double rho = pb->o->use_rho ? th[IX_RHO(pb)] : 0.0;
    for (size_t k = 0; k < pb->nm; k++) {
        const gm_match *m = &pb->m[k];
        double lam = exp(th[IX_MU(pb)] + th[IX_HOME(pb)] + th[m->i] + th[n + m->j]);
        double nu = exp(th[IX_MU(pb)] + th[m->j] + th[n + m->i]);
        size_t uh[4] = {m->i, n + m->j, IX_MU(pb), IX_HOME(pb)};
        size_t ua[3] = {m->j, n + m->i, IX_MU(pb)};
        for (int a = 0; a < 4; a++) {
            for (int b = 0; b < 4; b++) {
                H[uh[a] * p + uh[b]] += m->w * lam;
            }
        }
        for (int a = 0; a < 3; a++) {
            for (int b = 0; b < 3; b++) {
                H[ua[a] * p + ua[b]] += m->w * nu;
            }
        }
        if (pb->o->use_rho && m->x <= 1 && m->y <= 1) {
            double dl, dn, dr;
            double t = tau_of(m->x, m->y, lam, nu, rho, &dl, &dn, &dr);
            t = t > TAU_MIN ? t : TAU_MIN;
            H[IX_RHO(pb) * p + IX_RHO(pb)] += m->w * (dr / t) * (dr / t);
        }
    }
    for (size_t a = 0; a < n; a++) {
        for (size_t b = 0; b < n; b++) {
            H[a * p + b] += pb->kappa;
            H[(n + a) * p + (n + b)] += pb->kappa;
        }
        H[a * p + a] += pb->o->ridge;
        H[(n + a) * p + (n + a)] += pb->o->ridge;
    }
    for (size_t a = 0; a < p; a++) {
        H[a * p + a] += 1e-9 * (1.0 + H[a * p + a]);
    }
    if (pb->o->use_rho && H[IX_RHO(pb) * p + IX_RHO(pb)] < 1.0) {
        H[IX_RHO(pb) * p + IX_RHO(pb)] = 1.0;
    }
}

/* ---- data checks ----------------------------------------------------------------------------- */

static size_t uf_find(size_t *parent, size_t a)
{
    while (parent[a] != a) {
        parent[a] = parent[parent[a]];
        a = parent[a];
    }
    return a;
}

static int check_data(const gm_problem *pb, const bpm_teams *teams, bp_error *err)
{
    const char *model = pb->o->model;
    size_t n = pb->n;
    if (2 * pb->nm < pb->p) {
        return bp_err(err, BP_E_INVAL,
                      "%s: too few matches: %zu matches in the window for %zu teams (need at "
                      "least %zu)",
                      model, pb->nm, n, (pb->p + 1) / 2);
    }
    int rc = BP_OK;
    size_t *parent = malloc(n * sizeof *parent);
    double *scored = calloc(2 * n, sizeof *scored);
    if (parent == NULL || scored == NULL) {
        rc = bp_err(err, BP_E_NOMEM, "%s: out of memory", model);
        goto done;
    }
    double *conceded = scored + n;
    double home_goals = 0.0, away_goals = 0.0;
    for (size_t t = 0; t < n; t++) {
        parent[t] = t;
    }
    for (size_t k = 0; k < pb->nm; k++) {
        const gm_match *m = &pb->m[k];
        size_t a = uf_find(parent, m->i), b = uf_find(parent, m->j);
        parent[a] = b;
        scored[m->i] += m->w * m->x;
        conceded[m->i] += m->w * m->y;
        scored[m->j] += m->w * m->y;
        conceded[m->j] += m->w * m->x;
        home_goals += m->w * m->x;
        away_goals += m->w * m->y;
    }
    for (size_t t = 1; t < n; t++) {
        if (uf_find(parent, t) != uf_find(parent, 0)) {
            rc = bp_err(err, BP_E_INVAL,
                        "%s: teams %lld and %lld are in groups that never play each other (not "
                        "even through common opponents); their strengths cannot be compared",
                        model, (long long)teams->ids[0], (long long)teams->ids[t]);
            goto done;
        }
    }
    if (pb->o->ridge == 0.0) {
        if (!(home_goals > 0.0) || !(away_goals > 0.0)) {
            rc = bp_err(err, BP_E_INVAL,
                        "%s: no %s goal in the training matches: home advantage has no finite "
                        "estimate",
                        model, home_goals > 0.0 ? "away" : "home");
            goto done;
        }
        for (size_t t = 0; t < n; t++) {
            if (!(scored[t] > 0.0) || !(conceded[t] > 0.0)) {
                rc =
                    bp_err(err, BP_E_INVAL,
                           "%s: team %lld %s no goal in its training matches: its %s rating has "
                           "no finite maximum-likelihood value (add matches or set ridge > 0)",
                           model, (long long)teams->ids[t], scored[t] > 0.0 ? "conceded" : "scored",
                           scored[t] > 0.0 ? "defence" : "attack");
                goto done;
            }
        }
    }
    if (pb->o->use_rho) {
        size_t low = 0;
        for (size_t k = 0; k < pb->nm; k++) {
            low += pb->m[k].x <= 1 && pb->m[k].y <= 1;
        }
        if (low == 0) {
            rc = bp_err(err, BP_E_INVAL,
                        "%s: no training match ended 0-0, 1-0, 0-1 or 1-1: rho cannot be "
                        "estimated",
                        model);
            goto done;
        }
    }
done:
    free(parent);
    free(scored);
    return rc;
}

/* ---- starting point ------------------------------------------------------------------------ */

static int cold_start(const gm_problem *pb, double *th, bp_error *err)
{
    size_t n = pb->n;
    double W = 0.0, hg = 0.0, ag = 0.0;
    double *gf = calloc(3 * n, sizeof *gf); /* goals for, goals against, games */
    if (gf == NULL) {
        return bp_err(err, BP_E_NOMEM, "%s: out of memory", pb->o->model);
    }
    for (size_t k = 0; k < pb->nm; k++) {
        const gm_match *m = &pb->m[k];
        W += m->w;
        hg += m->w * m->x;
        ag += m->w * m->y;
        gf[m->i] += m->w * m->x;
        gf[n + m->i] += m->w * m->y;
        gf[2 * n + m->i] += m->w;
        gf[m->j] += m->w * m->y;
        gf[n + m->j] += m->w * m->x;
        gf[2 * n + m->j] += m->w;
    }
    /* One pseudo-game at the league rate keeps every start finite. */
    double avg = (hg + ag + 1.0) / (2.0 * W + 2.0);
    double sa = 0.0, sd = 0.0;
    for (size_t t = 0; t < n; t++) {
        double games = gf[2 * n + t];
        th[t] = log((gf[t] + avg) / (avg * (games + 1.0)));
        th[n + t] = log((gf[n + t] + avg) / (avg * (games + 1.0)));
        sa += th[t];
        sd += th[n + t];
    }
    for (size_t t = 0; t < n; t++) {
        th[t] -= sa / (double)n;
        th[n + t] -= sd / (double)n;
    }
    th[IX_HOME(pb)] = log((hg + 0.5) / (ag + 0.5));
    th[IX_MU(pb)] = log((ag + 0.5) / (W + 0.5));
    if (pb->o->use_rho) {
        th[IX_RHO(pb)] = 0.0;
    }
    free(gf);
    return BP_OK;
}

static void warm_start(const gm_problem *pb, const bpm_teams *teams, const bpm_goals_fit *warm,
                       double *th)
{
    size_t n = pb->n;
    for (size_t t = 0; t < n; t++) {
        long w = bpm_teams_find(&warm->teams, teams->ids[t]);
        if (w >= 0) {
            th[t] = warm->attack[w];
            th[n + t] = warm->defence[w];
        }
    }
    th[IX_MU(pb)] = warm->mu;
    th[IX_HOME(pb)] = warm->home;
    if (pb->o->use_rho) {
        th[IX_RHO(pb)] = warm->rho;
    }
}

/* ---- the fit ------------------------------------------------------------------------------- */

int bpm_goals_fit_set(const bpm_goals_opts *o, const bp_match_set *set, const bpm_goals_fit *warm,
                      bpm_goals_fit *out, bp_error *err)
{
    const char *model = o->model;
    int rc = bpm_match_set_check(model, set, 1, err);
    if (rc != BP_OK) {
        return rc;
    }
    gm_problem pb;
    memset(&pb, 0, sizeof pb);
    pb.o = o;
    bpm_teams teams = {NULL, 0};
    double *H = NULL, *theta = NULL;
    double *att = NULL, *def = NULL;

    /* 1. the window, the weights, the teams */
    int64_t as_of = bpm_match_set_as_of(set);
    size_t first = 0;
    if (o->window_days > 0.0) {
        while (first < set->n_matches &&
               (double)(as_of - set->matches[first].kickoff_ms) / BPM_MS_PER_DAY > o->window_days) {
            first++;
        }
    }
    pb.nm = set->n_matches - first;
    if (pb.nm == 0) {
        return bp_err(err, BP_E_INVAL, "%s: no match inside the %g-day window", model,
                      o->window_days);
    }
    rc = bpm_teams_build(set->matches + first, pb.nm, &teams, err);
    if (rc != BP_OK) {
        return rc;
    }
    pb.n = teams.n;
    pb.p = 2 * pb.n + 2 + (o->use_rho ? 1 : 0);
    pb.m = malloc(pb.nm * sizeof *pb.m);
    H = malloc(pb.p * pb.p * sizeof *H);
    theta = malloc(pb.p * sizeof *theta);
    if (!pb.m || !H || !theta) {
        rc = bp_err(err, BP_E_NOMEM, "%s: out of memory for %zu matches", model, pb.nm);
        goto fail;
    }
    double log_fact_const = 0.0, total_w = 0.0;
    for (size_t k = 0; k < pb.nm; k++) {
        const bp_match_result *r = &set->matches[first + k];
        gm_match *m = &pb.m[k];
        m->i = (size_t)bpm_teams_find(&teams, r->home_team);
        m->j = (size_t)bpm_teams_find(&teams, r->away_team);
        m->x = r->home_goals;
        m->y = r->away_goals;
        double days = (double)(as_of - r->kickoff_ms) / BPM_MS_PER_DAY;
        m->w = o->xi > 0.0 ? exp(-o->xi * days) : 1.0;
        total_w += m->w;
        log_fact_const += m->w * (log_factorial(m->x) + log_factorial(m->y));
    }
    pb.kappa = total_w / (double)pb.n;

    /* 2. data that has no finite MLE */
    rc = check_data(&pb, &teams, err);
    if (rc != BP_OK) {
        goto fail;
    }

    /* 3. start */
    if ((rc = cold_start(&pb, theta, err)) != BP_OK) {
        goto fail;
    }
    if (warm != NULL && warm->teams.n > 0) {
        warm_start(&pb, &teams, warm, theta);
    }

    /* 4. rounds of preconditioned BFGS2 */
    int iterations = 0, rounds = 0, converged = 0;
    double decrement = INFINITY;
    while (!converged && rounds < MAX_ROUNDS && iterations < o->max_iter) {
        goals_hessian(&pb, theta, H);
        int budget = o->max_iter - iterations;
        bpm_min_opts mo = {budget < ROUND_ITER ? budget : ROUND_ITER, GRAD_TOL, GRAD_ACCEPT, 0.0,
                           0.1};
        bpm_min_info info;
        rc = bpm_minimize_preconditioned(pb.p, theta, goals_fdf, &pb, H, &mo, &info, model, err);
        rounds++;
        iterations += info.iterations;
        decrement = info.grad_norm;
        if (rc != BP_OK && rc != BP_E_LIMIT) {
            goto fail;
        }
        /* Converged, or stopped early: either way the next round starts from the last iterate
         * with a preconditioner rebuilt there. */
        converged = rc == BP_OK;
    }
    if (!converged) {
        rc = bp_err(err, BP_E_LIMIT,
                    "%s: fit did not converge in %d iterations over %d rounds (Newton decrement "
                    "%.3g)",
                    model, iterations, rounds, decrement);
        goto fail;
    }

    /* 5. validity, centring, log-likelihood */
    size_t n = pb.n;
    double rho = o->use_rho ? theta[IX_RHO(&pb)] : 0.0;
    for (size_t k = 0; k < pb.p; k++) {
        if (!isfinite(theta[k])) {
            rc = bp_err(err, BP_E_LIMIT, "%s: fit produced a non-finite parameter", model);
            goto fail;
        }
    }
    if (o->use_rho) {
        for (size_t k = 0; k < pb.nm; k++) {
            const gm_match *m = &pb.m[k];
            if (m->x > 1 || m->y > 1) {
                continue;
            }
            double lam =
                exp(theta[IX_MU(&pb)] + theta[IX_HOME(&pb)] + theta[m->i] + theta[n + m->j]);
            double nu = exp(theta[IX_MU(&pb)] + theta[m->j] + theta[n + m->i]);
            double dl, dn, dr;
            if (tau_of(m->x, m->y, lam, nu, rho, &dl, &dn, &dr) < TAU_MIN) {
                rc = bp_err(err, BP_E_INVAL,
                            "%s: the fitted rho %.4f gives training match %zu (%d-%d) a "
                            "probability of zero; the data do not support a Dixon-Coles fit",
                            model, rho, first + k, m->x, m->y);
                goto fail;
            }
        }
    }
    double ma = 0.0, md = 0.0;
    for (size_t t = 0; t < n; t++) {
        ma += theta[t];
    }
    ma /= (double)n;
    for (size_t t = 0; t < n; t++) {
        theta[t] -= ma;
        theta[n + t] += ma;
    }
    for (size_t t = 0; t < n; t++) {
        md += theta[n + t];
    }
    md /= (double)n;
    for (size_t t = 0; t < n; t++) {
        theta[n + t] -= md;
    }
    theta[IX_MU(&pb)] += md;
    double loglik = -objective(&pb, theta, NULL, 0) - log_fact_const;

    att = malloc(n * sizeof *att);
    def = malloc(n * sizeof *def);
    if (att == NULL || def == NULL) {
        rc = bp_err(err, BP_E_NOMEM, "%s: out of memory", model);
        goto fail;
    }
    memcpy(att, theta, n * sizeof *att);
    memcpy(def, theta + n, n * sizeof *def);
    out->teams = teams;
    out->attack = att;
    out->defence = def;
    out->mu = theta[IX_MU(&pb)];
    out->home = theta[IX_HOME(&pb)];
    out->rho = rho;
    out->loglik = loglik;
    out->total_weight = total_w;
    out->n_used = pb.nm;
    out->iterations = iterations;
    out->rounds = rounds;
    out->newton_decrement = decrement;
    teams.ids = NULL;
    att = def = NULL;
    rc = BP_OK;
fail:
    bpm_teams_free(&teams);
    free(att);
    free(def);
    free(pb.m);
    free(H);
    free(theta);
    return rc;
}

void bpm_goals_free(bpm_goals_fit *f)
{
    if (f == NULL) {
        return;
    }
    bpm_teams_free(&f->teams);
    free(f->attack);
    free(f->defence);
    f->attack = f->defence = NULL;
}

/* ---- prediction ------------------------------------------------------------------------------ */

int bpm_goals_rates(const bpm_goals_fit *f, const char *model, int64_t home, int64_t away,
                    double *out_lambda, double *out_nu, bp_error *err)
{
    if (f->teams.n == 0) {
        return bp_err(err, BP_E_STATE, "%s: the model has not been fitted", model);
    }
    long i = bpm_teams_find(&f->teams, home), j = bpm_teams_find(&f->teams, away);
    if (i < 0 || j < 0) {
        return bp_err(err, BP_E_NOTFOUND,
                      "%s: team %lld has no rating (it played no match in the training window)",
                      model, (long long)(i < 0 ? home : away));
    }
    if (home == away) {
        return bp_err(err, BP_E_INVAL, "%s: team %lld cannot play itself", model, (long long)home);
    }
    *out_lambda = exp(f->mu + f->home + f->attack[i] + f->defence[j]);
    *out_nu = exp(f->mu + f->attack[j] + f->defence[i]);
    return BP_OK;
}

void bpm_goals_score_matrix(double lambda, double nu, double rho, double *score)
{
    double ph[DIM], pa[DIM];
    ph[0] = exp(-lambda);
    pa[0] = exp(-nu);
    for (int k = 1; k < DIM; k++) {
        ph[k] = ph[k - 1] * lambda / k;
        pa[k] = pa[k - 1] * nu / k;
    }
    double total = 0.0;
    for (int i = 0; i < DIM; i++) {
        for (int j = 0; j < DIM; j++) {
            double p = ph[i] * pa[j];
            if (i <= 1 && j <= 1 && rho != 0.0) {
                double dl, dn, dr;
                double t = tau_of(i, j, lambda, nu, rho, &dl, &dn, &dr);
                p *= t > 0.0 ? t : 0.0;
            }
            score[i * DIM + j] = p;
            total += p;
        }
    }
    for (int k = 0; k < DIM * DIM; k++) {
        score[k] /= total;
    }
}

int bpm_goals_predict(const bpm_goals_fit *f, const char *model, int64_t home, int64_t away,
                      bp_prediction *out, bp_error *err)
{
    double lam, nu;
    int rc = bpm_goals_rates(f, model, home, away, &lam, &nu, err);
    if (rc != BP_OK) {
        return rc;
    }
    bp_prediction p;
    memset(&p, 0, sizeof p);
    bpm_goals_score_matrix(lam, nu, f->rho, p.score);
    p.has_score_matrix = 1;
    p.exp_home_goals = lam;
    p.exp_away_goals = nu;
    double h = 0.0, d = 0.0, a = 0.0;
    for (int i = 0; i < DIM; i++) {
        for (int j = 0; j < DIM; j++) {
            double q = p.score[i * DIM + j];
            if (i > j) {
                h += q;
            } else if (i == j) {
                d += q;
            } else {
                a += q;
            }
        }
    }
    p.p_home = h;
    p.p_draw = d;
    p.p_away = a;
    *out = p;
    return BP_OK;
}

/* ---- metrics, save, load ------------------------------------------------------------------- */

json_t *bpm_goals_metrics(const bpm_goals_fit *f, const bpm_goals_opts *o)
{
    double k = 2.0 * (double)f->teams.n + (o->use_rho ? 1.0 : 0.0);
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:f, s:i, s:i, s:f}", "loglik", f->loglik,
                     "aic", 2.0 * k - 2.0 * f->loglik, "home", f->home, "rho", f->rho, "mu", f->mu,
                     "n_matches", (json_int_t)f->n_used, "n_teams", (json_int_t)f->teams.n,
                     "total_weight", f->total_weight, "iterations", f->iterations, "rounds",
                     f->rounds, "newton_decrement", f->newton_decrement);
}

int bpm_goals_save(const bpm_goals_fit *f, json_t *state, bp_error *err)
{
    static const char *const keys[] = {"attack", "defence"};
    double *const arrays[] = {f->attack, f->defence};
    int rc = bpm_state_set_team_arrays(state, &f->teams, keys, arrays, 2, err);
    if (rc == BP_OK) {
        rc = bpm_state_set_double(state, "mu", f->mu, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_double(state, "home", f->home, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_double(state, "rho", f->rho, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_set_double(state, "loglik", f->loglik, err);
    }
    return rc;
}

int bpm_goals_load(const char *model, const json_t *state, bpm_goals_fit *out, bp_error *err)
{
    bpm_goals_fit f;
    memset(&f, 0, sizeof f);
    int rc = bpm_state_get_double(model, state, "mu", &f.mu, err);
    if (rc == BP_OK) {
        rc = bpm_state_get_double(model, state, "home", &f.home, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_get_double(model, state, "rho", &f.rho, err);
    }
    if (rc == BP_OK) {
        rc = bpm_state_get_double(model, state, "loglik", &f.loglik, err);
    }
    static const char *const keys[] = {"attack", "defence"};
    double *arrays[2] = {NULL, NULL};
    if (rc == BP_OK) {
        rc = bpm_state_get_team_arrays(model, state, keys, 2, 2, &f.teams, arrays, err);
    }
    if (rc != BP_OK) {
        return rc;
    }
    f.attack = arrays[0];
    f.defence = arrays[1];
    *out = f;
    return BP_OK;
}
