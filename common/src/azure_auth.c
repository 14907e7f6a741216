/*
 * azure_auth.c - token acquisition and caching for the four Azure credentials, and the ARM/Graph
 * request gate (rate limit, then bearer token) on top of the qn_http call engine.
 *
 * Token cache invariants, per audience: at most one token request in flight; waiters queue FIFO
 * and are served only from the loop (the notify timer, or the token response), never from inside
 * the function that queued them; after a failure no new request starts before retry_at, and
 * waiters that find no usable token get the last error at once. The refresh timer is armed for
 * the proactive refresh (or the background retry while a cached token is still usable).
 *
 * Per-call state (struct azure_call) is the gate's opaque: it is created by qn_azure_request,
 * linked in the client's list, and freed by the engine's release hook, which also drops a queued
 * rate-limit waiter or token waiter. Every secret string is freed with qn_free_secret.
 */
#include "qn/azure_auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "qn/log.h"
#include "qn/mem.h"
#include "qn/resid.h"
#include "qn/timefmt.h"

#define DEFAULT_SKEW_MS          ((int64_t)5 * 60 * 1000)
#define DEFAULT_TOKEN_TIMEOUT_MS 15000
#define MIN_RETRY_DELAY_MS       100
#define TOKEN_BODY_MAX           ((size_t)128 * 1024)
#define TOKEN_RESPONSE_MAX       ((size_t)256 * 1024)
#define FED_TOKEN_MAX            ((size_t)64 * 1024)
#define MAX_TOKEN_LIFETIME_S     86400
#define SCOPE_LEN                64
#define ORIGIN_LEN               256

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct token_cache;

struct token_waiter {
    struct token_cache *cache;
    struct token_waiter *prev;
    struct token_waiter *next;
    uint64_t seq;
    bool linked;
    void (*deliver)(struct token_waiter *w,
                    const char *token,
                    int64_t expires_epoch_ms,
                    const struct qn_error *err);
};

struct qn_azure_token_req {
    struct token_waiter w;
    qn_azure_token_fn fn;
    void *opaque;
};

struct token_cache {
    struct qn_azure *az;
    enum qn_azure_audience aud;
    char *token; /* secret */
    int64_t usable_until;
    int64_t refresh_at;
    int64_t expires_epoch_ms;
    struct qn_http_req *inflight;
    struct token_waiter *head;
    struct token_waiter *tail;
    uint64_t next_seq;
    unsigned failures;
    int64_t retry_at;
    struct qn_error last_err;
    struct qn_loop_timer *refresh_timer;
    struct qn_loop_timer *notify_timer;
    struct qn_azure_token_stats stats;
};

struct azure_call {
    struct qn_azure *az;
    struct azure_call *prev;
    struct azure_call *next;
    struct qn_http_call *call;
    enum qn_azure_audience aud;
    bool fixed_scope;
    char scope[SCOPE_LEN];
    enum qn_ratelimit_class cls;
    struct qn_ratelimit_waiter *rlw;
    struct token_waiter tw;
};

struct qn_azure {
    struct qn_http *http;
    struct qn_loop *loop;
    enum qn_azure_credential cred;
    char *authority;
    char *arm;
    char *graph;
    char *imds;
    char *audiences[QN_AZURE_AUDIENCE__COUNT];
    char arm_origin[ORIGIN_LEN];
    char graph_origin[ORIGIN_LEN];
    char *tenant;
    char *client_id;
    char *secret;
    char *fed_file;
    struct qn_jwt_signer *signer;
    enum qn_jwt_alg alg;
    bool x5t_sha1;
    int64_t skew_ms;
    int64_t token_timeout_ms;
    struct qn_backoff token_backoff;
    struct qn_http_call_opts call_opts;
    struct qn_ratelimit *rl;
    struct token_cache caches[QN_AZURE_AUDIENCE__COUNT];
    struct azure_call *calls;
    char principal[SCOPE_LEN];
};

static const char *const audience_names[QN_AZURE_AUDIENCE__COUNT] = {"arm", "graph", "eventhubs"};
static const char *const cred_names[] = {"client secret", "client certificate", "workload identity",
                                         "managed identity"};

/* ---- configuration ---- */

void qn_azure_endpoints_preset(enum qn_azure_cloud cloud, struct qn_azure_endpoints *out)
{
    memset(out, 0, sizeof(*out));
    out->imds = "http://169.254.169.254";
    /* The Event Hubs audience of the sovereign clouds is not confirmed by the reference; it is
     * configurable. */
    out->audiences[QN_AZURE_EVENTHUBS] = "https://eventhubs.azure.net";
    switch (cloud) {
    case QN_AZURE_CLOUD_USGOV:
        out->authority = "https://login.microsoftonline.us";
        out->arm = "https://management.usgovcloudapi.net";
        out->graph = "https://graph.microsoft.us";
        break;
    case QN_AZURE_CLOUD_CHINA:
        out->authority = "https://login.chinacloudapi.cn";
        out->arm = "https://management.chinacloudapi.cn";
        out->graph = "https://microsoftgraph.chinacloudapi.cn";
        break;
    case QN_AZURE_CLOUD_PUBLIC:
    default:
        out->authority = "https://login.microsoftonline.com";
        out->arm = "https://management.azure.com";
        out->graph = "https://graph.microsoft.com";
        break;
    }
    out->audiences[QN_AZURE_ARM] = out->arm;
    out->audiences[QN_AZURE_GRAPH] = out->graph;
}

qn_err_t qn_azure_cloud_parse(const char *name, enum qn_azure_cloud *out)
{
    if (strcasecmp(name, "public") == 0 || strcasecmp(name, "AzurePublicCloud") == 0) {
        *out = QN_AZURE_CLOUD_PUBLIC;
    } else if (strcasecmp(name, "usgov") == 0 || strcasecmp(name, "AzureUSGovernment") == 0) {
        *out = QN_AZURE_CLOUD_USGOV;
    } else if (strcasecmp(name, "china") == 0 || strcasecmp(name, "AzureChinaCloud") == 0) {
        *out = QN_AZURE_CLOUD_CHINA;
    } else {
        return QN_ERR_CONFIG;
    }
    return QN_OK;
}

void qn_azure_config_default(struct qn_azure_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->cloud = QN_AZURE_CLOUD_PUBLIC;
    cfg->credential = QN_AZURE_CRED_SECRET;
    cfg->assertion_alg = QN_JWT_RS256;
    cfg->refresh_skew_ms = DEFAULT_SKEW_MS;
    cfg->token_timeout_ms = DEFAULT_TOKEN_TIMEOUT_MS;
    cfg->token_backoff.base_ms = 1000;
    cfg->token_backoff.cap_ms = 60000;
    qn_ratelimit_config_default(&cfg->ratelimit);
    qn_http_call_opts_default(&cfg->call_opts);
}

