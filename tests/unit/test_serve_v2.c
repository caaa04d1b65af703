/* test_serve_v2.c — ferry serve's request decoding and answer encoding (codec.h, json.h):
 * numbers parse exactly like strtod, nested and flat data, every datatype, the binary tensor
 * extension, TF Serving row and columnar bodies, and the 400s for each kind of bad request. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "serve/codec.h"

static const int64_t dims_x[] = {-1, 3}, dims_1[] = {-1};
static ferry_io_info ins[] = {
    {.name = "x", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_F32, .rank = 2, .dims = dims_x},
    {.name = "ids",
     .kind = FERRY_VALUE_TENSOR,
     .dtype = FERRY_DTYPE_I64,
     .rank = 1,
     .dims = dims_1,
     .optional = 1},
    {.name = "s",
     .kind = FERRY_VALUE_TENSOR,
     .dtype = FERRY_DTYPE_STRING,
     .rank = 1,
     .dims = dims_1,
     .optional = 1},
    {.name = "h",
     .kind = FERRY_VALUE_TENSOR,
     .dtype = FERRY_DTYPE_F16,
     .rank = 1,
     .dims = dims_1,
     .optional = 1},
    {.name = "b",
     .kind = FERRY_VALUE_TENSOR,
     .dtype = FERRY_DTYPE_BOOL,
     .rank = 1,
     .dims = dims_1,
     .optional = 1},
};
static ferry_io_info outs[] = {
    {.name = "y", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_F32, .rank = 2, .dims = dims_x},
};
static const sv_sig sig = {5, 1, ins, outs};

/* Decodes a v2 body given as a string literal (copied, since parsing works in place). */
static int v2(const char *text, sv_arena *a, sv_decoded *d, char *err)
{
    size_t n = strlen(text);
    char *body = sv_arena_alloc(a, n + 1);
    memcpy(body, text, n + 1);
    return sv_v2_decode(a, body, n, -1, &sig, d, err, 512);
}

static void test_numbers_match_strtod(void **state)
{
    (void)state;
    const char *cases[] = {"0",
                           "-0",
                           "1",
                           "0.1",
                           "0.5372549295425415",
                           "1e-7",
                           "3.4028234663852886e38",
                           "123456789012345678901234567890",
                           "2.2250738585072014e-308",
                           "-1.5E+3",
                           "0.30000000000000004",
                           "9007199254740993",
                           "1e400",
                           "4.9e-324",
                           "0.0117647061124444008"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sv_arena a = {0};
        char buf[64], err[128];
        snprintf(buf, sizeof(buf), "%s", cases[i]);
        sj_val *v;
        assert_int_equal(sj_parse(&a, buf, strlen(buf), &v, err, sizeof(err)), 0);
        assert_int_equal(v->type, SJ_NUM);
        double want = strtod(cases[i], NULL);
        assert_true(sj_exact(v) == want);
        /* The fast value is within an ulp, so converting it to float is exact in practice. */
        assert_true((float)v->u.d == (float)want);
        sv_arena_free(&a);
    }
    /* Random doubles printed with 17 digits round-trip exactly. */
    srand(7);
    for (int i = 0; i < 20000; i++) {
        double x = ((double)rand() / RAND_MAX - 0.5) * pow(10, rand() % 40 - 20);
        char buf[64], err[128];
        snprintf(buf, sizeof(buf), "%.17g", x);
        sv_arena a = {0};
        sj_val *v;
        assert_int_equal(sj_parse(&a, buf, strlen(buf), &v, err, sizeof(err)), 0);
        assert_true(sj_exact(v) == x);
        snprintf(buf, sizeof(buf), "%.9g", (float)x);
        sv_arena_free(&a);
        assert_int_equal(sj_parse(&a, buf, strlen(buf), &v, err, sizeof(err)), 0);
        assert_true((float)v->u.d == (float)x);
        sv_arena_free(&a);
    }
}

