/*
 * test_timefmt.c - RFC 3339 formatting and parsing (the shapes Azure writes timestamps in).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "qn/timefmt.h"

static void test_parse_shapes(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_true(qn_time_parse_rfc3339("1970-01-01T00:00:00Z", &ms));
    assert_int_equal(ms, 0);
    assert_true(qn_time_parse_rfc3339("2026-11-28T08:57:13.4412345Z", &ms));
    assert_int_equal(ms, 1795856233441LL);
    /* an offset moves the instant */
    int64_t utc = 0;
    assert_true(qn_time_parse_rfc3339("2026-11-28T10:57:13.441+02:00", &ms));
    assert_true(qn_time_parse_rfc3339("2026-11-28T08:57:13.441Z", &utc));
    assert_int_equal(ms, utc);
    /* no zone: taken as UTC */
    assert_true(qn_time_parse_rfc3339("2026-11-28T08:57:13.441", &ms));
    assert_int_equal(ms, utc);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    int64_t ms = 42;
    assert_false(qn_time_parse_rfc3339(NULL, &ms));
    assert_false(qn_time_parse_rfc3339("", &ms));
    assert_false(qn_time_parse_rfc3339("2026-13-01T00:00:00Z", &ms));
    assert_false(qn_time_parse_rfc3339("2026-11-28 08:57:13Z", &ms));
    assert_false(qn_time_parse_rfc3339("2026-11-28T08:57:13X", &ms));
    assert_int_equal(ms, 42);
}

static void test_format_roundtrip(void **state)
{
    (void)state;
    char text[QN_RFC3339_LEN];
    qn_time_format_rfc3339(1795856233441LL, text);
    assert_string_equal(text, "2026-11-28T08:57:13.441Z");
    int64_t ms = 0;
    assert_true(qn_time_parse_rfc3339(text, &ms));
    assert_int_equal(ms, 1795856233441LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_shapes),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_format_roundtrip),
    };
    return cmocka_run_group_tests_name("timefmt", tests, NULL, NULL);
}
