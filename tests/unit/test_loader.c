/* test_loader.c — the ONNX loader turns every malformed model into an error that names the
 * culprit: truncation, garbage, dangling names, cycles, duplicate outputs, unknown ops, opsets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/ferry.h"
#include "model_builder.h"

static const int64_t vec4[] = {4};

static ferry_status load(mb_model *mb, ferry_model **out)
{
    size_t len;
    uint8_t *bytes = mb_pack(mb, &len);
    ferry_status rc = ferry_model_load_memory(bytes, len, NULL, out);
    free(bytes);
    mb_free(mb);
    return rc;
}

static void expect_error(mb_model *mb, ferry_status want, const char *fragment)
{
    ferry_model *m = NULL;
    ferry_status rc = load(mb, &m);
    assert_int_equal(rc, want);
    assert_null(m);
    if (!strstr(ferry_last_error(), fragment))
        fail_msg("error \"%s\" does not mention \"%s\"", ferry_last_error(), fragment);
}

static void loads_valid_model(void **state)
{
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 1, vec4);
    mb_node(mb, "Identity", "copy", "x", "y");
    mb_output(mb, "y");
    ferry_model *m;
    assert_int_equal(load(mb, &m), FERRY_OK);
    assert_int_equal(ferry_model_input_count(m), 1);
    ferry_io_info io;
    assert_int_equal(ferry_model_input(m, 0, &io), FERRY_OK);
    assert_string_equal(io.name, "x");
    assert_int_equal(io.dtype, FERRY_DTYPE_F32);
    assert_int_equal(io.rank, 1);
    assert_int_equal(io.dims[0], 4);
    ferry_model_free(m);
}

static void rejects_garbage_and_truncation(void **state)
{
    ferry_model *m = NULL;
    const char junk[] = "this is not a protobuf at all \xff\xff\xff\xff";
    assert_int_equal(ferry_model_load_memory(junk, sizeof junk, NULL, &m), FERRY_E_PARSE);
    assert_null(m);

    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 1, vec4);
    mb_node(mb, "Identity", "copy", "x", "y");
    mb_output(mb, "y");
    size_t len;
    uint8_t *bytes = mb_pack(mb, &len);
    mb_free(mb);
    /* every truncation either fails cleanly or (at message boundaries) loads a valid prefix */
    for (size_t cut = 0; cut < len; cut++) {
        ferry_status rc = ferry_model_load_memory(bytes, cut, NULL, &m);
        if (rc == FERRY_OK) ferry_model_free(m);
        else assert_null(m);
    }
    free(bytes);
}

static void names_dangling_input(void **state)
{
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 1, vec4);
    mb_node(mb, "Identity", "lonely", "nowhere", "y");
    mb_output(mb, "y");
    expect_error(mb, FERRY_E_PARSE, "node \"lonely\" (Identity): input 0 \"nowhere\"");
}

static void detects_cycles(void **state)
{
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 1, vec4);
    mb_node(mb, "Identity", "a", "b_out", "a_out");
    mb_node(mb, "Identity", "b", "a_out", "b_out");
    mb_output(mb, "a_out");
    expect_error(mb, FERRY_E_PARSE, "cycle");
}

static void rejects_duplicate_outputs(void **state)
{
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 1, vec4);
    mb_node(mb, "Identity", "first", "x", "y");
    mb_node(mb, "Identity", "second", "x", "y");
    mb_output(mb, "y");
    expect_error(mb, FERRY_E_PARSE, "already defined");
}

static void lists_every_unsupported_op(void **state)
{
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 1, vec4);
    mb_node(mb, "FancyOp", "f1", "x", "a");
    mb_node(mb, "OtherOp", "f2", "a", "y");
    mb_output(mb, "y");
    expect_error(mb, FERRY_E_UNSUPPORTED, "FancyOp (node \"f1\"");
    assert_non_null(strstr(ferry_last_error(), "OtherOp (node \"f2\""));
}

static void rejects_future_opset(void **state)
{
    mb_model *mb = mb_new(99);
    mb_input(mb, "x", 1, 1, vec4);
    mb_node(mb, "Identity", "copy", "x", "y");
    mb_output(mb, "y");
    expect_error(mb, FERRY_E_UNSUPPORTED, "opset 99");
}

static void rejects_unknown_graph_output(void **state)
{
    mb_model *mb = mb_new(13);
    mb_input(mb, "x", 1, 1, vec4);
    mb_node(mb, "Identity", "copy", "x", "y");
    mb_output(mb, "ghost");
    expect_error(mb, FERRY_E_PARSE, "\"ghost\"");
}

static void missing_file_is_io_error(void **state)
{
    ferry_model *m = NULL;
    assert_int_equal(ferry_model_load("/nonexistent/model.onnx", &m), FERRY_E_IO);
    assert_non_null(strstr(ferry_last_error(), "/nonexistent/model.onnx"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_valid_model),
        cmocka_unit_test(rejects_garbage_and_truncation),
        cmocka_unit_test(names_dangling_input),
        cmocka_unit_test(detects_cycles),
        cmocka_unit_test(rejects_duplicate_outputs),
        cmocka_unit_test(lists_every_unsupported_op),
        cmocka_unit_test(rejects_future_opset),
        cmocka_unit_test(rejects_unknown_graph_output),
        cmocka_unit_test(missing_file_is_io_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
