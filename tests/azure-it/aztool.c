/*
 * aztool.c - quench-aztool: drives the Azure client of common/ (identity and token cache, the
 * call engine with retries, LRO polling and paging, the ARM rate limiter, resource-id path
 * building) against the Azure simulator, for the tests in tests/azure-it and bench/azure-burst.
 *
 *   quench-aztool --ready FILE --auth secret|cert|workload|imds|badsecret|forged [options] CMD ...
 *
 * One qn_loop, one qn_http client and one qn_azure client; every command is asynchronous on the
 * loop. Output is one JSON object per line on stdout; a failure is also described in one line on
 * stderr. Secrets and tokens are never printed: a token appears only as "sha256:" and the first
 * 16 hex digits of its SHA-256. Exit status: 0 ok, 1 usage, 2 the operation failed, 3 refused
 * before anything was sent (bad id, path or target), 4 the tool's own deadline passed.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "qn/azure_auth.h"
#include "qn/crypto.h"
#include "qn/http.h"
#include "qn/log.h"
#include "qn/loop.h"
#include "qn/mem.h"
#include "qn/ratelimit.h"
#include "qn/resid.h"
#include "qn/timefmt.h"

#define EXIT_OK       0
#define EXIT_USAGE    1
#define EXIT_FAILED   2
#define EXIT_REJECTED 3
#define EXIT_DEADLINE 4

#define READY_MAX       ((size_t)4 * 1024 * 1024)
#define FINGERPRINT_HEX 16
#define TOKEN_POLL_MS   100
#define MAX_SUBS        1000

/* A secret the simulator never registered, for --auth badsecret. */
static const char bad_secret[] = "qn.sim~Not-The-Registered-Secret-000000";

struct opts {
    const char *ready_file;
    const char *auth;
    const char *app;
    const char *ca;   /* NULL: the ready file's ca_file; "system": the system trust store */
    const char *cert; /* overrides the app's certificate (required for forged) */
    const char *key;
    const char *token_file; /* overrides the app's federated token file */
    const char *log_level;
    const char *client_request_id;
    const char *probe; /* token: GET this path after each new token */
    int max_attempts;
    int64_t backoff_ms;
    int64_t total_timeout_ms;
    int64_t timeout_ms;
    int64_t lro_poll_ms;
    int64_t deadline_ms;
    long connections;
    int wait_refresh;
    int subscriptions;
    int requests;
    bool graph;
    bool print_body;
};

struct burst {
    char (*subs)[37];
    int *per_sub;
    int nsubs;
    int nreq;
    int done;
    int ok;
    int failed;
    long attempts;
    long retried_calls;
    int64_t token_started;
    int64_t t0;
    int64_t t_end;
    struct qn_error first_err;
};

struct tool {
    struct opts o;
    const char *cmd;
    cJSON *ready;
    struct qn_loop *loop;
    struct qn_http *http;
    struct qn_azure *az;
    struct qn_loop_timer *watchdog;
    struct qn_loop_timer *tick;
    struct qn_http_call_opts call_opts;
    int exit_code;
    bool finished;
    int64_t started;
    /* token */
    enum qn_azure_audience aud;
    int refreshes;
    char fingerprint[FINGERPRINT_HEX + 8];
    /* get/list/lro */
    bool list;
    /* burst */
    struct burst burst;
};

static const char *const err_names[QN_ERR__COUNT] = {
    [QN_OK] = "OK",
    [QN_ERR_NOMEM] = "NOMEM",
    [QN_ERR_INVALID] = "INVALID",
    [QN_ERR_PARSE] = "PARSE",
    [QN_ERR_CONFIG] = "CONFIG",
    [QN_ERR_IO] = "IO",
    [QN_ERR_TIMEOUT] = "TIMEOUT",
    [QN_ERR_AUTH] = "AUTH",
    [QN_ERR_HTTP_TRANSIENT] = "HTTP_TRANSIENT",
    [QN_ERR_HTTP_PERMANENT] = "HTTP_PERMANENT",
    [QN_ERR_KAFKA] = "KAFKA",
    [QN_ERR_KAFKA_FATAL] = "KAFKA_FATAL",
    [QN_ERR_TOO_BIG] = "TOO_BIG",
    [QN_ERR_NOT_FOUND] = "NOT_FOUND",
};

static const char *err_name(qn_err_t code)
{
    return (int)code >= 0 && code < QN_ERR__COUNT && err_names[code] != NULL ? err_names[code]
                                                                             : "UNKNOWN";
}

