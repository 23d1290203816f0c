/*
 * test_store_domain.c - the domain store on a real SQLite file: seeded leagues, teams and
 * aliases; idempotent upserts and their counts; merging what two sources know about one match;
 * odds snapshots (diffing, duplicates, repeated snapshots, bad quotes); batches (commit,
 * rollback, a failure midway); the reads (matches by league, season, team, dates, status; latest
 * and closing odds; team statistics; model results).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "store.h"
#include "store_domain.h"
#include "support.h"
#include "util.h"

static char *tmp;
static store *st;

static void setup(void)
{
    char path[512];
    bp_error err = {0};
    tmp = bpt_tmpdir("store-domain");
    snprintf(path, sizeof path, "%s/betpipe.db", tmp);
    cr_assert_eq(store_open(path, &st, &err), BP_OK, "%s", err.msg);
}

static void teardown(void)
{
    store_close(st);
    bpt_rm_rf(tmp);
    free(tmp);
}

TestSuite(store_domain, .init = setup, .fini = teardown);

static int64_t league(const char *code)
{
    json_t *l = NULL;
    bp_error err = {0};
    cr_assert_eq(store_find_league(st, NULL, "betpipe", code, &l, &err), BP_OK, "%s", err.msg);
    int64_t id = json_integer_value(json_object_get(l, "id"));
    json_decref(l);
    return id;
}

static int64_t team(int64_t league_id, const char *source, const char *name, int32_t *created)
{
    int64_t id = 0;
    int32_t c = -1;
    bp_error err = {0};
    cr_assert_eq(store_resolve_team(st, NULL, league_id, source, name, &id, &c, &err), BP_OK, "%s",
                 err.msg);
    if (created) {
        *created = c;
    }
    return id;
}

static bp_match_rec match_rec(int64_t lg, int32_t season, int64_t home, int64_t away,
                              const char *iso)
{
    bp_match_rec m = {.struct_size = sizeof m,
                      .season = season,
                      .league_id = lg,
                      .home_team_id = home,
                      .away_team_id = away,
                      .kickoff_exact = 1,
                      .home_goals = -1,
                      .away_goals = -1,
                      .ht_home_goals = -1,
                      .ht_away_goals = -1,
                      .elapsed = -1,
                      .source = BP_SOURCE_FOOTBALL_DATA};
    cr_assert_eq(util_parse_iso8601(iso, &m.kickoff_ms, NULL), BP_OK);
    return m;
}

static int64_t upsert(const bp_match_rec *m, int32_t expect)
{
    int64_t id = 0;
    int32_t outcome = 0;
    bp_error err = {0};
    cr_assert_eq(store_upsert_match(st, NULL, m, &id, &outcome, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(outcome, expect, "outcome %d, expected %d", outcome, expect);
    return id;
}

static json_t *matches(const bp_match_query *q)
{
    json_t *arr = NULL;
    bp_error err = {0};
    cr_assert_eq(store_list_matches(st, q, &arr, &err), BP_OK, "%s", err.msg);
    return arr;
}

Test(store_domain, seeded_leagues_teams_and_aliases)
{
    json_t *l = NULL, *teams = NULL;
    bp_error err = {0};
    int64_t e0 = league("E0");
    cr_assert_eq(store_find_league(st, NULL, BP_SOURCE_API_FOOTBALL, "39", &l, &err), BP_OK);
    cr_assert_str_eq(json_string_value(json_object_get(l, "code")), "E0");
    cr_assert_str_eq(json_string_value(json_object_get(l, "toa_sport_key")), "soccer_epl");
    json_decref(l);
    cr_assert_eq(
        store_find_league(st, NULL, BP_SOURCE_THE_ODDS_API, "soccer_spain_la_liga", &l, &err),
        BP_OK);
    cr_assert_str_eq(json_string_value(json_object_get(l, "code")), "SP1");
    json_decref(l);
    cr_assert_eq(store_find_league(st, NULL, BP_SOURCE_FOOTBALL_DATA, "XX9", &l, &err),
                 BP_E_NOTFOUND);
    cr_assert(strstr(err.msg, "XX9"), "%s", err.msg);

    cr_assert_eq(store_list_teams(st, e0, &teams, &err), BP_OK);
    cr_assert_eq(json_array_size(teams), 37, "E0 teams of football-data 2012-2025");
    json_decref(teams);

    /* every spelling lands on football-data's team, whatever the source */
    int32_t created = -1;
    int64_t man_utd = team(e0, BP_SOURCE_FOOTBALL_DATA, "Man United", &created);
    cr_assert_eq(created, 0);
    cr_assert_eq(team(e0, BP_SOURCE_API_FOOTBALL, "Manchester United", &created), man_utd);
    cr_assert_eq(created, 0);
    cr_assert_eq(team(e0, BP_SOURCE_THE_ODDS_API, "Manchester Utd", NULL), man_utd);
    cr_assert_neq(team(e0, BP_SOURCE_API_FOOTBALL, "Manchester City", NULL), man_utd);
    /* names are case-insensitive */
    cr_assert_eq(team(e0, BP_SOURCE_FOOTBALL_DATA, "man united", NULL), man_utd);
    /* another source's alias is used when it names one team only */
    int64_t spurs = team(e0, BP_SOURCE_FOOTBALL_DATA, "Tottenham", NULL);
    cr_assert_eq(team(e0, BP_SOURCE_API_FOOTBALL, "Tottenham Hotspur", NULL), spurs);
    int64_t d1 = league("D1");
    cr_assert_eq(team(d1, BP_SOURCE_API_FOOTBALL, "Bayern München", NULL),
                 team(d1, BP_SOURCE_FOOTBALL_DATA, "Bayern Munich", NULL));
    cr_assert_eq(team(d1, BP_SOURCE_THE_ODDS_API, "Borussia Monchengladbach", NULL),
                 team(d1, BP_SOURCE_FOOTBALL_DATA, "M'gladbach", NULL));
}

