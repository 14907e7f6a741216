/*
 * test_config.c - unit tests for configuration loading: defaults, file values, environment
 * overrides, every validation error (naming its key), secrets read from files and their redaction,
 * the fixtures in tests/data/config, agreement with schemas/config.schema.json, and allocation
 * failures at every step of a load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "qn/mem.h"
#include "test_support.h"

#define SECRET_TEXT "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKey=S3cr3t+Value="

/* ---- helpers --------------------------------------------------------------------------------- */

static struct qn_config *load_ok(const char *path, char *const *envp, int flags)
{
    struct qn_config *cfg = NULL;
    struct qn_error err = {0};
    qn_err_t rc = qn_config_load_flags(path, envp, flags, &cfg, &err);
    if (rc != QN_OK) {
        print_error("config load failed: %s\n", err.msg);
    }
    assert_int_equal(rc, QN_OK);
    assert_non_null(cfg);
    return cfg;
}

/* @returns true if loading fails with QN_ERR_CONFIG and a message containing every @p needles. */
static bool load_fails_naming(
    const char *path, char *const *envp, int flags, const char *needle, const char *needle2)
{
    struct qn_config *cfg = NULL;
    struct qn_error err = {0};
    qn_err_t rc = qn_config_load_flags(path, envp, flags, &cfg, &err);
    if (rc == QN_OK) {
        print_error("config loaded, expected an error naming '%s'\n", needle);
        qn_config_free(cfg);
        return false;
    }
    if (rc != QN_ERR_CONFIG || strstr(err.msg, needle) == NULL ||
        (needle2 != NULL && strstr(err.msg, needle2) == NULL)) {
        print_error("config error '%s' (%s), expected one naming '%s'%s%s\n", err.msg,
                    qn_err_str(rc), needle, needle2 != NULL ? " and " : "",
                    needle2 != NULL ? needle2 : "");
        return false;
    }
    return true;
}

static struct qn_config *load_text_ok(const char *text, char *const *envp, int flags)
{
    char path[64];
    assert_int_equal(ts_write_temp(path, sizeof(path), text), 0);
    struct qn_config *cfg = NULL;
    struct qn_error err = {0};
    qn_err_t rc = qn_config_load_flags(path, envp, flags, &cfg, &err);
    unlink(path);
    if (rc != QN_OK) {
        print_error("config %s failed: %s\n", text, err.msg);
    }
    assert_int_equal(rc, QN_OK);
    return cfg;
}

static bool text_fails_naming(const char *text, const char *needle)
{
    char path[64];
    assert_int_equal(ts_write_temp(path, sizeof(path), text), 0);
    bool ok = load_fails_naming(path, NULL, QN_CONFIG_OFFLINE, needle, NULL);
    unlink(path);
    if (!ok) {
        print_error("  (config text: %s)\n", text);
    }
    return ok;
}

static const char *kafka_get(const struct qn_config *cfg, const char *key, bool *secret)
{
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (strcmp(cfg->kafka[i].key, key) == 0) {
            if (secret != NULL) {
                *secret = cfg->kafka[i].secret;
            }
            return cfg->kafka[i].value;
        }
    }
    return NULL;
}

static char *render(const struct qn_config *cfg)
{
    struct qn_buf buf;
    qn_buf_init(&buf, 1 << 20);
    assert_int_equal(qn_config_render_redacted(cfg, &buf), QN_OK);
    char *text = strdup(qn_buf_cstr(&buf));
    qn_buf_fini(&buf);
    return text;
}

/* Writes a temporary secret file holding @p content; @p path receives its name. */
static void write_secret(char *path, size_t len, const char *content)
{
    assert_int_equal(ts_write_temp(path, len, content), 0);
}

/*
 * Copies fixture @p rel to a temporary file with every kafka_secret_files path replaced by
 * @p secret_path (the fixtures name /var/run/secrets/..., which exists only in a pod).
 */
static void
fixture_with_secret_path(const char *rel, const char *secret_path, char *out, size_t out_len)
{
    cJSON *json = ts_parse_fixture(rel);
    cJSON *files = cJSON_GetObjectItemCaseSensitive(json, "kafka_secret_files");
    cJSON *item = NULL;
    cJSON_ArrayForEach(item, files)
    {
        cJSON_SetValuestring(item, secret_path);
    }
    char *text = cJSON_Print(json);
    cJSON_Delete(json);
    assert_int_equal(ts_write_temp(out, out_len, text), 0);
    free(text);
}

