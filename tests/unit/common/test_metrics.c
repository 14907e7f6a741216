/*
 * test_metrics.c - unit tests for the Prometheus registry: exact rendering, counters, gauges,
 * lookups, value formatting, thousands of series and allocation failures.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "qn/buf.h"
#include "qn/log.h"
#include "qn/mem.h"
#include "qn/metrics.h"

static int setup(void **state)
{
    struct qn_metrics *metrics = NULL;
    if (qn_metrics_new(&metrics, NULL) != QN_OK) {
        return -1;
    }
    *state = metrics;
    return 0;
}

static int teardown(void **state)
{
    qn_metrics_free(*state);
    return 0;
}

/* Renders @p metrics and compares with @p expected. */
static void assert_render(const struct qn_metrics *metrics, const char *expected)
{
    struct qn_buf out;
    qn_buf_init(&out, 1 << 20);
    assert_int_equal(qn_metrics_render(metrics, &out), QN_OK);
    assert_string_equal(qn_buf_cstr(&out), expected);
    qn_buf_fini(&out);
}

static void test_render_exact_text(void **state)
{
    struct qn_metrics *metrics = *state;
    assert_int_equal(qn_metrics_describe(metrics, "qn_alerts_total", QN_METRIC_COUNTER,
                                         "Alerts consumed, by outcome."),
                     QN_OK);
    assert_int_equal(
        qn_metrics_describe(metrics, "qn_inflight", QN_METRIC_GAUGE, "Alerts in flight."), QN_OK);
    qn_metrics_set(metrics, "qn_undeclared", "", 7);
    qn_metrics_add(metrics, "qn_alerts_total", "reason=\"ok\"", 1);
    qn_metrics_add(metrics, "qn_alerts_total", "reason=\"not_json\"", 2);
    qn_metrics_add(metrics, "qn_alerts_total", "reason=\"ok\"", 1);
    qn_metrics_set(metrics, "qn_inflight", "", 3.5);

    assert_render(metrics, "# HELP qn_alerts_total Alerts consumed, by outcome.\n"
                           "# TYPE qn_alerts_total counter\n"
                           "qn_alerts_total{reason=\"ok\"} 2\n"
                           "qn_alerts_total{reason=\"not_json\"} 2\n"
                           "# HELP qn_inflight Alerts in flight.\n"
                           "# TYPE qn_inflight gauge\n"
                           "qn_inflight 3.5\n"
                           "# TYPE qn_undeclared untyped\n"
                           "qn_undeclared 7\n");
}

static void test_render_empty_and_seriesless(void **state)
{
    struct qn_metrics *metrics = *state;
    assert_render(metrics, "");
    /* A described family without series renders nothing. */
    assert_int_equal(qn_metrics_describe(metrics, "qn_x_total", QN_METRIC_COUNTER, "X."), QN_OK);
    assert_render(metrics, "");
}

static void test_describe_after_use_and_redescribe(void **state)
{
    struct qn_metrics *metrics = *state;
    qn_metrics_add(metrics, "b_total", "", 1);
    qn_metrics_add(metrics, "a_total", "", 1);
    /* a is declared after it first appeared: it moves ahead of the undeclared b. */
    assert_int_equal(qn_metrics_describe(metrics, "a_total", QN_METRIC_COUNTER, "old"), QN_OK);
    assert_int_equal(qn_metrics_describe(metrics, "a_total", QN_METRIC_GAUGE, "A \\ B\nC"), QN_OK);
    assert_render(metrics, "# HELP a_total A \\\\ B\\nC\n"
                           "# TYPE a_total gauge\n"
                           "a_total 1\n"
                           "# TYPE b_total untyped\n"
                           "b_total 1\n");
}

