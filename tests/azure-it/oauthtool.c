/*
 * oauthtool.c - quench-oauthtool: the worker's Kafka OAUTHBEARER token source
 * (worker/kafka_oauth.c) driven through a real librdkafka producer, for
 * tests/azure-it/test_oauthbearer.py.
 *
 *   quench-oauthtool --config FILE [--wait-ms N] [--metadata-ms N] [--hold-ms N]
 *                    [--bootstrap HOST:PORT] [--log-level LEVEL]
 *   quench-oauthtool --config FILE --check-conf
 *
 * The configuration is a quench configuration file (QUENCH_* variables apply, as for the worker).
 * Its "kafka" properties go to an rd_kafka producer, whose token refresh callback is the worker's
 * (qn_kafka_oauth_refresh). The tool polls the producer and runs the loop until the callback has
 * fired and librdkafka accepted a token (rd_kafka_oauthbearer_set_token returned NO_ERROR) or was
 * told why not (set_token_failure), then prints one "oauth" line. --bootstrap points librdkafka
 * elsewhere than the configuration's bootstrap.servers, which still decides the token audience (an
 * Event Hubs namespace name with a local test broker). --metadata-ms then asks the
 * broker for metadata over the authenticated connection; --hold-ms keeps polling (librdkafka's
 * retries and errors show up) and prints a "summary" line. --check-conf only applies the kafka
 * properties to librdkafka producer and consumer configurations and reports the first it refuses.
 *
 * Output: one JSON object per line on stdout ("oauth", "kafka_error", "metadata", "summary",
 * "conf", "error"). The token itself is never printed: only the first 16 hex digits of its SHA-256
 * ("token_sha256_prefix"). Exit status: 0 ok, 1 usage, 2 no token (or metadata failed), 3 the
 * configuration or the set-up was refused.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "config.h"
#include "kafka_oauth.h"
#include "qn/log.h"
#include "qn/loop.h"
#include "qn/mem.h"
#include "qn/timefmt.h"

#define EXIT_OK      0
#define EXIT_USAGE   1
#define EXIT_FAILED  2
#define EXIT_REFUSED 3

extern char **environ;

struct tool {
    struct qn_kafka_oauth *ko;
    uint64_t callbacks; /* refresh callbacks librdkafka made */
    uint64_t kafka_errors;
};

/* Prints @p obj as one line and frees it. */
static void emit(cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    if (text != NULL) {
        printf("%s\n", text);
        fflush(stdout);
        free(text);
    }
    cJSON_Delete(obj);
}

static cJSON *event(const char *name)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "event", name);
    return obj;
}

static void print_error(const char *what, const char *msg)
{
    cJSON *obj = event("error");
    cJSON_AddStringToObject(obj, "what", what);
    cJSON_AddStringToObject(obj, "message", msg);
    emit(obj);
    fprintf(stderr, "quench-oauthtool: %s: %s\n", what, msg);
}

static void refresh_cb(rd_kafka_t *rk, const char *oauthbearer_config, void *opaque)
{
    (void)oauthbearer_config;
    struct tool *t = opaque;
    t->callbacks++;
    qn_kafka_oauth_refresh(t->ko, rk);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    struct tool *t = opaque;
    t->kafka_errors++;
    cJSON *obj = event("kafka_error");
    cJSON_AddStringToObject(obj, "code", rd_kafka_err2name((rd_kafka_resp_err_t)err));
    cJSON_AddStringToObject(obj, "reason", reason);
    emit(obj);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    fprintf(stderr, "librdkafka %d %s: %s\n", level, fac, buf);
}

