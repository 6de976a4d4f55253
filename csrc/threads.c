/*
 * threads.c -- a minimal parallel-for over POSIX threads.
 *
 * Tasks are dealt out in contiguous blocks (thread t gets tasks
 * [t*ntasks/T, (t+1)*ntasks/T)). Which thread runs a task never changes what
 * the task computes, so results do not depend on the thread count.
 * Threads are created per call: the kernels only ask for more than one
 * thread when there is enough work to amortize that (~20 us).
 */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

typedef struct {
    refcomp__task_fn task;
    void *ctx;
    int64_t begin, end;
} share_t;

static void *run_share(void *p) {
    share_t *s = (share_t *)p;
    for (int64_t t = s->begin; t < s->end; ++t) s->task(s->ctx, t);
    return NULL;
}

int refcomp__parallel_for(int nthreads, int64_t ntasks, refcomp__task_fn task, void *ctx) {
    if (ntasks <= 0) return REFCOMP_OK;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 64) nthreads = 64;
    if ((int64_t)nthreads > ntasks) nthreads = (int)ntasks;
    if (nthreads == 1) {
        for (int64_t t = 0; t < ntasks; ++t) task(ctx, t);
        return REFCOMP_OK;
    }
    share_t shares[64];
    pthread_t tid[64];
    int started[64];
    for (int t = 0; t < nthreads; ++t) {
        shares[t].task = task;
        shares[t].ctx = ctx;
        shares[t].begin = ntasks * t / nthreads;
        shares[t].end = ntasks * (t + 1) / nthreads;
        started[t] = 0;
    }
    for (int t = 1; t < nthreads; ++t) {
        if (pthread_create(&tid[t], NULL, run_share, &shares[t]) == 0) {
            started[t] = 1;
        } else {
            run_share(&shares[t]); /* no thread: do its share here, same result */
        }
    }
    run_share(&shares[0]);
    for (int t = 1; t < nthreads; ++t)
        if (started[t]) pthread_join(tid[t], NULL);
    return REFCOMP_OK;
}
