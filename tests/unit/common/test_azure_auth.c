/*
 * test_azure_auth.c - unit tests for Azure identity and the ARM/Graph request API, against the
 * scripted HTTPS test server standing in for the token endpoint, IMDS, ARM and Graph.
 *
 * Covered: the four credentials (secret, certificate assertion verified with OpenSSL, workload
 * identity re-reading its file, IMDS with string expires_in), token caching, coalescing,
 * proactive refresh, failures (fast errors, backoff, cached token still served, a hanging
 * endpoint not stalling the loop), the request gate (bearer header, rate-limit waits, 429 pause,
 * 401 invalidation), target and path validation against hostile resource ids, token response
 * parsing, the refresh schedule, cloud presets, configuration checks, teardown with work in
 * flight, and that no secret ever reaches the log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "../../support/test_server.c"
#include "qn/azure_auth.h"
#include "qn/buf.h"
#include "qn/http.h"
#include "qn/jwt.h"
#include "qn/log.h"
#include "qn/loop.h"
#include "qn/mem.h"
#include "qn/ratelimit.h"
#include "qn/timefmt.h"

#define WALL_LIMIT_MS 8000
#define TENANT        "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CLIENT        "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f"
#define SECRET        "s3cret!&=value"
#define TOKEN_PATH    "/" TENANT "/oauth2/v2.0/token"
#define SUB           "00000000-1111-2222-3333-444444444444"
#define VM_ID                                                                                    \
    "/subscriptions/" SUB "/resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/" \
    "vm-01"

static struct ts_certs certs;

struct fixture {
    struct qn_loop *loop;
    struct qn_http *http;
    struct qn_azure *az;
    struct test_server *srv;
    char url[80];
    char fed_file[160];
};

struct token_outcome {
    int done;
    qn_err_t code;
    char token[256];
    char msg[256];
    int64_t expires;
};

struct call_outcome {
    int done;
    qn_err_t code;
    long status;
    char msg[256];
    char body[2048];
    int attempts;
};

static int group_setup(void **state)
{
    (void)state;
    qn_mem_install_cjson_hooks();
    qn_log_threshold = QN_LOG_LEVEL_ERROR;
    return ts_certs_make(&certs, true);
}

static int group_teardown(void **state)
{
    (void)state;
    ts_certs_remove(&certs);
    return 0;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fx->srv = test_server_start(certs.cert, certs.key);
    if (fx->srv == NULL || qn_loop_new(&fx->loop, NULL) != QN_OK) {
        return -1;
    }
    struct qn_http_config cfg;
    qn_http_config_default(&cfg);
    cfg.ca_file = certs.cert;
    if (qn_http_new(fx->loop, &cfg, &fx->http, NULL) != QN_OK) {
        return -1;
    }
    snprintf(fx->url, sizeof(fx->url), "%s", test_server_url(fx->srv));
    snprintf(fx->fed_file, sizeof(fx->fed_file), "%s/federated-token", certs.dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    qn_azure_free(fx->az);
    qn_http_free(fx->http);
    qn_loop_free(fx->loop);
    test_server_stop(fx->srv);
    (void)unlink(fx->fed_file);
    free(fx);
    return 0;
}

static void
config_for(struct fixture *fx, struct qn_azure_config *cfg, enum qn_azure_credential cred)
{
    qn_azure_config_default(cfg);
    cfg->credential = cred;
    cfg->tenant_id = TENANT;
    cfg->client_id = CLIENT;
    cfg->client_secret = SECRET;
    cfg->endpoints.authority = fx->url;
    cfg->endpoints.arm = fx->url;
    cfg->endpoints.graph = fx->url;
    cfg->endpoints.imds = fx->url;
    cfg->token_backoff.base_ms = 200;
    cfg->token_backoff.cap_ms = 400;
    cfg->call_opts.backoff.base_ms = 10;
    cfg->call_opts.backoff.cap_ms = 50;
    cfg->call_opts.lro_poll_ms = 20;
    cfg->call_opts.lro_min_poll_ms = 0;
}

static void make_client(struct fixture *fx, const struct qn_azure_config *cfg)
{
    struct qn_error err = {0};
    qn_err_t rc = qn_azure_new(fx->http, cfg, &fx->az, &err);
    if (rc != QN_OK) {
        fail_msg("qn_azure_new: %s", err.msg);
    }
}

static void run_until(struct qn_loop *loop, const int *flag, int target)
{
    int64_t until = qn_clock_ms() + WALL_LIMIT_MS;
    while (*flag < target && qn_clock_ms() < until) {
        assert_int_equal(qn_loop_run_once(loop, 20), QN_OK);
    }
    assert_true(*flag >= target);
}

static void run_for(struct qn_loop *loop, int64_t ms)
{
    int64_t until = qn_clock_ms() + ms;
    while (qn_clock_ms() < until) {
        assert_int_equal(qn_loop_run_once(loop, 10), QN_OK);
    }
}

static void push_token(struct fixture *fx, const char *token, int expires_in, int times)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"token_type\":\"Bearer\",\"expires_in\":%d,\"ext_expires_in\":%d,"
             "\"access_token\":\"%s\"}",
             expires_in, expires_in, token);
    struct ts_response r = {
        .status = 200, .body = body, .method = "POST", .path_prefix = TOKEN_PATH, .times = times};
    test_server_push(fx->srv, &r);
}

static void on_token(const char *token, int64_t expires, const struct qn_error *err, void *opaque)
{
    struct token_outcome *o = opaque;
    o->done++;
    o->code = err != NULL ? err->code : QN_OK;
    snprintf(o->token, sizeof(o->token), "%s", token != NULL ? token : "");
    snprintf(o->msg, sizeof(o->msg), "%s", err != NULL ? err->msg : "");
    o->expires = expires;
}

static void get_token(struct fixture *fx, enum qn_azure_audience aud, struct token_outcome *o)
{
    memset(o, 0, sizeof(*o));
    assert_int_equal(qn_azure_token_get(fx->az, aud, on_token, o, NULL, NULL), QN_OK);
    assert_int_equal(o->done, 0); /* never from inside the call */
    run_until(fx->loop, &o->done, 1);
}

static void on_call(struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct call_outcome *o = opaque;
    o->done++;
    o->code = err != NULL ? err->code : QN_OK;
    o->status = res->status;
    o->attempts = res->attempts;
    snprintf(o->msg, sizeof(o->msg), "%s", err != NULL ? err->msg : "");
    snprintf(o->body, sizeof(o->body), "%s", qn_buf_cstr(res->body));
}

