/* scheduler.h — one model version's request scheduler: a bounded queue, dynamic batching
 * (requests with the same non-batch shapes concatenated along dim 0, outputs split back),
 * N instance threads sharing one session, and deadlines checked while queued and again just
 * before a batch runs.
 *
 * The scheduler never decides when it is freed: the manager keeps its version alive while any
 * request is queued or running (after_done releases that hold), so sv_scheduler_free only ever
 * finds an empty queue unless the whole server is shutting down, and then it drains. */
#ifndef FERRY_SERVE_SCHEDULER_H
#define FERRY_SERVE_SCHEDULER_H

#include "serve/manager.h"
#include "serve/repository.h"

typedef struct sv_scheduler sv_scheduler;

/* c must be resolved (sv_config_resolve). The scheduler borrows session, model and stats,
 * which must outlive it. after_done(ctx) runs on a scheduler thread after every done() of a
 * request that sv_scheduler_submit accepted. */
ferry_status sv_scheduler_create(ferry_session *session, const ferry_model *model,
                                 const sv_model_config *c, sv_version_stats *stats,
                                 void (*after_done)(void *ctx), void *ctx, sv_scheduler **out);
/* Validates r against the model and queues it (see sv_version_submit in manager.h). Reorders
 * r's input arrays into the model's input order. */
int sv_scheduler_submit(sv_scheduler *s, sv_request *r);
/* Stops accepting, runs what is queued, joins the instance threads. */
void sv_scheduler_free(sv_scheduler *s);

/* The batch sizes the scheduler forms for config c (resolved): preferred_batch_size when
 * given, else the powers of two up to max_batch_size, plus max_batch_size itself; {1} when
 * batching is off. Writes at most cap sizes, ascending without repeats, and returns the count.
 * The manager warms up each of them, since the kernels are prepared per shape. */
int sv_scheduler_batch_sizes(const sv_model_config *c, int *out, int cap);

/* Seeds the scheduler's run-time estimate for one of its batch sizes (a timed warm-up run);
 * the scheduler then keeps it current from real runs and uses it to pick batch sizes. */
void sv_scheduler_set_estimate(sv_scheduler *s, int batch, double seconds);

/* Seconds on CLOCK_MONOTONIC (the clock of sv_request.deadline). */
double sv_now(void);

#endif