Test(store_domain, unknown_team_is_created_reported_and_never_merged_across_leagues)
{
    int64_t e0 = league("E0"), d1 = league("D1");
    int32_t created = -1;
    int64_t id = team(e0, BP_SOURCE_API_FOOTBALL, "Coventry", &created);
    cr_assert_eq(created, 1, "a new name creates a team and says so");
    cr_assert_eq(team(e0, BP_SOURCE_API_FOOTBALL, "Coventry", &created), id);
    cr_assert_eq(created, 0);
    cr_assert_eq(team(e0, BP_SOURCE_FOOTBALL_DATA, "Coventry", &created), id,
                 "the team's own name is found by every source");
    /* Arsenal of E0 is not Arsenal of D1 */
    int64_t e0_arsenal = team(e0, BP_SOURCE_FOOTBALL_DATA, "Arsenal", NULL);
    int64_t d1_arsenal = team(d1, BP_SOURCE_FOOTBALL_DATA, "Arsenal", &created);
    cr_assert_eq(created, 1);
    cr_assert_neq(e0_arsenal, d1_arsenal);
    /* an explicit alias maps a spelling; it cannot be taken by another team */
    bp_error err = {0};
    int64_t city = team(e0, BP_SOURCE_FOOTBALL_DATA, "Man City", NULL);
    cr_assert_eq(store_add_team_alias(st, NULL, city, "webscraper", "Citizens", &err), BP_OK, "%s",
                 err.msg);
    cr_assert_eq(team(e0, "webscraper", "Citizens", NULL), city);
    cr_assert_eq(store_add_team_alias(st, NULL, id, "webscraper", "Citizens", &err), BP_E_EXISTS);
    cr_assert(strstr(err.msg, "already means team"), "%s", err.msg);
    cr_assert_eq(store_add_team_alias(st, NULL, city, "webscraper", "Citizens", &err), BP_OK,
                 "re-adding the same alias is fine");
}

