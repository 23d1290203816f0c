/*
 * recorded.c - see recorded.h.
 */
#include "recorded.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support.h"

recorded rec_load(const char *rel)
{
    recorded r;
    const char *dir = bpt_env("BP_TEST_DATA_DIR");
    char path[1024];
    memset(&r, 0, sizeof r);
    snprintf(path, sizeof path, "%s/api-fixtures/%s.json", dir, rel);
    r.body = bpt_slurp(path);
    cr_assert(r.body, "cannot read %s", path);
    r.len = strlen(r.body);
    snprintf(path, sizeof path, "%s/api-fixtures/%s.headers", dir, rel);
    r.head = bpt_slurp(path);
    cr_assert(r.head, "cannot read %s", path);
    cr_assert(strncmp(r.head, "HTTP/", 5) == 0, "%s: no status line", path);
    r.status = (int)strtol(strchr(r.head, ' ') + 1, NULL, 10);
    r.headers = calloc(64, sizeof *r.headers);
    cr_assert(r.headers);
    /* split "Name: value\r\n" lines in place */
    char *line = r.head + strcspn(r.head, "\r\n");
    while (*line) {
        while (*line == '\r' || *line == '\n') {
            *line++ = '\0';
        }
        if (!*line) {
            break;
        }
        char *eol = line + strcspn(line, "\r\n");
        char *colon = memchr(line, ':', (size_t)(eol - line));
        char *next = eol;
        if (*eol) {
            *eol = '\0';
            next = eol + 1;
        }
        if (colon && r.n_headers < 64) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ') {
                v++;
            }
            r.headers[r.n_headers].name = line;
            r.headers[r.n_headers].value = v;
            r.n_headers++;
        }
        line = next;
    }
    return r;
}

void rec_free(recorded *r)
{
    free(r->body);
    free(r->head);
    free(r->headers);
    memset(r, 0, sizeof *r);
}
