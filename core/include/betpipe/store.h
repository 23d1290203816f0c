/*
 * betpipe/store.h - typed access to the SQLite store (domain data, models, job history).
 *
 * Part of the plugin ABI. No SQLite handle crosses the ABI: plugins call these typed functions
 * and the core owns the connections, transactions and migrations.
 *
 * Threading. Every function may be called from any thread. Writes take an optional batch (see
 * batch_begin): a batch is one transaction on one connection and belongs to the thread that
 * uses it - it must not be used by two threads at once. While a thread holds a batch it must
 * pass that batch to every write it makes: a write through another connection would wait for
 * the batch's own lock. With batch = NULL each call is its own transaction.
 *
 * Ownership. Records passed in are borrowed for the duration of the call. JSON handed out
 * through out_* parameters is a new reference the caller must json_decref; arrays of structs
 * are released with the matching *_free function of this table.
 *
 * The domain (what the data.* jobs fill and the models read):
 *   leagues   our code (the football-data division where there is one, "E0") plus the ids the
 *             sources use: API-Football league id, The Odds API sport key.
 *   seasons   per league, named by their starting year (2023 = "2023-24").
 *   teams     per league, named in football-data's spelling; every source's spelling of a team
 *             is an alias (league, source, spelling) -> team. A name no alias knows creates a
 *             new team (and says so): teams are never merged by guesswork.
 *   matches   one per (season, home team, away team), with status, kick-off (UTC), goals,
 *             half-time goals, referee, statistics (JSON) and each source's own id for it.
 *   odds      snapshots: one price per (match, bookmaker, market, selection, line, closing
 *             flag, captured_at). Storing the same quotes again changes nothing.
 *   team stats per (team, season, source): rank, points, form, totals, and a JSON detail.
 *
 * Models (what the ml.* jobs write and read):
 *   models      fitted models: type, league, params, the state save() wrote (with its
 *               state_version), fit metrics, the training range and size, when and by which
 *               job. At most one model per (type, league) is active: the one ml.predict uses.
 *               A new model becomes active in the same transaction that stores it, so a
 *               reader sees the old model or the new one, never none.
 *   predictions one per (match, stored model): 1X2, expected goals and the priced markets.
 */
#ifndef BETPIPE_STORE_H
#define BETPIPE_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "betpipe/registry.h"
#include "betpipe/status.h"

typedef struct bp_host bp_host;

/* ---- domain constants ------------------------------------------------------------------------ */

/* Source names (free text is allowed too: these are the ones betpipe ships). */
#define BP_SOURCE_FOOTBALL_DATA "football_data"
#define BP_SOURCE_API_FOOTBALL  "api_football"
#define BP_SOURCE_THE_ODDS_API  "the_odds_api"

/* Markets and selections of an odds quote. */
#define BP_MARKET_1X2 0 /* full-time result */
#define BP_MARKET_OU  1 /* total goals over/under `line` */
#define BP_MARKET_AH  2 /* Asian handicap; `line` is the home side's handicap */
#define BP_SEL_HOME   0
#define BP_SEL_DRAW   1
#define BP_SEL_AWAY   2
#define BP_SEL_OVER   3
#define BP_SEL_UNDER  4

/* Match status. 0 in a record means "not given": keep what is stored (new matches: scheduled). */
#define BP_MATCH_SCHEDULED 1
#define BP_MATCH_LIVE      2
#define BP_MATCH_FINISHED  3
#define BP_MATCH_POSTPONED 4
#define BP_MATCH_CANCELLED 5
#define BP_MATCH_ABANDONED 6
#define BP_MATCH_AWARDED   7 /* technical result, not played */

/* What an upsert did (out_outcome). */
#define BP_UPSERT_INSERTED  1
#define BP_UPSERT_UPDATED   2
#define BP_UPSERT_UNCHANGED 3

/* get_odds: which prices. */
#define BP_ODDS_LATEST  1 /* per bookmaker, selection and line: the newest snapshot */
#define BP_ODDS_CLOSING 2 /* the closing prices only */
#define BP_ODDS_ALL     3 /* every snapshot, oldest first */

/* An open write transaction (opaque). */
typedef struct bp_store_batch bp_store_batch;

/* Counters that upserts add to (never reset by the store). */
typedef struct bp_store_counts {
    int64_t inserted;
    int64_t updated;
    int64_t unchanged;
} bp_store_counts;