Test(store_domain, upsert_league_counts_and_refuses_stolen_ids)
{
    bp_league_rec l = {.struct_size = sizeof l,
                       .code = "E1",
                       .name = "Championship",
                       .country = "England",
                       .fd_division = "E1",
                       .af_league_id = 40,
                       .toa_sport_key = "soccer_efl_champ"};
    int64_t id = 0, id2 = 0;
    int32_t outcome = 0;
    bp_error err = {0};
    cr_assert_eq(store_upsert_league(st, NULL, &l, &id, &outcome, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(outcome, BP_UPSERT_INSERTED);
    cr_assert_eq(store_upsert_league(st, NULL, &l, &id2, &outcome, &err), BP_OK);
    cr_assert_eq(outcome, BP_UPSERT_UNCHANGED);
    cr_assert_eq(id, id2);
    bp_league_rec rename = {.struct_size = sizeof rename, .code = "E1", .name = "EFL Championship"};
    cr_assert_eq(store_upsert_league(st, NULL, &rename, &id2, &outcome, &err), BP_OK);
    cr_assert_eq(outcome, BP_UPSERT_UPDATED);
    json_t *found = NULL;
    cr_assert_eq(store_find_league(st, NULL, BP_SOURCE_API_FOOTBALL, "40", &found, &err), BP_OK);
    cr_assert_str_eq(json_string_value(json_object_get(found, "name")), "EFL Championship");
    cr_assert_str_eq(json_string_value(json_object_get(found, "fd_division")), "E1",
                     "a field not given is kept");
    json_decref(found);
    bp_league_rec thief = {.struct_size = sizeof thief, .code = "XX", .af_league_id = 39};
    cr_assert_eq(store_upsert_league(st, NULL, &thief, NULL, NULL, &err), BP_E_EXISTS);
    cr_assert(strstr(err.msg, "another league"), "%s", err.msg);
    bp_league_rec bad = {.struct_size = sizeof bad};
    cr_assert_eq(store_upsert_league(st, NULL, &bad, NULL, NULL, &err), BP_E_INVAL);
}

Test(store_domain, match_upsert_is_idempotent_and_sources_complement_each_other)
{
    int64_t e0 = league("E0");
    int64_t mu = team(e0, BP_SOURCE_FOOTBALL_DATA, "Man United", NULL);
    int64_t spurs = team(e0, BP_SOURCE_FOOTBALL_DATA, "Tottenham", NULL);
    bp_match_rec m = match_rec(e0, 2024, mu, spurs, "2024-11-23T15:00:00Z");
    json_t *stats = json_pack("{s:i, s:i}", "HS", 14, "AS", 10);
    m.kickoff_exact = 0; /* football-data without a Time column */
    m.status = BP_MATCH_FINISHED;
    m.home_goals = 2;
    m.away_goals = 1;
    m.ht_home_goals = 1;
    m.ht_away_goals = 0;
    m.referee = "A Taylor";
    m.stats = stats;
    int64_t id = upsert(&m, BP_UPSERT_INSERTED);
    cr_assert_eq(upsert(&m, BP_UPSERT_UNCHANGED), id, "the same record again changes nothing");

    /* API-Football: exact kick-off, its own referee spelling, no stats, its fixture id */
    bp_match_rec af = match_rec(e0, 2024, mu, spurs, "2024-11-23T12:30:00Z");
    af.source = BP_SOURCE_API_FOOTBALL;
    af.external_id = "9900001";
    af.status = BP_MATCH_FINISHED;
    af.home_goals = 2;
    af.away_goals = 1;
    cr_assert_eq(upsert(&af, BP_UPSERT_UPDATED), id);
    cr_assert_eq(upsert(&af, BP_UPSERT_UNCHANGED), id);
    /* football-data's conventional 15:00 must not replace the exact 12:30 */
    cr_assert_eq(upsert(&m, BP_UPSERT_UNCHANGED), id);

    int64_t found = 0;
    bp_error err = {0};
    cr_assert_eq(store_find_match(st, NULL, BP_SOURCE_API_FOOTBALL, "9900001", &found, &err), BP_OK,
                 "%s", err.msg);
    cr_assert_eq(found, id);
    cr_assert_eq(store_find_match(st, NULL, BP_SOURCE_API_FOOTBALL, "1", &found, &err),
                 BP_E_NOTFOUND);
    int64_t near = 0;
    cr_assert_eq(store_find_match_by_teams(st, NULL, mu, spurs, m.kickoff_ms + 3600000, 86400000,
                                           &near, &err),
                 BP_OK);
    cr_assert_eq(near, id);
    cr_assert_eq(
        store_find_match_by_teams(st, NULL, spurs, mu, m.kickoff_ms, 86400000, &near, &err),
        BP_E_NOTFOUND, "home and away are not interchangeable");

    json_t *arr = matches(NULL);
    cr_assert_eq(json_array_size(arr), 1);
    json_t *row = json_array_get(arr, 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "kickoff")),
                     "2024-11-23T12:30:00.000Z");
    cr_assert(json_is_true(json_object_get(row, "kickoff_exact")));
    cr_assert_str_eq(json_string_value(json_object_get(row, "referee")), "A Taylor");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(row, "stats"), "HS")), 14,
                 "stats kept when the other source had none");
    cr_assert_str_eq(json_string_value(json_object_get(row, "season")), "2024-25");
    cr_assert_str_eq(json_string_value(json_object_get(row, "status")), "finished");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(row, "home"), "name")),
                     "Man United");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(row, "external_ids"),
                                                       BP_SOURCE_API_FOOTBALL)),
                     "9900001");
    json_decref(arr);

    /* a real change is an update; stats merge key by key */
    json_t *more = json_pack("{s:i}", "HC", 7);
    m.stats = more;
    m.home_goals = 3;
    cr_assert_eq(upsert(&m, BP_UPSERT_UPDATED), id);
    arr = matches(NULL);
    row = json_array_get(arr, 0);
    cr_assert_eq(json_integer_value(json_object_get(row, "home_goals")), 3);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(row, "stats"), "HS")), 14);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(row, "stats"), "HC")), 7);
    json_decref(arr);
    json_decref(more);
    json_decref(stats);
}

