/*
 * test_crypto.c - unit tests for the hashing helpers: SHA-256 known vectors and the derived ids
 * used for events and tasks (deterministic, sensitive to every part and to part boundaries).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "qn/crypto.h"

static void test_sha256_known_vectors(void **state)
{
    (void)state;
    char hex[65];
    qn_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    qn_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    qn_sha256_hex(two_blocks, strlen(two_blocks), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* embedded NUL bytes are hashed, not treated as the end */
    char with_nul[65];
    qn_sha256_hex("abc\0def", 7, with_nul);
    assert_string_not_equal(with_nul, hex);
    qn_sha256_hex("abc", 3, hex);
    assert_string_not_equal(with_nul, hex);
}

static int is_lower_hex(const char *s, size_t len)
{
    if (strlen(s) != len) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static void test_derive_id_deterministic(void **state)
{
    (void)state;
    char a[QN_ID_HEX_LEN + 1];
    char b[QN_ID_HEX_LEN + 1];
    qn_derive_id(a, "quench.task.proposed", "alert-1", "task-1", NULL);
    qn_derive_id(b, "quench.task.proposed", "alert-1", "task-1", NULL);
    assert_true(is_lower_hex(a, QN_ID_HEX_LEN));
    assert_string_equal(a, b);
}

static void test_derive_id_is_truncated_sha256_of_joined_parts(void **state)
{
    (void)state;
    char id[QN_ID_HEX_LEN + 1];
    char full[65];
    qn_derive_id(id, "a", "bc", NULL);
    qn_sha256_hex("a\x1f"
                  "bc",
                  4, full);
    assert_memory_equal(id, full, QN_ID_HEX_LEN);
    qn_derive_id(id, "abc", NULL);
    qn_sha256_hex("abc", 3, full);
    assert_memory_equal(id, full, QN_ID_HEX_LEN);
}

static void test_derive_id_differs(void **state)
{
    (void)state;
    char base[QN_ID_HEX_LEN + 1];
    char other[QN_ID_HEX_LEN + 1];
    qn_derive_id(base, "type", "subject", "disc", NULL);

    qn_derive_id(other, "type2", "subject", "disc", NULL);
    assert_string_not_equal(base, other);
    qn_derive_id(other, "type", "subject2", "disc", NULL);
    assert_string_not_equal(base, other);
    qn_derive_id(other, "type", "subject", "disc2", NULL);
    assert_string_not_equal(base, other);
    qn_derive_id(other, "type", "subject", "disc", "", NULL);
    assert_string_not_equal(base, other);
    qn_derive_id(other, "type", "subject", NULL);
    assert_string_not_equal(base, other);
    qn_derive_id(other, "subject", "type", "disc", NULL);
    assert_string_not_equal(base, other);
}

static void test_derive_id_part_boundaries(void **state)
{
    (void)state;
    char x[QN_ID_HEX_LEN + 1];
    char y[QN_ID_HEX_LEN + 1];
    qn_derive_id(x, "a", "bc", NULL);
    qn_derive_id(y, "ab", "c", NULL);
    assert_string_not_equal(x, y);
    qn_derive_id(y, "abc", NULL);
    assert_string_not_equal(x, y);
    qn_derive_id(x, "a", "", "b", NULL);
    qn_derive_id(y, "a", "b", "", NULL);
    assert_string_not_equal(x, y);
    qn_derive_id(x, "", NULL);
    qn_derive_id(y, "", "", NULL);
    assert_string_not_equal(x, y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known_vectors),
        cmocka_unit_test(test_derive_id_deterministic),
        cmocka_unit_test(test_derive_id_is_truncated_sha256_of_joined_parts),
        cmocka_unit_test(test_derive_id_differs),
        cmocka_unit_test(test_derive_id_part_boundaries),
    };
    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