static void arm_get(struct fixture *fx, const char *target, struct call_outcome *o)
{
    memset(o, 0, sizeof(*o));
    struct qn_azure_request req = {.audience = QN_AZURE_ARM, .method = "GET", .target = target};
    struct qn_error err = {0};
    assert_int_equal(qn_azure_request(fx->az, &req, on_call, o, NULL, &err), QN_OK);
}

/* Finds form parameter @p name in @p body and URL-decodes it into @p out. */
static const char *form_value(const char *body, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    size_t nlen = strlen(name);
    for (const char *p = body; p != NULL && *p != '\0';) {
        if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            size_t o = 0;
            while (*v != '\0' && *v != '&' && o + 1 < size) {
                if (*v == '%' && v[1] != '\0' && v[2] != '\0') {
                    char hex[3] = {v[1], v[2], '\0'};
                    out[o++] = (char)strtol(hex, NULL, 16);
                    v += 3;
                } else {
                    out[o++] = *v == '+' ? ' ' : *v;
                    v++;
                }
            }
            out[o] = '\0';
            return out;
        }
        p = strchr(p, '&');
        p = p != NULL ? p + 1 : NULL;
    }
    return out;
}

/* ---- tokens ---- */

static void test_secret_token_cached_and_coalesced(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    assert_false(qn_azure_token_ready(fx->az, QN_AZURE_ARM));
    push_token(fx, "tok-arm-1", 3599, -1);
    /* three concurrent requests share one token request */
    struct token_outcome o[3];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qn_azure_token_get(fx->az, QN_AZURE_ARM, on_token, &o[i], NULL, NULL),
                         QN_OK);
    }
    run_until(fx->loop, &o[2].done, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].done, 1);
        assert_int_equal(o[i].code, QN_OK);
        assert_string_equal(o[i].token, "tok-arm-1");
    }
    assert_true(o[0].expires > qn_time_epoch_ms() + 3500 * 1000LL);
    assert_int_equal(test_server_count(fx->srv), 1);
    assert_true(qn_azure_token_ready(fx->az, QN_AZURE_ARM));

    const struct ts_request *req = test_server_request(fx->srv, 0);
    assert_string_equal(req->method, "POST");
    assert_string_equal(req->target, TOKEN_PATH);
    char v[256];
    assert_string_equal(ts_header(req, "Content-Type", v, sizeof(v)),
                        "application/x-www-form-urlencoded");
    assert_string_equal(form_value(req->body, "grant_type", v, sizeof(v)), "client_credentials");
    assert_string_equal(form_value(req->body, "client_id", v, sizeof(v)), CLIENT);
    assert_string_equal(form_value(req->body, "client_secret", v, sizeof(v)), SECRET);
    assert_string_equal(form_value(req->body, "scope", v, sizeof(v)),
                        "https://management.azure.com/.default");
    assert_null(strstr(req->body, "s3cret!")); /* the secret is form-encoded on the wire */

    /* cached: no new request */
    struct token_outcome again;
    get_token(fx, QN_AZURE_ARM, &again);
    assert_string_equal(again.token, "tok-arm-1");
    assert_int_equal(test_server_count(fx->srv), 1);

    /* Graph has its own token and scope */
    struct token_outcome graph;
    get_token(fx, QN_AZURE_GRAPH, &graph);
    assert_int_equal(graph.code, QN_OK);
    assert_int_equal(test_server_count(fx->srv), 2);
    assert_string_equal(form_value(test_server_request(fx->srv, 1)->body, "scope", v, sizeof(v)),
                        "https://graph.microsoft.com/.default");

    struct qn_azure_token_stats st;
    qn_azure_token_stats(fx->az, QN_AZURE_ARM, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.served, 4);
}

static void test_token_refreshed_before_expiry(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    push_token(fx, "tok-short", 2, 1); /* 2 s: refreshed at half-life */
    push_token(fx, "tok-next", 3599, -1);
    struct token_outcome o;
    get_token(fx, QN_AZURE_ARM, &o);
    assert_string_equal(o.token, "tok-short");
    int64_t start = qn_clock_ms();
    /* nobody asks: the loop timer refreshes on its own */
    int64_t until = start + WALL_LIMIT_MS;
    while (test_server_count(fx->srv) < 2 && qn_clock_ms() < until) {
        assert_int_equal(qn_loop_run_once(fx->loop, 20), QN_OK);
    }
    assert_int_equal(test_server_count(fx->srv), 2);
    assert_true(qn_clock_ms() - start >= 900);
    assert_true(qn_clock_ms() - start < 1800);
    run_for(fx->loop, 30);
    get_token(fx, QN_AZURE_ARM, &o);
    assert_string_equal(o.token, "tok-next");
    assert_int_equal(test_server_count(fx->srv), 2);
}

static void test_failed_refresh_keeps_serving_cached_token(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    push_token(fx, "tok-old", 3, 1); /* refresh at 1.5 s, usable until 2.7 s */
    struct ts_response down = {
        .status = 503, .method = "POST", .path_prefix = TOKEN_PATH, .times = -1};
    test_server_push(fx->srv, &down);
    struct token_outcome o;
    get_token(fx, QN_AZURE_ARM, &o);
    int64_t until = qn_clock_ms() + WALL_LIMIT_MS;
    while (test_server_count(fx->srv) < 2 && qn_clock_ms() < until) {
        assert_int_equal(qn_loop_run_once(fx->loop, 20), QN_OK);
    }
    run_for(fx->loop, 50);
    /* the refresh failed, the cached token is still good and still served */
    get_token(fx, QN_AZURE_ARM, &o);
    assert_int_equal(o.code, QN_OK);
    assert_string_equal(o.token, "tok-old");
    struct qn_azure_token_stats st;
    qn_azure_token_stats(fx->az, QN_AZURE_ARM, &st);
    assert_true(st.failures >= 1);
}

static void test_rejected_credential_fails_fast_with_backoff(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    struct ts_response bad = {
        .status = 401,
        .body = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid "
                "client secret provided.\",\"error_codes\":[7000215]}",
        .method = "POST",
        .path_prefix = TOKEN_PATH};
    test_server_push(fx->srv, &bad);
    struct token_outcome o;
    get_token(fx, QN_AZURE_ARM, &o);
    assert_int_equal(o.code, QN_ERR_AUTH);
    assert_non_null(strstr(o.msg, "AADSTS7000215"));
    assert_null(strstr(o.msg, SECRET));
    /* within the backoff: an immediate error, no new request */
    get_token(fx, QN_AZURE_ARM, &o);
    assert_int_equal(o.code, QN_ERR_AUTH);
    assert_int_equal(test_server_count(fx->srv), 1);
    /* after it, a new attempt (which succeeds) */
    push_token(fx, "tok-fixed", 3599, -1);
    run_for(fx->loop, 450);
    get_token(fx, QN_AZURE_ARM, &o);
    assert_int_equal(o.code, QN_OK);
    assert_string_equal(o.token, "tok-fixed");
    assert_int_equal(test_server_count(fx->srv), 2);
}

