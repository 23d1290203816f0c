/*
 * fd_matches.c - minimal football-data CSV reader (tests and benchmarks only).
 */
#include "fd_matches.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 256

int64_t fd_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int64_t fd_team_id(const fd_teams *teams, const char *name)
{
    for (size_t i = 0; i < teams->n; i++) {
        if (strcmp(teams->names[i], name) == 0) {
            return (int64_t)i + 1;
        }
    }
    return -1;
}

const char *fd_team_name(const fd_teams *teams, int64_t id)
{
    if (id < 1 || (size_t)id > teams->n) {
        return NULL;
    }
    return teams->names[id - 1];
}

static int64_t team_intern(fd_teams *teams, const char *name)
{
    int64_t id = fd_team_id(teams, name);
    if (id > 0) {
        return id;
    }
    if (teams->n == teams->cap) {
        size_t cap = teams->cap ? 2 * teams->cap : 32;
        char **names = realloc(teams->names, cap * sizeof *names);
        if (names == NULL) {
            return -1;
        }
        teams->names = names;
        teams->cap = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        return -1;
    }
    teams->names[teams->n++] = copy;
    return (int64_t)teams->n;
}

void fd_teams_free(fd_teams *teams)
{
    for (size_t i = 0; i < teams->n; i++) {
        free(teams->names[i]);
    }
    free(teams->names);
    memset(teams, 0, sizeof *teams);
}

/* Split `line` in place on commas; returns the number of fields (at most MAX_COLS). */
static size_t split(char *line, char **fields)
{
    size_t n = 0;
    char *p = line;
    while (n < MAX_COLS) {
        fields[n++] = p;
        char *c = strchr(p, ',');
        if (c == NULL) {
            break;
        }
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static int col_index(char **hdr, size_t nh, const char *name)
{
    for (size_t i = 0; i < nh; i++) {
        if (strcmp(hdr[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int parse_date(const char *s, int64_t *out_ms)
{
    unsigned d, m, y;
    int used = 0;
    if (sscanf(s, "%2u/%2u/%4u%n", &d, &m, &y, &used) != 3 || s[used] != '\0') {
        return -1;
    }
    size_t ylen = strlen(strrchr(s, '/') + 1);
    if (ylen == 2) {
        y += y < 50 ? 2000 : 1900;
    } else if (ylen != 4) {
        return -1;
    }
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) {
        return -1;
    }
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return -1;
    }
    *out_ms = fd_days_from_civil(y, m, d) * 86400000LL;
    return 0;
}

static int parse_goals(const char *s, int32_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 99) {
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

static int parse_odds(const char *s, double *out)
{
    if (*s == '\0') {
        *out = 0.0;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 1.0) {
        return -1;
    }
    *out = v;
    return 0;
}

static char *slurp(const char *path, bp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        bp_err(err, BP_E_IO, "%s: cannot open", path);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            break;
        }
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (buf == NULL || bad) {
        free(buf);
        bp_err(err, BP_E_IO, "%s: read failed", path);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

int fd_matches_load(const char *path, const char *odds_prefix, fd_teams *teams,
                    bp_match_result **matches, size_t *n, bp_error *err)
{
    char *buf = slurp(path, err);
    if (buf == NULL) {
        return BP_E_IO;
    }
    int rc = BP_OK;
    char *hdr[MAX_COLS], *row[MAX_COLS];
    char *p = buf;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) {
        p += 3;
    }
    size_t nh = 0, lineno = 0;
    int c_date = -1, c_home = -1, c_away = -1, c_hg = -1, c_ag = -1, c_oh = -1, c_od = -1,
        c_oa = -1;
    while (*p != '\0') {
        char *line = p;
        char *nl = strchr(p, '\n');
        if (nl != NULL) {
            *nl = '\0';
            p = nl + 1;
        } else {
            p += strlen(p);
        }
        lineno++;
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r') {
            line[--len] = '\0';
        }
        if (nh == 0) {
            nh = split(line, hdr);
            c_date = col_index(hdr, nh, "Date");
            c_home = col_index(hdr, nh, "HomeTeam");
            c_away = col_index(hdr, nh, "AwayTeam");
            c_hg = col_index(hdr, nh, "FTHG");
            c_ag = col_index(hdr, nh, "FTAG");
            if (c_date < 0 || c_home < 0 || c_away < 0 || c_hg < 0 || c_ag < 0) {
                rc = bp_err(err, BP_E_INVAL,
                            "%s: header lacks one of Date, HomeTeam, AwayTeam, FTHG, FTAG", path);
                goto done;
            }
            if (odds_prefix != NULL) {
                char name[64];
                snprintf(name, sizeof name, "%sH", odds_prefix);
                c_oh = col_index(hdr, nh, name);
                snprintf(name, sizeof name, "%sD", odds_prefix);
                c_od = col_index(hdr, nh, name);
                snprintf(name, sizeof name, "%sA", odds_prefix);
                c_oa = col_index(hdr, nh, name);
                if (c_oh < 0 || c_od < 0 || c_oa < 0) {
                    rc = bp_err(err, BP_E_INVAL, "%s: no odds columns %sH/%sD/%sA", path,
                                odds_prefix, odds_prefix, odds_prefix);
                    goto done;
                }
            }
            continue;
        }
        if (strspn(line, ",") == len) {
            continue; /* blank or all-comma trailing row */
        }
        size_t nf = split(line, row);
        if (nf != nh) {
            rc =
                bp_err(err, BP_E_INVAL, "%s:%zu: %zu fields, header has %zu", path, lineno, nf, nh);
            goto done;
        }
        bp_match_result m;
        memset(&m, 0, sizeof m);
        if (parse_date(row[c_date], &m.kickoff_ms) != 0) {
            rc = bp_err(err, BP_E_INVAL, "%s:%zu: Date '%s' is not dd/mm/yy or dd/mm/yyyy", path,
                        lineno, row[c_date]);
            goto done;
        }
        if (parse_goals(row[c_hg], &m.home_goals) != 0 ||
            parse_goals(row[c_ag], &m.away_goals) != 0) {
            rc = bp_err(err, BP_E_INVAL, "%s:%zu: FTHG/FTAG '%s'/'%s' are not goal counts", path,
                        lineno, row[c_hg], row[c_ag]);
            goto done;
        }
        if (row[c_home][0] == '\0' || row[c_away][0] == '\0') {
            rc = bp_err(err, BP_E_INVAL, "%s:%zu: empty team name", path, lineno);
            goto done;
        }
        if (c_oh >= 0 &&
            (parse_odds(row[c_oh], &m.odds_home) != 0 || parse_odds(row[c_od], &m.odds_draw) != 0 ||
             parse_odds(row[c_oa], &m.odds_away) != 0)) {
            rc = bp_err(err, BP_E_INVAL, "%s:%zu: odds '%s'/'%s'/'%s' are not decimal prices", path,
                        lineno, row[c_oh], row[c_od], row[c_oa]);
            goto done;
        }
        m.home_team = team_intern(teams, row[c_home]);
        m.away_team = team_intern(teams, row[c_away]);
        if (m.home_team < 0 || m.away_team < 0) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        m.match_id = ++teams->next_match_id;
        bp_match_result *grown = realloc(*matches, (*n + 1) * sizeof *grown);
        if (grown == NULL) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        *matches = grown;
        (*matches)[(*n)++] = m;
    }
    if (nh == 0) {
        rc = bp_err(err, BP_E_INVAL, "%s: empty file", path);
    }
done:
    free(buf);
    return rc;
}
