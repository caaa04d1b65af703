/* test_gates.c — gate expressions (parse results and error messages) and MLflow's threshold
 * semantics (absolute, change vs baseline, relative change, zero baseline, missing metrics),
 * plus the metric helpers (percentiles, the softmax rule). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline/validate.h"

static void parses_the_three_kinds(void **state)
{
    fy_gate g;
    assert_int_equal(fy_gate_parse("accuracy>=0.88", &g), FERRY_OK);
    assert_true(g.metric == FY_M_ACCURACY && g.op == FY_GATE_GE && g.ref == FY_GATE_CONST &&
                g.value == 0.88);
    assert_int_equal(fy_gate_parse(" f1_macro >= baseline - 0.005 ", &g), FERRY_OK);
    assert_string_equal(g.text, "f1_macro>=baseline-0.005");
    assert_true(g.ref == FY_GATE_BASE_ABS && g.value == -0.005);
    assert_int_equal(fy_gate_parse("latency_p95_ms<=baseline*1.1", &g), FERRY_OK);
    assert_true(g.op == FY_GATE_LE && g.ref == FY_GATE_BASE_REL && g.value == 1.1);
    assert_int_equal(fy_gate_parse("latency_p95_ms<=baseline+10%", &g), FERRY_OK);
    assert_true(g.ref == FY_GATE_BASE_REL && fabs(g.value - 1.1) < 1e-15);
    assert_int_equal(fy_gate_parse("accuracy>baseline", &g), FERRY_OK);
    assert_true(g.op == FY_GATE_GT && g.ref == FY_GATE_BASE_ABS && g.value == 0);
    assert_int_equal(fy_gate_parse("size_mb<1.5e1", &g), FERRY_OK);
    assert_true(g.op == FY_GATE_LT && g.value == 15);
    assert_int_equal(fy_gate_parse("throughput_per_s>=0.9*baseline", &g), FERRY_OK);
    assert_true(g.ref == FY_GATE_BASE_REL && g.value == 0.9);
}

static void explains_bad_expressions(void **state)
{
    fy_gate g;
    assert_int_equal(fy_gate_parse("acuracy>=0.9", &g), FERRY_E_INVALID_ARG);
    assert_non_null(strstr(ferry_last_error(), "did you mean \"accuracy\""));
    assert_int_equal(fy_gate_parse("latency_p95>=1", &g), FERRY_E_INVALID_ARG);
    assert_non_null(strstr(ferry_last_error(), "latency_p95_ms"));
    assert_int_equal(fy_gate_parse("accuracy>=0.9.1", &g), FERRY_E_INVALID_ARG);
    assert_int_equal(fy_gate_parse("accuracy>=inf", &g), FERRY_E_INVALID_ARG);
    assert_int_equal(fy_gate_parse("accuracy>=nan", &g), FERRY_E_INVALID_ARG);
    assert_int_equal(fy_gate_parse("accuracy>=baseline*-1", &g), FERRY_E_INVALID_ARG);
    assert_int_equal(fy_gate_parse("accuracy>=baseline-200%", &g), FERRY_E_INVALID_ARG);
    assert_int_equal(fy_gate_parse("accuracy>=baseline--1", &g), FERRY_E_INVALID_ARG);
    assert_int_equal(fy_gate_parse(">=0.9", &g), FERRY_E_INVALID_ARG);
    assert_int_equal(fy_gate_parse("accuracy", &g), FERRY_E_INVALID_ARG);
    /* the caret sits under the column where it went wrong */
    assert_int_equal(fy_gate_parse("accuracy>=0.9x", &g), FERRY_E_INVALID_ARG);
    const char *e = ferry_last_error(), *line = strstr(e, "\n    accuracy>=0.9x\n    ");
    assert_non_null(line);
    assert_string_equal(line + strlen("\n    accuracy>=0.9x\n    "), "             ^");
    char long_expr[400];
    memset(long_expr, 'a', sizeof long_expr - 1);
    long_expr[sizeof long_expr - 1] = '\0';
    assert_int_equal(fy_gate_parse(long_expr, &g), FERRY_E_INVALID_ARG);
    assert_int_equal(fy_gate_parse("accuracy>=\x01", &g), FERRY_E_INVALID_ARG);
}

