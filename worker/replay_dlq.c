/*
 * replay_dlq.c - `quench replay-dlq` (replay_dlq.h): read topics.dlq to the high watermarks seen
 * at the start with an assigned (group-less) consumer, filter, and re-produce to the original
 * topic with an idempotent producer. Blocking librdkafka calls throughout: this is a one-shot
 * command, not the worker's event loop.
 */
#include "replay_dlq.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "qn/log.h"
#include "qn/mem.h"

#define EXIT_OK     0
#define EXIT_USAGE  1
#define EXIT_FATAL  70
#define EXIT_CONFIG 78

#define META_TIMEOUT_MS  30000
#define POLL_MS          500
#define IDLE_LIMIT_MS    60000  /* no record and no end-of-partition for this long: give up */
#define FLUSH_TIMEOUT_MS 180000 /* above the producer's message.timeout.ms below */
#define HEADER_MAX       512    /* header values kept; longer ones are cut */
#define GROUP_SUFFIX     ".replay-dlq"
#define MAX_ATTEMPT      1000000000LL /* a quench.attempt above this counts as this */

/* ---- options --------------------------------------------------------------------------------- */

struct options {
    const char *config;
    const char **reasons;
    size_t reason_count;
    bool dry_run;
    long long max; /* 0: no limit */
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: quench replay-dlq --config FILE [--reason CODE]... [--dry-run] [--max N]\n"
        "  Re-sends the records of topics.dlq (up to its end when the command starts) to the\n"
        "  topic named in their quench.original.topic header (topics.input or\n"
        "  topics.verdicts only), with header quench.replay.attempt = quench.attempt + 1.\n"
        "  --reason CODE  only records whose quench.reason.code is CODE (repeatable)\n"
        "  --dry-run      read and count, send nothing\n"
        "  --max N        stop after N records were replayed\n"
        "  Records with quench.truncated=true are never replayed (their bytes are a prefix).\n");
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past VALUE. */
static const char *option_value(int argc, char **argv, int *i, const char *name, bool *bad)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0) {
        return NULL;
    }
    if (arg[n] == '=') {
        return arg + n + 1;
    }
    if (arg[n] != '\0') {
        return NULL;
    }
    if (*i + 1 >= argc) {
        *bad = true;
        return NULL;
    }
    *i += 1;
    return argv[*i];
}

static bool valid_reason(const char *code)
{
    if (code[0] == '\0' || strlen(code) > 64) {
        return false;
    }
    for (const char *p = code; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
              *p == '.')) {
            return false;
        }
    }
    return true;
}

/* @returns -1 on a usage error (message printed), 1 for --help, 0 otherwise. */
static int parse_options(int argc, char **argv, struct options *o)
{
    for (int i = 1; i < argc; i++) {
        bool bad = false;
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
        if (strcmp(argv[i], "--dry-run") == 0) {
            o->dry_run = true;
        } else if ((v = option_value(argc, argv, &i, "--config", &bad)) != NULL ||
                   (!bad && (v = option_value(argc, argv, &i, "-c", &bad)) != NULL)) {
            o->config = v;
        } else if (!bad && (v = option_value(argc, argv, &i, "--reason", &bad)) != NULL) {
            if (!valid_reason(v)) {
                fprintf(stderr, "quench replay-dlq: --reason '%.80s' is not a reason code\n", v);
                return -1;
            }
            o->reasons[o->reason_count++] = v;
        } else if (!bad && (v = option_value(argc, argv, &i, "--max", &bad)) != NULL) {
            char *end = NULL;
            errno = 0;
            long long n = strtoll(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || n < 1) {
                fprintf(stderr, "quench replay-dlq: --max takes a positive number, not '%.40s'\n",
                        v);
                return -1;
            }
            o->max = n;
        } else {
            fprintf(stderr, "quench replay-dlq: %s '%.80s'\n",
                    bad ? "a value is missing after" : "unknown argument", argv[i]);
            return -1;
        }
    }
    if (o->config == NULL) {
        fprintf(stderr, "quench replay-dlq: --config FILE is required\n");
        return -1;
    }
    return 0;
}

/* ---- counters by name ------------------------------------------------------------------------ */

