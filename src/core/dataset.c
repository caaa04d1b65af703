/* dataset.c — dataset readers (.npy, .npz, IDX with optional gzip, numeric CSV) and fitting
 * samples to a model input. Every byte comes from a user's file, so every size is checked. */
#include "ferry/dataset.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/npy.h"
#include "core/value.h"

#ifndef FY_MAX_TENSOR_MB
#define FY_MAX_TENSOR_MB (64 * 1024)
#endif
/* Inflated data larger than this is refused (a few bytes of gzip can claim gigabytes). */
#define MAX_INFLATED ((size_t)FY_MAX_TENSOR_MB << 20)

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* ---- gzip / deflate ---------------------------------------------------------------------- */

/* Inflate src. raw: a bare deflate stream (zip entries) with exactly `expect` bytes out;
 * otherwise gzip or zlib, possibly several concatenated gzip members, of any length. */
static ferry_status inflate_buf(const unsigned char *src, size_t n, int raw, size_t expect,
                                const char *name, unsigned char **out, size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    if (raw && expect > MAX_INFLATED)
        return fy_error(FERRY_E_UNSUPPORTED, "%s: entry of %zu bytes is above the %d MiB limit",
                        name, expect, FY_MAX_TENSOR_MB);
    size_t cap = raw ? (expect ? expect : 1) : (n < MAX_INFLATED / 4 ? n * 4 + 64 : MAX_INFLATED);
    unsigned char *buf = malloc(cap);
    if (!buf) return fy_error(FERRY_E_NOMEM, "%s: out of memory inflating", name);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, raw ? -MAX_WBITS : MAX_WBITS + 32) != Z_OK) {
        free(buf);
        return fy_error(FERRY_E_INTERNAL, "%s: zlib init failed", name);
    }
    ferry_status rc = FERRY_OK;
    size_t len = 0, in_pos = 0;
    for (;;) {
        zs.next_in = (unsigned char *)src + in_pos;
        zs.avail_in = (uInt)((n - in_pos) > 0x40000000u ? 0x40000000u : (n - in_pos));
        size_t before_in = zs.avail_in;
        if (len == cap) {
            if (raw || cap >= MAX_INFLATED) {
                if (raw)
                    rc = fy_error(FERRY_E_PARSE,
                                  "%s: compressed entry inflates past its declared size", name);
                else
                    rc = fy_error(FERRY_E_UNSUPPORTED, "%s: inflates past the %d MiB limit", name,
                                  FY_MAX_TENSOR_MB);
                break;
            }
            size_t ncap = cap * 2 > MAX_INFLATED ? MAX_INFLATED : cap * 2;
            unsigned char *g = realloc(buf, ncap);
            if (!g) {
                rc = fy_error(FERRY_E_NOMEM, "%s: out of memory inflating", name);
                break;
            }
            buf = g;
            cap = ncap;
        }
        zs.next_out = buf + len;
        zs.avail_out = (uInt)((cap - len) > 0x40000000u ? 0x40000000u : (cap - len));
        size_t before_out = zs.avail_out;
        int z = inflate(&zs, Z_NO_FLUSH);
        len += before_out - zs.avail_out;
        in_pos += before_in - zs.avail_in;
        if (z == Z_STREAM_END) {
            /* gzip files may hold several members one after another */
            if (!raw && in_pos < n && n - in_pos >= 2 && src[in_pos] == 0x1f &&
                src[in_pos + 1] == 0x8b) {
                inflateReset(&zs);
                continue;
            }
            break;
        }
        if (z == Z_BUF_ERROR && zs.avail_out != 0) {
            rc = fy_error(FERRY_E_PARSE, "%s: compressed data is truncated", name);
            break;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) {
            rc = fy_error(FERRY_E_PARSE, "%s: corrupt compressed data (%s)", name,
                          zs.msg ? zs.msg : "zlib error");
            break;
        }
        if (in_pos >= n && zs.avail_out != 0) {
            rc = fy_error(FERRY_E_PARSE, "%s: compressed data is truncated", name);
            break;
        }
    }
    inflateEnd(&zs);
    if (rc == FERRY_OK && raw && len != expect)
        rc = fy_error(FERRY_E_PARSE, "%s: entry inflates to %zu bytes, the archive says %zu", name,
                      len, expect);
    if (rc != FERRY_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_n = len;
    return FERRY_OK;
}

