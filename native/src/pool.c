// The thread pool: threads - 1 persistent workers and the calling thread run the parts of one call
// at once. One call uses the pool at a time; a second caller meanwhile (two trainings in two worker
// threads) runs its call alone on its own thread, so there is never a deadlock. The workers never
// exit, which is why the library stays loaded for the process's lifetime (pin_library in binding.c).
#include "lora_lab.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
  ll_work_fn work;
  void *ctx;
  int parts;
} job_t;

static pthread_mutex_t g_pool_use = PTHREAD_MUTEX_INITIALIZER; // held by the call using the pool
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;        // guards the fields below
static pthread_cond_t g_cv_work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_cv_done = PTHREAD_COND_INITIALIZER;
static int g_workers = 0;         // pool threads started (they never exit)
static uint64_t g_generation = 0; // bumped per job
static job_t *g_job = NULL;
static int g_pending = 0;         // pool threads still running the current job's parts

typedef struct {
  int id;
} worker_arg;

// Worker `id` runs part id + 1 of every job with more parts than that. A worker never misses a job
// it is part of: the job's caller waits for all of them before the next job can start.
static void *worker_main(void *arg) {
  const int id = ((worker_arg *)arg)->id;
  free(arg);
  uint64_t seen = 0;
  for (;;) {
    pthread_mutex_lock(&g_mu);
    while (g_generation == seen) pthread_cond_wait(&g_cv_work, &g_mu);
    seen = g_generation;
    job_t *job = g_job && id + 1 < g_job->parts ? g_job : NULL;
    pthread_mutex_unlock(&g_mu);
    if (!job) continue;
    job->work(job->ctx, id + 1, job->parts);
    pthread_mutex_lock(&g_mu);
    if (--g_pending == 0) pthread_cond_signal(&g_cv_done);
    pthread_mutex_unlock(&g_mu);
  }
  return NULL;
}

// Starts pool threads up to `want` (called with g_pool_use held). Returns how many exist.
static int ensure_workers(int want) {
  while (g_workers < want) {
    worker_arg *arg = (worker_arg *)malloc(sizeof *arg);
    if (!arg) break;
    arg->id = g_workers;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    const int rc = pthread_create(&th, &attr, worker_main, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      free(arg);
      break;
    }
    g_workers++;
  }
  return g_workers;
}

void ll_pool_run(ll_work_fn work, void *ctx, int want) {
  job_t job;
  job.work = work;
  job.ctx = ctx;
  job.parts = 1;
  if (want > LL_MAX_THREADS) want = LL_MAX_THREADS;
  if (want > 1 && pthread_mutex_trylock(&g_pool_use) == 0) {
    const int workers = ensure_workers(want - 1);
    job.parts = 1 + (workers < want - 1 ? workers : want - 1);
    if (job.parts > 1) {
      pthread_mutex_lock(&g_mu);
      g_job = &job;
      g_pending = job.parts - 1;
      g_generation++;
      pthread_cond_broadcast(&g_cv_work);
      pthread_mutex_unlock(&g_mu);
    }
    work(ctx, 0, job.parts);
    pthread_mutex_lock(&g_mu);
    while (g_pending > 0) pthread_cond_wait(&g_cv_done, &g_mu);
    g_job = NULL;
    pthread_mutex_unlock(&g_mu);
    pthread_mutex_unlock(&g_pool_use);
  } else {
    work(ctx, 0, 1);
  }
}

int ll_parts_for(int64_t work, int64_t min_per_part, int threads) {
  const int64_t useful = work / (min_per_part > 0 ? min_per_part : 1);
  return (int)(useful < threads ? (useful < 1 ? 1 : useful) : threads);
}