Test(store_domain, match_validation_names_the_problem)
{
    int64_t e0 = league("E0"), d1 = league("D1");
    int64_t mu = team(e0, BP_SOURCE_FOOTBALL_DATA, "Man United", NULL);
    int64_t bayern = team(d1, BP_SOURCE_FOOTBALL_DATA, "Bayern Munich", NULL);
    bp_error err = {0};
    bp_match_rec m = match_rec(e0, 2024, mu, bayern, "2024-11-23T15:00:00Z");
    cr_assert_eq(store_upsert_match(st, NULL, &m, NULL, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "do not both belong to league"), "%s", err.msg);
    m.away_team_id = mu;
    cr_assert_eq(store_upsert_match(st, NULL, &m, NULL, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "cannot play itself"), "%s", err.msg);
    m = match_rec(e0, 24, mu, team(e0, BP_SOURCE_FOOTBALL_DATA, "Chelsea", NULL),
                  "2024-11-23T15:00:00Z");
    cr_assert_eq(store_upsert_match(st, NULL, &m, NULL, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "season 24"), "%s", err.msg);
    m.season = 2024;
    m.home_goals = -5;
    cr_assert_eq(store_upsert_match(st, NULL, &m, NULL, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "home_goals"), "%s", err.msg);
    m.home_goals = -1;
    m.source = NULL;
    cr_assert_eq(store_upsert_match(st, NULL, &m, NULL, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "source"), "%s", err.msg);
    json_t *none = matches(NULL);
    cr_assert_eq(json_array_size(none), 0);
    json_decref(none);
}

static int64_t a_match(const char *home, const char *away, const char *iso)
{
    int64_t e0 = league("E0");
    bp_match_rec m = match_rec(e0, 2023, team(e0, BP_SOURCE_FOOTBALL_DATA, home, NULL),
                               team(e0, BP_SOURCE_FOOTBALL_DATA, away, NULL), iso);
    m.status = BP_MATCH_FINISHED;
    m.home_goals = 1;
    m.away_goals = 0;
    return upsert(&m, BP_UPSERT_INSERTED);
}

static bp_odds_quote q1x2(const char *book, int sel, double price, int closing, int64_t captured)
{
    return (bp_odds_quote){.bookmaker = book,
                           .market = BP_MARKET_1X2,
                           .selection = sel,
                           .line = NAN,
                           .price = price,
                           .captured_ms = captured,
                           .closing = closing};
}

static bp_store_counts odds(int64_t match_id, const bp_odds_quote *q, size_t n)
{
    bp_store_counts c = {0};
    bp_error err = {0};
    cr_assert_eq(store_upsert_odds(st, NULL, match_id, q, n, &c, &err), BP_OK, "%s", err.msg);
    return c;
}

