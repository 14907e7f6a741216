/*
 * loop.c - the single-threaded epoll event loop: fd watchers, one-shot timers and signals.
 *
 * fd watchers live in a table indexed by fd. Each registration carries a generation number in the
 * epoll user data, so an event that was already returned by epoll_wait for an fd that a callback
 * unwatched (and maybe closed and reused) in the same iteration is dropped, not misdelivered.
 *
 * Timers are kept in a binary min-heap ordered by (deadline, arm sequence). The heap has room for
 * every timer reserved at qn_loop_timer_new, so arming never allocates and cannot fail. A timer
 * armed while timers are being run only fires on a later iteration, so re-arming with a delay of 0
 * inside a callback cannot starve the loop.
 *
 * Signals arrive through a signalfd that is watched like any other fd. The loop owns its epoll fd,
 * its signalfd and every timer not yet freed; watched fds stay owned by their callers.
 */
#include "qn/loop.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "qn/log.h"
#include "qn/mem.h"

#define LOOP_MAX_EVENTS 128
#define HEAP_NONE       SIZE_MAX

struct watcher {
    qn_loop_fd_fn fn;
    void *opaque;
    int events;
    uint32_t gen;
    bool active;
};

struct qn_loop_timer {
    struct qn_loop *loop;
    qn_loop_timer_fn fn;
    void *opaque;
    int64_t deadline;
    uint64_t seq;
    size_t heap_idx; /* HEAP_NONE while disarmed */
    struct qn_loop_timer *prev;
    struct qn_loop_timer *next;
};

struct qn_loop {
    int epfd;
    int64_t now;
    bool stop;

    struct watcher *watchers; /* indexed by fd */
    size_t nwatchers;
    uint32_t next_gen;

    struct qn_loop_timer **heap;
    size_t heap_len;
    size_t heap_cap;
    uint64_t next_seq;
    struct qn_loop_timer *timers; /* every live timer, armed or not */
    size_t ntimers;

    int sigfd;
    sigset_t sigset;
    qn_loop_signal_fn sig_fn;
    void *sig_opaque;

    struct epoll_event events[LOOP_MAX_EVENTS];
};

/* Writes the text for errno @p e into @p text (strerror is not thread-safe). */
static const char *errno_text(int e, char *text, size_t len)
{
    if (strerror_r(e, text, len) != 0) {
        snprintf(text, len, "errno %d", e);
    }
    return text;
}

static qn_err_t set_sys_error(struct qn_error *err, int e, const char *what)
{
    char text[128];
    qn_error_set(err, QN_ERR_IO, "%s: %s", what, errno_text(e, text, sizeof(text)));
    if (err != NULL) {
        err->sys_errno = e;
    }
    return QN_ERR_IO;
}

int64_t qn_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t qn_loop_now(const struct qn_loop *loop)
{
    return loop->now;
}

qn_err_t qn_loop_new(struct qn_loop **out, struct qn_error *err)
{
    struct qn_loop *loop = qn_calloc(1, sizeof(*loop));
    if (loop == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate the event loop");
    }
    loop->sigfd = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        int e = errno;
        qn_free(loop);
        return set_sys_error(err, e, "epoll_create1");
    }
    sigemptyset(&loop->sigset);
    loop->now = qn_clock_ms();
    *out = loop;
    return QN_OK;
}

void qn_loop_free(struct qn_loop *loop)
{
    if (loop == NULL) {
        return;
    }
    while (loop->timers != NULL) {
        qn_loop_timer_free(loop->timers);
    }
    if (loop->sigfd >= 0) {
        close(loop->sigfd);
    }
    close(loop->epfd);
    qn_free(loop->heap);
    qn_free(loop->watchers);
    qn_free(loop);
}

/* ---- fd watchers ---- */

static uint32_t to_epoll_events(int events)
{
    uint32_t ev = 0;
    if ((events & QN_LOOP_READ) != 0) {
        ev |= EPOLLIN;
    }
    if ((events & QN_LOOP_WRITE) != 0) {
        ev |= EPOLLOUT;
    }
    return ev;
}

