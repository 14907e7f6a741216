/*
 * pipeline.c - the worker's Kafka plumbing and its life cycle.
 *
 * Flow per consumed message (all on the loop thread):
 *   input/verdicts topic -> qn_ingest_value -> produce to work (keyed by subscription) or to the
 * DLQ plus a quench.record.rejected outcome work topic           -> qn_respond_record -> produce
 * outcome events (keyed by alert id) Every produce request holds a reference on the message's
 * tracker node; the delivery report releases it. Offsets are stored
 * (enable.auto.offset.store=false) only when every message before them is fully acknowledged, and
 * auto-commit commits what is stored. So a crash at any point re-reads, and never skips, a message
 * whose effects were not acknowledged.
 *
 * Shutdown (SIGTERM): stop reading, wait for in-flight deliveries within shutdown.budget_ms, store,
 * commit synchronously, close the consumer (leaving the group), destroy the handles.
 */
#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "engine.h"
#include "ingest.h"
#include "kafka_oauth.h"
#include "outcome.h"
#include "plan.h"
#include "qn/crypto.h"
#include "qn/httpd.h"
#include "qn/log.h"
#include "qn/loop.h"
#include "qn/mem.h"
#include "qn/metrics.h"
#include "respond.h"
#include "tracker.h"
#include "version.h"

#define CONSUME_BATCH 256
#define INFLIGHT_HIGH 20000
#define INFLIGHT_LOW  5000
#define TICK_MS       100
#define EXIT_FATAL    70
#define EXIT_CONFIG   78

struct worker {
    const struct qn_config *cfg;
    struct qn_loop *loop;
    struct qn_metrics *metrics;
    struct qn_httpd *httpd;
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_queue_t *consumer_queue;
    rd_kafka_queue_t *producer_queue;
    int consumer_pipe[2];
    int producer_pipe[2];
    struct qn_ingest *ingest;
    struct qn_respond *respond;
    struct qn_engine *engine; /* NULL when azure.credential is "none": observe plans only */
    struct qn_kafka_oauth *kafka_oauth; /* NULL unless kafka_oauth is "azure" */
    struct qn_tracker *tracker;
    rd_kafka_topic_t *output_topics[4]; /* work, state, outcomes, dlq: kept for warm metadata */
    struct qn_loop_timer *tick;
    struct qn_loop_timer *more;
    int64_t stop_deadline;
    int stopping;
    int fatal;
    int assigned_once;
    int paused;
    int assigned_partitions;
};

/* What one consumed message's handlers need. */
struct msg_ctx {
    struct worker *w;
    const rd_kafka_message_t *rkm;
    const char *topic;
    struct qn_track_node *node;
};

static void begin_fatal(struct worker *w, const char *why)
{
    if (!w->fatal) {
        QN_LOG_ERROR("worker", "fatal: %s; shutting down without storing further offsets", why);
    }
    w->fatal = 1;
    if (!w->stopping) {
        w->stopping = 1;
        w->stop_deadline = qn_loop_now(w->loop) + w->cfg->shutdown.budget_ms;
    }
}

/* ---- producing ------------------------------------------------------------------------------ */

struct header {
    const char *name;
    const char *value;
};

static qn_err_t produce(struct worker *w,
                        struct qn_track_node *node,
                        const char *topic,
                        const void *key,
                        size_t key_len,
                        const void *value,
                        size_t len,
                        const struct header *headers,
                        size_t header_count)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(header_count);
    for (size_t i = 0; i < header_count; i++) {
        rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value, -1);
    }
    if (node != NULL) {
        qn_tracker_ref(node);
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        w->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)(uintptr_t)value, len),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(node), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(hdrs);
        if (node != NULL) {
            qn_tracker_fail(node);
            qn_tracker_unref(node);
        }
        qn_metrics_add(w->metrics, "quench_kafka_produce_errors_total", "", 1);
        QN_LOG_ERROR("kafka", "produce to %s failed: %s", topic, rd_kafka_err2str(err));
        begin_fatal(w, "a produce request was refused");
        return QN_ERR_KAFKA;
    }
    return QN_OK;
}

struct dead_letter {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int index;
    const void *key;
    size_t key_len;
    const char *bytes;
    size_t len;
    const char *reason;
    const char *message;
    const char *alert_id;
};

static qn_err_t
dead_letter(struct worker *w, struct qn_track_node *node, const struct dead_letter *dl);