bool qn_azure_config_from_env(struct qn_azure_config *cfg)
{
    /* Read once at start-up, before other threads exist. */
    const char *client = getenv("AZURE_CLIENT_ID");          /* NOLINT(concurrency-mt-unsafe) */
    const char *tenant = getenv("AZURE_TENANT_ID");          /* NOLINT(concurrency-mt-unsafe) */
    const char *authority = getenv("AZURE_AUTHORITY_HOST");  /* NOLINT(concurrency-mt-unsafe) */
    const char *file = getenv("AZURE_FEDERATED_TOKEN_FILE"); /* NOLINT(concurrency-mt-unsafe) */
    if (client != NULL && client[0] != '\0') {
        cfg->client_id = client;
    }
    if (tenant != NULL && tenant[0] != '\0') {
        cfg->tenant_id = tenant;
    }
    if (authority != NULL && authority[0] != '\0') {
        cfg->endpoints.authority = authority;
    }
    if (file != NULL && file[0] != '\0') {
        cfg->federated_token_file = file;
        cfg->credential = QN_AZURE_CRED_WORKLOAD;
        return true;
    }
    return false;
}

/* Copies an endpoint without trailing slashes. */
static char *copy_endpoint(const char *s)
{
    size_t len = strlen(s);
    while (len > 0 && s[len - 1] == '/') {
        len--;
    }
    return qn_strndup(s, len);
}

static bool tenant_ok(const char *t)
{
    size_t len = strlen(t);
    if (len == 0 || len > 128) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!isalnum(c) && c != '-' && c != '.') {
            return false;
        }
    }
    return strstr(t, "..") == NULL && t[0] != '.';
}

static qn_err_t check_endpoint(const char *name,
                               const char *url,
                               bool allow_plain,
                               char *origin,
                               size_t origin_size,
                               struct qn_error *err)
{
    char tmp[ORIGIN_LEN];
    if (origin == NULL) {
        origin = tmp;
        origin_size = sizeof(tmp);
    }
    if (qn_http_url_origin(url, origin, origin_size) != QN_OK ||
        (!allow_plain && strncmp(origin, "https://", 8) != 0) || strchr(url, '?') != NULL ||
        strchr(url, '#') != NULL) {
        return qn_error_set(err, QN_ERR_CONFIG, "endpoint %s must be an %s URL without query: %s",
                            name, allow_plain ? "http(s)" : "https", url);
    }
    return QN_OK;
}

static qn_err_t
copy_config(struct qn_azure *az, const struct qn_azure_config *cfg, struct qn_error *err)
{
    struct qn_azure_endpoints ep;
    qn_azure_endpoints_preset(cfg->cloud, &ep);
    const struct qn_azure_endpoints *o = &cfg->endpoints;
    az->authority = copy_endpoint(o->authority != NULL ? o->authority : ep.authority);
    az->arm = copy_endpoint(o->arm != NULL ? o->arm : ep.arm);
    az->graph = copy_endpoint(o->graph != NULL ? o->graph : ep.graph);
    az->imds = copy_endpoint(o->imds != NULL ? o->imds : ep.imds);
    bool ok = az->authority != NULL && az->arm != NULL && az->graph != NULL && az->imds != NULL;
    for (int i = 0; i < QN_AZURE_AUDIENCE__COUNT; i++) {
        az->audiences[i] =
            copy_endpoint(o->audiences[i] != NULL ? o->audiences[i] : ep.audiences[i]);
        ok = ok && az->audiences[i] != NULL;
    }
    if (cfg->tenant_id != NULL) {
        az->tenant = qn_strdup(cfg->tenant_id);
        ok = ok && az->tenant != NULL;
    }
    if (cfg->client_id != NULL) {
        az->client_id = qn_strdup(cfg->client_id);
        ok = ok && az->client_id != NULL;
    }
    if (cfg->client_secret != NULL) {
        az->secret = qn_strdup(cfg->client_secret);
        ok = ok && az->secret != NULL;
    }
    if (cfg->federated_token_file != NULL) {
        az->fed_file = qn_strdup(cfg->federated_token_file);
        ok = ok && az->fed_file != NULL;
    }
    if (!ok) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot copy the azure configuration");
    }
    qn_err_t rc = check_endpoint("authority", az->authority, false, NULL, 0, err);
    if (rc == QN_OK) {
        rc = check_endpoint("arm", az->arm, false, az->arm_origin, sizeof(az->arm_origin), err);
    }
    if (rc == QN_OK) {
        rc = check_endpoint("graph", az->graph, false, az->graph_origin, sizeof(az->graph_origin),
                            err);
    }
    if (rc == QN_OK) {
        rc = check_endpoint("imds", az->imds, true, NULL, 0, err);
    }
    return rc;
}

static qn_err_t
check_credential(struct qn_azure *az, const struct qn_azure_config *cfg, struct qn_error *err)
{
    bool needs_app = cfg->credential != QN_AZURE_CRED_MANAGED;
    if (needs_app && (az->tenant == NULL || !tenant_ok(az->tenant))) {
        return qn_error_set(err, QN_ERR_CONFIG, "a valid tenant id is required for %s",
                            cred_names[cfg->credential]);
    }
    if ((needs_app || az->client_id != NULL) &&
        (az->client_id == NULL || !qn_is_guid(az->client_id))) {
        return qn_error_set(err, QN_ERR_CONFIG, "the client id must be a GUID for %s",
                            cred_names[cfg->credential]);
    }
    switch (cfg->credential) {
    case QN_AZURE_CRED_SECRET:
        if (az->secret == NULL || az->secret[0] == '\0') {
            return qn_error_set(err, QN_ERR_CONFIG, "client secret credential without a secret");
        }
        return QN_OK;
    case QN_AZURE_CRED_CERTIFICATE:
        if (cfg->certificate_file == NULL) {
            return qn_error_set(err, QN_ERR_CONFIG, "certificate credential without a file");
        }
        return qn_jwt_signer_load(cfg->certificate_file, cfg->private_key_file, &az->signer, err);
    case QN_AZURE_CRED_WORKLOAD:
        if (az->fed_file == NULL || az->fed_file[0] == '\0') {
            return qn_error_set(err, QN_ERR_CONFIG,
                                "workload identity without AZURE_FEDERATED_TOKEN_FILE");
        }
        return QN_OK;
    case QN_AZURE_CRED_MANAGED:
        return QN_OK;
    default:
        return qn_error_set(err, QN_ERR_CONFIG, "unknown credential kind %d", (int)cfg->credential);
    }
}