static void test_malformed_json(void **state)
{
    (void)state;
    const char *bad[] = {"",          "{",   "[1,]",    "{\"a\":}",    "01",
                         "1.",        "-",   "\"\\x\"", "\"abc",       "[1 2]",
                         "{\"a\" 1}", "tru", "[1]x",    "\"\\ud800\"", "{\"a\":1,}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sv_arena a = {0};
        char buf[64], err[128] = "";
        snprintf(buf, sizeof(buf), "%s", bad[i]);
        sj_val *v;
        assert_int_equal(sj_parse(&a, buf, strlen(buf), &v, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "malformed JSON"));
        sv_arena_free(&a);
    }
    /* Deep nesting is refused, not a stack overflow. */
    char deep[200];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    sv_arena a = {0};
    sj_val *v;
    char err[128];
    assert_int_equal(sj_parse(&a, deep, strlen(deep), &v, err, sizeof(err)), -1);
    sv_arena_free(&a);
}

static void test_strings_unescape(void **state)
{
    (void)state;
    char buf[] = "{\"k\\n\":\"a\\\"b\\u00e9\\ud83d\\ude00\"}";
    sv_arena a = {0};
    sj_val *v;
    char err[128];
    assert_int_equal(sj_parse(&a, buf, strlen(buf), &v, err, sizeof(err)), 0);
    const sj_val *s = sj_get(v, "k\n");
    assert_non_null(s);
    assert_string_equal(s->u.s, "a\"b\xc3\xa9\xf0\x9f\x98\x80");
    sv_buf out = {0};
    sv_buf_json_str(&out, "a\"\x01\xff", 4);
    assert_string_equal(out.p, "\"a\\\"\\u0001\\u00ff\"");
    sv_buf_free(&out);
    sv_arena_free(&a);
}

static void test_v2_flat_nested_and_types(void **state)
{
    (void)state;
    sv_arena a = {0};
    sv_decoded d;
    char err[512];
    int rc =
        v2("{\"id\":\"r1\",\"inputs\":["
           "{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[[1,2,3],[4,5.5,-6e1]]},"
           "{\"name\":\"ids\",\"shape\":[2],\"datatype\":\"INT64\",\"data\":[9007199254740993,-2]},"
           "{\"name\":\"s\",\"shape\":[2],\"datatype\":\"BYTES\",\"data\":[\"hi\",\"\"]},"
           "{\"name\":\"h\",\"shape\":[1],\"datatype\":\"FP16\",\"data\":[0.5]},"
           "{\"name\":\"b\",\"shape\":[2],\"datatype\":\"BOOL\",\"data\":[true,false]}]}",
           &a, &d, err);
    assert_int_equal(rc, 0);
    assert_int_equal(d.n_inputs, 5);
    assert_string_equal(d.id, "r1");
    const float *x = ferry_tensor_cdata(d.inputs[0]);
    assert_true(x[4] == 5.5f && x[5] == -60.0f);
    assert_true(((const int64_t *)ferry_tensor_cdata(d.inputs[1]))[0] == 9007199254740993LL);
    assert_string_equal(((char *const *)ferry_tensor_cdata(d.inputs[2]))[0], "hi");
    assert_int_equal(((const uint16_t *)ferry_tensor_cdata(d.inputs[3]))[0], 0x3800);
    assert_int_equal(((const uint8_t *)ferry_tensor_cdata(d.inputs[4]))[0], 1);

    /* Encode x back: JSON floats, shape, id. */
    sv_buf out = {0};
    int64_t json_len;
    const char *names[] = {"y"};
    sv_v2_encode(&out, "m", 3, &d, 1, names, d.inputs, &json_len);
    assert_int_equal(json_len, -1);
    assert_string_equal(out.p,
                        "{\"model_name\":\"m\",\"model_version\":\"3\",\"id\":\"r1\",\"outputs\":"
                        "[{\"name\":\"y\",\"datatype\":\"FP32\",\"shape\":[2,3],\"data\":"
                        "[1.0,2.0,3.0,4.0,5.5,-60.0]}]}");
    sv_buf_free(&out);
    sv_decoded_clear(&d);
    sv_arena_free(&a);
}