struct counter {
    char *name;
    long long n;
};

struct counters {
    struct counter *items;
    size_t count;
    size_t cap;
    long long total;
};

static bool count_add(struct counters *c, const char *name)
{
    c->total++;
    for (size_t i = 0; i < c->count; i++) {
        if (strcmp(c->items[i].name, name) == 0) {
            c->items[i].n++;
            return true;
        }
    }
    if (c->count == c->cap) {
        size_t cap = c->cap == 0 ? 8 : c->cap * 2;
        struct counter *items = qn_realloc(c->items, cap * sizeof(*items));
        if (items == NULL) {
            return false;
        }
        c->items = items;
        c->cap = cap;
    }
    c->items[c->count].name = qn_strdup(name);
    if (c->items[c->count].name == NULL) {
        return false;
    }
    c->items[c->count++].n = 1;
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct counter *)a)->name, ((const struct counter *)b)->name);
}

/* Prints " name=n name=n ..." sorted by name, or " none". */
static void count_print(FILE *out, struct counters *c)
{
    if (c->count == 0) {
        fprintf(out, " none");
        return;
    }
    if (c->count > 1) {
        qsort(c->items, c->count, sizeof(c->items[0]), by_name);
    }
    for (size_t i = 0; i < c->count; i++) {
        fprintf(out, " %s=%lld", c->items[i].name, c->items[i].n);
    }
}

static void count_free(struct counters *c)
{
    for (size_t i = 0; i < c->count; i++) {
        qn_free(c->items[i].name);
    }
    qn_free(c->items);
    memset(c, 0, sizeof(*c));
}

/* ---- Kafka set-up ---------------------------------------------------------------------------- */

struct replay {
    const struct qn_config *cfg;
    struct options opts;
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    /* per DLQ partition: the end to read to, and whether it is reached */
    int32_t *partitions;
    int64_t *ends;
    bool *done;
    int partition_count;
    int32_t input_partitions; /* of topics.input / topics.verdicts, 0 = unknown */
    int32_t verdict_partitions;
    /* counts */
    long long read;
    long long replayed; /* produced (or, dry run, would be) */
    long long delivered;
    long long failed;
    char first_failure[256];
    bool max_reached;
    struct counters by_topic;
    struct counters by_reason;
    struct counters not_selected;
    struct counters truncated;
    struct counters foreign;
};

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
    (void)rk;
    (void)opaque;
    QN_LOG_WARN("kafka", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    struct replay *r = opaque;
    if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        r->delivered++;
        return;
    }
    if (r->failed++ == 0) {
        snprintf(r->first_failure, sizeof(r->first_failure), "%s[%" PRId32 "]: %s",
                 rd_kafka_topic_name(rkm->rkt), rkm->partition, rd_kafka_err2str(rkm->err));
    }
}

struct kv {
    const char *key;
    const char *value;
};

/* A librdkafka configuration: @p defaults, then the kafka.* pass-through properties. */
static rd_kafka_conf_t *make_conf(const struct replay *r, const struct kv *defaults, size_t n)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    bool bad = false;
    for (size_t i = 0; i < n; i++) {
        if (rd_kafka_conf_set(conf, defaults[i].key, defaults[i].value, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "quench replay-dlq: librdkafka property '%s': %s\n", defaults[i].key,
                    errstr);
            bad = true;
        }
    }
    for (size_t i = 0; i < r->cfg->kafka_count; i++) {
        const struct qn_kv *kv = &r->cfg->kafka[i];
        if (rd_kafka_conf_set(conf, kv->key, kv->value, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            /* never echo a secret value */
            fprintf(stderr, "quench replay-dlq: config key 'kafka.%s'%s%s: %s\n", kv->key,
                    kv->secret ? "" : " = ", kv->secret ? "" : kv->value, errstr);
            bad = true;
        }
    }
    if (bad) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    return conf;
}

