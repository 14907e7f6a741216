/*
 * quench-devkafka: a throwaway Kafka cluster for development, the demo and integration tests.
 *
 * It wraps librdkafka's built-in mock cluster (rdkafka_mock.h, librdkafka 2.0.2): N mock brokers
 * listen on 127.0.0.1 at random ports inside this one process. Produce, fetch, consumer groups,
 * offset commits, the idempotent producer and transactions all work against it, so kcat,
 * python3-confluent-kafka and the worker can talk to it like to a real cluster. Nothing is
 * persisted: the data lives until the process exits.
 *
 * Start-up order matters: the topics are created explicitly (with their partition counts) BEFORE
 * the bootstrap list is published, because the mock cluster auto-creates any unknown topic a client
 * asks for with its own default partition count.
 *
 * Output contract:
 *   stdout   exactly one line, "bootstrap=HOST:PORT[,HOST:PORT...]", flushed once ready;
 *   stderr   human-readable log lines prefixed "quench-devkafka:";
 *   --bootstrap-file PATH   receives the bare bootstrap list plus a newline, written atomically
 *                           (temporary file, then rename), so a reader that sees the file sees
 *                           all of it.
 *
 * Control (optional, --control-file PATH): every 100 ms the process looks for PATH. When it
 * exists, each line is one command, applied in order, and then PATH is removed, so a test knows a
 * command was applied once the file is gone. Write it atomically (temporary file, then rename).
 *   broker-down ID                 make broker ID (1-based) drop connections
 *   broker-up ID                   bring broker ID back
 *   broker-rtt ID MS               add MS of round-trip latency to broker ID
 *   topic-error TOPIC ERR          make TOPIC answer with error code ERR (0 clears)
 *   request-errors APIKEY ERR CNT  fail the next CNT requests of APIKEY with error code ERR
 *   clear-request-errors APIKEY    forget queued errors for APIKEY
 *
 * The process runs until SIGTERM or SIGINT, then destroys the cluster and exits 0. The signals
 * are blocked in every thread (librdkafka's threads inherit the mask) and taken synchronously
 * with sigtimedwait(), so no handler races with librdkafka.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define DK_NAME             "quench-devkafka"
#define DK_MAX_TOPICS       64
#define DK_DEFAULT_PARTS    4
#define DK_POLL_INTERVAL_NS (100 * 1000 * 1000L)
#define DK_LINE_MAX         1024

struct dk_topic {
    const char *name;
    int partitions; /* 0: use the default partition count */
};

struct dk_options {
    int brokers;
    int default_partitions;
    struct dk_topic topics[DK_MAX_TOPICS];
    size_t topic_cnt;
    const char *bootstrap_file;
    const char *control_file;
};

/* The default topic set: the worker's default topic names. quench.dlq keeps 1 partition. */
static const struct dk_topic dk_default_topics[] = {
    {.name = "defender.alerts", .partitions = 0}, {.name = "quench.verdicts", .partitions = 0},
    {.name = "quench.work", .partitions = 0},     {.name = "quench.state", .partitions = 0},
    {.name = "quench.outcomes", .partitions = 0}, {.name = "quench.dlq", .partitions = 1},
};

