/*
 * loop.h - the single-threaded event loop: fd watchers, one-shot timers and signals.
 *
 * Built on epoll (the redis ae / nginx way). Everything in the worker runs from callbacks of one
 * loop: the librdkafka queue wake-up fds, libmicrohttpd's epoll fd, curl's sockets, and timers.
 * Nothing here blocks except epoll_wait. No locks: the loop and its callbacks run on one thread.
 */
#ifndef QN_LOOP_H
#define QN_LOOP_H

#include <stdint.h>

#include "qn/err.h"

struct qn_loop;
struct qn_loop_timer;

#define QN_LOOP_READ  0x1
#define QN_LOOP_WRITE 0x2

/* Called with the fd and the events that fired (QN_LOOP_READ|QN_LOOP_WRITE). */
typedef void (*qn_loop_fd_fn)(struct qn_loop *loop, int fd, int events, void *opaque);

/* Called once when a timer expires. The timer is already disarmed and may be re-armed. */
typedef void (*qn_loop_timer_fn)(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque);

/* Called in the loop when one of the signals given to qn_loop_watch_signals arrives. */
typedef void (*qn_loop_signal_fn)(struct qn_loop *loop, int signo, void *opaque);

QN_NODISCARD qn_err_t qn_loop_new(struct qn_loop **out, struct qn_error *err);

/*
 * Frees the loop. Watched fds are not closed; timers not yet freed (armed or not) are freed, so
 * free timers before the loop or not at all. Blocked signals stay blocked. Accepts NULL.
 */
void qn_loop_free(struct qn_loop *loop);

/* Monotonic clock in milliseconds, cached per loop iteration (qn_loop_now) or read fresh. */
int64_t qn_loop_now(const struct qn_loop *loop);
int64_t qn_clock_ms(void);

/* Watches @p fd for @p events. Calling it again for the same fd replaces events and callback. */
QN_NODISCARD qn_err_t qn_loop_watch_fd(
    struct qn_loop *loop, int fd, int events, qn_loop_fd_fn fn, void *opaque, struct qn_error *err);

/* Stops watching @p fd. Safe to call from inside that fd's callback. */
void qn_loop_unwatch_fd(struct qn_loop *loop, int fd);

/* Creates a disarmed timer owned by the loop until qn_loop_timer_free. */
QN_NODISCARD qn_err_t qn_loop_timer_new(struct qn_loop *loop,
                                        qn_loop_timer_fn fn,
                                        void *opaque,
                                        struct qn_loop_timer **out,
                                        struct qn_error *err);

/* Arms (or re-arms) @p timer to fire once, @p delay_ms from now (0 = on the next iteration). */
void qn_loop_timer_arm(struct qn_loop_timer *timer, int64_t delay_ms);

/* Disarms @p timer if armed. */
void qn_loop_timer_disarm(struct qn_loop_timer *timer);

/* @returns non-zero if @p timer is armed. */
int qn_loop_timer_armed(const struct qn_loop_timer *timer);

/* Disarms and frees @p timer. Safe from inside its own callback. Accepts NULL. */
void qn_loop_timer_free(struct qn_loop_timer *timer);

/*
 * Blocks the given signals (NULL-terminated by 0) for the process and delivers them through a
 * signalfd watched by the loop. Call before other threads start (before creating librdkafka
 * handles) so they inherit the mask.
 */
QN_NODISCARD qn_err_t qn_loop_watch_signals(struct qn_loop *loop,
                                            const int *signals,
                                            qn_loop_signal_fn fn,
                                            void *opaque,
                                            struct qn_error *err);

/* Runs until qn_loop_stop. @returns QN_OK, or QN_ERR_IO if epoll_wait fails for good. */
qn_err_t qn_loop_run(struct qn_loop *loop);

/* Runs one iteration, waiting at most @p max_wait_ms (-1 = until something happens). */
qn_err_t qn_loop_run_once(struct qn_loop *loop, int max_wait_ms);

/* Makes qn_loop_run return after the current iteration. */
void qn_loop_stop(struct qn_loop *loop);

#endif