static void expect_400(const char *body, const char *fragment)
{
    sv_arena a = {0};
    sv_decoded d;
    char err[512] = "";
    assert_int_equal(v2(body, &a, &d, err), 400);
    if (!strstr(err, fragment)) fail_msg("error \"%s\" lacks \"%s\"", err, fragment);
    sv_decoded_clear(&d);
    sv_arena_free(&a);
}

static void test_v2_errors(void **state)
{
    (void)state;
    expect_400("{\"inputs\":[", "malformed JSON");
    expect_400("[]", "JSON object");
    expect_400("{\"inputs\":[]}", "non-empty");
    expect_400(
        "{\"inputs\":[{\"name\":\"q\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}",
        "unknown input 'q'");
    expect_400(
        "{\"inputs\":[{\"name\":\"ids\",\"shape\":[1],\"datatype\":\"INT64\",\"data\":[1]}]}",
        "missing input 'x'");
    expect_400(
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP64\",\"data\":[1,2,3]}]}",
        "datatype FP64, the model expects FP32");
    expect_400(
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}",
        "dim 1 is 4");
    expect_400(
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}",
        "has 1 dims");
    expect_400(
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}",
        "data has 3 elements, the shape holds 6");
    expect_400(
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}]}",
        "more data than the shape");
    expect_400("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,"
               "\"a\",3]}]}",
               "expected a number");
    expect_400(
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]},"
        "{\"name\":\"ids\",\"shape\":[1],\"datatype\":\"INT64\",\"data\":[1.5]}]}",
        "expected an integer");
    expect_400(
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]}],"
        "\"outputs\":[{\"name\":\"z\"}]}",
        "unknown output 'z'");
    expect_400(
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]},"
        "{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}",
        "twice");
    expect_400(
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]}],"
        "\"parameters\":{\"timeout\":-5}}",
        "timeout");
    expect_400("{\"inputs\":[{\"name\":\"x\",\"shape\":[1000000000,3],\"datatype\":\"FP32\","
               "\"data\":[1]}]}",
               "more than the body");
}

static void test_v2_binary(void **state)
{
    (void)state;
    const char *hdr = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\","
                      "\"parameters\":{\"binary_data_size\":12}},{\"name\":\"s\",\"shape\":[2],"
                      "\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":11}}],"
                      "\"outputs\":[{\"name\":\"y\",\"parameters\":{\"binary_data\":true}}]}";
    size_t hl = strlen(hdr);
    char body[512];
    memcpy(body, hdr, hl);
    float f[3] = {1.5f, -2, 3};
    memcpy(body + hl, f, 12);
    memcpy(body + hl + 12, "\x02\0\0\0hi\x01\0\0\0!", 11);
    sv_arena a = {0};
    sv_decoded d;
    char err[512];
    assert_int_equal(sv_v2_decode(&a, body, hl + 23, (int64_t)hl, &sig, &d, err, sizeof(err)), 0);
    assert_true(((const float *)ferry_tensor_cdata(d.inputs[0]))[0] == 1.5f);
    assert_string_equal(((char *const *)ferry_tensor_cdata(d.inputs[1]))[1], "!");
    assert_int_equal(d.n_outputs, 1);
    assert_int_equal(d.output_binary[0], 1);
    sv_buf out = {0};
    int64_t json_len;
    const char *names[] = {"y"};
    sv_v2_encode(&out, "m", 1, &d, 1, names, d.inputs, &json_len);
    assert_true(json_len > 0);
    assert_non_null(strstr(out.p, "\"binary_data_size\":12"));
    assert_int_equal(out.len, (size_t)json_len + 12);
    assert_memory_equal(out.p + json_len, f, 12);
    sv_buf_free(&out);
    sv_decoded_clear(&d);
    sv_arena_free(&a);

    /* Sizes that do not add up are 400s. */
    memcpy(body, hdr, hl);
    assert_int_equal(sv_v2_decode(&a, body, hl + 20, (int64_t)hl, &sig, &d, err, sizeof(err)), 400);
    sv_decoded_clear(&d);
    sv_arena_free(&a);
    memcpy(body, hdr, hl);
    assert_int_equal(sv_v2_decode(&a, body, hl + 23, (int64_t)hl + 100, &sig, &d, err, sizeof(err)),
                     400);
    sv_decoded_clear(&d);
    sv_arena_free(&a);
}

