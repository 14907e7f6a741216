/*
 * respond.c - per-alert response in observe mode: plan once per alert, cancel once when the alert
 * is dismissed or resolved upstream, record verdicts. Repeats are detected with a bounded set;
 * after a restart the deterministic event ids make any repeat harmless to consumers.
 */
#include "respond.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alert.h"
#include "dedup.h"
#include "plan.h"
#include "qn/log.h"
#include "qn/mem.h"

struct qn_respond {
    const struct qn_config *cfg;
    struct qn_metrics *metrics;
    struct qn_dedup *planned;   /* alert ids already planned */
    struct qn_dedup *cancelled; /* alert ids already cancelled */
};

qn_err_t
qn_respond_new(const struct qn_config *cfg, struct qn_metrics *metrics, struct qn_respond **out)
{
    struct qn_respond *resp = qn_calloc(1, sizeof(*resp));
    if (resp == NULL) {
        return QN_ERR_NOMEM;
    }
    resp->cfg = cfg;
    resp->metrics = metrics;
    size_t cap = cfg->ingest.dedup_capacity > 0 ? (size_t)cfg->ingest.dedup_capacity : 1;
    if (qn_dedup_new(cap, &resp->planned) != QN_OK ||
        qn_dedup_new(cap, &resp->cancelled) != QN_OK) {
        qn_respond_free(resp);
        return QN_ERR_NOMEM;
    }
    if (metrics != NULL &&
        (qn_metrics_describe(metrics, "quench_work_records_total", QN_METRIC_COUNTER,
                             "Work records handled by the respond stage, by kind and result.") !=
             QN_OK ||
         qn_metrics_describe(metrics, "quench_responses_total", QN_METRIC_COUNTER,
                             "Responses that reached a final phase, by phase.") != QN_OK)) {
        qn_respond_free(resp);
        return QN_ERR_NOMEM;
    }
    *out = resp;
    return QN_OK;
}

void qn_respond_free(struct qn_respond *resp)
{
    if (resp == NULL) {
        return;
    }
    qn_dedup_free(resp->planned);
    qn_dedup_free(resp->cancelled);
    qn_free(resp);
}

void qn_respond_reset(struct qn_respond *resp)
{
    struct qn_dedup *planned = NULL;
    struct qn_dedup *cancelled = NULL;
    size_t cap =
        resp->cfg->ingest.dedup_capacity > 0 ? (size_t)resp->cfg->ingest.dedup_capacity : 1;
    if (qn_dedup_new(cap, &planned) == QN_OK && qn_dedup_new(cap, &cancelled) == QN_OK) {
        qn_dedup_free(resp->planned);
        qn_dedup_free(resp->cancelled);
        resp->planned = planned;
        resp->cancelled = cancelled;
        return;
    }
    qn_dedup_free(planned);
    qn_dedup_free(cancelled);
}

static void count(struct qn_respond *resp, const char *name, const char *labels)
{
    if (resp->metrics != NULL) {
        qn_metrics_add(resp->metrics, name, labels, 1);
    }
}

static qn_err_t
respond_alert(struct qn_respond *resp, const cJSON *json, const struct qn_emitter *emitter)
{
    struct qn_alert alert;
    enum qn_reject_reason reason;
    struct qn_error err = {0};
    if (qn_alert_decode(json, &alert, &reason, &err) != QN_OK) {
        /* Ingest validated it; only a foreign writer on the work topic gets here. */
        QN_LOG_ERROR("respond", "ignoring invalid alert on the work topic: %s", err.msg);
        count(resp, "quench_work_records_total", "kind=\"alert\",result=\"invalid\"");
        return QN_OK;
    }
    qn_err_t rc = QN_OK;
    if (alert.status == QN_ALERT_STATUS_DISMISSED || alert.status == QN_ALERT_STATUS_RESOLVED) {
        int seen = qn_dedup_check_add(resp->cancelled, alert.id);
        if (seen == 0) {
            rc = qn_plan_cancel(&alert, emitter);
            count(resp, "quench_work_records_total", "kind=\"alert\",result=\"cancelled\"");
            count(resp, "quench_responses_total", "phase=\"cancelled\"");
        } else {
            count(resp, "quench_work_records_total", "kind=\"alert\",result=\"repeat\"");
        }
    } else if (qn_dedup_contains(resp->cancelled, alert.id) ||
               qn_dedup_check_add(resp->planned, alert.id) == 1) {
        count(resp, "quench_work_records_total", "kind=\"alert\",result=\"repeat\"");
    } else {
        struct qn_plan_summary summary = {0};
        rc = qn_plan_respond(&alert, resp->cfg, emitter, &summary);
        count(resp, "quench_work_records_total", "kind=\"alert\",result=\"planned\"");
        count(resp, "quench_responses_total", "phase=\"closed\"");
        QN_LOG_DEBUG("respond", "planned %d tasks for alert %s", summary.tasks, alert.id);
    }
    qn_alert_fini(&alert);
    return rc;
}

qn_err_t qn_respond_record(struct qn_respond *resp,
                           enum qn_work_kind kind,
                           const char *bytes,
                           size_t len,
                           const struct qn_emitter *emitter)
{
    cJSON *json = cJSON_ParseWithLength(bytes, len);
    if (json == NULL) {
        QN_LOG_ERROR("respond", "ignoring a work record that is not JSON (%zu bytes)", len);
        count(resp, "quench_work_records_total", "kind=\"unknown\",result=\"invalid\"");
        return QN_OK;
    }
    qn_err_t rc = QN_OK;
    if (kind == QN_WORK_ALERT) {
        rc = respond_alert(resp, json, emitter);
    } else {
        const cJSON *alert_id = cJSON_GetObjectItemCaseSensitive(json, "alertId");
        QN_LOG_INFO("respond",
                    "verdict for alert %s recorded; observe mode takes no action on verdicts",
                    cJSON_IsString(alert_id) ? alert_id->valuestring : "?");
        count(resp, "quench_work_records_total", "kind=\"verdict\",result=\"recorded\"");
    }
    cJSON_Delete(json);
    return rc;
}