/* ---- IDX (MNIST) ------------------------------------------------------------------------- */

static ferry_status parse_idx(const unsigned char *p, size_t n, const char *name, fy_value **out)
{
    if (n < 4 || p[0] != 0 || p[1] != 0)
        return fy_error(FERRY_E_PARSE, "%s: not an IDX file (the first two bytes must be zero)",
                        name);
    ferry_dtype dt;
    switch (p[2]) {
    case 0x08: dt = FERRY_DTYPE_U8; break;
    case 0x09: dt = FERRY_DTYPE_I8; break;
    case 0x0B: dt = FERRY_DTYPE_I16; break;
    case 0x0C: dt = FERRY_DTYPE_I32; break;
    case 0x0D: dt = FERRY_DTYPE_F32; break;
    case 0x0E: dt = FERRY_DTYPE_F64; break;
    default:
        return fy_error(FERRY_E_PARSE,
                        "%s: IDX element type 0x%02x is not one of 08 09 0B 0C 0D 0E", name, p[2]);
    }
    int rank = p[3];
    if (rank < 1 || rank > FERRY_MAX_RANK)
        return fy_error(FERRY_E_PARSE, "%s: IDX rank %d is not in 1..%d", name, rank,
                        FERRY_MAX_RANK);
    if (n < 4 + 4 * (size_t)rank) return fy_error(FERRY_E_PARSE, "%s: truncated IDX header", name);
    int64_t dims[FERRY_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        const unsigned char *d = p + 4 + 4 * i;
        dims[i] =
            (int64_t)((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]);
    }
    int64_t count = fy_shape_count(rank, dims);
    size_t esize = ferry_dtype_size(dt), body = n - 4 - 4 * (size_t)rank;
    if (count < 0 || (uint64_t)count > body / esize) {
        char sbuf[128];
        /* in floating point: the claimed size may overflow 64 bits */
        double need = 1;
        for (int i = 0; i < rank; i++)
            need *= (double)dims[i];
        return fy_error(
            FERRY_E_PARSE, "%s: IDX data is truncated: shape %s needs %.0f bytes, the file has %zu",
            name, fy_shape_str(rank, dims, sbuf, sizeof sbuf), need * (double)esize, body);
    }
    if (body != (size_t)count * esize)
        return fy_error(FERRY_E_PARSE, "%s: %zu bytes of trailing data after the IDX tensor", name,
                        body - (size_t)count * esize);
    FY_CHECK(fy_tensor_new(dt, rank, dims, out));
    const unsigned char *src = p + 4 + 4 * (size_t)rank;
    unsigned char *dst = (*out)->data;
    /* IDX is big-endian; swap every element into host (little-endian) order */
    for (int64_t i = 0; i < count; i++)
        for (size_t b = 0; b < esize; b++)
            dst[i * esize + b] = src[i * esize + (esize - 1 - b)];
    return FERRY_OK;
}

/* ---- .npz (a zip of .npy files) ---------------------------------------------------------- */

static uint32_t le16(const unsigned char *p) { return p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | (uint32_t)le16(p + 2) << 16; }
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

typedef struct zip_entry {
    char name[256];
    unsigned method;
    uint64_t csize, usize, offset;
} zip_entry;