static void delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    struct worker *w = opaque;
    struct qn_track_node *node = rkm->_private;
    bool too_large = rkm->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
    if (too_large && node != NULL &&
        strcmp(rd_kafka_topic_name(rkm->rkt), w->cfg->topics.dlq) != 0) {
        /* A record the broker will never take must not stop the partition forever: dead-letter a
         * bounded copy (the original stays at its offset) and go on. */
        char message[300];
        snprintf(message, sizeof(message),
                 "the broker refused a %zu-byte record for topic %s as too large", rkm->len,
                 rd_kafka_topic_name(rkm->rkt));
        QN_LOG_WARN("kafka", "%s; dead-lettering it", message);
        struct dead_letter dl = {
            .topic = qn_tracker_node_topic(node),
            .partition = qn_tracker_node_partition(node),
            .offset = qn_tracker_node_offset(node),
            .index = 0,
            .key = rkm->key,
            .key_len = rkm->key_len,
            .bytes = rkm->payload,
            .len = rkm->len,
            .reason = "too_big",
            .message = message,
        };
        qn_metrics_add(w->metrics, "quench_dlq_records_total", "reason=\"too_big\"", 1);
        if (dead_letter(w, node, &dl) != QN_OK) {
            qn_tracker_fail(node);
            begin_fatal(w, "a too-large record could not be dead-lettered");
        }
        qn_tracker_unref(node);
        return;
    }
    if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        qn_metrics_add(w->metrics, "quench_kafka_delivery_failures_total", "", 1);
        QN_LOG_ERROR("kafka", "delivery to %s failed: %s", rd_kafka_topic_name(rkm->rkt),
                     rd_kafka_err2str(rkm->err));
        if (node != NULL) {
            qn_tracker_fail(node);
        }
        begin_fatal(w, "a record could not be delivered");
    }
    if (node != NULL) {
        qn_tracker_unref(node);
    }
}

