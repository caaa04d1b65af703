/* json.c — arena JSON parser for request bodies and a growable buffer for responses.
 * Written for ferry serve's hot path: one pass, no allocation per value, exact fast number
 * parsing (Clinger's fast path, strtod otherwise); every byte is bounds-checked. */
#include "serve/json.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena --------------------------------------------------------------------------------- */

struct sv_arena_block {
    sv_arena_block *next;
    size_t cap;
    _Alignas(16) unsigned char data[];
};

/* Each thread keeps one first-size block between requests, so a typical request body is parsed
 * without touching malloc (HTTP threads live as long as the server). A thread-specific key, not
 * _Thread_local, so the block is freed when its thread exits. */
enum { FIRST_BLOCK = 64 * 1024 };
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static int spare_ok;

static void spare_init(void) { spare_ok = pthread_key_create(&spare_key, free) == 0; }

static sv_arena_block *spare_take(void)
{
    pthread_once(&spare_once, spare_init);
    if (!spare_ok) return NULL;
    sv_arena_block *b = pthread_getspecific(spare_key);
    if (b) pthread_setspecific(spare_key, NULL);
    return b;
}

/* Keeps b as this thread's spare; 0 when it already has one (the caller frees b). */
static int spare_keep(sv_arena_block *b)
{
    pthread_once(&spare_once, spare_init);
    if (!spare_ok || pthread_getspecific(spare_key)) return 0;
    return pthread_setspecific(spare_key, b) == 0;
}

void *sv_arena_alloc(sv_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->used + n > a->head->cap) {
        size_t cap = a->head ? a->head->cap * 2 : FIRST_BLOCK;
        if (cap < n) cap = n;
        if (cap > ((size_t)1 << 40)) return NULL;
        sv_arena_block *b = cap == FIRST_BLOCK ? spare_take() : NULL;
        if (!b) b = malloc(sizeof(*b) + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->cap = cap;
        a->head = b;
        a->used = 0;
    }
    void *p = a->head->data + a->used;
    a->used += n;
    return p;
}