static int create_clients(struct replay *r)
{
    char errstr[512];
    /* librdkafka's assign() needs a group id; nothing joins the group or commits to it */
    char group[256];
    snprintf(group, sizeof(group), "%.200s%s", r->cfg->group_id, GROUP_SUFFIX);
    const struct kv consumer_defaults[] = {
        {"client.id", "quench-replay-dlq"}, {"group.id", group},
        {"enable.auto.commit", "false"},    {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},   {"auto.offset.reset", "earliest"},
    };
    rd_kafka_conf_t *conf =
        make_conf(r, consumer_defaults, sizeof(consumer_defaults) / sizeof(consumer_defaults[0]));
    if (conf == NULL) {
        return EXIT_CONFIG;
    }
    r->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (r->consumer == NULL) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "quench replay-dlq: cannot create the consumer: %s\n", errstr);
        return EXIT_CONFIG;
    }
    if (r->opts.dry_run) {
        return EXIT_OK;
    }
    char max_bytes[32];
    snprintf(max_bytes, sizeof(max_bytes), "%ld", r->cfg->ingest.max_record_bytes + 65536);
    const struct kv producer_defaults[] = {
        {"client.id", "quench-replay-dlq"}, {"enable.idempotence", "true"},   {"acks", "all"},
        {"partitioner", "murmur2_random"},  {"message.timeout.ms", "120000"}, {"linger.ms", "5"},
        {"message.max.bytes", max_bytes},
    };
    conf =
        make_conf(r, producer_defaults, sizeof(producer_defaults) / sizeof(producer_defaults[0]));
    if (conf == NULL) {
        return EXIT_CONFIG;
    }
    rd_kafka_conf_set_opaque(conf, r);
    rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
    r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (r->producer == NULL) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "quench replay-dlq: cannot create the producer: %s\n", errstr);
        return EXIT_CONFIG;
    }
    return EXIT_OK;
}

/* The partition count of @p topic (0 when it cannot be learnt). */
static int32_t partition_count(rd_kafka_t *rk, const char *topic, rd_kafka_resp_err_t *err_out)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err =
        rkt == NULL ? rd_kafka_last_error() : rd_kafka_metadata(rk, 0, rkt, &md, META_TIMEOUT_MS);
    int32_t n = 0;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
        err = md->topics[0].err;
        n = err == RD_KAFKA_RESP_ERR_NO_ERROR ? md->topics[0].partition_cnt : 0;
    }
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    if (rkt != NULL) {
        rd_kafka_topic_destroy(rkt);
    }
    if (err_out != NULL) {
        *err_out = err;
    }
    return n;
}

/* Learns the DLQ's partitions and their watermarks, and assigns the non-empty ones. */
static int assign_dlq(struct replay *r)
{
    const char *dlq = r->cfg->topics.dlq;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int32_t n = partition_count(r->consumer, dlq, &err);
    if (n <= 0) {
        fprintf(stderr, "quench replay-dlq: cannot read topic '%s': %s\n", dlq,
                err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(err) : "it has no partitions");
        return EXIT_FATAL;
    }
    r->partitions = qn_calloc((size_t)n, sizeof(*r->partitions));
    r->ends = qn_calloc((size_t)n, sizeof(*r->ends));
    r->done = qn_calloc((size_t)n, sizeof(*r->done));
    if (r->partitions == NULL || r->ends == NULL || r->done == NULL) {
        fprintf(stderr, "quench replay-dlq: out of memory\n");
        return EXIT_FATAL;
    }
    r->partition_count = n;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
    for (int32_t p = 0; p < n; p++) {
        int64_t lo = 0;
        int64_t hi = 0;
        err = rd_kafka_query_watermark_offsets(r->consumer, dlq, p, &lo, &hi, META_TIMEOUT_MS);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr,
                    "quench replay-dlq: cannot read the watermarks of %s[%" PRId32 "]: %s\n", dlq,
                    p, rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(list);
            return EXIT_FATAL;
        }
        r->partitions[p] = p;
        r->ends[p] = hi;
        r->done[p] = lo >= hi;
        if (!r->done[p]) {
            rd_kafka_topic_partition_list_add(list, dlq, p)->offset = lo;
        }
        char fields[200];
        snprintf(fields, sizeof(fields),
                 "\"partition\":%" PRId32 ",\"low\":%" PRId64 ",\"high\":%" PRId64, p, lo, hi);
        qn_log_fields(QN_LOG_LEVEL_DEBUG, "replay", fields, "DLQ partition to read");
    }
    err = list->cnt > 0 ? rd_kafka_assign(r->consumer, list) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "quench replay-dlq: cannot assign %s: %s\n", dlq, rd_kafka_err2str(err));
        return EXIT_FATAL;
    }
    return EXIT_OK;
}

