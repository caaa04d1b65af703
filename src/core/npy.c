/* npy.c — the NumPy .npy format: a magic, a Python-dict header (descr, fortran_order, shape),
 * then raw little-endian data. The header is parsed strictly since files are untrusted. */
#include "core/npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ferry_status fy_read_file(const char *path, void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fy_error(FERRY_E_IO, "cannot open %s: %s", path, strerror(errno));
    ferry_status rc = FERRY_OK;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap) break;
        char *grown = cap < (SIZE_MAX / 4) ? realloc(buf, cap * 2) : NULL;
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    if (!buf) rc = fy_error(FERRY_E_NOMEM, "out of memory reading %s", path);
    else if (ferror(f)) rc = fy_error(FERRY_E_IO, "cannot read %s", path);
    fclose(f);
    if (rc != FERRY_OK) {
        free(buf);
        return rc;
    }
    *data = buf;
    *size = len;
    return FERRY_OK;
}

static const struct {
    const char *descr;
    ferry_dtype dtype;
} descrs[] = {
    {"<f4", FERRY_DTYPE_F32}, {"<f8", FERRY_DTYPE_F64}, {"<f2", FERRY_DTYPE_F16},
    {"|i1", FERRY_DTYPE_I8},  {"|u1", FERRY_DTYPE_U8},  {"<i2", FERRY_DTYPE_I16},
    {"<u2", FERRY_DTYPE_U16}, {"<i4", FERRY_DTYPE_I32}, {"<u4", FERRY_DTYPE_U32},
    {"<i8", FERRY_DTYPE_I64}, {"<u8", FERRY_DTYPE_U64}, {"|b1", FERRY_DTYPE_BOOL},
    {"<c8", FERRY_DTYPE_C64}, {"<c16", FERRY_DTYPE_C128},
};

/* Find 'key': in the header dict and return a pointer to its value, or NULL. */
static const char *dict_value(const char *h, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static ferry_status parse_header(const char *h, const char *name, ferry_dtype *dtype, int *rank,
                                 int64_t *dims)
{
    const char *d = dict_value(h, "descr"), *f = dict_value(h, "fortran_order"),
               *s = dict_value(h, "shape");
    if (!d || !f || !s) return fy_error(FERRY_E_PARSE, "%s: .npy header lacks descr, fortran_order or shape", name);
    *dtype = FERRY_DTYPE_UNDEFINED;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++) {
        size_t n = strlen(descrs[i].descr);
        if (d[0] == '\'' && strncmp(d + 1, descrs[i].descr, n) == 0 && d[1 + n] == '\'')
            *dtype = descrs[i].dtype;
        /* single-byte types may also be written with '<' or '=' */
        if (d[0] == '\'' && descrs[i].descr[0] == '|' && (d[1] == '<' || d[1] == '=') &&
            strncmp(d + 2, descrs[i].descr + 1, n - 1) == 0 && d[1 + n] == '\'')
            *dtype = descrs[i].dtype;
    }
    if (!*dtype) {
        char got[16] = {0};
        for (int i = 0; i < 15 && d[i] && d[i] != ','; i++) got[i] = d[i];
        return fy_error(FERRY_E_UNSUPPORTED, "%s: .npy dtype %s is not supported (little-endian "
                        "numbers and bool only)", name, got);
    }
    if (strncmp(f, "False", 5) != 0)
        return fy_error(FERRY_E_UNSUPPORTED, "%s: Fortran-ordered .npy files are not supported", name);
    if (*s != '(') return fy_error(FERRY_E_PARSE, "%s: .npy shape is not a tuple", name);
    s++;
    *rank = 0;
    for (;;) {
        while (*s == ' ') s++;
        if (*s == ')') break;
        if (!isdigit((unsigned char)*s)) return fy_error(FERRY_E_PARSE, "%s: bad .npy shape", name);
        if (*rank == FERRY_MAX_RANK) return fy_error(FERRY_E_SHAPE, "%s: rank above %d", name, FERRY_MAX_RANK);
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno || v < 0) return fy_error(FERRY_E_PARSE, "%s: bad .npy dimension", name);
        dims[(*rank)++] = v;
        s = end;
        while (*s == ' ') s++;
        if (*s == 'L') s++; /* Python 2 longs */
        if (*s == ',') s++;
        else if (*s != ')') return fy_error(FERRY_E_PARSE, "%s: bad .npy shape", name);
    }
    return FERRY_OK;
}

