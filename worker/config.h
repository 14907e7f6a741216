/*
 * config.h - the worker's immutable configuration: defaults, then a JSON file, then QUENCH_*
 * environment variables, then secrets read from files. Validated once at start; every error names
 * the key. The layout follows schemas/config.schema.json.
 */
#ifndef QN_CONFIG_H
#define QN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "qn/buf.h"
#include "qn/err.h"
#include "task_kind.h"

/* One librdkafka property passed through. Secret values are wiped when freed, never printed. */
struct qn_kv {
    char *key;
    char *value;
    bool secret;
};

struct qn_string_list {
    char **items;
    size_t count;
};

struct qn_config {
    char *log_level;
    char *group_id;
    char *role;          /* "all", "ingest" (input and verdicts only) or "respond" (work only) */
    struct qn_kv *kafka; /* pass-through properties, in file order, env overrides last */
    size_t kafka_count;
    char *kafka_oauth; /* "none" or "azure": OAUTHBEARER tokens from Entra ID (kafka_oauth.h) */

    struct {
        char *input;
        char *verdicts;
        char *work;
        char *state;
        char *outcomes;
        char *dlq;
    } topics;

    struct {
        long max_record_bytes;
        long max_depth;
        long dedup_capacity;
        struct qn_string_list extra_alert_types;
    } ingest;

    struct {
        char *address;
        long port;
    } http;

    struct {
        char *cloud;      /* public | usgov | china */
        char *credential; /* none | secret | certificate | workload | managed */
        char *tenant_id;
        char *client_id;
        char *client_secret_file;
        char *certificate_file;
        char *private_key_file;
        char *federated_token_file;
        char *ca_file; /* extra CA bundle; TLS is always verified */

        struct {
            char *authority;
            char *arm;
            char *graph;
            char *imds;
        } endpoints; /* "" = the cloud's preset */

        long request_timeout_ms;

        struct {
            long burst;
            long per_second;
        } ratelimit[4]; /* read, write, delete, graph */
    } azure;

    struct {
        bool dry_run;
        bool kill_switch; /* every write off, at once */
        bool provenance;  /* read the alert back before destructive writes */
        enum qn_mode modes[QN_TASK_KIND__COUNT];
        struct qn_string_list allowed_tenants;       /* empty: azure.tenant_id only */
        struct qn_string_list allowed_subscriptions; /* empty: any in an allowed tenant */
        struct qn_string_list protected_principals;  /* object ids or UPNs, never touched */
        struct qn_string_list protected_tags;        /* "name" or "name=value" */
        struct qn_string_list known_principals;      /* familiar: never "unfamiliar" */
        struct qn_string_list known_resources;       /* familiar resource ids */
        long cap_per_alert;                          /* destructive writes per alert */
        long cap_per_subscription_hour; /* destructive writes per subscription per hour */
    } policy;

    struct {
        char *security_contact;
        struct qn_string_list owner_tags;

        struct {
            long deadline_seconds;
            char *on_timeout; /* mitigate | escalate | wait */
        } by_severity[4];     /* High, Medium, Low, Informational */
    } contact;

    struct {
        long lookback_minutes; /* the activity log is read from alert start minus this */
        long max_pages;
    } evidence;

    struct {
        char *linux_scan_command;
        char *windows_scan_command;
    } vm;

    struct {
        long budget_ms;
    } shutdown;
};

/*
 * @brief Builds the configuration: defaults, then @p path (may be NULL), then the environment
 *        @p envp (NULL-terminated "NAME=value" strings; may be NULL).
 * @returns QN_OK, or QN_ERR_CONFIG with @p err naming the key. The caller owns *out.
 */
QN_NODISCARD qn_err_t qn_config_load(const char *path,
                                     char *const *envp,
                                     struct qn_config **out,
                                     struct qn_error *err);

/* Skip the checks that only matter with Kafka (bootstrap.servers), for `quench plan`. */
#define QN_CONFIG_OFFLINE 0x1

/* Same as qn_config_load, with QN_CONFIG_* @p flags. */
QN_NODISCARD qn_err_t qn_config_load_flags(
    const char *path, char *const *envp, int flags, struct qn_config **out, struct qn_error *err);

void qn_config_free(struct qn_config *cfg);

/* @returns the value of a pass-through kafka property, or NULL. Borrowed from @p cfg. */
const char *qn_config_kafka_get(const struct qn_config *cfg, const char *key);

/* Renders the effective configuration as JSON with secret values replaced by "[redacted]". */
QN_NODISCARD qn_err_t qn_config_render_redacted(const struct qn_config *cfg, struct qn_buf *out);

/* @returns the effective mode of @p kind: observe whenever dry_run is on. */
enum qn_mode qn_config_effective_mode(const struct qn_config *cfg, enum qn_task_kind kind);

#endif
