/*
 * config.c - table-driven configuration loading. One table (config_table) names every key, its
 * type, bounds, default and environment variable; it drives parsing, validation, env overrides
 * and the redacted rendering. The JSON Schema in schemas/config.schema.json describes the same
 * keys, and a test checks that the two agree.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "qn/log.h"
#include "qn/mem.h"

enum entry_type {
    T_STR,
    T_INT,
    T_BOOL,
    T_STRLIST,
    T_MODES,       /* policy.modes: task kind -> mode */
    T_KAFKA,       /* kafka: pass-through properties */
    T_KAFKA_FILES, /* kafka_secret_files: property -> file holding the secret */
};

struct entry {
    const char *path;
    const char *env;
    enum entry_type type;
    size_t offset;
    long min;
    long max;
    const char *def; /* default as text; NULL for none */
};

#define OFF(field) offsetof(struct qn_config, field)

static const struct entry config_table[] = {
    {"log_level", "QUENCH_LOG_LEVEL", T_STR, OFF(log_level), 0, 0, "info"},
    {"group_id", "QUENCH_GROUP_ID", T_STR, OFF(group_id), 0, 0, "quench"},
    {"role", "QUENCH_ROLE", T_STR, OFF(role), 0, 0, "all"},
    {"kafka", NULL, T_KAFKA, 0, 0, 0, NULL},
    {"kafka_secret_files", NULL, T_KAFKA_FILES, 0, 0, 0, NULL},
    {"kafka_oauth", "QUENCH_KAFKA_OAUTH", T_STR, OFF(kafka_oauth), 0, 0, "none"},
    {"topics.input", "QUENCH_TOPICS_INPUT", T_STR, OFF(topics.input), 0, 0, "defender.alerts"},
    {"topics.verdicts", "QUENCH_TOPICS_VERDICTS", T_STR, OFF(topics.verdicts), 0, 0,
     "quench.verdicts"},
    {"topics.work", "QUENCH_TOPICS_WORK", T_STR, OFF(topics.work), 0, 0, "quench.work"},
    {"topics.state", "QUENCH_TOPICS_STATE", T_STR, OFF(topics.state), 0, 0, "quench.state"},
    {"topics.outcomes", "QUENCH_TOPICS_OUTCOMES", T_STR, OFF(topics.outcomes), 0, 0,
     "quench.outcomes"},
    {"topics.dlq", "QUENCH_TOPICS_DLQ", T_STR, OFF(topics.dlq), 0, 0, "quench.dlq"},
    {"ingest.max_record_bytes", "QUENCH_INGEST_MAX_RECORD_BYTES", T_INT,
     OFF(ingest.max_record_bytes), 1024, 16777216, "1048576"},
    {"ingest.max_depth", "QUENCH_INGEST_MAX_DEPTH", T_INT, OFF(ingest.max_depth), 4, 128, "32"},
    {"ingest.dedup_capacity", "QUENCH_INGEST_DEDUP_CAPACITY", T_INT, OFF(ingest.dedup_capacity), 0,
     10000000, "100000"},
    {"ingest.extra_alert_types", NULL, T_STRLIST, OFF(ingest.extra_alert_types), 0, 0, NULL},
    {"http.address", "QUENCH_HTTP_ADDRESS", T_STR, OFF(http.address), 0, 0, "0.0.0.0"},
    {"http.port", "QUENCH_HTTP_PORT", T_INT, OFF(http.port), 0, 65535, "9464"},
    {"azure.cloud", "QUENCH_AZURE_CLOUD", T_STR, OFF(azure.cloud), 0, 0, "public"},
    {"azure.credential", "QUENCH_AZURE_CREDENTIAL", T_STR, OFF(azure.credential), 0, 0, "none"},
    {"azure.tenant_id", "QUENCH_AZURE_TENANT_ID", T_STR, OFF(azure.tenant_id), 0, 0, ""},
    {"azure.client_id", "QUENCH_AZURE_CLIENT_ID", T_STR, OFF(azure.client_id), 0, 0, ""},
    {"azure.client_secret_file", "QUENCH_AZURE_CLIENT_SECRET_FILE", T_STR,
     OFF(azure.client_secret_file), 0, 0, ""},
    {"azure.certificate_file", "QUENCH_AZURE_CERTIFICATE_FILE", T_STR, OFF(azure.certificate_file),
     0, 0, ""},
    {"azure.private_key_file", "QUENCH_AZURE_PRIVATE_KEY_FILE", T_STR, OFF(azure.private_key_file),
     0, 0, ""},
    {"azure.federated_token_file", "QUENCH_AZURE_FEDERATED_TOKEN_FILE", T_STR,
     OFF(azure.federated_token_file), 0, 0, ""},
    {"azure.ca_file", "QUENCH_AZURE_CA_FILE", T_STR, OFF(azure.ca_file), 0, 0, ""},
    {"azure.endpoints.authority", "QUENCH_AZURE_ENDPOINTS_AUTHORITY", T_STR,
     OFF(azure.endpoints.authority), 0, 0, ""},
    {"azure.endpoints.arm", "QUENCH_AZURE_ENDPOINTS_ARM", T_STR, OFF(azure.endpoints.arm), 0, 0,
     ""},
    {"azure.endpoints.graph", "QUENCH_AZURE_ENDPOINTS_GRAPH", T_STR, OFF(azure.endpoints.graph), 0,
     0, ""},
    {"azure.endpoints.imds", "QUENCH_AZURE_ENDPOINTS_IMDS", T_STR, OFF(azure.endpoints.imds), 0, 0,
     ""},
#define RATE_ENTRIES(name, index, burst_default, rate_default)              \
    {"azure.ratelimit." name ".burst",                                      \
     NULL,                                                                  \
     T_INT,                                                                 \
     OFF(azure.ratelimit[index].burst),                                     \
     1,                                                                     \
     100000,                                                                \
     burst_default},                                                        \
    {                                                                       \
        "azure.ratelimit." name ".per_second", NULL, T_INT,                 \
            OFF(azure.ratelimit[index].per_second), 1, 100000, rate_default \
    }
    RATE_ENTRIES("read", 0, "250", "25"),
    RATE_ENTRIES("write", 1, "200", "10"),
    RATE_ENTRIES("delete", 2, "200", "10"),
    RATE_ENTRIES("graph", 3, "100", "20"),
#undef RATE_ENTRIES
    {"azure.request_timeout_ms", "QUENCH_AZURE_REQUEST_TIMEOUT_MS", T_INT,
     OFF(azure.request_timeout_ms), 1000, 600000, "30000"},
    {"policy.dry_run", "QUENCH_POLICY_DRY_RUN", T_BOOL, OFF(policy.dry_run), 0, 0, "true"},
    {"policy.modes", NULL, T_MODES, 0, 0, 0, NULL},
    {"policy.kill_switch", "QUENCH_POLICY_KILL_SWITCH", T_BOOL, OFF(policy.kill_switch), 0, 0,
     "false"},
    {"policy.provenance", "QUENCH_POLICY_PROVENANCE", T_BOOL, OFF(policy.provenance), 0, 0, "true"},
    {"policy.allowed_tenants", NULL, T_STRLIST, OFF(policy.allowed_tenants), 0, 0, NULL},
    {"policy.allowed_subscriptions", NULL, T_STRLIST, OFF(policy.allowed_subscriptions), 0, 0,
     NULL},
    {"policy.protected_principals", NULL, T_STRLIST, OFF(policy.protected_principals), 0, 0, NULL},
    {"policy.protected_tags", NULL, T_STRLIST, OFF(policy.protected_tags), 0, 0, NULL},
    {"policy.known_principals", NULL, T_STRLIST, OFF(policy.known_principals), 0, 0, NULL},
    {"policy.known_resources", NULL, T_STRLIST, OFF(policy.known_resources), 0, 0, NULL},
    {"policy.caps.per_alert", "QUENCH_POLICY_CAPS_PER_ALERT", T_INT, OFF(policy.cap_per_alert), 0,
     10000, "25"},
    {"policy.caps.per_subscription_hour", "QUENCH_POLICY_CAPS_PER_SUBSCRIPTION_HOUR", T_INT,
     OFF(policy.cap_per_subscription_hour), 0, 100000, "100"},
    {"contact.security_contact", "QUENCH_CONTACT_SECURITY_CONTACT", T_STR,
     OFF(contact.security_contact), 0, 0, ""},
    {"contact.owner_tags", NULL, T_STRLIST, OFF(contact.owner_tags), 0, 0, NULL},
#define SEVERITY_ENTRIES(name, index, deadline, action)              \
    {"contact.policies." name ".deadline_seconds",                   \
     NULL,                                                           \
     T_INT,                                                          \
     OFF(contact.by_severity[index].deadline_seconds),               \
     0,                                                              \
     604800,                                                         \
     deadline},                                                      \
    {                                                                \
        "contact.policies." name ".on_timeout", NULL, T_STR,         \
            OFF(contact.by_severity[index].on_timeout), 0, 0, action \
    }
    SEVERITY_ENTRIES("High", 0, "900", "mitigate"),
    SEVERITY_ENTRIES("Medium", 1, "3600", "escalate"),
    SEVERITY_ENTRIES("Low", 2, "14400", "escalate"),
    SEVERITY_ENTRIES("Informational", 3, "86400", "wait"),
#undef SEVERITY_ENTRIES
    {"evidence.lookback_minutes", "QUENCH_EVIDENCE_LOOKBACK_MINUTES", T_INT,
     OFF(evidence.lookback_minutes), 0, 10080, "60"},
    {"evidence.max_pages", "QUENCH_EVIDENCE_MAX_PAGES", T_INT, OFF(evidence.max_pages), 1, 1000,
     "20"},
    {"vm.linux_scan_command", "QUENCH_VM_LINUX_SCAN_COMMAND", T_STR, OFF(vm.linux_scan_command), 0,
     0, "clamscan --recursive --infected /"},
    {"vm.windows_scan_command", "QUENCH_VM_WINDOWS_SCAN_COMMAND", T_STR,
     OFF(vm.windows_scan_command), 0, 0, "Start-MpScan -ScanType FullScan"},
    {"shutdown.budget_ms", "QUENCH_SHUTDOWN_BUDGET_MS", T_INT, OFF(shutdown.budget_ms), 0, 600000,
     "20000"},
};