static void test_v2_raw_binary(void **state)
{
    (void)state;
    const ferry_io_info one_in[] = {ins[0]};
    const sv_sig s1 = {1, 1, (ferry_io_info *)one_in, outs};
    float f[3] = {1, 2, 3};
    char body[12];
    memcpy(body, f, 12);
    sv_arena a = {0};
    sv_decoded d;
    char err[512];
    assert_int_equal(sv_v2_decode(&a, body, 12, 0, &s1, &d, err, sizeof(err)), 0);
    assert_int_equal(ferry_tensor_rank(d.inputs[0]), 2);
    assert_int_equal(ferry_tensor_dims(d.inputs[0])[0], 1);
    assert_int_equal(d.binary_default, 1);
    sv_decoded_clear(&d);
    sv_arena_free(&a);
    assert_int_equal(sv_v2_decode(&a, body, 8, 0, &s1, &d, err, sizeof(err)), 400);
    assert_non_null(strstr(err, "needs 12"));
    sv_decoded_clear(&d);
    sv_arena_free(&a);
    assert_int_equal(sv_v2_decode(&a, body, 12, 0, &sig, &d, err, sizeof(err)), 400);
    sv_decoded_clear(&d);
    sv_arena_free(&a);
}

static void test_tfs(void **state)
{
    (void)state;
    const ferry_io_info one_in[] = {ins[0]};
    const sv_sig s1 = {1, 1, (ferry_io_info *)one_in, outs};
    sv_arena a = {0};
    sv_decoded d;
    char err[512];
    char row[] = "{\"instances\":[[1,2,3],[4,5,6]]}";
    assert_int_equal(sv_tfs_decode(&a, row, strlen(row), &s1, &d, err, sizeof(err)), 0);
    assert_int_equal(ferry_tensor_dims(d.inputs[0])[0], 2);
    sv_buf out = {0};
    const char *names[] = {"y"};
    sv_tfs_encode(&out, &d, 1, names, d.inputs);
    assert_string_equal(out.p, "{\"predictions\":[[1.0,2.0,3.0],[4.0,5.0,6.0]]}");
    sv_buf_free(&out);
    sv_decoded_clear(&d);
    sv_arena_free(&a);

    char named[] = "{\"instances\":[{\"x\":[1,2,3],\"ids\":7},{\"x\":[4,5,6],\"ids\":8}]}";
    assert_int_equal(sv_tfs_decode(&a, named, strlen(named), &sig, &d, err, sizeof(err)), 0);
    assert_int_equal(d.n_inputs, 2);
    assert_true(((const int64_t *)ferry_tensor_cdata(d.inputs[1]))[1] == 8);
    const char *two[] = {"y", "ids"};
    sv_tfs_encode(&out, &d, 2, two, d.inputs);
    assert_string_equal(
        out.p,
        "{\"predictions\":[{\"y\":[1.0,2.0,3.0],\"ids\":7},{\"y\":[4.0,5.0,6.0],\"ids\":8}]}");
    sv_buf_free(&out);
    sv_decoded_clear(&d);
    sv_arena_free(&a);

    char cols[] = "{\"inputs\":{\"x\":[[1,2,3]],\"s\":[{\"b64\":\"aGk=\"}]}}";
    assert_int_equal(sv_tfs_decode(&a, cols, strlen(cols), &sig, &d, err, sizeof(err)), 0);
    assert_string_equal(((char *const *)ferry_tensor_cdata(d.inputs[1]))[0], "hi");
    const char *two_b[] = {"y", "s_bytes"};
    sv_tfs_encode(&out, &d, 2, two_b, d.inputs);
    assert_string_equal(out.p,
                        "{\"outputs\":{\"y\":[[1.0,2.0,3.0]],\"s_bytes\":[{\"b64\":\"aGk=\"}]}}");
    sv_buf_free(&out);
    sv_decoded_clear(&d);
    sv_arena_free(&a);

    const char *bad[] = {"{\"instances\":[[1,2,3],[4,5]]}",
                         "{\"instances\":[[1,2,3]],\"inputs\":[[1,2,3]]}",
                         "{}",
                         "{\"instances\":[[1,2]]}",
                         "{\"instances\":[{\"q\":1}]}",
                         "{\"inputs\":{\"x\":[[1,2,3]],\"x\":[[1,2,3]]}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "%s", bad[i]);
        err[0] = '\0';
        assert_int_equal(
            sv_tfs_decode(&a, buf, strlen(buf), i < 4 ? &s1 : &sig, &d, err, sizeof(err)), 400);
        assert_true(err[0] != '\0');
        sv_decoded_clear(&d);
        sv_arena_free(&a);
    }
}