static qn_err_t grow_watchers(struct qn_loop *loop, int fd, struct qn_error *err)
{
    size_t need = (size_t)fd + 1;
    if (need <= loop->nwatchers) {
        return QN_OK;
    }
    size_t n = loop->nwatchers == 0 ? 64 : loop->nwatchers;
    while (n < need) {
        n *= 2;
    }
    struct watcher *w = qn_realloc(loop->watchers, n * sizeof(*w));
    if (w == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot grow the fd watcher table to %zu", n);
    }
    memset(w + loop->nwatchers, 0, (n - loop->nwatchers) * sizeof(*w));
    loop->watchers = w;
    loop->nwatchers = n;
    return QN_OK;
}

qn_err_t qn_loop_watch_fd(
    struct qn_loop *loop, int fd, int events, qn_loop_fd_fn fn, void *opaque, struct qn_error *err)
{
    if (fd < 0 || fn == NULL || events == 0 || (events & ~(QN_LOOP_READ | QN_LOOP_WRITE)) != 0) {
        return qn_error_set(err, QN_ERR_INVALID, "invalid fd watch (fd %d, events 0x%x)", fd,
                            (unsigned)events);
    }
    qn_err_t rc = grow_watchers(loop, fd, err);
    if (rc != QN_OK) {
        return rc;
    }
    struct watcher *w = &loop->watchers[fd];
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = to_epoll_events(events);

