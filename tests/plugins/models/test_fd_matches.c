/*
 * test_fd_matches.c - the test-only football-data reader: both date formats, a BOM, CRLF line
 * ends, blank trailing rows, blank odds, stable team ids across files, and clear errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fd_matches.h"
#include "support.h"

static char *dir;

static void setup(void)
{
    dir = bpt_tmpdir("fd");
}

static void teardown(void)
{
    bpt_rm_rf(dir);
    free(dir);
}

TestSuite(fd_matches, .init = setup, .fini = teardown);

static char *write_file(const char *name, const char *text, size_t len)
{
    size_t len_path = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len_path);
    snprintf(path, len_path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    return path;
}

Test(fd_matches, formats_bom_crlf_blank_rows)
{
    const char a[] = "\xEF\xBB\xBF"
                     "Div,Date,HomeTeam,AwayTeam,FTHG,FTAG,PSCH,PSCD,PSCA\r\n"
                     "E0,18/08/12,Arsenal,Sunderland,0,0,1.3,5.5,12\r\n"
                     "E0,29/02/2024,Fulham,Arsenal,2,1,,,\r\n"
                     ",,,,,,,,\r\n"
                     ",,,,,,,,\r\n";
    const char b[] = "Div,Date,Time,HomeTeam,AwayTeam,FTHG,FTAG\n"
                     "E0,01/03/2024,20:00,Sunderland,Fulham,3,2\n";
    char *pa = write_file("a.csv", a, sizeof a - 1), *pb = write_file("b.csv", b, sizeof b - 1);
    fd_teams teams = {0};
    bp_match_result *m = NULL;
    size_t n = 0;
    bp_error err = {0};
    cr_assert_eq(fd_matches_load(pa, "PSC", &teams, &m, &n, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    /* 2012-08-18 = day 15570 since 1970-01-01 (date -u -d 2012-08-18 +%s / 86400) */
    cr_assert_eq(m[0].kickoff_ms, 15570LL * 86400000);
    cr_assert_eq(m[1].kickoff_ms, fd_days_from_civil(2024, 2, 29) * 86400000);
    cr_assert_eq(fd_days_from_civil(2024, 2, 29), 19782);
    cr_assert_str_eq(fd_team_name(&teams, m[0].home_team), "Arsenal");
    cr_assert_eq(m[0].odds_home, 1.3);
    cr_assert_eq(m[0].odds_away, 12.0);
    cr_assert_eq(m[1].odds_home, 0.0, "a blank price is unknown, not an error");
    cr_assert_eq(m[1].home_goals, 2);
    cr_assert_eq(fd_matches_load(pb, NULL, &teams, &m, &n, &err), BP_OK, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_eq(m[2].home_team, m[0].away_team, "Sunderland keeps its id across files");
    cr_assert_eq(teams.n, 3);
    cr_assert_eq(m[2].match_id, 3);
    free(m);
    fd_teams_free(&teams);
    free(pa);
    free(pb);
}

Test(fd_matches, errors_name_the_line)
{
    const char bad_date[] = "Div,Date,HomeTeam,AwayTeam,FTHG,FTAG\nE0,31/02/2024,A,B,1,0\n";
    const char bad_goals[] = "Div,Date,HomeTeam,AwayTeam,FTHG,FTAG\nE0,01/02/2024,A,B,x,0\n";
    const char no_col[] = "Div,Date,HomeTeam,AwayTeam,FTHG\nE0,01/02/2024,A,B,1\n";
    char *p1 = write_file("d.csv", bad_date, sizeof bad_date - 1);
    char *p2 = write_file("g.csv", bad_goals, sizeof bad_goals - 1);
    char *p3 = write_file("c.csv", no_col, sizeof no_col - 1);
    fd_teams teams = {0};
    bp_match_result *m = NULL;
    size_t n = 0;
    bp_error err = {0};
    cr_assert_eq(fd_matches_load(p1, NULL, &teams, &m, &n, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, ":2:") != NULL && strstr(err.msg, "31/02/2024"), "%s", err.msg);
    cr_assert_eq(fd_matches_load(p2, NULL, &teams, &m, &n, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "FTHG") != NULL, "%s", err.msg);
    cr_assert_eq(fd_matches_load(p3, NULL, &teams, &m, &n, &err), BP_E_INVAL);
    cr_assert(strstr(err.msg, "FTAG") != NULL, "%s", err.msg);
    cr_assert_eq(fd_matches_load(p3, "B365", &teams, &m, &n, &err), BP_E_INVAL);
    cr_assert_eq(n, 0);
    free(m);
    fd_teams_free(&teams);
    free(p1);
    free(p2);
    free(p3);
}

Test(fd_matches, bundled_seasons_load_completely)
{
    fd_teams teams = {0};
    bp_match_result *m = NULL;
    size_t n = 0;
    bp_error err = {0};
    char path[1024];
    /* 2014-15 ends with a row of bare commas; 2012-13 uses dd/mm/yy */
    const char *seasons[] = {"2012-13", "2014-15", "2015-16"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/data/football-data/E0/%s.csv",
                 bpt_env("BP_TEST_SOURCE_DIR"), seasons[i]);
        cr_assert_eq(fd_matches_load(path, "PSC", &teams, &m, &n, &err), BP_OK, "%s", err.msg);
        cr_assert_eq(n, 380 * (i + 1), "%s", seasons[i]);
    }
    for (size_t k = 1; k < n; k++) {
        cr_assert_geq(m[k].kickoff_ms, m[k - 1].kickoff_ms, "files are in date order");
    }
    free(m);
    fd_teams_free(&teams);
}