/* Applies the configuration's kafka properties. @returns NULL (reported) if one is refused. */
static rd_kafka_conf_t *make_conf(const struct qn_config *cfg)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (rd_kafka_conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            cJSON *obj = event("conf");
            cJSON_AddBoolToObject(obj, "ok", false);
            cJSON_AddStringToObject(obj, "key", cfg->kafka[i].key);
            cJSON_AddStringToObject(obj, "error", errstr);
            emit(obj);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

/* --check-conf: the properties as the worker's producer and consumer would get them. */
static int check_conf(const struct qn_config *cfg)
{
    rd_kafka_conf_t *conf = make_conf(cfg);
    if (conf == NULL) {
        return EXIT_REFUSED;
    }
    char errstr[512];
    rd_kafka_conf_res_t res =
        rd_kafka_conf_set(conf, "group.id", cfg->group_id, errstr, sizeof(errstr));
    rd_kafka_conf_destroy(conf);
    if (res != RD_KAFKA_CONF_OK) {
        print_error("group.id", errstr);
        return EXIT_REFUSED;
    }
    cJSON *obj = event("conf");
    cJSON_AddBoolToObject(obj, "ok", true);
    cJSON_AddNumberToObject(obj, "properties", (double)cfg->kafka_count);
    cJSON_AddStringToObject(obj, "kafka_oauth", cfg->kafka_oauth);
    emit(obj);
    return EXIT_OK;
}

static void usage(FILE *out)
{
    fputs("usage: quench-oauthtool --config FILE [--wait-ms N] [--metadata-ms N] [--hold-ms N]\n"
          "                        [--bootstrap HOST:PORT] [--log-level LEVEL] [--check-conf]\n",
          out);
}

static int parse_ms(const char *text, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 0 || v > 600000) {
        return -1;
    }
    *out = v;
    return 0;
}

static void print_outcome(struct tool *t,
                          rd_kafka_t *rk,
                          const struct qn_kafka_oauth_status *st,
                          int64_t elapsed_ms)
{
    cJSON *obj = event("oauth");
    bool set = st->token_sets > 0;
    cJSON_AddBoolToObject(obj, "token_set", set);
    cJSON_AddStringToObject(obj, "client", rd_kafka_name(rk));
    cJSON_AddStringToObject(obj, "scope", qn_kafka_oauth_scope(t->ko));
    cJSON_AddStringToObject(obj, "principal", qn_kafka_oauth_principal(t->ko));
    if (set) {
        cJSON_AddStringToObject(obj, "set_token_result", "NO_ERROR");
        cJSON_AddNumberToObject(obj, "expires_at_ms", (double)st->expires_at_ms);
        cJSON_AddNumberToObject(obj, "lifetime_ms",
                                (double)(st->expires_at_ms - qn_time_epoch_ms()));
        cJSON_AddStringToObject(obj, "token_sha256_prefix", st->fingerprint);
    } else {
        cJSON_AddStringToObject(obj, "error",
                                st->last_error[0] != '\0' ? st->last_error : "timed out");
    }
    cJSON_AddNumberToObject(obj, "refresh_callbacks", (double)t->callbacks);
    cJSON_AddNumberToObject(obj, "token_sets", (double)st->token_sets);
    cJSON_AddNumberToObject(obj, "failures", (double)st->failures);
    cJSON_AddNumberToObject(obj, "elapsed_ms", (double)elapsed_ms);
    emit(obj);
}

/* Polls librdkafka and runs the loop for @p ms, or until @p stop says so. */
static void pump(struct tool *t,
                 struct qn_loop *loop,
                 rd_kafka_t *rk,
                 int64_t ms,
                 bool (*stop)(struct tool *, rd_kafka_t *))
{
    int64_t deadline = qn_clock_ms() + ms;
    while (qn_clock_ms() < deadline && (stop == NULL || !stop(t, rk))) {
        rd_kafka_poll(rk, 0);
        if (qn_loop_run_once(loop, 20) != QN_OK) {
            return;
        }
    }
}

static bool have_outcome(struct tool *t, rd_kafka_t *rk)
{
    struct qn_kafka_oauth_status st;
    return qn_kafka_oauth_status(t->ko, rk, &st) && (st.token_sets > 0 || st.failures > 0);
}

struct run_opts {
    int64_t wait_ms;
    int64_t metadata_ms;
    int64_t hold_ms;
    const char *bootstrap; /* NULL: the configuration's */
};

