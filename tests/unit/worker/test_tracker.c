/*
 * test_tracker.c - unit tests for at-least-once offset tracking: offsets are stored only up to the
 * first message that is not done, completion out of order, a failure blocks its partition,
 * revocation stops storing, partitions are independent, and the pending/in-flight counters.
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

#include "qn/mem.h"
#include "tracker.h"

#define MAX_STORES 64

struct stores {
    char topic[MAX_STORES][32];
    int32_t partition[MAX_STORES];
    int64_t next[MAX_STORES];
    int count;
};

static void on_store(const char *topic, int32_t partition, int64_t next_offset, void *opaque)
{
    struct stores *s = opaque;
    assert_true(s->count < MAX_STORES);
    snprintf(s->topic[s->count], sizeof(s->topic[0]), "%s", topic);
    s->partition[s->count] = partition;
    s->next[s->count] = next_offset;
    s->count++;
}

struct fx {
    struct stores stores;
    struct qn_tracker *t;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(qn_tracker_new(on_store, &f->stores, &f->t), QN_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    qn_tracker_free(f->t);
    free(f);
    return 0;
}

static struct qn_track_node *begin(struct fx *f, const char *topic, int32_t p, int64_t offset)
{
    struct qn_track_node *n = qn_tracker_begin(f->t, topic, p, offset);
    assert_non_null(n);
    return n;
}

static void assert_last_store(const struct fx *f, const char *topic, int32_t p, int64_t next)
{
    assert_true(f->stores.count > 0);
    int i = f->stores.count - 1;
    assert_string_equal(f->stores.topic[i], topic);
    assert_int_equal(f->stores.partition[i], p);
    assert_int_equal(f->stores.next[i], next);
}

static void test_in_order_completion(void **state)
{
    struct fx *f = *state;
    struct qn_track_node *a = begin(f, "in", 0, 10);
    struct qn_track_node *b = begin(f, "in", 0, 11);
    assert_int_equal(qn_tracker_pending(f->t), 2);
    qn_tracker_end(a);
    assert_int_equal(f->stores.count, 1);
    assert_last_store(f, "in", 0, 11);
    qn_tracker_end(b);
    assert_int_equal(f->stores.count, 2);
    assert_last_store(f, "in", 0, 12);
    assert_int_equal(qn_tracker_pending(f->t), 0);
}

static void test_out_of_order_completion(void **state)
{
    struct fx *f = *state;
    struct qn_track_node *a = begin(f, "in", 0, 10);
    struct qn_track_node *b = begin(f, "in", 0, 11);
    struct qn_track_node *c = begin(f, "in", 0, 12);
    /* later messages finish first: nothing may be stored past 10 */
    qn_tracker_end(c);
    qn_tracker_end(b);
    assert_int_equal(f->stores.count, 0);
    assert_int_equal(qn_tracker_pending(f->t), 3);
    /* the first one finishes: everything up to 12 is done at once */
    qn_tracker_end(a);
    assert_int_equal(f->stores.count, 1);
    assert_last_store(f, "in", 0, 13);
    assert_int_equal(qn_tracker_pending(f->t), 0);
}

static void test_store_waits_for_produce_acks(void **state)
{
    struct fx *f = *state;
    struct qn_track_node *a = begin(f, "in", 0, 5);
    qn_tracker_ref(a);
    qn_tracker_ref(a);
    assert_int_equal(qn_tracker_inflight(f->t), 2);
    qn_tracker_end(a); /* the handling guard */
    assert_int_equal(f->stores.count, 0);
    qn_tracker_unref(a); /* first ack */
    assert_int_equal(f->stores.count, 0);
    qn_tracker_unref(a); /* last ack */
    assert_int_equal(f->stores.count, 1);
    assert_last_store(f, "in", 0, 6);
    assert_int_equal(qn_tracker_inflight(f->t), 0);
    assert_int_equal(qn_tracker_pending(f->t), 0);
}

/*
 * The in-flight counter counts produce requests, not the handling guard. The worker takes the
 * guard (begin), produces (ref), and drops the guard right after handling, while the produce is
 * still in flight; the delivery report drops the last reference later.
 */
static void test_inflight_counts_produce_requests(void **state)
{
    struct fx *f = *state;
    struct qn_track_node *a = begin(f, "in", 0, 1);
    assert_int_equal(qn_tracker_inflight(f->t), 0);
    qn_tracker_ref(a);
    assert_int_equal(qn_tracker_inflight(f->t), 1);
    qn_tracker_end(a); /* guard released, the produce request is still in flight */
    long after_guard = qn_tracker_inflight(f->t);
    qn_tracker_unref(a); /* delivery report */
    long after_ack = qn_tracker_inflight(f->t);
    if (after_guard != 1) {
        print_error("begin, ref, end(guard): qn_tracker_inflight() is %ld with one produce "
                    "request still in flight\n",
                    after_guard);
    }
    assert_int_equal(after_ack, 0);
    assert_int_equal(after_guard, 1);
}

