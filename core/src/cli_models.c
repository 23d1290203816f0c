/*
 * cli_models.c - `betpipe models`: the fitted models in the store, and the walk-forward
 * evaluation of models on the store's history.
 *
 *   models list [--league L] [--model M] [--all]   active models (or every stored fit) with their
 *                                                  metrics and age
 *   models show ID [--state]                       one stored model
 *   models activate ID                             make an older fit the active one again
 *   models evaluate --league E0 --from 2015-16 --to 2023-24 [--models dixon_coles,elo,...]
 *                                                  walk-forward, scored against the bookmakers
 *
 * evaluate runs the models in this process through their plugins' vtables (the registry is
 * loaded), with the walk-forward of models/common/bpm_walkforward.c - the same code and the same
 * mask as bench/models, so the figures compare. History: every finished match of the league in
 * the store up to the end of --to (the earlier seasons are training history only).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "bpm.h"
#include "bpm_blend.h"
#include "bpm_margin.h"
#include "bpm_metrics.h"
#include "bpm_walkforward.h"
#include "cli.h"
#include "cli_util.h"
#include "registry.h"
#include "store_domain.h"
#include "store_models.h"
#include "util.h"

#define CALIB_BINS 10
#define MAX_MODELS BPM_BLEND_MAX_MEMBERS

static const cli_opt models_opts[] = {
    {"league", true, "CODE       league (E0, SP1, D1)"},
    {"model", true, "NAME         list: only this model type"},
    {"all", false, "              list: every stored fit, not only the active ones"},
    {"state", false, "            show: include the fitted state"},
    {"from", true, "SEASON        evaluate: first scored season (2015-16)"},
    {"to", true, "SEASON          evaluate: last scored season (default: --from)"},
    {"models", true,
     "A,B,..    evaluate: models (default dixon_coles,elo,pi_rating; 'ensemble' "
     "= the walk-forward blend of the others)"},
    {"params", true, "NAME=JSON evaluate: params of one model (repeatable)"},
    {"refit-days", true, "N     evaluate: refit every N days (default 1; random_forest 7)"},
    {"margin", true,
     "METHOD    evaluate: margin removal for the bookmakers (shin, "
     "multiplicative, additive, power, odds_ratio; default shin)"},
    {"boot", true, "N           evaluate: bootstrap resamples for the CIs (default 2000)"},
};

/* ============================================================================================
 * Small helpers
 * ========================================================================================== */

static int league_of(cli_args *a, app *ap, const char *code, int64_t *out)
{
    json_t *l = NULL;
    bp_error err = {0};
    int rc = store_find_league(ap->store, NULL, "betpipe", code, &l, &err);
    if (rc == BP_E_NOTFOUND) {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown league '%s' (E0, SP1, D1, I1, F1)", code);
        return cli_fail(a, BP_E_NOTFOUND, msg);
    }
    if (rc != BP_OK) {
        return cli_fail(a, rc, err.msg);
    }
    *out = json_integer_value(json_object_get(l, "id"));
    json_decref(l);
    return 0;
}

/* "2015-16" or "2015" -> 2015. */
static int parse_season_arg(cli_args *a, const char *opt, const char *s, int32_t *out)
{
    char *end = NULL;
    long y = s ? strtol(s, &end, 10) : -1;
    if (!s || end == s || y < 1850 || y > 2200 ||
        (*end &&
         !(*end == '-' && strlen(end) == 3 && strtol(end + 1, NULL, 10) == (y + 1) % 100))) {
        char msg[160];
        snprintf(msg, sizeof msg, "--%s: '%s' is not a season (2015-16 or 2015)", opt, s ? s : "");
        return cli_fail(a, BP_E_INVAL, msg);
    }
    *out = (int32_t)y;
    return 0;
}

static void age_text(int64_t ms, char *buf, size_t len)
{
    int64_t s = ms / 1000;
    if (s < 120) {
        snprintf(buf, len, "%llds ago", (long long)s);
    } else if (s < 7200) {
        snprintf(buf, len, "%lldm ago", (long long)(s / 60));
    } else if (s < 172800) {
        snprintf(buf, len, "%lldh ago", (long long)(s / 3600));
    } else {
        snprintf(buf, len, "%lldd ago", (long long)(s / 86400));
    }
}

