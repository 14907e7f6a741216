/*
 * tracker.h - at-least-once offset tracking. Each consumed message gets a node that counts the
 * produce requests it caused (plus a guard while it is being handled). A message is done when all
 * of them are acknowledged by the broker; a partition's offset is stored only up to the first
 * message that is not done, so a crash never skips an unacknowledged effect.
 */
#ifndef QN_TRACKER_H
#define QN_TRACKER_H

#include <stdint.h>

#include "qn/err.h"

struct qn_tracker;
struct qn_track_node;

/* Called when every message of (topic, partition) before @p next_offset is done. */
typedef void (*qn_tracker_store_fn)(const char *topic,
                                    int32_t partition,
                                    int64_t next_offset,
                                    void *opaque);

QN_NODISCARD qn_err_t qn_tracker_new(qn_tracker_store_fn store,
                                     void *opaque,
                                     struct qn_tracker **out);

/* Frees the tracker and every node still pending. */
void qn_tracker_free(struct qn_tracker *tracker);

/*
 * @brief Registers a consumed message; the node starts with one reference (the handling guard).
 * @returns the node, or NULL on allocation failure.
 */
struct qn_track_node *
qn_tracker_begin(struct qn_tracker *tracker, const char *topic, int32_t partition, int64_t offset);

/* Adds a reference for one produce request in flight. */
void qn_tracker_ref(struct qn_track_node *node);

/* Drops the reference of one produce request (acknowledged or refused). */
void qn_tracker_unref(struct qn_track_node *node);

/* Drops the handling guard taken by qn_tracker_begin: handling is over. Call exactly once. */
void qn_tracker_end(struct qn_track_node *node);

/* Where the message came from (borrowed; valid while the node is). */
const char *qn_tracker_node_topic(const struct qn_track_node *node);
int32_t qn_tracker_node_partition(const struct qn_track_node *node);
int64_t qn_tracker_node_offset(const struct qn_track_node *node);

/* Marks the message failed: its partition's offset will never be stored past it. */
void qn_tracker_fail(struct qn_track_node *node);

/* Stops storing offsets for a revoked partition; its pending nodes are still released later. */
void qn_tracker_revoke(struct qn_tracker *tracker, const char *topic, int32_t partition);

/* @returns the number of messages not yet done, over all partitions. */
long qn_tracker_pending(const struct qn_tracker *tracker);

/* @returns the number of produce requests still in flight. */
long qn_tracker_inflight(const struct qn_tracker *tracker);

#endif
