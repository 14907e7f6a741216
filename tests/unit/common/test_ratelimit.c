/*
 * test_ratelimit.c - unit tests for the token-bucket math (with an injected clock) and for the
 * loop-driven limiter: FIFO grants at the exact refill time, cancellation, pauses, remaining
 * headers, queue bounds and metrics.
 *
 * Loop tests bound every wait: they run qn_loop_run_once with a short timeout until the expected
 * grants arrived or a wall-clock limit passed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "qn/loop.h"
#include "qn/metrics.h"
#include "qn/ratelimit.h"

#define WALL_LIMIT_MS 5000

struct grant_log {
    int order[16];
    int64_t at[16];
    int count;
};

struct grant {
    struct grant_log *log;
    int tag;
};

static void on_grant(void *opaque)
{
    struct grant *g = opaque;
    g->log->at[g->log->count] = qn_clock_ms();
    g->log->order[g->log->count++] = g->tag;
}

static void run_until(struct qn_loop *loop, const int *count, int target)
{
    int64_t until = qn_clock_ms() + WALL_LIMIT_MS;
    while (*count < target && qn_clock_ms() < until) {
        assert_int_equal(qn_loop_run_once(loop, 20), QN_OK);
    }
}

static struct qn_ratelimit_config small_config(double burst, double rate)
{
    struct qn_ratelimit_config cfg;
    qn_ratelimit_config_default(&cfg);
    for (int i = 0; i < QN_RATELIMIT__COUNT; i++) {
        cfg.classes[i].burst = burst;
        cfg.classes[i].refill_per_sec = rate;
    }
    cfg.headroom = 0; /* exact arithmetic below; the default reserve is tested on its own */
    return cfg;
}

/* ---- pure bucket math ---- */

static void test_bucket_take_and_wait(void **state)
{
    (void)state;
    struct qn_token_bucket b;
    qn_token_bucket_init(&b, 3, 10, 1000);
    assert_int_equal(qn_token_bucket_take(&b, 1000), 0);
    assert_int_equal(qn_token_bucket_take(&b, 1000), 0);
    assert_int_equal(qn_token_bucket_take(&b, 1000), 0);
    /* empty: one token every 100 ms */
    assert_int_equal(qn_token_bucket_take(&b, 1000), 100);
    assert_int_equal(qn_token_bucket_take(&b, 1050), 50);
    assert_int_equal(qn_token_bucket_take(&b, 1100), 0);
    assert_int_equal(qn_token_bucket_wait_ms(&b, 1100), 100);
    /* refill stops at the burst */
    assert_int_equal(qn_token_bucket_wait_ms(&b, 100000), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qn_token_bucket_take(&b, 100000), 0);
    }
    assert_int_equal(qn_token_bucket_take(&b, 100000), 100);
}

static void test_bucket_arm_sizes(void **state)
{
    (void)state;
    struct qn_ratelimit_config cfg;
    qn_ratelimit_config_default(&cfg);
    assert_true(cfg.classes[QN_RATELIMIT_READ].burst == 250);
    assert_true(cfg.classes[QN_RATELIMIT_READ].refill_per_sec == 25);
    assert_true(cfg.classes[QN_RATELIMIT_WRITE].burst == 200);
    assert_true(cfg.classes[QN_RATELIMIT_WRITE].refill_per_sec == 10);
    assert_true(cfg.classes[QN_RATELIMIT_DELETE].burst == 200);
    assert_true(cfg.classes[QN_RATELIMIT_DELETE].refill_per_sec == 10);
    /* two tokens stay in reserve below the published burst (see ratelimit.h) */
    assert_true(cfg.headroom == 2);

    /* ARM reads: 250 at once, then one every 40 ms */
    struct qn_token_bucket b;
    qn_token_bucket_init(&b, 250, 25, 0);
    for (int i = 0; i < 250; i++) {
        assert_int_equal(qn_token_bucket_take(&b, 0), 0);
    }
    assert_int_equal(qn_token_bucket_take(&b, 0), 40);
    assert_int_equal(qn_token_bucket_take(&b, 40), 0);
    /* a second's refill buys exactly 25 more */
    int got = 0;
    while (qn_token_bucket_take(&b, 1040) == 0) {
        got++;
    }
    assert_int_equal(got, 25);

    /* fractional rates: 0.5/s is one token per 2 s */
    qn_token_bucket_init(&b, 1, 0.5, 0);
    assert_int_equal(qn_token_bucket_take(&b, 0), 0);
    assert_int_equal(qn_token_bucket_take(&b, 0), 2000);
    assert_int_equal(qn_token_bucket_take(&b, 1999), 1);
    assert_int_equal(qn_token_bucket_take(&b, 2000), 0);
}

