/*
 * test_loop.c - unit tests for the epoll event loop: timers, fd watchers, signals, stop.
 *
 * Every wait is bounded: tests drive qn_loop_run_once with a small timeout and a maximum number
 * of iterations, so a broken loop fails the test instead of hanging it.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qn/loop.h"

#define MAX_ITERATIONS 200

struct timer_log {
    int order[8];
    int count;
};

struct tagged_timer {
    struct timer_log *log;
    int tag;
};

static int setup(void **state)
{
    struct qn_loop *loop = NULL;
    if (qn_loop_new(&loop, NULL) != QN_OK) {
        return -1;
    }
    *state = loop;
    return 0;
}

static int teardown(void **state)
{
    qn_loop_free(*state);
    return 0;
}

/* Runs the loop until *flag reaches @p target or the iteration bound is hit. */
static void run_until(struct qn_loop *loop, const int *flag, int target)
{
    for (int i = 0; i < MAX_ITERATIONS && *flag < target; i++) {
        assert_int_equal(qn_loop_run_once(loop, 20), QN_OK);
    }
}

static void on_tagged(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    struct tagged_timer *t = opaque;
    t->log->order[t->log->count++] = t->tag;
}

static void test_timer_fires_in_deadline_order(void **state)
{
    struct qn_loop *loop = *state;
    struct timer_log log = {.count = 0};
    struct tagged_timer tags[4] = {{&log, 30}, {&log, 10}, {&log, 20}, {&log, 0}};
    int64_t delays[4] = {30, 10, 20, 0};
    struct qn_loop_timer *timers[4];
    int64_t start = qn_clock_ms();
    for (int i = 0; i < 4; i++) {
        assert_int_equal(qn_loop_timer_new(loop, on_tagged, &tags[i], &timers[i], NULL), QN_OK);
        qn_loop_timer_arm(timers[i], delays[i]);
        assert_true(qn_loop_timer_armed(timers[i]));
    }
    run_until(loop, &log.count, 4);
    assert_int_equal(log.count, 4);
    assert_int_equal(log.order[0], 0);
    assert_int_equal(log.order[1], 10);
    assert_int_equal(log.order[2], 20);
    assert_int_equal(log.order[3], 30);
    assert_true(qn_clock_ms() - start >= 30);
    for (int i = 0; i < 4; i++) {
        assert_false(qn_loop_timer_armed(timers[i]));
        qn_loop_timer_free(timers[i]);
    }
}

static void test_timer_same_deadline_fifo(void **state)
{
    struct qn_loop *loop = *state;
    struct timer_log log = {.count = 0};
    struct tagged_timer tags[5];
    struct qn_loop_timer *timers[5];
    for (int i = 0; i < 5; i++) {
        tags[i] = (struct tagged_timer){&log, i};
        assert_int_equal(qn_loop_timer_new(loop, on_tagged, &tags[i], &timers[i], NULL), QN_OK);
        qn_loop_timer_arm(timers[i], 0);
    }
    run_until(loop, &log.count, 5);
    assert_int_equal(log.count, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(log.order[i], i);
        qn_loop_timer_free(timers[i]);
    }
}

struct rearm {
    int fired;
    int limit;
};

static void on_rearm(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    struct rearm *r = opaque;
    assert_false(qn_loop_timer_armed(timer));
    r->fired++;
    if (r->fired < r->limit) {
        qn_loop_timer_arm(timer, 0);
    }
}

static void test_timer_rearm_in_callback(void **state)
{
    struct qn_loop *loop = *state;
    struct rearm r = {.fired = 0, .limit = 3};
    struct qn_loop_timer *timer = NULL;
    assert_int_equal(qn_loop_timer_new(loop, on_rearm, &r, &timer, NULL), QN_OK);
    qn_loop_timer_arm(timer, 0);
    /* A timer re-armed with delay 0 inside its callback waits for the next iteration. */
    assert_int_equal(qn_loop_run_once(loop, 0), QN_OK);
    assert_int_equal(r.fired, 1);
    assert_true(qn_loop_timer_armed(timer));
    assert_int_equal(qn_loop_run_once(loop, 0), QN_OK);
    assert_int_equal(r.fired, 2);
    run_until(loop, &r.fired, 3);
    assert_int_equal(r.fired, 3);
    assert_false(qn_loop_timer_armed(timer));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qn_loop_run_once(loop, 0), QN_OK);
    }
    assert_int_equal(r.fired, 3);
    qn_loop_timer_free(timer);
}

