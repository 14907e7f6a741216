/*
 * ratelimit.c - token buckets keyed by (scope, principal, class), with FIFO wait queues served by
 * one loop timer per bucket.
 *
 * Invariants: a bucket's timer is armed exactly when its queue is non-empty, for the moment the
 * head can be served; a queued waiter is owned by its bucket until granted (freed before its
 * callback runs) or cancelled. Buckets live in a chained hash table; a bucket that is full, idle
 * and unpaused is indistinguishable from a new one, so such buckets are swept when the table
 * grows past QN_RL_SWEEP_AT.
 */
#include "qn/ratelimit.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "qn/log.h"
#include "qn/mem.h"

#define RL_HASH_SLOTS 256
#define RL_SWEEP_AT   1024
#define RL_EPSILON    1e-9

struct qn_ratelimit_waiter {
    struct bucket *bucket;
    struct qn_ratelimit_waiter *next;
    struct qn_ratelimit_waiter *prev;
    qn_ratelimit_fn fn;
    void *opaque;
    int64_t queued_at;
};

struct bucket {
    struct qn_ratelimit *rl;
    struct bucket *hnext;
    uint64_t hash;
    enum qn_ratelimit_class cls;
    char *scope;
    char *principal;
    struct qn_token_bucket tb;
    struct qn_ratelimit_waiter *head;
    struct qn_ratelimit_waiter *tail;
    size_t nwaiters;
    struct qn_loop_timer *timer;
    bool granting; /* inside its timer callback: never swept */
};

struct qn_ratelimit {
    struct qn_loop *loop;
    struct qn_ratelimit_config cfg;
    struct bucket *slots[RL_HASH_SLOTS];
    size_t nbuckets;
    struct qn_ratelimit_stats stats;
};

/* ---- the bucket math ---- */

void qn_token_bucket_init(struct qn_token_bucket *bucket, double burst, double rate, int64_t now_ms)
{
    bucket->burst = burst;
    bucket->rate = rate;
    bucket->tokens = burst;
    bucket->last_ms = now_ms;
    bucket->paused_until_ms = 0;
}

void qn_token_bucket_refill(struct qn_token_bucket *bucket, int64_t now_ms)
{
    /* last_ms lies in the future while paused: nothing is earned until the pause ends. */
    if (now_ms <= bucket->last_ms) {
        return;
    }
    double earned = (double)(now_ms - bucket->last_ms) * bucket->rate / 1000.0;
    bucket->tokens += earned;
    if (bucket->tokens > bucket->burst) {
        bucket->tokens = bucket->burst;
    }
    bucket->last_ms = now_ms;
}

int64_t qn_token_bucket_wait_ms(struct qn_token_bucket *bucket, int64_t now_ms)
{
    qn_token_bucket_refill(bucket, now_ms);
    int64_t start = bucket->last_ms > now_ms ? bucket->last_ms - now_ms : 0;
    if (start == 0 && bucket->tokens >= 1.0 - RL_EPSILON) {
        return 0;
    }
    double need = 1.0 - bucket->tokens;
    if (need < 0) {
        need = 0;
    }
    /* ceil() without libm: the build links none. */
    double ms = need * 1000.0 / bucket->rate - RL_EPSILON;
    int64_t whole = (int64_t)ms;
    if ((double)whole < ms) {
        whole++;
    }
    int64_t wait = start + whole;
    return wait < 1 ? 1 : wait;
}

int64_t qn_token_bucket_take(struct qn_token_bucket *bucket, int64_t now_ms)
{
    int64_t wait = qn_token_bucket_wait_ms(bucket, now_ms);
    if (wait == 0) {
        bucket->tokens -= 1.0;
        if (bucket->tokens < 0) {
            bucket->tokens = 0;
        }
    }
    return wait;
}

/* ---- configuration ---- */

void qn_ratelimit_config_default(struct qn_ratelimit_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->classes[QN_RATELIMIT_READ] = (struct qn_ratelimit_bucket_config){250, 25};
    cfg->classes[QN_RATELIMIT_WRITE] = (struct qn_ratelimit_bucket_config){200, 10};
    cfg->classes[QN_RATELIMIT_DELETE] = (struct qn_ratelimit_bucket_config){200, 10};
    cfg->classes[QN_RATELIMIT_GRAPH] = (struct qn_ratelimit_bucket_config){100, 20};
    cfg->max_waiters = 10000;
    cfg->headroom = 2;
}