static const char *date_part(const json_t *v, char *buf, size_t len)
{
    const char *s = json_string_value(v);
    snprintf(buf, len, "%.10s", s ? s : "-");
    return buf;
}

/* ============================================================================================
 * list / show / activate
 * ========================================================================================== */

static int cmd_list(cli_args *a, app *ap)
{
    const char *code = cli_opt_value(a, "league");
    int64_t league_id = 0;
    json_t *models = NULL, *m;
    bp_error err = {0};
    size_t i;
    int rc;
    if (code && (rc = league_of(a, ap, code, &league_id)) != 0) {
        return rc;
    }
    rc = store_list_models(ap->store, cli_opt_value(a, "model"), league_id,
                           cli_flag(a, "all") ? 0 : 1, &models, &err);
    if (rc != BP_OK) {
        return cli_fail(a, rc, err.msg);
    }
    if (a->json) {
        cli_print_json(models);
        json_decref(models);
        return CLI_EXIT_OK;
    }
    if (json_array_size(models) == 0) {
        printf("no %smodels stored%s%s (train one: betpipe run ml.train --arg model=dixon_coles "
               "--arg league=E0 --wait)\n",
               cli_flag(a, "all") ? "" : "active ", code ? " for " : "", code ? code : "");
        json_decref(models);
        return CLI_EXIT_OK;
    }
    printf("%-6s %-14s %5s %-6s %-10s %-23s %6s %12s %9s %8s\n", "league", "model", "id", "active",
           "trained", "data (first .. last)", "n", "loglik", "in-s. RPS", "fit ms");
    int64_t now = util_now_ms();
    json_array_foreach(models, i, m)
    {
        const json_t *mt = json_object_get(m, "metrics");
        const json_t *ll = json_object_get(mt, "loglik");
        const json_t *rps = json_object_get(json_object_get(mt, "in_sample"), "rps");
        const json_t *fit = json_object_get(mt, "fit_ms");
        char age[32], d1[16], d2[16], range[40], llt[24] = "-", rpst[16] = "-", fitt[16] = "-";
        age_text(now - json_integer_value(json_object_get(m, "trained_ms")), age, sizeof age);
        snprintf(range, sizeof range, "%s..%s",
                 date_part(json_object_get(m, "train_from"), d1, sizeof d1),
                 date_part(json_object_get(m, "train_to"), d2, sizeof d2));
        if (json_is_number(ll)) {
            snprintf(llt, sizeof llt, "%.4f", json_number_value(ll));
        }
        if (json_is_number(rps)) {
            snprintf(rpst, sizeof rpst, "%.4f", json_number_value(rps));
        }
        if (json_is_number(fit)) {
            snprintf(fitt, sizeof fitt, "%.1f", json_number_value(fit));
        }
        printf("%-6s %-14s %5lld %-6s %-10s %-23s %6lld %12s %9s %8s\n",
               json_string_value(json_object_get(m, "league")),
               json_string_value(json_object_get(m, "model")),
               (long long)json_integer_value(json_object_get(m, "id")),
               json_is_true(json_object_get(m, "active")) ? "yes" : "no", age, range,
               (long long)json_integer_value(json_object_get(m, "n_matches")), llt, rpst, fitt);
    }
    json_decref(models);
    return CLI_EXIT_OK;
}

static int parse_id(cli_args *a, int64_t *out)
{
    bp_error err = {0};
    if (a->n_positional != 2 ||
        util_parse_int64(a->positional[1], 1, INT64_MAX, "model id", out, &err) != BP_OK) {
        return cli_fail(a, BP_E_INVAL,
                        a->n_positional != 2 ? "usage: betpipe models show|activate ID" : err.msg);
    }
    return 0;
}

static int cmd_show(cli_args *a, app *ap)
{
    int64_t id = 0;
    json_t *m = NULL;
    bp_error err = {0};
    int rc = parse_id(a, &id);
    if (rc != 0) {
        return rc;
    }
    rc = store_get_model(ap->store, id, NULL, 0, &m, &err);
    if (rc != BP_OK) {
        return cli_fail(a, rc, err.msg);
    }
    if (!cli_flag(a, "state")) {
        json_object_del(m, "state");
    }
    cli_print_json(m);
    json_decref(m);
    return CLI_EXIT_OK;
}

