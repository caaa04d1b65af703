/* stats.c — histogram bucket bounds and lock-free observation (see stats.h). */
#include "serve/stats.h"

const double sv_time_bounds[SV_TIME_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                1,      10};
const double sv_batch_bounds[SV_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

void sv_hist_observe(sv_hist *h, const double *bounds, int n_bounds, double value)
{
    int i = 0;
    while (i < n_bounds && value > bounds[i]) i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_nano, (uint64_t)(value > 0 ? value * 1e9 : 0),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

double sv_hist_sum(const sv_hist *h)
{
    return (double)atomic_load_explicit(&h->sum_nano, memory_order_relaxed) * 1e-9;
}
