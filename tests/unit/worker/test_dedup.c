/*
 * test_dedup.c - unit tests for the bounded FIFO set: check_add/contains, first-in-first-out
 * eviction, capacity 0 and 1, keys that collide in the hash table, a model-checked random workload
 * and a 100k-insert stress, and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dedup.h"
#include "qn/mem.h"

static struct qn_dedup *new_set(size_t capacity)
{
    struct qn_dedup *set = NULL;
    assert_int_equal(qn_dedup_new(capacity, &set), QN_OK);
    assert_non_null(set);
    assert_int_equal(qn_dedup_size(set), 0);
    return set;
}

static void test_check_add_and_contains(void **state)
{
    (void)state;
    struct qn_dedup *set = new_set(4);
    assert_int_equal(qn_dedup_contains(set, "a"), 0);
    assert_int_equal(qn_dedup_check_add(set, "a"), 0);
    assert_int_equal(qn_dedup_contains(set, "a"), 1);
    assert_int_equal(qn_dedup_check_add(set, "a"), 1);
    assert_int_equal(qn_dedup_size(set), 1);
    assert_int_equal(qn_dedup_check_add(set, "A"), 0); /* case-sensitive */
    assert_int_equal(qn_dedup_check_add(set, ""), 0);
    assert_int_equal(qn_dedup_check_add(set, ""), 1);
    assert_int_equal(qn_dedup_check_add(set, "id\x1f"
                                             "Active"),
                     0);
    assert_int_equal(qn_dedup_check_add(set, "id\x1f"
                                             "Dismissed"),
                     0); /* evicts "a" */
    assert_int_equal(qn_dedup_contains(set, "id\x1f"
                                            "Active"),
                     1);
    assert_int_equal(qn_dedup_size(set), 4);
    assert_int_equal(qn_dedup_contains(set, "a"), 0);
    /* the set keeps its own copies */
    char key[8] = "temp";
    assert_int_equal(qn_dedup_check_add(set, key), 0);
    memcpy(key, "xxxx", 4);
    assert_int_equal(qn_dedup_contains(set, "temp"), 1);
    qn_dedup_free(set);
    qn_dedup_free(NULL);
}

static void test_fifo_eviction(void **state)
{
    (void)state;
    struct qn_dedup *set = new_set(3);
    assert_int_equal(qn_dedup_check_add(set, "a"), 0);
    assert_int_equal(qn_dedup_check_add(set, "b"), 0);
    assert_int_equal(qn_dedup_check_add(set, "c"), 0);
    assert_int_equal(qn_dedup_size(set), 3);
    assert_int_equal(qn_dedup_check_add(set, "d"), 0);
    assert_int_equal(qn_dedup_size(set), 3);
    assert_int_equal(qn_dedup_contains(set, "a"), 0);
    assert_int_equal(qn_dedup_contains(set, "b"), 1);
    assert_int_equal(qn_dedup_contains(set, "c"), 1);
    assert_int_equal(qn_dedup_contains(set, "d"), 1);
    /* a hit does not refresh a key: first in, first out */
    assert_int_equal(qn_dedup_check_add(set, "b"), 1);
    assert_int_equal(qn_dedup_check_add(set, "e"), 0);
    assert_int_equal(qn_dedup_contains(set, "b"), 0);
    assert_int_equal(qn_dedup_contains(set, "c"), 1);
    /* an evicted key is new again */
    assert_int_equal(qn_dedup_check_add(set, "a"), 0);
    assert_int_equal(qn_dedup_contains(set, "c"), 0);
    assert_int_equal(qn_dedup_contains(set, "d"), 1);
    assert_int_equal(qn_dedup_contains(set, "e"), 1);
    assert_int_equal(qn_dedup_contains(set, "a"), 1);
    assert_int_equal(qn_dedup_size(set), 3);
    qn_dedup_free(set);
}

static void test_capacity_zero_and_one(void **state)
{
    (void)state;
    struct qn_dedup *set = new_set(0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qn_dedup_check_add(set, "a"), 0);
        assert_int_equal(qn_dedup_contains(set, "a"), 0);
        assert_int_equal(qn_dedup_size(set), 0);
    }
    qn_dedup_free(set);

    set = new_set(1);
    assert_int_equal(qn_dedup_check_add(set, "a"), 0);
    assert_int_equal(qn_dedup_check_add(set, "a"), 1);
    assert_int_equal(qn_dedup_check_add(set, "b"), 0);
    assert_int_equal(qn_dedup_contains(set, "a"), 0);
    assert_int_equal(qn_dedup_contains(set, "b"), 1);
    assert_int_equal(qn_dedup_size(set), 1);
    qn_dedup_free(set);
}

/* The set's hash (FNV-1a 64), to build keys that share a home slot. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Keys whose home slot in a table of @p slots is @p home (or the last slots, to wrap around). */
static int colliding_keys(char keys[][16], int want, size_t slots, size_t home)
{
    int n = 0;
    for (long i = 0; n < want && i < 10000000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "c%ld", i);
        if ((fnv1a(key) & (slots - 1)) == home) {
            memcpy(keys[n++], key, sizeof(key));
        }
    }
    return n;
}