Test(store_domain, odds_are_idempotent_and_counted)
{
    int64_t id = a_match("Arsenal", "Chelsea", "2024-02-03T15:00:00Z");
    int64_t ko = 1706972400000;
    bp_odds_quote q[] = {
        q1x2("pinnacle", BP_SEL_HOME, 1.85, 0, 0),
        q1x2("pinnacle", BP_SEL_DRAW, 3.70, 0, 0),
        q1x2("pinnacle", BP_SEL_AWAY, 4.60, 0, 0),
        q1x2("pinnacle", BP_SEL_HOME, 1.80, 1, ko),
        q1x2("pinnacle", BP_SEL_DRAW, 3.60, 1, ko),
        q1x2("pinnacle", BP_SEL_AWAY, 4.50, 1, ko),
        {.bookmaker = "bet365",
         .market = BP_MARKET_OU,
         .selection = BP_SEL_OVER,
         .line = 2.5,
         .price = 1.70},
        {.bookmaker = "bet365",
         .market = BP_MARKET_AH,
         .selection = BP_SEL_HOME,
         .line = -0.75,
         .price = 1.95},
    };
    bp_store_counts c = odds(id, q, 8);
    cr_assert_eq(c.inserted, 8);
    c = odds(id, q, 8);
    cr_assert_eq(c.inserted, 0);
    cr_assert_eq(c.unchanged, 8, "the same quotes again change nothing");
    cr_assert_eq(c.updated, 0);
    q[3].price = 1.82; /* a revised file */
    c = odds(id, q, 8);
    cr_assert_eq(c.updated, 1);
    cr_assert_eq(c.unchanged, 7);

    json_t *closing = NULL, *latest = NULL, *all = NULL;
    bp_error err = {0};
    cr_assert_eq(store_get_odds(st, id, BP_MARKET_1X2, BP_ODDS_CLOSING, &closing, &err), BP_OK,
                 "%s", err.msg);
    cr_assert_eq(json_array_size(closing), 3);
    json_t *home = json_array_get(closing, 0);
    cr_assert_str_eq(json_string_value(json_object_get(home, "selection")), "home");
    cr_assert_float_eq(json_real_value(json_object_get(home, "price")), 1.82, 1e-9);
    cr_assert(json_is_null(json_object_get(home, "line")));
    cr_assert_str_eq(json_string_value(json_object_get(home, "captured_at")),
                     "2024-02-03T15:00:00.000Z");
    cr_assert_eq(store_get_odds(st, id, -1, BP_ODDS_LATEST, &latest, &err), BP_OK);
    cr_assert_eq(json_array_size(latest), 5, "1X2 (closing wins over pre-closing), O/U, AH");
    cr_assert_eq(store_get_odds(st, id, -1, BP_ODDS_ALL, &all, &err), BP_OK);
    cr_assert_eq(json_array_size(all), 8);
    json_t *ah = json_array_get(latest, 4);
    cr_assert_str_eq(json_string_value(json_object_get(ah, "market")), "ah");
    cr_assert_float_eq(json_real_value(json_object_get(ah, "line")), -0.75, 1e-9);
    json_decref(closing);
    json_decref(latest);
    json_decref(all);
}

Test(store_domain, odds_snapshots_repeats_and_duplicates)
{
    int64_t id = a_match("Everton", "Fulham", "2024-11-23T15:00:00Z");
    int64_t t0 = 1732300000000;
    bp_odds_quote a = q1x2("williamhill", BP_SEL_HOME, 2.10, 0, t0);
    bp_store_counts c = odds(id, &a, 1);
    cr_assert_eq(c.inserted, 1);
    /* an hour later, same price: nothing new to keep */
    bp_odds_quote b = q1x2("williamhill", BP_SEL_HOME, 2.10, 0, t0 + 3600000);
    c = odds(id, &b, 1);
    cr_assert_eq(c.unchanged, 1);
    cr_assert_eq(c.inserted, 0);
    /* two hours later, a new price: a new snapshot */
    bp_odds_quote d = q1x2("williamhill", BP_SEL_HOME, 2.20, 0, t0 + 7200000);
    c = odds(id, &d, 1);
    cr_assert_eq(c.inserted, 1);
    json_t *all = NULL, *latest = NULL;
    cr_assert_eq(store_get_odds(st, id, -1, BP_ODDS_ALL, &all, NULL), BP_OK);
    cr_assert_eq(json_array_size(all), 2);
    cr_assert_eq(store_get_odds(st, id, -1, BP_ODDS_LATEST, &latest, NULL), BP_OK);
    cr_assert_eq(json_array_size(latest), 1);
    cr_assert_float_eq(json_real_value(json_object_get(json_array_get(latest, 0), "price")), 2.20,
                       1e-9);
    json_decref(all);
    json_decref(latest);
    /* the same snapshot twice in one call: stored once */
    bp_odds_quote dup[] = {q1x2("bwin", BP_SEL_AWAY, 3.0, 0, 0),
                           q1x2("bwin", BP_SEL_AWAY, 3.1, 0, 0)};
    c = odds(id, dup, 2);
    cr_assert_eq(c.inserted, 1);
    cr_assert_eq(c.updated, 1);
    cr_assert_eq(store_get_odds(st, id, -1, BP_ODDS_ALL, &all, NULL), BP_OK);
    cr_assert_eq(json_array_size(all), 3);
    json_decref(all);
}