/* ---- token cache ---- */

void qn_azure_token_schedule(int64_t now_ms,
                             int64_t lifetime_ms,
                             int64_t skew_ms,
                             int64_t *refresh_at_ms,
                             int64_t *usable_until_ms)
{
    int64_t margin = lifetime_ms / 10 < 30000 ? lifetime_ms / 10 : 30000;
    *usable_until_ms = now_ms + lifetime_ms - margin;
    int64_t refresh = lifetime_ms >= 2 * skew_ms ? lifetime_ms - skew_ms : lifetime_ms / 2;
    *refresh_at_ms = now_ms + refresh;
}

static bool token_usable(const struct token_cache *c, int64_t now)
{
    return c->token != NULL && now < c->usable_until;
}

static void waiter_link(struct token_cache *c, struct token_waiter *w)
{
    w->cache = c;
    w->seq = c->next_seq++;
    w->next = NULL;
    w->prev = c->tail;
    if (c->tail != NULL) {
        c->tail->next = w;
    } else {
        c->head = w;
    }
    c->tail = w;
    w->linked = true;
}

static void waiter_unlink(struct token_waiter *w)
{
    if (!w->linked) {
        return;
    }
    struct token_cache *c = w->cache;
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        c->head = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    } else {
        c->tail = w->prev;
    }
    w->prev = NULL;
    w->next = NULL;
    w->linked = false;
}

/* Serves the waiters queued so far; callbacks may queue new ones (served later) or cancel. */
static void serve(struct token_cache *c, const struct qn_error *err)
{
    struct qn_error nomem = {0};
    char *token = NULL;
    if (err == NULL) {
        token = qn_strdup(c->token);
        if (token == NULL) {
            qn_error_set(&nomem, QN_ERR_NOMEM, "cannot copy the token");
            err = &nomem;
        }
    }
    struct qn_error err_copy;
    if (err != NULL && err != &nomem) {
        err_copy = *err; /* c->last_err may change while serving */
        err = &err_copy;
    }
    int64_t expires = c->expires_epoch_ms;
    uint64_t limit = c->next_seq;
    while (c->head != NULL && c->head->seq < limit) {
        struct token_waiter *w = c->head;
        waiter_unlink(w);
        if (err == NULL) {
            c->stats.served++;
        }
        w->deliver(w, token, expires, err);
    }
    qn_free_secret(token);
}

static void start_refresh(struct token_cache *c);

static void dispatch(struct token_cache *c)
{
    if (c->head == NULL) {
        return;
    }
    int64_t now = qn_clock_ms();
    if (token_usable(c, now)) {
        if (now >= c->refresh_at && c->inflight == NULL && now >= c->retry_at) {
            start_refresh(c);
        }
        if (token_usable(c, qn_clock_ms())) {
            serve(c, NULL);
        }
        return;
    }
    if (c->inflight != NULL) {
        return;
    }
    if (now < c->retry_at) {
        serve(c, &c->last_err);
        return;
    }
    start_refresh(c);
}

static void on_notify(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    dispatch(opaque);
}

static void on_refresh_timer(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    struct token_cache *c = opaque;
    int64_t now = qn_clock_ms();
    if (c->inflight == NULL && now >= c->retry_at && (token_usable(c, now) || c->head != NULL)) {
        start_refresh(c);
    }
}

static void token_failed(struct token_cache *c, const struct qn_error *err, int64_t retry_after)
{
    struct qn_azure *az = c->az;
    c->failures++;
    c->stats.failures++;
    int64_t delay = qn_backoff_next_ms(&az->token_backoff, c->failures - 1, retry_after);
    if (delay < MIN_RETRY_DELAY_MS) {
        delay = MIN_RETRY_DELAY_MS;
    }
    int64_t now = qn_clock_ms();
    c->retry_at = now + delay;
    qn_error_set(&c->last_err, err->code, "%s token unavailable: %s", audience_names[c->aud],
                 err->msg);
    QN_LOG_WARN("azure_auth",
                "%s token via %s failed (%u in a row, next try in %" PRId64 " ms): %s",
                audience_names[c->aud], cred_names[az->cred], c->failures, delay, err->msg);
    if (token_usable(c, now)) {
        qn_loop_timer_arm(c->refresh_timer, delay);
    }
    /* Waiters learn the outcome from the loop, never from inside start_refresh. */
    qn_loop_timer_arm(c->notify_timer, 0);
}

static void token_acquired(struct token_cache *c, char *token, int64_t expires_in_s)
{
    struct qn_azure *az = c->az;
    int64_t now = qn_clock_ms();
    int64_t lifetime = expires_in_s * 1000;
    qn_free_secret(c->token);
    c->token = token;
    qn_azure_token_schedule(now, lifetime, az->skew_ms, &c->refresh_at, &c->usable_until);
    c->expires_epoch_ms = qn_time_epoch_ms() + lifetime;
    c->failures = 0;
    c->retry_at = 0;
    qn_loop_timer_arm(c->refresh_timer, c->refresh_at - now);
    QN_LOG_INFO("azure_auth", "%s token acquired via %s, valid %" PRId64 " s",
                audience_names[c->aud], cred_names[az->cred], expires_in_s);
    dispatch(c);
}

static qn_err_t parse_expiry(const cJSON *item, int64_t *out)
{
    double v = 0;
    if (cJSON_IsNumber(item)) {
        v = item->valuedouble;
    } else if (cJSON_IsString(item) && item->valuestring != NULL) {
        const char *s = item->valuestring;
        if (s[0] == '\0' || strlen(s) > 18) {
            return QN_ERR_PARSE;
        }
        int64_t n = 0;
        for (const char *p = s; *p != '\0'; p++) {
            if (*p < '0' || *p > '9') {
                return QN_ERR_PARSE;
            }
            n = n * 10 + (*p - '0');
        }
        v = (double)n;
    } else {
        return QN_ERR_PARSE;
    }
    if (!(v >= 0 && v < 1e15)) {
        return QN_ERR_PARSE;
    }
    *out = (int64_t)v;
    return QN_OK;
}