static void store_offset(const char *topic, int32_t partition, int64_t next_offset, void *opaque)
{
    struct worker *w = opaque;
    if (w->consumer == NULL) {
        return;
    }
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, partition)->offset = next_offset;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->consumer, list);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = list->elems[0].err;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        QN_LOG_DEBUG("kafka", "offset store %s[%" PRId32 "]@%" PRId64 " skipped: %s", topic,
                     partition, next_offset, rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* ---- emitters and sinks ---------------------------------------------------------------------- */

static qn_err_t emit_outcome(const char *type,
                             const char *event_id,
                             const char *key,
                             const char *json,
                             size_t len,
                             void *opaque)
{
    struct msg_ctx *ctx = opaque;
    struct worker *w = ctx->w;
    char labels[128];
    snprintf(labels, sizeof(labels), "type=\"%s\"", type);
    qn_metrics_add(w->metrics, "quench_outcome_events_total", labels, 1);
    struct header headers[] = {{"ce_type", type}, {"ce_id", event_id}};
    return produce(w, ctx->node, w->cfg->topics.outcomes, key, strlen(key), json, len, headers, 2);
}

/* Events the engine publishes later, outside any consumed message (Azure calls, timers). */
static qn_err_t emit_async(const char *type,
                           const char *event_id,
                           const char *key,
                           const char *json,
                           size_t len,
                           void *opaque)
{
    struct msg_ctx ctx = {.w = opaque, .rkm = NULL, .topic = NULL, .node = NULL};
    return emit_outcome(type, event_id, key, json, len, &ctx);
}

static qn_err_t sink_forward(void *opaque,
                             enum qn_work_kind kind,
                             const char *key,
                             const char *alert_id,
                             const char *bytes,
                             size_t len,
                             int index)
{
    struct msg_ctx *ctx = opaque;
    char source[512];
    snprintf(source, sizeof(source), "%s/%" PRId32 "/%" PRId64 "/%d", ctx->topic,
             ctx->rkm->partition, ctx->rkm->offset, index);
    struct header headers[] = {
        {"quench.kind", qn_work_kind_name(kind)},
        {"quench.alert-id", alert_id},
        {"quench.source", source},
    };
    return produce(ctx->w, ctx->node, ctx->w->cfg->topics.work, key, strlen(key), bytes, len,
                   headers, 3);
}

/* A DLQ copy larger than this keeps a prefix, with the original size and SHA-256 in headers;
 * the whole record stays at its offset in the source topic. Leaves room for the headers under a
 * broker limit of ingest.max_record_bytes. */
static size_t dlq_copy_max(const struct worker *w)
{
    long cap = w->cfg->ingest.max_record_bytes - 8192;
    return cap < 1024 ? 1024 : (size_t)cap;
}

static qn_err_t
dead_letter(struct worker *w, struct qn_track_node *node, const struct dead_letter *dl)
{
    char partition[16];
    char offset[32];
    char idx[16];
    char size[32];
    char digest[65];
    snprintf(partition, sizeof(partition), "%" PRId32, dl->partition);
    snprintf(offset, sizeof(offset), "%" PRId64, dl->offset);
    snprintf(idx, sizeof(idx), "%d", dl->index);
    snprintf(size, sizeof(size), "%zu", dl->len);
    size_t copy = dl->len;
    struct header headers[10] = {
        {"quench.original.topic", dl->topic},
        {"quench.original.partition", partition},
        {"quench.original.offset", offset},
        {"quench.record.index", idx},
        {"quench.reason.code", dl->reason},
        {"quench.reason.message", dl->message},
        {"quench.attempt", "1"},
    };
    size_t n = 7;
    if (dl->len > dlq_copy_max(w)) {
        copy = dlq_copy_max(w);
        qn_sha256_hex(dl->bytes, dl->len, digest);
        headers[n++] = (struct header){"quench.truncated", "true"};
        headers[n++] = (struct header){"quench.original.size", size};
        headers[n++] = (struct header){"quench.original.sha256", digest};
    }
    qn_err_t rc =
        produce(w, node, w->cfg->topics.dlq, dl->key, dl->key_len, dl->bytes, copy, headers, n);
    if (rc != QN_OK) {
        return rc;
    }
    struct qn_record_origin origin = {
        .topic = dl->topic,
        .partition = dl->partition,
        .offset = dl->offset,
        .index = dl->index,
        .dlq_topic = w->cfg->topics.dlq,
    };
    struct msg_ctx ctx = {.w = w, .rkm = NULL, .topic = dl->topic, .node = node};
    struct qn_emitter emitter = {.fn = emit_outcome, .opaque = &ctx};
    return qn_plan_rejected(&origin, dl->reason, dl->message, dl->alert_id, &emitter);
}

static qn_err_t sink_reject(void *opaque,
                            const char *bytes,
                            size_t len,
                            int index,
                            enum qn_reject_reason reason,
                            const char *message,
                            const char *alert_id)
{
    struct msg_ctx *ctx = opaque;
    const rd_kafka_message_t *rkm = ctx->rkm;
    struct dead_letter dl = {
        .topic = ctx->topic,
        .partition = rkm->partition,
        .offset = rkm->offset,
        .index = index,
        .key = rkm->key,
        .key_len = rkm->key_len,
        .bytes = bytes,
        .len = len,
        .reason = qn_reject_reason_name(reason),
        .message = message,
        .alert_id = alert_id,
    };
    return dead_letter(ctx->w, ctx->node, &dl);
}

/* ---- consuming ------------------------------------------------------------------------------- */

static enum qn_work_kind work_kind(const rd_kafka_message_t *rkm)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *value = NULL;
    size_t size = 0;
    if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "quench.kind", &value, &size) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        size == 7 && memcmp(value, "verdict", 7) == 0) {
        return QN_WORK_VERDICT;
    }
    return QN_WORK_ALERT;
}

/* A work record for the response engine: parsed here, validated again by the engine. */
static qn_err_t engine_record(struct worker *w,
                              enum qn_work_kind kind,
                              const char *data,
                              size_t len,
                              const struct qn_emitter *emitter)
{
    cJSON *json = cJSON_ParseWithLength(data, len);
    if (json == NULL) {
        QN_LOG_ERROR("engine", "ignoring a work record that is not JSON (%zu bytes)", len);
        return QN_OK;
    }
    qn_err_t rc = kind == QN_WORK_ALERT ? qn_engine_alert(w->engine, json, emitter)
                                        : qn_engine_verdict(w->engine, json, emitter);
    cJSON_Delete(json);
    return rc;
}