#define TABLE_LEN (sizeof(config_table) / sizeof(config_table[0]))

static const char *const default_owner_tags[] = {"owner", "Owner", "contact"};

static const char *const log_levels[] = {"error", "warn", "info", "debug", "trace"};

static char **str_field(struct qn_config *cfg, const struct entry *e)
{
    return (char **)(void *)((char *)cfg + e->offset);
}

static long *int_field(struct qn_config *cfg, const struct entry *e)
{
    return (long *)(void *)((char *)cfg + e->offset);
}

static bool *bool_field(struct qn_config *cfg, const struct entry *e)
{
    return (bool *)(void *)((char *)cfg + e->offset);
}

static struct qn_string_list *list_field(struct qn_config *cfg, const struct entry *e)
{
    return (struct qn_string_list *)(void *)((char *)cfg + e->offset);
}

static void list_free(struct qn_string_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        qn_free(list->items[i]);
    }
    qn_free(list->items);
    list->items = NULL;
    list->count = 0;
}

static qn_err_t list_push(struct qn_string_list *list, const char *s)
{
    char **items = qn_realloc(list->items, (list->count + 1) * sizeof(*items));
    if (items == NULL) {
        return QN_ERR_NOMEM;
    }
    list->items = items;
    items[list->count] = qn_strdup(s);
    if (items[list->count] == NULL) {
        return QN_ERR_NOMEM;
    }
    list->count++;
    return QN_OK;
}