static void test_describe_rejects_bad_names(void **state)
{
    struct qn_metrics *metrics = *state;
    assert_int_equal(qn_metrics_describe(metrics, "", QN_METRIC_COUNTER, "x"), QN_ERR_INVALID);
    assert_int_equal(qn_metrics_describe(metrics, "1abc", QN_METRIC_COUNTER, "x"), QN_ERR_INVALID);
    assert_int_equal(qn_metrics_describe(metrics, "a-b", QN_METRIC_COUNTER, "x"), QN_ERR_INVALID);
    assert_int_equal(qn_metrics_describe(metrics, "ns:a_b9", QN_METRIC_COUNTER, "x"), QN_OK);
    assert_int_equal(qn_metrics_describe(metrics, "c", QN_METRIC_COUNTER, NULL), QN_OK);
}

static void test_counter_add(void **state)
{
    struct qn_metrics *metrics = *state;
    qn_metrics_add(metrics, "c_total", "k=\"v\"", 1);
    qn_metrics_add(metrics, "c_total", "k=\"v\"", 2.5);
    qn_metrics_add(metrics, "c_total", "k=\"w\"", 1);
    qn_metrics_add(metrics, "c_total", NULL, 4);
    assert_true(qn_metrics_get(metrics, "c_total", "k=\"v\"") == 3.5);
    assert_true(qn_metrics_get(metrics, "c_total", "k=\"w\"") == 1.0);
    assert_true(qn_metrics_get(metrics, "c_total", "") == 4.0);
    assert_true(qn_metrics_get(metrics, "c_total", NULL) == 4.0);
}

static void test_gauge_set(void **state)
{
    struct qn_metrics *metrics = *state;
    qn_metrics_set(metrics, "g", "", 10);
    qn_metrics_set(metrics, "g", "", -2);
    assert_true(qn_metrics_get(metrics, "g", "") == -2.0);
    qn_metrics_add(metrics, "g", "", 1);
    assert_true(qn_metrics_get(metrics, "g", "") == -1.0);
}

static void test_get_missing_is_zero(void **state)
{
    struct qn_metrics *metrics = *state;
    assert_true(qn_metrics_get(metrics, "nope", "") == 0.0);
    qn_metrics_set(metrics, "yes", "a=\"1\"", 5);
    assert_true(qn_metrics_get(metrics, "yes", "a=\"2\"") == 0.0);
    assert_true(qn_metrics_get(metrics, "yes", "") == 0.0);
    assert_true(qn_metrics_get(metrics, "ye", "a=\"1\"") == 0.0);
}

static void test_value_formatting(void **state)
{
    struct qn_metrics *metrics = *state;
    qn_metrics_set(metrics, "v", "i=\"int\"", 42);
    qn_metrics_set(metrics, "v", "i=\"neg\"", -3);
    qn_metrics_set(metrics, "v", "i=\"zero\"", -0.0);
    qn_metrics_set(metrics, "v", "i=\"tenth\"", 0.1);
    qn_metrics_set(metrics, "v", "i=\"third\"", 1.0 / 3.0);
    qn_metrics_set(metrics, "v", "i=\"big\"", 1e20);
    qn_metrics_set(metrics, "v", "i=\"2^53-1\"", 9007199254740991.0);
    qn_metrics_set(metrics, "v", "i=\"nan\"", NAN);
    qn_metrics_set(metrics, "v", "i=\"inf\"", INFINITY);
    qn_metrics_set(metrics, "v", "i=\"-inf\"", -INFINITY);
    assert_render(metrics, "# TYPE v untyped\n"
                           "v{i=\"int\"} 42\n"
                           "v{i=\"neg\"} -3\n"
                           "v{i=\"zero\"} 0\n"
                           "v{i=\"tenth\"} 0.1\n"
                           "v{i=\"third\"} 0.33333333333333331\n"
                           "v{i=\"big\"} 1e+20\n"
                           "v{i=\"2^53-1\"} 9007199254740991\n"
                           "v{i=\"nan\"} NaN\n"
                           "v{i=\"inf\"} +Inf\n"
                           "v{i=\"-inf\"} -Inf\n");
}

