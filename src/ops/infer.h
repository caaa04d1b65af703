/* infer.h — static shape/type inference with symbolic dims over a built graph. */
#ifndef FY_OPS_INFER_H
#define FY_OPS_INFER_H

#include "core/graph.h"

/* Fill the type of every value the model leaves undeclared where the shape follows from the
 * inputs (symbolic dims such as "batch" are carried through). Declared types are kept.
 * Best effort: values it cannot reason about keep rank -1. */
void fy_graph_infer(fy_graph *g);

#endif
