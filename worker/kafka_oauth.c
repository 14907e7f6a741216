/*
 * kafka_oauth.c - Kafka SASL/OAUTHBEARER tokens from Entra ID (see kafka_oauth.h).
 */
#include "kafka_oauth.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "qn/azure_auth.h"
#include "qn/crypto.h"
#include "qn/http.h"
#include "qn/log.h"
#include "qn/mem.h"
#include "qn/timefmt.h"

#define MAX_HANDLES   8
#define SCOPE_SUFFIX  "/.default"
#define SECRET_MAX    4096
#define WAIT_SLICE_MS 100

struct qn_kafka_oauth;

/* One librdkafka handle (producer, consumer, a tool's client). */
struct handle {
    struct qn_kafka_oauth *ko;
    rd_kafka_t *rk;
    struct qn_azure_token_req *req; /* valid while pending */
    bool pending;
    qn_err_t last_code; /* of the last outcome: QN_OK after a token was set */
    struct qn_kafka_oauth_status st;
};

struct qn_kafka_oauth {
    struct qn_loop *loop;
    struct qn_http *http;
    struct qn_azure *azure;
    char *principal;
    char *scope;
    struct handle handles[MAX_HANDLES];
    size_t count;
};

bool qn_kafka_oauth_enabled(const struct qn_config *cfg)
{
    return cfg->kafka_oauth != NULL && strcmp(cfg->kafka_oauth, "azure") == 0;
}

/* ---- the token flow ---------------------------------------------------------------------------
 */

static void report_failure(struct handle *h, qn_err_t code, const char *why)
{
    h->last_code = code;
    h->st.failures++;
    snprintf(h->st.last_error, sizeof(h->st.last_error), "%s", why);
    rd_kafka_resp_err_t rc = rd_kafka_oauthbearer_set_token_failure(h->rk, h->st.last_error);
    QN_LOG_WARN("kafka", "%s: no OAUTHBEARER token: %s%s", rd_kafka_name(h->rk), h->st.last_error,
                rc == RD_KAFKA_RESP_ERR_NO_ERROR ? " (librdkafka asks again)" : "");
}

static void
on_token(const char *token, int64_t expires_at_epoch_ms, const struct qn_error *err, void *opaque)
{
    struct handle *h = opaque;
    struct qn_kafka_oauth *ko = h->ko;
    h->pending = false;
    h->req = NULL;
    char why[QN_KAFKA_OAUTH_ERROR_LEN];
    if (token == NULL) {
        qn_err_t code = err != NULL && err->code != QN_OK ? err->code : QN_ERR_AUTH;
        snprintf(why, sizeof(why), "Entra ID token for %.120s: %s: %.255s", ko->scope,
                 qn_err_str(code), err != NULL && err->msg[0] != '\0' ? err->msg : "no detail");
        report_failure(h, code, why);
        return;
    }
    char errstr[256] = "";
    rd_kafka_resp_err_t rc = rd_kafka_oauthbearer_set_token(
        h->rk, token, expires_at_epoch_ms, ko->principal, NULL, 0, errstr, sizeof(errstr));
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, sizeof(why), "librdkafka refused the Entra ID token: %.180s (%s)", errstr,
                 rd_kafka_err2name(rc));
        report_failure(h, QN_ERR_KAFKA, why);
        return;
    }
    char digest[65];
    qn_sha256_hex(token, strlen(token), digest);
    memcpy(h->st.fingerprint, digest, 16);
    h->st.fingerprint[16] = '\0';
    h->st.expires_at_ms = expires_at_epoch_ms;
    h->st.token_sets++;
    h->st.last_error[0] = '\0';
    h->last_code = QN_OK;
    long long left_s = (long long)((expires_at_epoch_ms - qn_time_epoch_ms()) / 1000);
    if (h->st.token_sets == 1) {
        QN_LOG_INFO("kafka",
                    "%s: OAUTHBEARER token from Entra ID set (scope %s, expires in %lld s)",
                    rd_kafka_name(h->rk), ko->scope, left_s);
    } else {
        QN_LOG_DEBUG("kafka", "%s: OAUTHBEARER token refreshed (expires in %lld s)",
                     rd_kafka_name(h->rk), left_s);
    }
}