static qn_err_t set_str(char **slot, const char *value)
{
    char *copy = qn_strdup(value);
    if (copy == NULL) {
        return QN_ERR_NOMEM;
    }
    qn_free(*slot);
    *slot = copy;
    return QN_OK;
}

static qn_err_t parse_long(const char *text, const struct entry *e, long *out, struct qn_error *err)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        return qn_error_set(err, QN_ERR_CONFIG, "config key '%s': '%s' is not an integer", e->path,
                            text);
    }
    if (v < e->min || v > e->max) {
        return qn_error_set(err, QN_ERR_CONFIG, "config key '%s': %ld is outside [%ld, %ld]",
                            e->path, v, e->min, e->max);
    }
    *out = v;
    return QN_OK;
}

static qn_err_t parse_bool(const char *text, const struct entry *e, bool *out, struct qn_error *err)
{
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0) {
        *out = true;
    } else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0) {
        *out = false;
    } else {
        return qn_error_set(err, QN_ERR_CONFIG, "config key '%s': '%s' is not true or false",
                            e->path, text);
    }
    return QN_OK;
}

static qn_err_t kafka_set(struct qn_config *cfg, const char *key, const char *value, bool secret)
{
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (strcmp(cfg->kafka[i].key, key) == 0) {
            char *copy = qn_strdup(value);
            if (copy == NULL) {
                return QN_ERR_NOMEM;
            }
            if (cfg->kafka[i].secret) {
                qn_free_secret(cfg->kafka[i].value);
            } else {
                qn_free(cfg->kafka[i].value);
            }
            cfg->kafka[i].value = copy;
            cfg->kafka[i].secret = secret;
            return QN_OK;
        }
    }
    struct qn_kv *kv = qn_realloc(cfg->kafka, (cfg->kafka_count + 1) * sizeof(*kv));
    if (kv == NULL) {
        return QN_ERR_NOMEM;
    }
    cfg->kafka = kv;
    kv[cfg->kafka_count].key = qn_strdup(key);
    kv[cfg->kafka_count].value = qn_strdup(value);
    kv[cfg->kafka_count].secret = secret;
    cfg->kafka_count++;
    if (kv[cfg->kafka_count - 1].key == NULL || kv[cfg->kafka_count - 1].value == NULL) {
        return QN_ERR_NOMEM;
    }
    return QN_OK;
}