static int cmd_activate(cli_args *a, app *ap)
{
    int64_t id = 0;
    bp_error err = {0};
    int rc = parse_id(a, &id);
    if (rc != 0) {
        return rc;
    }
    rc = store_activate_model(ap->store, id, &err);
    if (rc != BP_OK) {
        return cli_fail(a, rc, err.msg);
    }
    printf("model %lld is active\n", (long long)id);
    return CLI_EXIT_OK;
}

/* ============================================================================================
 * evaluate
 * ========================================================================================== */

/* A row's label: a model name (at most 63 characters, the registry's limit), a bookmaker, or
 * "ensemble(a+b+...)" naming up to MAX_MODELS members in full. */
#define LABEL_MAX (sizeof "ensemble()" + MAX_MODELS * 64)

/* One row of the table: a model, the ensemble, or a bookmaker. */
typedef struct eval_row {
    char label[LABEL_MAX];
    char short_label[24]; /* for the calibration columns */
    char params[256];
    double (*p)[3]; /* per match, owned */
    bpm_wf_model wf;
    bool is_model, is_book;
    bpm_wf_scores sc; /* on the common set; the differences are RPS - Pinnacle */
} eval_row;

typedef struct eval_run {
    const bp_match_result *m;
    size_t n;
    eval_row rows[MAX_MODELS + 3];
    size_t n_rows;
} eval_run;

/* The evaluation defaults of the bench (bench/models): the goal models look back 1100 days
 * with a weak prior on their ratings (BPM_WF_GOALS_PARAMS). */
static const char *default_params(const char *model)
{
    if (strcmp(model, "dixon_coles") == 0 || strcmp(model, "poisson") == 0) {
        return BPM_WF_GOALS_PARAMS;
    }
    return NULL;
}

/* --params NAME=JSON from argv (repeatable, which cli_args cannot hold). */
static const char *params_override(int argc, char **argv, const char *model)
{
    const char *found = NULL;
    size_t len = strlen(model);
    for (int i = 1; i < argc; i++) {
        const char *kv = NULL;
        if (strcmp(argv[i], "--params") == 0 && i + 1 < argc) {
            kv = argv[++i];
        } else if (strncmp(argv[i], "--params=", 9) == 0) {
            kv = argv[i] + 9;
        }
        if (kv && strncmp(kv, model, len) == 0 && kv[len] == '=') {
            found = kv + len + 1;
        }
    }
    return found;
}

/* Index of match_id in rows sorted by match id, or -1. */
static long price_find(const store_price3 *rows, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rows[mid].match_id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && rows[lo].match_id == id ? (long)lo : -1;
}

/* The first column is as wide as the longest label (at least 36), so the columns line up. */
static void print_row(const eval_row *r, bool ref, int width)
{
    printf("  %-*s %5zu  %.4f  %.4f  %.4f  %.4f", width, r->label, r->sc.s.n,
           bpm_scores_rps(&r->sc.s), bpm_scores_log_loss(&r->sc.s), bpm_scores_brier(&r->sc.s),
           bpm_scores_accuracy(&r->sc.s));
    if (ref) {
        printf("  %25s", "(the reference)");
    } else {
        printf("  %+.4f [%+.4f, %+.4f]", r->sc.d_mean, r->sc.d_lo, r->sc.d_hi);
    }
    if (r->is_model) {
        printf("  %7.2f s  %5d", r->wf.seconds, r->wf.fits);
        if (r->wf.fit_failures) {
            printf(" (%d failed)", r->wf.fit_failures);
        }
    }
    printf("\n");
}

static json_t *row_json(const eval_row *r, bool ref)
{
    json_t *o = bpm_scores_json(&r->sc.s);
    if (!o) {
        return NULL;
    }
    json_object_set_new(o, "label", json_string(r->label));
    json_object_set_new(o, "kind",
                        json_string(r->is_book    ? "bookmaker"
                                    : r->is_model ? "model"
                                                  : "ensemble"));
    if (!ref) {
        json_object_set_new(o, "rps_minus_pinnacle", json_real(r->sc.d_mean));
        json_object_set_new(o, "rps_minus_pinnacle_ci95",
                            json_pack("[f, f]", r->sc.d_lo, r->sc.d_hi));
    }
    if (r->is_model) {
        json_object_set_new(o, "params", json_loads(r->params, 0, NULL));
        json_object_set_new(o, "fits", json_integer(r->wf.fits));
        json_object_set_new(o, "fit_failures", json_integer(r->wf.fit_failures));
        json_object_set_new(o, "first_fit_failure",
                            r->wf.fit_failures ? json_string(r->wf.first_failure) : json_null());
        json_object_set_new(o, "seconds", json_real(r->wf.seconds));
    }
    return o;
}