static void test_collisions(void **state)
{
    (void)state;
    /* capacity 8 -> 32 slots; keys homed in the last slot make the probe chain wrap around */
    const size_t capacity = 8;
    const size_t slots = 32;
    for (size_t home = slots - 2; home < slots; home++) {
        char keys[24][16];
        assert_int_equal(colliding_keys(keys, 24, slots, home), 24);
        struct qn_dedup *set = new_set(capacity);
        for (int i = 0; i < 24; i++) {
            assert_int_equal(qn_dedup_check_add(set, keys[i]), 0);
            /* exactly the last `capacity` keys are members */
            for (int j = 0; j <= i; j++) {
                int want = j > i - (int)capacity ? 1 : 0;
                assert_int_equal(qn_dedup_contains(set, keys[j]), want);
            }
        }
        qn_dedup_free(set);
    }
}

/* A random workload over a small universe, checked against a plain FIFO model after each step. */
static void test_model_random(void **state)
{
    (void)state;
    static const size_t capacities[] = {1, 2, 3, 7, 8, 16, 33};
    unsigned long seed = 12345;
    for (size_t c = 0; c < sizeof(capacities) / sizeof(capacities[0]); c++) {
        size_t capacity = capacities[c];
        struct qn_dedup *set = new_set(capacity);
        int model[64];
        size_t model_count = 0;
        const int universe = (int)capacity * 3 + 5;
        for (int step = 0; step < 20000; step++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            int k = (int)((seed >> 33) % (unsigned long)universe);
            char key[16];
            snprintf(key, sizeof(key), "k%d", k);
            bool in_model = false;
            for (size_t i = 0; i < model_count; i++) {
                in_model = in_model || model[i] == k;
            }
            int got = qn_dedup_check_add(set, key);
            assert_int_equal(got, in_model ? 1 : 0);
            if (!in_model) {
                if (model_count == capacity) {
                    memmove(model, model + 1, (capacity - 1) * sizeof(model[0]));
                    model_count--;
                }
                model[model_count++] = k;
            }
            assert_int_equal(qn_dedup_size(set), model_count);
            if (step % 7 == 0) {
                for (int u = 0; u < universe; u++) {
                    bool member = false;
                    for (size_t i = 0; i < model_count; i++) {
                        member = member || model[i] == u;
                    }
                    snprintf(key, sizeof(key), "k%d", u);
                    assert_int_equal(qn_dedup_contains(set, key), member ? 1 : 0);
                }
            }
        }
        qn_dedup_free(set);
    }
}

static void test_stress_100k(void **state)
{
    (void)state;
    const size_t capacity = 100;
    const int total = 100000;
    struct qn_dedup *set = new_set(capacity);
    char key[64];
    for (int i = 0; i < total; i++) {
        snprintf(key, sizeof(key),
                 "2516839117039431999_%08d\x1f"
                 "Active",
                 i);
        assert_int_equal(qn_dedup_check_add(set, key), 0);
    }
    assert_int_equal(qn_dedup_size(set), capacity);
    for (int i = 0; i < total; i++) {
        snprintf(key, sizeof(key),
                 "2516839117039431999_%08d\x1f"
                 "Active",
                 i);
        int want = i >= total - (int)capacity ? 1 : 0;
        assert_int_equal(qn_dedup_contains(set, key), want);
    }
    /* the members are still duplicates; the evicted ones are new */
    for (int i = total - (int)capacity; i < total; i++) {
        snprintf(key, sizeof(key),
                 "2516839117039431999_%08d\x1f"
                 "Active",
                 i);
        assert_int_equal(qn_dedup_check_add(set, key), 1);
    }
    assert_int_equal(qn_dedup_size(set), capacity);
    qn_dedup_free(set);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    for (long n = 0; n < 10; n++) {
        struct qn_dedup *set = NULL;
        qn_mem_fail_after(n);
        qn_err_t rc = qn_dedup_new(16, &set);
        qn_mem_fail_after(-1);
        if (rc == QN_OK) {
            qn_dedup_free(set);
            break;
        }
        assert_int_equal(rc, QN_ERR_NOMEM);
    }
    struct qn_dedup *set = new_set(2);
    assert_int_equal(qn_dedup_check_add(set, "a"), 0);
    assert_int_equal(qn_dedup_check_add(set, "b"), 0);
    qn_mem_fail_after(0);
    int rc = qn_dedup_check_add(set, "c");
    qn_mem_fail_after(-1);
    assert_int_equal(rc, -1);
    /* a failed add changes nothing */
    assert_int_equal(qn_dedup_size(set), 2);
    assert_int_equal(qn_dedup_contains(set, "a"), 1);
    assert_int_equal(qn_dedup_contains(set, "b"), 1);
    assert_int_equal(qn_dedup_contains(set, "c"), 0);
    /* a hit needs no memory */
    qn_mem_fail_after(0);
    rc = qn_dedup_check_add(set, "a");
    qn_mem_fail_after(-1);
    assert_int_equal(rc, 1);
    qn_dedup_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_add_and_contains), cmocka_unit_test(test_fifo_eviction),
        cmocka_unit_test(test_capacity_zero_and_one),  cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_model_random),           cmocka_unit_test(test_stress_100k),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("dedup", tests, NULL, NULL);
}