/* Reads a secret from a file, stripping one trailing newline. The caller wipes and frees it. */
static qn_err_t
read_secret_file(const char *path, const char *key, char **out, struct qn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'kafka_secret_files.%s': cannot open '%s' (errno %d)", key,
                            path, errno);
    }
    char *data = qn_calloc(1, 65537);
    size_t n = data != NULL ? fread(data, 1, 65536, f) : 0;
    int too_big = data != NULL && n == 65536 && fgetc(f) != EOF;
    fclose(f);
    if (data == NULL) {
        return QN_ERR_NOMEM;
    }
    if (too_big) {
        qn_free_secret(data);
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'kafka_secret_files.%s': '%s' is larger than 64 KiB", key,
                            path);
    }
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r')) {
        data[--n] = '\0';
    }
    *out = data;
    return QN_OK;
}

static qn_err_t json_scalar_text(const cJSON *item, char *tmp, size_t tmp_len, const char **out)
{
    if (cJSON_IsString(item)) {
        *out = item->valuestring;
    } else if (cJSON_IsBool(item)) {
        *out = cJSON_IsTrue(item) ? "true" : "false";
    } else if (cJSON_IsNumber(item)) {
        double v = item->valuedouble;
        if (v == (double)(long long)v) {
            snprintf(tmp, tmp_len, "%lld", (long long)v);
        } else {
            snprintf(tmp, tmp_len, "%.17g", v);
        }
        *out = tmp;
    } else {
        return QN_ERR_CONFIG;
    }
    return QN_OK;
}

static qn_err_t apply_json_entry(struct qn_config *cfg,
                                 const struct entry *e,
                                 const cJSON *item,
                                 struct qn_error *err)
{
    char tmp[64];
    const char *text = NULL;
    switch (e->type) {
    case T_STR:
        if (!cJSON_IsString(item)) {
            return qn_error_set(err, QN_ERR_CONFIG, "config key '%s' must be a string", e->path);
        }
        return set_str(str_field(cfg, e), item->valuestring);
    case T_INT:
        if (!cJSON_IsNumber(item) || item->valuedouble != (double)(long)item->valuedouble) {
            return qn_error_set(err, QN_ERR_CONFIG, "config key '%s' must be an integer", e->path);
        }
        snprintf(tmp, sizeof(tmp), "%ld", (long)item->valuedouble);
        return parse_long(tmp, e, int_field(cfg, e), err);
    case T_BOOL:
        if (!cJSON_IsBool(item)) {
            return qn_error_set(err, QN_ERR_CONFIG, "config key '%s' must be true or false",
                                e->path);
        }
        *bool_field(cfg, e) = cJSON_IsTrue(item);
        return QN_OK;
    case T_STRLIST: {
        if (!cJSON_IsArray(item)) {
            return qn_error_set(err, QN_ERR_CONFIG, "config key '%s' must be an array of strings",
                                e->path);
        }
        struct qn_string_list *list = list_field(cfg, e);
        list_free(list);
        const cJSON *el = NULL;
        cJSON_ArrayForEach(el, item)
        {
            if (!cJSON_IsString(el) || el->valuestring[0] == '\0') {
                return qn_error_set(err, QN_ERR_CONFIG,
                                    "config key '%s' must be an array of non-empty strings",
                                    e->path);
            }
            if (list_push(list, el->valuestring) != QN_OK) {
                return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
            }
        }
        return QN_OK;
    }
    case T_MODES: {
        if (!cJSON_IsObject(item)) {
            return qn_error_set(err, QN_ERR_CONFIG, "config key '%s' must be an object", e->path);
        }
        const cJSON *el = NULL;
        cJSON_ArrayForEach(el, item)
        {
            enum qn_task_kind kind;
            enum qn_mode mode;
            if (qn_task_kind_parse(el->string, &kind) != 0) {
                return qn_error_set(err, QN_ERR_CONFIG,
                                    "config key 'policy.modes.%s': unknown task kind", el->string);
            }
            if (!cJSON_IsString(el) || qn_mode_parse(el->valuestring, &mode) != 0) {
                return qn_error_set(err, QN_ERR_CONFIG,
                                    "config key 'policy.modes.%s' must be observe, approve or "
                                    "enforce",
                                    el->string);
            }
            cfg->policy.modes[kind] = mode;
        }
        return QN_OK;
    }
    case T_KAFKA:
    case T_KAFKA_FILES: {
        if (!cJSON_IsObject(item)) {
            return qn_error_set(err, QN_ERR_CONFIG, "config key '%s' must be an object", e->path);
        }
        const cJSON *el = NULL;
        cJSON_ArrayForEach(el, item)
        {
            if (json_scalar_text(el, tmp, sizeof(tmp), &text) != QN_OK ||
                (e->type == T_KAFKA_FILES && !cJSON_IsString(el))) {
                return qn_error_set(
                    err, QN_ERR_CONFIG, "config key '%s.%s' must be a %s", e->path, el->string,
                    e->type == T_KAFKA ? "string, number or boolean" : "file path string");
            }
            qn_err_t rc;
            if (e->type == T_KAFKA) {
                rc = kafka_set(cfg, el->string, text, false);
            } else {
                for (size_t i = 0; i < cfg->kafka_count; i++) {
                    if (strcmp(cfg->kafka[i].key, el->string) == 0 && !cfg->kafka[i].secret) {
                        return qn_error_set(err, QN_ERR_CONFIG,
                                            "config key 'kafka.%s' is set inline and in "
                                            "'kafka_secret_files': keep only the file",
                                            el->string);
                    }
                }
                char *secret = NULL;
                rc = read_secret_file(text, el->string, &secret, err);
                if (rc != QN_OK) {
                    return rc;
                }
                rc = kafka_set(cfg, el->string, secret, true);
                qn_free_secret(secret);
            }
            if (rc != QN_OK) {
                return qn_error_set(err, rc, "out of memory");
            }
        }
        return QN_OK;
    }
    }
    return QN_ERR_CONFIG;
}

