/*
 * history.c - the job-history mirror (see history.h).
 */
#include "history.h"

#include <pthread.h>
#include <stdlib.h>

#include "log.h"

#define HISTORY_BATCH 2000

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
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

void history_flush(history *h)
{
    if (!h || !h->async) {
        return;
    }
    pthread_mutex_lock(&h->lock);
    pthread_cond_signal(&h->cond);
    while (h->n > 0 || h->writing) {
        pthread_cond_wait(&h->flushed, &h->lock);
    }
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