static void on_count(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    (*(int *)opaque)++;
}

static void test_timer_disarm(void **state)
{
    struct qn_loop *loop = *state;
    int fired = 0;
    struct qn_loop_timer *timer = NULL;
    assert_int_equal(qn_loop_timer_new(loop, on_count, &fired, &timer, NULL), QN_OK);
    assert_false(qn_loop_timer_armed(timer));
    qn_loop_timer_arm(timer, 0);
    qn_loop_timer_disarm(timer);
    assert_false(qn_loop_timer_armed(timer));
    qn_loop_timer_disarm(timer); /* disarming twice is harmless */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qn_loop_run_once(loop, 5), QN_OK);
    }
    assert_int_equal(fired, 0);

    /* Re-arming replaces the deadline: a far one, then a near one. */
    qn_loop_timer_arm(timer, 60000);
    qn_loop_timer_arm(timer, 1);
    run_until(loop, &fired, 1);
    assert_int_equal(fired, 1);
    qn_loop_timer_free(timer);
}

static void test_timer_disarm_middle_of_heap(void **state)
{
    struct qn_loop *loop = *state;
    struct timer_log log = {.count = 0};
    struct tagged_timer tags[6];
    struct qn_loop_timer *timers[6];
    for (int i = 0; i < 6; i++) {
        tags[i] = (struct tagged_timer){&log, i};
        assert_int_equal(qn_loop_timer_new(loop, on_tagged, &tags[i], &timers[i], NULL), QN_OK);
        qn_loop_timer_arm(timers[i], (int64_t)(6 - i) * 20);
    }
    qn_loop_timer_disarm(timers[2]);
    qn_loop_timer_free(timers[4]);
    run_until(loop, &log.count, 4);
    assert_int_equal(log.count, 4);
    assert_int_equal(log.order[0], 5);
    assert_int_equal(log.order[1], 3);
    assert_int_equal(log.order[2], 1);
    assert_int_equal(log.order[3], 0);
    for (int i = 0; i < 6; i++) {
        if (i != 4) {
            qn_loop_timer_free(timers[i]);
        }
    }
}

struct self_free {
    int fired;
    struct qn_loop_timer *other; /* freed by the callback too, if set */
};

static void on_self_free(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    struct self_free *sf = opaque;
    sf->fired++;
    qn_loop_timer_free(timer);
    if (sf->other != NULL) {
        qn_loop_timer_free(sf->other);
        sf->other = NULL;
    }
}

static void test_timer_free_in_callback(void **state)
{
    struct qn_loop *loop = *state;
    int other_fired = 0;
    struct self_free sf = {.fired = 0, .other = NULL};
    struct qn_loop_timer *timer = NULL;
    struct qn_loop_timer *other = NULL;
    assert_int_equal(qn_loop_timer_new(loop, on_self_free, &sf, &timer, NULL), QN_OK);
    assert_int_equal(qn_loop_timer_new(loop, on_count, &other_fired, &other, NULL), QN_OK);
    sf.other = other;
    /* Both are due in the same iteration; the first frees itself and the second. */
    qn_loop_timer_arm(timer, 0);
    qn_loop_timer_arm(other, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qn_loop_run_once(loop, 5), QN_OK);
    }
    assert_int_equal(sf.fired, 1);
    assert_int_equal(other_fired, 0);
    assert_null(sf.other);
}

