/*
 * recorded.h - load a recorded API response for the parser tests: <base>.headers (status line
 * and headers) and <base>.json (the body), under $BP_TEST_DATA_DIR/api-fixtures/.
 */
#ifndef BP_TEST_RECORDED_H
#define BP_TEST_RECORDED_H

#include <stddef.h>

#include "betpipe/http.h"

typedef struct recorded {
    int status;
    char *body;
    size_t len;
    bp_http_header *headers;
    size_t n_headers;
    char *head; /* owns the header strings */
} recorded;

/* rel: "api-football/fixtures". Fails the test when a file is missing. */
recorded rec_load(const char *rel);
void rec_free(recorded *r);

#endif
