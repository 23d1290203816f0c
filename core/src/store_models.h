/*
 * store_models.h - fitted models and predictions in the store (schema v4 in
 * store_migrations.c).
 *
 * These are what the plugin ABI's store table (betpipe/store.h) calls for save_model,
 * get_model, list_models, activate_model, put_predictions and list_predictions, one for one;
 * betpipe/store.h documents the fields and JSON shapes. The core side of the contract:
 *
 *  - A model row is written in one transaction together with the flip of the "active" flag, so
 *    a reader sees either the previous active model or the new one, and a failure anywhere
 *    (a bad record, a full disk) stores nothing and leaves the active model as it was. The
 *    partial unique index models_active makes "two active models of one (type, league)"
 *    impossible even for two trainers racing.
 *  - Old fits do not pile up their state forever: after an insert, inactive models of the same
 *    (type, league) beyond the newest `keep` lose their state (the record, its metrics and the
 *    predictions that name it stay).
 *  - Predictions are checked whole before anything is written; one call is one transaction.
 *
 * store_match_prices is for the core only (`betpipe models evaluate`): the 1X2 prices of one
 * bookmaker for the finished matches of a league, closing or pre-closing.
 *
 * Thread-safety: every function may be called from any thread (each takes its own pooled
 * connection). Ownership: records are borrowed; JSON out_* values are new references; the
 * price rows are freed with free().
 */
#ifndef BP_CORE_STORE_MODELS_H
#define BP_CORE_STORE_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/status.h"
#include "betpipe/store.h"
#include "store.h"

int store_save_model(store *s, const bp_model_rec *rec, int64_t *out_model_id,
                     int64_t *out_replaced_id, bp_error *err);
int store_get_model(store *s, int64_t model_id, const char *model, int64_t league_id,
                    json_t **out_model, bp_error *err);
int store_list_models(store *s, const char *model, int64_t league_id, int32_t active_only,
                      json_t **out_models, bp_error *err);
int store_activate_model(store *s, int64_t model_id, bp_error *err);
int store_put_predictions(store *s, const bp_prediction_rec *recs, size_t n,
                          bp_store_counts *counts, bp_error *err);
int store_list_predictions(store *s, const bp_prediction_query *q, json_t **out_predictions,
                           bp_error *err);

/* One match's 1X2 prices from one bookmaker (0 = no such price). */
typedef struct store_price3 {
    int64_t match_id;
    double home, draw, away;
} store_price3;

/*
 * The 1X2 prices `bookmaker` offered for the finished matches of league_id kicked off in
 * [from_ms, to_ms) (0 = open end): closing = 1 takes its closing prices, closing = 0 its newest
 * pre-closing snapshot. Only matches with all three prices are returned, sorted by match id.
 * *out_rows is a new array (NULL when *out_n is 0) the caller frees with free().
 */
int store_match_prices(store *s, int64_t league_id, int64_t from_ms, int64_t to_ms,
                       const char *bookmaker, int closing, store_price3 **out_rows, size_t *out_n,
                       bp_error *err);

#endif