/* Reads the central directory: up to max entries into ents, their number into *count. */
static ferry_status zip_entries(const unsigned char *p, size_t n, const char *name, zip_entry *ents,
                                int max, int *count)
{
    *count = 0;
    if (n < 22) return fy_error(FERRY_E_PARSE, "%s: not a zip (.npz) file: too short", name);
    size_t eocd = (size_t)-1;
    size_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0;
    for (size_t i = n - 22 + 1; i-- > lo;)
        if (memcmp(p + i, "PK\5\6", 4) == 0) {
            eocd = i;
            break;
        }
    if (eocd == (size_t)-1)
        return fy_error(FERRY_E_PARSE, "%s: not a zip (.npz) file: no end-of-directory record",
                        name);
    uint32_t total = le16(p + eocd + 10);
    uint64_t cd_size = le32(p + eocd + 12), cd_off = le32(p + eocd + 16);
    if (total == 0xFFFF || cd_off == 0xFFFFFFFFu)
        return fy_error(FERRY_E_UNSUPPORTED,
                        "%s: zip64 archives with this many entries are not supported", name);
    if (cd_off > n || cd_size > n - cd_off)
        return fy_error(FERRY_E_PARSE, "%s: zip central directory lies outside the file", name);
    size_t pos = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (uint32_t e = 0; e < total; e++) {
        if (end - pos < 46 || memcmp(p + pos, "PK\1\2", 4) != 0)
            return fy_error(FERRY_E_PARSE, "%s: zip central directory entry %u is malformed", name,
                            e);
        zip_entry z = {0};
        z.method = le16(p + pos + 10);
        z.csize = le32(p + pos + 20);
        z.usize = le32(p + pos + 24);
        size_t nlen = le16(p + pos + 28), xlen = le16(p + pos + 30), clen = le16(p + pos + 32);
        z.offset = le32(p + pos + 42);
        if (end - pos - 46 < nlen + xlen + clen)
            return fy_error(FERRY_E_PARSE, "%s: zip central directory entry %u is truncated", name,
                            e);
        size_t cp = nlen < sizeof z.name ? nlen : sizeof z.name - 1;
        memcpy(z.name, p + pos + 46, cp);
        z.name[cp] = '\0';
        /* zip64 extra: the 64-bit values of the fields that hold 0xFFFFFFFF, in this order */
        const unsigned char *x = p + pos + 46 + nlen, *xe = x + xlen;
        while (xe - x >= 4) {
            uint32_t id = le16(x), sz = le16(x + 2);
            if ((size_t)(xe - x - 4) < sz) break;
            if (id == 1) {
                const unsigned char *v = x + 4, *ve = v + sz;
                if (z.usize == 0xFFFFFFFFu && ve - v >= 8) z.usize = le64(v), v += 8;
                if (z.csize == 0xFFFFFFFFu && ve - v >= 8) z.csize = le64(v), v += 8;
                if (z.offset == 0xFFFFFFFFu && ve - v >= 8) z.offset = le64(v), v += 8;
            }
            x += 4 + sz;
        }
        if (*count < max) ents[(*count)++] = z;
        pos += 46 + nlen + xlen + clen;
    }
    return FERRY_OK;
}

/* The bytes of one entry (inflated if needed) into a malloc'd buffer. */
static ferry_status zip_read(const unsigned char *p, size_t n, const char *name, const zip_entry *z,
                             unsigned char **out, size_t *out_n)
{
    *out = NULL;
    if (z->offset > n || n - z->offset < 30 || memcmp(p + z->offset, "PK\3\4", 4) != 0)
        return fy_error(FERRY_E_PARSE, "%s: zip entry \"%s\" has no local header", name, z->name);
    size_t data = (size_t)z->offset + 30 + le16(p + z->offset + 26) + le16(p + z->offset + 28);
    if (data > n || z->csize > n - data)
        return fy_error(FERRY_E_PARSE, "%s: zip entry \"%s\" is truncated", name, z->name);
    if (z->method == 0) {
        if (z->csize != z->usize)
            return fy_error(FERRY_E_PARSE, "%s: stored zip entry \"%s\" has two sizes", name,
                            z->name);
        unsigned char *b = malloc(z->csize ? z->csize : 1);
        if (!b) return fy_error(FERRY_E_NOMEM, "%s: out of memory", name);
        memcpy(b, p + data, z->csize);
        *out = b;
        *out_n = z->csize;
        return FERRY_OK;
    }
    if (z->method == 8) {
        char where[320];
        snprintf(where, sizeof where, "%s: \"%s\"", name, z->name);
        return inflate_buf(p + data, z->csize, 1, z->usize, where, out, out_n);
    }
    return fy_error(FERRY_E_UNSUPPORTED,
                    "%s: zip entry \"%s\" uses compression method %u "
                    "(only stored and deflate are supported)",
                    name, z->name, z->method);
}

#define MAX_NPZ_ENTRIES 1024

static void strip_npy(char *s)
{
    size_t l = strlen(s);
    if (l > 4 && strcmp(s + l - 4, ".npy") == 0) s[l - 4] = '\0';
}