static void test_loop_free_releases_timers(void **state)
{
    (void)state;
    struct qn_loop *loop = NULL;
    assert_int_equal(qn_loop_new(&loop, NULL), QN_OK);
    int fired = 0;
    struct qn_loop_timer *armed = NULL;
    struct qn_loop_timer *idle = NULL;
    assert_int_equal(qn_loop_timer_new(loop, on_count, &fired, &armed, NULL), QN_OK);
    assert_int_equal(qn_loop_timer_new(loop, on_count, &fired, &idle, NULL), QN_OK);
    qn_loop_timer_arm(armed, 1000);
    qn_loop_free(loop); /* LeakSanitizer checks both timers are gone */
    qn_loop_free(NULL);
    qn_loop_timer_free(NULL);
    assert_int_equal(fired, 0);
}

struct pipe_watch {
    int fds[2];
    int calls;
    int last_events;
    char got;
};

static void on_pipe_readable(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)loop;
    struct pipe_watch *pw = opaque;
    assert_int_equal(fd, pw->fds[0]);
    pw->calls++;
    pw->last_events = events;
    assert_int_equal(read(fd, &pw->got, 1), 1);
}

static void test_fd_watch_pipe(void **state)
{
    struct qn_loop *loop = *state;
    struct pipe_watch pw = {.calls = 0};
    assert_int_equal(pipe(pw.fds), 0);
    assert_int_equal(qn_loop_watch_fd(loop, pw.fds[0], QN_LOOP_READ, on_pipe_readable, &pw, NULL),
                     QN_OK);

    /* Nothing to read: a bounded wait returns without calling back. */
    assert_int_equal(qn_loop_run_once(loop, 10), QN_OK);
    assert_int_equal(pw.calls, 0);

    assert_int_equal(write(pw.fds[1], "x", 1), 1);
    run_until(loop, &pw.calls, 1);
    assert_int_equal(pw.calls, 1);
    assert_int_equal(pw.last_events, QN_LOOP_READ);
    assert_int_equal(pw.got, 'x');

    /* Watching the same fd again replaces the callback's events; writability never fires here. */
    assert_int_equal(qn_loop_watch_fd(loop, pw.fds[0], QN_LOOP_READ, on_pipe_readable, &pw, NULL),
                     QN_OK);
    assert_int_equal(write(pw.fds[1], "y", 1), 1);
    run_until(loop, &pw.calls, 2);
    assert_int_equal(pw.calls, 2);
    assert_int_equal(pw.got, 'y');

    /* After unwatching, pending data no longer wakes anyone. */
    qn_loop_unwatch_fd(loop, pw.fds[0]);
    qn_loop_unwatch_fd(loop, pw.fds[0]); /* twice is harmless */
    assert_int_equal(write(pw.fds[1], "z", 1), 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qn_loop_run_once(loop, 5), QN_OK);
    }
    assert_int_equal(pw.calls, 2);
    close(pw.fds[0]);
    close(pw.fds[1]);
}

static void on_pipe_writable(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)fd;
    int *calls = opaque;
    assert_int_equal(events, QN_LOOP_WRITE);
    (*calls)++;
    qn_loop_unwatch_fd(loop, fd);
}

static void test_fd_watch_write(void **state)
{
    struct qn_loop *loop = *state;
    int fds[2];
    int calls = 0;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(qn_loop_watch_fd(loop, fds[1], QN_LOOP_WRITE, on_pipe_writable, &calls, NULL),
                     QN_OK);
    run_until(loop, &calls, 1);
    assert_int_equal(calls, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qn_loop_run_once(loop, 0), QN_OK);
    }
    assert_int_equal(calls, 1);
    close(fds[0]);
    close(fds[1]);
}