Test(store_domain, a_bad_quote_is_named_and_nothing_is_stored)
{
    int64_t id = a_match("Liverpool", "Newcastle", "2024-02-03T17:30:00Z");
    bp_error err = {0};
    bp_odds_quote q[] = {q1x2("pinnacle", BP_SEL_HOME, 1.4, 0, 0),
                         q1x2("pinnacle", BP_SEL_DRAW, 0.95, 0, 0)};
    cr_assert_eq(store_upsert_odds(st, NULL, id, q, 2, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "quote 1") && strstr(err.msg, "0.95"), "%s", err.msg);
    q[1] = q1x2("Pinnacle Sports", BP_SEL_DRAW, 5.0, 0, 0);
    cr_assert_eq(store_upsert_odds(st, NULL, id, q, 2, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "not a key"), "%s", err.msg);
    q[1] = (bp_odds_quote){.bookmaker = "x",
                           .market = BP_MARKET_OU,
                           .selection = BP_SEL_HOME,
                           .line = 2.5,
                           .price = 2.0};
    cr_assert_eq(store_upsert_odds(st, NULL, id, q, 2, NULL, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "does not belong to market"), "%s", err.msg);
    cr_assert_eq(store_upsert_odds(st, NULL, 999999, q, 1, NULL, &err), BP_E_NOTFOUND);
    json_t *all = NULL;
    cr_assert_eq(store_get_odds(st, id, -1, BP_ODDS_ALL, &all, NULL), BP_OK);
    cr_assert_eq(json_array_size(all), 0);
    json_decref(all);
}