qn_err_t qn_azure_token_response_parse(
    const char *body, size_t len, char **token, int64_t *expires_in_s, struct qn_error *err)
{
    cJSON *root = cJSON_ParseWithLength(body != NULL ? body : "", len);
    qn_err_t rc = QN_OK;
    int64_t expires = 0;
    char *copy = NULL;
    cJSON *tok = NULL;
    const cJSON *type = NULL;
    const cJSON *in = NULL;
    if (!cJSON_IsObject(root)) {
        rc = qn_error_set(err, QN_ERR_PARSE, "token response is not a JSON object");
        goto out;
    }
    tok = cJSON_GetObjectItemCaseSensitive(root, "access_token");
    type = cJSON_GetObjectItemCaseSensitive(root, "token_type");
    if (!cJSON_IsString(tok) || tok->valuestring == NULL || tok->valuestring[0] == '\0') {
        rc = qn_error_set(err, QN_ERR_PARSE, "token response without access_token");
        goto out;
    }
    for (const char *p = tok->valuestring; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            rc = qn_error_set(err, QN_ERR_PARSE,
                              "access_token holds a byte not allowed in a "
                              "header");
            goto out;
        }
    }
    if (type != NULL && (!cJSON_IsString(type) || strcasecmp(type->valuestring, "Bearer") != 0)) {
        rc = qn_error_set(err, QN_ERR_PARSE, "token_type is not Bearer");
        goto out;
    }
    in = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    if (in != NULL) {
        rc = parse_expiry(in, &expires);
    } else {
        int64_t on = 0;
        rc = parse_expiry(cJSON_GetObjectItemCaseSensitive(root, "expires_on"), &on);
        expires = on - qn_time_epoch_ms() / 1000;
    }
    if (rc != QN_OK || expires <= 0) {
        rc = qn_error_set(err, QN_ERR_PARSE, "token response without a usable expires_in");
        goto out;
    }
    copy = qn_strdup(tok->valuestring);
    if (copy == NULL) {
        rc = qn_error_set(err, QN_ERR_NOMEM, "cannot copy the token");
        goto out;
    }
    *token = copy;
    *expires_in_s = expires > MAX_TOKEN_LIFETIME_S ? MAX_TOKEN_LIFETIME_S : expires;
out:
    if (cJSON_IsString(tok) && tok->valuestring != NULL) {
        OPENSSL_cleanse(tok->valuestring, strlen(tok->valuestring));
    }
    cJSON_Delete(root);
    return rc;
}

static void
on_token_response(struct qn_http_response *resp, const struct qn_error *err, void *opaque)
{
    struct token_cache *c = opaque;
    c->inflight = NULL;
    struct qn_error e = {0};
    if (err != NULL) {
        /* A rejected credential is an auth failure, whatever the status says. */
        qn_err_t code = err->code == QN_ERR_HTTP_PERMANENT || err->code == QN_ERR_NOT_FOUND
                            ? QN_ERR_AUTH
                            : err->code;
        qn_error_set(&e, code, "%s", err->msg);
        token_failed(c, &e, resp->retry_after_ms);
        return;
    }
    char *token = NULL;
    int64_t expires_in = 0;
    if (qn_azure_token_response_parse(resp->body.data, resp->body.len, &token, &expires_in, &e) !=
        QN_OK) {
        e.code = QN_ERR_AUTH;
        token_failed(c, &e, -1);
        return;
    }
    token_acquired(c, token, expires_in);
}