static void handle_message(struct worker *w, rd_kafka_message_t *rkm)
{
    if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            QN_LOG_WARN("kafka", "consumer error: %s", rd_kafka_message_errstr(rkm));
            qn_metrics_add(w->metrics, "quench_kafka_consumer_errors_total", "", 1);
        }
        return;
    }
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    char labels[300];
    snprintf(labels, sizeof(labels), "topic=\"%s\"", topic);
    qn_metrics_add(w->metrics, "quench_kafka_consumed_total", labels, 1);
    struct msg_ctx ctx = {.w = w, .rkm = rkm, .topic = topic};
    ctx.node = qn_tracker_begin(w->tracker, topic, rkm->partition, rkm->offset);
    if (ctx.node == NULL) {
        begin_fatal(w, "out of memory tracking a message");
        return;
    }
    const char *data = rkm->payload != NULL ? rkm->payload : "";
    qn_err_t rc;
    if (strcmp(topic, w->cfg->topics.work) == 0) {
        struct qn_emitter emitter = {.fn = emit_outcome, .opaque = &ctx};
        rc = w->engine != NULL
                 ? engine_record(w, work_kind(rkm), data, rkm->len, &emitter)
                 : qn_respond_record(w->respond, work_kind(rkm), data, rkm->len, &emitter);
    } else {
        struct qn_ingest_sink sink = {
            .forward = sink_forward, .reject = sink_reject, .opaque = &ctx};
        bool verdicts = strcmp(topic, w->cfg->topics.verdicts) == 0;
        rc = qn_ingest_value(w->ingest, verdicts, data, rkm->len, &sink);
    }
    if (rc != QN_OK) {
        qn_tracker_fail(ctx.node);
        begin_fatal(w, "a message could not be handled");
    }
    qn_tracker_end(ctx.node);
}

static void set_paused(struct worker *w, int pause)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (w->paused == pause || rd_kafka_assignment(w->consumer, &assigned) != 0) {
        return;
    }
    if (pause) {
        rd_kafka_pause_partitions(w->consumer, assigned);
    } else {
        rd_kafka_resume_partitions(w->consumer, assigned);
    }
    rd_kafka_topic_partition_list_destroy(assigned);
    w->paused = pause;
    QN_LOG_INFO("worker", "%s fetching: %ld produce requests in flight",
                pause ? "pausing" : "resuming", qn_tracker_inflight(w->tracker));
}

static void consume_batch(struct worker *w)
{
    if (w->stopping) {
        return;
    }
    for (int i = 0; i < CONSUME_BATCH; i++) {
        if (qn_tracker_inflight(w->tracker) > INFLIGHT_HIGH) {
            set_paused(w, 1);
        }
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(w->consumer, 0);
        if (rkm == NULL) {
            return;
        }
        handle_message(w, rkm);
        rd_kafka_message_destroy(rkm);
        if (w->stopping) {
            return;
        }
    }
    /* More may be waiting: continue on the next iteration so other work gets a turn. */
    qn_loop_timer_arm(w->more, 0);
}

static void drain_pipe(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void on_consumer_ready(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)loop;
    (void)events;
    drain_pipe(fd);
    consume_batch(opaque);
}

static void on_producer_ready(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)loop;
    (void)events;
    struct worker *w = opaque;
    drain_pipe(fd);
    rd_kafka_poll(w->producer, 0);
}

static void on_more(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    consume_batch(opaque);
}

static void on_tick(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    struct worker *w = opaque;
    rd_kafka_poll(w->producer, 0);
    long inflight = qn_tracker_inflight(w->tracker);
    qn_metrics_set(w->metrics, "quench_kafka_inflight_requests", "", (double)inflight);
    qn_metrics_set(w->metrics, "quench_kafka_assigned_partitions", "",
                   (double)w->assigned_partitions);
    qn_httpd_heartbeat(w->httpd, qn_loop_now(loop));
    if (w->paused && inflight < INFLIGHT_LOW && !w->stopping) {
        set_paused(w, 0);
    }
    if (w->stopping) {
        long pending = qn_tracker_pending(w->tracker) +
                       (w->engine != NULL ? qn_engine_running_tasks(w->engine) : 0);
        if (pending == 0 || qn_loop_now(loop) >= w->stop_deadline) {
            if (pending > 0) {
                QN_LOG_WARN("worker",
                            "shutdown budget spent with %ld messages or Azure tasks in flight; the "
                            "messages will be read again after restart",
                            pending);
            }
            qn_loop_stop(loop);
            return;
        }
    } else {
        consume_batch(w);
    }
    qn_loop_timer_arm(timer, TICK_MS);
}

static void on_signal(struct qn_loop *loop, int signo, void *opaque)
{
    struct worker *w = opaque;
    if (w->stopping) {
        return;
    }
    QN_LOG_INFO("worker",
                "signal %d: stopping fetch, waiting for %ld in-flight messages "
                "(budget %ld ms)",
                signo, qn_tracker_pending(w->tracker), w->cfg->shutdown.budget_ms);
    w->stopping = 1;
    w->stop_deadline = qn_loop_now(loop) + w->cfg->shutdown.budget_ms;
    qn_loop_unwatch_fd(loop, w->consumer_pipe[0]);
    if (w->tick != NULL) { /* NULL while start-up waits for the first OAUTHBEARER token */
        qn_loop_timer_arm(w->tick, 0);
    }
}

