/*
 * dedup.h - a bounded set of recently seen keys with first-in-first-out eviction. Used for the
 * (alert id, status) repeats that ingest skips and the alerts a partition already planned.
 */
#ifndef QN_DEDUP_H
#define QN_DEDUP_H

#include <stddef.h>

#include "qn/err.h"

struct qn_dedup;

/* @p capacity 0 makes a set that remembers nothing (every key is new). */
QN_NODISCARD qn_err_t qn_dedup_new(size_t capacity, struct qn_dedup **out);
void qn_dedup_free(struct qn_dedup *set);

/* @returns 1 if @p key was already present, 0 if it was added now, -1 on allocation failure. */
int qn_dedup_check_add(struct qn_dedup *set, const char *key);

/* @returns 1 if @p key is present. */
int qn_dedup_contains(const struct qn_dedup *set, const char *key);

size_t qn_dedup_size(const struct qn_dedup *set);

#endif
