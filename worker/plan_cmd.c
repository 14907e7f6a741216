/*
 * plan_cmd.c - offline planning: ingest and respond chained in-process, events to a FILE.
 * The input is treated as one Kafka value from the configured input topic, partition 0, offset 0,
 * so rejected records get the same event ids the worker would give them at that position.
 */
#include "plan_cmd.h"

#include <errno.h>
#include <string.h>

#include "ingest.h"
#include "plan.h"
#include "qn/buf.h"
#include "qn/log.h"
#include "respond.h"

#define PLAN_MAX_INPUT (64L * 1024 * 1024)

struct plan_ctx {
    const struct qn_config *cfg;
    struct qn_respond *respond;
    FILE *out;
    long events;
};

static qn_err_t print_event(const char *type,
                            const char *event_id,
                            const char *key,
                            const char *json,
                            size_t len,
                            void *opaque)
{
    (void)type;
    (void)event_id;
    (void)key;
    struct plan_ctx *ctx = opaque;
    if (fwrite(json, 1, len, ctx->out) != len || fputc('\n', ctx->out) == EOF) {
        return QN_ERR_IO;
    }
    ctx->events++;
    return QN_OK;
}

static qn_err_t forward(void *opaque,
                        enum qn_work_kind kind,
                        const char *key,
                        const char *alert_id,
                        const char *bytes,
                        size_t len,
                        int index)
{
    (void)key;
    (void)alert_id;
    (void)index;
    struct plan_ctx *ctx = opaque;
    struct qn_emitter emitter = {.fn = print_event, .opaque = ctx};
    return qn_respond_record(ctx->respond, kind, bytes, len, &emitter);
}

static qn_err_t reject(void *opaque,
                       const char *bytes,
                       size_t len,
                       int index,
                       enum qn_reject_reason reason,
                       const char *message,
                       const char *alert_id)
{
    (void)bytes;
    (void)len;
    struct plan_ctx *ctx = opaque;
    struct qn_emitter emitter = {.fn = print_event, .opaque = ctx};
    struct qn_record_origin origin = {
        .topic = ctx->cfg->topics.input,
        .partition = 0,
        .offset = 0,
        .index = index,
        .dlq_topic = ctx->cfg->topics.dlq,
    };
    fprintf(stderr, "quench plan: record %d rejected (%s): %s\n", index,
            qn_reject_reason_name(reason), message);
    return qn_plan_rejected(&origin, qn_reject_reason_name(reason), message, alert_id, &emitter);
}

static int read_all(const char *path, struct qn_buf *buf)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (in == NULL) {
        fprintf(stderr, "quench plan: cannot open '%s': %s\n", path, strerror(errno));
        return -1;
    }
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0) {
        if (qn_buf_append(buf, chunk, n) != QN_OK) {
            fprintf(stderr, "quench plan: '%s' is larger than %ld bytes\n", path, PLAN_MAX_INPUT);
            rc = -1;
            break;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "quench plan: error reading '%s'\n", path);
        rc = -1;
    }
    if (in != stdin) {
        fclose(in);
    }
    return rc;
}

int qn_plan_cmd_run(const struct qn_config *cfg, const char *path, FILE *out)
{
    struct qn_buf input;
    qn_buf_init(&input, (size_t)PLAN_MAX_INPUT);
    if (read_all(path, &input) != 0) {
        qn_buf_fini(&input);
        return 1;
    }
    struct qn_ingest *ingest = NULL;
    struct plan_ctx ctx = {.cfg = cfg, .out = out};
    if (qn_ingest_new(cfg, NULL, &ingest) != QN_OK ||
        qn_respond_new(cfg, NULL, &ctx.respond) != QN_OK) {
        fprintf(stderr, "quench plan: out of memory\n");
        qn_ingest_free(ingest);
        qn_buf_fini(&input);
        return 1;
    }
    struct qn_ingest_sink sink = {.forward = forward, .reject = reject, .opaque = &ctx};
    qn_err_t rc = qn_ingest_value(ingest, false, qn_buf_cstr(&input), input.len, &sink);
    struct qn_ingest_counts counts;
    qn_ingest_counts(ingest, &counts);
    fprintf(stderr,
            "quench plan: %ld records: %ld forwarded, %ld skipped, %ld rejected; %ld events\n",
            counts.records, counts.forwarded, counts.skipped, counts.rejected, ctx.events);
    qn_respond_free(ctx.respond);
    qn_ingest_free(ingest);
    qn_buf_fini(&input);
    if (fflush(out) != 0 || rc != QN_OK) {
        fprintf(stderr, "quench plan: cannot write the events\n");
        return 1;
    }
    return 0;
}
