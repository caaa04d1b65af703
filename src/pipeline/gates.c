/* gates.c — the metric table and quality gates: a small parser for "metric OP rhs" expressions
 * (fuzzed, with messages that point at the column) and MLflow's threshold semantics. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "pipeline/validate.h"

const fy_metric_def fy_metric_defs[FY_M_COUNT] = {
#define X(id, name, unit, hib, desc) {name, unit, hib, desc},
    FY_METRICS(X)
#undef X
};

int fy_metric_find(const char *s, size_t len)
{
    for (int i = 0; i < FY_M_COUNT; i++)
        if (strlen(fy_metric_defs[i].name) == len && strncmp(fy_metric_defs[i].name, s, len) == 0)
            return i;
    return -1;
}

int fy_metric_is_comparison(int id)
{
    return id == FY_M_AGREEMENT || id == FY_M_MAX_ABS_DIFF || id == FY_M_MEAN_ABS_DIFF;
}

const char *fy_gate_op_str(fy_gate_op op)
{
    static const char *s[] = {">=", "<=", ">", "<"};
    return s[op];
}

/* Levenshtein distance, for "did you mean" (names are short). */
static int edit_distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

/* The error for expr with a caret under column col (0-based in the blank-free text). */
static ferry_status parse_error(const char *text, size_t col, const char *what)
{
    char caret[200];
    size_t n = col < sizeof caret - 2 ? col : sizeof caret - 2;
    memset(caret, ' ', n);
    caret[n] = '^';
    caret[n + 1] = '\0';
    return fy_error(FERRY_E_INVALID_ARG, "bad gate \"%s\": %s\n    %s\n    %s", text, what, text,
                    caret);
}

/* A finite number at s (no sign handling beyond strtod's); 0 when there is none. */
static int number_at(const char *s, double *v, const char **end)
{
    if (!(isdigit((unsigned char)*s) || *s == '.' || *s == '-' || *s == '+')) return 0;
    char *e;
    errno = 0;
    *v = strtod(s, &e);
    if (e == s || errno == ERANGE || !isfinite(*v)) return 0;
    /* strtod also takes "inf", "nan" and hex; gates only need plain decimals */
    for (const char *c = s; c < e; c++)
        if (!(isdigit((unsigned char)*c) || strchr(".eE+-", *c))) return 0;
    *end = e;
    return 1;
}