static void test_failure_blocks_partition(void **state)
{
    struct fx *f = *state;
    struct qn_track_node *a = begin(f, "in", 0, 10);
    struct qn_track_node *b = begin(f, "in", 0, 11);
    struct qn_track_node *c = begin(f, "in", 0, 12);
    struct qn_track_node *other = begin(f, "in", 1, 7);
    qn_tracker_end(a);
    assert_last_store(f, "in", 0, 11);
    qn_tracker_fail(b);
    qn_tracker_end(b);
    qn_tracker_end(c);
    /* nothing past the failed message, ever */
    assert_int_equal(f->stores.count, 1);
    struct qn_track_node *d = begin(f, "in", 0, 13);
    qn_tracker_end(d);
    assert_int_equal(f->stores.count, 1);
    assert_int_equal(qn_tracker_pending(f->t), 1);
    /* other partitions carry on */
    qn_tracker_end(other);
    assert_int_equal(f->stores.count, 2);
    assert_last_store(f, "in", 1, 8);
    assert_int_equal(qn_tracker_pending(f->t), 0);
}

static void test_failure_of_first_message(void **state)
{
    struct fx *f = *state;
    struct qn_track_node *a = begin(f, "in", 0, 10);
    struct qn_track_node *b = begin(f, "in", 0, 11);
    qn_tracker_ref(a);
    qn_tracker_end(b);
    qn_tracker_end(a);
    /* a produce of the first message fails in its delivery report */
    qn_tracker_fail(a);
    qn_tracker_unref(a);
    assert_int_equal(f->stores.count, 0);
    assert_int_equal(qn_tracker_pending(f->t), 0);
    assert_int_equal(qn_tracker_inflight(f->t), 0);
}

static void test_revoke_stops_storing(void **state)
{
    struct fx *f = *state;
    struct qn_track_node *a = begin(f, "in", 0, 10);
    struct qn_track_node *b = begin(f, "in", 3, 40);
    qn_tracker_revoke(f->t, "in", 0);
    qn_tracker_end(a);
    assert_int_equal(f->stores.count, 0);
    assert_int_equal(qn_tracker_pending(f->t), 1);
    /* not revoked: still stored */
    qn_tracker_end(b);
    assert_int_equal(f->stores.count, 1);
    assert_last_store(f, "in", 3, 41);
    /* revoking an unknown partition is harmless */
    qn_tracker_revoke(f->t, "in", 99);
    qn_tracker_revoke(f->t, "other", 0);
    /* assigned again later: storing resumes */
    struct qn_track_node *c = begin(f, "in", 0, 20);
    qn_tracker_end(c);
    assert_int_equal(f->stores.count, 2);
    assert_last_store(f, "in", 0, 21);
}

static void test_partitions_and_topics_independent(void **state)
{
    struct fx *f = *state;
    struct qn_track_node *a = begin(f, "in", 0, 100);
    struct qn_track_node *b = begin(f, "work", 0, 5);
    struct qn_track_node *c = begin(f, "in", 1, 50);
    qn_tracker_end(b);
    assert_last_store(f, "work", 0, 6);
    qn_tracker_end(c);
    assert_last_store(f, "in", 1, 51);
    qn_tracker_end(a);
    assert_last_store(f, "in", 0, 101);
    assert_int_equal(f->stores.count, 3);
}

static void test_counters(void **state)
{
    struct fx *f = *state;
    struct qn_track_node *nodes[10];
    for (int i = 0; i < 10; i++) {
        nodes[i] = begin(f, "in", i % 3, 1000 + i);
        qn_tracker_ref(nodes[i]);
    }
    assert_int_equal(qn_tracker_pending(f->t), 10);
    assert_int_equal(qn_tracker_inflight(f->t), 10);
    /* acks first, guards later: the order a fast broker gives */
    for (int i = 0; i < 10; i++) {
        qn_tracker_unref(nodes[i]);
    }
    assert_int_equal(qn_tracker_inflight(f->t), 0);
    assert_int_equal(qn_tracker_pending(f->t), 10);
    for (int i = 9; i >= 0; i--) {
        qn_tracker_end(nodes[i]);
    }
    assert_int_equal(qn_tracker_pending(f->t), 0);
    assert_int_equal(qn_tracker_inflight(f->t), 0);
}

static void test_free_with_pending_and_null_store(void **state)
{
    (void)state;
    struct qn_tracker *t = NULL;
    assert_int_equal(qn_tracker_new(NULL, NULL, &t), QN_OK);
    struct qn_track_node *a = qn_tracker_begin(t, "in", 0, 1);
    struct qn_track_node *b = qn_tracker_begin(t, "in", 0, 2);
    assert_non_null(a);
    assert_non_null(b);
    qn_tracker_end(a); /* no store callback: nothing to call */
    assert_int_equal(qn_tracker_pending(t), 1);
    qn_tracker_free(t); /* b is still pending: freed with the tracker */
    qn_tracker_free(NULL);
}

static void test_alloc_failures(void **state)
{
    struct fx *f = *state;
    for (long n = 0; n < 10; n++) {
        qn_mem_fail_after(n);
        struct qn_track_node *node = qn_tracker_begin(f->t, "topic-x", 7, 1);
        qn_mem_fail_after(-1);
        if (node != NULL) {
            qn_tracker_end(node);
            break;
        }
        assert_int_equal(qn_tracker_pending(f->t), 0);
    }
    assert_last_store(f, "topic-x", 7, 2);
    struct qn_tracker *t = NULL;
    qn_mem_fail_after(0);
    qn_err_t rc = qn_tracker_new(on_store, NULL, &t);
    qn_mem_fail_after(-1);
    assert_int_equal(rc, QN_ERR_NOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_waits_for_produce_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_counts_produce_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_blocks_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_of_first_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_stops_storing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions_and_topics_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
        cmocka_unit_test(test_free_with_pending_and_null_store),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests_name("tracker", tests, NULL, NULL);
}