enum qn_ratelimit_class qn_ratelimit_class_for_method(const char *method)
{
    if (strcasecmp(method, "GET") == 0 || strcasecmp(method, "HEAD") == 0) {
        return QN_RATELIMIT_READ;
    }
    if (strcasecmp(method, "DELETE") == 0) {
        return QN_RATELIMIT_DELETE;
    }
    return QN_RATELIMIT_WRITE;
}

const char *qn_ratelimit_class_name(enum qn_ratelimit_class cls)
{
    static const char *const names[QN_RATELIMIT__COUNT] = {"read", "write", "delete", "graph"};
    if ((int)cls < 0 || cls >= QN_RATELIMIT__COUNT) {
        return "unknown";
    }
    return names[cls];
}

/* ---- buckets ---- */

static uint64_t key_hash(const char *scope, const char *principal, enum qn_ratelimit_class cls)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = scope; *p != '\0'; p++) {
        /* Subscription ids compare case-insensitively. */
        unsigned char c = (unsigned char)*p;
        c = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
        h = (h ^ c) * 1099511628211ULL;
    }
    h = (h ^ 0x1f) * 1099511628211ULL;
    for (const char *p = principal; *p != '\0'; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    return (h ^ (uint64_t)cls) * 1099511628211ULL;
}

static void bucket_free(struct bucket *b)
{
    while (b->head != NULL) {
        struct qn_ratelimit_waiter *w = b->head;
        b->head = w->next;
        qn_free(w);
    }
    qn_loop_timer_free(b->timer);
    qn_free(b->scope);
    qn_free(b->principal);
    qn_free(b);
}

static void on_bucket_timer(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque);

static void sweep_idle(struct qn_ratelimit *rl)
{
    int64_t now = qn_clock_ms();
    for (size_t i = 0; i < RL_HASH_SLOTS; i++) {
        struct bucket **pp = &rl->slots[i];
        while (*pp != NULL) {
            struct bucket *b = *pp;
            qn_token_bucket_refill(&b->tb, now);
            if (b->head == NULL && !b->granting && b->tb.last_ms <= now &&
                b->tb.tokens >= b->tb.burst) {
                *pp = b->hnext;
                rl->nbuckets--;
                bucket_free(b);
                continue;
            }
            pp = &b->hnext;
        }
    }
}

static struct bucket *find_bucket(struct qn_ratelimit *rl,
                                  const char *scope,
                                  const char *principal,
                                  enum qn_ratelimit_class cls,
                                  bool create,
                                  struct qn_error *err)
{
    uint64_t h = key_hash(scope, principal, cls);
    for (struct bucket *b = rl->slots[h % RL_HASH_SLOTS]; b != NULL; b = b->hnext) {
        if (b->hash == h && b->cls == cls && strcasecmp(b->scope, scope) == 0 &&
            strcmp(b->principal, principal) == 0) {
            return b;
        }
    }
    if (!create) {
        return NULL;
    }
    if (rl->nbuckets >= RL_SWEEP_AT) {
        sweep_idle(rl);
    }
    struct bucket *b = qn_calloc(1, sizeof(*b));
    if (b == NULL) {
        qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a rate-limit bucket");
        return NULL;
    }
    b->rl = rl;
    b->hash = h;
    b->cls = cls;
    b->scope = qn_strdup(scope);
    b->principal = qn_strdup(principal);
    if (b->scope == NULL || b->principal == NULL ||
        qn_loop_timer_new(rl->loop, on_bucket_timer, b, &b->timer, err) != QN_OK) {
        qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a rate-limit bucket");
        bucket_free(b);
        return NULL;
    }
    const struct qn_ratelimit_bucket_config *bc = &rl->cfg.classes[cls];
    double burst = bc->burst - rl->cfg.headroom >= 1.0 ? bc->burst - rl->cfg.headroom : 1.0;
    qn_token_bucket_init(&b->tb, burst, bc->refill_per_sec, qn_clock_ms());
    b->hnext = rl->slots[h % RL_HASH_SLOTS];
    rl->slots[h % RL_HASH_SLOTS] = b;
    rl->nbuckets++;
    return b;
}