/* A league. Zero / NULL fields are "not given": an update keeps the stored value. */
typedef struct bp_league_rec {
    uint32_t struct_size; /* sizeof(bp_league_rec) */
    uint32_t reserved0;
    const char *code;          /* required: our code, e.g. "E0" */
    const char *name;          /* "Premier League"; a new league without one is named by code */
    const char *country;       /* "England" */
    const char *fd_division;   /* football-data division, "E0" */
    int64_t af_league_id;      /* API-Football league id, 39 */
    const char *toa_sport_key; /* The Odds API sport key, "soccer_epl" */
} bp_league_rec;

/* A match as a source reports it. Goals and the like are -1 when not known; NULL strings and a
 * NULL stats object are "not known" too. A field that is not known never overwrites a stored
 * value, so sources that know different things about one match complement each other. */
typedef struct bp_match_rec {
    uint32_t struct_size; /* sizeof(bp_match_rec) */
    int32_t season;       /* starting year of the season: 2023 for 2023-24 */
    int64_t league_id;
    int64_t home_team_id; /* from resolve_team */
    int64_t away_team_id;
    int64_t kickoff_ms;    /* UTC epoch ms */
    int32_t kickoff_exact; /* 0: only the date is known and kickoff_ms is a convention (such a
                              kick-off never replaces an exact one) */
    int32_t status;        /* BP_MATCH_*, 0 = not given */
    int32_t home_goals;    /* full time, -1 unknown */
    int32_t away_goals;
    int32_t ht_home_goals; /* half time, -1 unknown */
    int32_t ht_away_goals;
    int32_t elapsed; /* minutes played while live, -1 unknown */
    int32_t reserved0;
    const char *referee;
    const json_t *stats;     /* an object (shots, corners, cards...), merged into the stored one */
    const char *source;      /* required: who reports it (BP_SOURCE_*) */
    const char *external_id; /* the source's own id for the match, or NULL */
} bp_match_rec;

/* One price in upsert_odds(). Layout frozen (arrays of it cross the ABI); reserved0 must be 0. */
typedef struct bp_odds_quote {
    const char *bookmaker; /* our key: "pinnacle", "bet365", "market_avg" ... [a-z0-9_]+ */
    int32_t market;        /* BP_MARKET_* */
    int32_t selection;     /* BP_SEL_* */
    double line;           /* goals for O/U, home handicap for AH; ignored for 1X2 */
    double price;          /* decimal odds, > 1.0 */
    int64_t captured_ms;   /* when the price was taken (UTC ms); 0 = the source does not say */
    int32_t closing;       /* 1 for a closing price */
    int32_t reserved0;
} bp_odds_quote;

/* Team statistics for one season from one source. -1 / NULL = not given (kept as stored). */
typedef struct bp_team_stats_rec {
    uint32_t struct_size; /* sizeof(bp_team_stats_rec) */
    int32_t season;       /* starting year */
    int64_t team_id;
    const char *source; /* required */
    const char *form;   /* "WDLWW", most recent last */
    int32_t rank;
    int32_t points;
    int32_t played; /* totals, home and away together */
    int32_t wins;
    int32_t draws;
    int32_t losses;
    int32_t goals_for;
    int32_t goals_against;
    const json_t *detail; /* anything else (home/away splits, averages ...): merged, key by key */
} bp_team_stats_rec;

/* Which matches. Zero fields do not filter. */
typedef struct bp_match_query {
    uint32_t struct_size; /* sizeof(bp_match_query) */
    int32_t season;       /* starting year */
    int64_t league_id;
    int64_t team_id;    /* home or away */
    int64_t from_ms;    /* kick-off >= from_ms */
    int64_t to_ms;      /* kick-off < to_ms */
    int32_t status;     /* BP_MATCH_* */
    int32_t limit;      /* 0 = all */
    int32_t descending; /* 1: newest first (default oldest first) */
    int32_t reserved0;
    int64_t match_id; /* that match only (added before the freeze; 0 = any) */
} bp_match_query;