/* ---- librdkafka callbacks -------------------------------------------------------------------- */

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    enum qn_log_level lvl = level <= 3   ? QN_LOG_LEVEL_ERROR
                            : level <= 4 ? QN_LOG_LEVEL_WARN
                            : level <= 6 ? QN_LOG_LEVEL_INFO
                                         : QN_LOG_LEVEL_DEBUG;
    QN_LOG_AT(lvl, "librdkafka", "%s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct worker *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char detail[512];
        rd_kafka_fatal_error(rk, detail, sizeof(detail));
        QN_LOG_ERROR("kafka", "fatal error: %s", detail);
        begin_fatal(w, "librdkafka reported a fatal error");
        return;
    }
    QN_LOG_WARN("kafka", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* Served by rd_kafka_poll / rd_kafka_consumer_poll, i.e. on the loop thread. */
static void oauth_refresh_cb(rd_kafka_t *rk, const char *oauthbearer_config, void *opaque)
{
    (void)oauthbearer_config;
    struct worker *w = opaque;
    qn_kafka_oauth_refresh(w->kafka_oauth, rk);
}

static void log_partitions(const char *what, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        char fields[400];
        snprintf(fields, sizeof(fields), "\"topic\":\"%s\",\"partition\":%" PRId32,
                 parts->elems[i].topic, parts->elems[i].partition);
        qn_log_fields(QN_LOG_LEVEL_INFO, "kafka", fields, "partition %s", what);
    }
}

static void rebalance_cb(rd_kafka_t *rk,
                         rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    struct worker *w = opaque;
    const char *proto = rd_kafka_rebalance_protocol(rk);
    int cooperative = proto != NULL && strcmp(proto, "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_partitions("assigned", parts);
        if (cooperative) {
            rd_kafka_error_t *error = rd_kafka_incremental_assign(rk, parts);
            if (error != NULL) {
                QN_LOG_ERROR("kafka", "incremental assign failed: %s",
                             rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
            }
        } else {
            rd_kafka_assign(rk, parts);
        }
        if (w->paused) {
            rd_kafka_pause_partitions(rk, parts);
        }
        w->assigned_partitions += parts->cnt;
        w->assigned_once = 1;
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_partitions("revoked", parts);
        for (int i = 0; i < parts->cnt; i++) {
            qn_tracker_revoke(w->tracker, parts->elems[i].topic, parts->elems[i].partition);
        }
        qn_respond_reset(w->respond);
        if (cooperative) {
            rd_kafka_error_t *error = rd_kafka_incremental_unassign(rk, parts);
            if (error != NULL) {
                rd_kafka_error_destroy(error);
            }
            w->assigned_partitions -= parts->cnt;
        } else {
            rd_kafka_assign(rk, NULL);
            w->assigned_partitions = 0;
        }
        return;
    }
    QN_LOG_ERROR("kafka", "rebalance error: %s", rd_kafka_err2str(err));
    rd_kafka_assign(rk, NULL);
    w->assigned_partitions = 0;
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, int secret)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        QN_LOG_ERROR("config", "config key 'kafka.%s'%s%s: %s", key, secret ? "" : " = ",
                     secret ? "" : value, errstr);
        return -1;
    }
    return 0;
}

static rd_kafka_conf_t *build_conf(struct worker *w, const struct header *defaults, size_t n)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad |= conf_set(conf, defaults[i].name, defaults[i].value, 0);
    }
    for (size_t i = 0; i < w->cfg->kafka_count; i++) {
        bad |=
            conf_set(conf, w->cfg->kafka[i].key, w->cfg->kafka[i].value, w->cfg->kafka[i].secret);
    }
    if (bad) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, w);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (w->kafka_oauth != NULL) {
        rd_kafka_conf_set_oauthbearer_token_refresh_cb(conf, oauth_refresh_cb);
    }
    return conf;
}

static int make_pipe(int fds[2])
{
    if (pipe(fds) != 0) {
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        int flags = fcntl(fds[i], F_GETFL);
        if (flags < 0 || fcntl(fds[i], F_SETFL, flags | O_NONBLOCK) != 0 ||
            fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
            return -1;
        }
    }
    return 0;
}

/*
 * Looks up the topics the worker writes, before the loop starts: it warms the producer's metadata
 * (the first records need not wait for the periodic topic scan) and checks DESIGN.md's rule that
 * the work and state topics have the same partition count, since state is written to the
 * partition number of the work record it belongs to.
 */