/* Mean forecast and observed frequency per probability bin, one column per row. */
static void print_calibration(const eval_run *ev)
{
    printf("\nCalibration: every probability of every forecast (home, draw, away) is one binary "
           "forecast;\nper bin: mean forecast / observed frequency (count)\n  %-9s",
           "bin");
    for (size_t r = 0; r < ev->n_rows; r++) {
        printf(" %22.22s",
               ev->rows[r].short_label[0] ? ev->rows[r].short_label : ev->rows[r].label);
    }
    printf("\n");
    for (int b = 0; b < CALIB_BINS; b++) {
        printf("  %.1f-%.1f  ", (double)b / CALIB_BINS, (double)(b + 1) / CALIB_BINS);
        for (size_t r = 0; r < ev->n_rows; r++) {
            const bpm_scores *s = &ev->rows[r].sc.s;
            if (s->bin_count[b] == 0) {
                printf(" %22s", "-");
            } else {
                char cell[40];
                snprintf(cell, sizeof cell, "%.3f / %.3f (%zu)",
                         s->bin_forecast[b] / (double)s->bin_count[b],
                         s->bin_observed[b] / (double)s->bin_count[b], s->bin_count[b]);
                printf(" %22s", cell);
            }
        }
        printf("\n");
    }
}

static void eval_free(eval_run *ev)
{
    for (size_t r = 0; r < ev->n_rows; r++) {
        if (ev->rows[r].is_model) {
            bpm_wf_model_free(&ev->rows[r].wf);
        } else {
            free(ev->rows[r].p);
        }
    }
    ev->n_rows = 0;
}