static fy_model_eval model(double acc, double lat)
{
    fy_model_eval e;
    memset(&e, 0, sizeof e);
    e.v[FY_M_ACCURACY] = acc, e.has[FY_M_ACCURACY] = !isnan(acc);
    e.v[FY_M_LATENCY_P95] = lat, e.has[FY_M_LATENCY_P95] = !isnan(lat);
    return e;
}

static int check(const char *expr, fy_model_eval *c, fy_model_eval *b)
{
    fy_gate g;
    assert_int_equal(fy_gate_parse(expr, &g), FERRY_OK);
    fy_gate_eval(&g, c, b);
    return g.passed;
}

static void follows_mlflow_semantics(void **state)
{
    fy_model_eval c = model(0.90, 11.0), b = model(0.905, 10.0);
    assert_true(check("accuracy>=0.88", &c, NULL));
    assert_false(check("accuracy>=0.95", &c, NULL));
    assert_true(check("accuracy>=baseline-0.005", &c, &b));  /* 0.90 >= 0.900 */
    assert_false(check("accuracy>=baseline-0.004", &c, &b)); /* 0.90 <  0.901 */
    assert_false(check("accuracy>=baseline", &c, &b));
    assert_true(check("latency_p95_ms<=baseline*1.1", &c, &b));
    assert_false(check("latency_p95_ms<=baseline*1.05", &c, &b));
    assert_true(check("latency_p95_ms<=baseline+10%", &c, &b));
    /* a zero baseline: the relative change is undefined, the candidate must beat it by 1e-10 */
    fy_model_eval z = model(0.0, 0.0), c0 = model(0.0, 0.0), c1 = model(1e-9, 1e-9);
    assert_false(check("accuracy>=baseline*1.5", &c0, &z));
    assert_true(check("accuracy>=baseline*1.5", &c1, &z));
    assert_false(check("latency_p95_ms<=baseline*1.5", &c1, &z));
    /* missing metrics fail with the reason */
    fy_gate g;
    fy_model_eval nolat = model(0.9, NAN);
    assert_int_equal(fy_gate_parse("latency_p95_ms<=5", &g), FERRY_OK);
    fy_gate_eval(&g, &nolat, NULL);
    assert_false(g.passed);
    assert_non_null(strstr(g.reason, "latency_p95_ms is missing"));
    assert_int_equal(fy_gate_parse("latency_p95_ms<=baseline", &g), FERRY_OK);
    fy_gate_eval(&g, &c, &nolat);
    assert_false(g.passed);
    assert_non_null(strstr(g.reason, "missing from the baseline"));
    fy_gate_eval(&g, &c, NULL);
    assert_non_null(strstr(g.reason, "no baseline"));
    assert_int_equal(fy_gate_parse("agreement>=0.99", &g), FERRY_OK);
    fy_gate_eval(&g, &c, NULL);
    assert_non_null(strstr(g.reason, "needs --baseline"));
    /* the reason shows the numbers */
    assert_int_equal(fy_gate_parse("accuracy>=baseline-0.004", &g), FERRY_OK);
    fy_gate_eval(&g, &c, &b);
    assert_string_equal(g.reason, "accuracy 0.9000 < 0.9010 (baseline 0.9050 - 0.004)");
}

static void metric_helpers(void **state)
{
    double v[] = {5, 1, 4, 2, 3};
    assert_true(fy_percentile(v, 5, 50) == 3);
    assert_true(fy_percentile(v, 5, 0) == 1 && fy_percentile(v, 5, 100) == 5);
    assert_true(fabs(fy_percentile(v, 5, 95) - 4.8) < 1e-12); /* NumPy's linear rule */
    double probs[] = {0.25, 0.75, 1.0, 0.0};
    assert_int_equal(fy_scores_to_probabilities(probs, 2, 2), 0);
    assert_true(probs[0] == 0.25);
    double logits[] = {0.0, 0.0, 1000.0, 0.0};
    assert_int_equal(fy_scores_to_probabilities(logits, 2, 2), 1);
    assert_true(logits[0] == 0.5 && logits[2] == 1.0 && logits[3] == 0.0);
    assert_int_equal(fy_metric_find("f1_macro", 8), FY_M_F1_MACRO);
    assert_int_equal(fy_metric_find("f1", 2), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_the_three_kinds),
        cmocka_unit_test(explains_bad_expressions),
        cmocka_unit_test(follows_mlflow_semantics),
        cmocka_unit_test(metric_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