/* ---- defaults, file, environment ------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    struct qn_config *cfg = load_ok(NULL, NULL, QN_CONFIG_OFFLINE);
    assert_string_equal(cfg->log_level, "info");
    assert_string_equal(cfg->group_id, "quench");
    assert_string_equal(cfg->role, "all");
    assert_int_equal(cfg->kafka_count, 0);
    assert_null(qn_config_kafka_get(cfg, "bootstrap.servers"));
    assert_string_equal(cfg->topics.input, "defender.alerts");
    assert_string_equal(cfg->topics.verdicts, "quench.verdicts");
    assert_string_equal(cfg->topics.work, "quench.work");
    assert_string_equal(cfg->topics.state, "quench.state");
    assert_string_equal(cfg->topics.outcomes, "quench.outcomes");
    assert_string_equal(cfg->topics.dlq, "quench.dlq");
    assert_int_equal(cfg->ingest.max_record_bytes, 1048576);
    assert_int_equal(cfg->ingest.max_depth, 32);
    assert_int_equal(cfg->ingest.dedup_capacity, 100000);
    assert_int_equal(cfg->ingest.extra_alert_types.count, 0);
    assert_string_equal(cfg->http.address, "0.0.0.0");
    assert_int_equal(cfg->http.port, 9464);
    assert_true(cfg->policy.dry_run);
    for (int k = 0; k < QN_TASK_KIND__COUNT; k++) {
        enum qn_mode want = k == QN_TASK_DELETE_RESOURCE || k == QN_TASK_VM_REIMAGE
                                ? QN_MODE_APPROVE
                                : QN_MODE_ENFORCE;
        assert_int_equal(cfg->policy.modes[k], want);
        assert_int_equal(cfg->policy.modes[k], qn_task_kind_default_mode((enum qn_task_kind)k));
        /* dry run forces observe */
        assert_int_equal(qn_config_effective_mode(cfg, (enum qn_task_kind)k), QN_MODE_OBSERVE);
    }
    assert_string_equal(cfg->contact.security_contact, "");
    assert_int_equal(cfg->contact.owner_tags.count, 3);
    assert_string_equal(cfg->contact.owner_tags.items[0], "owner");
    assert_string_equal(cfg->contact.owner_tags.items[1], "Owner");
    assert_string_equal(cfg->contact.owner_tags.items[2], "contact");
    assert_int_equal(cfg->shutdown.budget_ms, 20000);
    qn_config_free(cfg);
    qn_config_free(NULL);
}

static void test_bootstrap_required_unless_offline(void **state)
{
    (void)state;
    assert_true(load_fails_naming(NULL, NULL, 0, "kafka.bootstrap.servers", NULL));
    struct qn_config *cfg = NULL;
    struct qn_error err = {0};
    assert_int_equal(qn_config_load(NULL, NULL, &cfg, &err), QN_ERR_CONFIG);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, "bootstrap.servers"));
    char env0[] = "QUENCH_KAFKA_BOOTSTRAP_SERVERS=broker:9092";
    char *envp[] = {env0, NULL};
    cfg = load_ok(NULL, envp, 0);
    assert_string_equal(qn_config_kafka_get(cfg, "bootstrap.servers"), "broker:9092");
    qn_config_free(cfg);
}

static void test_file_values(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/config/minimal.json", QN_TEST_DATA_DIR);
    struct qn_config *cfg = load_ok(path, NULL, 0);
    assert_string_equal(qn_config_kafka_get(cfg, "bootstrap.servers"), "127.0.0.1:9092");
    assert_string_equal(cfg->group_id, "quench");
    qn_config_free(cfg);

    cfg = load_text_ok("{\"log_level\":\"debug\",\"group_id\":\"g1\",\"role\":\"respond\","
                       "\"kafka\":{\"bootstrap.servers\":\"b:1\",\"session.timeout.ms\":45000,"
                       "\"enable.ssl.certificate.verification\":false,\"x.ratio\":1.5},"
                       "\"topics\":{\"input\":\"in\",\"dlq\":\"d-l_q.1\"},"
                       "\"ingest\":{\"max_record_bytes\":2048,\"max_depth\":4,"
                       "\"dedup_capacity\":0,\"extra_alert_types\":[\"VM_EICAR\",\"K8S_*\"]},"
                       "\"http\":{\"address\":\"::\",\"port\":0},"
                       "\"policy\":{\"dry_run\":false,\"modes\":{\"delete_user\":\"observe\","
                       "\"vm_reimage\":\"enforce\"}},"
                       "\"contact\":{\"security_contact\":\"sec@contoso.com\","
                       "\"owner_tags\":[\"team\"]},\"shutdown\":{\"budget_ms\":0}}",
                       NULL, 0);
    assert_string_equal(cfg->log_level, "debug");
    assert_string_equal(cfg->group_id, "g1");
    assert_string_equal(cfg->role, "respond");
    assert_int_equal(cfg->kafka_count, 4);
    assert_string_equal(cfg->kafka[0].key, "bootstrap.servers");
    assert_string_equal(qn_config_kafka_get(cfg, "session.timeout.ms"), "45000");
    assert_string_equal(qn_config_kafka_get(cfg, "enable.ssl.certificate.verification"), "false");
    assert_string_equal(qn_config_kafka_get(cfg, "x.ratio"), "1.5");
    assert_string_equal(cfg->topics.input, "in");
    assert_string_equal(cfg->topics.dlq, "d-l_q.1");
    assert_string_equal(cfg->topics.work, "quench.work");
    assert_int_equal(cfg->ingest.max_record_bytes, 2048);
    assert_int_equal(cfg->ingest.max_depth, 4);
    assert_int_equal(cfg->ingest.dedup_capacity, 0);
    assert_int_equal(cfg->ingest.extra_alert_types.count, 2);
    assert_string_equal(cfg->ingest.extra_alert_types.items[1], "K8S_*");
    assert_string_equal(cfg->http.address, "::");
    assert_int_equal(cfg->http.port, 0);
    assert_false(cfg->policy.dry_run);
    assert_int_equal(cfg->policy.modes[QN_TASK_DELETE_USER], QN_MODE_OBSERVE);
    assert_int_equal(cfg->policy.modes[QN_TASK_VM_REIMAGE], QN_MODE_ENFORCE);
    assert_int_equal(cfg->policy.modes[QN_TASK_DELETE_RESOURCE], QN_MODE_APPROVE);
    assert_int_equal(qn_config_effective_mode(cfg, QN_TASK_DELETE_RESOURCE), QN_MODE_APPROVE);
    assert_int_equal(qn_config_effective_mode(cfg, QN_TASK_DELETE_USER), QN_MODE_OBSERVE);
    assert_string_equal(cfg->contact.security_contact, "sec@contoso.com");
    /* a list in the file replaces the default list */
    assert_int_equal(cfg->contact.owner_tags.count, 1);
    assert_string_equal(cfg->contact.owner_tags.items[0], "team");
    assert_int_equal(cfg->shutdown.budget_ms, 0);
    qn_config_free(cfg);
}