static const struct entry *find_entry(const char *path)
{
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (strcmp(config_table[i].path, path) == 0) {
            return &config_table[i];
        }
    }
    return NULL;
}

/* @returns true if some entry lives below @p path (so a JSON object there is a section). */
static bool is_section_path(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < TABLE_LEN; i++) {
        if (strncmp(config_table[i].path, path, n) == 0 && config_table[i].path[n] == '.') {
            return true;
        }
    }
    return false;
}

/* Walks a JSON object whose members live at "@p prefix.<name>" ("" at the top). */
static qn_err_t
apply_json_at(struct qn_config *cfg, const cJSON *obj, const char *prefix, struct qn_error *err)
{
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, obj)
    {
        char path[256];
        if (strchr(item->string, '.') != NULL || strlen(prefix) + strlen(item->string) + 2 > 255) {
            return qn_error_set(err, QN_ERR_CONFIG, "unknown config key '%s%s%.64s'", prefix,
                                prefix[0] != '\0' ? "." : "", item->string);
        }
        size_t plen = strlen(prefix);
        memcpy(path, prefix, plen);
        if (plen > 0) {
            path[plen++] = '.';
        }
        memcpy(path + plen, item->string, strlen(item->string) + 1);
        const struct entry *e = find_entry(path);
        qn_err_t rc;
        if (e != NULL) {
            rc = apply_json_entry(cfg, e, item, err);
        } else if (is_section_path(path)) {
            if (!cJSON_IsObject(item)) {
                return qn_error_set(err, QN_ERR_CONFIG, "config key '%s' must be an object", path);
            }
            rc = apply_json_at(cfg, item, path, err);
        } else {
            return qn_error_set(err, QN_ERR_CONFIG, "unknown config key '%s'", path);
        }
        if (rc != QN_OK) {
            return rc;
        }
    }
    return QN_OK;
}

static qn_err_t apply_json(struct qn_config *cfg, const cJSON *root, struct qn_error *err)
{
    return apply_json_at(cfg, root, "", err);
}

static qn_err_t
apply_text(struct qn_config *cfg, const struct entry *e, const char *text, struct qn_error *err)
{
    switch (e->type) {
    case T_STR:
        return set_str(str_field(cfg, e), text) == QN_OK
                   ? QN_OK
                   : qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    case T_INT:
        return parse_long(text, e, int_field(cfg, e), err);
    case T_BOOL:
        return parse_bool(text, e, bool_field(cfg, e), err);
    default:
        return qn_error_set(err, QN_ERR_CONFIG, "config key '%s' cannot be set from text", e->path);
    }
}

static qn_err_t load_file(struct qn_config *cfg, const char *path, struct qn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return qn_error_set(err, QN_ERR_CONFIG, "cannot open config file '%s' (errno %d)", path,
                            errno);
    }
    struct qn_buf buf;
    qn_buf_init(&buf, 4 * 1024 * 1024);
    char chunk[4096];
    size_t n;
    qn_err_t rc = QN_OK;
    while (rc == QN_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = qn_buf_append(&buf, chunk, n);
    }
    fclose(f);
    if (rc != QN_OK) {
        qn_buf_fini(&buf);
        return qn_error_set(err, QN_ERR_CONFIG, "config file '%s' is too large", path);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(qn_buf_cstr(&buf), buf.len, &end, 0);
    if (root == NULL) {
        size_t at = end != NULL ? (size_t)(end - qn_buf_cstr(&buf)) : 0;
        qn_buf_fini(&buf);
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config file '%s' is not valid JSON (near byte %zu)", path, at);
    }
    qn_buf_fini(&buf);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qn_error_set(err, QN_ERR_CONFIG, "config file '%s' must hold a JSON object", path);
    }
    rc = apply_json(cfg, root, err);
    cJSON_Delete(root);
    return rc;
}