/* A fitted model to store (save_model). Zero / NULL fields are "not given". */
typedef struct bp_model_rec {
    uint32_t struct_size;  /* sizeof(bp_model_rec) */
    int32_t state_version; /* the model type's state_version that wrote `state` */
    const char *model;     /* required: the model type ("dixon_coles") */
    int64_t league_id;     /* required */
    const json_t *params;  /* the params the model was created with; NULL = {} */
    const json_t *state;   /* required: the object save() returned */
    const json_t *metrics; /* what fit() reported, plus anything the trainer adds; NULL = {} */
    int64_t train_from_ms; /* kick-offs of the first and the last training match */
    int64_t train_to_ms;
    int64_t n_matches;  /* training matches */
    int64_t trained_ms; /* when it was trained; 0 = now */
    const char *job_id; /* the job that trained it, or NULL */
    int32_t activate;   /* 1: it becomes the active model of (model, league) */
    int32_t keep;       /* the newest `keep` models of (model, league) keep their state; older
                         * inactive ones keep only their record (and predictions); 0 = 10 */
} bp_model_rec;

/* One prediction in put_predictions(). Layout frozen (arrays of it cross the ABI). */
typedef struct bp_prediction_rec {
    int64_t match_id;
    int64_t model_id; /* a stored model (save_model's id) */
    double p_home;    /* finite, in [0, 1], summing to 1 within 1e-6 */
    double p_draw;
    double p_away;
    double exp_home_goals; /* NAN when the model gives none */
    double exp_away_goals;
    const json_t *markets; /* the priced markets (an object), or NULL */
} bp_prediction_rec;

/* Which predictions (list_predictions). Zero / NULL fields do not filter. */
typedef struct bp_prediction_query {
    uint32_t struct_size; /* sizeof(bp_prediction_query) */
    int32_t latest;       /* 1: per (match, model type) only the newest fit's prediction */
    int64_t match_id;
    int64_t league_id;
    int64_t model_id;
    const char *model; /* model type */
    int64_t from_ms;   /* kick-off >= from_ms */
    int64_t to_ms;     /* kick-off < to_ms */
    int32_t limit;     /* 0 = all */
    int32_t reserved0;
} bp_prediction_query;

struct bp_store_api {
    uint32_t struct_size;
    uint32_t reserved0;

    /* -- maintenance ---------------------------------------------------------------------- */
    /* the store's database file (absolute path). */
    const char *(*path)(const bp_host *h);
    /* copy the live store into `dest_path` with SQLite's online backup API (readers and writers
     * keep working meanwhile). The file must not exist yet. */
    int (*backup)(const bp_host *h, const char *dest_path, bp_error *err);
    /* run PRAGMA integrity_check on the database file at `path` (opened read-only); BP_OK when
     * it answers "ok", BP_E_CORRUPT with the first problems in err otherwise. */
    int (*verify)(const bp_host *h, const char *path, bp_error *err);
    /* ANALYZE, PRAGMA optimize, incremental vacuum and a WAL checkpoint. *out_report (new
     * reference) gets {"bytes_before", "bytes_after", "pages_freed", "wal_bytes_before", ...}. */
    int (*optimize)(const bp_host *h, json_t **out_report, bp_error *err);

    /* -- domain: transactions -------------------------------------------------------------- */
    /* Open a write transaction (BEGIN IMMEDIATE on a connection of its own) and hand it out in
     * *out_batch. Everything written with it becomes visible at batch_commit, or is gone at
     * batch_rollback - an import writes one file per batch, so a failure midway loses nothing
     * that was stored before. A batch also caches the ids it resolves (teams, seasons,
     * bookmakers), which is what makes a bulk import fast. Hold it briefly: other writers wait
     * (up to the busy timeout) while it is open. */
    int (*batch_begin)(const bp_host *h, bp_store_batch **out_batch, bp_error *err);
    /* Commit and free the batch (also on failure: then nothing was stored). */
    int (*batch_commit)(const bp_host *h, bp_store_batch *batch, bp_error *err);
    /* Roll back and free the batch. NULL is fine. */
    void (*batch_rollback)(const bp_host *h, bp_store_batch *batch);

