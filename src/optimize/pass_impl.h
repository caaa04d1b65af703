/* pass_impl.h — the individual graph passes behind fy_optimize_model (optimize.c runs them in
 * order). Each makes one sweep over a rewrite session and returns how many rewrites it made;
 * the caller commits and repeats while anything changes. */
#ifndef FY_OPTIMIZE_PASS_IMPL_H
#define FY_OPTIMIZE_PASS_IMPL_H

#include "optimize/graph_edit.h"

/* fold.c (BASIC) */
int fy_pass_eliminate_identity(fy_rewrite *rw);
/* shapes: also fold Shape (and Gather of Shape) from the graph's static types; only valid
 * where those types are checked at run time (the main graph, whose inputs sessions check). */
int fy_pass_fold_constants(fy_rewrite *rw, bool shapes);
int fy_pass_remove_dead(fy_rewrite *rw);

/* fuse_conv.c (EXTENDED) */
int fy_pass_fuse_conv_bn(fy_rewrite *rw);
int fy_pass_fuse_conv_add(fy_rewrite *rw);
int fy_pass_fuse_conv_activation(fy_rewrite *rw);
int fy_pass_matmul_add_to_gemm(fy_rewrite *rw);
int fy_pass_fuse_gemm_activation(fy_rewrite *rw);

/* fuse_transformer.c (ALL) */
int fy_pass_fuse_layernorm(fy_rewrite *rw);
int fy_pass_fuse_gelu(fy_rewrite *rw);

/* fuse_attention.c (RUNTIME) */
int fy_pass_fuse_attention(fy_rewrite *rw);

#endif