static void test_env_overrides(void **state)
{
    (void)state;
    char e0[] = "QUENCH_TOPICS_INPUT=env.input";
    char e1[] = "QUENCH_HTTP_PORT=8080";
    char e2[] = "QUENCH_KAFKA_SASL_MECHANISM=PLAIN";
    char e3[] = "QUENCH_POLICY_DRY_RUN=false";
    char e4[] = "QUENCH_INGEST_MAX_DEPTH=16";
    char e5[] = "QUENCH_KAFKA_BOOTSTRAP_SERVERS=env-broker:9093";
    char e6[] = "QUENCH_GROUP_ID=env-group";
    char e7[] = "QUENCH_ROLE=ingest";
    char e8[] = "PATH=/usr/bin";
    char e9[] = "QUENCH_LOG_LEVEL=trace";
    char *envp[] = {e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, NULL};
    /* the environment wins over the file */
    struct qn_config *cfg =
        load_text_ok("{\"topics\":{\"input\":\"file.input\"},\"http\":{\"port\":"
                     "1234},\"kafka\":{\"bootstrap.servers\":\"file:1\"}}",
                     envp, 0);
    assert_string_equal(cfg->topics.input, "env.input");
    assert_int_equal(cfg->http.port, 8080);
    assert_string_equal(qn_config_kafka_get(cfg, "sasl.mechanism"), "PLAIN");
    assert_string_equal(qn_config_kafka_get(cfg, "bootstrap.servers"), "env-broker:9093");
    assert_false(cfg->policy.dry_run);
    assert_int_equal(cfg->ingest.max_depth, 16);
    assert_string_equal(cfg->group_id, "env-group");
    assert_string_equal(cfg->role, "ingest");
    assert_string_equal(cfg->log_level, "trace");
    /* environment properties come after the file's */
    assert_string_equal(cfg->kafka[cfg->kafka_count - 1].key, "sasl.mechanism");
    qn_config_free(cfg);

    char b0[] = "QUENCH_POLICY_DRY_RUN=1";
    char *envb[] = {b0, NULL};
    cfg = load_ok(NULL, envb, QN_CONFIG_OFFLINE);
    assert_true(cfg->policy.dry_run);
    qn_config_free(cfg);

    char x0[] = "QUENCH_HTTP_PORT=abc";
    char *envx[] = {x0, NULL};
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "http.port", "abc"));
    char x1[] = "QUENCH_HTTP_PORT=70000";
    envx[0] = x1;
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "http.port", "70000"));
    char x2[] = "QUENCH_HTTP_PORT=";
    envx[0] = x2;
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "http.port", NULL));
    char x3[] = "QUENCH_HTTP_PORT=80x";
    envx[0] = x3;
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "http.port", NULL));
    char x4[] = "QUENCH_POLICY_DRY_RUN=no";
    envx[0] = x4;
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "policy.dry_run", "no"));
    char x5[] = "QUENCH_ROLE=both";
    envx[0] = x5;
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "role", "both"));
    char x6[] = "QUENCH_LOG_LEVEL=verbose";
    envx[0] = x6;
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "log_level", "verbose"));
    char x7[] = "QUENCH_INGEST_DEDUP_CAPACITY=-1";
    envx[0] = x7;
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "ingest.dedup_capacity", NULL));
    char x8[] = "QUENCH_INGEST_MAX_RECORD_BYTES=99999999999999999999999";
    envx[0] = x8;
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "ingest.max_record_bytes", NULL));
    char x9[] = "QUENCH_KAFKA_SASL_PASSWORD=inline";
    envx[0] = x9;
    assert_true(load_fails_naming(NULL, envx, QN_CONFIG_OFFLINE, "kafka.sasl.password", NULL));
}

static void test_unrelated_env_ignored(void **state)
{
    (void)state;
    /* Kubernetes service links for a service named "quench", and other noise */
    char e0[] = "QUENCH_SERVICE_HOST=10.0.0.12";
    char e1[] = "QUENCH_SERVICE_PORT=9464";
    char e2[] = "QUENCH_PORT=tcp://10.0.0.12:9464";
    char e3[] = "QUENCH_PORT_9464_TCP_ADDR=10.0.0.12";
    char e4[] = "QUENCH_=x";
    char e5[] = "QUENCH_NOEQUALS";
    char e6[] = "HOME=/root";
    char e7[] = "quench_http_port=1";
    char *envp[] = {e0, e1, e2, e3, e4, e5, e6, e7, NULL};
    struct qn_config *cfg = load_ok(NULL, envp, QN_CONFIG_OFFLINE);
    assert_int_equal(cfg->kafka_count, 0);
    assert_int_equal(cfg->http.port, 9464);
    qn_config_free(cfg);
}

/* ---- validation errors ----------------------------------------------------------------------- */

