/*
 * ingest.c - decode, validate, filter and route one input value. Decisions per record:
 *   unparseable / unknown / invalid      -> reject (DLQ + quench.record.rejected)
 *   assessment, sub-assessment, score,
 *   compliance, snapshot, repeat,
 *   not a Resource Manager alert         -> skip, counted by reason
 *   valid Resource Manager alert/verdict -> forward to the work topic keyed by subscription id
 */
#include "ingest.h"

#include <stdio.h>
#include <string.h>

#include "alert.h"
#include "dedup.h"
#include "qn/log.h"
#include "qn/mem.h"
#include "verdict.h"

struct qn_ingest {
    const struct qn_config *cfg;
    struct qn_metrics *metrics;
    struct qn_dedup *seen; /* "alert id \x1f status" */
    struct qn_ingest_counts counts;
};

struct value_ctx {
    struct qn_ingest *ing;
    bool verdicts;
    const struct qn_ingest_sink *sink;
    qn_err_t rc;
};

const char *qn_work_kind_name(enum qn_work_kind kind)
{
    return kind == QN_WORK_ALERT ? "alert" : "verdict";
}

qn_err_t
qn_ingest_new(const struct qn_config *cfg, struct qn_metrics *metrics, struct qn_ingest **out)
{
    struct qn_ingest *ing = qn_calloc(1, sizeof(*ing));
    if (ing == NULL) {
        return QN_ERR_NOMEM;
    }
    ing->cfg = cfg;
    ing->metrics = metrics;
    if (qn_dedup_new((size_t)cfg->ingest.dedup_capacity, &ing->seen) != QN_OK) {
        qn_free(ing);
        return QN_ERR_NOMEM;
    }
    if (metrics != NULL &&
        (qn_metrics_describe(metrics, "quench_ingest_records_total", QN_METRIC_COUNTER,
                             "Records read from the input and verdicts topics, by result.") !=
             QN_OK ||
         qn_metrics_describe(metrics, "quench_ingest_skipped_total", QN_METRIC_COUNTER,
                             "Records skipped on purpose, by reason.") != QN_OK ||
         qn_metrics_describe(metrics, "quench_dlq_records_total", QN_METRIC_COUNTER,
                             "Records rejected to the dead-letter topic, by reason.") != QN_OK)) {
        qn_ingest_free(ing);
        return QN_ERR_NOMEM;
    }
    *out = ing;
    return QN_OK;
}

void qn_ingest_free(struct qn_ingest *ing)
{
    if (ing == NULL) {
        return;
    }
    qn_dedup_free(ing->seen);
    qn_free(ing);
}

void qn_ingest_counts(const struct qn_ingest *ing, struct qn_ingest_counts *out)
{
    *out = ing->counts;
}

static void count(struct qn_ingest *ing, const char *result)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "result=\"%s\"", result);
    if (ing->metrics != NULL) {
        qn_metrics_add(ing->metrics, "quench_ingest_records_total", labels, 1);
    }
}

static void skip(struct value_ctx *ctx, const char *reason)
{
    struct qn_ingest *ing = ctx->ing;
    ing->counts.skipped++;
    count(ing, "skipped");
    if (ing->metrics != NULL) {
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
        qn_metrics_add(ing->metrics, "quench_ingest_skipped_total", labels, 1);
    }
}

static void reject(struct value_ctx *ctx,
                   const struct qn_envelope_record *rec,
                   enum qn_reject_reason reason,
                   const char *message,
                   const char *alert_id)
{
    struct qn_ingest *ing = ctx->ing;
    ing->counts.rejected++;
    count(ing, "rejected");
    if (ing->metrics != NULL) {
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", qn_reject_reason_name(reason));
        qn_metrics_add(ing->metrics, "quench_dlq_records_total", labels, 1);
    }
    QN_LOG_DEBUG("ingest", "rejected record %d: %s: %s", rec->index, qn_reject_reason_name(reason),
                 message);
    qn_err_t rc = ctx->sink->reject(ctx->sink->opaque, rec->bytes, rec->len, rec->index, reason,
                                    message, alert_id);
    if (rc != QN_OK && ctx->rc == QN_OK) {
        ctx->rc = rc;
    }
}

static void forward(struct value_ctx *ctx,
                    const struct qn_envelope_record *rec,
                    enum qn_work_kind kind,
                    const char *key,
                    const char *alert_id)
{
    ctx->ing->counts.forwarded++;
    count(ctx->ing, "forwarded");
    qn_err_t rc = ctx->sink->forward(ctx->sink->opaque, kind, key, alert_id, rec->bytes, rec->len,
                                     rec->index);
    if (rc != QN_OK && ctx->rc == QN_OK) {
        ctx->rc = rc;
    }
}