static void on_tick(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    int64_t *fired_at = opaque;
    *fired_at = qn_clock_ms();
}

static void test_hanging_token_endpoint_does_not_stall_loop(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    cfg.token_timeout_ms = 300;
    make_client(fx, &cfg);
    struct ts_response hang = {
        .status = 200, .body = "{}", .delay_ms = 3000, .method = "POST", .path_prefix = TOKEN_PATH};
    test_server_push(fx->srv, &hang);
    struct token_outcome o;
    memset(&o, 0, sizeof(o));
    assert_int_equal(qn_azure_token_get(fx->az, QN_AZURE_ARM, on_token, &o, NULL, NULL), QN_OK);
    int64_t fired_at = 0;
    struct qn_loop_timer *tick = NULL;
    assert_int_equal(qn_loop_timer_new(fx->loop, on_tick, &fired_at, &tick, NULL), QN_OK);
    int64_t start = qn_clock_ms();
    qn_loop_timer_arm(tick, 50);
    run_until(fx->loop, &o.done, 1);
    /* other work ran on time while the token request hung */
    assert_true(fired_at != 0 && fired_at - start < 250);
    assert_int_equal(o.code, QN_ERR_HTTP_TRANSIENT);
    assert_non_null(strstr(o.msg, "timed out"));
    assert_true(qn_clock_ms() - start < 1500);
    qn_loop_timer_free(tick);
}

