/*
 * tracker.c - per-partition FIFO of consumed messages and their outstanding produce requests.
 * Partitions are few (tens), so they live in a small array searched linearly.
 */
#include "tracker.h"

#include <string.h>

#include "qn/mem.h"

struct partition_track;

struct qn_track_node {
    struct partition_track *pt;
    struct qn_track_node *next;
    int64_t offset;
    int refs;
    int failed;
};

struct partition_track {
    struct qn_tracker *tracker;
    char *topic;
    int32_t partition;
    int revoked;
    int blocked; /* a failed node: never store past it */
    struct qn_track_node *head;
    struct qn_track_node *tail;
};

struct qn_tracker {
    qn_tracker_store_fn store;
    void *opaque;
    struct partition_track **parts;
    size_t part_count;
    long pending;
    long inflight;
};

qn_err_t qn_tracker_new(qn_tracker_store_fn store, void *opaque, struct qn_tracker **out)
{
    struct qn_tracker *t = qn_calloc(1, sizeof(*t));
    if (t == NULL) {
        return QN_ERR_NOMEM;
    }
    t->store = store;
    t->opaque = opaque;
    *out = t;
    return QN_OK;
}

void qn_tracker_free(struct qn_tracker *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->part_count; i++) {
        struct qn_track_node *n = t->parts[i]->head;
        while (n != NULL) {
            struct qn_track_node *next = n->next;
            qn_free(n);
            n = next;
        }
        qn_free(t->parts[i]->topic);
        qn_free(t->parts[i]);
    }
    qn_free(t->parts);
    qn_free(t);
}

static struct partition_track *
find_part(struct qn_tracker *t, const char *topic, int32_t partition, int create)
{
    for (size_t i = 0; i < t->part_count; i++) {
        if (t->parts[i]->partition == partition && strcmp(t->parts[i]->topic, topic) == 0) {
            return t->parts[i];
        }
    }
    if (!create) {
        return NULL;
    }
    struct partition_track **parts = qn_realloc(t->parts, (t->part_count + 1) * sizeof(*parts));
    if (parts == NULL) {
        return NULL;
    }
    t->parts = parts;
    struct partition_track *pt = qn_calloc(1, sizeof(*pt));
    if (pt == NULL) {
        return NULL;
    }
    pt->topic = qn_strdup(topic);
    if (pt->topic == NULL) {
        qn_free(pt);
        return NULL;
    }
    pt->tracker = t;
    pt->partition = partition;
    t->parts[t->part_count++] = pt;
    return pt;
}

struct qn_track_node *
qn_tracker_begin(struct qn_tracker *t, const char *topic, int32_t partition, int64_t offset)
{
    struct partition_track *pt = find_part(t, topic, partition, 1);
    if (pt == NULL) {
        return NULL;
    }
    struct qn_track_node *n = qn_calloc(1, sizeof(*n));
    if (n == NULL) {
        return NULL;
    }
    if (pt->revoked && pt->head == NULL) {
        pt->revoked = 0; /* assigned again */
        pt->blocked = 0;
    }
    n->pt = pt;
    n->offset = offset;
    n->refs = 1;
    if (pt->tail != NULL) {
        pt->tail->next = n;
    } else {
        pt->head = n;
    }
    pt->tail = n;
    t->pending++;
    return n;
}

void qn_tracker_ref(struct qn_track_node *n)
{
    n->refs++;
    n->pt->tracker->inflight++;
}

static void advance(struct partition_track *pt)
{
    struct qn_tracker *t = pt->tracker;
    int64_t last = -1;
    while (pt->head != NULL && pt->head->refs == 0) {
        struct qn_track_node *n = pt->head;
        if (n->failed) {
            pt->blocked = 1;
        }
        if (!pt->blocked) {
            last = n->offset;
        }
        pt->head = n->next;
        if (pt->head == NULL) {
            pt->tail = NULL;
        }
        t->pending--;
        qn_free(n);
    }
    if (last >= 0 && !pt->revoked && t->store != NULL) {
        t->store(pt->topic, pt->partition, last + 1, t->opaque);
    }
}

static void release(struct qn_track_node *n)
{
    if (--n->refs == 0) {
        advance(n->pt);
    }
}

void qn_tracker_unref(struct qn_track_node *n)
{
    n->pt->tracker->inflight--;
    release(n);
}

void qn_tracker_end(struct qn_track_node *n)
{
    release(n);
}

const char *qn_tracker_node_topic(const struct qn_track_node *n)
{
    return n->pt->topic;
}

int32_t qn_tracker_node_partition(const struct qn_track_node *n)
{
    return n->pt->partition;
}

int64_t qn_tracker_node_offset(const struct qn_track_node *n)
{
    return n->offset;
}

void qn_tracker_fail(struct qn_track_node *n)
{
    n->failed = 1;
}

void qn_tracker_revoke(struct qn_tracker *t, const char *topic, int32_t partition)
{
    struct partition_track *pt = find_part(t, topic, partition, 0);
    if (pt != NULL) {
        pt->revoked = 1;
    }
}

long qn_tracker_pending(const struct qn_tracker *t)
{
    return t->pending;
}

long qn_tracker_inflight(const struct qn_tracker *t)
{
    return t->inflight;
}