static ferry_status parse_npz(const unsigned char *p, size_t n, const char *name, const char *want,
                              fy_value **out)
{
    zip_entry *ents = calloc(MAX_NPZ_ENTRIES, sizeof *ents);
    if (!ents) return fy_error(FERRY_E_NOMEM, "out of memory");
    int count = 0;
    ferry_status rc = zip_entries(p, n, name, ents, MAX_NPZ_ENTRIES, &count);
    if (rc != FERRY_OK) goto out;
    for (int i = 0; i < count; i++)
        strip_npy(ents[i].name);
    int pick = -1;
    if (want) {
        char w[256];
        snprintf(w, sizeof w, "%s", want);
        strip_npy(w);
        for (int i = 0; i < count && pick < 0; i++)
            if (strcmp(ents[i].name, w) == 0) pick = i;
    } else if (count == 1) {
        pick = 0;
    } else {
        static const char *usual[] = {"x", "X", "inputs", "data", "images", "features"};
        for (size_t u = 0; u < sizeof usual / sizeof usual[0] && pick < 0; u++)
            for (int i = 0; i < count && pick < 0; i++)
                if (strcmp(ents[i].name, usual[u]) == 0) pick = i;
    }
    if (pick < 0) {
        char list[512] = "";
        size_t l = 0;
        for (int i = 0; i < count && l < sizeof list - 1; i++)
            l += snprintf(list + l, sizeof list - l, "%s\"%s\"", i ? ", " : "", ents[i].name);
        if (count == 0)
            rc = fy_error(FERRY_E_PARSE, "%s: the .npz archive holds no arrays", name);
        else if (want)
            rc = fy_error(FERRY_E_INVALID_ARG, "%s: no array \"%s\" in the archive (it has %s)",
                          name, want, list);
        else
            rc = fy_error(FERRY_E_INVALID_ARG,
                          "%s: the archive has several arrays (%s); choose one", name, list);
        goto out;
    }
    unsigned char *bytes;
    size_t len;
    rc = zip_read(p, n, name, &ents[pick], &bytes, &len);
    if (rc != FERRY_OK) goto out;
    char where[320];
    snprintf(where, sizeof where, "%s: \"%s\"", name, ents[pick].name);
    rc = fy_npy_parse(bytes, len, where, out);
    free(bytes);
out:
    free(ents);
    return rc;
}

ferry_status ferry_npz_list(const char *path, char **names)
{
    if (!path || !names) return fy_error(FERRY_E_INVALID_ARG, "path and names are required");
    *names = NULL;
    void *data;
    size_t size;
    FY_CHECK(fy_read_file(path, &data, &size));
    zip_entry *ents = calloc(MAX_NPZ_ENTRIES, sizeof *ents);
    int count = 0;
    ferry_status rc = ents ? zip_entries(data, size, path, ents, MAX_NPZ_ENTRIES, &count)
                           : fy_error(FERRY_E_NOMEM, "out of memory");
    if (rc == FERRY_OK) {
        char *s = calloc((size_t)count, 257);
        if (!s) rc = fy_error(FERRY_E_NOMEM, "out of memory");
        for (int i = 0; s && i < count; i++) {
            strip_npy(ents[i].name);
            strcat(s, ents[i].name);
            if (i + 1 < count) strcat(s, "\n");
        }
        if (s && count == 0) s[0] = '\0';
        *names = s;
    }
    free(ents);
    free(data);
    return rc;
}

/* ---- CSV --------------------------------------------------------------------------------- */

/* One field of a line: [*s, end) with quotes and surrounding blanks removed. */
static const char *csv_field(const char *s, const char *line_end, char delim, const char **fs,
                             const char **fe)
{
    const char *e = s;
    while (e < line_end && *e != delim)
        e++;
    const char *a = s, *b = e;
    while (a < b && isspace((unsigned char)*a))
        a++;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    if (b - a >= 2 && *a == '"' && b[-1] == '"') a++, b--;
    *fs = a;
    *fe = b;
    return e < line_end ? e + 1 : NULL;
}

/* Parses a numeric field; empty, "nan", "NA" and "?" are missing (NaN). Returns 0 if not a number.
 */