/* Verifies an RS256 assertion against the RSA test certificate; returns its decoded claims. */
static cJSON *verify_assertion(const char *jwt)
{
    const char *dot1 = strchr(jwt, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    assert_non_null(dot2);
    struct qn_buf sig;
    struct qn_buf claims;
    qn_buf_init(&sig, 4096);
    qn_buf_init(&claims, 4096);
    assert_int_equal(qn_base64url_decode(&sig, dot2 + 1, strlen(dot2 + 1)), QN_OK);
    assert_int_equal(qn_base64url_decode(&claims, dot1 + 1, (size_t)(dot2 - dot1 - 1)), QN_OK);
    FILE *f = fopen(certs.rsa_cert, "r");
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    EVP_PKEY *pub = X509_get_pubkey(x);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
    assert_int_equal(EVP_DigestVerify(md, (const unsigned char *)sig.data, sig.len,
                                      (const unsigned char *)jwt, (size_t)(dot2 - jwt)),
                     1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pub);
    X509_free(x);
    cJSON *json = cJSON_ParseWithLength(claims.data, claims.len);
    qn_buf_fini(&sig);
    qn_buf_fini(&claims);
    assert_non_null(json);
    return json;
}

static void test_certificate_credential_sends_signed_assertion(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_CERTIFICATE);
    cfg.client_secret = NULL;
    cfg.certificate_file = certs.rsa_cert;
    cfg.private_key_file = certs.rsa_key;
    make_client(fx, &cfg);
    push_token(fx, "tok-cert", 3599, -1);
    struct token_outcome o;
    get_token(fx, QN_AZURE_GRAPH, &o);
    assert_int_equal(o.code, QN_OK);
    const struct ts_request *req = test_server_request(fx->srv, 0);
    char v[4096];
    assert_string_equal(form_value(req->body, "client_assertion_type", v, sizeof(v)),
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    assert_string_equal(form_value(req->body, "client_secret", v, sizeof(v)), "");
    form_value(req->body, "client_assertion", v, sizeof(v));
    cJSON *claims = verify_assertion(v);
    char aud[128];
    snprintf(aud, sizeof(aud), "%s%s", fx->url, TOKEN_PATH);
    assert_string_equal(cJSON_GetObjectItem(claims, "aud")->valuestring, aud);
    assert_string_equal(cJSON_GetObjectItem(claims, "iss")->valuestring, CLIENT);
    assert_string_equal(cJSON_GetObjectItem(claims, "sub")->valuestring, CLIENT);
    double exp = cJSON_GetObjectItem(claims, "exp")->valuedouble;
    double nbf = cJSON_GetObjectItem(claims, "nbf")->valuedouble;
    assert_true(exp - nbf == 600);
    cJSON_Delete(claims);

    /* a bad certificate is a configuration error at start */
    qn_azure_free(fx->az);
    fx->az = NULL;
    cfg.private_key_file = certs.key; /* does not match */
    struct qn_error err = {0};
    assert_int_equal(qn_azure_new(fx->http, &cfg, &fx->az, &err), QN_ERR_CONFIG);
    assert_null(fx->az);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_workload_identity_rereads_token_file(void **state)
{
    struct fixture *fx = *state;
    write_file(fx->fed_file, "fed-token-one\n");
    setenv("AZURE_CLIENT_ID", CLIENT, 1);
    setenv("AZURE_TENANT_ID", TENANT, 1);
    char authority[64];
    snprintf(authority, sizeof(authority), "%s/", fx->url); /* the webhook adds a slash */
    setenv("AZURE_AUTHORITY_HOST", authority, 1);
    setenv("AZURE_FEDERATED_TOKEN_FILE", fx->fed_file, 1);
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    cfg.client_secret = NULL;
    cfg.tenant_id = NULL;
    cfg.client_id = NULL;
    cfg.endpoints.authority = NULL;
    assert_true(qn_azure_config_from_env(&cfg));
    assert_int_equal(cfg.credential, QN_AZURE_CRED_WORKLOAD);
    make_client(fx, &cfg);
    unsetenv("AZURE_CLIENT_ID");
    unsetenv("AZURE_TENANT_ID");
    unsetenv("AZURE_AUTHORITY_HOST");
    unsetenv("AZURE_FEDERATED_TOKEN_FILE");

    push_token(fx, "tok-wi", 3599, -1);
    struct token_outcome o;
    get_token(fx, QN_AZURE_ARM, &o);
    assert_int_equal(o.code, QN_OK);
    char v[256];
    const struct ts_request *req = test_server_request(fx->srv, 0);
    assert_string_equal(form_value(req->body, "client_assertion", v, sizeof(v)), "fed-token-one");
    assert_string_equal(form_value(req->body, "client_id", v, sizeof(v)), CLIENT);
    assert_string_equal(form_value(req->body, "client_assertion_type", v, sizeof(v)),
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    /* kubelet rotated the file: the next token request sends the new one */
    write_file(fx->fed_file, "fed-token-two");
    qn_azure_token_invalidate(fx->az, QN_AZURE_ARM);
    get_token(fx, QN_AZURE_ARM, &o);
    assert_int_equal(o.code, QN_OK);
    req = test_server_request(fx->srv, 1);
    assert_string_equal(form_value(req->body, "client_assertion", v, sizeof(v)), "fed-token-two");
    /* a missing file is a retriable failure, not a crash */
    unlink(fx->fed_file);
    qn_azure_token_invalidate(fx->az, QN_AZURE_GRAPH);
    get_token(fx, QN_AZURE_GRAPH, &o);
    assert_int_equal(o.code, QN_ERR_IO);
    assert_int_equal(test_server_count(fx->srv), 2);
}

static void test_managed_identity_via_imds(void **state)
{
    struct fixture *fx = *state;
    /* IMDS is plain http on 169.254.169.254: stand in with a plain-http server */
    struct test_server *imds_srv = test_server_start(NULL, NULL);
    assert_non_null(imds_srv);
    assert_int_equal(strncmp(test_server_url(imds_srv), "http://", 7), 0);
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_MANAGED);
    cfg.tenant_id = NULL;
    cfg.client_secret = NULL;
    cfg.endpoints.imds = test_server_url(imds_srv);
    make_client(fx, &cfg);
    struct ts_response imds = {
        .status = 200,
        .body = "{\"access_token\":\"tok-imds\",\"refresh_token\":\"\",\"expires_in\":\"3599\","
                "\"expires_on\":\"1506484173\",\"not_before\":\"1506480273\",\"resource\":"
                "\"https://management.azure.com/\",\"token_type\":\"Bearer\"}",
        .method = "GET",
        .path_prefix = "/metadata/identity/oauth2/token"};
    test_server_push(imds_srv, &imds);
    struct token_outcome o;
    get_token(fx, QN_AZURE_ARM, &o);
    assert_int_equal(o.code, QN_OK);
    assert_string_equal(o.token, "tok-imds");
    assert_true(o.expires > qn_time_epoch_ms() + 3500 * 1000LL);
    const struct ts_request *req = test_server_request(imds_srv, 0);
    assert_string_equal(req->target, "/metadata/identity/oauth2/token?api-version=2018-02-01"
                                     "&resource=https%3A%2F%2Fmanagement.azure.com%2F"
                                     "&client_id=" CLIENT);
    char v[64];
    assert_string_equal(ts_header(req, "Metadata", v, sizeof(v)), "true");
    assert_string_equal(ts_header(req, "Authorization", v, sizeof(v)), "");
    /* the plain-http token is used over https only: ARM calls still go to the TLS endpoint */
    struct ts_response ok = {.status = 200, .body = "{}", .path_prefix = "/subscriptions/"};
    test_server_push(fx->srv, &ok);
    struct call_outcome co;
    arm_get(fx, "/subscriptions/" SUB "?api-version=2022-12-01", &co);
    run_until(fx->loop, &co.done, 1);
    assert_int_equal(co.code, QN_OK);
    assert_string_equal(ts_header(test_server_request(fx->srv, 0), "Authorization", v, sizeof(v)),
                        "Bearer tok-imds");
    qn_azure_free(fx->az);
    fx->az = NULL;
    test_server_stop(imds_srv);
}

/* ---- requests ---- */

static void test_arm_request_with_bearer_and_ratelimit(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    push_token(fx, "tok-arm", 3599, -1);
    struct ts_response vm = {.status = 200,
                             .headers = "x-ms-ratelimit-remaining-subscription-reads: 11999\r\n",
                             .body = "{\"name\":\"vm-01\"}",
                             .method = "GET",
                             .path_prefix = "/subscriptions/"};
    test_server_push(fx->srv, &vm);
    struct qn_buf path;
    qn_buf_init(&path, 2048);
    assert_int_equal(qn_azure_arm_path(&path, VM_ID, 0, NULL, "2024-11-01", NULL), QN_OK);
    struct call_outcome o = {0};
    struct qn_azure_request areq = {.audience = QN_AZURE_ARM,
                                    .method = "GET",
                                    .target = qn_buf_cstr(&path),
                                    .client_request_id = "5d8c6f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6"};
    assert_int_equal(qn_azure_request(fx->az, &areq, on_call, &o, NULL, NULL), QN_OK);
    run_until(fx->loop, &o.done, 1);
    assert_int_equal(o.code, QN_OK);
    assert_string_equal(o.body, "{\"name\":\"vm-01\"}");
    const struct ts_request *req = test_server_request(fx->srv, 1);
    assert_string_equal(req->target, VM_ID "?api-version=2024-11-01");
    char v[128];
    assert_string_equal(ts_header(req, "Authorization", v, sizeof(v)), "Bearer tok-arm");
    assert_string_equal(ts_header(req, "x-ms-client-request-id", v, sizeof(v)),
                        "5d8c6f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6");
    struct qn_ratelimit_stats st;
    qn_ratelimit_stats(qn_azure_ratelimit(fx->az), &st);
    assert_int_equal(st.classes[QN_RATELIMIT_READ].grants, 1);
    assert_int_equal(st.classes[QN_RATELIMIT_WRITE].grants, 0);
    qn_buf_fini(&path);
}

static void test_graph_request_paged_and_absolute_next(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    push_token(fx, "tok-graph", 3599, -1);
    char p1[256];
    snprintf(p1, sizeof(p1),
             "{\"@odata.nextLink\":\"%s/v1.0/users?$skiptoken=2\",\"value\":[{\"id\":\"a\"}]}",
             fx->url);
    struct ts_response r1 = {.status = 200, .body = p1, .path_prefix = "/v1.0/users?$top"};
    struct ts_response r2 = {
        .status = 200, .body = "{\"value\":[{\"id\":\"b\"}]}", .path_prefix = "/v1.0/users?$skip"};
    test_server_push(fx->srv, &r1);
    test_server_push(fx->srv, &r2);
    struct call_outcome o = {0};
    struct qn_azure_request req = {.audience = QN_AZURE_GRAPH,
                                   .method = "GET",
                                   .target = "/v1.0/users?$top=1",
                                   .flags = QN_HTTP_CALL_PAGED};
    assert_int_equal(qn_azure_request(fx->az, &req, on_call, &o, NULL, NULL), QN_OK);
    run_until(fx->loop, &o.done, 1);
    assert_int_equal(o.code, QN_OK);
    assert_string_equal(o.body, "{\"value\":[{\"id\":\"a\"},{\"id\":\"b\"}]}");
    /* both pages carried the Graph token and were rate limited as Graph */
    char v[128];
    assert_string_equal(ts_header(test_server_request(fx->srv, 2), "Authorization", v, sizeof(v)),
                        "Bearer tok-graph");
    struct qn_ratelimit_stats st;
    qn_ratelimit_stats(qn_azure_ratelimit(fx->az), &st);
    assert_int_equal(st.classes[QN_RATELIMIT_GRAPH].grants, 2);
}

static void test_request_429_pauses_bucket(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    push_token(fx, "tok", 3599, -1);
    struct ts_response throttled = {
        .status = 429,
        .headers = "Retry-After: 0.2\r\n",
        .body = "{\"error\":{\"code\":\"SubscriptionRequestsThrottled\",\"message\":\"retry\"}}",
        .path_prefix = "/subscriptions/"};
    struct ts_response ok = {.status = 200, .body = "{}", .path_prefix = "/subscriptions/"};
    test_server_push(fx->srv, &throttled);
    test_server_push(fx->srv, &ok);
    struct call_outcome o;
    arm_get(fx, "/subscriptions/" SUB "/resources?api-version=2021-04-01", &o);
    run_until(fx->loop, &o.done, 1);
    assert_int_equal(o.code, QN_OK);
    assert_int_equal(o.attempts, 2);
    struct qn_ratelimit_stats st;
    qn_ratelimit_stats(qn_azure_ratelimit(fx->az), &st);
    assert_int_equal(st.classes[QN_RATELIMIT_READ].pauses, 1);
    /* the retry waited in the paused bucket rather than hitting the server early */
    assert_int_equal(st.classes[QN_RATELIMIT_READ].waits, 1);
    int n = test_server_count(fx->srv);
    int64_t gap =
        test_server_request(fx->srv, n - 1)->at_ms - test_server_request(fx->srv, n - 2)->at_ms;
    assert_true(gap >= 190);
}

static void test_ratelimit_makes_requests_wait(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    cfg.ratelimit.classes[QN_RATELIMIT_DELETE].burst = 1;
    cfg.ratelimit.classes[QN_RATELIMIT_DELETE].refill_per_sec = 20; /* one per 50 ms */
    make_client(fx, &cfg);
    push_token(fx, "tok", 3599, -1);
    struct ts_response gone = {
        .status = 204, .method = "DELETE", .path_prefix = "/subscriptions/", .times = -1};
    test_server_push(fx->srv, &gone);
    struct call_outcome o[3];
    memset(o, 0, sizeof(o));
    int64_t start = qn_clock_ms();
    for (int i = 0; i < 3; i++) {
        struct qn_azure_request req = {
            .audience = QN_AZURE_ARM,
            .method = "DELETE",
            .target = "/subscriptions/" SUB "/providers/Microsoft.Authorization/roleAssignments/"
                      "ra1?api-version=2022-04-01"};
        assert_int_equal(qn_azure_request(fx->az, &req, on_call, &o[i], NULL, NULL), QN_OK);
    }
    for (int i = 0; i < 3; i++) {
        run_until(fx->loop, &o[i].done, 1);
        assert_int_equal(o[i].code, QN_OK);
        assert_int_equal(o[i].status, 204);
    }
    assert_true(qn_clock_ms() - start >= 100 - 2);
    struct qn_ratelimit_stats st;
    qn_ratelimit_stats(qn_azure_ratelimit(fx->az), &st);
    assert_int_equal(st.classes[QN_RATELIMIT_DELETE].grants, 3);
    assert_int_equal(st.classes[QN_RATELIMIT_DELETE].waits, 2);
    assert_true(st.classes[QN_RATELIMIT_DELETE].wait_ms >= 50 + 100 - 4);
}

static void test_token_failure_fails_request(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    struct ts_response bad = {
        .status = 400,
        .body = "{\"error\":\"unauthorized_client\",\"error_description\":\"AADSTS700016: "
                "Application not found\"}",
        .path_prefix = TOKEN_PATH,
        .times = -1};
    test_server_push(fx->srv, &bad);
    struct call_outcome o;
    arm_get(fx, "/subscriptions/" SUB "?api-version=2022-12-01", &o);
    run_until(fx->loop, &o.done, 1);
    assert_int_equal(o.code, QN_ERR_AUTH);
    assert_non_null(strstr(o.msg, "AADSTS700016"));
    assert_int_equal(test_server_count_prefix(fx->srv, "/subscriptions/"), 0);
}

static void test_401_invalidates_token(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    push_token(fx, "tok-revoked", 3599, 1);
    push_token(fx, "tok-new", 3599, -1);
    struct ts_response denied = {
        .status = 401,
        .body = "{\"error\":{\"code\":\"ExpiredAuthenticationToken\",\"message\":\"expired\"}}",
        .path_prefix = "/subscriptions/"};
    struct ts_response ok = {.status = 200, .body = "{}", .path_prefix = "/subscriptions/"};
    test_server_push(fx->srv, &denied);
    test_server_push(fx->srv, &ok);
    struct call_outcome o;
    arm_get(fx, "/subscriptions/" SUB "?api-version=2022-12-01", &o);
    run_until(fx->loop, &o.done, 1);
    assert_int_equal(o.code, QN_ERR_AUTH);
    assert_false(qn_azure_token_ready(fx->az, QN_AZURE_ARM));
    arm_get(fx, "/subscriptions/" SUB "?api-version=2022-12-01", &o);
    run_until(fx->loop, &o.done, 1);
    assert_int_equal(o.code, QN_OK);
    char v[64];
    int n = test_server_count(fx->srv);
    assert_string_equal(
        ts_header(test_server_request(fx->srv, n - 1), "Authorization", v, sizeof(v)),
        "Bearer tok-new");
}

static void test_lro_through_azure_client(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    push_token(fx, "tok", 3599, -1);
    char headers[512];
    snprintf(headers, sizeof(headers),
             "Location: %s/subscriptions/" SUB
             "/providers/Microsoft.Compute/locations/westeurope/operations/op1?monitor=true"
             "\r\nRetry-After: 0\r\n",
             fx->url);
    struct ts_response accepted = {
        .status = 202, .headers = headers, .method = "POST", .path_prefix = "/subscriptions/"};
    struct ts_response done = {.status = 200, .body = "{\"value\":[]}", .method = "GET"};
    test_server_push(fx->srv, &accepted);
    test_server_push(fx->srv, &done);
    struct qn_buf path;
    qn_buf_init(&path, 2048);
    assert_int_equal(qn_azure_arm_path(&path, VM_ID, 0, "/runCommand", "2024-11-01", NULL), QN_OK);
    struct call_outcome o = {0};
    const char *body = "{\"commandId\":\"RunShellScript\",\"script\":[\"true\"]}";
    struct qn_azure_request req = {.audience = QN_AZURE_ARM,
                                   .method = "POST",
                                   .target = qn_buf_cstr(&path),
                                   .body = body,
                                   .body_len = strlen(body),
                                   .flags = QN_HTTP_CALL_LRO};
    assert_int_equal(qn_azure_request(fx->az, &req, on_call, &o, NULL, NULL), QN_OK);
    qn_buf_fini(&path);
    run_until(fx->loop, &o.done, 1);
    assert_int_equal(o.code, QN_OK);
    assert_int_equal(o.status, 200);
    struct qn_ratelimit_stats st;
    qn_ratelimit_stats(qn_azure_ratelimit(fx->az), &st);
    assert_int_equal(st.classes[QN_RATELIMIT_WRITE].grants, 1); /* the POST */
    assert_int_equal(st.classes[QN_RATELIMIT_READ].grants, 1);  /* the poll */
}

static void test_request_target_validation(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    make_client(fx, &cfg);
    static const char *const bad[] = {
        "https://evil.example.com/subscriptions/x",
        "http://127.0.0.1/x",
        "subscriptions/x",
        "/subscriptions/../providers",
        "/subscriptions/./x",
        "/subscriptions//x",
        "/subscriptions/%2e%2e/x",
        "/subscriptions/a%2Fb",
        "/subscriptions/a\\b",
        "/subscriptions/a b",
        "/subscriptions/a#frag",
        "/subscriptions/%zz",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct call_outcome o = {0};
        struct qn_azure_request req = {.audience = QN_AZURE_ARM, .method = "GET", .target = bad[i]};
        struct qn_error err = {0};
        assert_int_equal(qn_azure_request(fx->az, &req, on_call, &o, NULL, &err), QN_ERR_INVALID);
    }
    /* an absolute URL on the endpoint's own origin is fine */
    char good[128];
    snprintf(good, sizeof(good), "%s/subscriptions/" SUB "?api-version=2022-12-01", fx->url);
    struct call_outcome o = {0};
    struct qn_azure_request req = {.audience = QN_AZURE_ARM, .method = "GET", .target = good};
    struct qn_http_call *c = NULL;
    assert_int_equal(qn_azure_request(fx->az, &req, on_call, &o, &c, NULL), QN_OK);
    qn_http_call_cancel(c);
    req.audience = QN_AZURE_EVENTHUBS;
    assert_int_equal(qn_azure_request(fx->az, &req, on_call, &o, NULL, NULL), QN_ERR_INVALID);
    req.audience = QN_AZURE_ARM;
    const char *smuggled[] = {"authorization: Bearer stolen", NULL};
    req.headers = smuggled;
    assert_int_equal(qn_azure_request(fx->az, &req, on_call, &o, NULL, NULL), QN_ERR_INVALID);
    req.headers = NULL;
    req.client_request_id = "not-a-guid\r\nX-Evil: 1";
    assert_int_equal(qn_azure_request(fx->az, &req, on_call, &o, NULL, NULL), QN_ERR_INVALID);
    run_for(fx->loop, 20);
    assert_int_equal(o.done, 0);
    assert_int_equal(test_server_count(fx->srv), 0);
}

/* ---- path builders ---- */

static void test_arm_path_builder_rejects_hostile_ids(void **state)
{
    (void)state;
    static const char *const files[] = {
        "bad-resource-id-dotdot.json", "bad-resource-id-encoded-slash.json",
        "bad-resource-id-query.json", "bad-resource-id-control.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/hostile/%s", QN_TEST_DATA_DIR, files[i]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static char data[65536];
        size_t n = fread(data, 1, sizeof(data) - 1, f);
        fclose(f);
        data[n] = '\0';
        cJSON *alert = cJSON_Parse(data);
        assert_non_null(alert);
        const cJSON *id = cJSON_GetObjectItem(alert, "AzureResourceId");
        assert_true(cJSON_IsString(id));
        struct qn_buf out;
        qn_buf_init(&out, 4096);
        assert_int_equal(qn_buf_append_str(&out, "keep"), QN_OK);
        struct qn_error err = {0};
        assert_int_equal(qn_azure_arm_path(&out, id->valuestring, 0, NULL, "2021-04-01", &err),
                         QN_ERR_PARSE);
        assert_string_equal(qn_buf_cstr(&out), "keep"); /* nothing reached the buffer */
        qn_buf_fini(&out);
        cJSON_Delete(alert);
    }
}

static void test_arm_path_builder(void **state)
{
    (void)state;
    struct qn_buf out;
    qn_buf_init(&out, 4096);
    struct qn_error err = {0};
    assert_int_equal(qn_azure_arm_path(&out, "/subscriptions/" SUB, 0,
                                       "/providers/Microsoft.Authorization/roleAssignments",
                                       "2022-04-01", &err),
                     QN_OK);
    assert_string_equal(
        qn_buf_cstr(&out),
        "/subscriptions/" SUB
        "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01");
    qn_buf_reset(&out);
    assert_int_equal(qn_azure_arm_path(&out, VM_ID "(x)", 0, "/reimage", "2024-11-01", &err),
                     QN_OK);
    assert_string_equal(qn_buf_cstr(&out), VM_ID "%28x%29/reimage?api-version=2024-11-01");
    qn_buf_reset(&out);
    static const char *const bad_suffix[] = {"reimage", "/../x", "/a//b", "/a?b=c",
                                             "/a b",    "/",     "/a/."};
    for (size_t i = 0; i < sizeof(bad_suffix) / sizeof(bad_suffix[0]); i++) {
        assert_int_equal(qn_azure_arm_path(&out, VM_ID, 0, bad_suffix[i], "2024-11-01", &err),
                         QN_ERR_INVALID);
    }
    assert_int_equal(qn_azure_arm_path(&out, VM_ID, 0, NULL, "2024&x=1", &err), QN_ERR_INVALID);
    assert_int_equal(qn_azure_arm_path(&out, VM_ID, 0, NULL, NULL, &err), QN_ERR_INVALID);
    assert_int_equal(out.len, 0);
    qn_buf_fini(&out);
}

static void test_graph_path_builder(void **state)
{
    (void)state;
    struct qn_buf out;
    qn_buf_init(&out, 1024);
    struct qn_error err = {0};
    assert_int_equal(qn_azure_graph_path(&out, "/v1.0/users", "adele.vance+x@contoso.com",
                                         "/revokeSignInSessions", &err),
                     QN_OK);
    assert_string_equal(qn_buf_cstr(&out),
                        "/v1.0/users/adele.vance%2Bx%40contoso.com/revokeSignInSessions");
    qn_buf_reset(&out);
    assert_int_equal(qn_azure_graph_path(&out, "/v1.0/users",
                                         "ext_contoso.com#EXT#@t.onmicrosoft.com", NULL, &err),
                     QN_OK);
    assert_string_equal(qn_buf_cstr(&out),
                        "/v1.0/users/ext_contoso.com%23EXT%23%40t.onmicrosoft.com");
    qn_buf_reset(&out);
    assert_int_equal(qn_azure_graph_path(&out, "/v1.0/users", "..", NULL, &err), QN_ERR_INVALID);
    assert_int_equal(qn_azure_graph_path(&out, "/v1.0/users", "a/../../x", NULL, &err),
                     QN_ERR_INVALID);
    assert_int_equal(qn_azure_graph_path(&out, "v1.0/users", "a", NULL, &err), QN_ERR_INVALID);
    assert_int_equal(qn_azure_graph_path(&out, "/v1.0/users", "a", "/x?y", &err), QN_ERR_INVALID);
    assert_int_equal(out.len, 0);
    qn_buf_fini(&out);
}

/* ---- pure helpers ---- */

static void test_token_response_parse(void **state)
{
    (void)state;
    char *tok = NULL;
    int64_t exp = 0;
    struct qn_error err = {0};
    const char *aad = "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
                      "\"access_token\":\"eyJ0eXAi.abc-_\"}";
    assert_int_equal(qn_azure_token_response_parse(aad, strlen(aad), &tok, &exp, &err), QN_OK);
    assert_string_equal(tok, "eyJ0eXAi.abc-_");
    assert_int_equal(exp, 3599);
    qn_free_secret(tok);
    /* IMDS: strings */
    const char *imds =
        "{\"access_token\":\"t\",\"expires_in\":\"86399\",\"token_type\":\"Bearer\"}";
    assert_int_equal(qn_azure_token_response_parse(imds, strlen(imds), &tok, &exp, &err), QN_OK);
    assert_int_equal(exp, 86399);
    qn_free_secret(tok);
    /* expires_on only */
    char on[128];
    snprintf(on, sizeof(on), "{\"access_token\":\"t\",\"expires_on\":\"%lld\"}",
             (long long)(qn_time_epoch_ms() / 1000 + 600));
    assert_int_equal(qn_azure_token_response_parse(on, strlen(on), &tok, &exp, &err), QN_OK);
    assert_true(exp >= 598 && exp <= 600);
    qn_free_secret(tok);
    /* absurd lifetimes are clamped */
    const char *huge = "{\"access_token\":\"t\",\"expires_in\":99999999}";
    assert_int_equal(qn_azure_token_response_parse(huge, strlen(huge), &tok, &exp, &err), QN_OK);
    assert_int_equal(exp, 86400);
    qn_free_secret(tok);
    static const char *const bad[] = {
        "",
        "[]",
        "{\"expires_in\":3599}",
        "{\"access_token\":\"\",\"expires_in\":3599}",
        "{\"access_token\":\"a b\",\"expires_in\":3599}",
        "{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":3599}",
        "{\"access_token\":\"t\",\"expires_in\":0}",
        "{\"access_token\":\"t\",\"expires_in\":-5}",
        "{\"access_token\":\"t\",\"expires_in\":\"12x\"}",
        "{\"access_token\":\"t\"}",
        "{\"access_token\":\"t\",\"expires_in\":3599,\"token_type\":\"pop\"}",
        "{\"access_token\":7,\"expires_in\":3599}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tok = NULL;
        assert_int_equal(qn_azure_token_response_parse(bad[i], strlen(bad[i]), &tok, &exp, &err),
                         QN_ERR_PARSE);
        assert_null(tok);
    }
}

static void test_token_schedule(void **state)
{
    (void)state;
    int64_t refresh = 0;
    int64_t usable = 0;
    /* an hour-long token: refresh 5 min early, serve until 30 s before expiry */
    qn_azure_token_schedule(1000, 3600000, 300000, &refresh, &usable);
    assert_int_equal(refresh, 1000 + 3300000);
    assert_int_equal(usable, 1000 + 3570000);
    /* short tokens refresh at half-life and keep a 10 % margin */
    qn_azure_token_schedule(0, 120000, 300000, &refresh, &usable);
    assert_int_equal(refresh, 60000);
    assert_int_equal(usable, 108000);
    assert_true(refresh < usable);
}

static void test_cloud_presets_and_config_validation(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_endpoints ep;
    qn_azure_endpoints_preset(QN_AZURE_CLOUD_USGOV, &ep);
    assert_string_equal(ep.authority, "https://login.microsoftonline.us");
    assert_string_equal(ep.arm, "https://management.usgovcloudapi.net");
    assert_string_equal(ep.graph, "https://graph.microsoft.us");
    qn_azure_endpoints_preset(QN_AZURE_CLOUD_CHINA, &ep);
    assert_string_equal(ep.authority, "https://login.chinacloudapi.cn");
    assert_string_equal(ep.arm, "https://management.chinacloudapi.cn");
    assert_string_equal(ep.graph, "https://microsoftgraph.chinacloudapi.cn");
    qn_azure_endpoints_preset(QN_AZURE_CLOUD_PUBLIC, &ep);
    assert_string_equal(ep.authority, "https://login.microsoftonline.com");
    assert_string_equal(ep.audiences[QN_AZURE_ARM], "https://management.azure.com");
    assert_string_equal(ep.imds, "http://169.254.169.254");
    enum qn_azure_cloud cloud;
    assert_int_equal(qn_azure_cloud_parse("AzureUSGovernment", &cloud), QN_OK);
    assert_int_equal(cloud, QN_AZURE_CLOUD_USGOV);
    assert_int_equal(qn_azure_cloud_parse("china", &cloud), QN_OK);
    assert_int_equal(cloud, QN_AZURE_CLOUD_CHINA);
    assert_int_equal(qn_azure_cloud_parse("mars", &cloud), QN_ERR_CONFIG);

    struct qn_azure_config cfg;
    struct qn_azure *az = NULL;
    struct qn_error err = {0};
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    cfg.tenant_id = NULL;
    assert_int_equal(qn_azure_new(fx->http, &cfg, &az, &err), QN_ERR_CONFIG);
    cfg.tenant_id = "contoso.onmicrosoft.com/../x";
    assert_int_equal(qn_azure_new(fx->http, &cfg, &az, &err), QN_ERR_CONFIG);
    cfg.tenant_id = TENANT;
    cfg.client_id = "not-a-guid";
    assert_int_equal(qn_azure_new(fx->http, &cfg, &az, &err), QN_ERR_CONFIG);
    cfg.client_id = CLIENT;
    cfg.client_secret = "";
    assert_int_equal(qn_azure_new(fx->http, &cfg, &az, &err), QN_ERR_CONFIG);
    cfg.client_secret = SECRET;
    cfg.endpoints.arm = "http://management.azure.com";
    assert_int_equal(qn_azure_new(fx->http, &cfg, &az, &err), QN_ERR_CONFIG);
    cfg.endpoints.arm = NULL;
    cfg.credential = QN_AZURE_CRED_WORKLOAD;
    assert_int_equal(qn_azure_new(fx->http, &cfg, &az, &err), QN_ERR_CONFIG);
    cfg.credential = QN_AZURE_CRED_CERTIFICATE;
    assert_int_equal(qn_azure_new(fx->http, &cfg, &az, &err), QN_ERR_CONFIG);
    assert_null(az);
    /* system-assigned managed identity needs nothing; trailing slashes are dropped */
    qn_azure_config_default(&cfg);
    cfg.credential = QN_AZURE_CRED_MANAGED;
    cfg.endpoints.authority = "https://login.microsoftonline.com/";
    assert_int_equal(qn_azure_new(fx->http, &cfg, &az, &err), QN_OK);
    qn_azure_free(az);
}

static void test_free_with_pending_work(void **state)
{
    struct fixture *fx = *state;
    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_SECRET);
    cfg.ratelimit.classes[QN_RATELIMIT_READ].burst = 1;
    cfg.ratelimit.classes[QN_RATELIMIT_READ].refill_per_sec = 1;
    make_client(fx, &cfg);
    struct ts_response slow = {
        .status = 200, .body = "{}", .delay_ms = 500, .path_prefix = TOKEN_PATH, .times = -1};
    test_server_push(fx->srv, &slow);
    static struct call_outcome never[3];
    static struct token_outcome never_token;
    for (int i = 0; i < 3; i++) {
        /* one waits for the token, two wait in the rate limiter */
        arm_get(fx, "/subscriptions/" SUB "?api-version=2022-12-01", &never[i]);
    }
    struct qn_azure_token_req *treq = NULL;
    assert_int_equal(
        qn_azure_token_get(fx->az, QN_AZURE_GRAPH, on_token, &never_token, &treq, NULL), QN_OK);
    assert_int_equal(qn_azure_token_get(fx->az, QN_AZURE_GRAPH, on_token, &never_token, NULL, NULL),
                     QN_OK);
    qn_azure_token_cancel(treq);
    run_for(fx->loop, 100);
    /* teardown frees the client with all of it in flight: no callbacks, no leaks */
    qn_azure_free(fx->az);
    fx->az = NULL;
    run_for(fx->loop, 20);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(never[i].done, 0);
    }
    assert_int_equal(never_token.done, 0);
    assert_int_equal(qn_http_inflight(fx->http), 0);
}

