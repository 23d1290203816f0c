/*
 * broker_suite.h - the broker contract of core/src/broker.h as tests that any backend must pass.
 *
 * A backend's test file provides an opener and uses BSUITE_TESTS(suite_name) to instantiate
 * every check as a Criterion test:
 *
 *     static broker *open_mine(const broker_options *o) { ... }
 *     static void close_mine(broker *b) { ... }
 *     BSUITE_TESTS(sqlite, open_mine, close_mine)
 *
 * Each check opens its own broker(s) through the opener, so it can also open two broker objects
 * on the same backend state (two daemons) and a broker with short leases.
 */
#ifndef BP_TEST_BROKER_SUITE_H
#define BP_TEST_BROKER_SUITE_H

#include "broker.h"

typedef broker *(*bsuite_open_fn)(const broker_options *opts);
typedef void (*bsuite_close_fn)(broker *b);

typedef struct bsuite_env {
    bsuite_open_fn open;
    bsuite_close_fn close;
} bsuite_env;

/* A job ready to enqueue on `queue` (type "sys.noop", args {"n": i}). */
job *bsuite_job(const char *queue, int i);

/* One counter of `queue` in the broker's stats ("waiting", "running", "succeeded", ...); fails
 * the test when the stats cannot be read or do not list the queue. */
int64_t bsuite_queue_count(broker *b, const char *queue, const char *what);

void bsuite_roundtrip(const bsuite_env *env);
void bsuite_priority_then_fifo(const bsuite_env *env);
void bsuite_delayed(const bsuite_env *env);
void bsuite_expires(const bsuite_env *env);
void bsuite_retry(const bsuite_env *env);
void bsuite_unique_key(const bsuite_env *env);
void bsuite_caller_id_dedupe(const bsuite_env *env);
void bsuite_revoke(const bsuite_env *env);
void bsuite_purge(const bsuite_env *env);
void bsuite_lease_expiry_and_dead(const bsuite_env *env);
void bsuite_worker_timeout(const bsuite_env *env);
void bsuite_worker_stop_releases(const bsuite_env *env);
void bsuite_lost_lease_ack_ignored(const bsuite_env *env);
void bsuite_lease_one(const bsuite_env *env);
void bsuite_stats_and_list(const bsuite_env *env);
void bsuite_on_final_hook(const bsuite_env *env);
void bsuite_concurrent_exactly_once(const bsuite_env *env);
void bsuite_wake_on_enqueue(const bsuite_env *env);
void bsuite_revoke_terminate(const bsuite_env *env);
void bsuite_rate_limit(const bsuite_env *env);
void bsuite_queue_cap(const bsuite_env *env);
void bsuite_events(const bsuite_env *env);
void bsuite_failure_event(const bsuite_env *env);

#define BSUITE_ONE_(suite, name, openfn, closefn)                                                  \
    Test(suite, name, .timeout = 120)                                                              \
    {                                                                                              \
        bsuite_env env = {openfn, closefn};                                                        \
        bsuite_##name(&env);                                                                       \
    }

#define BSUITE_TESTS(suite, openfn, closefn)                                                       \
    BSUITE_ONE_(suite, roundtrip, openfn, closefn)                                                 \
    BSUITE_ONE_(suite, priority_then_fifo, openfn, closefn)                                        \
    BSUITE_ONE_(suite, delayed, openfn, closefn)                                                   \
    BSUITE_ONE_(suite, expires, openfn, closefn)                                                   \
    BSUITE_ONE_(suite, retry, openfn, closefn)                                                     \
    BSUITE_ONE_(suite, unique_key, openfn, closefn)                                                \
    BSUITE_ONE_(suite, caller_id_dedupe, openfn, closefn)                                          \
    BSUITE_ONE_(suite, revoke, openfn, closefn)                                                    \
    BSUITE_ONE_(suite, purge, openfn, closefn)                                                     \
    BSUITE_ONE_(suite, lease_expiry_and_dead, openfn, closefn)                                     \
    BSUITE_ONE_(suite, worker_timeout, openfn, closefn)                                            \
    BSUITE_ONE_(suite, worker_stop_releases, openfn, closefn)                                      \
    BSUITE_ONE_(suite, lost_lease_ack_ignored, openfn, closefn)                                    \
    BSUITE_ONE_(suite, lease_one, openfn, closefn)                                                 \
    BSUITE_ONE_(suite, stats_and_list, openfn, closefn)                                            \
    BSUITE_ONE_(suite, on_final_hook, openfn, closefn)                                             \
    BSUITE_ONE_(suite, concurrent_exactly_once, openfn, closefn)                                   \
    BSUITE_ONE_(suite, wake_on_enqueue, openfn, closefn)                                           \
    BSUITE_ONE_(suite, revoke_terminate, openfn, closefn)                                          \
    BSUITE_ONE_(suite, rate_limit, openfn, closefn)                                                \
    BSUITE_ONE_(suite, queue_cap, openfn, closefn)                                                 \
    BSUITE_ONE_(suite, events, openfn, closefn)                                                    \
    BSUITE_ONE_(suite, failure_event, openfn, closefn)

#endif