static int cmd_evaluate(cli_args *a, app *ap, int argc, char **argv)
{
    const char *code = cli_opt_value(a, "league");
    const char *list =
        cli_opt_value(a, "models") ? cli_opt_value(a, "models") : "dixon_coles,elo,pi_rating";
    const char *margin_name = cli_opt_value(a, "margin") ? cli_opt_value(a, "margin") : "shin";
    bpm_margin_method margin;
    int32_t from_year = 0, to_year = 0;
    int64_t league_id = 0, refit_override = 0, boot = 2000;
    bp_match_result *m = NULL;
    size_t n = 0, n_pin = 0, n_b365 = 0;
    store_price3 *pin = NULL, *b365 = NULL;
    bool *has_odds = NULL, *eval = NULL, *use = NULL;
    double(*pin_p)[3] = NULL, (*b365_p)[3] = NULL;
    int64_t from_ms = 0, to_ms = 0;
    bool want_ensemble = false;
    eval_run ev;
    bp_error err = {0};
    char msg[BP_ERROR_MSG_MAX + 128];
    int rc = 0;

    memset(&ev, 0, sizeof ev);
    if (!code || !cli_opt_value(a, "from")) {
        return cli_fail(a, BP_E_INVAL,
                        "usage: betpipe models evaluate --league E0 --from 2015-16 [--to 2023-24] "
                        "[--models dixon_coles,elo,...]");
    }
    if ((rc = parse_season_arg(a, "from", cli_opt_value(a, "from"), &from_year)) != 0 ||
        (rc = parse_season_arg(
             a, "to", cli_opt_value(a, "to") ? cli_opt_value(a, "to") : cli_opt_value(a, "from"),
             &to_year)) != 0) {
        return rc;
    }
    if (to_year < from_year) {
        return cli_fail(a, BP_E_INVAL, "--to is before --from");
    }
    if (bpm_margin_method_parse(margin_name, &margin, &err) != BP_OK) {
        return cli_fail(a, BP_E_INVAL, err.msg);
    }
    if (cli_opt_value(a, "refit-days") &&
        util_parse_int64(cli_opt_value(a, "refit-days"), 1, 3650, "--refit-days", &refit_override,
                         &err) != BP_OK) {
        return cli_fail(a, BP_E_INVAL, err.msg);
    }
    if (cli_opt_value(a, "boot") &&
        util_parse_int64(cli_opt_value(a, "boot"), 10, 1000000, "--boot", &boot, &err) != BP_OK) {
        return cli_fail(a, BP_E_INVAL, err.msg);
    }
    if ((rc = league_of(a, ap, code, &league_id)) != 0) {
        return rc;
    }
    char seasons[40];
    if (from_year == to_year) {
        snprintf(seasons, sizeof seasons, "%d-%02d", (int)from_year, (int)((from_year + 1) % 100));
    } else {
        snprintf(seasons, sizeof seasons, "%d-%02d .. %d-%02d", (int)from_year,
                 (int)((from_year + 1) % 100), (int)to_year, (int)((to_year + 1) % 100));
    }

    /* the models, through their plugins */
    {
        char *copy = util_strdup(list), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            const registry_model *rm;
            eval_row *r;
            if (strcmp(tok, "ensemble") == 0) {
                want_ensemble = true;
                continue;
            }
            rm = registry_find_model(ap->reg, tok);
            if (!rm) {
                json_t *names = registry_names(ap->reg, REGISTRY_MODEL);
                char *known = json_dumps(names, JSON_COMPACT);
                snprintf(msg, sizeof msg, "--models: no model '%s' is loaded (loaded: %s)", tok,
                         known ? known : "[]");
                free(known);
                json_decref(names);
                free(copy);
                eval_free(&ev);
                return cli_fail(a, BP_E_NOTFOUND, msg);
            }
            if (ev.n_rows >= MAX_MODELS) {
                free(copy);
                eval_free(&ev);
                return cli_fail(a, BP_E_INVAL, "--models: at most 8 models");
            }
            r = &ev.rows[ev.n_rows++];
            snprintf(r->label, sizeof r->label, "%s", tok);
            const char *pt = params_override(argc, argv, tok);
            snprintf(r->params, sizeof r->params, "%s",
                     pt                    ? pt
                     : default_params(tok) ? default_params(tok)
                                           : "{}");
            r->is_model = true;
            r->wf.label = rm->desc.name;
            r->wf.type = &rm->desc;
            r->wf.plugin_state = rm->plugin_state;
            r->wf.refit_days = refit_override                      ? (int)refit_override
                               : strcmp(tok, "random_forest") == 0 ? 7
                                                                   : 1;
        }
        free(copy);
    }
    if (ev.n_rows == 0) {
        return cli_fail(a, BP_E_INVAL, "--models: name at least one model");
    }
    if (want_ensemble && ev.n_rows < 2) {
        eval_free(&ev);
        return cli_fail(a, BP_E_INVAL,
                        "--models: the ensemble blends the other models: name two "
                        "or more besides it");
    }

    /* the history: every finished match of the league up to the end of the --to season */
    {
        bp_match_query q = {
            .struct_size = sizeof q, .league_id = league_id, .season = from_year, .limit = 1};
        bp_match_result *one = NULL;
        size_t k1 = 0;
        rc = store_match_results(ap->store, &q, NULL, &one, &k1, &err);
        if (rc == BP_OK && k1 == 1) {
            from_ms = one[0].kickoff_ms;
        }
        store_free_results(one);
        one = NULL;
        if (rc == BP_OK) {
            /* the last finished match of the --to season (match_results is oldest first) */
            json_t *last = NULL;
            bp_match_query lq = {.struct_size = sizeof lq,
                                 .league_id = league_id,
                                 .season = to_year,
                                 .status = BP_MATCH_FINISHED,
                                 .limit = 1,
                                 .descending = 1};
            rc = store_list_matches(ap->store, &lq, &last, &err);
            if (rc == BP_OK && json_array_size(last) == 1) {
                to_ms =
                    json_integer_value(json_object_get(json_array_get(last, 0), "kickoff_ms")) + 1;
            }
            json_decref(last);
        }
        store_free_results(one);
        if (rc != BP_OK) {
            eval_free(&ev);
            return cli_fail(a, rc, err.msg);
        }
        if (!from_ms || !to_ms || to_ms <= from_ms) {
            snprintf(msg, sizeof msg,
                     "no finished %s matches of %s in the store (import them first: betpipe run "
                     "data.import --wait)",
                     code, seasons);
            eval_free(&ev);
            return cli_fail(a, BP_E_NOTFOUND, msg);
        }
        q = (bp_match_query){.struct_size = sizeof q, .league_id = league_id, .to_ms = to_ms};
        rc = store_match_results(ap->store, &q, "pinnacle", &m, &n, &err);
        if (rc == BP_OK) {
            rc = store_match_prices(ap->store, league_id, 0, to_ms, "pinnacle", 1, &pin, &n_pin,
                                    &err);
        }
        if (rc == BP_OK) {
            rc = store_match_prices(ap->store, league_id, 0, to_ms, "bet365", 0, &b365, &n_b365,
                                    &err);
        }
        if (rc != BP_OK) {
            eval_free(&ev);
            store_free_results(m);
            free(pin);
            return cli_fail(a, rc, err.msg);
        }
    }
    ev.m = m;
    ev.n = n;

    /* bookmaker forecasts and the mask */
    has_odds = calloc(n, sizeof *has_odds);
    eval = calloc(n, sizeof *eval);
    use = calloc(n, sizeof *use);
    pin_p = calloc(n, sizeof *pin_p);
    b365_p = calloc(n, sizeof *b365_p);
    if (!has_odds || !eval || !use || !pin_p || !b365_p) {
        rc = cli_fail(a, BP_E_NOMEM, "out of memory");
        goto done;
    }
    size_t n_no_odds = 0, n_margin_refused = 0;
    for (size_t k = 0; k < n; k++) {
        long ip = price_find(pin, n_pin, m[k].match_id);
        long ib = price_find(b365, n_b365, m[k].match_id);
        if (ip < 0 || ib < 0) {
            continue;
        }
        double po[3] = {pin[ip].home, pin[ip].draw, pin[ip].away};
        double bo[3] = {b365[ib].home, b365[ib].draw, b365[ib].away};
        if (bpm_remove_margin(margin, po, 3, pin_p[k], NULL, NULL) != BP_OK ||
            bpm_remove_margin(margin, bo, 3, b365_p[k], NULL, NULL) != BP_OK) {
            if (m[k].kickoff_ms >= from_ms) {
                n_margin_refused++;
            }
            continue;
        }
        has_odds[k] = true;
    }
    bpm_wf_mask_opts mo = {from_ms, to_ms, BPM_WF_WINDOW_DAYS, BPM_WF_MIN_GAMES};
    bpm_wf_mask(m, n, &mo, NULL, eval); /* history rule alone, to count what odds remove */
    size_t n_candidates = 0, n_history_ok = 0;
    for (size_t k = 0; k < n; k++) {
        if (m[k].kickoff_ms >= from_ms) {
            n_candidates++;
            n_history_ok += eval[k];
            n_no_odds += eval[k] && !has_odds[k];
        }
    }
    bpm_wf_mask(m, n, &mo, has_odds, eval);

    /* the walk-forward of every model */
    for (size_t r = 0; r < ev.n_rows; r++) {
        eval_row *row = &ev.rows[r];
        json_error_t jerr;
        json_t *params = json_loads(row->params, 0, &jerr);
        if (!params) {
            snprintf(msg, sizeof msg, "--params %.64s: not JSON: %s", row->label, jerr.text);
            rc = cli_fail(a, BP_E_INVAL, msg);
            goto done;
        }
        row->wf.params = params;
        if (!a->json) {
            fprintf(stderr, "betpipe models evaluate: %s: walk-forward over %zu matches...\n",
                    row->label, n);
        }
        int wrc = bpm_wf_run(m, n, eval, &row->wf, NULL, NULL, &err);
        row->wf.params = NULL;
        json_decref(params);
        if (wrc != BP_OK) {
            rc = cli_fail(a, wrc, err.msg);
            goto done;
        }
        row->p = row->wf.p;
    }
    /* the common set: scored and predicted by every model */
    size_t n_use = 0, n_unpredicted = 0;
    for (size_t k = 0; k < n; k++) {
        use[k] = eval[k];
        for (size_t r = 0; r < ev.n_rows; r++) {
            if (use[k] && isnan(ev.rows[r].p[k][0])) {
                use[k] = false;
                n_unpredicted++;
            }
        }
        n_use += use[k];
    }
    if (n_use == 0) {
        rc = cli_fail(a, BP_E_NOTFOUND,
                      "no match could be scored (too little history before "
                      "--from, or no Pinnacle closing / Bet365 odds)");
        goto done;
    }
    if (want_ensemble) {
        const bpm_wf_model *members[MAX_MODELS];
        eval_row *row = &ev.rows[ev.n_rows];
        char label[LABEL_MAX] = "ensemble(";
        size_t used = strlen(label);
        for (size_t r = 0; r < ev.n_rows; r++) {
            members[r] = &ev.rows[r].wf;
            used += (size_t)snprintf(label + used, sizeof label - used, "%s%s", r ? "+" : "",
                                     ev.rows[r].label);
        }
        snprintf(label + used, sizeof label - used, ")");
        memcpy(row->label, label, sizeof label);
        snprintf(row->short_label, sizeof row->short_label, "ensemble");
        row->p = calloc(n, sizeof *row->p);
        if (!row->p) {
            rc = cli_fail(a, BP_E_NOMEM, "out of memory");
            goto done;
        }
        if (bpm_wf_blend(m, n, use, members, ev.n_rows, 200, row->p, NULL, &err) != BP_OK) {
            free(row->p);
            rc = cli_fail(a, BP_E_INTERNAL, err.msg);
            goto done;
        }
        ev.n_rows++;
    }
    /* the bookmakers go first */
    memmove(&ev.rows[2], &ev.rows[0], ev.n_rows * sizeof ev.rows[0]);
    memset(&ev.rows[0], 0, 2 * sizeof ev.rows[0]);
    ev.n_rows += 2;
    snprintf(ev.rows[0].label, sizeof ev.rows[0].label, "pinnacle closing (%s)", margin_name);
    snprintf(ev.rows[0].short_label, sizeof ev.rows[0].short_label, "pinnacle");
    ev.rows[0].p = pin_p;
    ev.rows[0].is_book = true;
    pin_p = NULL;
    snprintf(ev.rows[1].label, sizeof ev.rows[1].label, "bet365 pre-closing (%s)", margin_name);
    snprintf(ev.rows[1].short_label, sizeof ev.rows[1].short_label, "bet365");
    ev.rows[1].p = b365_p;
    ev.rows[1].is_book = true;
    b365_p = NULL;

    /* score every row on the common set, each against Pinnacle's */
    for (size_t r = 0; r < ev.n_rows; r++) {
        eval_row *row = &ev.rows[r];
        if (bpm_wf_score(m, n, use, row->p, r > 0 ? ev.rows[0].p : NULL, CALIB_BINS, (int)boot,
                         20240519, &row->sc, &err) != BP_OK) {
            snprintf(msg, sizeof msg, "%.64s: %s", row->label, err.msg);
            rc = cli_fail(a, BP_E_INTERNAL, msg);
            goto done;
        }
    }

    /* which matches */
    char first_season[16] = "-";
    {
        json_t *arr = NULL;
        bp_match_query q = {.struct_size = sizeof q,
                            .league_id = league_id,
                            .limit = 1,
                            .status = BP_MATCH_FINISHED};
        if (store_list_matches(ap->store, &q, &arr, NULL) == BP_OK && json_array_size(arr)) {
            snprintf(first_season, sizeof first_season, "%s",
                     json_string_value(json_object_get(json_array_get(arr, 0), "season")));
        }
        json_decref(arr);
    }
    char scored_text[1024];
    snprintf(scored_text, sizeof scored_text,
             "%zu of the %zu finished %s matches of %s are scored: the %zu whose "
             "two teams both played >= %d matches in the %d days before the match day, less %zu "
             "without Pinnacle closing and Bet365 pre-closing 1X2 prices%s, less %zu some model "
             "could not predict. History: %zu finished %s matches from %s on; every model is "
             "refitted on the matches of earlier days only.",
             n_use, n_candidates, code, seasons, n_history_ok, BPM_WF_MIN_GAMES, BPM_WF_WINDOW_DAYS,
             n_no_odds, n_margin_refused ? " (or whose margin could not be removed)" : "",
             n_unpredicted, n, code, first_season);

    if (a->json) {
        json_t *out = json_object(), *rows = json_array(), *ids = json_array();
        for (size_t r = 0; r < ev.n_rows; r++) {
            json_array_append_new(rows, row_json(&ev.rows[r], r == 0));
        }
        for (size_t k = 0; k < n; k++) {
            if (use[k]) {
                json_array_append_new(ids, json_integer(m[k].match_id));
            }
        }
        json_object_set_new(out, "league", json_string(code));
        json_object_set_new(out, "from", json_integer(from_year));
        json_object_set_new(out, "to", json_integer(to_year));
        json_object_set_new(out, "margin", json_string(margin_name));
        json_object_set_new(out, "history_matches", json_integer((json_int_t)n));
        json_object_set_new(out, "candidates", json_integer((json_int_t)n_candidates));
        json_object_set_new(out, "scored", json_integer((json_int_t)n_use));
        json_object_set_new(out, "scored_text", json_string(scored_text));
        json_object_set_new(out, "rows", rows);
        json_object_set_new(out, "scored_match_ids", ids);
        cli_print_json(out);
        json_decref(out);
    } else {
        int width = 36;
        for (size_t r = 0; r < ev.n_rows; r++) {
            size_t len = strlen(ev.rows[r].label);
            width = len > (size_t)width ? (int)len : width;
        }
        printf("Walk-forward evaluation, %s %s\n%s\n\n", code, seasons, scored_text);
        printf("  %-*s %5s  %-6s  %-6s  %-6s  %-6s  %-25s  %s\n", width, "forecast", "n", "RPS",
               "logloss", "Brier", "acc", "RPS - Pinnacle [95% CI]", "walk-forward   fits");
        for (size_t r = 0; r < ev.n_rows; r++) {
            print_row(&ev.rows[r], r == 0, width);
        }
        printf("\nParams:");
        for (size_t r = 0; r < ev.n_rows; r++) {
            if (ev.rows[r].is_model) {
                printf(" %s %s (refit every %d day%s);", ev.rows[r].label, ev.rows[r].params,
                       ev.rows[r].wf.refit_days, ev.rows[r].wf.refit_days == 1 ? "" : "s");
            }
        }
        printf("\nCI: paired bootstrap over match days (%lld resamples).", (long long)boot);
        for (size_t r = 0; r < ev.n_rows; r++) {
            if (ev.rows[r].is_model && ev.rows[r].wf.fit_failures) {
                printf("\nnote: %s: %d of %d refits failed and kept the previous fit; first: %s",
                       ev.rows[r].label, ev.rows[r].wf.fit_failures, ev.rows[r].wf.fits,
                       ev.rows[r].wf.first_failure);
            }
        }
        printf("\n");
        print_calibration(&ev);
    }
    rc = CLI_EXIT_OK;

