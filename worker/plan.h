/*
 * plan.h - builds the response plan for one decoded alert from the alert alone, and publishes it
 * as outcome events: who would be contacted, and the tasks of the documented procedure (owner,
 * evidence, user accounts, subscription, VMs) as far as the alert names targets.
 *
 * The same function serves `quench plan` (offline) and the worker's respond stage, so what the
 * preview shows is what the worker publishes, with the same event ids.
 */
#ifndef QN_PLAN_H
#define QN_PLAN_H

#include "alert.h"
#include "config.h"
#include "outcome.h"
#include "qn/err.h"

struct qn_plan_summary {
    int events;
    int tasks;
};

/*
 * @brief Emits quench.contact.requested, one quench.task.proposed per task, and
 *        quench.response.closed (observe mode: nothing is written to Azure).
 * @returns QN_OK, or the first error of the emitter.
 */
QN_NODISCARD qn_err_t qn_plan_respond(const struct qn_alert *alert,
                                      const struct qn_config *cfg,
                                      const struct qn_emitter *emitter,
                                      struct qn_plan_summary *summary);

/* Emits quench.response.cancelled for an alert dismissed or resolved upstream. */
QN_NODISCARD qn_err_t qn_plan_cancel(const struct qn_alert *alert,
                                     const struct qn_emitter *emitter);

/* Where a rejected record came from and where its copy went. */
struct qn_record_origin {
    const char *topic;
    int partition;
    long long offset;
    int index;
    const char *dlq_topic;
};

/*
 * @brief Emits quench.record.rejected for a record sent to the DLQ.
 * @param alert_id may be NULL when the record named none.
 */
QN_NODISCARD qn_err_t qn_plan_rejected(const struct qn_record_origin *origin,
                                       const char *reason,
                                       const char *message,
                                       const char *alert_id,
                                       const struct qn_emitter *emitter);

/* The deterministic task id: hash(alert id, kind, target). Writes 33 bytes. */
void qn_plan_task_id(const char *alert_id,
                     const char *kind,
                     const char *target,
                     char out[QN_ID_HEX_LEN + 1]);

#endif