static int run(const struct qn_config *cfg, const struct run_opts *o)
{
    struct tool t = {0};
    struct qn_loop *loop = NULL;
    struct qn_error err = {0};
    if (qn_loop_new(&loop, &err) != QN_OK) {
        print_error("loop", err.msg);
        return EXIT_REFUSED;
    }
    if (qn_kafka_oauth_new(loop, cfg, &t.ko, &err) != QN_OK) {
        print_error("kafka_oauth", err.msg);
        qn_loop_free(loop);
        return EXIT_REFUSED;
    }
    rd_kafka_conf_t *conf = make_conf(cfg);
    char errstr[512];
    if (conf != NULL &&
        (rd_kafka_conf_set(conf, "client.id", "quench-oauthtool", errstr, sizeof(errstr)) !=
             RD_KAFKA_CONF_OK ||
         (o->bootstrap != NULL && rd_kafka_conf_set(conf, "bootstrap.servers", o->bootstrap, errstr,
                                                    sizeof(errstr)) != RD_KAFKA_CONF_OK))) {
        print_error("conf", errstr);
        rd_kafka_conf_destroy(conf);
        conf = NULL;
    }
    if (conf == NULL) {
        qn_kafka_oauth_free(t.ko);
        qn_loop_free(loop);
        return EXIT_REFUSED;
    }
    rd_kafka_conf_set_opaque(conf, &t);
    rd_kafka_conf_set_oauthbearer_token_refresh_cb(conf, refresh_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        print_error("rd_kafka_new", errstr);
        qn_kafka_oauth_free(t.ko);
        qn_loop_free(loop);
        return EXIT_REFUSED;
    }

    int64_t t0 = qn_clock_ms();
    pump(&t, loop, rk, o->wait_ms, have_outcome);
    struct qn_kafka_oauth_status st;
    memset(&st, 0, sizeof(st));
    (void)qn_kafka_oauth_status(t.ko, rk, &st);
    print_outcome(&t, rk, &st, qn_clock_ms() - t0);
    int rc = st.token_sets > 0 ? EXIT_OK : EXIT_FAILED;

    if (rc == EXIT_OK && o->metadata_ms > 0) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 1, NULL, &md, (int)o->metadata_ms);
        cJSON *obj = event("metadata");
        cJSON_AddBoolToObject(obj, "ok", merr == RD_KAFKA_RESP_ERR_NO_ERROR);
        if (merr == RD_KAFKA_RESP_ERR_NO_ERROR) {
            cJSON_AddNumberToObject(obj, "brokers", md->broker_cnt);
            rd_kafka_metadata_destroy(md);
        } else {
            cJSON_AddStringToObject(obj, "error", rd_kafka_err2name(merr));
            rc = EXIT_FAILED;
        }
        emit(obj);
    }
    if (o->hold_ms > 0) {
        pump(&t, loop, rk, o->hold_ms, NULL);
        (void)qn_kafka_oauth_status(t.ko, rk, &st);
        cJSON *obj = event("summary");
        cJSON_AddNumberToObject(obj, "refresh_callbacks", (double)t.callbacks);
        cJSON_AddNumberToObject(obj, "token_sets", (double)st.token_sets);
        cJSON_AddNumberToObject(obj, "failures", (double)st.failures);
        cJSON_AddNumberToObject(obj, "kafka_errors", (double)t.kafka_errors);
        cJSON_AddStringToObject(obj, "fingerprint", st.fingerprint);
        cJSON_AddStringToObject(obj, "last_error", st.last_error);
        emit(obj);
    }
    rd_kafka_destroy(rk);
    qn_kafka_oauth_free(t.ko); /* after the handle, before the loop */
    qn_loop_free(loop);
    return rc;
}

int main(int argc, char **argv)
{
    qn_mem_install_cjson_hooks();
    const char *config = NULL;
    const char *log_level = "warn";
    struct run_opts o = {.wait_ms = 20000, .metadata_ms = 0, .hold_ms = 0, .bootstrap = NULL};
    bool conf_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "--check-conf") == 0) {
            conf_only = true;
            continue;
        }
        if (v == NULL) {
            usage(stderr);
            return EXIT_USAGE;
        }
        if (strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "--log-level") == 0) {
            log_level = v;
        } else if (strcmp(a, "--bootstrap") == 0) {
            o.bootstrap = v;
        } else if (strcmp(a, "--wait-ms") == 0) {
            bad = parse_ms(v, &o.wait_ms);
        } else if (strcmp(a, "--metadata-ms") == 0) {
            bad = parse_ms(v, &o.metadata_ms);
        } else if (strcmp(a, "--hold-ms") == 0) {
            bad = parse_ms(v, &o.hold_ms);
        } else {
            bad = -1;
        }
        if (bad != 0) {
            usage(stderr);
            return EXIT_USAGE;
        }
        i++;
    }
    if (config == NULL || qn_log_set_level_name(log_level) != QN_OK) {
        usage(stderr);
        return EXIT_USAGE;
    }
    struct qn_config *cfg = NULL;
    struct qn_error err = {0};
    if (qn_config_load(config, environ, &cfg, &err) != QN_OK) {
        print_error("config", err.msg);
        return EXIT_REFUSED;
    }
    int rc = conf_only ? check_conf(cfg) : run(cfg, &o);
    qn_config_free(cfg);
    return rc;
}