static int check_topics(struct worker *w)
{
    const char *names[4] = {w->cfg->topics.work, w->cfg->topics.state, w->cfg->topics.outcomes,
                            w->cfg->topics.dlq};
    int partitions[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        w->output_topics[i] = rd_kafka_topic_new(w->producer, names[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err =
            w->output_topics[i] == NULL
                ? rd_kafka_last_error()
                : rd_kafka_metadata(w->producer, 0, w->output_topics[i], &md, 30000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
            err = md->topics[0].err;
            partitions[i] = md->topics[0].partition_cnt;
        }
        if (md != NULL) {
            rd_kafka_metadata_destroy(md);
        }
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR || partitions[i] <= 0) {
            QN_LOG_ERROR("kafka", "cannot use topic '%s': %s", names[i],
                         err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(err)
                                                           : "it has no partitions");
            return err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__TIMED_OUT
                       ? EXIT_FATAL
                       : EXIT_CONFIG;
        }
    }
    if (partitions[0] != partitions[1]) {
        QN_LOG_ERROR("config",
                     "topics '%s' (%d partitions) and '%s' (%d partitions) must have the same "
                     "partition count: response state is kept on the work record's partition",
                     names[0], partitions[0], names[1], partitions[1]);
        return EXIT_CONFIG;
    }
    return 0;
}

static int create_kafka(struct worker *w)
{
    char errstr[512];
    /* big enough for any record ingest accepts, plus headers; kafka.message.max.bytes overrides */
    char max_bytes[32];
    snprintf(max_bytes, sizeof(max_bytes), "%ld", w->cfg->ingest.max_record_bytes + 65536);
    const struct header producer_defaults[] = {
        {"client.id", "quench"},           {"enable.idempotence", "true"}, {"acks", "all"},
        {"partitioner", "murmur2_random"}, {"message.timeout.ms", "0"},    {"linger.ms", "5"},
        {"message.max.bytes", max_bytes},
    };
    rd_kafka_conf_t *pconf = build_conf(w, producer_defaults, 7);
    if (pconf == NULL) {
        return EXIT_CONFIG;
    }
    rd_kafka_conf_set_dr_msg_cb(pconf, delivery_report);
    w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, errstr, sizeof(errstr));
    if (w->producer == NULL) {
        rd_kafka_conf_destroy(pconf);
        QN_LOG_ERROR("kafka", "cannot create the producer: %s", errstr);
        return EXIT_CONFIG;
    }
    if (w->kafka_oauth != NULL) {
        /* No broker connection before a token: get the first one now, before the lookup below. */
        struct qn_error err = {0};
        qn_err_t orc = qn_kafka_oauth_wait(w->kafka_oauth, w->producer, 30000, &err);
        if (orc != QN_OK) {
            QN_LOG_ERROR("kafka", "cannot get an OAUTHBEARER token: %s", err.msg);
            return orc == QN_ERR_AUTH || orc == QN_ERR_CONFIG ? EXIT_CONFIG : EXIT_FATAL;
        }
    }
    const struct header consumer_defaults[] = {
        {"client.id", "quench"},
        {"group.id", w->cfg->group_id},
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.partition.eof", "false"},
    };
    int rc = check_topics(w);
    if (rc != 0) {
        return rc;
    }
    rd_kafka_conf_t *cconf = build_conf(w, consumer_defaults, 8);
    if (cconf == NULL) {
        return EXIT_CONFIG;
    }
    rd_kafka_conf_set_rebalance_cb(cconf, rebalance_cb);
    w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, errstr, sizeof(errstr));
    if (w->consumer == NULL) {
        rd_kafka_conf_destroy(cconf);
        QN_LOG_ERROR("kafka", "cannot create the consumer: %s", errstr);
        return EXIT_CONFIG;
    }
    rd_kafka_poll_set_consumer(w->consumer);
    w->consumer_queue = rd_kafka_queue_get_consumer(w->consumer);
    w->producer_queue = rd_kafka_queue_get_main(w->producer);
    if (make_pipe(w->consumer_pipe) != 0 || make_pipe(w->producer_pipe) != 0) {
        QN_LOG_ERROR("worker", "cannot create wake-up pipes (errno %d)", errno);
        return EXIT_FATAL;
    }
    rd_kafka_queue_io_event_enable(w->consumer_queue, w->consumer_pipe[1], "1", 1);
    rd_kafka_queue_io_event_enable(w->producer_queue, w->producer_pipe[1], "1", 1);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(3);
    if (strcmp(w->cfg->role, "respond") != 0) {
        rd_kafka_topic_partition_list_add(topics, w->cfg->topics.input, RD_KAFKA_PARTITION_UA);
        rd_kafka_topic_partition_list_add(topics, w->cfg->topics.verdicts, RD_KAFKA_PARTITION_UA);
    }
    if (strcmp(w->cfg->role, "ingest") != 0) {
        rd_kafka_topic_partition_list_add(topics, w->cfg->topics.work, RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        QN_LOG_ERROR("kafka", "subscribe failed: %s", rd_kafka_err2str(err));
        return EXIT_FATAL;
    }
    return 0;
}