static void test_unknown_keys(void **state)
{
    (void)state;
    int wrong = 0;
    wrong += !text_fails_naming("{\"log_levle\":\"info\"}", "log_levle");
    wrong += !text_fails_naming("{\"ingest\":{\"max_depht\":16}}", "ingest.max_depht");
    wrong += !text_fails_naming("{\"topics\":{\"inputs\":\"x\"}}", "topics.inputs");
    wrong += !text_fails_naming("{\"policy\":{\"modes\":{\"delete_subscription\":\"enforce\"}}}",
                                "policy.modes.delete_subscription");
    wrong += !text_fails_naming("{\"Topics\":{\"input\":\"x\"}}", "Topics");
    wrong += !text_fails_naming("{\"topics.input\":\"x\"}", "topics.input");
    assert_int_equal(wrong, 0);
}

static void test_wrong_types(void **state)
{
    (void)state;
    int wrong = 0;
    wrong += !text_fails_naming("{\"http\":{\"port\":\"9464\"}}", "http.port");
    wrong += !text_fails_naming("{\"http\":{\"port\":94.64}}", "http.port");
    wrong += !text_fails_naming("{\"http\":{\"port\":1e30}}", "http.port");
    wrong += !text_fails_naming("{\"http\":{\"port\":null}}", "http.port");
    wrong += !text_fails_naming("{\"policy\":{\"dry_run\":\"false\"}}", "policy.dry_run");
    wrong += !text_fails_naming("{\"policy\":{\"dry_run\":0}}", "policy.dry_run");
    wrong += !text_fails_naming("{\"group_id\":7}", "group_id");
    wrong += !text_fails_naming("{\"topics\":\"x\"}", "topics");
    wrong += !text_fails_naming("{\"ingest\":{\"extra_alert_types\":\"VM_EICAR\"}}",
                                "ingest.extra_alert_types");
    wrong += !text_fails_naming("{\"ingest\":{\"extra_alert_types\":[\"\"]}}",
                                "ingest.extra_alert_types");
    wrong += !text_fails_naming("{\"contact\":{\"owner_tags\":[1]}}", "contact.owner_tags");
    wrong += !text_fails_naming("{\"kafka\":[]}", "kafka");
    wrong += !text_fails_naming("{\"kafka\":{\"client.id\":{}}}", "kafka.client.id");
    wrong += !text_fails_naming("{\"kafka_secret_files\":{\"sasl.password\":1}}",
                                "kafka_secret_files.sasl.password");
    wrong += !text_fails_naming("{\"policy\":{\"modes\":{\"vm_reimage\":\"auto\"}}}",
                                "policy.modes.vm_reimage");
    wrong += !text_fails_naming("{\"policy\":{\"modes\":[]}}", "policy.modes");
    assert_int_equal(wrong, 0);
}

static void test_out_of_range(void **state)
{
    (void)state;
    int wrong = 0;
    wrong +=
        !text_fails_naming("{\"ingest\":{\"max_record_bytes\":1023}}", "ingest.max_record_bytes");
    wrong += !text_fails_naming("{\"ingest\":{\"max_record_bytes\":16777217}}",
                                "ingest.max_record_bytes");
    wrong += !text_fails_naming("{\"ingest\":{\"max_depth\":3}}", "ingest.max_depth");
    wrong += !text_fails_naming("{\"ingest\":{\"max_depth\":129}}", "ingest.max_depth");
    wrong += !text_fails_naming("{\"http\":{\"port\":-1}}", "http.port");
    wrong += !text_fails_naming("{\"http\":{\"port\":65536}}", "http.port");
    wrong += !text_fails_naming("{\"shutdown\":{\"budget_ms\":600001}}", "shutdown.budget_ms");
    assert_int_equal(wrong, 0);
    /* the bounds themselves are accepted */
    struct qn_config *cfg =
        load_text_ok("{\"ingest\":{\"max_record_bytes\":16777216,\"max_depth\":128},"
                     "\"http\":{\"port\":65535},\"shutdown\":{\"budget_ms\":600000}}",
                     NULL, QN_CONFIG_OFFLINE);
    assert_int_equal(cfg->ingest.max_record_bytes, 16777216);
    assert_int_equal(cfg->http.port, 65535);
    qn_config_free(cfg);
}

static void test_topic_names(void **state)
{
    (void)state;
    int wrong = 0;
    wrong +=
        !text_fails_naming("{\"topics\":{\"outcomes\":\"quench outcomes\"}}", "topics.outcomes");
    wrong += !text_fails_naming("{\"topics\":{\"input\":\"\"}}", "topics.input");
    wrong += !text_fails_naming("{\"topics\":{\"input\":\".\"}}", "topics.input");
    wrong += !text_fails_naming("{\"topics\":{\"input\":\"..\"}}", "topics.input");
    wrong += !text_fails_naming("{\"topics\":{\"input\":\"a/b\"}}", "topics.input");
    wrong += !text_fails_naming("{\"topics\":{\"input\":\"caf\\u00e9\"}}", "topics.input");
    char long_name[300];
    memset(long_name, 'a', 250);
    long_name[250] = '\0';
    char text[400];
    snprintf(text, sizeof(text), "{\"topics\":{\"dlq\":\"%s\"}}", long_name);
    wrong += !text_fails_naming(text, "topics.dlq");
    long_name[249] = '\0';
    snprintf(text, sizeof(text), "{\"topics\":{\"dlq\":\"%s\"}}", long_name);
    struct qn_config *cfg = load_text_ok(text, NULL, QN_CONFIG_OFFLINE);
    qn_config_free(cfg);
    /* two roles for one topic */
    char path[64];
    assert_int_equal(ts_write_temp(path, sizeof(path),
                                   "{\"topics\":{\"work\":\"shared\",\"state\":\"shared\"}}"),
                     0);
    wrong += !load_fails_naming(path, NULL, QN_CONFIG_OFFLINE, "topics.work", "topics.state");
    unlink(path);
    assert_int_equal(
        ts_write_temp(path, sizeof(path), "{\"topics\":{\"dlq\":\"defender.alerts\"}}"), 0);
    wrong += !load_fails_naming(path, NULL, QN_CONFIG_OFFLINE, "topics.input", "topics.dlq");
    unlink(path);
    assert_int_equal(wrong, 0);
}