Test(store_domain, batch_commit_rollback_and_failure_midway)
{
    int64_t e0 = league("E0");
    bp_store_batch *b = NULL;
    bp_error err = {0};
    int64_t kept = a_match("Arsenal", "Chelsea", "2024-02-03T15:00:00Z");

    /* a batch that fails midway: everything it wrote is gone, what was stored before stays */
    cr_assert_eq(store_batch_begin(st, &b, &err), BP_OK, "%s", err.msg);
    int64_t home = 0, away = 0, id = 0;
    int32_t created = 0;
    cr_assert_eq(store_resolve_team(st, b, e0, BP_SOURCE_FOOTBALL_DATA, "Brand New FC", &home,
                                    &created, &err),
                 BP_OK);
    cr_assert_eq(created, 1);
    store_batch_rollback(b);

    cr_assert_eq(store_batch_begin(st, &b, &err), BP_OK);
    cr_assert_eq(store_resolve_team(st, b, e0, BP_SOURCE_FOOTBALL_DATA, "Brand New FC", &home,
                                    &created, &err),
                 BP_OK);
    cr_assert_eq(created, 1, "the rolled-back team does not exist");
    cr_assert_eq(
        store_resolve_team(st, b, e0, BP_SOURCE_FOOTBALL_DATA, "Luton", &away, &created, &err),
        BP_OK);
    bp_match_rec m = match_rec(e0, 2023, home, away, "2024-03-01T20:00:00Z");
    int32_t outcome = 0;
    cr_assert_eq(store_upsert_match(st, b, &m, &id, &outcome, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(outcome, BP_UPSERT_INSERTED);
    bp_odds_quote q = q1x2("pinnacle", BP_SEL_HOME, 2.5, 1, m.kickoff_ms);
    bp_store_counts c = {0};
    cr_assert_eq(store_upsert_odds(st, b, id, &q, 1, &c, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(c.inserted, 1);
    /* the batch sees its own writes; other readers do not yet */
    json_t *arr = matches(NULL);
    cr_assert_eq(json_array_size(arr), 1, "uncommitted match invisible outside the batch");
    json_decref(arr);
    int64_t seen = 0;
    cr_assert_eq(store_find_match_by_teams(st, b, home, away, m.kickoff_ms, 0, &seen, &err), BP_OK);
    cr_assert_eq(seen, id);
    /* a write that fails inside the batch leaves the batch usable; then roll it all back */
    bp_odds_quote bad = q1x2("pinnacle", BP_SEL_HOME, 0.5, 1, 0);
    cr_assert_eq(store_upsert_odds(st, b, id, &bad, 1, NULL, &err), BP_E_INVAL);
    store_batch_rollback(b);
    arr = matches(NULL);
    cr_assert_eq(json_array_size(arr), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(arr, 0), "id")), kept);
    json_decref(arr);

    /* committed: visible */
    cr_assert_eq(store_batch_begin(st, &b, &err), BP_OK);
    cr_assert_eq(store_resolve_team(st, b, e0, BP_SOURCE_FOOTBALL_DATA, "Brand New FC", &home,
                                    &created, &err),
                 BP_OK);
    m.home_team_id = home;
    cr_assert_eq(store_upsert_match(st, b, &m, &id, &outcome, &err), BP_OK);
    cr_assert_eq(store_batch_commit(b, &err), BP_OK, "%s", err.msg);
    arr = matches(NULL);
    cr_assert_eq(json_array_size(arr), 2);
    json_decref(arr);
}

Test(store_domain, match_queries_filter_by_league_season_team_dates_status)
{
    int64_t e0 = league("E0"), d1 = league("D1");
    int64_t ars = team(e0, BP_SOURCE_FOOTBALL_DATA, "Arsenal", NULL);
    int64_t che = team(e0, BP_SOURCE_FOOTBALL_DATA, "Chelsea", NULL);
    int64_t liv = team(e0, BP_SOURCE_FOOTBALL_DATA, "Liverpool", NULL);
    int64_t bay = team(d1, BP_SOURCE_FOOTBALL_DATA, "Bayern Munich", NULL);
    int64_t bvb = team(d1, BP_SOURCE_FOOTBALL_DATA, "Dortmund", NULL);
    bp_match_rec m = match_rec(e0, 2023, ars, che, "2023-09-01T15:00:00Z");
    m.status = BP_MATCH_FINISHED;
    upsert(&m, BP_UPSERT_INSERTED);
    m = match_rec(e0, 2023, che, liv, "2024-01-10T20:00:00Z");
    m.status = BP_MATCH_FINISHED;
    upsert(&m, BP_UPSERT_INSERTED);
    m = match_rec(e0, 2024, liv, ars, "2024-09-01T15:00:00Z");
    upsert(&m, BP_UPSERT_INSERTED); /* scheduled */
    m = match_rec(d1, 2023, bay, bvb, "2023-11-04T17:30:00Z");
    m.status = BP_MATCH_FINISHED;
    upsert(&m, BP_UPSERT_INSERTED);

    bp_match_query q = {.struct_size = sizeof q, .league_id = e0};
    json_t *a = matches(&q);
    cr_assert_eq(json_array_size(a), 3);
    json_decref(a);
    q.season = 2023;
    a = matches(&q);
    cr_assert_eq(json_array_size(a), 2);
    json_decref(a);
    q = (bp_match_query){.struct_size = sizeof q, .team_id = ars};
    a = matches(&q);
    cr_assert_eq(json_array_size(a), 2, "home or away");
    json_decref(a);
    q = (bp_match_query){.struct_size = sizeof q, .status = BP_MATCH_SCHEDULED};
    a = matches(&q);
    cr_assert_eq(json_array_size(a), 1);
    json_decref(a);
    q = (bp_match_query){.struct_size = sizeof q};
    util_parse_iso8601("2023-10-01", &q.from_ms, NULL);
    util_parse_iso8601("2024-01-10T20:00:00Z", &q.to_ms, NULL);
    a = matches(&q);
    cr_assert_eq(json_array_size(a), 1, "from inclusive, to exclusive");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0), "league")), "D1");
    json_decref(a);
    q = (bp_match_query){.struct_size = sizeof q, .descending = 1, .limit = 2};
    a = matches(&q);
    cr_assert_eq(json_array_size(a), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0), "kickoff")),
                     "2024-09-01T15:00:00.000Z");
    json_decref(a);
    /* an old plugin's smaller query struct: the fields it lacks read as zero */
    q = (bp_match_query){.struct_size = (uint32_t)offsetof(bp_match_query, team_id),
                         .league_id = d1,
                         .team_id = ars};
    a = matches(&q);
    cr_assert_eq(json_array_size(a), 1);
    json_decref(a);
}