/* Reads the projected service-account token afresh; kubelet rotates it. */
static qn_err_t read_federated_token(const char *path, char **out, struct qn_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        qn_error_set(err, QN_ERR_IO, "cannot open the federated token file %s (errno %d)", path, e);
        if (err != NULL) {
            err->sys_errno = e;
        }
        return QN_ERR_IO;
    }
    char *data = qn_malloc(FED_TOKEN_MAX + 1);
    if (data == NULL) {
        close(fd);
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate the federated token buffer");
    }
    size_t len = 0;
    qn_err_t rc = QN_OK;
    while (len < FED_TOKEN_MAX) {
        ssize_t n = read(fd, data + len, FED_TOKEN_MAX - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = qn_error_set(err, QN_ERR_IO, "cannot read the federated token file %s", path);
            break;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    while (rc == QN_OK && len > 0 && isspace((unsigned char)data[len - 1])) {
        len--;
    }
    data[len] = '\0';
    if (rc == QN_OK && (len == 0 || len >= FED_TOKEN_MAX)) {
        rc = qn_error_set(err, QN_ERR_IO, "the federated token file %s is empty or too big", path);
    }
    if (rc != QN_OK) {
        OPENSSL_cleanse(data, FED_TOKEN_MAX + 1);
        qn_free(data);
        return rc;
    }
    *out = data;
    return QN_OK;
}

static qn_err_t form_add(struct qn_buf *body, const char *name, const char *value)
{
    qn_err_t rc = QN_OK;
    if (body->len > 0) {
        rc = qn_buf_append_char(body, '&');
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_str(body, name);
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_char(body, '=');
    }
    if (rc == QN_OK) {
        rc = qn_http_pct_encode(body, value, strlen(value));
    }
    return rc;
}

/* Builds the body of a client-credentials token request into @p body (secret). */
static qn_err_t
build_form(struct token_cache *c, const char *token_url, struct qn_buf *body, struct qn_error *err)
{
    struct qn_azure *az = c->az;
    char scope[512];
    (void)snprintf(scope, sizeof(scope), "%s/.default", az->audiences[c->aud]);
    char *assertion = NULL;
    qn_err_t rc = QN_OK;
    if (az->cred == QN_AZURE_CRED_CERTIFICATE) {
        rc = qn_jwt_client_assertion(az->signer, az->alg, az->x5t_sha1 ? QN_JWT_X5T_SHA1 : 0,
                                     az->client_id, token_url, qn_time_epoch_ms() / 1000,
                                     &assertion, err);
    } else if (az->cred == QN_AZURE_CRED_WORKLOAD) {
        rc = read_federated_token(az->fed_file, &assertion, err);
    }
    if (rc != QN_OK) {
        return rc;
    }
    rc = form_add(body, "grant_type", "client_credentials");
    if (rc == QN_OK) {
        rc = form_add(body, "client_id", az->client_id);
    }
    if (rc == QN_OK) {
        rc = form_add(body, "scope", scope);
    }
    if (rc == QN_OK && az->cred == QN_AZURE_CRED_SECRET) {
        rc = form_add(body, "client_secret", az->secret);
    }
    if (rc == QN_OK && assertion != NULL) {
        rc = form_add(body, "client_assertion_type",
                      "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        if (rc == QN_OK) {
            rc = form_add(body, "client_assertion", assertion);
        }
    }
    qn_free_secret(assertion);
    if (rc != QN_OK) {
        return qn_error_set(err, rc, "cannot build the token request");
    }
    return QN_OK;
}

/* The IMDS GET: {imds}/metadata/identity/oauth2/token?api-version&resource[&client_id]. */
static qn_err_t build_imds_request(struct token_cache *c,
                                   struct qn_buf *url,
                                   struct qn_http_request *req,
                                   struct qn_error *err)
{
    struct qn_azure *az = c->az;
    char resource[512];
    (void)snprintf(resource, sizeof(resource), "%s/", az->audiences[c->aud]);
    qn_err_t rc = qn_buf_printf(url, "%s/metadata/identity/oauth2/token", az->imds);
    if (rc == QN_OK) {
        rc = qn_http_query_append(url, "api-version", "2018-02-01");
    }
    if (rc == QN_OK) {
        rc = qn_http_query_append(url, "resource", resource);
    }
    if (rc == QN_OK && az->client_id != NULL) {
        rc = qn_http_query_append(url, "client_id", az->client_id);
    }
    req->method = "GET";
    req->flags |= strncmp(az->imds, "http://", 7) == 0 ? QN_HTTP_ALLOW_PLAIN : 0;
    return rc == QN_OK ? QN_OK : qn_error_set(err, rc, "cannot build the IMDS URL");
}

/* The client-credentials POST to {authority}/{tenant}/oauth2/v2.0/token. */
static qn_err_t build_token_post(struct token_cache *c,
                                 struct qn_buf *url,
                                 struct qn_buf *body,
                                 struct qn_http_request *req,
                                 struct qn_error *err)
{
    struct qn_azure *az = c->az;
    qn_err_t rc = qn_buf_printf(url, "%s/%s/oauth2/v2.0/token", az->authority, az->tenant);
    if (rc != QN_OK) {
        return qn_error_set(err, rc, "cannot build the token URL");
    }
    rc = build_form(c, qn_buf_cstr(url), body, err);
    req->method = "POST";
    req->body = body->data;
    req->body_len = body->len;
    req->flags |= QN_HTTP_SECRET_BODY;
    return rc;
}

static void start_refresh(struct token_cache *c)
{
    struct qn_azure *az = c->az;
    struct qn_error err = {0};
    struct qn_buf url;
    struct qn_buf body;
    qn_buf_init(&url, QN_HTTP_MAX_URL);
    qn_buf_init(&body, TOKEN_BODY_MAX);
    /* Size the secret body at once: growing it would leave copies of the secret behind. */
    body.data = qn_malloc(body.max + 1);
    body.cap = body.data != NULL ? body.max + 1 : 0;
    if (body.data != NULL) {
        body.data[0] = '\0';
    }
    const char *headers[2] = {NULL, NULL};
    struct qn_http_request req = {
        .timeout_ms = az->token_timeout_ms,
        .max_body = TOKEN_RESPONSE_MAX,
        .flags = QN_HTTP_SECRET_RESPONSE,
        .headers = headers,
    };
    qn_err_t rc = body.data != NULL ? QN_OK : qn_error_set(&err, QN_ERR_NOMEM, "out of memory");
    if (rc == QN_OK && az->cred == QN_AZURE_CRED_MANAGED) {
        headers[0] = "Metadata: true";
        rc = build_imds_request(c, &url, &req, &err);
    } else if (rc == QN_OK) {
        headers[0] = "Content-Type: application/x-www-form-urlencoded";
        rc = build_token_post(c, &url, &body, &req, &err);
    }
    req.url = qn_buf_cstr(&url);
    if (rc == QN_OK) {
        rc = qn_http_submit(az->http, &req, on_token_response, c, &c->inflight, &err);
    }
    if (body.data != NULL) {
        OPENSSL_cleanse(body.data, body.cap);
    }
    qn_buf_fini(&body);
    qn_buf_fini(&url);
    if (rc != QN_OK) {
        c->inflight = NULL;
        token_failed(c, &err, -1);
        return;
    }
    c->stats.requests++;
    QN_LOG_DEBUG("azure_auth", "requesting the %s token via %s", audience_names[c->aud],
                 cred_names[az->cred]);
}

static void deliver_public(struct token_waiter *w,
                           const char *token,
                           int64_t expires_epoch_ms,
                           const struct qn_error *err)
{
    struct qn_azure_token_req *req = CONTAINER_OF(w, struct qn_azure_token_req, w);
    qn_azure_token_fn fn = req->fn;
    void *opaque = req->opaque;
    qn_free(req);
    fn(token, expires_epoch_ms, err, opaque);
}

qn_err_t qn_azure_token_get(struct qn_azure *az,
                            enum qn_azure_audience audience,
                            qn_azure_token_fn fn,
                            void *opaque,
                            struct qn_azure_token_req **out,
                            struct qn_error *err)
{
    if ((int)audience < 0 || audience >= QN_AZURE_AUDIENCE__COUNT || fn == NULL) {
        return qn_error_set(err, QN_ERR_INVALID, "bad token request");
    }
    struct qn_azure_token_req *req = qn_calloc(1, sizeof(*req));
    if (req == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a token request");
    }
    req->fn = fn;
    req->opaque = opaque;
    req->w.deliver = deliver_public;
    struct token_cache *c = &az->caches[audience];
    waiter_link(c, &req->w);
    qn_loop_timer_arm(c->notify_timer, 0);
    if (out != NULL) {
        *out = req;
    }
    return QN_OK;
}

void qn_azure_token_cancel(struct qn_azure_token_req *req)
{
    if (req == NULL) {
        return;
    }
    waiter_unlink(&req->w);
    qn_free(req);
}

void qn_azure_token_invalidate(struct qn_azure *az, enum qn_azure_audience audience)
{
    struct token_cache *c = &az->caches[audience];
    qn_free_secret(c->token);
    c->token = NULL;
    c->usable_until = 0;
    c->refresh_at = 0;
    qn_loop_timer_disarm(c->refresh_timer);
}

bool qn_azure_token_ready(const struct qn_azure *az, enum qn_azure_audience audience)
{
    return token_usable(&az->caches[audience], qn_clock_ms());
}

void qn_azure_token_stats(const struct qn_azure *az,
                          enum qn_azure_audience audience,
                          struct qn_azure_token_stats *out)
{
    *out = az->caches[audience].stats;
}

/* ---- client ---- */

qn_err_t qn_azure_new(struct qn_http *http,
                      const struct qn_azure_config *cfg,
                      struct qn_azure **out,
                      struct qn_error *err)
{
    struct qn_azure *az = qn_calloc(1, sizeof(*az));
    if (az == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate the azure client");
    }
    az->http = http;
    az->loop = qn_http_loop(http);
    az->cred = cfg->credential;
    az->alg = cfg->assertion_alg;
    az->x5t_sha1 = cfg->assertion_x5t_sha1;
    az->skew_ms = cfg->refresh_skew_ms > 0 ? cfg->refresh_skew_ms : DEFAULT_SKEW_MS;
    az->token_timeout_ms =
        cfg->token_timeout_ms > 0 ? cfg->token_timeout_ms : DEFAULT_TOKEN_TIMEOUT_MS;
    az->token_backoff = cfg->token_backoff;
    if (az->token_backoff.base_ms <= 0) {
        az->token_backoff.base_ms = 1000;
    }
    if (az->token_backoff.cap_ms < az->token_backoff.base_ms) {
        az->token_backoff.cap_ms =
            az->token_backoff.base_ms < 60000 ? 60000 : az->token_backoff.base_ms;
    }
    az->call_opts = cfg->call_opts;
    qn_err_t rc = QN_OK;
    if ((int)cfg->credential < 0 || cfg->credential > QN_AZURE_CRED_MANAGED) {
        rc = qn_error_set(err, QN_ERR_CONFIG, "unknown credential kind");
        goto fail;
    }
    rc = copy_config(az, cfg, err);
    if (rc == QN_OK) {
        rc = check_credential(az, cfg, err);
    }
    if (rc == QN_OK) {
        rc = qn_ratelimit_new(az->loop, &cfg->ratelimit, &az->rl, err);
    }
    for (int i = 0; rc == QN_OK && i < QN_AZURE_AUDIENCE__COUNT; i++) {
        struct token_cache *c = &az->caches[i];
        c->az = az;
        c->aud = (enum qn_azure_audience)i;
        rc = qn_loop_timer_new(az->loop, on_refresh_timer, c, &c->refresh_timer, err);
        if (rc == QN_OK) {
            rc = qn_loop_timer_new(az->loop, on_notify, c, &c->notify_timer, err);
        }
    }
    if (rc != QN_OK) {
        goto fail;
    }
    (void)snprintf(az->principal, sizeof(az->principal), "%s",
                   az->client_id != NULL ? az->client_id : "system-assigned");
    QN_LOG_INFO("azure_auth", "azure client ready: credential %s, arm %s, graph %s",
                cred_names[az->cred], az->arm, az->graph);
    *out = az;
    return QN_OK;
fail:
    qn_azure_free(az);
    return rc;
}

void qn_azure_free(struct qn_azure *az)
{
    if (az == NULL) {
        return;
    }
    while (az->calls != NULL) {
        struct azure_call *ac = az->calls;
        if (ac->call != NULL) {
            qn_http_call_cancel(ac->call); /* releases ac */
        } else {
            az->calls = ac->next;
            qn_free(ac);
        }
    }
    for (int i = 0; i < QN_AZURE_AUDIENCE__COUNT; i++) {
        struct token_cache *c = &az->caches[i];
        while (c->head != NULL) {
            struct token_waiter *w = c->head;
            waiter_unlink(w);
            /* Only public requests remain: calls were cancelled above. */
            qn_free(CONTAINER_OF(w, struct qn_azure_token_req, w));
        }
        qn_http_req_cancel(c->inflight);
        qn_loop_timer_free(c->refresh_timer);
        qn_loop_timer_free(c->notify_timer);
        qn_free_secret(c->token);
    }
    qn_ratelimit_free(az->rl);
    qn_jwt_signer_free(az->signer);
    qn_free_secret(az->secret);
    qn_free(az->fed_file);
    qn_free(az->tenant);
    qn_free(az->client_id);
    qn_free(az->authority);
    qn_free(az->arm);
    qn_free(az->graph);
    qn_free(az->imds);
    for (int i = 0; i < QN_AZURE_AUDIENCE__COUNT; i++) {
        qn_free(az->audiences[i]);
    }
    qn_free(az);
}

struct qn_ratelimit *qn_azure_ratelimit(const struct qn_azure *az)
{
    return az->rl;
}

/* ---- the request gate ---- */

static void admit_with_token(struct qn_http_call *call, const char *token)
{
    static const char prefix[] = "Authorization: Bearer ";
    size_t len = sizeof(prefix) - 1 + strlen(token);
    char *line = qn_malloc(len + 1);
    if (line == NULL) {
        struct qn_error err = {0};
        qn_error_set(&err, QN_ERR_NOMEM, "cannot build the Authorization header");
        qn_http_call_admit(call, NULL, &err);
        return;
    }
    memcpy(line, prefix, sizeof(prefix) - 1);
    memcpy(line + sizeof(prefix) - 1, token, len - (sizeof(prefix) - 1) + 1);
    qn_http_call_admit(call, line, NULL);
    qn_free_secret(line);
}

static void deliver_call(struct token_waiter *w,
                         const char *token,
                         int64_t expires_epoch_ms,
                         const struct qn_error *err)
{
    (void)expires_epoch_ms;
    struct azure_call *ac = CONTAINER_OF(w, struct azure_call, tw);
    if (err != NULL) {
        qn_http_call_admit(ac->call, NULL, err);
        return;
    }
    admit_with_token(ac->call, token);
}

static void want_auth(struct azure_call *ac)
{
    struct token_cache *c = &ac->az->caches[ac->aud];
    int64_t now = qn_clock_ms();
    if (token_usable(c, now)) {
        if (now >= c->refresh_at && c->inflight == NULL && now >= c->retry_at) {
            start_refresh(c); /* in the background: this call uses the cached token */
        }
        if (token_usable(c, qn_clock_ms())) {
            c->stats.served++;
            admit_with_token(ac->call, c->token);
            return;
        }
    }
    ac->tw.deliver = deliver_call;
    waiter_link(c, &ac->tw);
    qn_loop_timer_arm(c->notify_timer, 0);
}

static void on_rl_granted(void *opaque)
{
    struct azure_call *ac = opaque;
    ac->rlw = NULL;
    want_auth(ac);
}

/* Finds "/subscriptions/{guid}" in the path of @p url; writes it lower-cased or "". */
static void scope_from_url(const char *url, char *out, size_t size)
{
    out[0] = '\0';
    const char *p = strstr(url, "://");
    p = p != NULL ? strchr(p + 3, '/') : NULL;
    size_t path_len = p != NULL ? strcspn(p, "?#") : 0;
    static const char key[] = "/subscriptions/";
    for (size_t i = 0; p != NULL && i + sizeof(key) - 1 + 36 <= path_len; i++) {
        if (strncasecmp(p + i, key, sizeof(key) - 1) != 0) {
            continue;
        }
        char guid[37];
        memcpy(guid, p + i + sizeof(key) - 1, 36);
        guid[36] = '\0';
        char after = p[i + sizeof(key) - 1 + 36];
        if (qn_is_guid(guid) && (after == '/' || after == '\0' || after == '?' || after == '#') &&
            size > 36) {
            for (size_t k = 0; k < 36; k++) {
                out[k] = (char)tolower((unsigned char)guid[k]);
            }
            out[36] = '\0';
        }
        return;
    }
}

static void acquire_rate(struct azure_call *ac)
{
    struct qn_error err = {0};
    struct qn_ratelimit_waiter *w = NULL;
    if (qn_ratelimit_acquire(ac->az->rl, ac->scope, ac->az->principal, ac->cls, on_rl_granted, ac,
                             &w, &err) != QN_OK) {
        qn_http_call_admit(ac->call, NULL, &err);
        return;
    }
    if (w != NULL) {
        ac->rlw = w;
        return;
    }
    want_auth(ac);
}

/* First leg of the gate: make sure a token is at hand before taking a rate-limit token. */
static void deliver_prefetch(struct token_waiter *w,
                             const char *token,
                             int64_t expires_epoch_ms,
                             const struct qn_error *err)
{
    (void)token;
    (void)expires_epoch_ms;
    struct azure_call *ac = CONTAINER_OF(w, struct azure_call, tw);
    if (err != NULL) {
        qn_http_call_admit(ac->call, NULL, err);
        return;
    }
    acquire_rate(ac);
}

/*
 * The gate: bearer token first, then a rate-limit token, then the token again (cached by then)
 * for the header. Taking the rate-limit token last dates each grant at the moment the request
 * leaves, not before a token fetch that may take a while; otherwise the first grants of a bucket
 * run ahead of the server's bucket, which starts refilling when they arrive.
 */
static void gate_admit(struct qn_http_call *call, void *opaque)
{
    struct azure_call *ac = opaque;
    struct qn_azure *az = ac->az;
    ac->call = call;
    ac->cls = ac->aud == QN_AZURE_GRAPH ? QN_RATELIMIT_GRAPH
                                        : qn_ratelimit_class_for_method(qn_http_call_method(call));
    if (!ac->fixed_scope) {
        if (ac->aud == QN_AZURE_GRAPH) {
            (void)snprintf(ac->scope, sizeof(ac->scope), "%s",
                           az->tenant != NULL ? az->tenant : "");
        } else {
            scope_from_url(qn_http_call_url(call), ac->scope, sizeof(ac->scope));
        }
    }
    struct token_cache *c = &az->caches[ac->aud];
    if (token_usable(c, qn_clock_ms())) {
        acquire_rate(ac);
        return;
    }
    ac->tw.deliver = deliver_prefetch;
    waiter_link(c, &ac->tw);
    qn_loop_timer_arm(c->notify_timer, 0);
}

static void
gate_observe(struct qn_http_call *call, const struct qn_http_response *resp, void *opaque)
{
    (void)call;
    struct azure_call *ac = opaque;
    struct qn_azure *az = ac->az;
    if (resp->status == 401) {
        qn_azure_token_invalidate(az, ac->aud);
    }
    if (resp->status == 429 && resp->retry_after_ms > 0) {
        qn_ratelimit_pause(az->rl, ac->scope, az->principal, ac->cls, resp->retry_after_ms);
    }
    if (ac->aud != QN_AZURE_ARM) {
        return;
    }
    bool tenant = ac->scope[0] == '\0';
    int64_t remaining = -1;
    switch (ac->cls) {
    case QN_RATELIMIT_READ:
        remaining = resp->rl_remaining[tenant ? QN_HTTP_RL_TENANT_READS : QN_HTTP_RL_SUB_READS];
        break;
    case QN_RATELIMIT_WRITE:
        remaining = resp->rl_remaining[tenant ? QN_HTTP_RL_TENANT_WRITES : QN_HTTP_RL_SUB_WRITES];
        break;
    case QN_RATELIMIT_DELETE:
        remaining = resp->rl_remaining[QN_HTTP_RL_SUB_DELETES];
        break;
    default:
        break;
    }
    if (remaining >= 0) {
        qn_ratelimit_observe_remaining(az->rl, ac->scope, az->principal, ac->cls, remaining);
    }
}

static void gate_release(struct qn_http_call *call, void *opaque)
{
    (void)call;
    struct azure_call *ac = opaque;
    struct qn_azure *az = ac->az;
    qn_ratelimit_cancel(ac->rlw);
    ac->rlw = NULL;
    waiter_unlink(&ac->tw);
    if (ac->prev != NULL) {
        ac->prev->next = ac->next;
    } else {
        az->calls = ac->next;
    }
    if (ac->next != NULL) {
        ac->next->prev = ac->prev;
    }
    qn_free(ac);
}

/* Bytes allowed in a target: printable ASCII, no backslash or fragment, sane escapes. */
static qn_err_t
check_target_bytes(const char *target, size_t len, size_t path_len, struct qn_error *err)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '#') {
            return qn_error_set(err, QN_ERR_INVALID, "target holds a forbidden byte 0x%02x", c);
        }
        if (c != '%') {
            continue;
        }
        if (!isxdigit((unsigned char)target[i + 1]) || !isxdigit((unsigned char)target[i + 2])) {
            return qn_error_set(err, QN_ERR_INVALID, "bad percent escape in target");
        }
        bool hidden = strncasecmp(target + i, "%2e", 3) == 0 ||
                      strncasecmp(target + i, "%2f", 3) == 0 ||
                      strncasecmp(target + i, "%5c", 3) == 0 || strncmp(target + i, "%00", 3) == 0;
        if (i < path_len && hidden) {
            return qn_error_set(err, QN_ERR_INVALID, "encoded dot or slash in target path");
        }
    }
    return QN_OK;
}