static int csv_number(const char *a, const char *b, double *v)
{
    size_t len = (size_t)(b - a);
    if (len == 0 || (len == 2 && strncasecmp(a, "NA", 2) == 0) || (len == 1 && *a == '?') ||
        (len == 3 && strncasecmp(a, "nan", 3) == 0)) {
        *v = NAN;
        return 1;
    }
    char tmp[64];
    if (len >= sizeof tmp) return 0;
    memcpy(tmp, a, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    *v = strtod(tmp, &end);
    return end == tmp + len && errno != ERANGE;
}

static ferry_status parse_csv(const char *text, size_t n, const char *name,
                              const ferry_dataset_options *o, fy_value **data, fy_value **labels)
{
    char delim = o && o->delimiter ? o->delimiter : ',';
    const char *end = text + n, *p = text;
    /* skip a UTF-8 byte order mark */
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    ferry_status rc = FERRY_OK;
    double *vals = NULL;
    size_t nvals = 0, cap = 0;
    int64_t cols = -1, rows = 0, line_no = 0, label_col = -1;
    int header = o ? o->header : 0;
    int first = 1;
    while (p < end) {
        const char *le = memchr(p, '\n', (size_t)(end - p));
        if (!le) le = end;
        const char *line_end = le > p && le[-1] == '\r' ? le - 1 : le;
        line_no++;
        const char *q = p;
        p = le < end ? le + 1 : end;
        int blank = 1;
        for (const char *c = q; c < line_end; c++)
            if (!isspace((unsigned char)*c)) blank = 0;
        if (blank) continue;
        /* count fields and see whether they are all numbers */
        int64_t nf = 0, non_numeric = -1;
        double v;
        for (const char *f = q; f;) {
            const char *a, *b;
            f = csv_field(f, line_end, delim, &a, &b);
            if (non_numeric < 0 && !csv_number(a, b, &v)) non_numeric = nf;
            nf++;
        }
        if (first) {
            first = 0;
            cols = nf;
            if (header == 0) header = non_numeric >= 0 ? 1 : -1;
            /* the label column: a header name, or an index (negative counts from the end) */
            if (o && o->label_column) {
                const char *lc = o->label_column;
                char *iend;
                long idx = strtol(lc, &iend, 10);
                if (*lc && *iend == '\0') {
                    if (idx < 0) idx += cols;
                    if (idx < 0 || idx >= cols) {
                        rc = fy_error(FERRY_E_INVALID_ARG,
                                      "%s: label column %s is outside the %lld columns", name, lc,
                                      (long long)cols);
                        goto out;
                    }
                    label_col = idx;
                } else if (header == 1) {
                    int64_t k = 0;
                    for (const char *f = q; f && label_col < 0; k++) {
                        const char *a, *b;
                        f = csv_field(f, line_end, delim, &a, &b);
                        if ((size_t)(b - a) == strlen(lc) && strncmp(a, lc, (size_t)(b - a)) == 0)
                            label_col = k;
                    }
                    if (label_col < 0) {
                        rc = fy_error(FERRY_E_INVALID_ARG,
                                      "%s: no column named \"%s\" in the header", name, lc);
                        goto out;
                    }
                } else {
                    rc = fy_error(FERRY_E_INVALID_ARG,
                                  "%s: label column \"%s\" is a name, but the file "
                                  "has no header row",
                                  name, lc);
                    goto out;
                }
            }
            if (header == 1) continue;
        }
        if (nf != cols) {
            rc = fy_error(FERRY_E_PARSE, "%s:%lld: %lld fields, the first row has %lld", name,
                          (long long)line_no, (long long)nf, (long long)cols);
            goto out;
        }
        if (non_numeric >= 0) {
            const char *a = q, *b = q, *f = q;
            for (int64_t k = 0; k <= non_numeric; k++)
                f = csv_field(f, line_end, delim, &a, &b);
            rc = fy_error(FERRY_E_PARSE, "%s:%lld: column %lld is not a number: \"%.*s\"", name,
                          (long long)line_no, (long long)non_numeric + 1,
                          (int)((b - a) > 40 ? 40 : (b - a)), a);
            goto out;
        }
        if (nvals + (size_t)nf > cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            while (ncap < nvals + (size_t)nf)
                ncap *= 2;
            if (ncap > MAX_INFLATED / sizeof(double)) {
                rc = fy_error(FERRY_E_UNSUPPORTED, "%s: more than %d MiB of numbers", name,
                              FY_MAX_TENSOR_MB);
                goto out;
            }
            double *g = realloc(vals, ncap * sizeof *g);
            if (!g) {
                rc = fy_error(FERRY_E_NOMEM, "%s: out of memory", name);
                goto out;
            }
            vals = g;
            cap = ncap;
        }
        for (const char *f = q; f;) {
            const char *a, *b;
            f = csv_field(f, line_end, delim, &a, &b);
            csv_number(a, b, &vals[nvals++]);
        }
        rows++;
    }
    if (rows == 0) {
        rc = fy_error(FERRY_E_PARSE, "%s: no data rows", name);
        goto out;
    }
    int64_t fcols = cols - (label_col >= 0);
    if (fcols == 0) {
        rc = fy_error(FERRY_E_PARSE, "%s: no feature columns besides the label", name);
        goto out;
    }
    int64_t dims[2] = {rows, fcols};
    rc = fy_tensor_new(FERRY_DTYPE_F64, 2, dims, data);
    if (rc != FERRY_OK) goto out;
    if (labels && label_col >= 0) {
        rc = fy_tensor_new(FERRY_DTYPE_F64, 1, dims, labels);
        if (rc != FERRY_OK) goto out;
    }
    double *d = (*data)->data, *l = labels && *labels ? (*labels)->data : NULL;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double v = vals[r * cols + c];
            if (c == label_col) {
                if (l) l[r] = v;
            } else {
                *d++ = v;
            }
        }
out:
    free(vals);
    if (rc != FERRY_OK) {
        fy_value_unref(*data);
        *data = NULL;
        if (labels) {
            fy_value_unref(*labels);
            *labels = NULL;
        }
    }
    return rc;
}