static void test_fd_watch_invalid(void **state)
{
    struct qn_loop *loop = *state;
    struct qn_error err;
    memset(&err, 0, sizeof(err));
    int dummy = 0;
    assert_int_equal(qn_loop_watch_fd(loop, -1, QN_LOOP_READ, on_pipe_writable, &dummy, &err),
                     QN_ERR_INVALID);
    assert_int_equal(err.code, QN_ERR_INVALID);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(qn_loop_watch_fd(loop, 0, 0, on_pipe_writable, &dummy, NULL), QN_ERR_INVALID);
    /* A closed fd number is refused by epoll_ctl. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(qn_loop_watch_fd(loop, fds[0], QN_LOOP_READ, on_pipe_writable, &dummy, &err),
                     QN_ERR_IO);
    qn_loop_unwatch_fd(loop, fds[0]);
    qn_loop_unwatch_fd(loop, 1 << 20); /* never watched: ignored */
}

struct pair {
    int a[2];
    int b[2];
    int calls;
};

/* Whichever end fires first unwatches (and closes) both read ends. */
static void on_pair_readable(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)fd;
    (void)events;
    struct pair *p = opaque;
    p->calls++;
    qn_loop_unwatch_fd(loop, p->a[0]);
    qn_loop_unwatch_fd(loop, p->b[0]);
    close(p->a[0]);
    close(p->b[0]);
}

static void test_fd_unwatch_in_callback(void **state)
{
    struct qn_loop *loop = *state;
    struct pair p = {.calls = 0};
    assert_int_equal(pipe(p.a), 0);
    assert_int_equal(pipe(p.b), 0);
    assert_int_equal(qn_loop_watch_fd(loop, p.a[0], QN_LOOP_READ, on_pair_readable, &p, NULL),
                     QN_OK);
    assert_int_equal(qn_loop_watch_fd(loop, p.b[0], QN_LOOP_READ, on_pair_readable, &p, NULL),
                     QN_OK);
    /* Both are readable before the wait, so one epoll_wait returns both events. */
    assert_int_equal(write(p.a[1], "a", 1), 1);
    assert_int_equal(write(p.b[1], "b", 1), 1);
    assert_int_equal(qn_loop_run_once(loop, 100), QN_OK);
    assert_int_equal(p.calls, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qn_loop_run_once(loop, 0), QN_OK);
    }
    assert_int_equal(p.calls, 1);
    close(p.a[1]);
    close(p.b[1]);
}

struct reuse {
    int pipes[2][2];
    int fired;       /* index of the pipe whose callback ran first, or -1 */
    int reuse_calls; /* calls of on_reuse; must stay 1 */
    int fresh_calls;
    int fresh[2];
};

static void on_reuse_fresh(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)loop;
    (void)events;
    struct reuse *r = opaque;
    r->fresh_calls++;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
}

/*
 * Both pipes are readable in one epoll_wait. Whichever callback runs first closes the other pipe
 * and puts a new, empty pipe on the same fd number, watched by on_reuse_fresh. The event already
 * returned for the old fd must be dropped, not delivered to the new watcher.
 */
static void on_reuse(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)events;
    struct reuse *r = opaque;
    r->reuse_calls++;
    int me = fd == r->pipes[0][0] ? 0 : 1;
    int other = 1 - me;
    r->fired = me;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    qn_loop_unwatch_fd(loop, fd);

    int old = r->pipes[other][0];
    qn_loop_unwatch_fd(loop, old);
    /* dup2 closes the old read end and puts the new one on its number in one step. */
    int np[2];
    assert_int_equal(pipe(np), 0);
    assert_int_equal(dup2(np[0], old), old);
    close(np[0]);
    close(r->pipes[other][1]);
    r->pipes[other][0] = -1;
    r->pipes[other][1] = -1;
    /* Non-blocking, so a wrongly delivered stale event fails the read instead of hanging. */
    assert_int_equal(fcntl(old, F_SETFL, O_NONBLOCK), 0);
    r->fresh[0] = old;
    r->fresh[1] = np[1];
    assert_int_equal(qn_loop_watch_fd(loop, old, QN_LOOP_READ, on_reuse_fresh, r, NULL), QN_OK);
}