static void usage(FILE *out)
{
    fputs("usage: quench-aztool --ready FILE --auth secret|cert|workload|imds|badsecret|forged\n"
          "         [--app CLIENT_ID|system] [--ca FILE|system] [--cert FILE --key FILE]\n"
          "         [--token-file FILE] [--log-level LEVEL] [--max-attempts N] [--backoff-ms MS]\n"
          "         [--timeout-ms MS] [--total-timeout-ms MS] [--lro-poll-ms MS]\n"
          "         [--deadline-ms MS] [--connections N] [--graph] [--print-body]\n"
          "         [--client-request-id GUID] COMMAND ARGS\n"
          "commands:\n"
          "  token arm|graph [--wait-refresh N] [--probe PATH]\n"
          "  get PATH                 one GET (ARM, or Graph with --graph)\n"
          "  list PATH                a paged GET, every page\n"
          "  lro METHOD PATH [BODY]   a long-running operation, polled to completion\n"
          "  arm-id RESOURCE_ID SUFFIX|- API_VERSION   build the path with qn_azure_arm_path, GET\n"
          "  graph-id BASE ID [SUFFIX]                 build with qn_azure_graph_path, GET\n"
          "  burst --subscriptions N --requests M      M reads round-robin over N subscriptions\n",
          out);
}

/* ---- output ---- */

static void emit(cJSON *obj)
{
    char *text = obj != NULL ? cJSON_PrintUnformatted(obj) : NULL;
    if (text != NULL) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        cJSON_free(text);
    }
    cJSON_Delete(obj);
}

static cJSON *event_new(const char *event)
{
    cJSON *obj = cJSON_CreateObject();
    if (obj != NULL) {
        cJSON_AddStringToObject(obj, "event", event);
    }
    return obj;
}

static void finish(struct tool *t, int code)
{
    if (t->finished) {
        return;
    }
    t->finished = true;
    t->exit_code = code;
    qn_loop_stop(t->loop);
}

/* Reports a failure on stdout (JSON) and stderr (one line), then ends with @p code. */
static void fail_with(struct tool *t, int code, const char *what, const struct qn_error *err)
{
    cJSON *obj = event_new(code == EXIT_REJECTED ? "rejected" : "error");
    cJSON_AddStringToObject(obj, "what", what);
    cJSON_AddStringToObject(obj, "code", err_name(err->code));
    cJSON_AddStringToObject(obj, "message", err->msg);
    emit(obj);
    fprintf(stderr, "quench-aztool: %s %s: %s: %s\n", what,
            code == EXIT_REJECTED ? "refused before sending" : "failed", err_name(err->code),
            err->msg);
    finish(t, code);
}

/* Writes "sha256:" and the first FINGERPRINT_HEX hex digits of the token's SHA-256. */
static void token_fingerprint(const char *token, char out[FINGERPRINT_HEX + 8])
{
    static const char prefix[] = "sha256:";
    char hex[65];
    qn_sha256_hex(token, strlen(token), hex);
    memcpy(out, prefix, sizeof(prefix) - 1);
    memcpy(out + sizeof(prefix) - 1, hex, FINGERPRINT_HEX);
    out[sizeof(prefix) - 1 + FINGERPRINT_HEX] = '\0';
}

/* ---- the ready file ---- */