static int ready(void *opaque, char *reason, size_t reason_len)
{
    struct worker *w = opaque;
    const char *why = NULL;
    if (w->fatal) {
        why = "fatal error";
    } else if (w->stopping) {
        why = "shutting down";
    } else if (!w->assigned_once) {
        why = "waiting for the first partition assignment";
    }
    if (why != NULL) {
        snprintf(reason, reason_len, "%s", why);
        return 0;
    }
    return 1;
}

static int describe_metrics(struct qn_metrics *m)
{
    const struct {
        const char *name;
        enum qn_metric_type type;
        const char *help;
    } families[] = {
        {"quench_build_info", QN_METRIC_GAUGE, "Build information; always 1."},
        {"quench_kafka_consumed_total", QN_METRIC_COUNTER, "Messages consumed, by topic."},
        {"quench_outcome_events_total", QN_METRIC_COUNTER, "Outcome events published, by type."},
        {"quench_kafka_inflight_requests", QN_METRIC_GAUGE,
         "Produce requests not yet acknowledged by the broker."},
        {"quench_kafka_assigned_partitions", QN_METRIC_GAUGE, "Partitions assigned to this pod."},
        {"quench_kafka_produce_errors_total", QN_METRIC_COUNTER, "Produce requests refused."},
        {"quench_kafka_delivery_failures_total", QN_METRIC_COUNTER,
         "Records the broker did not acknowledge."},
        {"quench_kafka_consumer_errors_total", QN_METRIC_COUNTER, "Consumer errors reported."},
    };

    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        if (qn_metrics_describe(m, families[i].name, families[i].type, families[i].help) != QN_OK) {
            return -1;
        }
    }
    char labels[64];
    snprintf(labels, sizeof(labels), "version=\"%s\"", qn_worker_version());
    qn_metrics_set(m, "quench_build_info", labels, 1);
    return 0;
}

static int setup(struct worker *w)
{
    struct qn_error err = {0};
    static const int signals[] = {SIGTERM, SIGINT, 0};
    if (qn_loop_new(&w->loop, &err) != QN_OK ||
        qn_loop_watch_signals(w->loop, signals, on_signal, w, &err) != QN_OK ||
        qn_metrics_new(&w->metrics, &err) != QN_OK) {
        QN_LOG_ERROR("worker", "start-up failed: %s", err.msg);
        return EXIT_FATAL;
    }
    if (describe_metrics(w->metrics) != 0 ||
        qn_ingest_new(w->cfg, w->metrics, &w->ingest) != QN_OK ||
        qn_respond_new(w->cfg, w->metrics, &w->respond) != QN_OK ||
        qn_tracker_new(store_offset, w, &w->tracker) != QN_OK) {
        QN_LOG_ERROR("worker", "start-up failed: out of memory");
        return EXIT_FATAL;
    }
    if (qn_kafka_oauth_enabled(w->cfg) &&
        qn_kafka_oauth_new(w->loop, w->cfg, &w->kafka_oauth, &err) != QN_OK) {
        QN_LOG_ERROR("config", "cannot set up Kafka OAUTHBEARER tokens: %s", err.msg);
        return EXIT_CONFIG;
    }
    int rc = create_kafka(w);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(w->cfg->azure.credential, "none") != 0 && strcmp(w->cfg->role, "ingest") != 0) {
        struct qn_emitter later = {.fn = emit_async, .opaque = w};
        if (qn_engine_new(w->loop, w->cfg, w->metrics, &later, &w->engine, &err) != QN_OK) {
            QN_LOG_ERROR("config", "cannot set up Azure: %s", err.msg);
            return EXIT_CONFIG;
        }
    }
    if (qn_httpd_start(w->loop, w->cfg->http.address, (uint16_t)w->cfg->http.port, w->metrics,
                       ready, w, &w->httpd, &err) != QN_OK) {
        QN_LOG_ERROR("worker", "cannot serve http on %s:%ld: %s", w->cfg->http.address,
                     w->cfg->http.port, err.msg);
        return EXIT_CONFIG;
    }
    if (qn_loop_timer_new(w->loop, on_tick, w, &w->tick, &err) != QN_OK ||
        qn_loop_timer_new(w->loop, on_more, w, &w->more, &err) != QN_OK ||
        qn_loop_watch_fd(w->loop, w->consumer_pipe[0], QN_LOOP_READ, on_consumer_ready, w, &err) !=
            QN_OK ||
        qn_loop_watch_fd(w->loop, w->producer_pipe[0], QN_LOOP_READ, on_producer_ready, w, &err) !=
            QN_OK) {
        QN_LOG_ERROR("worker", "start-up failed: %s", err.msg);
        return EXIT_FATAL;
    }
    qn_loop_timer_arm(w->tick, 0);
    char fields[512];
    snprintf(
        fields, sizeof(fields),
        "\"version\":\"%s\",\"role\":\"%s\",\"group_id\":\"%s\",\"input\":\"%s\",\"work\":\"%s\","
        "\"outcomes\":\"%s\",\"dlq\":\"%s\",\"http_port\":%u",
        qn_worker_version(), w->cfg->role, w->cfg->group_id, w->cfg->topics.input,
        w->cfg->topics.work, w->cfg->topics.outcomes, w->cfg->topics.dlq,
        (unsigned)qn_httpd_port(w->httpd));
    qn_log_fields(QN_LOG_LEVEL_INFO, "worker", fields,
                  w->engine == NULL        ? "quench started (observe mode)"
                  : w->cfg->policy.dry_run ? "quench started (Azure reads, dry run)"
                                           : "quench started (Azure responses)");
    return 0;
}