/* ---- one record ------------------------------------------------------------------------------ */

/* The last value of header @p name as text (cut at HEADER_MAX - 1 bytes); false if absent. */
static bool header_text(rd_kafka_headers_t *hdrs, const char *name, char *out)
{
    const void *value = NULL;
    size_t size = 0;
    out[0] = '\0';
    if (hdrs == NULL ||
        rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return false;
    }
    size_t n = value == NULL ? 0 : size < HEADER_MAX - 1 ? size : HEADER_MAX - 1;
    if (n > 0) {
        memcpy(out, value, n);
    }
    out[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) {
            out[i] = '?'; /* it is printed in the summary */
        }
    }
    return true;
}

static bool parse_long(const char *s, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static bool selected(const struct replay *r, const char *code)
{
    if (r->opts.reason_count == 0) {
        return true;
    }
    for (size_t i = 0; i < r->opts.reason_count; i++) {
        if (strcmp(r->opts.reasons[i], code) == 0) {
            return true;
        }
    }
    return false;
}

static int produce(struct replay *r,
                   const rd_kafka_message_t *rkm,
                   const char *topic,
                   int32_t partition,
                   const struct kv *headers,
                   size_t header_count)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(header_count);
    for (size_t i = 0; i < header_count; i++) {
        rd_kafka_header_add(hdrs, headers[i].key, -1, headers[i].value, -1);
    }
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            r->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(rkm->key, rkm->key_len),
            RD_KAFKA_V_VALUE(rkm->payload, rkm->len), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            break; /* librdkafka owns hdrs now */
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(r->producer, 100);
            continue;
        }
        rd_kafka_headers_destroy(hdrs);
        fprintf(stderr, "quench replay-dlq: cannot produce to %s: %s\n", topic,
                rd_kafka_err2str(err));
        return EXIT_FATAL;
    }
    rd_kafka_poll(r->producer, 0);
    return EXIT_OK;
}

static int handle(struct replay *r, const rd_kafka_message_t *rkm)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        hdrs = NULL;
    }
    char code[HEADER_MAX];
    char topic[HEADER_MAX];
    char partition_text[HEADER_MAX];
    char offset_text[HEADER_MAX];
    char attempt_text[HEADER_MAX];
    char truncated[HEADER_MAX];
    if (!header_text(hdrs, "quench.reason.code", code) || code[0] == '\0') {
        snprintf(code, sizeof(code), "%s", "(none)");
    }
    bool have_topic = header_text(hdrs, "quench.original.topic", topic);
    bool have_partition = header_text(hdrs, "quench.original.partition", partition_text);
    bool have_offset = header_text(hdrs, "quench.original.offset", offset_text);
    header_text(hdrs, "quench.attempt", attempt_text);
    header_text(hdrs, "quench.truncated", truncated);
    r->read++;
    bool ok = true;
    if (!selected(r, code)) {
        ok = count_add(&r->not_selected, code);
    } else if (strcmp(truncated, "true") == 0) {
        ok = count_add(&r->truncated, code);
    } else if (!have_topic || (strcmp(topic, r->cfg->topics.input) != 0 &&
                               strcmp(topic, r->cfg->topics.verdicts) != 0)) {
        ok = count_add(&r->foreign, have_topic && topic[0] != '\0' ? topic : "(none)");
    } else {
        long long attempt = 1;
        if (!parse_long(attempt_text, &attempt) || attempt < 1) {
            attempt = 1; /* it was dead-lettered at least once */
        } else if (attempt > MAX_ATTEMPT) {
            attempt = MAX_ATTEMPT;
        }
        long long original_partition = -1;
        int32_t count =
            strcmp(topic, r->cfg->topics.input) == 0 ? r->input_partitions : r->verdict_partitions;
        if (!have_partition || !parse_long(partition_text, &original_partition) ||
            original_partition < 0 || original_partition >= count) {
            original_partition = RD_KAFKA_PARTITION_UA; /* gone, or unknown: the partitioner */
        }
        char next_attempt[24];
        char source[HEADER_MAX + 48];
        char original[3 * HEADER_MAX];
        snprintf(next_attempt, sizeof(next_attempt), "%lld", attempt + 1);
        snprintf(source, sizeof(source), "%s/%" PRId32 "/%" PRId64, r->cfg->topics.dlq,
                 rkm->partition, rkm->offset);
        snprintf(original, sizeof(original), "%s/%s/%s", topic, partition_text, offset_text);
        const struct kv headers[4] = {
            {"quench.replay.attempt", next_attempt},
            {"quench.replay.source", source},
            {"quench.replay.reason", code},
            {"quench.replay.original", original},
        };
        size_t header_count = have_partition && have_offset ? 4 : 3;
        if (!r->opts.dry_run) {
            int rc = produce(r, rkm, topic, (int32_t)original_partition, headers, header_count);
            if (rc != EXIT_OK) {
                return rc;
            }
        }
        r->replayed++;
        ok = count_add(&r->by_topic, topic) && count_add(&r->by_reason, code);
        if (r->opts.max > 0 && r->replayed >= r->opts.max) {
            r->max_reached = true;
        }
    }
    if (!ok) {
        fprintf(stderr, "quench replay-dlq: out of memory\n");
        return EXIT_FATAL;
    }
    return EXIT_OK;
}