static struct handle *find_handle(const struct qn_kafka_oauth *ko, const rd_kafka_t *rk)
{
    for (size_t i = 0; i < ko->count; i++) {
        if (ko->handles[i].rk == rk) {
            return (struct handle *)(uintptr_t)&ko->handles[i];
        }
    }
    return NULL;
}

static struct handle *handle_for(struct qn_kafka_oauth *ko, rd_kafka_t *rk)
{
    struct handle *h = find_handle(ko, rk);
    if (h == NULL && ko->count < MAX_HANDLES) {
        h = &ko->handles[ko->count++];
        memset(h, 0, sizeof(*h));
        h->ko = ko;
        h->rk = rk;
        h->last_code = QN_OK;
    }
    return h;
}

static void start(struct handle *h)
{
    h->st.refreshes++;
    if (h->pending) {
        return; /* the request in flight answers this refresh too */
    }
    struct qn_error err = {0};
    h->pending = true;
    qn_err_t rc = qn_azure_token_get(h->ko->azure, QN_AZURE_EVENTHUBS, on_token, h, &h->req, &err);
    if (rc != QN_OK) {
        h->pending = false;
        h->req = NULL;
        char why[QN_KAFKA_OAUTH_ERROR_LEN];
        snprintf(why, sizeof(why), "cannot request an Entra ID token: %.255s",
                 err.msg[0] != '\0' ? err.msg : qn_err_str(rc));
        report_failure(h, rc, why);
    }
}

void qn_kafka_oauth_refresh(struct qn_kafka_oauth *ko, rd_kafka_t *rk)
{
    struct handle *h = handle_for(ko, rk);
    if (h == NULL) {
        rd_kafka_oauthbearer_set_token_failure(rk,
                                               "quench: too many Kafka handles for OAUTHBEARER");
        return;
    }
    start(h);
}

qn_err_t qn_kafka_oauth_wait(struct qn_kafka_oauth *ko,
                             rd_kafka_t *rk,
                             int64_t timeout_ms,
                             struct qn_error *err)
{
    struct handle *h = handle_for(ko, rk);
    if (h == NULL) {
        return qn_error_set(err, QN_ERR_INVALID, "too many Kafka handles for OAUTHBEARER");
    }
    uint64_t sets = h->st.token_sets;
    uint64_t failures = h->st.failures;
    start(h);
    int64_t deadline = qn_clock_ms() + timeout_ms;
    while (h->st.token_sets == sets && h->st.failures == failures) {
        int64_t left = deadline - qn_clock_ms();
        if (left <= 0) {
            return qn_error_set(err, QN_ERR_TIMEOUT,
                                "no Entra ID token for %s within %lld ms (still waiting)",
                                ko->scope, (long long)timeout_ms);
        }
        qn_err_t rc =
            qn_loop_run_once(ko->loop, (int)(left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS));
        if (rc != QN_OK) {
            return qn_error_set(err, rc, "the event loop failed while waiting for a token");
        }
    }
    if (h->st.token_sets > sets) {
        return QN_OK;
    }
    return qn_error_set(err, h->last_code != QN_OK ? h->last_code : QN_ERR_AUTH, "%s",
                        h->st.last_error);
}

bool qn_kafka_oauth_status(const struct qn_kafka_oauth *ko,
                           const rd_kafka_t *rk,
                           struct qn_kafka_oauth_status *out)
{
    const struct handle *h = find_handle(ko, rk);
    if (h == NULL) {
        return false;
    }
    *out = h->st;
    out->pending = h->pending;
    return true;
}

const char *qn_kafka_oauth_principal(const struct qn_kafka_oauth *ko)
{
    return ko->principal;
}