    /* -- domain: leagues and teams --------------------------------------------------------- */
    /* Insert or update a league by code. *out_id (may be NULL) gets its id, *out_outcome (may
     * be NULL) a BP_UPSERT_*. BP_E_EXISTS when an external id already belongs to another
     * league. */
    int (*upsert_league)(const bp_host *h, bp_store_batch *batch, const bp_league_rec *rec,
                         int64_t *out_id, int32_t *out_outcome, bp_error *err);
    /* Find a league by one of its names: source "betpipe" (our code), BP_SOURCE_FOOTBALL_DATA
     * (division), BP_SOURCE_API_FOOTBALL (league id as text, "39"), BP_SOURCE_THE_ODDS_API
     * (sport key). *out_league: {"id", "code", "name", "country", "fd_division",
     * "af_league_id", "toa_sport_key"}. BP_E_NOTFOUND when none. batch may be NULL. */
    int (*find_league)(const bp_host *h, bp_store_batch *batch, const char *source,
                       const char *name, json_t **out_league, bp_error *err);
    /* Every league, as an array of find_league objects with "teams" and "matches" counts. */
    int (*list_leagues)(const bp_host *h, json_t **out_leagues, bp_error *err);
    /* The team `name` means in `league_id` when `source` writes it. Looks up, in order: the
     * source's alias, the team's own name, an alias of any source (when exactly one team has
     * it). When nothing matches, a team of that name is created with the alias, and
     * *out_created (may be NULL) is set to 1 - report it: it is either a newly promoted club or
     * a spelling that needs an alias (add_team_alias). */
    int (*resolve_team)(const bp_host *h, bp_store_batch *batch, int64_t league_id,
                        const char *source, const char *name, int64_t *out_team_id,
                        int32_t *out_created, bp_error *err);
    /* Map `alias` (as `source` writes it) to team_id from now on. BP_E_EXISTS when the alias
     * already means another team of the league. */
    int (*add_team_alias)(const bp_host *h, bp_store_batch *batch, int64_t team_id,
                          const char *source, const char *alias, bp_error *err);
    /* The teams of a league: [{"id", "name", "created_by", "aliases": [{"source",
     * "alias"}]}], by name. */
    int (*list_teams)(const bp_host *h, int64_t league_id, json_t **out_teams, bp_error *err);

    /* -- domain: matches and odds ------------------------------------------------------------ */
    /* Insert or update one match, identified by (season, home, away) - a league plays each
     * ordered pairing once a season. The source's external_id, when given, is remembered for
     * find_match (an id newly learnt counts as an update). The season is created when new; both
     * teams must belong to league_id. *out_match_id / *out_outcome may be NULL. BP_E_INVAL
     * names a bad field and changes nothing. */
    int (*upsert_match)(const bp_host *h, bp_store_batch *batch, const bp_match_rec *rec,
                        int64_t *out_match_id, int32_t *out_outcome, bp_error *err);
    /* The match a source's own id stands for; BP_E_NOTFOUND when unknown. */
    int (*find_match)(const bp_host *h, bp_store_batch *batch, const char *source,
                      const char *external_id, int64_t *out_match_id, bp_error *err);
    /* The match of home v away whose kick-off is nearest to kickoff_ms and within window_ms
     * of it; BP_E_NOTFOUND when none (how a source without our ids finds a match). */
    int (*find_match_by_teams)(const bp_host *h, bp_store_batch *batch, int64_t home_team_id,
                               int64_t away_team_id, int64_t kickoff_ms, int64_t window_ms,
                               int64_t *out_match_id, bp_error *err);
    /* Store n odds quotes of one match; counts (may be NULL) are incremented per quote:
     * inserted, updated (same snapshot key, new price), unchanged (same price; also a
     * non-closing snapshot whose price equals the newest earlier snapshot of that quote, which
     * is therefore not stored again). Fast path for bulk imports: one call per match, inside a
     * batch. BP_E_INVAL (nothing stored) names the first bad quote. */
    int (*upsert_odds)(const bp_host *h, bp_store_batch *batch, int64_t match_id,
                       const bp_odds_quote *quotes, size_t n, bp_store_counts *counts,
                       bp_error *err);
    /* Insert or update one team's statistics (by team, season, source). */
    int (*upsert_team_stats)(const bp_host *h, bp_store_batch *batch, const bp_team_stats_rec *rec,
                             int32_t *out_outcome, bp_error *err);