Test(store_domain, match_results_for_models)
{
    int64_t id = a_match("Arsenal", "Chelsea", "2024-02-03T15:00:00Z");
    int64_t id2 = a_match("Everton", "Fulham", "2024-02-04T15:00:00Z");
    bp_odds_quote q[] = {q1x2("pinnacle", BP_SEL_HOME, 1.90, 0, 0),
                         q1x2("pinnacle", BP_SEL_HOME, 1.85, 1, 1706972400000),
                         q1x2("pinnacle", BP_SEL_DRAW, 3.50, 1, 1706972400000),
                         q1x2("pinnacle", BP_SEL_AWAY, 4.20, 1, 1706972400000)};
    odds(id, q, 4);
    bp_odds_quote q2[] = {q1x2("pinnacle", BP_SEL_HOME, 2.5, 0, 0)};
    odds(id2, q2, 1);
    /* a scheduled match is not a result */
    int64_t e0 = league("E0");
    bp_match_rec m =
        match_rec(e0, 2024, team(e0, BP_SOURCE_FOOTBALL_DATA, "Wolves", NULL),
                  team(e0, BP_SOURCE_FOOTBALL_DATA, "Luton", NULL), "2024-12-01T15:00:00Z");
    upsert(&m, BP_UPSERT_INSERTED);

    bp_match_result *rows = NULL;
    size_t n = 0;
    bp_error err = {0};
    cr_assert_eq(store_match_results(st, NULL, "pinnacle", &rows, &n, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(rows[0].match_id, id);
    cr_assert_eq(rows[0].home_goals, 1);
    cr_assert_float_eq(rows[0].odds_home, 1.85, 1e-9, "closing wins over pre-closing");
    cr_assert_float_eq(rows[0].odds_away, 4.20, 1e-9);
    cr_assert_float_eq(rows[1].odds_home, 2.5, 1e-9, "no closing price: the latest");
    cr_assert_float_eq(rows[1].odds_draw, 0.0, 1e-9, "unknown price is 0");
    store_free_results(rows);
    cr_assert_eq(store_match_results(st, NULL, "nobody", &rows, &n, &err), BP_OK);
    cr_assert_eq(n, 2);
    cr_assert_float_eq(rows[0].odds_home, 0.0, 1e-9);
    store_free_results(rows);
}

Test(store_domain, team_stats_upsert_merges_and_counts)
{
    int64_t e0 = league("E0");
    int64_t liv = team(e0, BP_SOURCE_FOOTBALL_DATA, "Liverpool", NULL);
    json_t *detail = json_pack("{s:{s:i}}", "home", "played", 6);
    bp_team_stats_rec r = {.struct_size = sizeof r,
                           .season = 2024,
                           .team_id = liv,
                           .source = BP_SOURCE_API_FOOTBALL,
                           .form = "WWDWW",
                           .rank = 1,
                           .points = 31,
                           .played = 12,
                           .wins = 10,
                           .draws = 1,
                           .losses = 1,
                           .goals_for = 25,
                           .goals_against = 8,
                           .detail = detail};
    int32_t outcome = 0;
    bp_error err = {0};
    cr_assert_eq(store_upsert_team_stats(st, NULL, &r, &outcome, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(outcome, BP_UPSERT_INSERTED);
    cr_assert_eq(store_upsert_team_stats(st, NULL, &r, &outcome, &err), BP_OK);
    cr_assert_eq(outcome, BP_UPSERT_UNCHANGED);
    /* /teams/statistics adds detail, knows no rank: rank is kept, detail merged */
    json_t *more = json_pack("{s:{s:s}}", "goals_avg", "total", "2.1");
    bp_team_stats_rec r2 = {.struct_size = sizeof r2,
                            .season = 2024,
                            .team_id = liv,
                            .source = BP_SOURCE_API_FOOTBALL,
                            .rank = -1,
                            .points = -1,
                            .played = 12,
                            .wins = -1,
                            .draws = -1,
                            .losses = -1,
                            .goals_for = -1,
                            .goals_against = -1,
                            .detail = more};
    cr_assert_eq(store_upsert_team_stats(st, NULL, &r2, &outcome, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(outcome, BP_UPSERT_UPDATED);
    cr_assert_eq(store_upsert_team_stats(st, NULL, &r2, &outcome, &err), BP_OK);
    cr_assert_eq(outcome, BP_UPSERT_UNCHANGED);
    json_t *got = NULL;
    cr_assert_eq(store_get_team_stats(st, liv, 2024, &got, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(json_array_size(got), 1);
    json_t *row = json_array_get(got, 0);
    cr_assert_eq(json_integer_value(json_object_get(row, "rank")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(row, "season")), "2024-25");
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(row, "detail"), "home"), "played")),
                 6);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(row, "detail"), "goals_avg"), "total")),
                     "2.1");
    json_decref(got);
    json_decref(detail);
    json_decref(more);
}