/* A path from code: printable ASCII, no empty/dot segments, no encoded dots or slashes. */
static qn_err_t check_path(const char *target, struct qn_error *err)
{
    size_t len = strlen(target);
    size_t path_len = strcspn(target, "?");
    if (len == 0 || target[0] != '/' || len > QN_HTTP_MAX_URL - ORIGIN_LEN) {
        return qn_error_set(err, QN_ERR_INVALID, "target must be a path starting with /");
    }
    qn_err_t rc = check_target_bytes(target, len, path_len, err);
    if (rc != QN_OK) {
        return rc;
    }
    for (size_t i = 0; i < path_len;) {
        size_t seg = i + 1;
        size_t end = seg;
        while (end < path_len && target[end] != '/') {
            end++;
        }
        size_t n = end - seg;
        bool dots = (n == 1 && target[seg] == '.') ||
                    (n == 2 && target[seg] == '.' && target[seg + 1] == '.');
        if (n == 0 || dots) {
            return qn_error_set(err, QN_ERR_INVALID, "empty or dot segment in target path");
        }
        i = end;
    }
    return QN_OK;
}

static qn_err_t build_target(struct qn_azure *az,
                             const struct qn_azure_request *req,
                             struct qn_buf *url,
                             struct qn_error *err)
{
    const char *base = req->audience == QN_AZURE_ARM ? az->arm : az->graph;
    const char *origin = req->audience == QN_AZURE_ARM ? az->arm_origin : az->graph_origin;
    qn_err_t rc = QN_OK;
    if (req->target[0] == '/') {
        rc = check_path(req->target, err);
        if (rc == QN_OK && (qn_buf_append_str(url, base) != QN_OK ||
                            qn_buf_append_str(url, req->target) != QN_OK)) {
            rc = qn_error_set(err, QN_ERR_TOO_BIG, "target URL too long");
        }
        return rc;
    }
    char o[ORIGIN_LEN];
    if (qn_http_url_origin(req->target, o, sizeof(o)) != QN_OK || strcmp(o, origin) != 0) {
        return qn_error_set(err, QN_ERR_INVALID, "target URL is not on %s", origin);
    }
    if (qn_buf_append_str(url, req->target) != QN_OK) {
        return qn_error_set(err, QN_ERR_TOO_BIG, "target URL too long");
    }
    return QN_OK;
}

