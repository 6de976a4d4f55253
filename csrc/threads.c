/*
 * threads.c -- a minimal parallel-for over a persistent pool of POSIX threads.
 *
 * Scheduling: every participating thread, the calling one included, claims
 * the next unclaimed task from a shared atomic counter until none is left.
 * Which thread runs a task never changes what the task computes (tasks
 * write disjoint outputs with a fixed instruction sequence), so results do
 * not depend on the thread count or on the schedule. Claiming instead of
 * fixed shares matters on a VM, where a thread can start tens of
 * microseconds late: the others simply take more tasks.
 *
 * The pool: worker threads are created on first use and kept. After a job a
 * worker spins for a short while (SPIN_ROUNDS pause loops, ~0.2 ms) in case
 * another call follows -- back-to-back kernels (the layers of a model, a
 * benchmark loop) then start without a wake-up -- and sleeps on a condition
 * variable after that, so an idle process uses no CPU. Waking a sleeping
 * thread or starting a new one costs tens of microseconds on a VM, which is
 * what kept the 0.35 ms GEMMs of M = 128 at 1.0-1.3x on two threads with a
 * thread per call and fixed halves; claiming alone gave 1.4x, the pool
 * 1.6-1.7x (docs/performance.md).
 *
 * One job at a time goes through the pool; a second caller that finds it
 * busy (another application thread calling a kernel concurrently) runs with
 * threads of its own for that call. After fork() the child has no workers:
 * a pthread_atfork handler resets the pool, which the child then rebuilds.
 */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

#define MAX_THREADS 64
#define SPIN_ROUNDS 8000 /* ~0.2 ms: pause takes ~25 ns on Zen 4 */

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

typedef struct {
    refcomp__task_fn task;
    void *ctx;
    int64_t ntasks;
    int64_t next;  /* the next unclaimed task, advanced atomically */
    int helpers;   /* how many pool workers may take part */
    int joined;    /* how many have asked to take part, advanced atomically */
    int pending;   /* pool workers that have not finished with this job yet */
} job_t;

static void run_tasks(job_t *j) {
    for (;;) {
        const int64_t t = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (t >= j->ntasks) break;
        j->task(j->ctx, t);
    }
}

/* ------------------------------------------------------------------ pool */

static pthread_mutex_t pool_busy = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;   /* guards the fields below */
static pthread_cond_t pool_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;
static int pool_workers;          /* threads created so far */
static unsigned long pool_gen;    /* bumped for every job */
static job_t *pool_job;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_after_fork_child(void) {
    /* the workers did not survive the fork: start from an empty pool */
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pool_busy = m;
    pool_mu = m;
    pool_work = c;
    pool_done = c;
    pool_workers = 0;
    pool_job = NULL;
}

static void pool_init(void) { pthread_atfork(NULL, NULL, pool_after_fork_child); }

static void *pool_worker(void *arg) {
    (void)arg;
    unsigned long seen = 0;
    for (;;) {
        /* wait for a job newer than the last one seen: spin, then sleep */
        int spins = 0;
        while (__atomic_load_n(&pool_gen, __ATOMIC_ACQUIRE) == seen && spins < SPIN_ROUNDS) {
            CPU_RELAX();
            ++spins;
        }
        pthread_mutex_lock(&pool_mu);
        while (pool_gen == seen) pthread_cond_wait(&pool_work, &pool_mu);
        seen = pool_gen;
        job_t *j = pool_job;
        pthread_mutex_unlock(&pool_mu);
        if (__atomic_fetch_add(&j->joined, 1, __ATOMIC_RELAXED) < j->helpers) run_tasks(j);
        if (__atomic_sub_fetch(&j->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&pool_mu);
            pthread_cond_signal(&pool_done);
            pthread_mutex_unlock(&pool_mu);
        }
    }
    return NULL;
}

/* Run job j with up to `helpers` pool workers; 0 when the pool could not
 * take it (busy, or no worker could be started), so the caller does it. */
static int pool_run(job_t *j, int helpers) {
    pthread_once(&pool_once, pool_init);
    if (pthread_mutex_trylock(&pool_busy) != 0) return 0;
    pthread_mutex_lock(&pool_mu);
    while (pool_workers < helpers) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int ok = pthread_create(&tid, &attr, pool_worker, NULL) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;
        ++pool_workers;
    }
    if (pool_workers == 0) {
        pthread_mutex_unlock(&pool_mu);
        pthread_mutex_unlock(&pool_busy);
        return 0;
    }
    j->helpers = helpers;
    j->joined = 0;
    j->pending = pool_workers; /* every worker acknowledges every job */
    pool_job = j;
    __atomic_add_fetch(&pool_gen, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool_work);
    pthread_mutex_unlock(&pool_mu);

    run_tasks(j);

    int spins = 0;
    while (__atomic_load_n(&j->pending, __ATOMIC_ACQUIRE) > 0 && spins < SPIN_ROUNDS) {
        CPU_RELAX();
        ++spins;
    }
    pthread_mutex_lock(&pool_mu);
    while (__atomic_load_n(&j->pending, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&pool_done, &pool_mu);
    pool_job = NULL;
    pthread_mutex_unlock(&pool_mu);
    pthread_mutex_unlock(&pool_busy);
    return 1;
}

/* ------------------------------------------------------- without the pool */

static void *run_tasks_thread(void *p) {
    run_tasks((job_t *)p);
    return NULL;
}

static void run_with_own_threads(job_t *j, int nthreads) {
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS];
    for (int t = 1; t < nthreads; ++t) /* a thread that cannot start leaves its tasks to the others */
        started[t] = pthread_create(&tid[t], NULL, run_tasks_thread, j) == 0;
    run_tasks(j);
    for (int t = 1; t < nthreads; ++t)
        if (started[t]) pthread_join(tid[t], NULL);
}

int refcomp__parallel_for(int nthreads, int64_t ntasks, refcomp__task_fn task, void *ctx) {
    if (ntasks <= 0) return REFCOMP_OK;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if ((int64_t)nthreads > ntasks) nthreads = (int)ntasks;
    if (nthreads == 1) {
        for (int64_t t = 0; t < ntasks; ++t) task(ctx, t);
        return REFCOMP_OK;
    }
    job_t job = {task, ctx, ntasks, 0, 0, 0, 0};
    if (!pool_run(&job, nthreads - 1)) /* the pool took nothing: same job, own threads */
        run_with_own_threads(&job, nthreads);
    return REFCOMP_OK;
}