static void
count_metric(struct qn_ratelimit *rl, enum qn_ratelimit_class cls, const char *name, double delta)
{
    if (rl->cfg.metrics == NULL) {
        return;
    }
    char labels[32];
    (void)snprintf(labels, sizeof(labels), "class=\"%s\"", qn_ratelimit_class_name(cls));
    qn_metrics_add(rl->cfg.metrics, name, labels, delta);
}

static void arm_for_head(struct bucket *b)
{
    if (b->head == NULL) {
        qn_loop_timer_disarm(b->timer);
        return;
    }
    int64_t wait = qn_token_bucket_wait_ms(&b->tb, qn_clock_ms());
    qn_loop_timer_arm(b->timer, wait);
}

static void on_bucket_timer(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    struct bucket *b = opaque;
    struct qn_ratelimit *rl = b->rl;
    struct qn_ratelimit_class_stats *st = &rl->stats.classes[b->cls];
    /* Grant in FIFO order while tokens last. Callbacks may queue or cancel waiters here. */
    b->granting = true;
    while (b->head != NULL) {
        int64_t now = qn_clock_ms();
        if (qn_token_bucket_take(&b->tb, now) != 0) {
            break;
        }
        struct qn_ratelimit_waiter *w = b->head;
        b->head = w->next;
        if (b->head != NULL) {
            b->head->prev = NULL;
        } else {
            b->tail = NULL;
        }
        b->nwaiters--;
        st->queued--;
        st->grants++;
        int64_t waited = now - w->queued_at;
        st->wait_ms += (uint64_t)(waited > 0 ? waited : 0);
        count_metric(rl, b->cls, "quench_azure_ratelimit_wait_seconds_total",
                     (double)(waited > 0 ? waited : 0) / 1000.0);
        qn_ratelimit_fn fn = w->fn;
        void *w_opaque = w->opaque;
        qn_free(w);
        fn(w_opaque);
    }
    b->granting = false;
    arm_for_head(b);
}

qn_err_t qn_ratelimit_new(struct qn_loop *loop,
                          const struct qn_ratelimit_config *cfg,
                          struct qn_ratelimit **out,
                          struct qn_error *err)
{
    for (int i = 0; i < QN_RATELIMIT__COUNT; i++) {
        const struct qn_ratelimit_bucket_config *bc = &cfg->classes[i];
        if (!(bc->burst >= 1.0) || !(bc->refill_per_sec > 0.0)) {
            return qn_error_set(err, QN_ERR_INVALID,
                                "rate limit for %s needs burst >= 1 and refill > 0",
                                qn_ratelimit_class_name((enum qn_ratelimit_class)i));
        }
    }
    struct qn_ratelimit *rl = qn_calloc(1, sizeof(*rl));
    if (rl == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate the rate limiter");
    }
    rl->loop = loop;
    rl->cfg = *cfg;
    if (rl->cfg.max_waiters == 0) {
        rl->cfg.max_waiters = 10000;
    }
    if (rl->cfg.metrics != NULL &&
        (qn_metrics_describe(
             rl->cfg.metrics, "quench_azure_ratelimit_waits_total", QN_METRIC_COUNTER,
             "Azure requests that waited for a client-side rate-limit token.") != QN_OK ||
         qn_metrics_describe(
             rl->cfg.metrics, "quench_azure_ratelimit_wait_seconds_total", QN_METRIC_COUNTER,
             "Time Azure requests spent waiting for rate-limit tokens.") != QN_OK)) {
        QN_LOG_WARN("ratelimit", "cannot describe the rate-limit metrics");
    }
    *out = rl;
    return QN_OK;
}

void qn_ratelimit_free(struct qn_ratelimit *rl)
{
    if (rl == NULL) {
        return;
    }
    for (size_t i = 0; i < RL_HASH_SLOTS; i++) {
        while (rl->slots[i] != NULL) {
            struct bucket *b = rl->slots[i];
            rl->slots[i] = b->hnext;
            bucket_free(b);
        }
    }
    qn_free(rl);
}