const char *qn_kafka_oauth_scope(const struct qn_kafka_oauth *ko)
{
    return ko->scope;
}

/* ---- set-up -------------------------------------------------------------------------------- */

static char *read_secret(const char *path)
{
    FILE *f = path[0] != '\0' ? fopen(path, "rb") : NULL;
    if (f == NULL) {
        return NULL;
    }
    char *secret = qn_calloc(1, SECRET_MAX + 1);
    size_t n = secret != NULL ? fread(secret, 1, SECRET_MAX, f) : 0;
    fclose(f);
    while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r')) {
        secret[--n] = '\0';
    }
    return secret;
}

/*
 * The token audience for an Event Hubs namespace, as Microsoft documents it for Kafka clients:
 * "https://<namespace>.servicebus.windows.net" (or the sovereign clouds' servicebus domains), from
 * the first host of kafka.bootstrap.servers; a private-endpoint name
 * (<namespace>.privatelink.servicebus...) maps to the public one. @returns false for any other
 * broker (then the Azure client's Event Hubs audience, https://eventhubs.azure.net, is used).
 */
static bool namespace_audience(const struct qn_config *cfg, char *out, size_t out_len)
{
    static const char *const domains[] = {
        ".servicebus.windows.net", ".servicebus.usgovcloudapi.net", ".servicebus.chinacloudapi.cn"};
    const char *servers = qn_config_kafka_get(cfg, "bootstrap.servers");
    if (servers == NULL) {
        return false;
    }
    const char *host = strstr(servers, "://");
    host = host != NULL && host < servers + strcspn(servers, ",") ? host + 3 : servers;
    size_t n = strcspn(host, ",:/ \t");
    char name[256];
    if (n == 0 || n >= sizeof(name)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.')) {
            return false;
        }
        name[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    name[n] = '\0';
    for (size_t d = 0; d < sizeof(domains) / sizeof(domains[0]); d++) {
        size_t dl = strlen(domains[d]);
        if (n <= dl || strcmp(name + n - dl, domains[d]) != 0) {
            continue;
        }
        const char *rest = strchr(name, '.'); /* the namespace is the first label */
        int label = (int)(rest - name);
        if (strncmp(rest, ".privatelink.", 13) == 0) {
            rest += 12; /* skip ".privatelink" */
        }
        return label > 0 &&
               snprintf(out, out_len, "https://%.*s%s", label, name, rest) < (int)out_len;
    }
    return false;
}

/* Builds the Azure client the way the engine does (engine.c make_azure), minus rate limits.
 * @p audience: the Event Hubs audience, NULL for the client's preset. */
static qn_err_t make_azure(struct qn_kafka_oauth *ko,
                           const struct qn_config *cfg,
                           const char *audience,
                           struct qn_error *err)
{
    struct qn_http_config hcfg;
    qn_http_config_default(&hcfg);
    hcfg.ca_file = cfg->azure.ca_file[0] != '\0' ? cfg->azure.ca_file : NULL;
    hcfg.timeout_ms = cfg->azure.request_timeout_ms;
    qn_err_t rc = qn_http_new(ko->loop, &hcfg, &ko->http, err);
    if (rc != QN_OK) {
        return rc;
    }
    struct qn_azure_config acfg;
    qn_azure_config_default(&acfg);
    (void)qn_azure_config_from_env(&acfg);
    if (qn_azure_cloud_parse(cfg->azure.cloud, &acfg.cloud) != QN_OK) {
        return qn_error_set(err, QN_ERR_CONFIG, "config key 'azure.cloud': unknown cloud");
    }
    const char *cred = cfg->azure.credential;
    if (strcmp(cred, "none") == 0) {
        return qn_error_set(err, QN_ERR_CONFIG,
                            "config key 'kafka_oauth' is \"azure\" but 'azure.credential' is "
                            "\"none\": choose secret, certificate, workload or managed");
    }
    acfg.credential = strcmp(cred, "certificate") == 0 ? QN_AZURE_CRED_CERTIFICATE
                      : strcmp(cred, "workload") == 0  ? QN_AZURE_CRED_WORKLOAD
                      : strcmp(cred, "managed") == 0   ? QN_AZURE_CRED_MANAGED
                                                       : QN_AZURE_CRED_SECRET;
#define OVERRIDE(field, value) \
    if ((value)[0] != '\0') {  \
        acfg.field = (value);  \
    }
    OVERRIDE(tenant_id, cfg->azure.tenant_id);
    OVERRIDE(client_id, cfg->azure.client_id);
    OVERRIDE(certificate_file, cfg->azure.certificate_file);
    OVERRIDE(private_key_file, cfg->azure.private_key_file);
    OVERRIDE(federated_token_file, cfg->azure.federated_token_file);
    OVERRIDE(endpoints.authority, cfg->azure.endpoints.authority);
    OVERRIDE(endpoints.arm, cfg->azure.endpoints.arm);
    OVERRIDE(endpoints.graph, cfg->azure.endpoints.graph);
    OVERRIDE(endpoints.imds, cfg->azure.endpoints.imds);
#undef OVERRIDE
    acfg.endpoints.audiences[QN_AZURE_EVENTHUBS] = audience;

    ko->principal =
        qn_strdup(acfg.client_id != NULL && acfg.client_id[0] != '\0' ? acfg.client_id : "quench");
    if (ko->principal == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    }
    char *secret = NULL;
    if (acfg.credential == QN_AZURE_CRED_SECRET) {
        secret = read_secret(cfg->azure.client_secret_file);
        if (secret == NULL) {
            return qn_error_set(
                err, QN_ERR_CONFIG,
                "config key 'azure.client_secret_file': cannot read the secret file");
        }
        acfg.client_secret = secret;
    }
    rc = qn_azure_new(ko->http, &acfg, &ko->azure, err);
    qn_free_secret(secret);
    return rc;
}

qn_err_t qn_kafka_oauth_new(struct qn_loop *loop,
                            const struct qn_config *cfg,
                            struct qn_kafka_oauth **out,
                            struct qn_error *err)
{
    struct qn_kafka_oauth *ko = qn_calloc(1, sizeof(*ko));
    if (ko == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    }
    ko->loop = loop;
    char ns[300];
    bool have_ns = namespace_audience(cfg, ns, sizeof(ns));
    qn_err_t rc = make_azure(ko, cfg, have_ns ? ns : NULL, err);
    if (rc == QN_OK) {
        enum qn_azure_cloud cloud = QN_AZURE_CLOUD_PUBLIC;
        if (qn_azure_cloud_parse(cfg->azure.cloud, &cloud) != QN_OK) {
            cloud = QN_AZURE_CLOUD_PUBLIC; /* not reached: make_azure checked it */
        }
        struct qn_azure_endpoints preset;
        qn_azure_endpoints_preset(cloud, &preset);
        const char *aud = have_ns ? ns : preset.audiences[QN_AZURE_EVENTHUBS];
        size_t len = strlen(aud) + strlen(SCOPE_SUFFIX) + 1;
        ko->scope = qn_malloc(len);
        if (ko->scope == NULL) {
            rc = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        } else {
            snprintf(ko->scope, len, "%s%s", aud, SCOPE_SUFFIX);
        }
    }
    if (rc != QN_OK) {
        qn_kafka_oauth_free(ko);
        return rc;
    }
    QN_LOG_INFO("kafka", "SASL/OAUTHBEARER tokens from Entra ID (azure.credential %s), scope %s",
                cfg->azure.credential, ko->scope);
    *out = ko;
    return QN_OK;
}

void qn_kafka_oauth_free(struct qn_kafka_oauth *ko)
{
    if (ko == NULL) {
        return;
    }
    qn_azure_free(ko->azure); /* cancels token requests: no callbacks, no librdkafka calls */
    qn_http_free(ko->http);
    qn_free(ko->principal);
    qn_free(ko->scope);
    qn_free(ko);
}