static void test_bucket_pause(void **state)
{
    (void)state;
    struct qn_token_bucket b;
    qn_token_bucket_init(&b, 5, 10, 0);
    /* what qn_ratelimit_pause does: empty, and earn nothing before the end of the pause */
    b.tokens = 0;
    b.last_ms = 500;
    assert_int_equal(qn_token_bucket_wait_ms(&b, 0), 600);
    assert_int_equal(qn_token_bucket_take(&b, 550), 50);
    assert_int_equal(qn_token_bucket_take(&b, 600), 0);
}

static void test_class_for_method(void **state)
{
    (void)state;
    assert_int_equal(qn_ratelimit_class_for_method("GET"), QN_RATELIMIT_READ);
    assert_int_equal(qn_ratelimit_class_for_method("head"), QN_RATELIMIT_READ);
    assert_int_equal(qn_ratelimit_class_for_method("DELETE"), QN_RATELIMIT_DELETE);
    assert_int_equal(qn_ratelimit_class_for_method("POST"), QN_RATELIMIT_WRITE);
    assert_int_equal(qn_ratelimit_class_for_method("PUT"), QN_RATELIMIT_WRITE);
    assert_int_equal(qn_ratelimit_class_for_method("PATCH"), QN_RATELIMIT_WRITE);
    assert_string_equal(qn_ratelimit_class_name(QN_RATELIMIT_GRAPH), "graph");
}

static void test_config_rejects_nonsense(void **state)
{
    (void)state;
    struct qn_loop *loop = NULL;
    assert_int_equal(qn_loop_new(&loop, NULL), QN_OK);
    struct qn_ratelimit_config cfg = small_config(0, 1);
    struct qn_ratelimit *rl = NULL;
    struct qn_error err = {0};
    assert_int_equal(qn_ratelimit_new(loop, &cfg, &rl, &err), QN_ERR_INVALID);
    cfg = small_config(5, 0);
    assert_int_equal(qn_ratelimit_new(loop, &cfg, &rl, &err), QN_ERR_INVALID);
    assert_null(rl);
    qn_loop_free(loop);
}

/* ---- the limiter on the loop ---- */

struct fixture {
    struct qn_loop *loop;
    struct qn_ratelimit *rl;
    struct qn_metrics *metrics;
};