static void test_many_series(void **state)
{
    struct qn_metrics *metrics = *state;

    enum { FAMILIES = 10, PER_FAMILY = 500 };

    char name[32];
    char labels[64];
    for (int f = 0; f < FAMILIES; f++) {
        snprintf(name, sizeof(name), "fam%d_total", f);
        assert_int_equal(qn_metrics_describe(metrics, name, QN_METRIC_COUNTER, "many"), QN_OK);
    }
    for (int round = 0; round < 2; round++) {
        for (int f = 0; f < FAMILIES; f++) {
            snprintf(name, sizeof(name), "fam%d_total", f);
            for (int i = 0; i < PER_FAMILY; i++) {
                snprintf(labels, sizeof(labels), "id=\"%d\"", i);
                qn_metrics_add(metrics, name, labels, (double)i);
            }
        }
    }
    for (int f = 0; f < FAMILIES; f++) {
        snprintf(name, sizeof(name), "fam%d_total", f);
        for (int i = 0; i < PER_FAMILY; i++) {
            snprintf(labels, sizeof(labels), "id=\"%d\"", i);
            assert_true(qn_metrics_get(metrics, name, labels) == 2.0 * i);
        }
    }
    struct qn_buf out;
    qn_buf_init(&out, 1 << 22);
    assert_int_equal(qn_metrics_render(metrics, &out), QN_OK);
    size_t lines = 0;
    for (size_t i = 0; i < out.len; i++) {
        lines += out.data[i] == '\n';
    }
    assert_int_equal(lines, FAMILIES * PER_FAMILY + FAMILIES * 2);
    assert_non_null(strstr(qn_buf_cstr(&out), "\nfam7_total{id=\"499\"} 998\n"));
    qn_buf_fini(&out);
}

static void test_render_too_big(void **state)
{
    struct qn_metrics *metrics = *state;
    qn_metrics_set(metrics, "a_rather_long_metric_name", "", 1);
    struct qn_buf out;
    qn_buf_init(&out, 8);
    assert_int_equal(qn_metrics_render(metrics, &out), QN_ERR_TOO_BIG);
    qn_buf_fini(&out);
}

/* Fails every allocation in turn; nothing may crash or leak, and updates are dropped cleanly. */
static void test_allocation_failures(void **state)
{
    (void)state;
    int saved = qn_log_threshold;
    qn_log_threshold = -1; /* the dropped-update warnings are expected */
    int completed = 0;
    for (long n = 0; n < 2000 && !completed; n++) {
        qn_mem_fail_after(n);
        struct qn_metrics *metrics = NULL;
        struct qn_error err;
        memset(&err, 0, sizeof(err));
        qn_err_t rc = qn_metrics_new(&metrics, &err);
        if (rc != QN_OK) {
            assert_int_equal(rc, QN_ERR_NOMEM);
            assert_int_equal(err.code, QN_ERR_NOMEM);
            continue;
        }
        qn_err_t drc = qn_metrics_describe(metrics, "x_total", QN_METRIC_COUNTER, "x");
        assert_true(drc == QN_OK || drc == QN_ERR_NOMEM);
        for (int i = 0; i < 40; i++) {
            char labels[32];
            snprintf(labels, sizeof(labels), "i=\"%d\"", i);
            qn_metrics_add(metrics, "x_total", labels, 1);
            qn_metrics_set(metrics, "y", labels, i);
        }
        struct qn_buf out;
        qn_buf_init(&out, 1 << 20);
        qn_err_t rrc = qn_metrics_render(metrics, &out);
        assert_true(rrc == QN_OK || rrc == QN_ERR_NOMEM);
        qn_mem_fail_after(-1);
        if (drc == QN_OK && rrc == QN_OK && qn_metrics_get(metrics, "y", "i=\"39\"") == 39.0 &&
            qn_metrics_get(metrics, "x_total", "i=\"0\"") == 1.0) {
            completed = 1;
        }
        qn_buf_fini(&out);
        qn_metrics_free(metrics);
    }
    qn_mem_fail_after(-1);
    qn_log_threshold = saved;
    assert_true(completed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_render_exact_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render_empty_and_seriesless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe_after_use_and_redescribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe_rejects_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauge_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_missing_is_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_formatting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_series, setup, teardown),
        cmocka_unit_test_setup_teardown(test_render_too_big, setup, teardown),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
