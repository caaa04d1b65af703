/* json.h — the request-side JSON reader and the response-side writer of ferry serve.
 * Requests are parsed into an arena (no malloc per number), which keeps a 784-float v2 body
 * cheap; responses are appended to a growable buffer. Both are fuzzed (fuzz/fuzz_v2_request.c). */
#ifndef FERRY_SERVE_JSON_H
#define FERRY_SERVE_JSON_H

#include <stddef.h>
#include <stdint.h>

/* ---- arena: bump allocation, freed all at once ------------------------------------------- */

typedef struct sv_arena_block sv_arena_block;
typedef struct sv_arena {
    sv_arena_block *head; /* newest block first */
    size_t used;          /* bytes used in head */
} sv_arena;

/* 16-byte aligned memory valid until sv_arena_free; NULL when out of memory. */
void *sv_arena_alloc(sv_arena *a, size_t n);
/* Frees every block. The arena is empty (and reusable) afterwards. */
void sv_arena_free(sv_arena *a);

/* ---- parsed values ------------------------------------------------------------------------ */

typedef enum sj_type { SJ_NULL, SJ_FALSE, SJ_TRUE, SJ_NUM, SJ_STR, SJ_ARR, SJ_OBJ } sj_type;

typedef struct sj_val sj_val;
struct sj_val {
    uint8_t type;
    uint8_t is_int;  /* SJ_NUM written without fraction or exponent and fits int64 (i) */
    uint8_t approx;  /* SJ_NUM (or packed SJ_ARR): a value may be an ulp off; sj_exact() and
                        sj_parse of the text give exact values */
    uint8_t packed;  /* SJ_ARR of >= 32 numbers only: u.nums holds them, no member nodes */
    uint32_t n;      /* SJ_STR: bytes; SJ_ARR/SJ_OBJ: members; approx SJ_NUM: text length */
    uint32_t keylen; /* member name length when this value sits in an object */
    uint32_t txtlen; /* packed SJ_ARR: length of its text (txt) */
    const char *key; /* member name (NUL-terminated) or NULL */
    sj_val *next;    /* next member of the enclosing array/object */
    union {
        double d;      /* SJ_NUM */
        const char *s; /* SJ_STR: NUL-terminated, may hold NULs inside (n counts them) */
        sj_val *first; /* SJ_ARR/SJ_OBJ (NULL for a packed array) */
        double *nums;  /* packed SJ_ARR: n values */
    } u;
    union {
        int64_t i;       /* SJ_NUM with is_int */
        const char *txt; /* approx SJ_NUM without is_int: its text (n bytes); packed SJ_ARR:
                            its text from '[' to ']' (txtlen bytes) */
    };
};

#define SJ_MAX_DEPTH 64

/* Parses len bytes of text (modified in place: strings are unescaped where they lie, so the
 * values point into text) into nodes allocated from a. Accepts RFC 8259 JSON plus the NaN,
 * Infinity and -Infinity tokens TF Serving clients send. Returns 0, or -1 with a message naming
 * the byte offset in err. Trailing whitespace is allowed, anything else after the value not. */
int sj_parse(sv_arena *a, char *text, size_t len, sj_val **out, char *err, size_t errlen);

/* The same without packed arrays: every number gets its node (exact integers beyond 2^53). */
int sj_parse_unpacked(sv_arena *a, char *text, size_t len, sj_val **out, char *err, size_t errlen);
/* A number correctly rounded to double (strtod on the text when the fast value is approx). */
double sj_exact(const sj_val *v);
/* Member of an object by name, or NULL. */
const sj_val *sj_get(const sj_val *obj, const char *key);
/* Number as double (false 0, true 1 for BOOL convenience); 0 for other types. */
static inline double sj_num(const sj_val *v)
{
    return v->type == SJ_NUM ? v->u.d : v->type == SJ_TRUE;
}

/* ---- writer -------------------------------------------------------------------------------- */

typedef struct sv_buf {
    char *p;
    size_t len, cap;
    int oom; /* an allocation failed; the content is truncated */
} sv_buf;

void sv_buf_reserve(sv_buf *b, size_t extra);
void sv_buf_put(sv_buf *b, const void *s, size_t n);
void sv_buf_puts(sv_buf *b, const char *s);
void sv_buf_putc(sv_buf *b, char c);
void sv_buf_printf(sv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal (quotes included), escaping control characters, quotes, backslashes
 * and invalid UTF-8 bytes (as \u00XX, so any byte string survives). */
void sv_buf_json_str(sv_buf *b, const char *s, size_t n);
void sv_buf_i64(sv_buf *b, int64_t v);
void sv_buf_u64(sv_buf *b, uint64_t v);
/* Shortest-enough round-trip forms: %.9g for float, %.17g for double; NaN, Infinity,
 * -Infinity as TF Serving and Python's json write them. */
void sv_buf_f32(sv_buf *b, float v);
void sv_buf_f64(sv_buf *b, double v);
/* Takes the buffer's memory (caller frees); the buffer is empty afterwards. */
char *sv_buf_take(sv_buf *b, size_t *len);
void sv_buf_free(sv_buf *b);

#endif
