/* model_builder.h — builds small ONNX models in memory for unit tests (through the generated
 * protobuf-c structs), so loader and session tests need no files. */
#ifndef FERRY_TEST_MODEL_BUILDER_H
#define FERRY_TEST_MODEL_BUILDER_H

#include <stddef.h>
#include <stdint.h>

typedef struct mb_model mb_model;

mb_model *mb_new(int64_t opset);
/* Graph input; a dim of -1 becomes the symbolic dim "batch". */
void mb_input(mb_model *m, const char *name, int dtype, int rank, const int64_t *dims);
void mb_output(mb_model *m, const char *name);
/* Node with comma-separated input and output names ("a,b" / "y"); empty entries are omitted
 * optional inputs. Returns the node index for mb_attr_*. */
int mb_node(mb_model *m, const char *op, const char *name, const char *inputs, const char *outputs);
void mb_attr_int(mb_model *m, int node, const char *name, int64_t v);
void mb_attr_float(mb_model *m, int node, const char *name, float v);
void mb_attr_string(mb_model *m, int node, const char *name, const char *v);
void mb_attr_ints(mb_model *m, int node, const char *name, int n, const int64_t *v);
void mb_attr_floats(mb_model *m, int node, const char *name, int n, const float *v);
void mb_initializer_f32(mb_model *m, const char *name, int rank, const int64_t *dims,
                        const float *data);
void mb_initializer_i64(mb_model *m, const char *name, int rank, const int64_t *dims,
                        const int64_t *data);
/* Initializer of any ONNX dtype from its little-endian bytes (raw_data). */
void mb_initializer_raw(mb_model *m, const char *name, int dtype, int rank, const int64_t *dims,
                        const void *data, size_t bytes);
/* Serialized bytes (caller frees). */
uint8_t *mb_pack(mb_model *m, size_t *len);
void mb_free(mb_model *m);

#endif
