/* stats.h — counters and histograms that the scheduler and model manager update on the hot path
 * (lock-free atomics) and that /metrics, the v2 stats endpoint and the repository index read.
 * The back end (manager, scheduler) writes them; the front end (http, metrics) only reads. */
#ifndef FERRY_SERVE_STATS_H
#define FERRY_SERVE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Fixed bucket bounds keep the exposition small and the labels bounded. */
#define SV_TIME_BUCKETS 14  /* seconds: 100 us .. 10 s, then +Inf */
#define SV_BATCH_BUCKETS 9  /* batch sizes: 1, 2, 4 .. 128, then +Inf */

extern const double sv_time_bounds[SV_TIME_BUCKETS];
extern const double sv_batch_bounds[SV_BATCH_BUCKETS];

/* A Prometheus histogram: bucket[i] counts observations <= bounds[i] (not cumulative; the
 * renderer accumulates), bucket[n] counts the rest. sum is kept in nanounits so it can be an
 * integer atomic. */
typedef struct sv_hist {
    _Atomic uint64_t count;
    _Atomic uint64_t sum_nano;
    _Atomic uint64_t bucket[SV_TIME_BUCKETS + 1];
} sv_hist;

void sv_hist_observe(sv_hist *h, const double *bounds, int n_bounds, double value);
double sv_hist_sum(const sv_hist *h);

/* One model version's scheduler figures. */
typedef struct sv_version_stats {
    _Atomic uint64_t requests_ok;       /* requests answered with outputs */
    _Atomic uint64_t requests_failed;   /* rejected, timed out, cancelled or failed to run */
    _Atomic uint64_t inferences;        /* samples run (a batch of 8 counts 8) */
    _Atomic uint64_t executions;        /* session runs (a batch counts 1) */
    _Atomic int64_t queue_depth;        /* requests waiting now */
    _Atomic uint64_t last_inference_ms; /* wall clock (ms since epoch) of the last run */
    sv_hist queue_seconds;              /* per request: submit → its batch starts */
    sv_hist compute_seconds;            /* per batch: session run time */
    sv_hist batch_size;                 /* per batch: requests' samples in it */
} sv_version_stats;

/* One model's loading figures (all versions). */
typedef struct sv_model_stats {
    _Atomic uint64_t loads;          /* versions loaded and warmed up */
    _Atomic uint64_t load_failures;  /* versions that failed to load or verify */
    sv_hist load_seconds;            /* load + warm-up time */
} sv_model_stats;

#endif
