/*
 * envelope.h - splits one Kafka value into records: a single JSON object, a JSON array, a
 * {"records":[...]} batch, or newline-delimited JSON. Each record is handed over with its exact
 * original bytes, so a rejected record goes to the DLQ byte for byte.
 */
#ifndef QN_ENVELOPE_H
#define QN_ENVELOPE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "qn/err.h"

enum qn_reject_reason {
    QN_REJECT_NONE = 0,
    QN_REJECT_NOT_JSON,
    QN_REJECT_NO_ALERT_ID,
    QN_REJECT_INVALID_RESOURCE_ID,
    QN_REJECT_TOO_BIG,
    QN_REJECT_TOO_DEEP,
    QN_REJECT_INVALID_ALERT,
    QN_REJECT_INVALID_VERDICT,
    QN_REJECT_INVALID_ENVELOPE,
};

/* @returns the reason code used in DLQ headers, events and metrics, e.g. "not_json". */
const char *qn_reject_reason_name(enum qn_reject_reason reason);

enum qn_envelope_kind {
    QN_ENVELOPE_SINGLE,
    QN_ENVELOPE_ARRAY,
    QN_ENVELOPE_RECORDS,
    QN_ENVELOPE_NDJSON,
};

const char *qn_envelope_kind_name(enum qn_envelope_kind kind);

struct qn_envelope_limits {
    size_t max_record_bytes; /* a larger Kafka value is rejected whole as too_big */
    int max_depth;           /* deeper nesting is rejected as too_deep before parsing */
};

/*
 * One record of a value. @p json is the parsed record (borrowed, valid during the callback) or
 * NULL when @p reason says why it could not be parsed. @p bytes/@p len are its original bytes
 * inside the Kafka value. @p index is its position in the batch (0 for a single record).
 */
struct qn_envelope_record {
    const char *bytes;
    size_t len;
    int index;
    const cJSON *json;
    enum qn_reject_reason reason;
    const char *message; /* why it was rejected; NULL when json != NULL */
};

typedef void (*qn_envelope_record_fn)(const struct qn_envelope_record *rec, void *opaque);

/*
 * @brief Splits @p data into records and calls @p fn once per record, in order.
 * @param kind_out may be NULL; receives the envelope kind that was recognised.
 * @returns the number of records reported: 0 for an empty batch ([] or {"records":[]}), else at
 *          least 1 (an empty or unreadable value is one rejected record).
 */
int qn_envelope_split(const char *data,
                      size_t len,
                      const struct qn_envelope_limits *limits,
                      qn_envelope_record_fn fn,
                      void *opaque,
                      enum qn_envelope_kind *kind_out);

/* @returns the maximum nesting depth of @p data, scanning strings correctly, stopping at @p stop.
 */
int qn_json_depth(const char *data, size_t len, int stop);

#endif
