/* fuzz_dataset.c — libFuzzer driver for the dataset readers (.npy, .npz, IDX, CSV, gzip): any bytes
 * must parse or fail with a message, never crash or read out of bounds. The first byte picks the
 * format and the CSV options; the rest is the file. Run: see docs/validate.md (fuzzing). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *names[] = {"f.npy",    "f.npz",           "f-idx3-ubyte", "f.csv",
                                  "f.npy.gz", "f-idx1-ubyte.gz", "f.csv.gz",     "f.bin"};
    static const char *labels[] = {NULL, "0", "-1", "label"};
    uint8_t sel = data[0];
    ferry_dataset_options o = {.array = (sel & 0x40) ? "x" : NULL,
                               .label_column = labels[(sel >> 3) & 3],
                               .header = (sel & 0x20) ? 1 : 0,
                               .delimiter = (sel & 0x80) ? ';' : 0};
    ferry_value *x = NULL, *y = NULL;
    if (ferry_dataset_parse(data + 1, size - 1, names[sel & 7], &o, &x, &y) == FERRY_OK) {
        /* fit the first rows to a flat float input, as validate would */
        int64_t dims[] = {-1, -1};
        ferry_io_info io = {.name = "input", .dtype = FERRY_DTYPE_F32, .rank = 2, .dims = dims};
        ferry_value *fit = NULL;
        if (ferry_tensor_count(x) <= (1 << 20)) ferry_dataset_fit(x, 0, 4, &io, NULL, &fit);
        ferry_value_free(fit);
    }
    ferry_value_free(x);
    ferry_value_free(y);
    return 0;
}