/* ---- format choice ----------------------------------------------------------------------- */

typedef enum { FMT_UNKNOWN, FMT_NPY, FMT_NPZ, FMT_IDX, FMT_CSV } fmt_t;

static fmt_t format_of(const char *name, const unsigned char *p, size_t n)
{
    char base[512];
    snprintf(base, sizeof base, "%s", name);
    if (ends_with(base, ".gz")) base[strlen(base) - 3] = '\0';
    if (ends_with(base, ".npy")) return FMT_NPY;
    if (ends_with(base, ".npz")) return FMT_NPZ;
    if (ends_with(base, ".csv") || ends_with(base, ".tsv") || ends_with(base, ".txt"))
        return FMT_CSV;
    const char *slash = strrchr(base, '/');
    const char *file = slash ? slash + 1 : base;
    if (strstr(file, "idx") || strstr(file, "ubyte")) return FMT_IDX;
    if (n >= 6 && memcmp(p, "\x93NUMPY", 6) == 0) return FMT_NPY;
    if (n >= 4 && memcmp(p, "PK\3\4", 4) == 0) return FMT_NPZ;
    if (n >= 4 && p[0] == 0 && p[1] == 0 && p[3] >= 1) return FMT_IDX;
    return FMT_UNKNOWN;
}

ferry_status ferry_dataset_parse(const void *bytes, size_t size, const char *name,
                                 const ferry_dataset_options *opts, ferry_value **data,
                                 ferry_value **labels)
{
    if (!data || (!bytes && size))
        return fy_error(FERRY_E_INVALID_ARG, "bytes and data are required");
    *data = NULL;
    if (labels) *labels = NULL;
    if (!name) name = "dataset";
    const unsigned char *p = bytes;
    unsigned char *inflated = NULL;
    size_t n = size;
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        FY_CHECK(inflate_buf(p, n, 0, 0, name, &inflated, &n));
        p = inflated;
    }
    ferry_status rc;
    switch (format_of(name, p, n)) {
    case FMT_NPY: rc = fy_npy_parse(p, n, name, data); break;
    case FMT_NPZ: rc = parse_npz(p, n, name, opts ? opts->array : NULL, data); break;
    case FMT_IDX: rc = parse_idx(p, n, name, data); break;
    case FMT_CSV: rc = parse_csv((const char *)p, n, name, opts, data, labels); break;
    default:
        rc = fy_error(FERRY_E_UNSUPPORTED,
                      "%s: unknown dataset format (expected .npy, .npz, .csv "
                      "or IDX, optionally .gz)",
                      name);
    }
    free(inflated);
    if (rc == FERRY_OK && (*data)->rank < 1) {
        fy_value_unref(*data);
        *data = NULL;
        rc = fy_error(FERRY_E_SHAPE, "%s: a dataset needs at least one dimension (the samples)",
                      name);
    }
    if (rc == FERRY_OK && (*data)->dtype == FERRY_DTYPE_STRING) {
        fy_value_unref(*data);
        *data = NULL;
        rc = fy_error(FERRY_E_UNSUPPORTED, "%s: string datasets are not supported", name);
    }
    return rc;
}

