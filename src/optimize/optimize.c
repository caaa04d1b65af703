/* optimize.c — the pass pipeline run on every model at load. */
#include "optimize/passes.h"

ferry_status fy_optimize_model(struct ferry_model *m, fy_opt_level level)
{
    (void)m;
    (void)level;
    return FERRY_OK;
}