/* ---- the read loop --------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool all_done(const struct replay *r)
{
    for (int i = 0; i < r->partition_count; i++) {
        if (!r->done[i]) {
            return false;
        }
    }
    return true;
}

static void mark(struct replay *r, int32_t partition, int64_t next_offset)
{
    if (partition >= 0 && partition < r->partition_count && next_offset >= r->ends[partition]) {
        r->done[partition] = true;
    }
}

static int read_dlq(struct replay *r)
{
    int64_t last_progress = now_ms();
    while (!all_done(r) && !r->max_reached) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(r->consumer, POLL_MS);
        if (r->producer != NULL) {
            rd_kafka_poll(r->producer, 0);
        }
        if (rkm == NULL) {
            if (now_ms() - last_progress > IDLE_LIMIT_MS) {
                fprintf(stderr,
                        "quench replay-dlq: %s was not read to its end: nothing arrived for %d s\n",
                        r->cfg->topics.dlq, IDLE_LIMIT_MS / 1000);
                return EXIT_FATAL;
            }
            continue;
        }
        int rc = EXIT_OK;
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            last_progress = now_ms();
            mark(r, rkm->partition, rkm->offset);
        } else if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            QN_LOG_WARN("kafka", "consume: %s", rd_kafka_message_errstr(rkm));
            if (rkm->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                rkm->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                rkm->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
                fprintf(stderr, "quench replay-dlq: cannot read %s: %s\n", r->cfg->topics.dlq,
                        rd_kafka_message_errstr(rkm));
                rc = EXIT_FATAL;
            }
        } else {
            last_progress = now_ms();
            int32_t p = rkm->partition;
            if (p >= 0 && p < r->partition_count && !r->done[p] && rkm->offset < r->ends[p]) {
                rc = handle(r, rkm);
            }
            mark(r, p, rkm->offset + 1);
        }
        rd_kafka_message_destroy(rkm);
        if (rc != EXIT_OK) {
            return rc;
        }
    }
    return EXIT_OK;
}

static void print_summary(struct replay *r)
{
    const char *dlq = r->cfg->topics.dlq;
    printf("replay-dlq: read %lld record(s) from %s (%d partition(s), up to the end at the "
           "start)%s\n",
           r->read, dlq, r->partition_count, r->max_reached ? "; stopped at --max" : "");
    printf("replay-dlq: %s %lld:", r->opts.dry_run ? "would replay" : "replayed", r->replayed);
    count_print(stdout, &r->by_topic);
    printf("\n");
    printf("replay-dlq: %s by reason:", r->opts.dry_run ? "would replay" : "replayed");
    count_print(stdout, &r->by_reason);
    printf("\n");
    printf("replay-dlq: skipped %lld not selected by --reason:", r->not_selected.total);
    count_print(stdout, &r->not_selected);
    printf("\n");
    printf("replay-dlq: skipped %lld truncated (quench.truncated=true, bytes incomplete):",
           r->truncated.total);
    count_print(stdout, &r->truncated);
    printf("\n");
    printf("replay-dlq: skipped %lld whose original topic is neither %s nor %s:", r->foreign.total,
           r->cfg->topics.input, r->cfg->topics.verdicts);
    count_print(stdout, &r->foreign);
    printf("\n");
    if (!r->opts.dry_run && r->failed > 0) {
        printf("replay-dlq: NOT delivered %lld (first: %s)\n", r->failed, r->first_failure);
    }
    fflush(stdout);
}

static void replay_fini(struct replay *r)
{
    if (r->consumer != NULL) {
        rd_kafka_consumer_close(r->consumer);
        rd_kafka_destroy(r->consumer);
    }
    if (r->producer != NULL) {
        rd_kafka_destroy(r->producer);
    }
    qn_free(r->partitions);
    qn_free(r->ends);
    qn_free(r->done);
    count_free(&r->by_topic);
    count_free(&r->by_reason);
    count_free(&r->not_selected);
    count_free(&r->truncated);
    count_free(&r->foreign);
}

int qn_replay_dlq_main(int argc, char **argv, char **envp)
{
    struct replay r;
    memset(&r, 0, sizeof(r));
    r.opts.reasons = qn_calloc((size_t)(argc > 0 ? argc : 1), sizeof(*r.opts.reasons));
    if (r.opts.reasons == NULL) {
        fprintf(stderr, "quench replay-dlq: out of memory\n");
        return EXIT_FATAL;
    }
    int prc = parse_options(argc, argv, &r.opts);
    if (prc != 0) {
        usage(prc > 0 ? stdout : stderr);
        qn_free(r.opts.reasons);
        return prc > 0 ? EXIT_OK : EXIT_USAGE;
    }
    struct qn_config *cfg = NULL;
    struct qn_error err = {0};
    if (qn_config_load_flags(r.opts.config, envp, 0, &cfg, &err) != QN_OK) {
        QN_LOG_ERROR("config", "%s", err.msg);
        fprintf(stderr, "quench: %s\n", err.msg);
        qn_free(r.opts.reasons);
        return EXIT_CONFIG;
    }
    if (qn_log_set_level_name(cfg->log_level) != QN_OK) {
        qn_config_free(cfg);
        qn_free(r.opts.reasons);
        return EXIT_CONFIG;
    }
    r.cfg = cfg;
    int rc = create_clients(&r);
    if (rc == EXIT_OK) {
        rc = assign_dlq(&r); /* first: an unreachable cluster fails here, once */
    }
    if (rc == EXIT_OK) {
        rd_kafka_t *meta = r.producer != NULL ? r.producer : r.consumer;
        r.input_partitions = partition_count(meta, cfg->topics.input, NULL);
        r.verdict_partitions = partition_count(meta, cfg->topics.verdicts, NULL);
    }
    if (rc == EXIT_OK) {
        rc = read_dlq(&r);
    }
    if (r.producer != NULL) {
        /* whatever was produced is delivered (or has failed) before anything is reported */
        rd_kafka_resp_err_t ferr = rd_kafka_flush(r.producer, FLUSH_TIMEOUT_MS);
        if (ferr != RD_KAFKA_RESP_ERR_NO_ERROR || rd_kafka_outq_len(r.producer) > 0) {
            fprintf(stderr, "quench replay-dlq: %d record(s) still undelivered after %d s\n",
                    rd_kafka_outq_len(r.producer), FLUSH_TIMEOUT_MS / 1000);
            rc = rc == EXIT_OK ? EXIT_FATAL : rc;
        }
        if (r.failed > 0) {
            fprintf(stderr, "quench replay-dlq: %lld record(s) were not delivered (first: %s)\n",
                    r.failed, r.first_failure);
            rc = rc == EXIT_OK ? EXIT_FATAL : rc;
        }
    }
    if (rc == EXIT_OK || r.read > 0) {
        print_summary(&r);
    }
    replay_fini(&r);
    qn_config_free(cfg);
    qn_free(r.opts.reasons);
    return rc;
}
