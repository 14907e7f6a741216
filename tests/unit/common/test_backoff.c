/*
 * test_backoff.c - unit tests for full-jitter backoff and Retry-After / HTTP-date parsing.
 *
 * Pure functions only: the jitter is checked with injected random values and with bounds on real
 * draws; dates are checked against fixed epoch values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "qn/backoff.h"

/* Sun, 06 Nov 1994 08:49:37 GMT */
#define RFC_EXAMPLE_EPOCH 784111777LL

static void test_backoff_delay_with_bounds(void **state)
{
    (void)state;
    struct qn_backoff b = {.base_ms = 100, .cap_ms = 1000};
    assert_int_equal(qn_backoff_delay_with(&b, 0, 0), 0);
    assert_int_equal(qn_backoff_delay_with(&b, 0, 100), 100);
    assert_int_equal(qn_backoff_delay_with(&b, 0, 101), 0);
    /* attempt 3: ceiling 800 */
    assert_int_equal(qn_backoff_delay_with(&b, 3, 800), 800);
    assert_int_equal(qn_backoff_delay_with(&b, 3, 801), 0);
    /* the cap holds for large attempts without overflow */
    assert_int_equal(qn_backoff_delay_with(&b, 4, 1000), 1000);
    assert_int_equal(qn_backoff_delay_with(&b, 200, 1000), 1000);
    assert_true(qn_backoff_delay_with(&b, 200, UINT64_MAX) <= 1000);
}

static void test_backoff_delay_ms_is_random_within_ceiling(void **state)
{
    (void)state;
    struct qn_backoff b = {.base_ms = 1000, .cap_ms = 5000};
    int64_t first = qn_backoff_delay_ms(&b, 2);
    bool varied = false;
    for (int i = 0; i < 200; i++) {
        int64_t d = qn_backoff_delay_ms(&b, 2);
        assert_true(d >= 0 && d <= 4000);
        varied = varied || d != first;
    }
    assert_true(varied);
}

static void test_backoff_next_prefers_retry_after(void **state)
{
    (void)state;
    struct qn_backoff b = {.base_ms = 10, .cap_ms = 20};
    assert_int_equal(qn_backoff_next_ms(&b, 0, 7000), 7000);
    assert_int_equal(qn_backoff_next_ms(&b, 5, 0), 0);
    int64_t d = qn_backoff_next_ms(&b, 5, -1);
    assert_true(d >= 0 && d <= 20);
}

static void test_retry_after_delta_seconds(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_int_equal(qn_retry_after_parse("120", 0, &ms), QN_OK);
    assert_int_equal(ms, 120000);
    assert_int_equal(qn_retry_after_parse("  5\t", 0, &ms), QN_OK);
    assert_int_equal(ms, 5000);
    assert_int_equal(qn_retry_after_parse("0", 0, &ms), QN_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(qn_retry_after_parse("1200", 0, &ms), QN_OK); /* Compute throttling */
    assert_int_equal(ms, 1200000);
}

static void test_retry_after_fractional_graph(void **state)
{
    (void)state;
    int64_t ms = -1;
    /* reference/azure/graph-error-429.txt: "Retry-After: 2.128" */
    assert_int_equal(qn_retry_after_parse("2.128", 0, &ms), QN_OK);
    assert_int_equal(ms, 2128);
    assert_int_equal(qn_retry_after_parse("0.5", 0, &ms), QN_OK);
    assert_int_equal(ms, 500);
    assert_int_equal(qn_retry_after_parse("1.0005", 0, &ms), QN_OK);
    assert_int_equal(ms, 1001); /* rounded up */
    assert_int_equal(qn_retry_after_parse("3.1", 0, &ms), QN_OK);
    assert_int_equal(ms, 3100);
}

static void test_retry_after_http_date(void **state)
{
    (void)state;
    int64_t ms = -1;
    int64_t now = (RFC_EXAMPLE_EPOCH - 10) * 1000;
    assert_int_equal(qn_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", now, &ms), QN_OK);
    assert_int_equal(ms, 10000);
    /* obsolete forms name the same instant */
    assert_int_equal(qn_retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", now, &ms), QN_OK);
    assert_int_equal(ms, 10000);
    assert_int_equal(qn_retry_after_parse("Sun Nov  6 08:49:37 1994", now, &ms), QN_OK);
    assert_int_equal(ms, 10000);
    /* a date in the past means "now" */
    assert_int_equal(qn_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", now + 60000, &ms),
                     QN_OK);
    assert_int_equal(ms, 0);
}

static void test_http_date_values(void **state)
{
    (void)state;
    int64_t s = 0;
    assert_int_equal(qn_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &s), QN_OK);
    assert_int_equal(s, RFC_EXAMPLE_EPOCH);
    assert_int_equal(qn_http_date_parse("Thu, 01 Jan 1970 00:00:00 GMT", &s), QN_OK);
    assert_int_equal(s, 0);
    assert_int_equal(qn_http_date_parse("Thu, 29 Feb 2024 00:00:00 GMT", &s), QN_OK);
    assert_int_equal(s, 1709164800);
    assert_int_equal(qn_http_date_parse("Wed, 26 Apr 2017 19:53:49 GMT", &s), QN_OK);
    assert_int_equal(s, 1493236429);
}

static void test_retry_after_rejects_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "   ",
        "abc",
        "-1",
        "1.",
        ".5",
        "1e3",
        "12abc",
        "1 2",
        "Sun, 31 Feb 2020 00:00:00 GMT",
        "Sat, 29 Feb 2023 00:00:00 GMT",
        "Sun, 06 Nov 1994 25:00:00 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT trailing",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 4242;
        assert_int_equal(qn_retry_after_parse(bad[i], 0, &ms), QN_ERR_PARSE);
        assert_int_equal(ms, 4242);
    }
    int64_t ms = 0;
    assert_int_equal(qn_retry_after_parse(NULL, 0, &ms), QN_ERR_PARSE);
}

static void test_retry_after_clamps_huge_values(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(qn_retry_after_parse("99999999999999999999", 0, &ms), QN_OK);
    assert_int_equal(ms, QN_RETRY_AFTER_MAX_MS);
    assert_int_equal(qn_retry_after_parse("Fri, 01 Jan 9999 00:00:00 GMT", 0, &ms), QN_OK);
    assert_int_equal(ms, QN_RETRY_AFTER_MAX_MS);
}

static void test_random_bytes(void **state)
{
    (void)state;
    unsigned char a[32];
    unsigned char b[32];
    assert_int_equal(qn_random_bytes(a, sizeof(a)), QN_OK);
    assert_int_equal(qn_random_bytes(b, sizeof(b)), QN_OK);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(qn_random_bytes(a, 0), QN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_delay_with_bounds),
        cmocka_unit_test(test_backoff_delay_ms_is_random_within_ceiling),
        cmocka_unit_test(test_backoff_next_prefers_retry_after),
        cmocka_unit_test(test_retry_after_delta_seconds),
        cmocka_unit_test(test_retry_after_fractional_graph),
        cmocka_unit_test(test_retry_after_http_date),
        cmocka_unit_test(test_http_date_values),
        cmocka_unit_test(test_retry_after_rejects_garbage),
        cmocka_unit_test(test_retry_after_clamps_huge_values),
        cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
