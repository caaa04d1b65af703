/* dtype.c — element type facts (names, sizes, classes) and the half/bfloat16 conversions
 * used wherever a kernel computes float16 data in float32. */
#include <math.h>
#include <string.h>

#include "core/value.h"

const char *ferry_dtype_name(ferry_dtype t)
{
    switch (t) {
    case FERRY_DTYPE_F32: return "float32";
    case FERRY_DTYPE_U8: return "uint8";
    case FERRY_DTYPE_I8: return "int8";
    case FERRY_DTYPE_U16: return "uint16";
    case FERRY_DTYPE_I16: return "int16";
    case FERRY_DTYPE_I32: return "int32";
    case FERRY_DTYPE_I64: return "int64";
    case FERRY_DTYPE_STRING: return "string";
    case FERRY_DTYPE_BOOL: return "bool";
    case FERRY_DTYPE_F16: return "float16";
    case FERRY_DTYPE_F64: return "float64";
    case FERRY_DTYPE_U32: return "uint32";
    case FERRY_DTYPE_U64: return "uint64";
    case FERRY_DTYPE_C64: return "complex64";
    case FERRY_DTYPE_C128: return "complex128";
    case FERRY_DTYPE_BF16: return "bfloat16";
    default: return "undefined";
    }
}

size_t ferry_dtype_size(ferry_dtype t)
{
    switch (t) {
    case FERRY_DTYPE_U8: case FERRY_DTYPE_I8: case FERRY_DTYPE_BOOL: return 1;
    case FERRY_DTYPE_U16: case FERRY_DTYPE_I16: case FERRY_DTYPE_F16: case FERRY_DTYPE_BF16: return 2;
    case FERRY_DTYPE_F32: case FERRY_DTYPE_I32: case FERRY_DTYPE_U32: return 4;
    case FERRY_DTYPE_F64: case FERRY_DTYPE_I64: case FERRY_DTYPE_U64: case FERRY_DTYPE_C64: return 8;
    case FERRY_DTYPE_C128: return 16;
    case FERRY_DTYPE_STRING: return sizeof(char *);
    default: return 0;
    }
}

bool fy_dtype_is_float(ferry_dtype t)
{
    return t == FERRY_DTYPE_F32 || t == FERRY_DTYPE_F64 || t == FERRY_DTYPE_F16 || t == FERRY_DTYPE_BF16;
}

bool fy_dtype_is_int(ferry_dtype t)
{
    switch (t) {
    case FERRY_DTYPE_U8: case FERRY_DTYPE_I8: case FERRY_DTYPE_U16: case FERRY_DTYPE_I16:
    case FERRY_DTYPE_I32: case FERRY_DTYPE_I64: case FERRY_DTYPE_U32: case FERRY_DTYPE_U64:
        return true;
    default: return false;
    }
}

bool fy_dtype_is_signed(ferry_dtype t)
{
    return fy_dtype_is_float(t) || t == FERRY_DTYPE_I8 || t == FERRY_DTYPE_I16 ||
           t == FERRY_DTYPE_I32 || t == FERRY_DTYPE_I64;
}

bool fy_dtype_is_numeric(ferry_dtype t)
{
    return fy_dtype_is_float(t) || fy_dtype_is_int(t) || t == FERRY_DTYPE_BOOL;
}

float fy_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        float f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
    else bits = sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round to nearest even, with overflow to infinity and gradual underflow, as numpy does. */
uint16_t fy_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0);
    if (absx >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520 */
    if (absx < 0x38800000u) {                      /* subnormal half or zero */
        float a;
        memcpy(&a, &absx, 4);
        return sign | (uint16_t)lrintf(a * 16777216.0f); /* a / 2^-24, ties to even */
    }
    uint32_t mant = absx & 0x7fffff, exp = (absx >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13), rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

float fy_bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t fy_float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