qn_err_t qn_azure_request(struct qn_azure *az,
                          const struct qn_azure_request *req,
                          qn_http_call_done_fn fn,
                          void *opaque,
                          struct qn_http_call **out,
                          struct qn_error *err)
{
    if ((req->audience != QN_AZURE_ARM && req->audience != QN_AZURE_GRAPH) || req->method == NULL ||
        req->target == NULL || fn == NULL) {
        return qn_error_set(err, QN_ERR_INVALID,
                            "an azure request needs ARM or Graph, a method, "
                            "a target and a callback");
    }
    for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
        if (strncasecmp(*h, "Authorization:", 14) == 0) {
            return qn_error_set(err, QN_ERR_INVALID, "the client sets Authorization itself");
        }
    }
    struct qn_buf url;
    qn_buf_init(&url, QN_HTTP_MAX_URL);
    qn_err_t rc = build_target(az, req, &url, err);
    if (rc != QN_OK) {
        qn_buf_fini(&url);
        return rc;
    }
    struct azure_call *ac = qn_calloc(1, sizeof(*ac));
    if (ac == NULL) {
        qn_buf_fini(&url);
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate an azure call");
    }
    ac->az = az;
    ac->aud = req->audience;
    if (req->scope != NULL) {
        ac->fixed_scope = true;
        (void)snprintf(ac->scope, sizeof(ac->scope), "%s", req->scope);
    }
    ac->next = az->calls;
    if (az->calls != NULL) {
        az->calls->prev = ac;
    }
    az->calls = ac;
    struct qn_http_gate gate = {
        .admit = gate_admit,
        .observe = gate_observe,
        .release = gate_release,
        .opaque = ac,
    };
    struct qn_http_call_spec spec = {
        .req =
            {
                .method = req->method,
                .url = qn_buf_cstr(&url),
                .headers = req->headers,
                .body = req->body,
                .body_len = req->body_len,
                .timeout_ms = req->timeout_ms,
                .max_body = req->max_body,
                .client_request_id = req->client_request_id,
            },
        .flags = req->flags,
        .opts = req->opts != NULL ? req->opts : &az->call_opts,
        .gate = &gate,
        .page_fn = req->page_fn,
    };
    struct qn_http_call *call = NULL;
    /* On failure the engine has already released (and freed) ac. */
    rc = qn_http_call_start(az->http, &spec, fn, opaque, &call, err);
    qn_buf_fini(&url);
    if (rc != QN_OK) {
        return rc;
    }
    ac->call = call;
    if (out != NULL) {
        *out = call;
    }
    return QN_OK;
}