qn_err_t qn_ratelimit_acquire(struct qn_ratelimit *rl,
                              const char *scope,
                              const char *principal,
                              enum qn_ratelimit_class cls,
                              qn_ratelimit_fn fn,
                              void *opaque,
                              struct qn_ratelimit_waiter **out,
                              struct qn_error *err)
{
    QN_ASSERT((int)cls >= 0 && cls < QN_RATELIMIT__COUNT);
    struct bucket *b = find_bucket(rl, scope, principal, cls, true, err);
    if (b == NULL) {
        return QN_ERR_NOMEM;
    }
    struct qn_ratelimit_class_stats *st = &rl->stats.classes[cls];
    int64_t now = qn_clock_ms();
    if (b->head == NULL && qn_token_bucket_take(&b->tb, now) == 0) {
        st->grants++;
        *out = NULL;
        return QN_OK;
    }
    if (b->nwaiters >= rl->cfg.max_waiters) {
        return qn_error_set(err, QN_ERR_TOO_BIG, "rate-limit queue for %s is full (%zu waiting)",
                            qn_ratelimit_class_name(cls), b->nwaiters);
    }
    struct qn_ratelimit_waiter *w = qn_calloc(1, sizeof(*w));
    if (w == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a rate-limit waiter");
    }
    w->bucket = b;
    w->fn = fn;
    w->opaque = opaque;
    w->queued_at = now;
    w->prev = b->tail;
    if (b->tail != NULL) {
        b->tail->next = w;
    } else {
        b->head = w;
    }
    b->tail = w;
    b->nwaiters++;
    st->waits++;
    st->queued++;
    count_metric(rl, cls, "quench_azure_ratelimit_waits_total", 1);
    if (b->head == w) {
        arm_for_head(b);
    }
    *out = w;
    return QN_OK;
}

void qn_ratelimit_cancel(struct qn_ratelimit_waiter *waiter)
{
    if (waiter == NULL) {
        return;
    }
    struct bucket *b = waiter->bucket;
    bool was_head = b->head == waiter;
    if (waiter->prev != NULL) {
        waiter->prev->next = waiter->next;
    } else {
        b->head = waiter->next;
    }
    if (waiter->next != NULL) {
        waiter->next->prev = waiter->prev;
    } else {
        b->tail = waiter->prev;
    }
    b->nwaiters--;
    b->rl->stats.classes[b->cls].queued--;
    qn_free(waiter);
    if (was_head) {
        arm_for_head(b);
    }
}

void qn_ratelimit_pause(struct qn_ratelimit *rl,
                        const char *scope,
                        const char *principal,
                        enum qn_ratelimit_class cls,
                        int64_t ms)
{
    struct bucket *b = find_bucket(rl, scope, principal, cls, true, NULL);
    if (b == NULL || ms <= 0) {
        return;
    }
    int64_t now = qn_clock_ms();
    qn_token_bucket_refill(&b->tb, now);
    int64_t until = now + ms;
    b->tb.tokens = 0;
    if (until > b->tb.last_ms) {
        b->tb.last_ms = until;
    }
    b->tb.paused_until_ms = b->tb.last_ms;
    rl->stats.classes[cls].pauses++;
    QN_LOG_DEBUG("ratelimit", "%s bucket paused for %lld ms", qn_ratelimit_class_name(cls),
                 (long long)ms);
    if (b->head != NULL) {
        arm_for_head(b);
    }
}

void qn_ratelimit_observe_remaining(struct qn_ratelimit *rl,
                                    const char *scope,
                                    const char *principal,
                                    enum qn_ratelimit_class cls,
                                    int64_t remaining)
{
    if (remaining < 0) {
        return;
    }
    struct bucket *b = find_bucket(rl, scope, principal, cls, false, NULL);
    if (b == NULL) {
        return;
    }
    qn_token_bucket_refill(&b->tb, qn_clock_ms());
    if ((double)remaining < b->tb.tokens) {
        b->tb.tokens = (double)remaining;
        rl->stats.classes[cls].lowered++;
        if (b->head != NULL) {
            arm_for_head(b);
        }
    }
}

void qn_ratelimit_stats(const struct qn_ratelimit *rl, struct qn_ratelimit_stats *out)
{
    *out = rl->stats;
    out->buckets = rl->nbuckets;
}
