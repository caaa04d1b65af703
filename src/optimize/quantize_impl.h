/* quantize_impl.h — what the quantizer's files share: running a model with inner tensors as
 * extra outputs (taps), batching samples, the progress bar. */
#ifndef FY_OPTIMIZE_QUANTIZE_IMPL_H
#define FY_OPTIMIZE_QUANTIZE_IMPL_H

#include "optimize/quantize.h"

/* A model bound with extra graph outputs and a session over it. */
typedef struct fy_tap {
    struct ferry_model *m;
    ferry_session *s;
    int n_old;  /* the model's own outputs */
    int *old;
    int n_ids;
    fy_value **outs;
} fy_tap;

ferry_status fy_tap_open(struct ferry_model *m, int n_ids, const int *ids, fy_tap *t);
/* Run one batch; *vals points at the n_ids tapped values (valid until the next run/close). */
ferry_status fy_tap_run(fy_tap *t, fy_value *x, fy_value *const **vals);
void fy_tap_close(fy_tap *t);

/* Samples per run: the model's fixed batch dimension, else want (0: 32). */
int64_t fy_quant_batch_size(const struct ferry_model *m, int64_t want);
/* Samples start..start+count of x as a tensor over x's memory. */
ferry_status fy_batch_view(const fy_value *x, int64_t start, int64_t count, fy_value **out);
/* A progress bar on stderr when it is a terminal and label is not NULL. */
void fy_progress(const char *label, int64_t done, int64_t total);

#endif
