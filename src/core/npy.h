/* npy.h — NumPy .npy reading and writing (format versions 1–3, little-endian, C order). */
#ifndef FY_CORE_NPY_H
#define FY_CORE_NPY_H

#include <stddef.h>

#include "core/value.h"

/* Parse a whole .npy image in memory; name is used in error messages. */
ferry_status fy_npy_parse(const void *data, size_t size, const char *name, fy_value **out);
ferry_status fy_npy_read(const char *path, fy_value **out);
ferry_status fy_npy_write(const fy_value *t, const char *path);
/* Read a whole file into a malloc'd buffer. */
ferry_status fy_read_file(const char *path, void **data, size_t *size);

#endif
