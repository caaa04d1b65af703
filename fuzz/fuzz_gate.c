/* fuzz_gate.c — libFuzzer driver for ferry validate's gate expressions: any text must parse or fail
 * with a message, and a parsed gate must evaluate against any metric values without trouble.
 * Run: see docs/validate.md (fuzzing). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char expr[512];
    size_t n = size < sizeof expr - 1 ? size : sizeof expr - 1;
    memcpy(expr, data, n);
    expr[n] = '\0';
    fy_gate g;
    if (fy_gate_parse(expr, &g) != FERRY_OK) return 0;
    /* evaluate against a candidate and a baseline built from the input's bytes */
    fy_model_eval cand, base;
    memset(&cand, 0, sizeof cand);
    memset(&base, 0, sizeof base);
    for (int i = 0; i < FY_M_COUNT; i++) {
        uint8_t b = size ? data[(size_t)i % size] : 0;
        cand.has[i] = b & 1;
        base.has[i] = (b >> 1) & 1;
        cand.v[i] = (b >> 2) == 63 ? NAN : (b >> 2) / 8.0;
        base.v[i] = (b & 0x20) ? 0 : b / 16.0;
    }
    fy_gate_eval(&g, &cand, (size & 1) ? &base : NULL);
    return 0;
}