static void test_bad_files(void **state)
{
    (void)state;
    int wrong = 0;
    wrong += !text_fails_naming("[]", "JSON object");
    wrong += !text_fails_naming("{\"log_level\":", "not valid JSON");
    wrong += !text_fails_naming("", "not valid JSON");
    wrong += !load_fails_naming("/nonexistent/quench.json", NULL, QN_CONFIG_OFFLINE,
                                "/nonexistent/quench.json", NULL);
    wrong += !text_fails_naming("{\"group_id\":\"\"}", "group_id");
    assert_int_equal(wrong, 0);
}

/* ---- Kafka properties and secrets ----------------------------------------------------------- */

static void test_inline_secrets_refused(void **state)
{
    (void)state;
    static const char *const keys[] = {"sasl.password", "ssl.key.password", "ssl.keystore.password",
                                       "sasl.oauthbearer.client.secret", "ssl.key.pem"};
    int wrong = 0;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "{\"kafka\":{\"%s\":\"x\"}}", keys[i]);
        char key[128];
        snprintf(key, sizeof(key), "kafka.%s", keys[i]);
        wrong += !text_fails_naming(text, key);
    }
    wrong += !text_fails_naming("{\"kafka\":{\"group.id\":\"other\"}}", "kafka.group.id");
    wrong += !text_fails_naming("{\"kafka\":{\"partitioner\":\"random\"}}", "kafka.partitioner");
    wrong += !text_fails_naming("{\"kafka\":{\"enable.auto.offset.store\":true}}",
                                "kafka.enable.auto.offset.store");
    /* the error never echoes the secret */
    char path[64];
    assert_int_equal(
        ts_write_temp(path, sizeof(path), "{\"kafka\":{\"sasl.password\":\"" SECRET_TEXT "\"}}"),
        0);
    struct qn_config *cfg = NULL;
    struct qn_error err = {0};
    assert_int_equal(qn_config_load_flags(path, NULL, QN_CONFIG_OFFLINE, &cfg, &err),
                     QN_ERR_CONFIG);
    unlink(path);
    assert_null(strstr(err.msg, "S3cr3t"));
    assert_int_equal(wrong, 0);
}

/*
 * An inline secret is refused even when kafka_secret_files names the same property: the secret
 * was still written into the configuration file (schemas/config.schema.json forbids the key under
 * "kafka" unconditionally, and tests/data/config/bad-inline-secret.json has exactly this shape).
 */
static void test_inline_secret_refused_with_secret_file(void **state)
{
    (void)state;
    char secret[64];
    write_secret(secret, sizeof(secret), "from-file\n");
    char text[512];
    snprintf(text, sizeof(text),
             "{\"kafka\":{\"sasl.password\":\"" SECRET_TEXT "\"},"
             "\"kafka_secret_files\":{\"sasl.password\":\"%s\"}}",
             secret);
    bool refused = text_fails_naming(text, "kafka.sasl.password");
    /* the other order, for completeness */
    snprintf(text, sizeof(text),
             "{\"kafka_secret_files\":{\"sasl.password\":\"%s\"},"
             "\"kafka\":{\"sasl.password\":\"" SECRET_TEXT "\"}}",
             secret);
    bool refused2 = text_fails_naming(text, "kafka.sasl.password");
    unlink(secret);
    assert_true(refused2);
    assert_true(refused);
}

static void test_secret_files(void **state)
{
    (void)state;
    char secret[64];
    write_secret(secret, sizeof(secret), SECRET_TEXT "\r\n");
    char text[512];
    snprintf(text, sizeof(text),
             "{\"kafka\":{\"bootstrap.servers\":\"b:1\",\"sasl.username\":\"$ConnectionString\"},"
             "\"kafka_secret_files\":{\"sasl.password\":\"%s\"}}",
             secret);
    struct qn_config *cfg = load_text_ok(text, NULL, 0);
    bool is_secret = false;
    const char *value = kafka_get(cfg, "sasl.password", &is_secret);
    assert_non_null(value);
    assert_string_equal(value, SECRET_TEXT);
    assert_true(is_secret);
    bool user_secret = true;
    assert_string_equal(kafka_get(cfg, "sasl.username", &user_secret), "$ConnectionString");
    assert_false(user_secret);

    char *rendered = render(cfg);
    assert_null(strstr(rendered, SECRET_TEXT));
    assert_null(strstr(rendered, "S3cr3t"));
    assert_non_null(strstr(rendered, "[redacted]"));
    assert_non_null(strstr(rendered, "$ConnectionString"));
    assert_non_null(strstr(rendered, "b:1"));
    /* the rendering is JSON with the redaction in the right place */
    cJSON *json = cJSON_Parse(rendered);
    assert_non_null(json);
    const cJSON *kafka = cJSON_GetObjectItemCaseSensitive(json, "kafka");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(kafka, "sasl.password")->valuestring,
                        "[redacted]");
    cJSON_Delete(json);
    free(rendered);
    qn_config_free(cfg);
    unlink(secret);

    /* trailing line breaks are stripped; inner newlines stay */
    write_secret(secret, sizeof(secret), "line1\nline2\n\n");
    snprintf(text, sizeof(text), "{\"kafka_secret_files\":{\"ssl.key.password\":\"%s\"}}", secret);
    cfg = load_text_ok(text, NULL, QN_CONFIG_OFFLINE);
    assert_string_equal(kafka_get(cfg, "ssl.key.password", NULL), "line1\nline2");
    qn_config_free(cfg);
    unlink(secret);

    /* a missing file names the key and the path */
    snprintf(text, sizeof(text),
             "{\"kafka_secret_files\":{\"sasl.password\":\"/nonexistent/secret\"}}");
    assert_true(text_fails_naming(text, "kafka_secret_files.sasl.password"));
    assert_true(text_fails_naming(text, "/nonexistent/secret"));
    /* larger than 64 KiB */
    char *big = malloc(70000);
    assert_non_null(big);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    write_secret(secret, sizeof(secret), big);
    free(big);
    snprintf(text, sizeof(text), "{\"kafka_secret_files\":{\"sasl.password\":\"%s\"}}", secret);
    assert_true(text_fails_naming(text, "64 KiB"));
    unlink(secret);
}