/* Long numeric arrays take the packed path; exact integers and doubles must survive it. */
static void test_packed_arrays(void **state)
{
    (void)state;
    const int64_t dl[] = {-1};
    ferry_io_info io[] = {
        {.name = "f", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_F64, .rank = 1, .dims = dl},
        {.name = "i", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_I64, .rank = 1, .dims = dl},
        {.name = "u", .kind = FERRY_VALUE_TENSOR, .dtype = FERRY_DTYPE_U8, .rank = 1, .dims = dl},
    };
    const sv_sig s3 = {3, 1, io, outs};
    sv_buf body = {0};
    sv_buf_puts(&body,
                "{\"inputs\":[{\"name\":\"f\",\"shape\":[40],\"datatype\":\"FP64\",\"data\":[");
    for (int k = 0; k < 40; k++)
        sv_buf_printf(&body, "%s%.17g", k ? "," : "", 0.1 * k + 1e-9);
    sv_buf_puts(&body, "]},{\"name\":\"i\",\"shape\":[40],\"datatype\":\"INT64\",\"data\":[");
    for (int k = 0; k < 40; k++)
        sv_buf_printf(&body, "%s%lld", k ? "," : "", 9007199254740993LL + k);
    sv_buf_puts(&body, "]},{\"name\":\"u\",\"shape\":[40],\"datatype\":\"UINT8\",\"data\":[");
    for (int k = 0; k < 40; k++)
        sv_buf_printf(&body, "%s%d", k ? "," : "", k * 6);
    sv_buf_puts(&body, "]}]}");
    sv_arena a = {0};
    sv_decoded d;
    char err[512];
    assert_int_equal(sv_v2_decode(&a, body.p, body.len, -1, &s3, &d, err, sizeof(err)), 0);
    for (int k = 0; k < 40; k++) {
        char t[64];
        snprintf(t, sizeof(t), "%.17g", 0.1 * k + 1e-9);
        assert_true(((const double *)ferry_tensor_cdata(d.inputs[0]))[k] == strtod(t, NULL));
        assert_true(((const int64_t *)ferry_tensor_cdata(d.inputs[1]))[k] ==
                    9007199254740993LL + k);
        assert_int_equal(((const uint8_t *)ferry_tensor_cdata(d.inputs[2]))[k], k * 6);
    }
    sv_decoded_clear(&d);
    sv_arena_free(&a);
    sv_buf_free(&body);

    /* Out of range in a packed array is still a 400. */
    sv_buf_puts(&body,
                "{\"inputs\":[{\"name\":\"u\",\"shape\":[40],\"datatype\":\"UINT8\",\"data\":[");
    for (int k = 0; k < 40; k++)
        sv_buf_printf(&body, "%s%d", k ? "," : "", k * 7);
    sv_buf_puts(&body, "]},{\"name\":\"f\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]},"
                       "{\"name\":\"i\",\"shape\":[1],\"datatype\":\"INT64\",\"data\":[1]}]}");
    assert_int_equal(sv_v2_decode(&a, body.p, body.len, -1, &s3, &d, err, sizeof(err)), 400);
    assert_non_null(strstr(err, "out of range"));
    sv_decoded_clear(&d);
    sv_arena_free(&a);
    sv_buf_free(&body);

    /* TF Serving rows of 40 numbers: shapes come from packed arrays too; a mixed array is not
     * packed and still parses. */
    const int64_t d40[] = {-1, 40};
    ferry_io_info io40[] = {{.name = "x",
                             .kind = FERRY_VALUE_TENSOR,
                             .dtype = FERRY_DTYPE_F32,
                             .rank = 2,
                             .dims = d40}};
    const sv_sig s40 = {1, 1, io40, outs};
    sv_buf_puts(&body, "{\"instances\":[[");
    for (int k = 0; k < 40; k++)
        sv_buf_printf(&body, "%s%d", k ? "," : "", k);
    sv_buf_puts(&body, "],[");
    for (int k = 0; k < 40; k++)
        sv_buf_printf(&body, "%s%d", k ? "," : "", -k);
    sv_buf_puts(&body, "]]}");
    assert_int_equal(sv_tfs_decode(&a, body.p, body.len, &s40, &d, err, sizeof(err)), 0);
    assert_int_equal(ferry_tensor_dims(d.inputs[0])[0], 2);
    assert_true(((const float *)ferry_tensor_cdata(d.inputs[0]))[79] == -39.0f);
    sv_decoded_clear(&d);
    sv_arena_free(&a);
    sv_buf_free(&body);
    char flat[400] = "{\"instances\":[";
    for (int k = 0; k < 40; k++)
        snprintf(flat + strlen(flat), sizeof(flat) - strlen(flat), "%s%d", k ? "," : "", k);
    strcat(flat, "]}");
    assert_int_equal(sv_tfs_decode(&a, flat, strlen(flat), &s40, &d, err, sizeof(err)), 400);
    sv_decoded_clear(&d);
    sv_arena_free(&a);
    char mixed[] = "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,"
                   "30,31,32,\"x\"]";
    sj_val *v;
    assert_int_equal(sj_parse(&a, mixed, strlen(mixed), &v, err, sizeof(err)), 0);
    assert_int_equal(v->n, 33);
    assert_int_equal(v->packed, 0);
    sv_arena_free(&a);
}