ferry_status fy_npy_parse(const void *data, size_t size, const char *name, fy_value **out)
{
    const unsigned char *p = data;
    *out = NULL;
    if (size < 10 || memcmp(p, "\x93NUMPY", 6) != 0)
        return fy_error(FERRY_E_PARSE, "%s: not a .npy file (bad magic)", name);
    size_t hlen, hstart;
    if (p[6] == 1) {
        hlen = p[8] | (size_t)p[9] << 8;
        hstart = 10;
    } else if (p[6] == 2 || p[6] == 3) {
        if (size < 12) return fy_error(FERRY_E_PARSE, "%s: truncated .npy header", name);
        hlen = p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
        hstart = 12;
    } else {
        return fy_error(FERRY_E_UNSUPPORTED, "%s: .npy version %d is not supported", name, p[6]);
    }
    if (hlen > size - hstart) return fy_error(FERRY_E_PARSE, "%s: truncated .npy header", name);
    char *h = malloc(hlen + 1);
    if (!h) return fy_error(FERRY_E_NOMEM, "out of memory");
    memcpy(h, p + hstart, hlen);
    h[hlen] = '\0';
    ferry_dtype dtype = FERRY_DTYPE_UNDEFINED;
    int rank = 0;
    int64_t dims[FERRY_MAX_RANK];
    ferry_status rc = parse_header(h, name, &dtype, &rank, dims);
    free(h);
    FY_CHECK(rc);
    int64_t count = fy_shape_count(rank, dims);
    size_t esize = ferry_dtype_size(dtype), body = size - hstart - hlen;
    if (count < 0 || (uint64_t)count > body / esize)
        return fy_error(FERRY_E_PARSE, "%s: .npy data is truncated (%zu bytes for %lld elements)",
                        name, body, (long long)count);
    FY_CHECK(fy_tensor_new(dtype, rank, dims, out));
    if (count) memcpy((*out)->data, p + hstart + hlen, (size_t)count * esize);
    if (dtype == FERRY_DTYPE_BOOL) /* normalize to 0/1 */
        for (int64_t i = 0; i < count; i++) ((uint8_t *)(*out)->data)[i] = ((uint8_t *)(*out)->data)[i] != 0;
    return FERRY_OK;
}

ferry_status fy_npy_read(const char *path, fy_value **out)
{
    void *data;
    size_t size;
    *out = NULL;
    FY_CHECK(fy_read_file(path, &data, &size));
    ferry_status rc = fy_npy_parse(data, size, path, out);
    free(data);
    return rc;
}

ferry_status fy_npy_write(const fy_value *t, const char *path)
{
    if (t->kind != FERRY_VALUE_TENSOR) return fy_error(FERRY_E_UNSUPPORTED, "%s: only tensors can be written as .npy", path);
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++)
        if (descrs[i].dtype == t->dtype) descr = descrs[i].descr;
    if (!descr)
        return fy_error(FERRY_E_UNSUPPORTED, "%s: dtype %s cannot be written as .npy", path,
                        ferry_dtype_name(t->dtype));
    char header[1024];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(header + n, sizeof header - n, "%lld,%s", (long long)t->dims[i],
                      i + 1 < t->rank ? " " : "");
    if (t->rank > 1) n--; /* numpy writes (2, 3), with a trailing comma only for 1-D */
    n += snprintf(header + n, sizeof header - n, "), }");
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return fy_error(FERRY_E_IO, "cannot create %s: %s", path, strerror(errno));
    unsigned hl = (unsigned)(n + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, hl & 0xff, hl >> 8};
    fwrite(pre, 1, 10, f);
    fwrite(header, 1, n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(t->data, ferry_dtype_size(t->dtype), (size_t)t->count, f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return fy_error(FERRY_E_IO, "cannot write %s", path);
    return FERRY_OK;
}

ferry_status ferry_tensor_save_npy(const ferry_value *t, const char *path)
{
    if (!t || !path) return fy_error(FERRY_E_INVALID_ARG, "tensor and path are required");
    return fy_npy_write(t, path);
}