/* ---- fixtures and schema ------------------------------------------------------------------- */

static void test_fixture_files_as_written(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/config/minimal.json", QN_TEST_DATA_DIR);
    struct qn_config *cfg = load_ok(path, NULL, 0);
    qn_config_free(cfg);

    /* full.json names a secret file that exists only in a pod */
    snprintf(path, sizeof(path), "%s/config/full.json", QN_TEST_DATA_DIR);
    struct qn_error err = {0};
    qn_err_t rc = qn_config_load_flags(path, NULL, 0, &cfg, &err);
    if (rc != QN_OK) {
        print_message("config/full.json as written does not load here: %s\n", err.msg);
        assert_non_null(strstr(err.msg, "kafka_secret_files.sasl.password"));
    } else {
        qn_config_free(cfg);
    }
}

static void test_fixture_files(void **state)
{
    (void)state;
    char secret[64];
    write_secret(secret, sizeof(secret), SECRET_TEXT "\n");
    char path[64];
    fixture_with_secret_path("config/full.json", secret, path, sizeof(path));
    struct qn_config *cfg = NULL;
    struct qn_error err = {0};
    qn_err_t rc = qn_config_load_flags(path, NULL, 0, &cfg, &err);
    unlink(path);
    if (rc != QN_OK) {
        print_error("config/full.json (secret file replaced) does not load: %s\n", err.msg);
        unlink(secret);
    }
    assert_int_equal(rc, QN_OK);
    assert_string_equal(cfg->log_level, "debug");
    assert_string_equal(cfg->group_id, "quench-prod");
    assert_string_equal(qn_config_kafka_get(cfg, "sasl.password"), SECRET_TEXT);
    assert_string_equal(qn_config_kafka_get(cfg, "session.timeout.ms"), "45000");
    assert_int_equal(cfg->ingest.max_record_bytes, 2097152);
    assert_int_equal(cfg->ingest.max_depth, 48);
    assert_int_equal(cfg->ingest.dedup_capacity, 250000);
    assert_string_equal(cfg->http.address, "::");
    assert_false(cfg->policy.dry_run);
    assert_int_equal(cfg->policy.modes[QN_TASK_VM_REIMAGE], QN_MODE_OBSERVE);
    assert_int_equal(cfg->policy.modes[QN_TASK_RESET_CREDENTIALS], QN_MODE_APPROVE);
    assert_int_equal(cfg->contact.owner_tags.count, 4);
    assert_int_equal(cfg->shutdown.budget_ms, 25000);
    char *rendered = render(cfg);
    assert_null(strstr(rendered, "S3cr3t"));
    free(rendered);
    qn_config_free(cfg);

    static const struct {
        const char *file;
        const char *key;
    } bad[] = {
        {"config/bad-dry-run-string.json", "policy.dry_run"},
        {"config/bad-group-id-in-kafka.json", "kafka.group.id"},
        {"config/bad-inline-secret.json", "kafka.sasl.password"},
        {"config/bad-max-record-bytes.json", "ingest.max_record_bytes"},
        {"config/bad-mode.json", "policy.modes.vm_reimage"},
        {"config/bad-nested-unknown-key.json", "ingest.max_depht"},
        {"config/bad-topic-name.json", "topics.outcomes"},
        {"config/bad-unknown-key.json", "log_levle"},
        {"config/bad-unknown-task-kind.json", "policy.modes.delete_subscription"},
        {"config/bad-wrong-type.json", "http.port"},
    };

    int wrong = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* as written: fails (if only because of the secret file) */
        char rel_path[1024];
        snprintf(rel_path, sizeof(rel_path), "%s/%s", QN_TEST_DATA_DIR, bad[i].file);
        rc = qn_config_load_flags(rel_path, NULL, 0, &cfg, &err);
        if (rc == QN_OK) {
            qn_config_free(cfg);
            print_error("%s loads as written\n", bad[i].file);
            wrong++;
        }
        /* with the secret file available: fails for the reason the file is about */
        fixture_with_secret_path(bad[i].file, secret, path, sizeof(path));
        bool ok = load_fails_naming(path, NULL, 0, bad[i].key, NULL);
        unlink(path);
        if (!ok) {
            print_error("  (fixture %s)\n", bad[i].file);
            wrong++;
        }
    }
    unlink(secret);
    assert_int_equal(wrong, 0);
}