done:
    eval_free(&ev);
    store_free_results(m);
    free(pin);
    free(b365);
    free(has_odds);
    free(eval);
    free(use);
    free(pin_p);
    free(b365_p);
    return rc;
}

/* ============================================================================================
 * The command
 * ========================================================================================== */

static int cmd_models(cli_args *a, int argc, char **argv)
{
    const char *sub = a->n_positional > 0 ? a->positional[0] : NULL;
    app *ap = NULL;
    int rc;
    if (!sub || (strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0 &&
                 strcmp(sub, "activate") != 0 && strcmp(sub, "evaluate") != 0)) {
        return cli_fail(a, BP_E_INVAL,
                        "usage: betpipe models list | show ID | activate ID | evaluate --league "
                        "E0 --from 2015-16 --to 2023-24 [--models dixon_coles,elo,...]");
    }
    rc = cli_open_app(a, strcmp(sub, "evaluate") == 0 ? APP_STORE | APP_PLUGINS : APP_STORE, &ap);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(sub, "list") == 0) {
        rc = cmd_list(a, ap);
    } else if (strcmp(sub, "show") == 0) {
        rc = cmd_show(a, ap);
    } else if (strcmp(sub, "activate") == 0) {
        rc = cmd_activate(a, ap);
    } else {
        rc = cmd_evaluate(a, ap, argc, argv);
    }
    app_close(ap);
    return rc;
}

const cli_command cli_models_command = {
    "models", "models list|show ID|activate ID|evaluate [options]",
    "fitted models in the store; walk-forward evaluation against the bookmakers",
    CLI_OPTS(models_opts), cmd_models};