static bool wanted_type(const struct qn_config *cfg, const char *type)
{
    if (qn_alert_type_is_resource_manager(type)) {
        return true;
    }
    for (size_t i = 0; i < cfg->ingest.extra_alert_types.count; i++) {
        if (qn_alert_type_matches(type, cfg->ingest.extra_alert_types.items[i])) {
            return true;
        }
    }
    return false;
}

/* The alert id of a record that failed to decode, if it names a usable one. */
static const char *raw_alert_id(const cJSON *json)
{
    const cJSON *id = cJSON_GetObjectItem(json, "SystemAlertId");
    const cJSON *props = cJSON_GetObjectItem(json, "properties");
    if (id == NULL && cJSON_IsObject(props)) {
        id = cJSON_GetObjectItem(props, "systemAlertId");
    }
    return cJSON_IsString(id) && qn_alert_id_is_valid(id->valuestring) ? id->valuestring : NULL;
}

/* The AlertType of either shape, before decoding, or NULL. */
static const char *raw_alert_type(const cJSON *json)
{
    const cJSON *type = cJSON_GetObjectItem(json, "AlertType");
    const cJSON *props = cJSON_GetObjectItem(json, "properties");
    if (type == NULL && cJSON_IsObject(props)) {
        type = cJSON_GetObjectItem(props, "alertType");
    }
    return cJSON_IsString(type) ? type->valuestring : NULL;
}

static void handle_alert(struct value_ctx *ctx, const struct qn_envelope_record *rec)
{
    /* Alerts quench does not act on are passed over before strict decoding: only the ones it
     * acts on must meet the grammar, the others are counted and left alone. */
    const char *type = raw_alert_type(rec->json);
    if (type != NULL && !wanted_type(ctx->ing->cfg, type)) {
        skip(ctx, "not_resource_manager");
        return;
    }
    struct qn_alert alert;
    enum qn_reject_reason reason = QN_REJECT_NONE;
    struct qn_error err = {0};
    qn_err_t rc = qn_alert_decode(rec->json, &alert, &reason, &err);
    if (rc == QN_ERR_NOMEM) {
        /* not the record's fault: fail the value so its offset is not stored */
        if (ctx->rc == QN_OK) {
            ctx->rc = rc;
        }
        return;
    }
    if (rc != QN_OK) {
        reject(ctx, rec, reason, err.msg, raw_alert_id(rec->json));
        return;
    }
    if (alert.is_snapshot) {
        skip(ctx, "snapshot");
    } else if (!wanted_type(ctx->ing->cfg, alert.type)) {
        skip(ctx, "not_resource_manager");
    } else {
        char key[600];
        snprintf(key, sizeof(key), "%s\x1f%s", alert.id, qn_alert_status_name(alert.status));
        int seen = qn_dedup_check_add(ctx->ing->seen, key);
        if (seen == 1) {
            skip(ctx, "duplicate");
        } else {
            forward(ctx, rec, QN_WORK_ALERT, alert.subscription_id, alert.id);
        }
    }
    qn_alert_fini(&alert);
}

static void handle_record(const struct qn_envelope_record *rec, void *opaque)
{
    struct value_ctx *ctx = opaque;
    ctx->ing->counts.records++;
    if (rec->json == NULL) {
        reject(ctx, rec, rec->reason, rec->message, NULL);
        return;
    }
    if (ctx->verdicts) {
        char subscription[37];
        struct qn_error err = {0};
        if (qn_verdict_validate(rec->json, subscription, &err) != QN_OK) {
            reject(ctx, rec, QN_REJECT_INVALID_VERDICT, err.msg, NULL);
            return;
        }
        const cJSON *alert_id = cJSON_GetObjectItemCaseSensitive(rec->json, "alertId");
        forward(ctx, rec, QN_WORK_VERDICT, subscription, alert_id->valuestring);
        return;
    }
    enum qn_record_class cls = qn_record_classify(rec->json);
    switch (cls) {
    case QN_RECORD_ALERT:
        handle_alert(ctx, rec);
        break;
    case QN_RECORD_UNKNOWN:
        reject(ctx, rec, QN_REJECT_INVALID_ENVELOPE,
               cJSON_IsObject(rec->json)
                   ? "record is neither an alert nor a known Defender for Cloud export record"
                   : "record is not a JSON object",
               NULL);
        break;
    default:
        skip(ctx, qn_record_class_name(cls));
        break;
    }
}

qn_err_t qn_ingest_value(struct qn_ingest *ing,
                         bool verdicts,
                         const char *data,
                         size_t len,
                         const struct qn_ingest_sink *sink)
{
    struct qn_envelope_limits limits = {
        .max_record_bytes = (size_t)ing->cfg->ingest.max_record_bytes,
        .max_depth = (int)ing->cfg->ingest.max_depth,
    };
    struct value_ctx ctx = {.ing = ing, .verdicts = verdicts, .sink = sink, .rc = QN_OK};
    (void)qn_envelope_split(data, len, &limits, handle_record, &ctx, NULL);
    return ctx.rc;
}