/* Builds an object of the schema's defaults: a property's own default, or its children's. */
static cJSON *schema_defaults(const cJSON *schema)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    cJSON *out = cJSON_CreateObject();
    const cJSON *p = NULL;
    cJSON_ArrayForEach(p, props)
    {
        if (cJSON_GetObjectItemCaseSensitive(p, "properties") != NULL) {
            cJSON_AddItemToObject(out, p->string, schema_defaults(p));
        } else {
            const cJSON *def = cJSON_GetObjectItemCaseSensitive(p, "default");
            if (def != NULL) {
                cJSON_AddItemToObject(out, p->string, cJSON_Duplicate(def, 1));
            }
        }
    }
    return out;
}

/* Collects the dotted paths of every leaf property of the schema (maps are leaves). */
static void schema_paths(const cJSON *schema, const char *prefix, char paths[][128], int *n)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *p = NULL;
    cJSON_ArrayForEach(p, props)
    {
        char path[128];
        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", p->string);
        if (cJSON_GetObjectItemCaseSensitive(p, "properties") != NULL &&
            strcmp(path, "policy.modes") != 0) {
            schema_paths(p, path, paths, n);
        } else {
            assert_true(*n < 128);
            snprintf(paths[(*n)++], 128, "%s", path);
        }
    }
}

static const cJSON *at_path(const cJSON *obj, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    char *part = buf;
    for (char *dot = strchr(part, '.'); dot != NULL; dot = strchr(part, '.')) {
        *dot = '\0';
        obj = cJSON_GetObjectItemCaseSensitive(obj, part);
        part = dot + 1;
    }
    return cJSON_GetObjectItemCaseSensitive(obj, part);
}

/* Sets @p value (taken) at a dotted @p path in @p obj, creating objects along the way. */
static void put_path(cJSON *obj, const char *path, cJSON *value)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    char *part = buf;
    for (char *dot = strchr(part, '.'); dot != NULL; dot = strchr(part, '.')) {
        *dot = '\0';
        cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, part);
        if (child == NULL) {
            child = cJSON_AddObjectToObject(obj, part);
        }
        obj = child;
        part = dot + 1;
    }
    cJSON_AddItemToObject(obj, part, value);
}

/* Collects the dotted paths of the leaves of a rendered configuration (maps are leaves). */
static void config_paths(const cJSON *obj, const char *prefix, char paths[][128], int *n)
{
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, obj)
    {
        char path[128];
        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", item->string);
        if (cJSON_IsObject(item) && strcmp(path, "policy.modes") != 0 &&
            strcmp(path, "kafka") != 0) {
            config_paths(item, path, paths, n);
        } else if (*n < 128) {
            snprintf(paths[(*n)++], 128, "%s", path);
        }
    }
}

static void test_schema_defaults_accepted(void **state)
{
    (void)state;
    char schema_path[1024];
    snprintf(schema_path, sizeof(schema_path), "%s/../../schemas/config.schema.json",
             QN_TEST_DATA_DIR);
    char *text = ts_read_path(schema_path, NULL);
    assert_non_null(text);
    cJSON *schema = cJSON_Parse(text);
    free(text);
    assert_non_null(schema);

    /* a file holding every property with its schema default loads */
    cJSON *defaults = schema_defaults(schema);
    char *file_text = cJSON_Print(defaults);
    struct qn_config *cfg = load_text_ok(file_text, NULL, QN_CONFIG_OFFLINE);
    free(file_text);
    char *from_file = render(cfg);
    qn_config_free(cfg);

    /* and yields the configuration the C defaults give */
    cfg = load_ok(NULL, NULL, QN_CONFIG_OFFLINE);
    char *builtin = render(cfg);
    qn_config_free(cfg);
    cJSON *a = cJSON_Parse(from_file);
    cJSON *b = cJSON_Parse(builtin);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(cJSON_Compare(a, b, 1));

    /* every schema path is a C key with the same default, and the other way round */
    static char paths[128][128];
    int n = 0;
    schema_paths(schema, "", paths, &n);
    assert_true(n >= 20);
    int wrong = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *c_value = at_path(b, paths[i]);
        const cJSON *s_value = at_path(defaults, paths[i]);
        if (strcmp(paths[i], "kafka_secret_files") == 0) {
            continue; /* not rendered: its values end up under "kafka" */
        }
        if (c_value == NULL) {
            print_error("schema property '%s' is not a key of the C configuration\n", paths[i]);
            wrong++;
        } else if (s_value != NULL && !cJSON_Compare(c_value, s_value, 1)) {
            char *cv = cJSON_PrintUnformatted(c_value);
            char *sv = cJSON_PrintUnformatted(s_value);
            print_error("'%s': schema default %s, C default %s\n", paths[i], sv, cv);
            free(cv);
            free(sv);
            wrong++;
        }
        /* each path alone, with its default, is accepted */
        cJSON *one = cJSON_CreateObject();
        if (s_value != NULL) {
            put_path(one, paths[i], cJSON_Duplicate(s_value, 1));
            char *one_text = cJSON_PrintUnformatted(one);
            char tmp[64];
            assert_int_equal(ts_write_temp(tmp, sizeof(tmp), one_text), 0);
            struct qn_config *c1 = NULL;
            struct qn_error err = {0};
            if (qn_config_load_flags(tmp, NULL, QN_CONFIG_OFFLINE, &c1, &err) != QN_OK) {
                print_error("'%s' with its schema default %s is refused: %s\n", paths[i], one_text,
                            err.msg);
                wrong++;
            }
            qn_config_free(c1);
            unlink(tmp);
            free(one_text);
        }
        cJSON_Delete(one);
    }
    static char c_paths[128][128];
    int c_n = 0;
    config_paths(b, "", c_paths, &c_n);
    for (int k = 0; k < c_n; k++) {
        bool known = false;
        for (int i = 0; i < n; i++) {
            known = known || strcmp(paths[i], c_paths[k]) == 0;
        }
        if (!known) {
            print_error("C key '%s' is not in the schema\n", c_paths[k]);
            wrong++;
        }
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(from_file);
    free(builtin);
    cJSON_Delete(defaults);
    cJSON_Delete(schema);
    assert_int_equal(wrong, 0);
}