    /* -- domain: reads (a NULL batch reads what is committed) -------------------------------- */
    /* Matches by league, season, team, date range and status, oldest first (see
     * bp_match_query; q may be NULL for all). *out_matches: [{"id", "league", "season",
     * "kickoff", "kickoff_ms", "kickoff_exact", "status", "elapsed", "home": {"id", "name"},
     * "away": {...}, "home_goals", "away_goals", "ht_home_goals", "ht_away_goals", "referee",
     * "stats", "external_ids": {source: id}}]; unknown values are null. */
    int (*list_matches)(const bp_host *h, const bp_match_query *q, json_t **out_matches,
                        bp_error *err);
    /* Odds of one match: market < 0 for every market, which = BP_ODDS_*. *out_quotes:
     * [{"bookmaker", "market", "selection", "line" (null for 1X2), "price", "captured_at" (ISO
     * or null), "captured_ms", "closing"}], by market, bookmaker, selection, line. */
    int (*get_odds)(const bp_host *h, int64_t match_id, int32_t market, int32_t which,
                    json_t **out_quotes, bp_error *err);
    /* Statistics of a team: season 0 for every season, newest first. *out_stats: [{"season",
     * "source", "rank", "points", "form", "played", "wins", "draws", "losses", "goals_for",
     * "goals_against", "detail", "updated_at"}]. */
    int (*get_team_stats)(const bp_host *h, int64_t team_id, int32_t season, json_t **out_stats,
                          bp_error *err);
    /* Finished matches with their full-time score, oldest first, as model input (registry.h
     * bp_match_result). With `bookmaker` (e.g. "pinnacle") the 1X2 odds fields hold its closing
     * prices, else its latest ones, else 0; with NULL they are 0. *out_rows is a new array of
     * *out_n rows (NULL when 0) released with free_results. */
    int (*match_results)(const bp_host *h, const bp_match_query *q, const char *bookmaker,
                         bp_match_result **out_rows, size_t *out_n, bp_error *err);
    void (*free_results)(const bp_host *h, bp_match_result *rows);

    /* -- models and predictions --------------------------------------------------------------- */
    /* Store a fitted model. With rec->activate it becomes the active model of (model, league)
     * in the same transaction (the previous one stays stored, inactive): a failure stores
     * nothing and leaves the active model as it was. *out_model_id (may be NULL) gets the new
     * id, *out_replaced_id (may be NULL) the id of the model it replaced as active, or 0.
     * BP_E_INVAL names a bad field (a state that is not an object, an unknown league). */
    int (*save_model)(const bp_host *h, const bp_model_rec *rec, int64_t *out_model_id,
                      int64_t *out_replaced_id, bp_error *err);
    /* One stored model: model_id > 0 for that one, else the active model of (model,
     * league_id). *out_model: {"id", "model", "league_id", "league", "params", "state" (null
     * once dropped, see bp_model_rec.keep), "state_version", "metrics", "train_from",
     * "train_from_ms", "train_to", "train_to_ms", "n_matches", "trained_at", "trained_ms",
     * "job_id", "active"}. BP_E_NOTFOUND when there is none. */
    int (*get_model)(const bp_host *h, int64_t model_id, const char *model, int64_t league_id,
                     json_t **out_model, bp_error *err);
    /* Stored models, newest first, as get_model objects without "state" (plus "has_state").
     * model NULL / league_id 0 do not filter; active_only 1 lists the active ones only. */
    int (*list_models)(const bp_host *h, const char *model, int64_t league_id, int32_t active_only,
                       json_t **out_models, bp_error *err);
    /* Make a stored model (that still has its state) the active one of its (model, league).
     * BP_E_NOTFOUND for an unknown id, BP_E_STATE when its state was dropped. */
    int (*activate_model)(const bp_host *h, int64_t model_id, bp_error *err);
    /* Store n predictions in one transaction: a prediction of the same (match, model id) is
     * replaced. counts (may be NULL): inserted, updated, unchanged. BP_E_INVAL (nothing
     * stored) names the first bad record: unknown match or model, probabilities that are not
     * finite or do not sum to 1, markets that are not an object. */
    int (*put_predictions)(const bp_host *h, const bp_prediction_rec *recs, size_t n,
                           bp_store_counts *counts, bp_error *err);
    /* Predictions, by kick-off, model type and newest fit first. *out_predictions: [{"match_id",
     * "league", "season", "kickoff", "kickoff_ms", "status", "home": {"id", "name"}, "away": {...},
     * "home_goals", "away_goals", "model", "model_id", "p_home", "p_draw", "p_away",
     * "exp_home_goals", "exp_away_goals" (null when unknown), "markets", "created_at"}]. */
    int (*list_predictions)(const bp_host *h, const bp_prediction_query *q,
                            json_t **out_predictions, bp_error *err);
};

#endif