ferry_status fy_gate_parse(const char *expr, fy_gate *g)
{
    memset(g, 0, sizeof *g);
    g->candidate = g->baseline = g->threshold = NAN;
    if (!expr) return fy_error(FERRY_E_INVALID_ARG, "bad gate: no expression");
    /* blanks carry no meaning; drop them so "a >= b" and "a>=b" read the same */
    size_t n = 0;
    for (const char *c = expr; *c; c++) {
        if (isspace((unsigned char)*c)) continue;
        if (n + 1 >= sizeof g->text)
            return fy_error(FERRY_E_INVALID_ARG, "bad gate: longer than %zu characters",
                            sizeof g->text - 1);
        if (!isprint((unsigned char)*c))
            return fy_error(FERRY_E_INVALID_ARG,
                            "bad gate: control or non-ASCII character in \"%.40s\"", expr);
        g->text[n++] = *c;
    }
    g->text[n] = '\0';
    const char *t = g->text, *p = t;
    if (!*t)
        return fy_error(FERRY_E_INVALID_ARG,
                        "bad gate: empty expression (write e.g. accuracy>=0.9)");
    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    size_t mlen = (size_t)(p - t);
    if (mlen == 0) return parse_error(t, 0, "expected a metric name such as accuracy");
    g->metric = fy_metric_find(t, mlen);
    if (g->metric < 0) {
        int best = -1, bd = 99;
        for (int i = 0; i < FY_M_COUNT; i++) {
            int d = edit_distance(t, mlen, fy_metric_defs[i].name);
            if (d < bd) bd = d, best = i;
        }
        char names[1024] = "";
        size_t l = 0;
        for (int i = 0; i < FY_M_COUNT; i++)
            l += snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "",
                          fy_metric_defs[i].name);
        char what[1400];
        if (bd <= 3)
            snprintf(what, sizeof what,
                     "unknown metric \"%.*s\" (did you mean \"%s\"?); metrics are: %s", (int)mlen,
                     t, fy_metric_defs[best].name, names);
        else
            snprintf(what, sizeof what, "unknown metric \"%.*s\"; metrics are: %s", (int)mlen, t,
                     names);
        return parse_error(t, 0, what);
    }
    if (p[0] == '>' && p[1] == '=')
        g->op = FY_GATE_GE, p += 2;
    else if (p[0] == '<' && p[1] == '=')
        g->op = FY_GATE_LE, p += 2;
    else if (p[0] == '>')
        g->op = FY_GATE_GT, p += 1;
    else if (p[0] == '<')
        g->op = FY_GATE_LT, p += 1;
    else if (p[0] == '=' && (p[1] == '>' || p[1] == '<'))
        return parse_error(t, (size_t)(p - t),
                           p[1] == '>' ? "write \">=\", not \"=>\"" : "write \"<=\", not \"=<\"");
    else if (p[0] == '=' || p[0] == '!')
        return parse_error(
            t, (size_t)(p - t),
            "only >=, <=, > and < compare (equality of measured numbers is not a useful gate)");
    else
        return parse_error(t, (size_t)(p - t), "expected >=, <=, > or < after the metric name");
    const char *rhs = p;
    double v;
    const char *e;
    if (strncmp(p, "baseline", 8) == 0) {
        if (fy_metric_is_comparison(g->metric))
            return parse_error(t, (size_t)(p - t),
                               "this metric already compares with the baseline; give a number");
        p += 8;
        if (*p == '\0') {
            g->ref = FY_GATE_BASE_ABS;
            g->value = 0;
        } else if (*p == '*') {
            p++;
            if (!number_at(p, &v, &e) || *e != '\0' || v < 0)
                return parse_error(
                    t, (size_t)(p - t),
                    "expected a non-negative factor after \"baseline*\" (e.g. baseline*1.1)");
            g->ref = FY_GATE_BASE_REL;
            g->value = v;
            p = e;
        } else if (*p == '+' || *p == '-') {
            double sign = *p == '-' ? -1 : 1;
            p++;
            if (*p == '+' || *p == '-' || !number_at(p, &v, &e))
                return parse_error(
                    t, (size_t)(p - t),
                    "expected a number after the sign (e.g. baseline-0.005 or baseline+10%)");
            if (*e == '%' && e[1] == '\0') {
                g->ref = FY_GATE_BASE_REL;
                g->value = 1 + sign * v / 100;
                if (g->value < 0)
                    return parse_error(t, (size_t)(p - t),
                                       "a relative change below -100% makes no sense");
            } else if (*e == '\0') {
                g->ref = FY_GATE_BASE_ABS;
                g->value = sign * v;
            } else {
                return parse_error(t, (size_t)(e - t), "unexpected text after the number");
            }
            p = e;
        } else {
            return parse_error(t, (size_t)(p - t),
                               "expected +, -, * or the end after \"baseline\"");
        }
    } else if (number_at(p, &v, &e)) {
        if (*e == '*' && strcmp(e + 1, "baseline") == 0) { /* 1.1*baseline */
            if (fy_metric_is_comparison(g->metric))
                return parse_error(t, (size_t)(e + 1 - t),
                                   "this metric already compares with the baseline; give a number");
            if (v < 0) return parse_error(t, (size_t)(p - t), "the factor must not be negative");
            g->ref = FY_GATE_BASE_REL;
        } else if (*e == '%') {
            return parse_error(t, (size_t)(e - t),
                               "percentages are relative to the baseline: write baseline+N% (or a "
                               "plain fraction such as 0.88)");
        } else if (*e != '\0') {
            return parse_error(t, (size_t)(e - t), "unexpected text after the number");
        } else {
            g->ref = FY_GATE_CONST;
        }
        g->value = v;
    } else {
        return parse_error(
            t, (size_t)(rhs - t),
            "expected a number or \"baseline\" (e.g. 0.88, baseline-0.005, baseline*1.1)");
    }
    return FERRY_OK;
}