static void test_fd_reuse_in_callback(void **state)
{
    struct qn_loop *loop = *state;
    struct reuse r = {.fired = -1, .reuse_calls = 0, .fresh_calls = 0};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe(r.pipes[i]), 0);
        assert_int_equal(qn_loop_watch_fd(loop, r.pipes[i][0], QN_LOOP_READ, on_reuse, &r, NULL),
                         QN_OK);
        assert_int_equal(write(r.pipes[i][1], "x", 1), 1);
    }
    assert_int_equal(qn_loop_run_once(loop, 100), QN_OK);
    assert_int_equal(r.reuse_calls, 1);
    assert_int_equal(r.fresh_calls, 0);

    /* The new watcher works normally once its own pipe has data. */
    assert_int_equal(write(r.fresh[1], "y", 1), 1);
    run_until(loop, &r.fresh_calls, 1);
    assert_int_equal(r.fresh_calls, 1);
    assert_int_equal(r.reuse_calls, 1);
    qn_loop_unwatch_fd(loop, r.fresh[0]);
    close(r.fresh[0]);
    close(r.fresh[1]);
    close(r.pipes[r.fired][0]);
    close(r.pipes[r.fired][1]);
}

struct sig_state {
    int count;
    int last;
};

static void on_signal(struct qn_loop *loop, int signo, void *opaque)
{
    (void)loop;
    struct sig_state *s = opaque;
    s->count++;
    s->last = signo;
}

static void test_signal_delivery(void **state)
{
    struct qn_loop *loop = *state;
    struct sig_state s = {.count = 0, .last = 0};
    static const int signals[] = {SIGUSR1, SIGUSR2, 0};
    assert_int_equal(qn_loop_watch_signals(loop, signals, on_signal, &s, NULL), QN_OK);
    assert_int_equal(raise(SIGUSR1), 0);
    run_until(loop, &s.count, 1);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.last, SIGUSR1);
    assert_int_equal(raise(SIGUSR2), 0);
    run_until(loop, &s.count, 2);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.last, SIGUSR2);

    /* Invalid signal numbers are refused. */
    static const int bad[] = {100000, 0};
    assert_int_equal(qn_loop_watch_signals(loop, bad, on_signal, &s, NULL), QN_ERR_INVALID);
}

static void on_stop(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)timer;
    (*(int *)opaque)++;
    qn_loop_stop(loop);
}

static void test_run_until_stop(void **state)
{
    struct qn_loop *loop = *state;
    int fired = 0;
    struct qn_loop_timer *timer = NULL;
    assert_int_equal(qn_loop_timer_new(loop, on_stop, &fired, &timer, NULL), QN_OK);
    qn_loop_timer_arm(timer, 5);
    assert_int_equal(qn_loop_run(loop), QN_OK);
    assert_int_equal(fired, 1);
    /* run can be entered again after a stop. */
    qn_loop_timer_arm(timer, 1);
    assert_int_equal(qn_loop_run(loop), QN_OK);
    assert_int_equal(fired, 2);
    qn_loop_timer_free(timer);
}

static void test_now_is_cached_and_monotonic(void **state)
{
    struct qn_loop *loop = *state;
    int64_t before = qn_loop_now(loop);
    assert_true(before <= qn_clock_ms());
    int64_t t0 = qn_clock_ms();
    assert_int_equal(qn_loop_run_once(loop, 25), QN_OK);
    int64_t after = qn_loop_now(loop);
    assert_true(after >= t0 + 20);
    assert_true(after <= qn_clock_ms());
    /* Cached: reading it twice without an iteration gives the same value. */
    assert_int_equal(qn_loop_now(loop), after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timer_fires_in_deadline_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_same_deadline_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_rearm_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_disarm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_disarm_middle_of_heap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_free_in_callback, setup, teardown),
        cmocka_unit_test(test_loop_free_releases_timers),
        cmocka_unit_test_setup_teardown(test_fd_watch_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_watch_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_watch_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_unwatch_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_reuse_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_until_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_now_is_cached_and_monotonic, setup, teardown),
    };
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
