/*
 * ingest.h - the first stage: turns one input Kafka value into work records, skips and rejects.
 *
 * For each record of the value (see envelope.h) it decides: forward to the work topic (keyed by
 * subscription id), skip with a counted reason (non-alert records, snapshots, repeats of an
 * (alert id, status) pair, alerts that are not Defender for Resource Manager), or reject to the
 * DLQ with a reason code. It knows nothing of Kafka: the caller passes a sink.
 */
#ifndef QN_INGEST_H
#define QN_INGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "envelope.h"
#include "qn/err.h"
#include "qn/metrics.h"

struct qn_ingest;

enum qn_work_kind {
    QN_WORK_ALERT,
    QN_WORK_VERDICT,
};

const char *qn_work_kind_name(enum qn_work_kind kind);

/* Where the stage sends its results. Every callback returns QN_OK or an error that stops the value.
 */
struct qn_ingest_sink {
    /* A valid record: publish @p bytes to the work topic under @p key (a subscription id). */
    qn_err_t (*forward)(void *opaque,
                        enum qn_work_kind kind,
                        const char *key,
                        const char *alert_id,
                        const char *bytes,
                        size_t len,
                        int index);
    /* A bad record: copy @p bytes to the DLQ and publish a quench.record.rejected event. */
    qn_err_t (*reject)(void *opaque,
                       const char *bytes,
                       size_t len,
                       int index,
                       enum qn_reject_reason reason,
                       const char *message,
                       const char *alert_id);
    void *opaque;
};

/*
 * @brief Creates the stage. @p cfg and @p metrics are borrowed and must outlive it; @p metrics
 *        may be NULL.
 */
QN_NODISCARD qn_err_t qn_ingest_new(const struct qn_config *cfg,
                                    struct qn_metrics *metrics,
                                    struct qn_ingest **out);
void qn_ingest_free(struct qn_ingest *ing);

/*
 * @brief Processes one Kafka value read from the input topic (@p verdicts false) or the verdicts
 *        topic (@p verdicts true).
 * @returns QN_OK when every record was forwarded, skipped or rejected; otherwise the first error of
 *          the sink (the caller must not store the offset).
 */
QN_NODISCARD qn_err_t qn_ingest_value(struct qn_ingest *ing,
                                      bool verdicts,
                                      const char *data,
                                      size_t len,
                                      const struct qn_ingest_sink *sink);

/* Counters since creation, for `quench plan`'s summary and tests. */
struct qn_ingest_counts {
    long records;
    long forwarded;
    long skipped;
    long rejected;
};

void qn_ingest_counts(const struct qn_ingest *ing, struct qn_ingest_counts *out);

#endif