    int r = -1;
    if (w->active) {
        ev.data.u64 = ((uint64_t)w->gen << 32) | (uint32_t)fd;
        r = epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
        /* The caller closed the fd without unwatching it and this is a new one: add it. */
        if (r < 0 && errno == ENOENT) {
            w->active = false;
        }
    }
    uint32_t gen = w->gen;
    if (!w->active) {
        gen = ++loop->next_gen;
        ev.data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd;
        r = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    if (r < 0) {
        int e = errno;
        char what[64];
        snprintf(what, sizeof(what), "epoll_ctl(fd %d)", fd);
        return set_sys_error(err, e, what);
    }
    w->fn = fn;
    w->opaque = opaque;
    w->events = events;
    w->gen = gen;
    w->active = true;
    return QN_OK;
}

void qn_loop_unwatch_fd(struct qn_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->nwatchers || !loop->watchers[fd].active) {
        return;
    }
    /* Fails harmlessly (EBADF/ENOENT) when the caller already closed the fd. */
    (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    struct watcher *w = &loop->watchers[fd];
    w->active = false;
    w->fn = NULL;
    w->opaque = NULL;
    w->events = 0;
}

static void dispatch_fd(struct qn_loop *loop, const struct epoll_event *ev)
{
    int fd = (int)(uint32_t)(ev->data.u64 & 0xffffffffU);
    uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
    if ((size_t)fd >= loop->nwatchers) {
        return;
    }
    const struct watcher *w = &loop->watchers[fd];
    /* Unwatched (or unwatched and re-watched) by an earlier callback of this iteration. */
    if (!w->active || w->gen != gen) {
        return;
    }
    int fired = 0;
    if ((ev->events & (EPOLLIN | EPOLLPRI)) != 0) {
        fired |= QN_LOOP_READ;
    }
    if ((ev->events & EPOLLOUT) != 0) {
        fired |= QN_LOOP_WRITE;
    }
    /* Errors and hang-ups wake whoever is waiting; the read or write then reports them. */
    if ((ev->events & (EPOLLERR | EPOLLHUP)) != 0) {
        fired |= QN_LOOP_READ | QN_LOOP_WRITE;
    }
    fired &= w->events;
    if (fired == 0) {
        return;
    }
    /* Copy out: the callback may grow (and so move) the watcher table. */
    qn_loop_fd_fn fn = w->fn;
    void *opaque = w->opaque;
    fn(loop, fd, fired, opaque);
}

/* ---- timers: a binary min-heap on (deadline, seq) ---- */

static bool timer_before(const struct qn_loop_timer *a, const struct qn_loop_timer *b)
{
    if (a->deadline != b->deadline) {
        return a->deadline < b->deadline;
    }
    return a->seq < b->seq;
}

static void heap_place(struct qn_loop *loop, size_t idx, struct qn_loop_timer *timer)
{
    loop->heap[idx] = timer;
    timer->heap_idx = idx;
}

static void heap_sift_up(struct qn_loop *loop, size_t idx)
{
    struct qn_loop_timer *timer = loop->heap[idx];
    while (idx > 0) {
        size_t parent = (idx - 1) / 2;
        if (!timer_before(timer, loop->heap[parent])) {
            break;
        }
        heap_place(loop, idx, loop->heap[parent]);
        idx = parent;
    }
    heap_place(loop, idx, timer);
}

static void heap_sift_down(struct qn_loop *loop, size_t idx)
{
    struct qn_loop_timer *timer = loop->heap[idx];
    for (;;) {
        size_t child = 2 * idx + 1;
        if (child >= loop->heap_len) {
            break;
        }
        if (child + 1 < loop->heap_len && timer_before(loop->heap[child + 1], loop->heap[child])) {
            child++;
        }
        if (!timer_before(loop->heap[child], timer)) {
            break;
        }
        heap_place(loop, idx, loop->heap[child]);
        idx = child;
    }
    heap_place(loop, idx, timer);
}

static void heap_remove(struct qn_loop *loop, struct qn_loop_timer *timer)
{
    size_t idx = timer->heap_idx;
    timer->heap_idx = HEAP_NONE;
    loop->heap_len--;
    if (idx == loop->heap_len) {
        loop->heap[idx] = NULL;
        return;
    }
    struct qn_loop_timer *last = loop->heap[loop->heap_len];
    loop->heap[loop->heap_len] = NULL;
    heap_place(loop, idx, last);
    if (idx > 0 && timer_before(last, loop->heap[(idx - 1) / 2])) {
        heap_sift_up(loop, idx);
    } else {
        heap_sift_down(loop, idx);
    }
}

qn_err_t qn_loop_timer_new(struct qn_loop *loop,
                           qn_loop_timer_fn fn,
                           void *opaque,
                           struct qn_loop_timer **out,
                           struct qn_error *err)
{
    if (fn == NULL) {
        return qn_error_set(err, QN_ERR_INVALID, "timer callback is NULL");
    }
    /* Reserve a heap slot for every timer so that arming never allocates. */
    if (loop->ntimers + 1 > loop->heap_cap) {
        size_t cap = loop->heap_cap == 0 ? 16 : loop->heap_cap * 2;
        struct qn_loop_timer **heap = qn_realloc(loop->heap, cap * sizeof(*heap));
        if (heap == NULL) {
            return qn_error_set(err, QN_ERR_NOMEM, "cannot grow the timer heap to %zu", cap);
        }
        loop->heap = heap;
        loop->heap_cap = cap;
    }
    struct qn_loop_timer *timer = qn_calloc(1, sizeof(*timer));
    if (timer == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a timer");
    }
    timer->loop = loop;
    timer->fn = fn;
    timer->opaque = opaque;
    timer->heap_idx = HEAP_NONE;
    timer->next = loop->timers;
    if (loop->timers != NULL) {
        loop->timers->prev = timer;
    }
    loop->timers = timer;
    loop->ntimers++;
    *out = timer;
    return QN_OK;
}

void qn_loop_timer_arm(struct qn_loop_timer *timer, int64_t delay_ms)
{
    struct qn_loop *loop = timer->loop;
    if (delay_ms < 0) {
        delay_ms = 0;
    }
    int64_t now = qn_clock_ms();
    if (timer->heap_idx != HEAP_NONE) {
        heap_remove(loop, timer);
    }
    timer->deadline = delay_ms > INT64_MAX - now ? INT64_MAX : now + delay_ms;
    timer->seq = loop->next_seq++;
    QN_ASSERT(loop->heap_len < loop->heap_cap);
    loop->heap[loop->heap_len] = timer;
    timer->heap_idx = loop->heap_len;
    loop->heap_len++;
    heap_sift_up(loop, timer->heap_idx);
}

void qn_loop_timer_disarm(struct qn_loop_timer *timer)
{
    if (timer->heap_idx != HEAP_NONE) {
        heap_remove(timer->loop, timer);
    }
}

int qn_loop_timer_armed(const struct qn_loop_timer *timer)
{
    return timer->heap_idx != HEAP_NONE;
}

void qn_loop_timer_free(struct qn_loop_timer *timer)
{
    if (timer == NULL) {
        return;
    }
    struct qn_loop *loop = timer->loop;
    qn_loop_timer_disarm(timer);
    if (timer->prev != NULL) {
        timer->prev->next = timer->next;
    } else {
        loop->timers = timer->next;
    }
    if (timer->next != NULL) {
        timer->next->prev = timer->prev;
    }
    loop->ntimers--;
    qn_free(timer);
}

static void run_timers(struct qn_loop *loop)
{
    /* Timers armed from here on (seq >= limit) wait for the next iteration. */
    uint64_t limit = loop->next_seq;
    while (loop->heap_len > 0) {
        struct qn_loop_timer *timer = loop->heap[0];
        if (timer->deadline > loop->now || timer->seq >= limit) {
            break;
        }
        heap_remove(loop, timer);
        /* The callback may re-arm or free the timer: do not touch it afterwards. */
        timer->fn(loop, timer, timer->opaque);
    }
}

/* ---- signals ---- */

static void on_signalfd(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)events;
    (void)opaque;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(fd, &si, sizeof(si));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n != (ssize_t)sizeof(si)) {
            if (n < 0 && errno != EAGAIN) {
                char text[128];
                QN_LOG_WARN("loop", "signalfd read: %s", errno_text(errno, text, sizeof(text)));
            }
            return;
        }
        if (loop->sig_fn != NULL) {
            loop->sig_fn(loop, (int)si.ssi_signo, loop->sig_opaque);
        }
    }
}