static int setup(void **state)
{
    struct fixture *fx = test_calloc(1, sizeof(*fx));
    if (qn_loop_new(&fx->loop, NULL) != QN_OK || qn_metrics_new(&fx->metrics, NULL) != QN_OK) {
        return -1;
    }
    /* 2 burst, one token per 50 ms */
    struct qn_ratelimit_config cfg = small_config(2, 20);
    cfg.metrics = fx->metrics;
    cfg.max_waiters = 4;
    if (qn_ratelimit_new(fx->loop, &cfg, &fx->rl, NULL) != QN_OK) {
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    qn_ratelimit_free(fx->rl);
    qn_metrics_free(fx->metrics);
    qn_loop_free(fx->loop);
    test_free(fx);
    return 0;
}

static void
acquire(struct fixture *fx, const char *scope, struct grant *g, struct qn_ratelimit_waiter **w)
{
    assert_int_equal(
        qn_ratelimit_acquire(fx->rl, scope, "principal-1", QN_RATELIMIT_READ, on_grant, g, w, NULL),
        QN_OK);
}

static void test_fifo_grants_at_refill_times(void **state)
{
    struct fixture *fx = *state;
    struct grant_log log = {.count = 0};
    struct grant g[5];
    struct qn_ratelimit_waiter *w[5];
    int64_t start = qn_clock_ms();
    for (int i = 0; i < 5; i++) {
        g[i] = (struct grant){&log, i};
        acquire(fx, "sub-a", &g[i], &w[i]);
    }
    /* the burst is granted on the spot, the rest queue */
    int64_t queued_by = qn_clock_ms() - start; /* slow under valgrind */
    assert_null(w[0]);
    assert_null(w[1]);
    assert_non_null(w[2]);
    assert_non_null(w[3]);
    assert_non_null(w[4]);
    assert_int_equal(log.count, 0);
    run_until(fx->loop, &log.count, 3);
    assert_int_equal(log.count, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(log.order[i], i + 2);
        /* never early: the k-th queued grant comes at least k * 50 ms after the burst */
        assert_true(log.at[i] - start >= 50 * (i + 1) - 1);
    }
    /* and not much late either (loose bound for loaded machines) */
    assert_true(log.at[2] - start < 150 + 500);

    struct qn_ratelimit_stats st;
    qn_ratelimit_stats(fx->rl, &st);
    assert_int_equal(st.classes[QN_RATELIMIT_READ].grants, 5);
    assert_int_equal(st.classes[QN_RATELIMIT_READ].waits, 3);
    assert_int_equal(st.classes[QN_RATELIMIT_READ].queued, 0);
    assert_true((int64_t)st.classes[QN_RATELIMIT_READ].wait_ms >=
                50 + 100 + 150 - 3 - 3 * queued_by);
    assert_int_equal(st.buckets, 1);
    assert_true(
        qn_metrics_get(fx->metrics, "quench_azure_ratelimit_waits_total", "class=\"read\"") == 3);
    assert_true(qn_metrics_get(fx->metrics, "quench_azure_ratelimit_wait_seconds_total",
                               "class=\"read\"") >= (0.297 - 0.003 * (double)queued_by));
}

static void test_queue_is_fifo_even_when_tokens_return(void **state)
{
    struct fixture *fx = *state;
    struct grant_log log = {.count = 0};
    struct grant g[4] = {{&log, 0}, {&log, 1}, {&log, 2}, {&log, 3}};
    struct qn_ratelimit_waiter *w[4];
    for (int i = 0; i < 3; i++) {
        acquire(fx, "sub-a", &g[i], &w[i]);
    }
    assert_non_null(w[2]);
    /* Let tokens refill without running the loop, so the queued waiter is still queued. */
    struct timespec ts = {0, 120 * 1000000L};
    nanosleep(&ts, NULL);
    /* A newcomer joins the queue's tail while waiters exist, whatever the tokens say. */
    acquire(fx, "sub-a", &g[3], &w[3]);
    assert_non_null(w[3]);
    run_until(fx->loop, &log.count, 2);
    assert_int_equal(log.order[0], 2);
    assert_int_equal(log.order[1], 3);
}

static void test_cancel_and_independent_buckets(void **state)
{
    struct fixture *fx = *state;
    struct grant_log log = {.count = 0};
    struct grant g[5] = {{&log, 0}, {&log, 1}, {&log, 2}, {&log, 3}, {&log, 4}};
    struct qn_ratelimit_waiter *w[5];
    for (int i = 0; i < 4; i++) {
        acquire(fx, "sub-a", &g[i], &w[i]);
    }
    qn_ratelimit_cancel(w[2]); /* the head of the queue */
    qn_ratelimit_cancel(NULL);
    /* another subscription has its own, full bucket */
    acquire(fx, "sub-b", &g[4], &w[4]);
    assert_null(w[4]);
    /* scopes compare case-insensitively */
    struct grant extra = {&log, 9};
    struct qn_ratelimit_waiter *we = NULL;
    acquire(fx, "SUB-B", &extra, &we);
    assert_null(we);
    run_until(fx->loop, &log.count, 1);
    assert_int_equal(log.count, 1);
    assert_int_equal(log.order[0], 3);
    struct qn_ratelimit_stats st;
    qn_ratelimit_stats(fx->rl, &st);
    assert_int_equal(st.classes[QN_RATELIMIT_READ].queued, 0);
    assert_int_equal(st.buckets, 2);
}

static void test_pause_holds_the_bucket(void **state)
{
    struct fixture *fx = *state;
    struct grant_log log = {.count = 0};
    struct grant g = {&log, 0};
    struct qn_ratelimit_waiter *w = NULL;
    int64_t start = qn_clock_ms();
    qn_ratelimit_pause(fx->rl, "sub-a", "principal-1", QN_RATELIMIT_READ, 200);
    acquire(fx, "sub-a", &g, &w);
    assert_non_null(w);
    run_until(fx->loop, &log.count, 1);
    assert_int_equal(log.count, 1);
    /* the pause, then one refill interval */
    assert_true(log.at[0] - start >= 250 - 1);
    struct qn_ratelimit_stats st;
    qn_ratelimit_stats(fx->rl, &st);
    assert_int_equal(st.classes[QN_RATELIMIT_READ].pauses, 1);
}

static void test_remaining_header_lowers_bucket(void **state)
{
    struct fixture *fx = *state;
    struct grant_log log = {.count = 0};
    struct grant g = {&log, 0};
    struct qn_ratelimit_waiter *w = NULL;
    acquire(fx, "sub-a", &g, &w); /* creates the bucket, one token left */
    assert_null(w);
    /* another pod used the rest: the server says 0 remain */
    qn_ratelimit_observe_remaining(fx->rl, "sub-a", "principal-1", QN_RATELIMIT_READ, 0);
    /* unknown buckets and absent headers are ignored */
    qn_ratelimit_observe_remaining(fx->rl, "sub-zzz", "principal-1", QN_RATELIMIT_READ, 0);
    qn_ratelimit_observe_remaining(fx->rl, "sub-a", "principal-1", QN_RATELIMIT_READ, -1);
    acquire(fx, "sub-a", &g, &w);
    assert_non_null(w);
    run_until(fx->loop, &log.count, 1);
    struct qn_ratelimit_stats st;
    qn_ratelimit_stats(fx->rl, &st);
    assert_int_equal(st.classes[QN_RATELIMIT_READ].lowered, 1);
    assert_int_equal(st.buckets, 1);
}

static void test_queue_bound_and_free_with_waiters(void **state)
{
    struct fixture *fx = *state;
    struct grant_log log = {.count = 0};
    struct grant g = {&log, 0};
    struct qn_ratelimit_waiter *w = NULL;
    for (int i = 0; i < 2 + 4; i++) {
        acquire(fx, "sub-a", &g, &w);
    }
    struct qn_error err = {0};
    assert_int_equal(qn_ratelimit_acquire(fx->rl, "sub-a", "principal-1", QN_RATELIMIT_READ,
                                          on_grant, &g, &w, &err),
                     QN_ERR_TOO_BIG);
    assert_non_null(strstr(err.msg, "full"));
    /* teardown frees the limiter with 4 waiters queued: no callbacks, no leaks */
    assert_int_equal(log.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_take_and_wait),
        cmocka_unit_test(test_bucket_arm_sizes),
        cmocka_unit_test(test_bucket_pause),
        cmocka_unit_test(test_class_for_method),
        cmocka_unit_test(test_config_rejects_nonsense),
        cmocka_unit_test_setup_teardown(test_fifo_grants_at_refill_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_is_fifo_even_when_tokens_return, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_independent_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_holds_the_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remaining_header_lowers_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound_and_free_with_waiters, setup, teardown),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