/* QUENCH_KAFKA_SASL_MECHANISM -> "sasl.mechanism" */
static void env_to_kafka_key(const char *suffix, char *out, size_t out_len)
{
    size_t i = 0;
    for (; suffix[i] != '\0' && i + 1 < out_len; i++) {
        out[i] = suffix[i] == '_' ? '.' : (char)tolower((unsigned char)suffix[i]);
    }
    out[i] = '\0';
}

static qn_err_t apply_env(struct qn_config *cfg, char *const *envp, struct qn_error *err)
{
    for (char *const *ev = envp; ev != NULL && *ev != NULL; ev++) {
        const char *eq = strchr(*ev, '=');
        if (eq == NULL || strncmp(*ev, "QUENCH_", 7) != 0) {
            continue;
        }
        char name[256];
        size_t name_len = (size_t)(eq - *ev);
        if (name_len >= sizeof(name)) {
            continue;
        }
        memcpy(name, *ev, name_len);
        name[name_len] = '\0';
        const char *value = eq + 1;
        bool matched = false;
        for (size_t i = 0; i < TABLE_LEN; i++) {
            if (config_table[i].env != NULL && strcmp(config_table[i].env, name) == 0) {
                qn_err_t rc = apply_text(cfg, &config_table[i], value, err);
                if (rc != QN_OK) {
                    return rc;
                }
                matched = true;
            }
        }
        if (!matched && strncmp(name, "QUENCH_KAFKA_", 13) == 0 && name[13] != '\0') {
            char key[256];
            env_to_kafka_key(name + 13, key, sizeof(key));
            if (kafka_set(cfg, key, value, false) != QN_OK) {
                return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
            }
            matched = true;
        }
        if (!matched) {
            /* Kubernetes service links inject QUENCH_SERVICE_HOST and friends: ignore them. */
            QN_LOG_DEBUG("config", "ignoring environment variable %s", name);
        }
    }
    return QN_OK;
}

static qn_err_t apply_defaults(struct qn_config *cfg, struct qn_error *err)
{
    for (size_t i = 0; i < TABLE_LEN; i++) {
        const struct entry *e = &config_table[i];
        if (e->def != NULL) {
            qn_err_t rc = apply_text(cfg, e, e->def, err);
            if (rc != QN_OK) {
                return rc;
            }
        }
    }
    for (size_t i = 0; i < sizeof(default_owner_tags) / sizeof(default_owner_tags[0]); i++) {
        if (list_push(&cfg->contact.owner_tags, default_owner_tags[i]) != QN_OK) {
            return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        }
    }
    for (int k = 0; k < QN_TASK_KIND__COUNT; k++) {
        cfg->policy.modes[k] = qn_task_kind_default_mode((enum qn_task_kind)k);
    }
    return QN_OK;
}

/* librdkafka properties whose values are secrets even when given inline. */
static bool kafka_key_is_secret(const char *key)
{
    return strstr(key, "password") != NULL || strstr(key, "secret") != NULL ||
           strstr(key, "sasl.oauthbearer.config") != NULL || strcmp(key, "ssl.key.pem") == 0;
}

static bool one_of(const char *value, const char *const *choices)
{
    for (; *choices != NULL; choices++) {
        if (strcmp(value, *choices) == 0) {
            return true;
        }
    }
    return false;
}

static bool topic_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 249 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* kafka_oauth "azure": Entra ID tokens through the refresh callback (worker/kafka_oauth.h). */
static qn_err_t validate_kafka_oauth(const struct qn_config *cfg, struct qn_error *err)
{
    const char *names[] = {"sasl.mechanism", "sasl.mechanisms"};
    bool oauthbearer = false;
    for (int i = 0; i < 2; i++) {
        const char *mech = qn_config_kafka_get(cfg, names[i]);
        if (mech != NULL && strcmp(mech, "OAUTHBEARER") != 0) {
            return qn_error_set(err, QN_ERR_CONFIG,
                                "config key 'kafka_oauth' is \"azure\" but 'kafka.%s' is '%s': "
                                "Entra ID tokens need OAUTHBEARER",
                                names[i], mech);
        }
        oauthbearer = oauthbearer || mech != NULL;
    }
    if (!oauthbearer) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'kafka_oauth' is \"azure\": set 'kafka.sasl.mechanism' "
                            "to OAUTHBEARER (and 'kafka.security.protocol' to SASL_SSL)");
    }
    if (strcmp(cfg->azure.credential, "none") == 0) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'kafka_oauth' is \"azure\" but 'azure.credential' is "
                            "\"none\": choose secret, certificate, workload or managed");
    }
    const char *method = qn_config_kafka_get(cfg, "sasl.oauthbearer.method");
    if (method != NULL && strcmp(method, "default") != 0) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'kafka.sasl.oauthbearer.method' is '%s': with "
                            "kafka_oauth \"azure\" quench supplies the tokens (leave it unset)",
                            method);
    }
    const char *jwt = qn_config_kafka_get(cfg, "enable.sasl.oauthbearer.unsecure.jwt");
    if (jwt != NULL && strcmp(jwt, "false") != 0) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'kafka.enable.sasl.oauthbearer.unsecure.jwt' cannot be "
                            "used with kafka_oauth \"azure\"");
    }
    return QN_OK;
}