static void test_secrets_never_logged(void **state)
{
    struct fixture *fx = *state;
    char log_path[192];
    snprintf(log_path, sizeof(log_path), "%s/log.txt", certs.dir);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *logf = fopen(log_path, "w");
    assert_non_null(logf);
    dup2(fileno(logf), STDERR_FILENO);
    int saved_level = qn_log_threshold;
    qn_log_threshold = QN_LOG_LEVEL_TRACE;

    struct qn_azure_config cfg;
    config_for(fx, &cfg, QN_AZURE_CRED_CERTIFICATE);
    cfg.certificate_file = certs.rsa_cert;
    cfg.private_key_file = certs.rsa_key;
    make_client(fx, &cfg);
    push_token(fx, "tok-very-secret-value", 3599, 1);
    struct ts_response bad = {
        .status = 401,
        .body = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215\"}",
        .path_prefix = TOKEN_PATH,
        .times = -1};
    test_server_push(fx->srv, &bad);
    struct ts_response ok = {.status = 200, .body = "{}", .path_prefix = "/subscriptions/"};
    test_server_push(fx->srv, &ok);
    struct call_outcome o;
    arm_get(fx, "/subscriptions/" SUB "?api-version=2022-12-01", &o);
    run_until(fx->loop, &o.done, 1);
    assert_int_equal(o.code, QN_OK);
    struct token_outcome t;
    get_token(fx, QN_AZURE_GRAPH, &t); /* fails: 401 */
    assert_int_equal(t.code, QN_ERR_AUTH);
    qn_azure_free(fx->az);
    fx->az = NULL;

    qn_log_threshold = saved_level;
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    fclose(logf);

    FILE *f = fopen(log_path, "r");
    static char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    unlink(log_path);
    text[n] = '\0';
    /* something was logged at trace level ... */
    assert_non_null(strstr(text, "token acquired"));
    assert_non_null(strstr(text, "AADSTS7000215"));
    /* ... but no token, assertion, secret or key */
    assert_null(strstr(text, "tok-very-secret-value"));
    assert_null(strstr(text, "eyJ"));
    assert_null(strstr(text, "Bearer"));
    assert_null(strstr(text, SECRET));
    assert_null(strstr(text, "PRIVATE KEY"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_secret_token_cached_and_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_refreshed_before_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_refresh_keeps_serving_cached_token, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rejected_credential_fails_fast_with_backoff, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hanging_token_endpoint_does_not_stall_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_certificate_credential_sends_signed_assertion, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_workload_identity_rereads_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_managed_identity_via_imds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arm_request_with_bearer_and_ratelimit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_graph_request_paged_and_absolute_next, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_request_429_pauses_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ratelimit_makes_requests_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_failure_fails_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_401_invalidates_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lro_through_azure_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_target_validation, setup, teardown),
        cmocka_unit_test(test_arm_path_builder_rejects_hostile_ids),
        cmocka_unit_test(test_arm_path_builder),
        cmocka_unit_test(test_graph_path_builder),
        cmocka_unit_test(test_token_response_parse),
        cmocka_unit_test(test_token_schedule),
        cmocka_unit_test_setup_teardown(test_cloud_presets_and_config_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_never_logged, setup, teardown),
    };
    return cmocka_run_group_tests_name("azure_auth", tests, group_setup, group_teardown);
}