static char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *data = qn_malloc(max + 1);
    size_t n = data != NULL ? fread(data, 1, max + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (data == NULL || bad || n > max) {
        qn_free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

static cJSON *load_json(const char *path)
{
    size_t len = 0;
    char *text = read_file(path, READY_MAX, &len);
    if (text == NULL) {
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    qn_free(text);
    return root;
}

static const char *json_string(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* The ready file's entry for @p app, or its first app when @p app is NULL. */
static const cJSON *ready_app(const cJSON *ready, const char *app)
{
    const cJSON *apps = cJSON_GetObjectItemCaseSensitive(ready, "apps");
    if (!cJSON_IsObject(apps)) {
        return NULL;
    }
    if (app == NULL) {
        return apps->child;
    }
    return cJSON_GetObjectItemCaseSensitive(apps, app);
}

/* ---- setting up the client ---- */

static int configure_credential(struct tool *t, struct qn_azure_config *cfg, const char **missing)
{
    const struct opts *o = &t->o;
    const char *auth = o->auth;
    if (strcmp(auth, "imds") == 0) {
        cfg->credential = QN_AZURE_CRED_MANAGED;
        if (o->app != NULL) {
            cfg->client_id = strcmp(o->app, "system") == 0 ? NULL : o->app;
            return 0;
        }
        const cJSON *mis = cJSON_GetObjectItemCaseSensitive(t->ready, "managed_identities");
        const cJSON *mi = cJSON_IsArray(mis) ? cJSON_GetArrayItem(mis, 0) : NULL;
        cfg->client_id = mi != NULL ? json_string(mi, "client_id") : NULL;
        return 0;
    }
    const cJSON *app = ready_app(t->ready, o->app);
    if (app == NULL) {
        *missing = "app";
        return -1;
    }
    cfg->client_id = app->string;
    if (strcmp(auth, "secret") == 0 || strcmp(auth, "badsecret") == 0) {
        cfg->credential = QN_AZURE_CRED_SECRET;
        cfg->client_secret = strcmp(auth, "secret") == 0 ? json_string(app, "secret") : bad_secret;
        *missing = "secret";
        return cfg->client_secret != NULL ? 0 : -1;
    }
    if (strcmp(auth, "cert") == 0 || strcmp(auth, "forged") == 0) {
        bool forged = strcmp(auth, "forged") == 0;
        cfg->credential = QN_AZURE_CRED_CERTIFICATE;
        cfg->certificate_file = o->cert != NULL || forged ? o->cert : json_string(app, "cert_file");
        cfg->private_key_file = o->key != NULL || forged ? o->key : json_string(app, "key_file");
        *missing = forged ? "--cert and --key" : "cert_file";
        return cfg->certificate_file != NULL && (!forged || o->key != NULL) ? 0 : -1;
    }
    if (strcmp(auth, "workload") == 0) {
        cfg->credential = QN_AZURE_CRED_WORKLOAD;
        cfg->federated_token_file =
            o->token_file != NULL ? o->token_file : json_string(app, "federated_token_file");
        *missing = "federated_token_file";
        return cfg->federated_token_file != NULL ? 0 : -1;
    }
    *missing = "a known --auth";
    return -1;
}

static int setup(struct tool *t)
{
    struct qn_error err = {0};
    t->ready = load_json(t->o.ready_file);
    if (!cJSON_IsObject(t->ready)) {
        fprintf(stderr, "quench-aztool: cannot read the ready file %s\n", t->o.ready_file);
        return EXIT_USAGE;
    }
    if (qn_loop_new(&t->loop, &err) != QN_OK) {
        fprintf(stderr, "quench-aztool: %s\n", err.msg);
        return EXIT_FAILED;
    }
    struct qn_http_config hc;
    qn_http_config_default(&hc);
    hc.ca_file = json_string(t->ready, "ca_file");
    if (t->o.ca != NULL) {
        hc.ca_file = strcmp(t->o.ca, "system") == 0 ? NULL : t->o.ca;
    }
    if (t->o.connections > 0) {
        hc.max_host_connections = t->o.connections;
    }
    hc.user_agent = "quench-aztool/" QN_VERSION;
    if (qn_http_new(t->loop, &hc, &t->http, &err) != QN_OK) {
        fprintf(stderr, "quench-aztool: %s\n", err.msg);
        return EXIT_FAILED;
    }
    struct qn_azure_config cfg;
    qn_azure_config_default(&cfg);
    cfg.endpoints.authority = json_string(t->ready, "authority_url");
    cfg.endpoints.arm = json_string(t->ready, "arm_url");
    cfg.endpoints.graph = json_string(t->ready, "graph_url");
    cfg.endpoints.imds = json_string(t->ready, "imds_url");
    cfg.tenant_id = json_string(t->ready, "tenant_id");
    const char *missing = NULL;
    if (configure_credential(t, &cfg, &missing) != 0) {
        fprintf(stderr, "quench-aztool: --auth %s needs %s\n", t->o.auth, missing);
        return EXIT_USAGE;
    }
    struct qn_http_call_opts *co = &cfg.call_opts;
    if (t->o.max_attempts > 0) {
        co->max_attempts = t->o.max_attempts;
    }
    if (t->o.backoff_ms > 0) {
        co->backoff.base_ms = t->o.backoff_ms;
        co->backoff.cap_ms = t->o.backoff_ms * 8;
    }
    if (t->o.total_timeout_ms > 0) {
        co->total_timeout_ms = t->o.total_timeout_ms;
    }
    if (t->o.lro_poll_ms > 0) {
        co->lro_poll_ms = t->o.lro_poll_ms;
        co->lro_min_poll_ms =
            t->o.lro_poll_ms < co->lro_min_poll_ms ? t->o.lro_poll_ms : co->lro_min_poll_ms;
    }
    t->call_opts = *co;
    if (qn_azure_new(t->http, &cfg, &t->az, &err) != QN_OK) {
        fprintf(stderr, "quench-aztool: azure client: %s: %s\n", err_name(err.code), err.msg);
        return err.code == QN_ERR_CONFIG ? EXIT_USAGE : EXIT_FAILED;
    }
    return EXIT_OK;
}

/* ---- one call: get, list, lro, arm-id, graph-id, and the token probe ---- */

static void add_result_fields(cJSON *obj, const struct qn_http_result *res)
{
    cJSON_AddNumberToObject(obj, "status", (double)res->status);
    cJSON_AddNumberToObject(obj, "attempts", res->attempts);
    cJSON_AddNumberToObject(obj, "pages", res->pages);
    cJSON_AddStringToObject(obj, "lro_status", res->lro_status);
    cJSON_AddStringToObject(obj, "client_request_id", res->client_request_id);
    cJSON_AddStringToObject(obj, "request_id", res->request_id);
}

static void on_call_done(struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct tool *t = opaque;
    cJSON *obj = event_new("result");
    cJSON_AddBoolToObject(obj, "ok", err == NULL);
    add_result_fields(obj, res);
    cJSON_AddNumberToObject(obj, "elapsed_ms", (double)(qn_clock_ms() - t->started));
    const char *body = res->body != NULL ? qn_buf_cstr(res->body) : "";
    size_t body_len = res->body != NULL ? res->body->len : 0;
    cJSON_AddNumberToObject(obj, "body_bytes", (double)body_len);
    cJSON *parsed = body_len > 0 ? cJSON_ParseWithLength(body, body_len) : NULL;
    if (t->list && err == NULL) {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(parsed, "value");
        cJSON_AddNumberToObject(obj, "items",
                                cJSON_IsArray(value) ? cJSON_GetArraySize(value) : -1);
    }
    if (err != NULL) {
        cJSON_AddStringToObject(obj, "code", err_name(err->code));
        cJSON_AddStringToObject(obj, "message", err->msg);
    }
    if (t->o.print_body && parsed != NULL) {
        cJSON_AddItemToObject(obj, "body", parsed);
        parsed = NULL;
    } else if (t->o.print_body && body_len > 0) {
        cJSON_AddStringToObject(obj, "body", body);
    }
    cJSON_Delete(parsed);
    emit(obj);
    if (err != NULL) {
        fprintf(stderr, "quench-aztool: %s failed after %d attempt(s): %s: %s\n", t->cmd,
                res->attempts, err_name(err->code), err->msg);
        finish(t, EXIT_FAILED);
        return;
    }
    finish(t, EXIT_OK);
}

static int start_call(struct tool *t, const char *method, const char *target, const char *body)
{
    static const char *const json_headers[] = {"Content-Type: application/json", NULL};
    struct qn_azure_request req = {
        .audience = t->o.graph ? QN_AZURE_GRAPH : QN_AZURE_ARM,
        .method = method,
        .target = target,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .headers = body != NULL ? json_headers : NULL,
        .opts = &t->call_opts,
        .timeout_ms = t->o.timeout_ms,
        .client_request_id = t->o.client_request_id,
    };
    if (strcmp(t->cmd, "list") == 0) {
        req.flags |= QN_HTTP_CALL_PAGED;
        t->list = true;
    } else if (strcmp(t->cmd, "lro") == 0) {
        req.flags |= QN_HTTP_CALL_LRO;
    }
    struct qn_error err = {0};
    t->started = qn_clock_ms();
    if (qn_azure_request(t->az, &req, on_call_done, t, NULL, &err) != QN_OK) {
        fail_with(t, err.code == QN_ERR_NOMEM ? EXIT_FAILED : EXIT_REJECTED, "target", &err);
        return -1;
    }
    return 0;
}

/* ---- token ---- */

static void
on_token(const char *token, int64_t expires_at_epoch_ms, const struct qn_error *err, void *opaque);

static void request_token(struct tool *t)
{
    struct qn_error err = {0};
    if (qn_azure_token_get(t->az, t->aud, on_token, t, NULL, &err) != QN_OK) {
        fail_with(t, EXIT_FAILED, "token", &err);
    }
}

static void on_tick(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    request_token(opaque);
}

static void token_next(struct tool *t)
{
    if (t->refreshes >= t->o.wait_refresh) {
        finish(t, EXIT_OK);
        return;
    }
    qn_loop_timer_arm(t->tick, TOKEN_POLL_MS);
}

static void on_probe_done(struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct tool *t = opaque;
    cJSON *obj = event_new("probe");
    cJSON_AddBoolToObject(obj, "ok", err == NULL);
    add_result_fields(obj, res);
    cJSON_AddStringToObject(obj, "fingerprint", t->fingerprint);
    if (err != NULL) {
        cJSON_AddStringToObject(obj, "code", err_name(err->code));
        cJSON_AddStringToObject(obj, "message", err->msg);
    }
    emit(obj);
    if (err != NULL) {
        fail_with(t, EXIT_FAILED, "probe", err);
        return;
    }
    token_next(t);
}

static void
on_token(const char *token, int64_t expires_at_epoch_ms, const struct qn_error *err, void *opaque)
{
    struct tool *t = opaque;
    if (err != NULL) {
        fail_with(t, EXIT_FAILED, "token", err);
        return;
    }
    char fp[sizeof(t->fingerprint)];
    token_fingerprint(token, fp);
    bool first = t->fingerprint[0] == '\0';
    if (!first && strcmp(fp, t->fingerprint) == 0) {
        token_next(t);
        return;
    }
    if (!first) {
        t->refreshes++;
    }
    memcpy(t->fingerprint, fp, sizeof(fp));
    struct qn_azure_token_stats st;
    qn_azure_token_stats(t->az, t->aud, &st);
    char expires[QN_RFC3339_LEN];
    qn_time_format_rfc3339(expires_at_epoch_ms, expires);
    cJSON *obj = event_new("token");
    cJSON_AddStringToObject(obj, "audience", t->aud == QN_AZURE_GRAPH ? "graph" : "arm");
    cJSON_AddStringToObject(obj, "auth", t->o.auth);
    cJSON_AddStringToObject(obj, "fingerprint", fp);
    cJSON_AddStringToObject(obj, "expires_at", expires);
    cJSON_AddNumberToObject(obj, "expires_in_ms",
                            (double)(expires_at_epoch_ms - qn_time_epoch_ms()));
    cJSON_AddNumberToObject(obj, "refresh", t->refreshes);
    cJSON_AddNumberToObject(obj, "token_requests", (double)st.requests);
    cJSON_AddNumberToObject(obj, "token_failures", (double)st.failures);
    cJSON_AddNumberToObject(obj, "elapsed_ms", (double)(qn_clock_ms() - t->started));
    emit(obj);
    if (t->o.probe == NULL) {
        token_next(t);
        return;
    }
    struct qn_azure_request req = {
        .audience = t->aud,
        .method = "GET",
        .target = t->o.probe,
        .opts = &t->call_opts,
    };
    struct qn_error e = {0};
    if (qn_azure_request(t->az, &req, on_probe_done, t, NULL, &e) != QN_OK) {
        fail_with(t, EXIT_REJECTED, "probe", &e);
    }
}

static int cmd_token(struct tool *t, int argc, char **argv)
{
    if (argc < 1 || (strcmp(argv[0], "arm") != 0 && strcmp(argv[0], "graph") != 0)) {
        return EXIT_USAGE;
    }
    t->aud = strcmp(argv[0], "graph") == 0 ? QN_AZURE_GRAPH : QN_AZURE_ARM;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--wait-refresh") == 0 && i + 1 < argc) {
            t->o.wait_refresh = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--probe") == 0 && i + 1 < argc) {
            t->o.probe = argv[++i];
        } else {
            return EXIT_USAGE;
        }
    }
    struct qn_error err = {0};
    if (qn_loop_timer_new(t->loop, on_tick, t, &t->tick, &err) != QN_OK) {
        fprintf(stderr, "quench-aztool: %s\n", err.msg);
        return EXIT_FAILED;
    }
    t->started = qn_clock_ms();
    request_token(t);
    return EXIT_OK;
}

/* ---- paths from ids ---- */

static int cmd_arm_id(struct tool *t, int argc, char **argv)
{
    if (argc != 3) {
        return EXIT_USAGE;
    }
    const char *suffix = strcmp(argv[1], "-") == 0 || argv[1][0] == '\0' ? NULL : argv[1];
    struct qn_buf path;
    qn_buf_init(&path, QN_HTTP_MAX_URL);
    struct qn_error err = {0};
    if (qn_azure_arm_path(&path, argv[0], 0, suffix, argv[2], &err) != QN_OK) {
        qn_buf_fini(&path);
        fail_with(t, EXIT_REJECTED, "resource id", &err);
        return EXIT_OK;
    }
    cJSON *obj = event_new("path");
    cJSON_AddStringToObject(obj, "path", qn_buf_cstr(&path));
    emit(obj);
    (void)start_call(t, "GET", qn_buf_cstr(&path), NULL);
    qn_buf_fini(&path);
    return EXIT_OK;
}

static int cmd_graph_id(struct tool *t, int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        return EXIT_USAGE;
    }
    t->o.graph = true;
    struct qn_buf path;
    qn_buf_init(&path, QN_HTTP_MAX_URL);
    struct qn_error err = {0};
    if (qn_azure_graph_path(&path, argv[0], argv[1], argc == 3 ? argv[2] : NULL, &err) != QN_OK) {
        qn_buf_fini(&path);
        fail_with(t, EXIT_REJECTED, "graph id", &err);
        return EXIT_OK;
    }
    cJSON *obj = event_new("path");
    cJSON_AddStringToObject(obj, "path", qn_buf_cstr(&path));
    emit(obj);
    (void)start_call(t, "GET", qn_buf_cstr(&path), NULL);
    qn_buf_fini(&path);
    return EXIT_OK;
}

/* ---- burst ---- */

static double seconds(int64_t ms)
{
    return (double)ms / 1000.0;
}

/* The least time the client's read buckets allow for the burst (every bucket starts full). */
static double bucket_min_s(const struct burst *b)
{
    struct qn_ratelimit_config rc;
    qn_ratelimit_config_default(&rc);
    const struct qn_ratelimit_bucket_config *read = &rc.classes[QN_RATELIMIT_READ];
    double worst = 0;
    for (int i = 0; i < b->nsubs; i++) {
        double over = (double)b->per_sub[i] - read->burst;
        double s = over > 0 ? over / read->refill_per_sec : 0;
        worst = s > worst ? s : worst;
    }
    return worst;
}

static void burst_report(struct tool *t)
{
    struct burst *b = &t->burst;
    struct qn_ratelimit_stats rs;
    qn_ratelimit_stats(qn_azure_ratelimit(t->az), &rs);
    const struct qn_ratelimit_class_stats *read = &rs.classes[QN_RATELIMIT_READ];
    double elapsed = seconds(b->t_end - b->t0);
    double min_s = bucket_min_s(b);
    cJSON *obj = event_new("burst");
    cJSON_AddNumberToObject(obj, "requests", b->nreq);
    cJSON_AddNumberToObject(obj, "subscriptions", b->nsubs);
    cJSON_AddNumberToObject(obj, "ok", b->ok);
    cJSON_AddNumberToObject(obj, "failed", b->failed);
    cJSON_AddNumberToObject(obj, "attempts", (double)b->attempts);
    cJSON_AddNumberToObject(obj, "retried_calls", (double)b->retried_calls);
    cJSON_AddNumberToObject(obj, "elapsed_s", elapsed);
    cJSON_AddNumberToObject(obj, "bucket_min_s", min_s);
    cJSON_AddNumberToObject(obj, "ratio", min_s > 0 ? elapsed / min_s : 0);
    cJSON_AddNumberToObject(obj, "token_s", seconds(b->t0 - b->token_started));
    cJSON_AddNumberToObject(obj, "rl_grants", (double)read->grants);
    cJSON_AddNumberToObject(obj, "rl_waits", (double)read->waits);
    cJSON_AddNumberToObject(obj, "rl_wait_s_total", seconds((int64_t)read->wait_ms));
    cJSON_AddNumberToObject(obj, "rl_pauses", (double)read->pauses);
    cJSON_AddNumberToObject(obj, "rl_lowered", (double)read->lowered);
    cJSON_AddNumberToObject(obj, "rl_buckets", (double)rs.buckets);
    if (b->failed > 0) {
        cJSON_AddStringToObject(obj, "first_error", b->first_err.msg);
    }
    emit(obj);
    if (b->failed > 0) {
        fprintf(stderr, "quench-aztool: burst: %d of %d requests failed, first: %s\n", b->failed,
                b->nreq, b->first_err.msg);
        finish(t, EXIT_FAILED);
        return;
    }
    finish(t, EXIT_OK);
}

static void on_burst_done(struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct tool *t = opaque;
    struct burst *b = &t->burst;
    b->done++;
    b->attempts += res->attempts;
    if (res->attempts > 1) {
        b->retried_calls++;
    }
    if (err != NULL) {
        if (b->failed++ == 0) {
            b->first_err = *err;
        }
    } else {
        b->ok++;
    }
    if (b->done == b->nreq) {
        b->t_end = qn_clock_ms();
        burst_report(t);
    }
}

static void on_burst_token(const char *token,
                           int64_t expires_at_epoch_ms,
                           const struct qn_error *err,
                           void *opaque)
{
    (void)token;
    (void)expires_at_epoch_ms;
    struct tool *t = opaque;
    struct burst *b = &t->burst;
    if (err != NULL) {
        fail_with(t, EXIT_FAILED, "token", err);
        return;
    }
    /* The token is cached now: the clock measures the rate limiter and the server only. */
    b->t0 = qn_clock_ms();
    for (int i = 0; i < b->nreq; i++) {
        int s = i % b->nsubs;
        char target[96];
        (void)snprintf(target, sizeof(target), "/subscriptions/%s?api-version=2022-12-01",
                       b->subs[s]);
        struct qn_azure_request req = {
            .audience = QN_AZURE_ARM,
            .method = "GET",
            .target = target,
            .opts = &t->call_opts,
            .timeout_ms = t->o.timeout_ms,
        };
        struct qn_error e = {0};
        if (qn_azure_request(t->az, &req, on_burst_done, t, NULL, &e) != QN_OK) {
            fail_with(t, EXIT_FAILED, "burst request", &e);
            return;
        }
        b->per_sub[s]++;
    }
}

static int burst_subscriptions(struct tool *t)
{
    struct burst *b = &t->burst;
    const char *scenario = json_string(t->ready, "scenario");
    cJSON *root = scenario != NULL ? load_json(scenario) : NULL;
    const cJSON *subs = cJSON_GetObjectItemCaseSensitive(root, "subscriptions");
    int have = cJSON_IsArray(subs) ? cJSON_GetArraySize(subs) : 0;
    if (have < b->nsubs) {
        fprintf(stderr, "quench-aztool: the scenario %s has %d subscriptions, %d wanted\n",
                scenario != NULL ? scenario : "(none)", have, b->nsubs);
        cJSON_Delete(root);
        return -1;
    }
    for (int i = 0; i < b->nsubs; i++) {
        const char *id = json_string(cJSON_GetArrayItem(subs, i), "subscriptionId");
        if (id == NULL || !qn_is_guid(id)) {
            fprintf(stderr, "quench-aztool: subscription %d of the scenario has no GUID\n", i);
            cJSON_Delete(root);
            return -1;
        }
        memcpy(b->subs[i], id, 37);
    }
    cJSON_Delete(root);
    return 0;
}

static int cmd_burst(struct tool *t, int argc, char **argv)
{
    struct burst *b = &t->burst;
    b->nsubs = 10;
    b->nreq = 5000;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--subscriptions") == 0 && i + 1 < argc) {
            b->nsubs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc) {
            b->nreq = atoi(argv[++i]);
        } else {
            return EXIT_USAGE;
        }
    }
    if (b->nsubs < 1 || b->nsubs > MAX_SUBS || b->nreq < 1) {
        return EXIT_USAGE;
    }
    b->subs = qn_calloc((size_t)b->nsubs, sizeof(*b->subs));
    b->per_sub = qn_calloc((size_t)b->nsubs, sizeof(*b->per_sub));
    if (b->subs == NULL || b->per_sub == NULL) {
        fprintf(stderr, "quench-aztool: out of memory\n");
        return EXIT_FAILED;
    }
    if (burst_subscriptions(t) != 0) {
        return EXIT_USAGE;
    }
    struct qn_error err = {0};
    b->token_started = qn_clock_ms();
    if (qn_azure_token_get(t->az, QN_AZURE_ARM, on_burst_token, t, NULL, &err) != QN_OK) {
        fprintf(stderr, "quench-aztool: %s\n", err.msg);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

/* ---- main ---- */

static void on_watchdog(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    struct tool *t = opaque;
    struct qn_error err = {0};
    qn_error_set(&err, QN_ERR_TIMEOUT, "%s did not finish within %" PRId64 " ms", t->cmd,
                 t->o.deadline_ms);
    fail_with(t, EXIT_DEADLINE, t->cmd, &err);
}

static int64_t parse_ms(const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    return end != s && *end == '\0' && v >= 0 ? (int64_t)v : -1;
}

/* Parses the options before the command. @returns the index of the command or -1. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *name = argv[i];
        if (strcmp(name, "--graph") == 0) {
            o->graph = true;
            continue;
        }
        if (strcmp(name, "--print-body") == 0) {
            o->print_body = true;
            continue;
        }
        if (i + 1 >= argc) {
            return -1;
        }
        const char *v = argv[++i];
        if (strcmp(name, "--ready") == 0) {
            o->ready_file = v;
        } else if (strcmp(name, "--auth") == 0) {
            o->auth = v;
        } else if (strcmp(name, "--app") == 0) {
            o->app = v;
        } else if (strcmp(name, "--ca") == 0) {
            o->ca = v;
        } else if (strcmp(name, "--cert") == 0) {
            o->cert = v;
        } else if (strcmp(name, "--key") == 0) {
            o->key = v;
        } else if (strcmp(name, "--token-file") == 0) {
            o->token_file = v;
        } else if (strcmp(name, "--log-level") == 0) {
            o->log_level = v;
        } else if (strcmp(name, "--client-request-id") == 0) {
            o->client_request_id = v;
        } else if (strcmp(name, "--max-attempts") == 0) {
            o->max_attempts = atoi(v);
        } else if (strcmp(name, "--connections") == 0) {
            o->connections = atol(v);
        } else if (strcmp(name, "--backoff-ms") == 0) {
            o->backoff_ms = parse_ms(v);
        } else if (strcmp(name, "--timeout-ms") == 0) {
            o->timeout_ms = parse_ms(v);
        } else if (strcmp(name, "--total-timeout-ms") == 0) {
            o->total_timeout_ms = parse_ms(v);
        } else if (strcmp(name, "--lro-poll-ms") == 0) {
            o->lro_poll_ms = parse_ms(v);
        } else if (strcmp(name, "--deadline-ms") == 0) {
            o->deadline_ms = parse_ms(v);
        } else {
            return -1;
        }
    }
    if (i >= argc || o->ready_file == NULL || o->auth == NULL || o->backoff_ms < 0 ||
        o->timeout_ms < 0 || o->total_timeout_ms < 0 || o->lro_poll_ms < 0 || o->deadline_ms < 0) {
        return -1;
    }
    return i;
}

static int run_command(struct tool *t, int argc, char **argv)
{
    const char *cmd = t->cmd;
    if (strcmp(cmd, "token") == 0) {
        return cmd_token(t, argc, argv);
    }
    if ((strcmp(cmd, "get") == 0 || strcmp(cmd, "list") == 0) && argc == 1) {
        (void)start_call(t, "GET", argv[0], NULL);
        return EXIT_OK;
    }
    if (strcmp(cmd, "lro") == 0 && (argc == 2 || argc == 3)) {
        (void)start_call(t, argv[0], argv[1], argc == 3 ? argv[2] : NULL);
        return EXIT_OK;
    }
    if (strcmp(cmd, "arm-id") == 0) {
        return cmd_arm_id(t, argc, argv);
    }
    if (strcmp(cmd, "graph-id") == 0) {
        return cmd_graph_id(t, argc, argv);
    }
    if (strcmp(cmd, "burst") == 0) {
        return cmd_burst(t, argc, argv);
    }
    return EXIT_USAGE;
}

static void teardown(struct tool *t)
{
    qn_azure_free(t->az);
    qn_http_free(t->http);
    qn_loop_timer_free(t->tick);
    qn_loop_timer_free(t->watchdog);
    qn_loop_free(t->loop);
    cJSON_Delete(t->ready);
    qn_free(t->burst.subs);
    qn_free(t->burst.per_sub);
}

int main(int argc, char **argv)
{
    static struct tool t;
    t.o.deadline_ms = 120000;
    int cmd_at = parse_opts(argc, argv, &t.o);
    if (cmd_at < 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (qn_log_set_level_name(t.o.log_level != NULL ? t.o.log_level : "error") != QN_OK) {
        fprintf(stderr, "quench-aztool: unknown log level\n");
        return EXIT_USAGE;
    }
    qn_mem_install_cjson_hooks();
    t.cmd = argv[cmd_at];
    int rc = setup(&t);
    struct qn_error err = {0};
    if (rc == EXIT_OK && qn_loop_timer_new(t.loop, on_watchdog, &t, &t.watchdog, &err) != QN_OK) {
        fprintf(stderr, "quench-aztool: %s\n", err.msg);
        rc = EXIT_FAILED;
    }
    if (rc == EXIT_OK) {
        qn_loop_timer_arm(t.watchdog, t.o.deadline_ms);
        rc = run_command(&t, argc - cmd_at - 1, argv + cmd_at + 1);
        if (rc == EXIT_USAGE) {
            usage(stderr);
        }
    }
    if (rc == EXIT_OK && !t.finished && qn_loop_run(t.loop) != QN_OK) {
        fprintf(stderr, "quench-aztool: the event loop failed\n");
        rc = EXIT_FAILED;
    }
    if (rc == EXIT_OK) {
        rc = t.exit_code;
    }
    teardown(&t);
    return rc;
}