/* ---- paths ---- */

/* A literal path from code: "/seg/seg", segments of [A-Za-z0-9._-], no "." or "..". */
static bool literal_path_ok(const char *s)
{
    if (s[0] != '/') {
        return false;
    }
    size_t n = 0;
    for (const char *p = s + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            if (n == 0) {
                return false;
            }
            if ((n == 1 && p[-1] == '.') || (n == 2 && p[-1] == '.' && p[-2] == '.')) {
                return false;
            }
            if (*p == '\0') {
                return true;
            }
            n = 0;
            continue;
        }
        unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
            return false;
        }
        n++;
    }
}

static void truncate_to(struct qn_buf *out, size_t mark)
{
    out->len = mark;
    if (out->data != NULL) {
        out->data[mark] = '\0';
    }
}

qn_err_t qn_azure_arm_path(struct qn_buf *out,
                           const char *resource_id,
                           int resid_flags,
                           const char *suffix,
                           const char *api_version,
                           struct qn_error *err)
{
    struct qn_resid rid;
    qn_err_t rc = qn_resid_parse(resource_id, resid_flags, &rid, err);
    if (rc != QN_OK) {
        return rc;
    }
    if (suffix != NULL && !literal_path_ok(suffix)) {
        return qn_error_set(err, QN_ERR_INVALID, "bad literal path suffix");
    }
    size_t vlen = api_version != NULL ? strlen(api_version) : 0;
    if (vlen == 0 || vlen > 32) {
        return qn_error_set(err, QN_ERR_INVALID, "bad api-version");
    }
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)api_version[i];
        if (!isalnum(c) && c != '-' && c != '.') {
            return qn_error_set(err, QN_ERR_INVALID, "bad api-version");
        }
    }
    size_t mark = out->len;
    rc = qn_resid_append_path(out, resource_id);
    if (rc == QN_OK && suffix != NULL) {
        rc = qn_buf_append_str(out, suffix);
    }
    if (rc == QN_OK) {
        rc = qn_http_query_append(out, "api-version", api_version);
    }
    if (rc != QN_OK) {
        truncate_to(out, mark);
        return qn_error_set(err, rc, "ARM path too long");
    }
    return QN_OK;
}

qn_err_t qn_azure_graph_path(
    struct qn_buf *out, const char *base, const char *id, const char *suffix, struct qn_error *err)
{
    if (!literal_path_ok(base) || (suffix != NULL && !literal_path_ok(suffix))) {
        return qn_error_set(err, QN_ERR_INVALID, "bad literal Graph path");
    }
    size_t mark = out->len;
    qn_err_t rc = qn_buf_append_str(out, base);
    if (rc == QN_OK && id != NULL) {
        rc = qn_http_path_segment_append(out, id, err);
    }
    if (rc == QN_OK && suffix != NULL) {
        rc = qn_buf_append_str(out, suffix);
    }
    if (rc != QN_OK) {
        truncate_to(out, mark);
        if (err != NULL && err->code == QN_OK) {
            qn_error_set(err, rc, "Graph path too long");
        }
        return rc;
    }
    return QN_OK;
}
