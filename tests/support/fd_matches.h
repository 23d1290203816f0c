/*
 * fd_matches.h - a minimal football-data.co.uk CSV reader for tests and benchmarks.
 *
 * Turns one season file into bp_match_result rows: Date (dd/mm/yy or dd/mm/yyyy, kickoff set to
 * midnight UTC of that day), HomeTeam, AwayTeam, FTHG, FTAG and, optionally, one bookmaker's 1X2
 * odds (columns <prefix>H, <prefix>D, <prefix>A, e.g. prefix "PSC" reads Pinnacle closing
 * PSCH/PSCD/PSCA; an empty cell reads as 0 = unknown). Columns are found by name. A UTF-8 BOM,
 * CRLF line ends and trailing rows of bare commas are tolerated.
 *
 * This is deliberately small and test-only: the product's CSV collector lives in
 * collectors/football_data. Team names map to ids through an fd_teams dictionary that the
 * caller keeps across files, so a club has the same id in every season (ids start at 1 in order
 * of first appearance). Match ids are assigned from the same dictionary, in file order.
 *
 * Not thread-safe (one dictionary per thread).
 */
#ifndef BP_TEST_FD_MATCHES_H
#define BP_TEST_FD_MATCHES_H

#include <stddef.h>
#include <stdint.h>

#include "betpipe/plugin.h"
#include "betpipe/registry.h"
#include "betpipe/status.h"

typedef struct fd_teams {
    char **names; /* names[id - 1] */
    size_t n, cap;
    int64_t next_match_id;
} fd_teams;

/*
 * Read `path` and append its matches to *matches / *n (realloc'd; start with NULL / 0).
 * `odds_prefix` may be NULL (odds left 0). Errors name the file, line and column.
 */
int fd_matches_load(const char *path, const char *odds_prefix, fd_teams *teams,
                    bp_match_result **matches, size_t *n, bp_error *err);

/* The id of `name` (-1 when unknown) and the name of `id` (NULL when unknown). */
int64_t fd_team_id(const fd_teams *teams, const char *name);
const char *fd_team_name(const fd_teams *teams, int64_t id);

void fd_teams_free(fd_teams *teams);

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
int64_t fd_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
