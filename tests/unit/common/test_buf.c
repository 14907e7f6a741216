/*
 * test_buf.c - unit tests for the bounded growable buffer: appends, the hard maximum, JSON string
 * escaping, detach and allocation failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "qn/buf.h"
#include "qn/mem.h"

static void test_append_variants(void **state)
{
    (void)state;
    struct qn_buf buf;
    qn_buf_init(&buf, 1024);
    assert_string_equal(qn_buf_cstr(&buf), "");
    assert_int_equal(buf.len, 0);
    assert_int_equal(qn_buf_append(&buf, "abc", 3), QN_OK);
    assert_int_equal(qn_buf_append(&buf, NULL, 0), QN_OK);
    assert_int_equal(qn_buf_append_str(&buf, "def"), QN_OK);
    assert_int_equal(qn_buf_append_char(&buf, '-'), QN_OK);
    assert_int_equal(qn_buf_printf(&buf, "%d:%s", 42, "x"), QN_OK);
    assert_string_equal(qn_buf_cstr(&buf), "abcdef-42:x");
    assert_int_equal(buf.len, strlen("abcdef-42:x"));

    qn_buf_reset(&buf);
    assert_int_equal(buf.len, 0);
    assert_string_equal(qn_buf_cstr(&buf), "");
    assert_int_equal(qn_buf_append_str(&buf, "again"), QN_OK);
    assert_string_equal(qn_buf_cstr(&buf), "again");
    qn_buf_fini(&buf);
    assert_null(buf.data);
}

static void test_growth_keeps_contents(void **state)
{
    (void)state;
    struct qn_buf buf;
    qn_buf_init(&buf, 1 << 20);
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(qn_buf_append_char(&buf, (char)('a' + i % 26)), QN_OK);
    }
    assert_int_equal(buf.len, 10000);
    assert_true(buf.cap > buf.len);
    assert_int_equal(buf.data[buf.len], '\0');
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(buf.data[i], 'a' + i % 26);
    }
    qn_buf_fini(&buf);
}

static void test_max_limit_too_big(void **state)
{
    (void)state;
    struct qn_buf buf;
    qn_buf_init(&buf, 8);
    assert_int_equal(qn_buf_append_str(&buf, "12345678"), QN_OK);
    assert_int_equal(qn_buf_append_char(&buf, '9'), QN_ERR_TOO_BIG);
    assert_int_equal(qn_buf_append(&buf, "9", 1), QN_ERR_TOO_BIG);
    assert_int_equal(qn_buf_printf(&buf, "%d", 9), QN_ERR_TOO_BIG);
    /* The contents survive the refused append. */
    assert_string_equal(qn_buf_cstr(&buf), "12345678");
    assert_int_equal(buf.len, 8);
    qn_buf_fini(&buf);

    qn_buf_init(&buf, 4);
    assert_int_equal(qn_buf_printf(&buf, "%s", "12345"), QN_ERR_TOO_BIG);
    assert_int_equal(qn_buf_append(&buf, "12345", SIZE_MAX), QN_ERR_TOO_BIG);
    assert_int_equal(buf.len, 0);
    assert_string_equal(qn_buf_cstr(&buf), "");
    qn_buf_fini(&buf);
}

static void test_json_string_escaping(void **state)
{
    (void)state;
    struct qn_buf buf;
    qn_buf_init(&buf, 1024);
    const char in[] = "a\"b\\c\nd\re\tf\x01g\x1fh\x7fi/\xc3\xa9";
    assert_int_equal(qn_buf_append_json_str(&buf, in, strlen(in)), QN_OK);
    assert_string_equal(qn_buf_cstr(&buf),
                        "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh\\u007fi/\xc3\xa9\"");
    qn_buf_reset(&buf);

    /* Lengths are explicit, so an embedded NUL is escaped, not a terminator. */
    assert_int_equal(qn_buf_append_json_str(&buf, "x\0y", 3), QN_OK);
    assert_string_equal(qn_buf_cstr(&buf), "\"x\\u0000y\"");
    qn_buf_reset(&buf);

    assert_int_equal(qn_buf_append_json_str(&buf, "", 0), QN_OK);
    assert_string_equal(qn_buf_cstr(&buf), "\"\"");
    qn_buf_fini(&buf);

    qn_buf_init(&buf, 5);
    assert_int_equal(qn_buf_append_str(&buf, "ab"), QN_OK);
    assert_int_equal(qn_buf_append_json_str(&buf, "\n\n\n", 3), QN_ERR_TOO_BIG);
    /* a failed append leaves what was there before */
    assert_string_equal(qn_buf_cstr(&buf), "ab");
    assert_int_equal(buf.len, 2);
    qn_buf_fini(&buf);
}

static void test_detach(void **state)
{
    (void)state;
    struct qn_buf buf;
    qn_buf_init(&buf, 64);
    size_t len = 99;
    assert_null(qn_buf_detach(&buf, &len));
    assert_int_equal(len, 0);

    assert_int_equal(qn_buf_append_str(&buf, "hello"), QN_OK);
    char *data = qn_buf_detach(&buf, &len);
    assert_non_null(data);
    assert_string_equal(data, "hello");
    assert_int_equal(len, 5);
    assert_null(buf.data);
    assert_int_equal(buf.len, 0);
    assert_string_equal(qn_buf_cstr(&buf), "");
    qn_free(data);

    /* The buffer is reusable after a detach; the maximum is kept. */
    assert_int_equal(qn_buf_append_str(&buf, "again"), QN_OK);
    data = qn_buf_detach(&buf, NULL);
    assert_string_equal(data, "again");
    qn_free(data);
    assert_int_equal(buf.max, 64);

    /* emptied by a reset, a used buffer detaches to NULL like a fresh one */
    assert_int_equal(qn_buf_append_str(&buf, "x"), QN_OK);
    qn_buf_reset(&buf);
    assert_null(qn_buf_detach(&buf, &len));
    assert_int_equal(len, 0);
    qn_buf_fini(&buf);
}

static void test_allocation_failure(void **state)
{
    (void)state;
    struct qn_buf buf;
    qn_buf_init(&buf, 1024);
    qn_mem_fail_after(0);
    assert_int_equal(qn_buf_append_str(&buf, "x"), QN_ERR_NOMEM);
    qn_mem_fail_after(-1);
    assert_int_equal(buf.len, 0);
    assert_string_equal(qn_buf_cstr(&buf), "");
    assert_int_equal(qn_buf_append_str(&buf, "x"), QN_OK);
    assert_string_equal(qn_buf_cstr(&buf), "x");
    qn_buf_fini(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_variants),
        cmocka_unit_test(test_growth_keeps_contents),
        cmocka_unit_test(test_max_limit_too_big),
        cmocka_unit_test(test_json_string_escaping),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_allocation_failure),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