/* ---- allocation failures --------------------------------------------------------------------- */

struct alloc_run {
    const char *path;
    long n;
};

enum {
    RUN_FAILED_CLEANLY = 10,
    RUN_SUCCEEDED = 11,
    RUN_SUCCEEDED_PARTIAL = 12,
    RUN_FAILED_DIRTY = 13,
};

static int alloc_run_child(void *opaque)
{
    const struct alloc_run *run = opaque;
    struct qn_config *cfg = NULL;
    struct qn_error err = {0};
    qn_mem_fail_after(run->n);
    qn_err_t rc = qn_config_load(run->path, NULL, &cfg, &err);
    qn_mem_fail_after(-1);
    if (rc != QN_OK) {
        return cfg == NULL && err.msg[0] != '\0' ? RUN_FAILED_CLEANLY : RUN_FAILED_DIRTY;
    }
    /* a success must be complete */
    bool complete = cfg->kafka_count == 8 && qn_config_kafka_get(cfg, "sasl.password") != NULL &&
                    cfg->ingest.extra_alert_types.count == 2 &&
                    cfg->contact.owner_tags.count == 4 && cfg->topics.dlq != NULL;
    for (size_t i = 0; complete && i < cfg->kafka_count; i++) {
        complete = cfg->kafka[i].key != NULL && cfg->kafka[i].value != NULL;
    }
    qn_config_free(cfg);
    return complete ? RUN_SUCCEEDED : RUN_SUCCEEDED_PARTIAL;
}

static void test_alloc_failure_load(void **state)
{
    (void)state;
    char secret[64];
    write_secret(secret, sizeof(secret), SECRET_TEXT "\n");
    char path[64];
    fixture_with_secret_path("config/full.json", secret, path, sizeof(path));
    long problems = 0;
    long n = 0;
    for (; n < 5000; n++) {
        struct alloc_run run = {.path = path, .n = n};
        int sig = 0;
        int code = ts_fork_run(alloc_run_child, &run, &sig);
        if (code == RUN_SUCCEEDED) {
            break;
        }
        if (code == RUN_FAILED_CLEANLY) {
            continue;
        }
        problems++;
        print_error(
            "allocation %ld failing: qn_config_load outcome %d (signal %d)%s\n", n, code, sig,
            code == TS_CHILD_LEAK        ? ": memory leaked"
            : code == TS_CHILD_SANITIZER ? ": sanitizer error (leak or memory error, report above)"
            : code == RUN_FAILED_DIRTY   ? ": failed without a message"
                                         : "");
    }
    unlink(path);
    unlink(secret);
    print_message("config/full.json: %ld allocation-failure points, %ld problems\n", n, problems);
    assert_int_equal(problems, 0);
    assert_true(n < 5000);
}

struct render_run {
    const struct qn_config *cfg;
    long n;
};

static int render_run_child(void *opaque)
{
    const struct render_run *run = opaque;
    struct qn_buf buf;
    qn_buf_init(&buf, 1 << 20);
    qn_mem_fail_after(run->n);
    qn_err_t rc = qn_config_render_redacted(run->cfg, &buf);
    qn_mem_fail_after(-1);
    qn_buf_fini(&buf);
    if (rc == QN_OK) {
        return RUN_SUCCEEDED;
    }
    return rc == QN_ERR_NOMEM ? RUN_FAILED_CLEANLY : RUN_FAILED_DIRTY;
}

static void test_alloc_failure_render(void **state)
{
    (void)state;
    struct qn_config *cfg = load_ok(NULL, NULL, QN_CONFIG_OFFLINE);
    long problems = 0;
    long n = 0;
    for (; n < 2000; n++) {
        struct render_run run = {.cfg = cfg, .n = n};
        int sig = 0;
        int code = ts_fork_run(render_run_child, &run, &sig);
        if (code == RUN_SUCCEEDED) {
            break;
        }
        if (code == RUN_FAILED_CLEANLY) {
            continue;
        }
        problems++;
        print_error("allocation %ld failing: qn_config_render_redacted outcome %d (signal %d)%s\n",
                    n, code, sig,
                    code == TS_CHILD_LEAK ? ": memory leaked"
                    : code == TS_CHILD_SANITIZER
                        ? ": sanitizer error (leak or memory error, report above)"
                        : "");
    }
    qn_config_free(cfg);
    print_message("render: %ld allocation-failure points, %ld problems\n", n, problems);
    assert_int_equal(problems, 0);
    assert_true(n < 2000);
}

int main(void)
{
    qn_mem_install_cjson_hooks();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bootstrap_required_unless_offline),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_unrelated_env_ignored),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_topic_names),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_inline_secrets_refused),
        cmocka_unit_test(test_inline_secret_refused_with_secret_file),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_fixture_files_as_written),
        cmocka_unit_test(test_fixture_files),
        cmocka_unit_test(test_schema_defaults_accepted),
        cmocka_unit_test(test_alloc_failure_load),
        cmocka_unit_test(test_alloc_failure_render),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