static void test_half_floats(void **state)
{
    (void)state;
    float vals[] = {0, 1, -2, 0.5f, 65504, 1e-5f, 6.1e-5f, 3.14159f};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        float back = sv_f16_to_f32(sv_f32_to_f16(vals[i]));
        assert_true(fabsf(back - vals[i]) <= fabsf(vals[i]) * 1e-3f + 1e-7f);
        float bb = sv_bf16_to_f32(sv_f32_to_bf16(vals[i]));
        assert_true(fabsf(bb - vals[i]) <= fabsf(vals[i]) * 1e-2f);
    }
    assert_int_equal(sv_f32_to_f16(1e9f), 0x7C00);
    assert_int_equal(sv_v2_dtype_parse("BYTES"), FERRY_DTYPE_STRING);
    assert_string_equal(sv_v2_dtype_name(FERRY_DTYPE_F16), "FP16");
    assert_int_equal(sv_v2_dtype_parse("FLOAT"), FERRY_DTYPE_UNDEFINED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_match_strtod),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_strings_unescape),
        cmocka_unit_test(test_v2_flat_nested_and_types),
        cmocka_unit_test(test_v2_errors),
        cmocka_unit_test(test_v2_binary),
        cmocka_unit_test(test_tfs),
        cmocka_unit_test(test_half_floats),
        cmocka_unit_test(test_packed_arrays),
        cmocka_unit_test(test_v2_raw_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
