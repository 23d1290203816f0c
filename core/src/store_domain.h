/*
 * store_domain.h - the domain part of the store: leagues, seasons, teams and their aliases,
 * matches, odds snapshots and team statistics (schema v2 in store_migrations.c).
 *
 * These functions are what the plugin ABI's store table (betpipe/store.h) calls, one for one,
 * and they take the same record structs; betpipe/store.h documents the meaning of every field
 * and the merge rules (a value a source does not give never overwrites a stored one). Here is
 * the core side of the contract:
 *
 * Batches. A bp_store_batch is one write transaction (BEGIN IMMEDIATE) on one pooled connection,
 * plus caches of the ids it resolved (team names, seasons, bookmakers, which league a team
 * belongs to, which matches it inserted). The caches are only valid inside the transaction -
 * a rolled-back batch may have created ids that no longer exist - so they die with the batch.
 * Every write function takes a batch or NULL; with NULL it opens a batch of its own and commits
 * it before returning. Reads with a NULL batch use a pooled connection without a transaction
 * (they see what is committed); with a batch they also see its uncommitted writes.
 *
 * Counting. Upserts say what they did: inserted, updated (something changed) or unchanged.
 * Matches and team statistics use INSERT ... ON CONFLICT DO UPDATE ... WHERE <something
 * differs> RETURNING rev: rev 0 is an insert, a higher rev an update, no row at all means the
 * WHERE found nothing to change. Odds are diffed in C instead (see store_upsert_odds), because a
 * RETURNING per quote costs more than twice the insert itself and an import writes ~900,000.
 *
 * Thread-safety: every function may be called from any thread; a batch must not be used by two
 * threads at the same time. Ownership: records are borrowed; JSON out_* values are new
 * references; store_match_results rows are freed with store_free_results.
 */
#ifndef BP_CORE_STORE_DOMAIN_H
#define BP_CORE_STORE_DOMAIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"
#include "betpipe/store.h"
#include "store.h"

/* ---- transactions --------------------------------------------------------------------------- */

/* Open a batch: acquire a connection and BEGIN IMMEDIATE (waits up to the busy timeout for
 * another writer). BP_E_UNAVAILABLE when the database stays locked. */
int store_batch_begin(store *s, bp_store_batch **out, bp_error *err);
/* COMMIT, release the connection, free the batch - always, also when the commit fails (then the
 * transaction is rolled back and nothing of it is stored). */
int store_batch_commit(bp_store_batch *b, bp_error *err);
/* ROLLBACK, release, free. NULL is fine. */
void store_batch_rollback(bp_store_batch *b);

/* ---- leagues and teams ---------------------------------------------------------------------- */

int store_upsert_league(store *s, bp_store_batch *b, const bp_league_rec *rec, int64_t *out_id,
                        int32_t *out_outcome, bp_error *err);
/* source: "betpipe" (code), "football_data" (division), "api_football" (id as text),
 * "the_odds_api" (sport key). */
int store_find_league(store *s, bp_store_batch *b, const char *source, const char *name,
                      json_t **out_league, bp_error *err);
int store_list_leagues(store *s, json_t **out_leagues, bp_error *err);
int store_resolve_team(store *s, bp_store_batch *b, int64_t league_id, const char *source,
                       const char *name, int64_t *out_team_id, int32_t *out_created, bp_error *err);
int store_add_team_alias(store *s, bp_store_batch *b, int64_t team_id, const char *source,
                         const char *alias, bp_error *err);
int store_list_teams(store *s, int64_t league_id, json_t **out_teams, bp_error *err);

/* ---- matches, odds, team statistics ----------------------------------------------------------
 */

int store_upsert_match(store *s, bp_store_batch *b, const bp_match_rec *rec, int64_t *out_match_id,
                       int32_t *out_outcome, bp_error *err);
int store_find_match(store *s, bp_store_batch *b, const char *source, const char *external_id,
                     int64_t *out_match_id, bp_error *err);
int store_find_match_by_teams(store *s, bp_store_batch *b, int64_t home_team_id,
                              int64_t away_team_id, int64_t kickoff_ms, int64_t window_ms,
                              int64_t *out_match_id, bp_error *err);
/* Quotes are checked first (BP_E_INVAL names the first bad one and nothing is written), then
 * diffed against the match's stored snapshots: only new and changed prices are written. */
int store_upsert_odds(store *s, bp_store_batch *b, int64_t match_id, const bp_odds_quote *quotes,
                      size_t n, bp_store_counts *counts, bp_error *err);
int store_upsert_team_stats(store *s, bp_store_batch *b, const bp_team_stats_rec *rec,
                            int32_t *out_outcome, bp_error *err);

/* ---- reads ---------------------------------------------------------------------------------- */

int store_list_matches(store *s, const bp_match_query *q, json_t **out_matches, bp_error *err);
int store_get_odds(store *s, int64_t match_id, int32_t market, int32_t which, json_t **out_quotes,
                   bp_error *err);
int store_get_team_stats(store *s, int64_t team_id, int32_t season, json_t **out_stats,
                         bp_error *err);
int store_match_results(store *s, const bp_match_query *q, const char *bookmaker,
                        bp_match_result **out_rows, size_t *out_n, bp_error *err);
void store_free_results(bp_match_result *rows);

/* ---- names ---------------------------------------------------------------------------------- */

/* "scheduled", "live", ... for BP_MATCH_*; NULL for 0 or out of range. */
const char *store_match_status_name(int32_t status);
/* The BP_MATCH_* of a name, 0 when unknown. */
int32_t store_match_status_parse(const char *name);
/* "2023-24" for 2023 into buf (>= 8 bytes). */
void store_season_label(int32_t start_year, char *buf, size_t len);

#endif
