/* passes.h — graph rewrites that run when a model loads (and that `ferry optimize` reuses):
 * folding, fusion, dead-node removal. They change the IR only; kernels are bound afterwards. */
#ifndef FY_OPTIMIZE_PASSES_H
#define FY_OPTIMIZE_PASSES_H

#include "onnx/model.h"

typedef enum fy_opt_level {
    FY_OPT_NONE = 0,
    FY_OPT_BASIC = 1,    /* constant folding, Identity/Dropout removal, shape-subgraph folding */
    FY_OPT_EXTENDED = 2, /* + Conv/BN folding, Conv/Gemm + activation / Add fusion, MatMul+Add */
    FY_OPT_ALL = 3,      /* + LayerNorm and GELU pattern fusion */
    FY_OPT_RUNTIME = 4,  /* + rewrites into ops only ferry runs (attention): for loading, never
                          * for writing a model out */
} fy_opt_level;

/* Rewrite every graph of the model (subgraphs included) at the given level. On failure the
 * model is left valid (each pass either completes or changes nothing). */
ferry_status fy_optimize_model(struct ferry_model *m, fy_opt_level level);

#endif