ferry_status ferry_dataset_load(const char *path, const ferry_dataset_options *opts,
                                ferry_value **data, ferry_value **labels)
{
    if (!path || !data) return fy_error(FERRY_E_INVALID_ARG, "path and data are required");
    *data = NULL;
    if (labels) *labels = NULL;
    void *bytes;
    size_t size;
    FY_CHECK(fy_read_file(path, &bytes, &size));
    ferry_status rc = ferry_dataset_parse(bytes, size, path, opts, data, labels);
    free(bytes);
    return rc;
}

/* ---- fitting to a model input ------------------------------------------------------------ */

double ferry_dataset_default_scale(ferry_dtype data_dtype, ferry_dtype input_dtype)
{
    return data_dtype == FERRY_DTYPE_U8 && fy_dtype_is_float(input_dtype) ? 1.0 / 255.0 : 1.0;
}

ferry_status ferry_dataset_slice(const ferry_value *t, int64_t start, int64_t n, ferry_value **out)
{
    if (!t || !out || t->kind != FERRY_VALUE_TENSOR || t->rank < 1)
        return fy_error(FERRY_E_INVALID_ARG, "slice needs a tensor with at least one dimension");
    *out = NULL;
    if (t->dtype == FERRY_DTYPE_STRING)
        return fy_error(FERRY_E_UNSUPPORTED, "cannot slice strings");
    if (start < 0 || start > t->dims[0] || n < 0)
        return fy_error(FERRY_E_INVALID_ARG, "rows [%lld, +%lld) are outside the %lld samples",
                        (long long)start, (long long)n, (long long)t->dims[0]);
    if (n > t->dims[0] - start) n = t->dims[0] - start;
    int64_t dims[FERRY_MAX_RANK];
    memcpy(dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
    dims[0] = n;
    FY_CHECK(fy_tensor_new(t->dtype, t->rank, dims, out));
    int64_t row = t->dims[0] ? t->count / t->dims[0] : 0;
    size_t es = ferry_dtype_size(t->dtype);
    if (n && row)
        memcpy((*out)->data, (const char *)t->data + (size_t)(start * row) * es,
               (size_t)(n * row) * es);
    return FERRY_OK;
}

/* The per-sample shape the input wants for samples of `per` elements with data sample dims. */
static ferry_status fit_shape(const ferry_value *data, const ferry_io_info *io, int *rank,
                              int64_t *dims)
{
    int64_t per = data->dims[0] ? data->count / data->dims[0] : 0;
    if (io->rank < 1) {
        /* an input with no declared shape: keep the data's own shape */
        *rank = data->rank;
        memcpy(dims, data->dims, sizeof(int64_t) * (size_t)data->rank);
        return FERRY_OK;
    }
    *rank = io->rank;
    int unknown = 0, unknown_at = -1;
    int64_t known = 1;
    for (int i = 1; i < io->rank; i++) {
        if (io->dims[i] < 0)
            unknown++, unknown_at = i;
        else
            known *= io->dims[i];
        dims[i] = io->dims[i];
    }
    char want[160], got[160];
    fy_shape_str(data->rank - 1, data->dims + 1, got, sizeof got);
    if (unknown > 1) {
        if (data->rank != io->rank)
            return fy_error(FERRY_E_SHAPE,
                            "input \"%s\" has %d free dims; samples of shape %s cannot "
                            "be fitted to it (give data with %d dims per sample)",
                            io->name, unknown, got, io->rank - 1);
        for (int i = 1; i < io->rank; i++)
            if (dims[i] < 0) dims[i] = data->dims[i];
        known = 1;
        for (int i = 1; i < io->rank; i++)
            known *= dims[i];
    } else if (unknown == 1) {
        if (known == 0 || per % known != 0)
            return fy_error(FERRY_E_SHAPE,
                            "samples of shape %s (%lld values) do not fit input \"%s\"", got,
                            (long long)per, io->name);
        dims[unknown_at] = per / known;
        known = per;
    }
    if (known != per) {
        fy_shape_str(io->rank - 1, dims + 1, want, sizeof want);
        return fy_error(FERRY_E_SHAPE,
                        "samples of shape %s (%lld values each) do not fit input \"%s\" "
                        "of per-sample shape %s (%lld values)",
                        got, (long long)per, io->name, want, (long long)known);
    }
    return FERRY_OK;
}

ferry_status ferry_dataset_fit(const ferry_value *data, int64_t start, int64_t n,
                               const ferry_io_info *io, const ferry_fit_options *opts,
                               ferry_value **out)
{
    if (!data || !io || !out || data->kind != FERRY_VALUE_TENSOR || data->rank < 1)
        return fy_error(FERRY_E_INVALID_ARG, "fit needs a dataset tensor, an input and out");
    *out = NULL;
    if (start < 0 || start > data->dims[0] || n < 0)
        return fy_error(FERRY_E_INVALID_ARG, "rows [%lld, +%lld) are outside the %lld samples",
                        (long long)start, (long long)n, (long long)data->dims[0]);
    if (n > data->dims[0] - start) n = data->dims[0] - start;
    if (!fy_dtype_is_numeric(data->dtype) || !fy_dtype_is_numeric(io->dtype))
        return fy_error(FERRY_E_DTYPE,
                        "input \"%s\" is %s and the data %s: only numbers can be fitted", io->name,
                        ferry_dtype_name(io->dtype), ferry_dtype_name(data->dtype));
    int rank;
    int64_t dims[FERRY_MAX_RANK];
    FY_CHECK(fit_shape(data, io, &rank, dims));
    dims[0] = n;
    if (io->rank >= 1 && io->dims[0] >= 0 && io->dims[0] != n)
        return fy_error(FERRY_E_SHAPE, "input \"%s\" takes exactly %lld samples per run, not %lld",
                        io->name, (long long)io->dims[0], (long long)n);
    fy_value *t;
    FY_CHECK(fy_tensor_new(io->dtype, rank, dims, &t));
    double scale = opts && opts->scale != 0 ? opts->scale : 1.0, mean = opts ? opts->mean : 0.0;
    int64_t per = data->dims[0] ? data->count / data->dims[0] : 0, base = start * per;
    int identity = scale == 1.0 && mean == 0.0;
    if (identity && io->dtype == data->dtype) {
        memcpy(t->data, (const char *)data->data + (size_t)base * ferry_dtype_size(data->dtype),
               (size_t)(n * per) * ferry_dtype_size(data->dtype));
    } else if (io->dtype == FERRY_DTYPE_F32 && data->dtype == FERRY_DTYPE_U8) {
        /* the common image case, without a conversion call per pixel */
        const uint8_t *s = (const uint8_t *)data->data + base;
        float *d = t->data;
        for (int64_t i = 0; i < n * per; i++)
            d[i] = (float)(((double)s[i] - mean) * scale);
    } else if (io->dtype == FERRY_DTYPE_F32) {
        float *d = t->data;
        for (int64_t i = 0; i < n * per; i++)
            d[i] = (float)((fy_tensor_get_f64(data, base + i) - mean) * scale);
    } else if (fy_dtype_is_float(io->dtype)) {
        for (int64_t i = 0; i < n * per; i++)
            fy_tensor_set_f64(t, i, (fy_tensor_get_f64(data, base + i) - mean) * scale);
    } else {
        /* integer inputs: NaN and out-of-range values would be undefined in a C cast */
        for (int64_t i = 0; i < n * per; i++) {
            double v = (fy_tensor_get_f64(data, base + i) - mean) * scale;
            if (!(v > -9.2e18 && v < 9.2e18)) {
                fy_value_unref(t);
                return fy_error(FERRY_E_DTYPE,
                                "sample %lld: value %g does not fit integer input \"%s\"",
                                (long long)(start + i / (per ? per : 1)), v, io->name);
            }
            fy_tensor_set_i64(t, i, (int64_t)v);
        }
    }
    *out = t;
    return FERRY_OK;
}