qn_err_t qn_loop_watch_signals(struct qn_loop *loop,
                               const int *signals,
                               qn_loop_signal_fn fn,
                               void *opaque,
                               struct qn_error *err)
{
    sigset_t set = loop->sigset;
    for (const int *s = signals; *s != 0; s++) {
        if (sigaddset(&set, *s) != 0) {
            return qn_error_set(err, QN_ERR_INVALID, "invalid signal number %d", *s);
        }
    }
    int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (r != 0) {
        return set_sys_error(err, r, "pthread_sigmask");
    }
    /* A second call widens the set of the existing signalfd. */
    int fd = signalfd(loop->sigfd, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        return set_sys_error(err, errno, "signalfd");
    }
    if (loop->sigfd < 0) {
        qn_err_t rc = qn_loop_watch_fd(loop, fd, QN_LOOP_READ, on_signalfd, NULL, err);
        if (rc != QN_OK) {
            close(fd);
            return rc;
        }
        loop->sigfd = fd;
    }
    loop->sigset = set;
    loop->sig_fn = fn;
    loop->sig_opaque = opaque;
    return QN_OK;
}

/* ---- running ---- */

static int wait_timeout(const struct qn_loop *loop, int max_wait_ms)
{
    if (loop->heap_len == 0) {
        return max_wait_ms < 0 ? -1 : max_wait_ms;
    }
    int64_t until = loop->heap[0]->deadline - loop->now;
    if (until < 0) {
        until = 0;
    }
    if (max_wait_ms >= 0 && until > max_wait_ms) {
        until = max_wait_ms;
    }
    if (until > INT32_MAX) {
        until = INT32_MAX;
    }
    return (int)until;
}

qn_err_t qn_loop_run_once(struct qn_loop *loop, int max_wait_ms)
{
    loop->now = qn_clock_ms();
    int timeout = wait_timeout(loop, max_wait_ms);
    int n = epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS, timeout);
    if (n < 0) {
        if (errno != EINTR) {
            char text[128];
            QN_LOG_ERROR("loop", "epoll_wait: %s", errno_text(errno, text, sizeof(text)));
            return QN_ERR_IO;
        }
        n = 0;
    }
    loop->now = qn_clock_ms();
    for (int i = 0; i < n; i++) {
        dispatch_fd(loop, &loop->events[i]);
    }
    run_timers(loop);
    return QN_OK;
}

qn_err_t qn_loop_run(struct qn_loop *loop)
{
    qn_err_t rc = QN_OK;
    while (!loop->stop) {
        rc = qn_loop_run_once(loop, -1);
        if (rc != QN_OK) {
            break;
        }
    }
    loop->stop = false;
    return rc;
}

void qn_loop_stop(struct qn_loop *loop)
{
    loop->stop = true;
}