static qn_err_t validate(const struct qn_config *cfg, int flags, struct qn_error *err)
{
    bool level_ok = false;
    for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
        level_ok = level_ok || strcmp(cfg->log_level, log_levels[i]) == 0;
    }
    if (!level_ok) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'log_level': '%s' is not error, warn, info, debug or trace",
                            cfg->log_level);
    }
    if (strcmp(cfg->role, "all") != 0 && strcmp(cfg->role, "ingest") != 0 &&
        strcmp(cfg->role, "respond") != 0) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'role': '%s' is not all, ingest or respond", cfg->role);
    }
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        const char *key = cfg->kafka[i].key;
        if (!cfg->kafka[i].secret && kafka_key_is_secret(key)) {
            return qn_error_set(err, QN_ERR_CONFIG,
                                "config key 'kafka.%s' holds a secret: name a file holding it in "
                                "'kafka_secret_files' instead",
                                key);
        }
        if (strcmp(key, "group.id") == 0 || strcmp(key, "partitioner") == 0 ||
            strcmp(key, "enable.auto.offset.store") == 0) {
            return qn_error_set(err, QN_ERR_CONFIG, "config key 'kafka.%s' is managed by quench%s",
                                key, strcmp(key, "group.id") == 0 ? ": use 'group_id'" : "");
        }
    }
    static const char *const clouds[] = {"public", "usgov", "china", NULL};
    static const char *const credentials[] = {"none",     "secret",  "certificate",
                                              "workload", "managed", NULL};
    static const char *const actions[] = {"mitigate", "escalate", "wait", NULL};
    if (!one_of(cfg->azure.cloud, clouds)) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'azure.cloud': '%s' is not public, usgov or china",
                            cfg->azure.cloud);
    }
    if (!one_of(cfg->azure.credential, credentials)) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'azure.credential': '%s' is not none, secret, certificate, "
                            "workload or managed",
                            cfg->azure.credential);
    }
    static const char *const kafka_oauths[] = {"none", "azure", NULL};
    if (!one_of(cfg->kafka_oauth, kafka_oauths)) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'kafka_oauth': '%s' is not none or azure",
                            cfg->kafka_oauth);
    }
    if (strcmp(cfg->kafka_oauth, "azure") == 0) {
        qn_err_t rc = validate_kafka_oauth(cfg, err);
        if (rc != QN_OK) {
            return rc;
        }
    }
    static const char *const severities[] = {"High", "Medium", "Low", "Informational"};
    for (int i = 0; i < 4; i++) {
        if (!one_of(cfg->contact.by_severity[i].on_timeout, actions)) {
            return qn_error_set(err, QN_ERR_CONFIG,
                                "config key 'contact.policies.%s.on_timeout': '%s' is not "
                                "mitigate, escalate or wait",
                                severities[i], cfg->contact.by_severity[i].on_timeout);
        }
    }
    if (cfg->group_id[0] == '\0') {
        return qn_error_set(err, QN_ERR_CONFIG, "config key 'group_id' must not be empty");
    }

    const struct {
        const char *key;
        const char *value;
    } topics[] = {
        {"topics.input", cfg->topics.input},       {"topics.verdicts", cfg->topics.verdicts},
        {"topics.work", cfg->topics.work},         {"topics.state", cfg->topics.state},
        {"topics.outcomes", cfg->topics.outcomes}, {"topics.dlq", cfg->topics.dlq},
    };

    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        if (!topic_name_ok(topics[i].value)) {
            return qn_error_set(err, QN_ERR_CONFIG, "config key '%s': '%s' is not a topic name",
                                topics[i].key, topics[i].value);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(topics[i].value, topics[j].value) == 0) {
                return qn_error_set(err, QN_ERR_CONFIG,
                                    "config keys '%s' and '%s' name the same topic '%s'",
                                    topics[j].key, topics[i].key, topics[i].value);
            }
        }
    }
    if (!(flags & QN_CONFIG_OFFLINE) && qn_config_kafka_get(cfg, "bootstrap.servers") == NULL) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'kafka.bootstrap.servers' is required (or set "
                            "QUENCH_KAFKA_BOOTSTRAP_SERVERS)");
    }
    return QN_OK;
}

qn_err_t
qn_config_load(const char *path, char *const *envp, struct qn_config **out, struct qn_error *err)
{
    return qn_config_load_flags(path, envp, 0, out, err);
}

