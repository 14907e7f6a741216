/*
 * ratelimit.h - client-side token buckets that keep the worker under Azure's throttling limits.
 *
 * ARM throttles per (subscription, service principal, operation class) with token buckets
 * (reference/azure-api.md §5): reads 250 burst refilled at 25/s, writes 200 at 10/s, deletes
 * 200 at 10/s. quench keeps one bucket per (scope, principal, class) with the same sizes (all
 * configurable) plus a Graph class, and makes requests WAIT for a token instead of drawing 429s.
 *
 * Waiting is asynchronous: qn_ratelimit_acquire either takes a token at once or queues the
 * caller. Queued callers are served strictly FIFO per bucket by a loop timer armed for the exact
 * moment the next token refills; nothing polls. A 429's Retry-After can pause a bucket
 * (qn_ratelimit_pause), and the x-ms-ratelimit-remaining-* headers can lower a bucket to what
 * the server says is left (qn_ratelimit_observe_remaining), which matters when several pods share
 * one principal.
 *
 * Ownership: the limiter owns its buckets, their timers and queued waiters. It borrows the loop
 * (and the metrics registry, if given), which must outlive it. Loop thread only.
 */
#ifndef QN_RATELIMIT_H
#define QN_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "qn/err.h"
#include "qn/loop.h"
#include "qn/metrics.h"

enum qn_ratelimit_class {
    QN_RATELIMIT_READ = 0, /* ARM GET/HEAD */
    QN_RATELIMIT_WRITE,    /* ARM PUT/PATCH/POST/... */
    QN_RATELIMIT_DELETE,   /* ARM DELETE */
    QN_RATELIMIT_GRAPH,    /* every Microsoft Graph request */
    QN_RATELIMIT__COUNT
};

/* One bucket's shape. */
struct qn_ratelimit_bucket_config {
    double burst;          /* capacity in tokens; a new bucket starts full. > 0 */
    double refill_per_sec; /* tokens added per second. > 0 */
};

struct qn_ratelimit_config {
    struct qn_ratelimit_bucket_config classes[QN_RATELIMIT__COUNT];
    /* Tokens kept in reserve below each published burst (default 2). The server's bucket starts
     * refilling when the first request arrives, ours when it is queued, so a bucket that matches
     * the published size exactly runs about one token ahead of the server's. */
    double headroom;
    size_t max_waiters;         /* per bucket; an acquire beyond it fails with QN_ERR_TOO_BIG */
    struct qn_metrics *metrics; /* may be NULL; borrowed */
};

/* Counters for one class, summed over its buckets. */
struct qn_ratelimit_class_stats {
    uint64_t grants;  /* tokens handed out */
    uint64_t waits;   /* acquires that had to queue */
    uint64_t wait_ms; /* total time spent queued by granted waiters */
    uint64_t queued;  /* waiters queued right now */
    uint64_t pauses;  /* qn_ratelimit_pause calls (usually one per 429) */
    uint64_t lowered; /* times a remaining-header lowered a bucket */
};

struct qn_ratelimit_stats {
    struct qn_ratelimit_class_stats classes[QN_RATELIMIT__COUNT];
    size_t buckets; /* live buckets */
};

struct qn_ratelimit;
struct qn_ratelimit_waiter;

/* Called from a loop timer when a queued acquire is granted. The waiter handle is gone by then. */
typedef void (*qn_ratelimit_fn)(void *opaque);

/*
 * A token bucket on its own, with time passed in: the math behind the limiter, usable and
 * testable without a loop. Tokens are fractional.
 */
struct qn_token_bucket {
    double tokens;
    double burst;
    double rate;     /* tokens per second */
    int64_t last_ms; /* time of the last refill */
    int64_t paused_until_ms;
};

/* Initialises a full bucket at time @p now_ms. */
void qn_token_bucket_init(struct qn_token_bucket *bucket,
                          double burst,
                          double rate,
                          int64_t now_ms);

/* Adds the tokens earned since the last refill, up to the burst. */
void qn_token_bucket_refill(struct qn_token_bucket *bucket, int64_t now_ms);

/*
 * @brief Takes one token if one is available at @p now_ms.
 * @returns 0 if a token was taken; otherwise the number of milliseconds (>= 1) until one will
 *          be available, and nothing is taken.
 */
int64_t qn_token_bucket_take(struct qn_token_bucket *bucket, int64_t now_ms);

/* @returns the milliseconds (>= 0) until one token is available, taking nothing. */
int64_t qn_token_bucket_wait_ms(struct qn_token_bucket *bucket, int64_t now_ms);

/* Fills @p cfg with ARM's published sizes and a Graph bucket of 100 burst at 20/s. */
void qn_ratelimit_config_default(struct qn_ratelimit_config *cfg);

/* @returns the class of an ARM request by method: GET/HEAD read, DELETE delete, else write. */
enum qn_ratelimit_class qn_ratelimit_class_for_method(const char *method);

/* @returns a static name: "read", "write", "delete", "graph". */
const char *qn_ratelimit_class_name(enum qn_ratelimit_class cls);

/*
 * @brief Creates a limiter on @p loop. @p cfg is copied.
 * @returns QN_OK, QN_ERR_INVALID for a non-positive burst or rate, or QN_ERR_NOMEM.
 */
QN_NODISCARD qn_err_t qn_ratelimit_new(struct qn_loop *loop,
                                       const struct qn_ratelimit_config *cfg,
                                       struct qn_ratelimit **out,
                                       struct qn_error *err);

/* Frees the limiter, its buckets and every queued waiter (their callbacks are not called). */
void qn_ratelimit_free(struct qn_ratelimit *rl);

/*
 * @brief Takes a token from the bucket (@p scope, @p principal, @p cls), or queues for one.
 * @param scope subscription id (or tenant id, or "" for tenant-level calls); copied.
 * @param principal the client/principal id the requests are made as; copied.
 * @param out on QN_OK: NULL if the token was taken now (then @p fn is never called), or the
 *        waiter handle if queued (then @p fn(@p opaque) is called later from a loop timer,
 *        unless qn_ratelimit_cancel is called first).
 * @returns QN_OK, QN_ERR_TOO_BIG if the bucket's queue is full, or QN_ERR_NOMEM.
 * @remark Once a bucket has a queue, new acquires join its tail even if a token happens to be
 *         available, so service is FIFO.
 */
QN_NODISCARD qn_err_t qn_ratelimit_acquire(struct qn_ratelimit *rl,
                                           const char *scope,
                                           const char *principal,
                                           enum qn_ratelimit_class cls,
                                           qn_ratelimit_fn fn,
                                           void *opaque,
                                           struct qn_ratelimit_waiter **out,
                                           struct qn_error *err);

/* Removes a queued waiter; its callback will not be called. Accepts NULL. */
void qn_ratelimit_cancel(struct qn_ratelimit_waiter *waiter);

/* Empties the bucket and holds it for @p ms (e.g. a 429's Retry-After). Creates it if needed. */
void qn_ratelimit_pause(struct qn_ratelimit *rl,
                        const char *scope,
                        const char *principal,
                        enum qn_ratelimit_class cls,
                        int64_t ms);

/* Lowers the bucket to at most @p remaining tokens (from x-ms-ratelimit-remaining-*). */
void qn_ratelimit_observe_remaining(struct qn_ratelimit *rl,
                                    const char *scope,
                                    const char *principal,
                                    enum qn_ratelimit_class cls,
                                    int64_t remaining);

/* Copies the counters into @p out. */
void qn_ratelimit_stats(const struct qn_ratelimit *rl, struct qn_ratelimit_stats *out);

#endif