static void dk_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void dk_log(const char *fmt, ...)
{
    va_list ap;

    fputs(DK_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static void dk_usage(FILE *out)
{
    fprintf(
        out,
        "usage: " DK_NAME " [options]\n"
        "\n"
        "Runs an in-process Kafka mock cluster (librdkafka) on 127.0.0.1 until SIGTERM/SIGINT.\n"
        "Prints \"bootstrap=HOST:PORT,...\" on stdout once the topics exist.\n"
        "\n"
        "options:\n"
        "  --brokers N              number of mock brokers (default 1)\n"
        "  --topic NAME[:PARTS]     create topic NAME (repeatable); replaces the default set\n"
        "  --partitions N           default partition count (default %d)\n"
        "  --bootstrap-file PATH    also write the bootstrap list to PATH (atomically)\n"
        "  --control-file PATH      apply commands from PATH when it appears, then remove it\n"
        "                           (broker-down ID | broker-up ID | broker-rtt ID MS |\n"
        "                            topic-error TOPIC ERR | request-errors APIKEY ERR CNT |\n"
        "                            clear-request-errors APIKEY)\n"
        "  --help                   show this help\n"
        "\n"
        "default topics: defender.alerts quench.verdicts quench.work quench.state\n"
        "                quench.outcomes (default partition count each), quench.dlq (1)\n",
        DK_DEFAULT_PARTS);
}

/* Parses a decimal int in [min, max]; returns false on junk or overflow. */
static bool dk_parse_int(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    if (s == NULL || *s == '\0') {
        return false;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* Splits "NAME[:PARTS]" in place (the colon becomes NUL). Topic names cannot contain ':'. */
static bool dk_parse_topic(char *arg, struct dk_topic *topic)
{
    char *colon = strrchr(arg, ':');
    long parts = 0;

    if (colon != NULL) {
        *colon = '\0';
        if (!dk_parse_int(colon + 1, 1, 100000, &parts)) {
            return false;
        }
    }
    if (arg[0] == '\0') {
        return false;
    }
    topic->name = arg;
    topic->partitions = (int)parts;
    return true;
}

/* Returns 0 to run, 1 for --help (exit 0), -1 for a usage error (exit 2). */
static int dk_parse_args(int argc, char **argv, struct dk_options *opt)
{
    /* Every option but --help takes one value. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return 1;
        }
        if (v == NULL) {
            dk_log("unknown option or missing value: %s", a);
            return -1;
        }
        if (strcmp(a, "--brokers") == 0) {
            if (!dk_parse_int(v, 1, 32, &n)) {
                dk_log("--brokers wants 1..32, got '%s'", v);
                return -1;
            }
            opt->brokers = (int)n;
        } else if (strcmp(a, "--partitions") == 0) {
            if (!dk_parse_int(v, 1, 100000, &n)) {
                dk_log("--partitions wants a positive number, got '%s'", v);
                return -1;
            }
            opt->default_partitions = (int)n;
        } else if (strcmp(a, "--topic") == 0) {
            if (opt->topic_cnt == DK_MAX_TOPICS) {
                dk_log("too many --topic options (max %d)", DK_MAX_TOPICS);
                return -1;
            }
            if (!dk_parse_topic(argv[i + 1], &opt->topics[opt->topic_cnt])) {
                dk_log("--topic wants NAME or NAME:PARTITIONS, got '%s'", v);
                return -1;
            }
            opt->topic_cnt++;
        } else if (strcmp(a, "--bootstrap-file") == 0) {
            opt->bootstrap_file = v;
        } else if (strcmp(a, "--control-file") == 0) {
            opt->control_file = v;
        } else {
            dk_log("unknown option: %s", a);
            return -1;
        }
    }
    return 0;
}

static int dk_create_topics(rd_kafka_mock_cluster_t *mc, const struct dk_options *opt)
{
    const struct dk_topic *topics = opt->topics;
    size_t cnt = opt->topic_cnt;
    int replication = opt->brokers < 3 ? opt->brokers : 3;

    if (cnt == 0) {
        topics = dk_default_topics;
        cnt = sizeof(dk_default_topics) / sizeof(dk_default_topics[0]);
    }
    for (size_t i = 0; i < cnt; i++) {
        int parts = topics[i].partitions > 0 ? topics[i].partitions : opt->default_partitions;
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, topics[i].name, parts, replication);

        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            dk_log("cannot create topic %s: %s", topics[i].name, rd_kafka_err2str(err));
            return -1;
        }
        dk_log("topic %s: %d partition(s), replication %d", topics[i].name, parts, replication);
    }
    return 0;
}

/* Writes "bootstraps\n" to path.tmp.<pid>, then renames it over path. */
static int dk_write_bootstrap_file(const char *path, const char *bootstraps)
{
    char tmp[PATH_MAX];
    FILE *f;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());

    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        dk_log("bootstrap file path too long: %s", path);
        return -1;
    }
    f = fopen(tmp, "w");
    if (f == NULL) {
        dk_log("cannot open %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (fprintf(f, "%s\n", bootstraps) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        dk_log("cannot write %s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return -1;
    }
    if (fclose(f) != 0) {
        dk_log("cannot close %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        dk_log("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Applies one control command line; logs what it did or why not. */
static void dk_control_line(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r\n", &save);
    char *a1 = strtok_r(NULL, " \t\r\n", &save);
    char *a2 = strtok_r(NULL, " \t\r\n", &save);
    char *a3 = strtok_r(NULL, " \t\r\n", &save);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    long x = 0;
    long y = 0;
    long z = 0;

    if (cmd == NULL || cmd[0] == '#') {
        return;
    }
    if (strcmp(cmd, "broker-down") == 0 && dk_parse_int(a1, 1, INT32_MAX, &x)) {
        err = rd_kafka_mock_broker_set_down(mc, (int32_t)x);
    } else if (strcmp(cmd, "broker-up") == 0 && dk_parse_int(a1, 1, INT32_MAX, &x)) {
        err = rd_kafka_mock_broker_set_up(mc, (int32_t)x);
    } else if (strcmp(cmd, "broker-rtt") == 0 && dk_parse_int(a1, 1, INT32_MAX, &x) &&
               dk_parse_int(a2, 0, INT_MAX, &y)) {
        err = rd_kafka_mock_broker_set_rtt(mc, (int32_t)x, (int)y);
    } else if (strcmp(cmd, "topic-error") == 0 && a1 != NULL &&
               dk_parse_int(a2, INT16_MIN, INT16_MAX, &y)) {
        rd_kafka_mock_topic_set_error(mc, a1, (rd_kafka_resp_err_t)y);
    } else if (strcmp(cmd, "request-errors") == 0 && dk_parse_int(a1, 0, INT16_MAX, &x) &&
               dk_parse_int(a2, INT16_MIN, INT16_MAX, &y) && dk_parse_int(a3, 1, 1000000, &z)) {
        for (long i = 0; i < z; i++) {
            rd_kafka_mock_push_request_errors(mc, (int16_t)x, 1, (rd_kafka_resp_err_t)y);
        }
    } else if (strcmp(cmd, "clear-request-errors") == 0 && dk_parse_int(a1, 0, INT16_MAX, &x)) {
        rd_kafka_mock_clear_request_errors(mc, (int16_t)x);
    } else {
        dk_log("control: bad command '%s'", cmd);
        return;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        dk_log("control: %s failed: %s", cmd, rd_kafka_err2str(err));
    } else {
        dk_log("control: %s %s%s%s%s%s applied", cmd, a1 ? a1 : "", a2 ? " " : "", a2 ? a2 : "",
               a3 ? " " : "", a3 ? a3 : "");
    }
}

/* If the control file exists, applies its lines and removes it. */
static void dk_control_poll(rd_kafka_mock_cluster_t *mc, const char *path)
{
    char line[DK_LINE_MAX];
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        if (errno != ENOENT) {
            dk_log("control: cannot open %s: %s", path, strerror(errno));
        }
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        dk_control_line(mc, line);
    }
    fclose(f);
    if (unlink(path) != 0) {
        dk_log("control: cannot remove %s: %s", path, strerror(errno));
    }
}

/* Waits for SIGTERM/SIGINT (blocked in every thread), polling the control file meanwhile. */
static int dk_wait_for_signal(rd_kafka_mock_cluster_t *mc, const sigset_t *set, const char *ctl)
{
    const struct timespec tick = {.tv_sec = 0, .tv_nsec = DK_POLL_INTERVAL_NS};

    for (;;) {
        int sig = sigtimedwait(set, NULL, &tick);

        if (sig > 0) {
            return sig;
        }
        if (errno != EAGAIN && errno != EINTR) {
            dk_log("sigtimedwait: %s", strerror(errno));
            return -1;
        }
        if (ctl != NULL) {
            dk_control_poll(mc, ctl);
        }
    }
}

int main(int argc, char **argv)
{
    struct dk_options opt = {.brokers = 1, .default_partitions = DK_DEFAULT_PARTS};
    char errstr[512];
    sigset_t set;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;
    int rc = dk_parse_args(argc, argv, &opt);
    int sig;

    if (rc != 0) {
        dk_usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }

    /* Block before librdkafka starts its threads, so they inherit the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        dk_log("sigprocmask: %s", strerror(errno));
        return 1;
    }
    /* A reader that closes our stdout early must not kill the cluster. */
    signal(SIGPIPE, SIG_IGN);

    conf = rd_kafka_conf_new();
    /* The handle only hosts the mock cluster; it never connects anywhere itself. */
    if (rd_kafka_conf_set(conf, "client.id", DK_NAME, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        dk_log("config: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        dk_log("rd_kafka_new: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, opt.brokers);
    if (mc == NULL) {
        dk_log("cannot create a mock cluster with %d broker(s)", opt.brokers);
        rd_kafka_destroy(rk);
        return 1;
    }
    if (dk_create_topics(mc, &opt) != 0) {
        rc = 1;
        goto out;
    }
    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (opt.bootstrap_file != NULL &&
        dk_write_bootstrap_file(opt.bootstrap_file, bootstraps) != 0) {
        rc = 1;
        goto out;
    }
    printf("bootstrap=%s\n", bootstraps);
    fflush(stdout);
    dk_log("ready: %d broker(s), bootstrap=%s, pid %ld", opt.brokers, bootstraps, (long)getpid());

    sig = dk_wait_for_signal(mc, &set, opt.control_file);
    if (sig > 0) {
        dk_log("signal %d: shutting down", sig);
    } else {
        rc = 1;
    }

out:
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    if (opt.bootstrap_file != NULL && rc == 0) {
        /* Leave no stale address behind for a later run to pick up. */
        unlink(opt.bootstrap_file);
    }
    dk_log("stopped");
    return rc;
}