static void close_fd_pair(int fds[2])
{
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}

static void teardown(struct worker *w)
{
    if (w->producer != NULL) {
        /* Deliveries still in flight store their offsets from these reports. */
        int64_t left = w->stop_deadline - qn_clock_ms();
        rd_kafka_flush(w->producer, (int)(left > 0 ? left : 0));
    }
    if (w->consumer != NULL) {
        if (!w->fatal) {
            rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, NULL, 0);
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
                QN_LOG_WARN("kafka", "final commit: %s", rd_kafka_err2str(err));
            }
        }
        if (w->consumer_queue != NULL) {
            rd_kafka_queue_io_event_enable(w->consumer_queue, -1, NULL, 0);
            rd_kafka_queue_destroy(w->consumer_queue);
        }
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(w->consumer);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            QN_LOG_WARN("kafka", "consumer close: %s", rd_kafka_err2str(err));
        }
        rd_kafka_destroy(w->consumer);
        w->consumer = NULL;
        QN_LOG_INFO("worker", w->fatal ? "left the consumer group without committing (fatal error)"
                                       : "committed and left the consumer group");
    }
    qn_engine_free(w->engine); /* cancels Azure calls in flight: no more events */
    w->engine = NULL;
    for (int i = 0; i < 4; i++) {
        if (w->output_topics[i] != NULL) {
            rd_kafka_topic_destroy(w->output_topics[i]);
        }
    }
    if (w->producer != NULL) {
        if (w->producer_queue != NULL) {
            rd_kafka_queue_io_event_enable(w->producer_queue, -1, NULL, 0);
            rd_kafka_queue_destroy(w->producer_queue);
        }
        rd_kafka_destroy(w->producer);
        w->producer = NULL;
    }
    qn_kafka_oauth_free(w->kafka_oauth); /* after the handles it sets tokens on */
    w->kafka_oauth = NULL;
    qn_loop_timer_free(w->tick);
    qn_loop_timer_free(w->more);
    qn_httpd_stop(w->httpd);
    qn_tracker_free(w->tracker);
    qn_respond_free(w->respond);
    qn_ingest_free(w->ingest);
    qn_metrics_free(w->metrics);
    qn_loop_free(w->loop);
    close_fd_pair(w->consumer_pipe);
    close_fd_pair(w->producer_pipe);
}

int qn_pipeline_run(const struct qn_config *cfg)
{
    struct worker w;
    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    w.consumer_pipe[0] = w.consumer_pipe[1] = -1;
    w.producer_pipe[0] = w.producer_pipe[1] = -1;
    int rc = setup(&w);
    if (rc == 0) {
        if (qn_loop_run(w.loop) != QN_OK) {
            begin_fatal(&w, "the event loop failed");
        }
        if (w.stop_deadline == 0) {
            w.stop_deadline = qn_clock_ms() + cfg->shutdown.budget_ms;
        }
        rc = w.fatal ? EXIT_FATAL : 0;
    }
    teardown(&w);
    QN_LOG_INFO("worker", "stopped (exit %d)", rc);
    return rc;
}
