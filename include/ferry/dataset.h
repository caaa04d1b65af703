/* dataset.h — reading labelled datasets for ferry validate and calibration: .npy, .npz, IDX
 * (MNIST, .gz ok) and numeric CSV, then fitting them to a model input (dtype, scale, shape). */
#ifndef FERRY_DATASET_H
#define FERRY_DATASET_H

#include "ferry/ferry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options for reading a dataset file; a zeroed struct (or NULL) means the defaults. */
typedef struct ferry_dataset_options {
    /* .npz: the array to read, with or without ".npy" ("x", "images"). NULL: the archive's only
     * array; with several, the first of "x", "X", "inputs", "data", "images", "features" that
     * exists, else an error listing the names. */
    const char *array;
    /* .csv: the label column, by header name or 0-based index ("label", "0", "-1" for the last
     * column). NULL: no label column, every column is a feature. */
    const char *label_column;
    /* .csv: 0 detect (a first row with any non-number is a header), 1 header, -1 no header. */
    int header;
    /* .csv: field separator; 0 means ','. */
    char delimiter;
} ferry_dataset_options;

/* Read a dataset file. The format comes from the name (".npy", ".npz", ".csv", anything with
 * "idx" in it or ending in "-ubyte", each optionally ".gz") and, failing that, from the magic.
 * *data receives all samples along the first dimension, in the file's element type:
 *   .npy/.npz  as stored;   IDX  as stored (uint8 images [N,28,28] for MNIST);
 *   .csv       float64 [rows, feature columns].
 * *labels (may be NULL when not wanted) receives the CSV label column as float64 [rows], and is
 * set to NULL for other formats (labels come from their own file). The caller frees both.
 * Errors name the file and say what is wrong (FERRY_E_PARSE, FERRY_E_IO, FERRY_E_UNSUPPORTED). */
ferry_status ferry_dataset_load(const char *path, const ferry_dataset_options *opts,
                                ferry_value **data, ferry_value **labels);

/* The same on a file already in memory (name chooses the format as above and appears in
 * messages). The bytes are not kept. Used by the fuzzer and by tests. */
ferry_status ferry_dataset_parse(const void *bytes, size_t size, const char *name,
                                 const ferry_dataset_options *opts, ferry_value **data,
                                 ferry_value **labels);

/* Names of the arrays in an .npz file, newline-separated, without ".npy", in archive order;
 * the caller frees the string with free(). */
ferry_status ferry_npz_list(const char *path, char **names);

/* Fitting samples to a model input. y = (x - mean) * scale, in float64, then converted to the
 * input's dtype (C conversion, so integer inputs truncate). The shape becomes
 * [N, input dims 1..] when the element count per sample matches: IDX [N,28,28] fits [N,784]
 * and [N,1,28,28]. Symbolic input dims other than the first take the data's dims when the
 * ranks agree, or are inferred when there is exactly one. */
typedef struct ferry_fit_options {
    double scale; /* 0 means 1 */
    double mean;
} ferry_fit_options;

/* The scale a user gets when they did not choose one: 1/255 for uint8 data going into a float
 * input (images stored as bytes, models trained on 0..1), 1 otherwise. */
double ferry_dataset_default_scale(ferry_dtype data_dtype, ferry_dtype input_dtype);

/* A new tensor with samples [start, start + n) of data fitted to the input `io` (shape and
 * dtype as described above). n is clipped to the samples there are; start must be inside. */
ferry_status ferry_dataset_fit(const ferry_value *data, int64_t start, int64_t n,
                               const ferry_io_info *io, const ferry_fit_options *opts,
                               ferry_value **out);

/* A new tensor holding rows [start, start + n) of t (any numeric dtype, shape kept except the
 * first dim); n is clipped to the rows there are. */
ferry_status ferry_dataset_slice(const ferry_value *t, int64_t start, int64_t n, ferry_value **out);

#ifdef __cplusplus
}
#endif
#endif
