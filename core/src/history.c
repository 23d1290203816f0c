/*
 * history.c - the job-history mirror (see history.h).
 */
#include "history.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

#define HISTORY_BATCH 2000

/* The writer lingers: it waits up to HISTORY_LINGER_MS for HISTORY_LINGER_JOBS records before
 * writing, so that a busy daemon pays for one SQLite transaction per few hundred finished jobs,
 * not one per wake-up (each commit writes WAL frames), and the threads that finish jobs do not
 * wake the writer for every record. The broker holds the records meanwhile; history_flush()
 * cuts the wait short. */
#define HISTORY_LINGER_MS   50
#define HISTORY_LINGER_JOBS 256

struct history {
    store *store;
    bool async;
    pthread_mutex_t lock;
    pthread_cond_t cond;    /* work arrived, or stop */
    pthread_cond_t flushed; /* a batch was written */
    job **queue;
    size_t n, cap;
    bool stopping;
    bool writing;
    bool flushing; /* history_flush() waits: no lingering */
    pthread_t thread;
    bool thread_started;
};

static void write_batch(history *h, job **jobs, size_t n)
{
    bp_error err = {0};
    for (size_t off = 0; off < n; off += HISTORY_BATCH) {
        size_t k = n - off < HISTORY_BATCH ? n - off : HISTORY_BATCH;
        if (store_history_record(h->store, jobs + off, k, &err) != BP_OK) {
            log_error("history", "cannot record %zu finished job(s) in the history: %s", k,
                      err.msg);
        }
    }
    for (size_t i = 0; i < n; i++) {
        job_free(jobs[i]);
    }
    free(jobs);
}

static void *writer_main(void *arg)
{
    history *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        job **batch;
        size_t n;
        while (h->n == 0 && !h->stopping) {
            pthread_cond_wait(&h->cond, &h->lock);
        }
        if (h->n == 0 && h->stopping) {
            break;
        }
        if (h->n < HISTORY_LINGER_JOBS && !h->stopping && !h->flushing) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += HISTORY_LINGER_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (h->n < HISTORY_LINGER_JOBS && !h->stopping && !h->flushing &&
                   pthread_cond_timedwait(&h->cond, &h->lock, &until) == 0) {
            }
        }
        batch = h->queue;
        n = h->n;
        h->queue = NULL;
        h->n = h->cap = 0;
        h->writing = true;
        pthread_mutex_unlock(&h->lock);
        write_batch(h, batch, n);
        pthread_mutex_lock(&h->lock);
        h->writing = false;
        pthread_cond_broadcast(&h->flushed);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int history_new(store *s, bool async, history **out, bp_error *err)
{
    history *h = calloc(1, sizeof *h);
    *out = NULL;
    if (!h) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    h->store = s;
    h->async = async;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    pthread_cond_init(&h->flushed, NULL);
    if (async) {
        if (pthread_create(&h->thread, NULL, writer_main, h) != 0) {
            free(h);
            return bp_err(err, BP_E_NOMEM, "cannot start the history writer");
        }
        h->thread_started = true;
    }
    *out = h;
    return BP_OK;
}

void history_on_final(void *ud, const job *j)
{
    history *h = ud;
    job *copy = job_clone(j);
    if (!copy) {
        log_error("history", "out of memory: job %s not recorded in the history", j->id);
        return;
    }
    if (!h->async) {
        job **one = malloc(sizeof *one);
        if (!one) {
            job_free(copy);
            return;
        }
        one[0] = copy;
        write_batch(h, one, 1);
        return;
    }
    pthread_mutex_lock(&h->lock);
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        job **nq = realloc(h->queue, cap * sizeof *nq);
        if (!nq) {
            pthread_mutex_unlock(&h->lock);
            log_error("history", "out of memory: job %s not recorded in the history", j->id);
            job_free(copy);
            return;
        }
        h->queue = nq;
        h->cap = cap;
    }
    h->queue[h->n++] = copy;
    /* the writer needs waking for the first record (it sleeps untimed) and when a batch is full
     * (it lingers on a timer otherwise) */
    if (h->n == 1 || h->n == HISTORY_LINGER_JOBS) {
        pthread_cond_signal(&h->cond);
    }
    pthread_mutex_unlock(&h->lock);
}

void history_flush(history *h)
{
    if (!h || !h->async) {
        return;
    }
    pthread_mutex_lock(&h->lock);
    h->flushing = true;
    pthread_cond_signal(&h->cond);
    while (h->n > 0 || h->writing) {
        pthread_cond_wait(&h->flushed, &h->lock);
    }
    h->flushing = false;
    pthread_mutex_unlock(&h->lock);
}

void history_free(history *h)
{
    if (!h) {
        return;
    }
    if (h->thread_started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        pthread_cond_signal(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
    }
    for (size_t i = 0; i < h->n; i++) {
        job_free(h->queue[i]);
    }
    free(h->queue);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    pthread_cond_destroy(&h->flushed);
    free(h);
}