qn_err_t qn_config_load_flags(
    const char *path, char *const *envp, int flags, struct qn_config **out, struct qn_error *err)
{
    struct qn_config *cfg = qn_calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    }
    qn_err_t rc = apply_defaults(cfg, err);
    if (rc == QN_OK && path != NULL) {
        rc = load_file(cfg, path, err);
    }
    if (rc == QN_OK) {
        rc = apply_env(cfg, envp, err);
    }
    if (rc == QN_OK) {
        rc = validate(cfg, flags, err);
    }
    if (rc != QN_OK) {
        qn_config_free(cfg);
        if (err != NULL && err->code != rc) {
            qn_error_set(err, rc, "%s", qn_err_str(rc));
        }
        return rc == QN_ERR_NOMEM ? rc : QN_ERR_CONFIG;
    }
    *out = cfg;
    return QN_OK;
}

void qn_config_free(struct qn_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < TABLE_LEN; i++) {
        const struct entry *e = &config_table[i];
        if (e->type == T_STR) {
            qn_free(*str_field(cfg, e));
        } else if (e->type == T_STRLIST) {
            list_free(list_field(cfg, e));
        }
    }
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        qn_free(cfg->kafka[i].key);
        if (cfg->kafka[i].secret) {
            qn_free_secret(cfg->kafka[i].value);
        } else {
            qn_free(cfg->kafka[i].value);
        }
    }
    qn_free(cfg->kafka);
    qn_free(cfg);
}

const char *qn_config_kafka_get(const struct qn_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->kafka_count; i++) {
        if (strcmp(cfg->kafka[i].key, key) == 0) {
            return cfg->kafka[i].value;
        }
    }
    return NULL;
}

enum qn_mode qn_config_effective_mode(const struct qn_config *cfg, enum qn_task_kind kind)
{
    return cfg->policy.dry_run ? QN_MODE_OBSERVE : cfg->policy.modes[kind];
}

static cJSON *list_to_json(const struct qn_string_list *list)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr != NULL && i < list->count; i++) {
        cJSON_AddItemToArray(arr, cJSON_CreateString(list->items[i]));
    }
    return arr;
}

qn_err_t qn_config_render_redacted(const struct qn_config *cfg, struct qn_buf *out)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) {
        return QN_ERR_NOMEM;
    }
    cJSON *kafka = cJSON_AddObjectToObject(root, "kafka");
    for (size_t i = 0; kafka != NULL && i < cfg->kafka_count; i++) {
        bool hide = cfg->kafka[i].secret || kafka_key_is_secret(cfg->kafka[i].key);
        cJSON_AddStringToObject(kafka, cfg->kafka[i].key,
                                hide ? "[redacted]" : cfg->kafka[i].value);
    }
    for (size_t i = 0; i < TABLE_LEN; i++) {
        const struct entry *e = &config_table[i];
        /* create the objects along the path: "a.b.c" -> root.a.b, leaf "c" */
        cJSON *parent = root;
        const char *leaf = e->path;
        for (const char *dot = strchr(leaf, '.'); dot != NULL; dot = strchr(leaf, '.')) {
            char section[64];
            size_t n = (size_t)(dot - leaf);
            n = n < sizeof(section) - 1 ? n : sizeof(section) - 1;
            memcpy(section, leaf, n);
            section[n] = '\0';
            cJSON *child = cJSON_GetObjectItemCaseSensitive(parent, section);
            if (child == NULL) {
                child = cJSON_AddObjectToObject(parent, section);
            }
            parent = child;
            leaf = dot + 1;
        }
        struct qn_config *mut = (struct qn_config *)(uintptr_t)cfg;
        switch (e->type) {
        case T_STR:
            cJSON_AddStringToObject(parent, leaf, *str_field(mut, e));
            break;
        case T_INT:
            cJSON_AddNumberToObject(parent, leaf, (double)*int_field(mut, e));
            break;
        case T_BOOL:
            cJSON_AddBoolToObject(parent, leaf, *bool_field(mut, e));
            break;
        case T_STRLIST: {
            cJSON *list = list_to_json(list_field(mut, e));
            if (list != NULL && !cJSON_AddItemToObject(parent, leaf, list)) {
                cJSON_Delete(list);
            }
            break;
        }
        case T_MODES: {
            cJSON *modes = cJSON_AddObjectToObject(parent, leaf);
            for (int k = 0; modes != NULL && k < QN_TASK_KIND__COUNT; k++) {
                cJSON_AddStringToObject(modes, qn_task_kind_name((enum qn_task_kind)k),
                                        qn_mode_name(cfg->policy.modes[k]));
            }
            break;
        }
        case T_KAFKA:
        case T_KAFKA_FILES:
            break;
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (text == NULL) {
        return QN_ERR_NOMEM;
    }
    qn_err_t rc = qn_buf_append_str(out, text);
    qn_free(text);
    return rc;
}
