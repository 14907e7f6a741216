/*
 * response.h - the engine's per-alert response, shared by engine.c (the state machine) and
 * task.c (the API tasks use). Not for task implementations: they use task.h only.
 */
#ifndef QN_RESPONSE_H
#define QN_RESPONSE_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "alert.h"
#include "config.h"
#include "outcome.h"
#include "qn/azure_auth.h"
#include "qn/loop.h"
#include "qn/metrics.h"
#include "task.h"

struct qn_engine;

enum qn_phase {
    QN_PHASE_RECEIVED,
    QN_PHASE_CONTACTING,
    QN_PHASE_AWAITING_VERDICT,
    QN_PHASE_DISMISSING,
    QN_PHASE_MITIGATING,
    QN_PHASE_CLOSED,
    QN_PHASE_ESCALATED,
    QN_PHASE_CANCELLED,
    QN_PHASE_FAILED,
};

const char *qn_phase_name(enum qn_phase phase);

enum qn_provenance {
    QN_PROVENANCE_UNKNOWN,
    QN_PROVENANCE_CHECKING,
    QN_PROVENANCE_VERIFIED,
    QN_PROVENANCE_FAILED,
};

#define QN_RESPONSE_MAX_TASKS 128

struct qn_response {
    struct qn_engine *engine;
    struct qn_alert alert; /* owned */
    enum qn_phase phase;
    struct qn_task *tasks[QN_RESPONSE_MAX_TASKS];
    int task_count;
    int running;     /* tasks in flight */
    cJSON *evidence; /* from collect_evidence; see evidence.h */
    cJSON *owner;    /* from resolve_owner: {"owners":[...], "candidates":[...]} */
    enum qn_provenance provenance;
    char *provenance_note;
    char *escalation_note; /* why the response escalates, when it does */
    long destructive_writes;
    struct qn_loop_timer *deadline;
    bool verdict_seen;
    bool escalated;
    bool cancel_requested;
    bool finished;                 /* a final event was published */
    const char *mitigation_reason; /* static text: why mitigation started */
};

/* Engine services task.c needs. */
struct qn_azure *qn_engine_azure(struct qn_engine *engine);
const struct qn_config *qn_engine_config(struct qn_engine *engine);
const struct qn_emitter *qn_engine_emitter(struct qn_engine *engine);
struct qn_metrics *qn_engine_metrics(struct qn_engine *engine);

/* Subscription-hour cap bookkeeping: @returns true and counts one write if under the cap. */
bool qn_engine_take_subscription_write(struct qn_engine *engine, const char *subscription);

/* Called by qn_task_finish after the task's event went out. */
void qn_engine_task_finished(struct qn_response *resp, struct qn_task *task);

/* Adds the fields every alert event carries (alertId, alertType, subscriptionId, mode). */
void qn_response_add_alert_fields(const struct qn_response *resp, cJSON *data, const char *mode);

/* Builds and emits a task event of @p type for @p task. */
qn_err_t qn_response_emit_task(struct qn_response *resp, struct qn_task *task, const char *type);

#endif