void sv_arena_free(sv_arena *a)
{
    sv_arena_block *b = a->head;
    while (b) {
        sv_arena_block *next = b->next;
        if (b->cap != FIRST_BLOCK || !spare_keep(b)) free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}

/* ---- parser -------------------------------------------------------------------------------- */

typedef struct parser {
    sv_arena *a;
    char *p, *start, *end;
    char *err;
    size_t errlen;
    int failed;
    int no_pack;
} parser;

static int fail(parser *ps, const char *what)
{
    if (!ps->failed)
        snprintf(ps->err, ps->errlen, "malformed JSON at byte %zu: %s", (size_t)(ps->p - ps->start),
                 what);
    ps->failed = 1;
    return -1;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(parser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4) return fail(ps, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(ps->p[i]);
        if (h < 0) return fail(ps, "bad \\u escape");
        v = v << 4 | (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

/* Unescapes the string starting after its opening quote in place; NUL-terminates it. */
static int parse_string(parser *ps, const char **s, uint32_t *n)
{
    char *w = ps->p, *begin = ps->p;
    for (;;) {
        if (ps->p >= ps->end) return fail(ps, "unterminated string");
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') break;
        if (c < 0x20) return fail(ps, "control character in string");
        if (c != '\\') {
            *w++ = (char)c;
            ps->p++;
            continue;
        }
        ps->p++;
        if (ps->p >= ps->end) return fail(ps, "unterminated escape");
        char e = *ps->p++;
        switch (e) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (read_hex4(ps, &cp)) return -1;
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
                    return fail(ps, "lone high surrogate");
                ps->p += 2;
                if (read_hex4(ps, &lo)) return -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return fail(ps, "bad low surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(ps, "lone low surrogate");
            }
            /* UTF-8 is never longer than the escape it replaces (6 or 12 bytes). */
            if (cp < 0x80) {
                *w++ = (char)cp;
            } else if (cp < 0x800) {
                *w++ = (char)(0xC0 | cp >> 6);
                *w++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *w++ = (char)(0xE0 | cp >> 12);
                *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *w++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *w++ = (char)(0xF0 | cp >> 18);
                *w++ = (char)(0x80 | (cp >> 12 & 0x3F));
                *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *w++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return fail(ps, "unknown escape");
        }
    }
    /* ps->p is at the closing quote and w <= ps->p, so the terminator fits. */
    *w = '\0';
    ps->p++;
    if ((size_t)(w - begin) > UINT32_MAX) return fail(ps, "string too long");
    *s = begin;
    *n = (uint32_t)(w - begin);
    return 0;
}

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int match_word(parser *ps, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) return 0;
    ps->p += n;
    return 1;
}

static inline int is_digit(char c) { return (unsigned char)(c - '0') <= 9; }

/* Little-endian eight bytes that are all ASCII digits. */
static inline int is_8digits(uint64_t v)
{
    return (((v & 0xF0F0F0F0F0F0F0F0ull) | (((v + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >>
                                            4)) == 0x3333333333333333ull);
}

static inline uint32_t parse_8digits(uint64_t v)
{
    const uint64_t mask = 0x000000FF000000FFull, mul1 = 0x000F424000000064ull,
                   mul2 = 0x0000271000000001ull;
    v -= 0x3030303030303030ull;
    v = (v * 10) + (v >> 8);
    return (uint32_t)((((v & mask) * mul1) + (((v >> 16) & mask) * mul2)) >> 32);
}

/* Exponents beyond the exact range: strtod on a terminated copy. Kept out of line so the hot
 * parser needs no buffer on its stack. */
__attribute__((noinline)) static int slow_strtod(const char *s, size_t n, double *out)
{
    char tmp[128];
    char *buf = n < sizeof(tmp) ? tmp : malloc(n + 1);
    if (!buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    if (buf != tmp) free(buf);
    return 0;
}

/* Number grammar per RFC 8259. Up to 19 significant digits go into an integer mantissa; when
 * it and the power of ten are exact doubles, one multiplication or division gives the correctly
 * rounded value (Clinger). Otherwise the value is computed to within an ulp and marked approx,
 * with its text kept, so FP64 targets can ask strtod for the exact value (sj_exact). */
static int parse_number(parser *ps, sj_val *v)
{
    const char *p = ps->p, *end = ps->end, *s = p;
    int neg = 0;
    v->type = SJ_NUM;
    v->is_int = 0;
    v->approx = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (end - p >= 8 && memcmp(p, "Infinity", 8) == 0) {
        ps->p = (char *)p + 8;
        v->u.d = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (p >= end || !is_digit(*p)) {
        ps->p = (char *)p;
        return fail(ps, "bad number");
    }
    uint64_t mant = 0;
    int nd = 0, exp10 = 0, exact = 1, is_int = 1;
    if (*p == '0') {
        p++;
    } else {
        const char *q = p;
        while (p < end && is_digit(*p))
            p++;
        long n = p - q;
        if (n > 19) {
            exact = 0;
            exp10 = (int)(n - 19 > 100000 ? 100000 : n - 19);
            n = 19;
        }
        for (long i = 0; i < n; i++)
            mant = mant * 10 + (uint64_t)(q[i] - '0');
        nd = (int)n;
    }
    if (p < end && *p == '.') {
        is_int = 0;
        p++;
        const char *q = p;
        while (p < end && is_digit(*p))
            p++;
        if (p == q) {
            ps->p = (char *)p;
            return fail(ps, "bad fraction");
        }
        /* Eight digits at a time (SWAR, as in simdjson and fast_float): long fractions are
         * the bulk of a tensor body. */
        while (p - q >= 8 && nd <= 11) {
            uint64_t chunk;
            memcpy(&chunk, q, 8);
            if (!is_8digits(chunk)) break;
            uint64_t before = mant;
            mant = mant * 100000000u + parse_8digits(chunk);
            if (before) {
                nd += 8;
            } else {
                static const uint32_t p10[8] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
                while (nd < 8 && mant >= p10[nd])
                    nd++;
            }
            exp10 -= 8;
            q += 8;
        }
        for (; q < p; q++) {
            if (nd < 19) {
                mant = mant * 10 + (uint64_t)(*q - '0');
                if (mant) nd++;
                exp10--;
            } else if (*q != '0') {
                exact = 0;
            }
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        p++;
        int eneg = 0, e = 0;
        if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (p >= end || !is_digit(*p)) {
            ps->p = (char *)p;
            return fail(ps, "bad exponent");
        }
        while (p < end && is_digit(*p)) {
            if (e < 100000) e = e * 10 + (*p - '0');
            p++;
        }
        exp10 += eneg ? -e : e;
    }
    ps->p = (char *)p;
    if (is_int && exact &&
        (mant <= (uint64_t)INT64_MAX || (neg && mant == (uint64_t)INT64_MAX + 1))) {
        v->is_int = 1;
        v->i = neg ? (int64_t)(0 - mant) : (int64_t)mant;
    }
    if (mant == 0) {
        v->u.d = neg ? -0.0 : 0.0;
        return 0;
    }
    if (exp10 >= -22 && exp10 <= 22) {
        double d = (double)mant;
        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
        v->u.d = neg ? -d : d;
        if (!exact || mant > (1ull << 53)) {
            v->approx = 1;
            if (!v->is_int) v->txt = s;
            v->n = (uint32_t)(p - s);
        }
        return 0;
    }
    if (slow_strtod(s, (size_t)(p - s), &v->u.d)) return fail(ps, "out of memory");
    return 0;
}

double sj_exact(const sj_val *v)
{
    if (v->type != SJ_NUM) return 0;
    if (v->is_int) return (double)v->i;
    if (!v->approx) return v->u.d;
    char tmp[128];
    size_t n = v->n;
    char *buf = n < sizeof(tmp) ? tmp : malloc(n + 1);
    if (!buf) return v->u.d;
    memcpy(buf, v->txt, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (buf != tmp) free(buf);
    return d;
}

enum { PACK_MIN = 32 }; /* shapes (at most FERRY_MAX_RANK dims) are never packed */

/* An array of numbers only, at least PACK_MIN long, becomes one double[] instead of a node per
 * element: the 784-float body of an MNIST request is one allocation and one tight loop. Returns
 * 0 when packed, -1 on a malformed number, 1 to parse the array generically (it is short or
 * holds something other than numbers); ps->p is back at the first element then. */
static int parse_packed(parser *ps, sj_val *v)
{
    char *first = ps->p;
    uint32_t n = 0, cap = 1024;
    double *vals = sv_arena_alloc(ps->a, sizeof(double) * cap);
    int approx = 0;
    if (!vals) return fail(ps, "out of memory");
    for (;;) {
        sj_val num;
        if (parse_number(ps, &num)) return -1;
        if (num.approx ||
            (num.is_int && (num.i > ((int64_t)1 << 53) || num.i < -((int64_t)1 << 53))))
            approx = 1;
        if (n == cap) {
            if (cap >= UINT32_MAX / 2) return fail(ps, "too many members");
            double *bigger = sv_arena_alloc(ps->a, sizeof(double) * cap * 2);
            if (!bigger) return fail(ps, "out of memory");
            memcpy(bigger, vals, sizeof(double) * cap);
            vals = bigger;
            cap *= 2;
        }
        vals[n++] = num.u.d;
        skip_ws(ps);
        if (ps->p >= ps->end) return fail(ps, "unterminated container");
        if (*ps->p == ']') break;
        if (*ps->p != ',') return fail(ps, "expected ',' or ']'");
        ps->p++;
        skip_ws(ps);
        if (ps->p >= ps->end || !(*ps->p == '-' || is_digit(*ps->p))) {
            ps->p = first;
            return 1;
        }
    }
    if (n < PACK_MIN) {
        ps->p = first;
        return 1;
    }
    ps->p++;
    v->n = n;
    v->packed = 1;
    v->approx = (uint8_t)approx;
    v->u.nums = vals;
    v->txt = first - 1;
    v->txtlen = (uint32_t)(ps->p - first + 1 > UINT32_MAX ? 0 : ps->p - first + 1);
    if (!v->txtlen) v->approx = 0; /* over 4 GiB of text: keep the fast values */
    return 0;
}

static sj_val *new_val(parser *ps)
{
    sj_val *v = sv_arena_alloc(ps->a, sizeof(*v));
    if (!v) {
        fail(ps, "out of memory");
        return NULL;
    }
    v->n = 0;
    v->packed = 0;
    v->keylen = 0;
    v->key = NULL;
    v->next = NULL;
    v->u.first = NULL;
    return v;
}

static int parse_value(parser *ps, sj_val *v, int depth);

static int parse_container(parser *ps, sj_val *v, int depth, int is_obj)
{
    if (depth >= SJ_MAX_DEPTH) return fail(ps, "nested too deeply");
    v->type = is_obj ? SJ_OBJ : SJ_ARR;
    ps->p++;
    skip_ws(ps);
    char close = is_obj ? '}' : ']';
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    if (!is_obj && !ps->no_pack && (*ps->p == '-' || is_digit(*ps->p))) {
        int rc = parse_packed(ps, v);
        if (rc <= 0) return rc;
    }
    sj_val **tail = &v->u.first;
    for (;;) {
        sj_val *m = new_val(ps);
        if (!m) return -1;
        if (is_obj) {
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a member name");
            ps->p++;
            if (parse_string(ps, &m->key, &m->keylen)) return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
        }
        if (parse_value(ps, m, depth + 1)) return -1;
        *tail = m;
        tail = &m->next;
        if (v->n == UINT32_MAX) return fail(ps, "too many members");
        v->n++;
        skip_ws(ps);
        if (ps->p >= ps->end) return fail(ps, "unterminated container");
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            return 0;
        }
        return fail(ps, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(parser *ps, sj_val *v, int depth)
{
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, depth, 1);
    case '[': return parse_container(ps, v, depth, 0);
    case '"':
        ps->p++;
        v->type = SJ_STR;
        return parse_string(ps, &v->u.s, &v->n);
    case 't':
        if (!match_word(ps, "true")) return fail(ps, "bad literal");
        v->type = SJ_TRUE;
        return 0;
    case 'f':
        if (!match_word(ps, "false")) return fail(ps, "bad literal");
        v->type = SJ_FALSE;
        return 0;
    case 'n':
        if (!match_word(ps, "null")) return fail(ps, "bad literal");
        v->type = SJ_NULL;
        return 0;
    case 'N':
        if (!match_word(ps, "NaN")) return fail(ps, "bad literal");
        v->type = SJ_NUM;
        v->is_int = v->approx = 0;
        v->u.d = NAN;
        return 0;
    default: return parse_number(ps, v);
    }
}

static int parse_all(sv_arena *a, char *text, size_t len, sj_val **out, char *err, size_t errlen,
                     int no_pack)
{
    parser ps = {.a = a,
                 .p = text,
                 .start = text,
                 .end = text + len,
                 .err = err,
                 .errlen = errlen,
                 .no_pack = no_pack};
    *out = NULL;
    sj_val *root = new_val(&ps);
    if (!root || parse_value(&ps, root, 0)) return -1;
    skip_ws(&ps);
    if (ps.p != ps.end) return fail(&ps, "unexpected data after the value");
    *out = root;
    return 0;
}

int sj_parse(sv_arena *a, char *text, size_t len, sj_val **out, char *err, size_t errlen)
{
    return parse_all(a, text, len, out, err, errlen, 0);
}

int sj_parse_unpacked(sv_arena *a, char *text, size_t len, sj_val **out, char *err, size_t errlen)
{
    return parse_all(a, text, len, out, err, errlen, 1);
}

const sj_val *sj_get(const sj_val *obj, const char *key)
{
    if (!obj || obj->type != SJ_OBJ) return NULL;
    size_t n = strlen(key);
    for (const sj_val *m = obj->u.first; m; m = m->next)
        if (m->keylen == n && memcmp(m->key, key, n) == 0) return m;
    return NULL;
}

/* ---- writer -------------------------------------------------------------------------------- */

void sv_buf_reserve(sv_buf *b, size_t extra)
{
    if (b->oom) return;
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

void sv_buf_put(sv_buf *b, const void *s, size_t n)
{
    sv_buf_reserve(b, n);
    if (b->oom) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sv_buf_puts(sv_buf *b, const char *s) { sv_buf_put(b, s, strlen(s)); }

void sv_buf_putc(sv_buf *b, char c)
{
    sv_buf_reserve(b, 1);
    if (b->oom) return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void sv_buf_printf(sv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof(tmp)) {
        sv_buf_put(b, tmp, (size_t)n);
        return;
    }
    sv_buf_reserve(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes are not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void sv_buf_json_str(sv_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    sv_buf_reserve(b, n + 2);
    sv_buf_putc(b, '"');
    size_t run = 0; /* bytes copied verbatim, flushed in one put */
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        size_t ul = c >= 0x80 ? utf8_len(u + i, n - i) : 0;
        if (ul) {
            run += ul;
            i += ul;
            continue;
        }
        sv_buf_put(b, s + i - run, run);
        run = 0;
        switch (c) {
        case '"': sv_buf_puts(b, "\\\""); break;
        case '\\': sv_buf_puts(b, "\\\\"); break;
        case '\n': sv_buf_puts(b, "\\n"); break;
        case '\r': sv_buf_puts(b, "\\r"); break;
        case '\t': sv_buf_puts(b, "\\t"); break;
        default: sv_buf_printf(b, "\\u%04x", c); break;
        }
        i++;
    }
    sv_buf_put(b, s + n - run, run);
    sv_buf_putc(b, '"');
}

void sv_buf_u64(sv_buf *b, uint64_t v)
{
    char tmp[24];
    int i = (int)sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sv_buf_put(b, tmp + i, sizeof(tmp) - (size_t)i);
}

void sv_buf_i64(sv_buf *b, int64_t v)
{
    if (v < 0) {
        sv_buf_putc(b, '-');
        sv_buf_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        sv_buf_u64(b, (uint64_t)v);
    }
}

static int put_special(sv_buf *b, double v)
{
    if (isnan(v))
        sv_buf_puts(b, "NaN");
    else if (isinf(v))
        sv_buf_puts(b, v > 0 ? "Infinity" : "-Infinity");
    else
        return 0;
    return 1;
}

void sv_buf_f32(sv_buf *b, float v)
{
    if (put_special(b, v)) return;
    if (fabsf(v) < 1e7f && v == (float)(int32_t)v) {
        sv_buf_i64(b, (int32_t)v);
        sv_buf_puts(b, ".0");
        return;
    }
    sv_buf_printf(b, "%.9g", (double)v);
}

void sv_buf_f64(sv_buf *b, double v)
{
    if (put_special(b, v)) return;
    if (fabs(v) < 1e15 && v == (double)(int64_t)v) {
        sv_buf_i64(b, (int64_t)v);
        sv_buf_puts(b, ".0");
        return;
    }
    sv_buf_printf(b, "%.17g", v);
}

char *sv_buf_take(sv_buf *b, size_t *len)
{
    if (!b->p) sv_buf_reserve(b, 0);
    char *p = b->p;
    if (len) *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void sv_buf_free(sv_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