ferry_status ferry_gate_check(const char *expr)
{
    fy_gate g;
    return fy_gate_parse(expr, &g);
}

static int compare(double a, fy_gate_op op, double b)
{
    switch (op) {
    case FY_GATE_GE: return a >= b;
    case FY_GATE_LE: return a <= b;
    case FY_GATE_GT: return a > b;
    case FY_GATE_LT: return a < b;
    }
    return 0;
}

void fy_gate_eval(fy_gate *g, const fy_model_eval *cand, const fy_model_eval *base)
{
    const char *name = fy_metric_defs[g->metric].name;
    char cb[32], bb[32], tb[32];
    g->passed = 0;
    g->candidate = g->baseline = g->threshold = NAN;
    if (!cand->has[g->metric]) {
        snprintf(g->reason, sizeof g->reason, "%s is missing: this run did not compute it%s", name,
                 fy_metric_is_comparison(g->metric) && !base ? " (it needs --baseline)" : "");
        return;
    }
    g->candidate = cand->v[g->metric];
    if (g->ref == FY_GATE_CONST) {
        g->threshold = g->value;
    } else {
        if (!base) {
            snprintf(g->reason, sizeof g->reason,
                     "no baseline to compare %s with (give --baseline)", name);
            return;
        }
        if (!base->has[g->metric]) {
            snprintf(g->reason, sizeof g->reason, "%s is missing from the baseline", name);
            return;
        }
        g->baseline = base->v[g->metric];
        if (g->ref == FY_GATE_BASE_ABS) {
            g->threshold = g->baseline + g->value;
        } else if (g->baseline == 0 && g->value != 0) {
            /* MLflow: a relative change from zero is undefined, so the candidate must beat the
             * baseline by a hair in the gate's direction */
            int up = g->op == FY_GATE_GE || g->op == FY_GATE_GT;
            g->threshold = up ? 1e-10 : -1e-10;
        } else {
            g->threshold = g->baseline * g->value;
        }
    }
    fy_metric_fmt(g->metric, g->candidate, cb, sizeof cb);
    fy_metric_fmt(g->metric, g->threshold, tb, sizeof tb);
    fy_metric_fmt(g->metric, g->baseline, bb, sizeof bb);
    g->passed = compare(g->candidate, g->op, g->threshold);
    static const char *neg[] = {"<", ">", "<=", ">="};
    const char *rel = g->passed ? fy_gate_op_str(g->op) : neg[g->op];
    switch (g->ref) {
    case FY_GATE_CONST:
        snprintf(g->reason, sizeof g->reason, "%s %s %s %s", name, cb, rel, tb);
        break;
    case FY_GATE_BASE_ABS:
        snprintf(g->reason, sizeof g->reason, "%s %s %s %s (baseline %s %s %g)", name, cb, rel, tb,
                 bb, g->value < 0 ? "-" : "+", fabs(g->value));
        break;
    case FY_GATE_BASE_REL:
        snprintf(g->reason, sizeof g->reason, "%s %s %s %s (baseline %s x %g)", name, cb, rel, tb,
                 bb, g->value);
        break;
    }
}

const char *fy_metric_fmt(int id, double v, char *buf, size_t size)
{
    if (isnan(v))
        snprintf(buf, size, "–");
    else if (id == FY_M_THROUGHPUT)
        snprintf(buf, size, "%.0f", v);
    /* fixed decimals read best in a column, but tiny models would print as 0.000 */
    else if (id >= FY_M_LATENCY_P50 && id <= FY_M_LATENCY_MEAN)
        snprintf(buf, size, fabs(v) >= 0.01 || v == 0 ? "%.3f" : "%.2g", v);
    else if (id == FY_M_SIZE || id == FY_M_PEAK_RSS)
        snprintf(buf, size, fabs(v) >= 0.01 || v == 0 ? "%.2f" : "%.2g", v);
    else if (fabs(v) >= 1000)
        snprintf(buf, size, "%.1f", v);
    else
        snprintf(buf, size, "%.4f", v);
    return buf;
}
