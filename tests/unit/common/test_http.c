/*
 * test_http.c - unit tests for the curl-multi client on the loop and the call engine, against the
 * scripted HTTPS test server (tests/support/test_server.c, threads of this process).
 *
 * Covered: round trips and captured headers, TLS verification failure with an untrusted CA,
 * plain-http refusal, error mapping, error-body parsing (every Azure form, including the
 * reference payloads), retries (429 + Retry-After, 503, connection reset), no retry for 400 and
 * for replay-unsafe POSTs, timeouts, body caps, long-running operations (Azure-AsyncOperation and
 * Location, failure, foreign origin, deadline), paging (ARM nextLink and Graph @odata.nextLink,
 * bounds, page callback), the gate, cancellation, keep-alive and URL helpers. Every wait is
 * bounded by a wall-clock limit.
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

#include "../../support/test_server.c"
#include "qn/buf.h"
#include "qn/http.h"
#include "qn/loop.h"
#include "qn/mem.h"
#include "qn/metrics.h"

#define WALL_LIMIT_MS 8000

static struct ts_certs certs;

struct fixture {
    struct qn_loop *loop;
    struct qn_http *http;
    struct qn_metrics *metrics;
    struct test_server *srv;
    char url[80]; /* https://127.0.0.1:port */
};

/* What a completion saw. */
struct outcome {
    int done;
    long status;
    qn_err_t code;
    char msg[256];
    char body[4096];
    struct qn_http_response copy; /* scalar fields and id arrays only */
    struct qn_http_result result; /* scalar fields and id arrays only */
    int64_t at;
    int pages_seen;
};

static int group_setup(void **state)
{
    (void)state;
    qn_mem_install_cjson_hooks();
    return ts_certs_make(&certs, false);
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
    if (fx->srv == NULL || qn_loop_new(&fx->loop, NULL) != QN_OK ||
        qn_metrics_new(&fx->metrics, NULL) != QN_OK) {
        return -1;
    }
    struct qn_http_config cfg;
    qn_http_config_default(&cfg);
    cfg.ca_file = certs.cert;
    cfg.metrics = fx->metrics;
    if (qn_http_new(fx->loop, &cfg, &fx->http, NULL) != QN_OK) {
        return -1;
    }
    snprintf(fx->url, sizeof(fx->url), "%s", test_server_url(fx->srv));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    qn_http_free(fx->http);
    qn_metrics_free(fx->metrics);
    qn_loop_free(fx->loop);
    test_server_stop(fx->srv);
    free(fx);
    return 0;
}

static void run_until(struct qn_loop *loop, const int *flag)
{
    int64_t until = qn_clock_ms() + WALL_LIMIT_MS;
    while (*flag == 0 && qn_clock_ms() < until) {
        assert_int_equal(qn_loop_run_once(loop, 20), QN_OK);
    }
    assert_true(*flag != 0);
}

static void run_for(struct qn_loop *loop, int64_t ms)
{
    int64_t until = qn_clock_ms() + ms;
    while (qn_clock_ms() < until) {
        assert_int_equal(qn_loop_run_once(loop, 10), QN_OK);
    }
}

static void on_done(struct qn_http_response *resp, const struct qn_error *err, void *opaque)
{
    struct outcome *o = opaque;
    o->done++;
    o->status = resp->status;
    o->code = err != NULL ? err->code : QN_OK;
    snprintf(o->msg, sizeof(o->msg), "%s", err != NULL ? err->msg : "");
    snprintf(o->body, sizeof(o->body), "%s", qn_buf_cstr(&resp->body));
    o->copy = *resp;
    o->copy.location = NULL;
    o->copy.async_operation = NULL;
    o->copy.content_type = NULL;
    memset(&o->copy.body, 0, sizeof(o->copy.body));
    o->at = qn_clock_ms();
}

static void on_call(struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct outcome *o = opaque;
    o->done++;
    o->status = res->status;
    o->code = err != NULL ? err->code : QN_OK;
    snprintf(o->msg, sizeof(o->msg), "%s", err != NULL ? err->msg : "");
    snprintf(o->body, sizeof(o->body), "%s", qn_buf_cstr(res->body));
    o->result = *res;
    o->result.response = NULL;
    o->result.body = NULL;
    if (res->response != NULL) {
        o->copy = *res->response;
        o->copy.location = NULL;
        o->copy.async_operation = NULL;
        o->copy.content_type = NULL;
        memset(&o->copy.body, 0, sizeof(o->copy.body));
    }
    o->at = qn_clock_ms();
}

static void push(struct fixture *fx, int status, const char *headers, const char *body)
{
    struct ts_response r = {.status = status, .headers = headers, .body = body};
    test_server_push(fx->srv, &r);
}

static void submit(
    struct fixture *fx, const char *method, const char *path, const char *body, struct outcome *o)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", fx->url, path);
    struct qn_http_request req = {
        .method = method,
        .url = url,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
    };
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, o, NULL, NULL), QN_OK);
}

static struct qn_http_call_opts fast_opts(void)
{
    struct qn_http_call_opts opts;
    qn_http_call_opts_default(&opts);
    opts.backoff.base_ms = 10;
    opts.backoff.cap_ms = 50;
    opts.lro_poll_ms = 20;
    opts.lro_min_poll_ms = 0;
    opts.total_timeout_ms = 5000;
    return opts;
}

static void call(struct fixture *fx,
                 const char *method,
                 const char *path,
                 const char *body,
                 unsigned flags,
                 const struct qn_http_call_opts *opts,
                 struct outcome *o)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", fx->url, path);
    struct qn_http_call_spec spec = {
        .req = {.method = method,
                .url = url,
                .body = body,
                .body_len = body != NULL ? strlen(body) : 0},
        .flags = flags,
        .opts = opts,
    };
    assert_int_equal(qn_http_call_start(fx->http, &spec, on_call, o, NULL, NULL), QN_OK);
}

static bool is_uuid4(const char *s)
{
    if (strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') {
        return false;
    }
    for (size_t i = 0; i < 36; i++) {
        if (s[i] != '-' && strchr("0123456789abcdef", s[i]) == NULL) {
            return false;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* ---- transport ---- */

static void test_get_round_trip_captures_headers(void **state)
{
    struct fixture *fx = *state;
    push(fx, 200,
         "x-ms-request-id: req-1\r\nx-ms-correlation-request-id: corr-1\r\n"
         "x-ms-ratelimit-remaining-subscription-reads: 11999\r\n"
         "x-ms-ratelimit-remaining-tenant-writes: 1199\r\nrequest-id: graph-1\r\n",
         "{\"ok\":true}");
    struct outcome o = {0};
    submit(fx, "GET", "/subscriptions/x?api-version=1", NULL, &o);
    assert_int_equal(o.done, 0); /* never called back from inside submit */
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.body, "{\"ok\":true}");
    assert_string_equal(o.copy.request_id, "req-1");
    assert_string_equal(o.copy.correlation_id, "corr-1");
    assert_string_equal(o.copy.graph_request_id, "graph-1");
    assert_int_equal(o.copy.rl_remaining[QN_HTTP_RL_SUB_READS], 11999);
    assert_int_equal(o.copy.rl_remaining[QN_HTTP_RL_TENANT_WRITES], 1199);
    assert_int_equal(o.copy.rl_remaining[QN_HTTP_RL_SUB_WRITES], -1);
    assert_int_equal(o.copy.retry_after_ms, -1);
    assert_int_equal(o.copy.http_version, 1); /* the test server has no ALPN: HTTP/1.1 */
    assert_true(is_uuid4(o.copy.client_request_id));

    const struct ts_request *req = test_server_request(fx->srv, 0);
    assert_non_null(req);
    assert_string_equal(req->method, "GET");
    assert_string_equal(req->target, "/subscriptions/x?api-version=1");
    char v[128];
    assert_string_equal(ts_header(req, "x-ms-client-request-id", v, sizeof(v)),
                        o.copy.client_request_id);
    assert_string_equal(ts_header(req, "x-ms-return-client-request-id", v, sizeof(v)), "true");
    assert_string_equal(ts_header(req, "Accept", v, sizeof(v)), "application/json");
    assert_non_null(strstr(ts_header(req, "User-Agent", v, sizeof(v)), "quench/"));
    assert_true(qn_metrics_get(fx->metrics, "quench_http_requests_total", "code=\"2xx\"") == 1);
}

static void test_post_sends_body_and_fresh_ids(void **state)
{
    struct fixture *fx = *state;
    push(fx, 201, NULL, "{}");
    push(fx, 204, NULL, NULL);
    struct outcome a = {0};
    struct outcome b = {0};
    submit(fx, "POST", "/a", "{\"k\":1}", &a);
    submit(fx, "DELETE", "/b", NULL, &b);
    run_until(fx->loop, &a.done);
    run_until(fx->loop, &b.done);
    assert_int_equal(a.code, QN_OK);
    assert_int_equal(b.code, QN_OK);
    assert_string_not_equal(a.copy.client_request_id, b.copy.client_request_id);
    assert_int_equal(test_server_count(fx->srv), 2);
    for (int i = 0; i < 2; i++) {
        const struct ts_request *req = test_server_request(fx->srv, i);
        char v[128];
        if (strcmp(req->method, "POST") == 0) {
            assert_string_equal(req->body, "{\"k\":1}");
            assert_string_equal(ts_header(req, "Content-Type", v, sizeof(v)), "application/json");
            assert_string_equal(ts_header(req, "Expect", v, sizeof(v)), "");
        } else {
            assert_string_equal(req->method, "DELETE");
            assert_int_equal(req->body_len, 0);
        }
    }
}

static void test_untrusted_ca_fails_clearly(void **state)
{
    struct fixture *fx = *state;
    struct qn_http_config cfg;
    qn_http_config_default(&cfg);
    cfg.ca_file = certs.other_cert; /* does not sign the server's certificate */
    struct qn_http *strict = NULL;
    assert_int_equal(qn_http_new(fx->loop, &cfg, &strict, NULL), QN_OK);
    push(fx, 200, NULL, "{}");
    struct outcome o = {0};
    char url[256];
    snprintf(url, sizeof(url), "%s/x", fx->url);
    struct qn_http_request req = {.method = "GET", .url = url};
    assert_int_equal(qn_http_submit(strict, &req, on_done, &o, NULL, NULL), QN_OK);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_AUTH);
    assert_non_null(strstr(o.msg, "certificate verify failed"));
    assert_false(qn_err_is_retriable(o.code));
    assert_int_equal(test_server_count(fx->srv), 0);
    qn_http_free(strict);
}

static void test_plain_http_and_bad_requests_refused(void **state)
{
    struct fixture *fx = *state;
    struct outcome o = {0};
    struct qn_error err = {0};
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", test_server_port(fx->srv));
    struct qn_http_request req = {.method = "GET", .url = url};
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o, NULL, &err), QN_ERR_INVALID);
    assert_non_null(strstr(err.msg, "plain"));
    /* allowed for IMDS-like requests, but never with credentials */
    const char *auth[] = {"Authorization: Bearer abc", NULL};
    req.flags = QN_HTTP_ALLOW_PLAIN;
    req.headers = auth;
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o, NULL, &err), QN_ERR_INVALID);
    assert_non_null(strstr(err.msg, "credentials"));
    req.flags = 0;
    req.headers = NULL;
    req.url = "ftp://127.0.0.1/x";
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o, NULL, &err), QN_ERR_INVALID);
    req.url = "https://127.0.0.1/a b";
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o, NULL, &err), QN_ERR_INVALID);
    snprintf(url, sizeof(url), "%s/x", fx->url);
    req.url = url;
    req.method = "TRACE";
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o, NULL, &err), QN_ERR_INVALID);
    req.method = "GET";
    const char *injected[] = {"X-A: b\r\nX-Evil: 1", NULL};
    req.headers = injected;
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o, NULL, &err), QN_ERR_INVALID);
    const char *own_id[] = {"x-ms-client-request-id: mine", NULL};
    req.headers = own_id;
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o, NULL, &err), QN_ERR_INVALID);
    run_for(fx->loop, 30);
    assert_int_equal(o.done, 0);
    assert_int_equal(qn_http_inflight(fx->http), 0);
}

static void test_status_mapping(void **state)
{
    (void)state;
    assert_int_equal(qn_http_status_err(200), QN_OK);
    assert_int_equal(qn_http_status_err(204), QN_OK);
    assert_int_equal(qn_http_status_err(429), QN_ERR_HTTP_TRANSIENT);
    assert_int_equal(qn_http_status_err(408), QN_ERR_HTTP_TRANSIENT);
    assert_int_equal(qn_http_status_err(500), QN_ERR_HTTP_TRANSIENT);
    assert_int_equal(qn_http_status_err(503), QN_ERR_HTTP_TRANSIENT);
    assert_int_equal(qn_http_status_err(504), QN_ERR_HTTP_TRANSIENT);
    assert_int_equal(qn_http_status_err(501), QN_ERR_HTTP_PERMANENT);
    assert_int_equal(qn_http_status_err(400), QN_ERR_HTTP_PERMANENT);
    assert_int_equal(qn_http_status_err(403), QN_ERR_HTTP_PERMANENT);
    assert_int_equal(qn_http_status_err(409), QN_ERR_HTTP_PERMANENT);
    assert_int_equal(qn_http_status_err(401), QN_ERR_AUTH);
    assert_int_equal(qn_http_status_err(404), QN_ERR_NOT_FOUND);
    assert_int_equal(qn_http_status_err(302), QN_ERR_HTTP_PERMANENT);
    assert_true(qn_err_is_retriable(qn_http_status_err(429)));
    assert_false(qn_err_is_retriable(qn_http_status_err(404)));
}

static void test_error_body_forms(void **state)
{
    (void)state;
    char code[96];
    char msg[256];
    /* ARM CloudError */
    const char *arm = "{\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"The client "
                      "does not have authorization\",\"details\":[]}}";
    assert_true(qn_http_error_body_parse(arm, strlen(arm), code, sizeof(code), msg, sizeof(msg)));
    assert_string_equal(code, "AuthorizationFailed");
    assert_string_equal(msg, "The client does not have authorization");
    /* top-level form (reference/azure/arm-throttling-response.txt) */
    const char *top = "{\n  \"code\": \"OperationNotAllowed\",\n  \"message\": \"The server "
                      "rejected the request because too many requests have been received for "
                      "this subscription.\",\n  \"details\": [{\"code\": \"TooManyRequests\"}]\n}";
    assert_true(qn_http_error_body_parse(top, strlen(top), code, sizeof(code), msg, sizeof(msg)));
    assert_string_equal(code, "OperationNotAllowed");
    assert_non_null(strstr(msg, "too many requests"));
    /* identity platform */
    const char *aad = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: "
                      "Invalid client secret.\\r\\nTrace ID: x\"}";
    assert_true(qn_http_error_body_parse(aad, strlen(aad), code, sizeof(code), msg, sizeof(msg)));
    assert_string_equal(code, "invalid_client");
    assert_non_null(strstr(msg, "AADSTS7000215"));
    assert_null(strchr(msg, '\r')); /* control bytes never reach logs */
    assert_null(strchr(msg, '\n'));
    /* failed async operation */
    const char *lro = "{\"status\":\"Failed\",\"error\":{\"code\":\"BadArgument\",\"message\":"
                      "\"bad\"}}";
    assert_true(qn_http_error_body_parse(lro, strlen(lro), code, sizeof(code), msg, sizeof(msg)));
    assert_string_equal(code, "BadArgument");
    /* nothing usable */
    assert_false(qn_http_error_body_parse("<html>", 6, code, sizeof(code), msg, sizeof(msg)));
    assert_string_equal(code, "");
    assert_string_equal(msg, "");
    assert_false(qn_http_error_body_parse("[1]", 3, code, sizeof(code), msg, sizeof(msg)));
    assert_false(qn_http_error_body_parse(NULL, 0, code, sizeof(code), msg, sizeof(msg)));
    assert_false(
        qn_http_error_body_parse("{\"error\":5}", 11, code, sizeof(code), msg, sizeof(msg)));
    /* truncation */
    char tiny[5];
    assert_true(qn_http_error_body_parse(arm, strlen(arm), tiny, sizeof(tiny), msg, sizeof(msg)));
    assert_string_equal(tiny, "Auth");
}

static char *read_reference(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", QN_REFERENCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    static char data[16384];
    size_t n = fread(data, 1, sizeof(data) - 1, f);
    fclose(f);
    data[n] = '\0';
    return data;
}

static void test_error_body_reference_payloads(void **state)
{
    (void)state;
    char code[96];
    char msg[256];

    static const struct {
        const char *file;
        const char *code;
        const char *msg_part;
    } cases[] = {
        {"graph-error-429.json", "TooManyRequests", "Please retry again later."},
        {"graph-error-404.json", "Request_ResourceNotFound", "does not exist"},
        {"graph-error.json", "invalidRange", "overlaps"},
        {"identity-token-error.json", "invalid_scope", "AADSTS70011"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = read_reference(cases[i].file);
        if (body == NULL) {
            skip();
        }
        assert_true(
            qn_http_error_body_parse(body, strlen(body), code, sizeof(code), msg, sizeof(msg)));
        assert_string_equal(code, cases[i].code);
        assert_non_null(strstr(msg, cases[i].msg_part));
    }
}

static void test_error_response_is_parsed_and_mapped(void **state)
{
    struct fixture *fx = *state;
    push(fx, 403, "x-ms-request-id: rid-403\r\n",
         "{\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"no access\"}}");
    struct outcome o = {0};
    submit(fx, "GET", "/x", NULL, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_HTTP_PERMANENT);
    assert_int_equal(o.status, 403);
    assert_string_equal(o.copy.error_code, "AuthorizationFailed");
    assert_string_equal(o.copy.error_message, "no access");
    assert_non_null(strstr(o.msg, "403"));
    assert_non_null(strstr(o.msg, "AuthorizationFailed"));
    assert_non_null(strstr(o.msg, "rid-403"));
}

static void test_body_cap(void **state)
{
    struct fixture *fx = *state;
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    push(fx, 200, NULL, big);
    struct outcome o = {0};
    char url[256];
    snprintf(url, sizeof(url), "%s/big", fx->url);
    struct qn_http_request req = {.method = "GET", .url = url, .max_body = 1024};
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o, NULL, NULL), QN_OK);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_TOO_BIG);
}

static void test_timeout_is_transient(void **state)
{
    struct fixture *fx = *state;
    struct ts_response slow = {.status = 200, .body = "{}", .delay_ms = 1500};
    test_server_push(fx->srv, &slow);
    struct outcome o = {0};
    char url[256];
    snprintf(url, sizeof(url), "%s/slow", fx->url);
    struct qn_http_request req = {.method = "GET", .url = url, .timeout_ms = 200};
    int64_t start = qn_clock_ms();
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o, NULL, NULL), QN_OK);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_HTTP_TRANSIENT);
    assert_non_null(strstr(o.msg, "timed out"));
    assert_true(o.at - start < 1200);
}

static void test_keep_alive_reuses_connection(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 3; i++) {
        push(fx, 200, NULL, "{}");
        struct outcome o = {0};
        submit(fx, "GET", "/k", NULL, &o);
        run_until(fx->loop, &o.done);
        assert_int_equal(o.code, QN_OK);
    }
    assert_int_equal(test_server_count(fx->srv), 3);
    assert_int_equal(test_server_connections(fx->srv), 1);
}

/* ---- retries ---- */

static void test_429_retry_after_then_recovers(void **state)
{
    struct fixture *fx = *state;
    push(fx, 429, "Retry-After: 0.3\r\n",
         "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"Please retry again later.\"}}");
    push(fx, 200, "x-ms-request-id: ok-req\r\n", "{\"value\":1}");
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    call(fx, "GET", "/throttled", NULL, 0, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.result.attempts, 2);
    assert_string_equal(o.result.request_id, "ok-req");
    assert_int_equal(test_server_count(fx->srv), 2);
    /* the server's 300 ms were honoured, not the 10 ms backoff */
    int64_t gap = test_server_request(fx->srv, 1)->at_ms - test_server_request(fx->srv, 0)->at_ms;
    assert_true(gap >= 290);
    assert_true(qn_metrics_get(fx->metrics, "quench_http_retries_total", "") == 1);
}

static void test_503_retried(void **state)
{
    struct fixture *fx = *state;
    push(fx, 503, NULL, NULL);
    push(fx, 503, NULL, NULL);
    push(fx, 200, NULL, "{}");
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    call(fx, "PUT", "/put", "{\"a\":1}", 0, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    assert_int_equal(o.result.attempts, 3);
    assert_int_equal(test_server_count(fx->srv), 3);
    /* every attempt sent the body and the same client request id: one logical request */
    char a[64];
    char b[64];
    ts_header(test_server_request(fx->srv, 0), "x-ms-client-request-id", a, sizeof(a));
    ts_header(test_server_request(fx->srv, 2), "x-ms-client-request-id", b, sizeof(b));
    assert_true(is_uuid4(a));
    assert_string_equal(a, b);
    assert_string_equal(o.result.client_request_id, a);
    assert_string_equal(test_server_request(fx->srv, 2)->body, "{\"a\":1}");
}

static void test_reset_retried(void **state)
{
    struct fixture *fx = *state;
    struct ts_response reset = {.action = TS_RESET};
    test_server_push(fx->srv, &reset);
    push(fx, 200, NULL, "{\"after\":\"reset\"}");
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    call(fx, "GET", "/flaky", NULL, 0, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    assert_string_equal(o.body, "{\"after\":\"reset\"}");
    assert_int_equal(test_server_count(fx->srv), 2);
}

static void test_400_not_retried(void **state)
{
    struct fixture *fx = *state;
    push(fx, 400, NULL, "{\"error\":{\"code\":\"InvalidRequest\",\"message\":\"bad\"}}");
    push(fx, 200, NULL, "{}");
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    call(fx, "GET", "/bad", NULL, 0, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_HTTP_PERMANENT);
    assert_int_equal(o.status, 400);
    assert_int_equal(o.result.attempts, 1);
    assert_string_equal(o.copy.error_code, "InvalidRequest");
    run_for(fx->loop, 50);
    assert_int_equal(test_server_count(fx->srv), 1);
}

static void test_retries_exhausted(void **state)
{
    struct fixture *fx = *state;
    struct ts_response r = {.status = 500, .times = -1};
    test_server_push(fx->srv, &r);
    struct qn_http_call_opts opts = fast_opts();
    opts.max_attempts = 3;
    struct outcome o = {0};
    call(fx, "GET", "/down", NULL, 0, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_HTTP_TRANSIENT);
    assert_int_equal(o.result.attempts, 3);
    assert_int_equal(test_server_count(fx->srv), 3);
}

static void test_post_not_replayed_unless_safe(void **state)
{
    struct fixture *fx = *state;
    struct qn_http_call_opts opts = fast_opts();
    /* a 503 to a POST may have acted: not replayed */
    push(fx, 503, NULL, NULL);
    struct outcome o = {0};
    call(fx, "POST", "/action", "{}", 0, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_HTTP_TRANSIENT);
    assert_int_equal(test_server_count(fx->srv), 1);
    /* a 429 was not processed: replayed */
    push(fx, 429, "Retry-After: 0\r\n", NULL);
    push(fx, 204, NULL, NULL);
    struct outcome o2 = {0};
    call(fx, "POST", "/action", "{}", 0, &opts, &o2);
    run_until(fx->loop, &o2.done);
    assert_int_equal(o2.code, QN_OK);
    assert_int_equal(test_server_count(fx->srv), 3);
    /* the caller can vouch for idempotence */
    push(fx, 503, NULL, NULL);
    push(fx, 204, NULL, NULL);
    struct outcome o3 = {0};
    call(fx, "POST", "/action", "{}", QN_HTTP_CALL_RETRY_UNSAFE, &opts, &o3);
    run_until(fx->loop, &o3.done);
    assert_int_equal(o3.code, QN_OK);
    assert_int_equal(test_server_count(fx->srv), 5);
}

static void test_long_retry_after_gives_up(void **state)
{
    struct fixture *fx = *state;
    push(fx, 429, "Retry-After: 1200\r\n", NULL);
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    call(fx, "GET", "/compute", NULL, 0, &opts, &o);
    run_until(fx->loop, &o.done);
    /* the caller gets the transient error and the server's wish, and can reschedule */
    assert_int_equal(o.code, QN_ERR_HTTP_TRANSIENT);
    assert_int_equal(o.copy.retry_after_ms, 1200000);
    assert_int_equal(test_server_count(fx->srv), 1);
}

/* ---- long-running operations ---- */

static void test_lro_azure_async_operation(void **state)
{
    struct fixture *fx = *state;
    char headers[512];
    snprintf(headers, sizeof(headers),
             "Azure-AsyncOperation: %s/op/1?api-version=2024-11-01\r\nLocation: %s/loc/1\r\n"
             "Retry-After: 0\r\nx-ms-request-id: start-req\r\n"
             "x-ms-correlation-request-id: corr-9\r\n",
             fx->url, fx->url);
    push(fx, 202, headers, NULL);
    struct ts_response running = {
        .status = 200, .body = "{\"status\":\"InProgress\"}", .path_prefix = "/op/1", .times = 2};
    test_server_push(fx->srv, &running);
    struct ts_response done = {.status = 200,
                               .body = "{\"status\":\"Succeeded\",\"name\":\"op1\"}",
                               .path_prefix = "/op/1"};
    test_server_push(fx->srv, &done);
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    call(fx, "POST", "/vm/reimage", "{}", QN_HTTP_CALL_LRO, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    assert_string_equal(o.result.lro_status, "Succeeded");
    assert_int_equal(o.result.attempts, 4);
    /* the ids are those of the request that acted */
    assert_string_equal(o.result.request_id, "start-req");
    assert_string_equal(o.result.correlation_id, "corr-9");
    assert_int_equal(test_server_count(fx->srv), 4);
    assert_int_equal(test_server_count_prefix(fx->srv, "/op/1?api-version=2024-11-01"), 3);
    assert_int_equal(test_server_count_prefix(fx->srv, "/loc/"), 0); /* AsyncOperation wins */
    assert_string_equal(test_server_request(fx->srv, 1)->method, "GET");
    /* polls are requests of their own */
    char first[64];
    char poll[64];
    ts_header(test_server_request(fx->srv, 0), "x-ms-client-request-id", first, sizeof(first));
    ts_header(test_server_request(fx->srv, 1), "x-ms-client-request-id", poll, sizeof(poll));
    assert_string_not_equal(first, poll);
    assert_string_equal(o.result.client_request_id, first);
}

static void test_lro_location(void **state)
{
    struct fixture *fx = *state;
    char headers[256];
    snprintf(headers, sizeof(headers), "Location: %s/loc/7\r\nRetry-After: 0\r\n", fx->url);
    push(fx, 202, headers, NULL);
    struct ts_response pending = {.status = 202, .path_prefix = "/loc/7", .times = 2};
    test_server_push(fx->srv, &pending);
    struct ts_response done = {
        .status = 200, .body = "{\"deleted\":true}", .path_prefix = "/loc/7"};
    test_server_push(fx->srv, &done);
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    call(fx, "DELETE", "/res/1", NULL, QN_HTTP_CALL_LRO, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.body, "{\"deleted\":true}");
    assert_int_equal(test_server_count_prefix(fx->srv, "/loc/7"), 3);
}

static void test_lro_failed_and_foreign_origin(void **state)
{
    struct fixture *fx = *state;
    char headers[256];
    snprintf(headers, sizeof(headers), "Azure-AsyncOperation: %s/op/f\r\n", fx->url);
    push(fx, 201, headers, NULL);
    struct ts_response failed = {
        .status = 200,
        .body = "{\"status\":\"Failed\",\"error\":{\"code\":\"BadArgument\",\"message\":\"The "
                "provided database 'foo' has an invalid username.\"}}",
        .path_prefix = "/op/f"};
    test_server_push(fx->srv, &failed);
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    call(fx, "PUT", "/db", "{}", QN_HTTP_CALL_LRO, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_HTTP_PERMANENT);
    assert_string_equal(o.result.lro_status, "Failed");
    assert_non_null(strstr(o.msg, "BadArgument"));

    /* a poll URL on another host would carry the token elsewhere: refused */
    push(fx, 202, "Azure-AsyncOperation: https://evil.example.com/op/1\r\n", NULL);
    struct outcome o2 = {0};
    call(fx, "POST", "/x", "{}", QN_HTTP_CALL_LRO, &opts, &o2);
    run_until(fx->loop, &o2.done);
    assert_int_equal(o2.code, QN_ERR_HTTP_PERMANENT);
    assert_non_null(strstr(o2.msg, "refusing"));
    assert_int_equal(test_server_count(fx->srv), 3);
}

static void test_lro_deadline(void **state)
{
    struct fixture *fx = *state;
    char headers[256];
    snprintf(headers, sizeof(headers), "Azure-AsyncOperation: %s/op/slow\r\n", fx->url);
    push(fx, 202, headers, NULL);
    struct ts_response running = {
        .status = 200, .body = "{\"status\":\"Running\"}", .path_prefix = "/op/slow", .times = -1};
    test_server_push(fx->srv, &running);
    struct qn_http_call_opts opts = fast_opts();
    opts.lro_poll_ms = 50;
    opts.total_timeout_ms = 300;
    struct outcome o = {0};
    int64_t start = qn_clock_ms();
    call(fx, "POST", "/x", "{}", QN_HTTP_CALL_LRO, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_TIMEOUT);
    assert_true(o.at - start < 1000);
    assert_true(test_server_count(fx->srv) >= 3);
}

/* ---- paging ---- */

static void test_paging_three_pages_arm(void **state)
{
    struct fixture *fx = *state;
    char p1[256];
    char p2[256];
    snprintf(p1, sizeof(p1),
             "{\"value\":[{\"id\":1},{\"id\":2}],\"nextLink\":\"%s/list?$skiptoken=a%%27b\"}",
             fx->url);
    snprintf(p2, sizeof(p2), "{\"value\":[{\"id\":3}],\"nextLink\":\"%s/list?$skiptoken=c\"}",
             fx->url);
    push(fx, 200, NULL, p1);
    struct ts_response r2 = {.status = 200, .body = p2, .path_prefix = "/list?$skiptoken=a"};
    test_server_push(fx->srv, &r2);
    struct ts_response r3 = {.status = 200,
                             .body = "{\"value\":[{\"id\":4},{\"id\":5}],\"nextLink\":null}",
                             .path_prefix = "/list?$skiptoken=c"};
    test_server_push(fx->srv, &r3);
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    call(fx, "GET", "/list?api-version=2022-04-01", NULL, QN_HTTP_CALL_PAGED, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    assert_int_equal(o.result.pages, 3);
    assert_string_equal(o.body,
                        "{\"value\":[{\"id\":1},{\"id\":2},{\"id\":3},{\"id\":4},{\"id\":5}]}");
    assert_string_equal(test_server_request(fx->srv, 1)->target, "/list?$skiptoken=a%27b");
}

static void test_paging_graph_odata_next_link(void **state)
{
    struct fixture *fx = *state;
    char p1[512];
    snprintf(p1, sizeof(p1),
             "{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#users\","
             "\"@odata.nextLink\":\"%s/v1.0/users?$skiptoken=X\",\"value\":[{\"id\":\"u1\"}]}",
             fx->url);
    push(fx, 200, NULL, p1);
    push(fx, 200, NULL, "{\"value\":[{\"id\":\"u2\"}]}");
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    char url[256];
    snprintf(url, sizeof(url), "%s/v1.0/users", fx->url);
    const char *headers[] = {"ConsistencyLevel: eventual", NULL};
    struct qn_http_call_spec spec = {
        .req = {.method = "GET", .url = url, .headers = headers},
        .flags = QN_HTTP_CALL_PAGED,
        .opts = &opts,
    };
    assert_int_equal(qn_http_call_start(fx->http, &spec, on_call, &o, NULL, NULL), QN_OK);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    assert_string_equal(o.body, "{\"value\":[{\"id\":\"u1\"},{\"id\":\"u2\"}]}");
    /* the caller's headers go with every page */
    char v[64];
    assert_string_equal(
        ts_header(test_server_request(fx->srv, 1), "ConsistencyLevel", v, sizeof(v)), "eventual");
}

static void test_paging_bounds_and_origin(void **state)
{
    struct fixture *fx = *state;
    char page[256];
    snprintf(page, sizeof(page), "{\"value\":[1],\"nextLink\":\"%s/more\"}", fx->url);
    struct ts_response endless = {.status = 200, .body = page, .times = -1};
    test_server_push(fx->srv, &endless);
    struct qn_http_call_opts opts = fast_opts();
    opts.max_pages = 2;
    struct outcome o = {0};
    call(fx, "GET", "/list", NULL, QN_HTTP_CALL_PAGED, &opts, &o);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_TOO_BIG);
    assert_int_equal(test_server_count(fx->srv), 2);

    test_server_clear(fx->srv);
    push(fx, 200, NULL, "{\"value\":[1],\"nextLink\":\"https://attacker.example/steal\"}");
    struct outcome o2 = {0};
    call(fx, "GET", "/list", NULL, QN_HTTP_CALL_PAGED, &opts, &o2);
    run_until(fx->loop, &o2.done);
    assert_int_equal(o2.code, QN_ERR_HTTP_PERMANENT);
    assert_int_equal(test_server_count(fx->srv), 3);

    push(fx, 200, NULL, "not json");
    struct outcome o3 = {0};
    call(fx, "GET", "/list", NULL, QN_HTTP_CALL_PAGED, &opts, &o3);
    run_until(fx->loop, &o3.done);
    assert_int_equal(o3.code, QN_ERR_PARSE);
}

static qn_err_t on_page(const struct qn_http_response *page, void *opaque, struct qn_error *err)
{
    (void)err;
    struct outcome *o = opaque;
    assert_true(page->body.len > 0);
    o->pages_seen++;
    return QN_OK;
}

static void test_paging_page_callback(void **state)
{
    struct fixture *fx = *state;
    char p1[256];
    snprintf(p1, sizeof(p1), "{\"value\":[1,2],\"nextLink\":\"%s/p2\"}", fx->url);
    push(fx, 200, NULL, p1);
    push(fx, 200, NULL, "{\"value\":[3]}");
    struct qn_http_call_opts opts = fast_opts();
    struct outcome o = {0};
    char url[256];
    snprintf(url, sizeof(url), "%s/p1", fx->url);
    struct qn_http_call_spec spec = {
        .req = {.method = "GET", .url = url},
        .flags = QN_HTTP_CALL_PAGED,
        .opts = &opts,
        .page_fn = on_page,
    };
    assert_int_equal(qn_http_call_start(fx->http, &spec, on_call, &o, NULL, NULL), QN_OK);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    assert_int_equal(o.result.pages, 2);
    assert_int_equal(o.pages_seen, 2);
    /* the final body is the last page, not an accumulation */
    assert_string_equal(o.body, "{\"value\":[3]}");
}

/* ---- gate, cancellation ---- */

struct gate_state {
    int admits;
    int observed;
    int released;
    bool fail_first;
};

static void gate_admit(struct qn_http_call *c, void *opaque)
{
    struct gate_state *g = opaque;
    g->admits++;
    assert_string_equal(qn_http_call_method(c), g->admits == 1 ? "POST" : "POST");
    if (g->fail_first && g->admits == 1) {
        struct qn_error err = {0};
        qn_error_set(&err, QN_ERR_HTTP_TRANSIENT, "token endpoint busy");
        qn_http_call_admit(c, NULL, &err);
        return;
    }
    qn_http_call_admit(c, "Authorization: Bearer gate-token", NULL);
}

static void gate_observe(struct qn_http_call *c, const struct qn_http_response *resp, void *opaque)
{
    (void)c;
    (void)resp;
    struct gate_state *g = opaque;
    g->observed++;
}

static void gate_release(struct qn_http_call *c, void *opaque)
{
    (void)c;
    struct gate_state *g = opaque;
    g->released++;
}

static void test_gate_admits_every_exchange(void **state)
{
    struct fixture *fx = *state;
    push(fx, 503, NULL, NULL);
    push(fx, 200, NULL, "{}");
    struct gate_state g = {.fail_first = true};
    struct qn_http_gate gate = {gate_admit, gate_observe, gate_release, &g};
    struct qn_http_call_opts opts = fast_opts();
    char url[256];
    snprintf(url, sizeof(url), "%s/gated", fx->url);
    struct qn_http_call_spec spec = {
        .req = {.method = "POST", .url = url},
        .flags = QN_HTTP_CALL_RETRY_UNSAFE,
        .opts = &opts,
        .gate = &gate,
    };
    struct outcome o = {0};
    assert_int_equal(qn_http_call_start(fx->http, &spec, on_call, &o, NULL, NULL), QN_OK);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_OK);
    /* refused once by the gate, then a 503, then success */
    assert_int_equal(g.admits, 3);
    assert_int_equal(g.observed, 2);
    assert_int_equal(g.released, 1);
    assert_int_equal(test_server_count(fx->srv), 2);
    char v[64];
    assert_string_equal(ts_header(test_server_request(fx->srv, 1), "Authorization", v, sizeof(v)),
                        "Bearer gate-token");
}

static void gate_hold(struct qn_http_call *c, void *opaque)
{
    (void)c;
    struct gate_state *g = opaque;
    g->admits++; /* never answers: like a rate-limit queue that is far too long */
}

static void test_gate_holding_past_deadline_times_out(void **state)
{
    struct fixture *fx = *state;
    struct gate_state g = {0};
    struct qn_http_gate gate = {gate_hold, NULL, gate_release, &g};
    struct qn_http_call_opts opts = fast_opts();
    opts.total_timeout_ms = 150;
    char url[256];
    snprintf(url, sizeof(url), "%s/held", fx->url);
    struct qn_http_call_spec spec = {
        .req = {.method = "GET", .url = url}, .opts = &opts, .gate = &gate};
    struct outcome o = {0};
    int64_t start = qn_clock_ms();
    assert_int_equal(qn_http_call_start(fx->http, &spec, on_call, &o, NULL, NULL), QN_OK);
    run_until(fx->loop, &o.done);
    assert_int_equal(o.code, QN_ERR_TIMEOUT);
    assert_true(o.at - start >= 140 && o.at - start < 1000);
    assert_int_equal(g.admits, 1);
    assert_int_equal(g.released, 1);
    assert_int_equal(test_server_count(fx->srv), 0);
}

static void test_cancel_in_flight(void **state)
{
    struct fixture *fx = *state;
    struct ts_response slow = {.status = 200, .body = "{}", .delay_ms = 300};
    test_server_push(fx->srv, &slow);
    struct gate_state g = {0};
    struct qn_http_gate gate = {gate_admit, NULL, gate_release, &g};
    char url[256];
    snprintf(url, sizeof(url), "%s/slow", fx->url);
    struct qn_http_call_spec spec = {.req = {.method = "POST", .url = url}, .gate = &gate};
    struct outcome o = {0};
    struct qn_http_call *c = NULL;
    assert_int_equal(qn_http_call_start(fx->http, &spec, on_call, &o, &c, NULL), QN_OK);
    int64_t until = qn_clock_ms() + WALL_LIMIT_MS;
    while (test_server_count(fx->srv) == 0 && qn_clock_ms() < until) {
        assert_int_equal(qn_loop_run_once(fx->loop, 10), QN_OK);
    }
    assert_int_equal(qn_http_inflight(fx->http), 1);
    qn_http_call_cancel(c);
    assert_int_equal(g.released, 1);
    assert_int_equal(qn_http_inflight(fx->http), 0);
    run_for(fx->loop, 50);
    assert_int_equal(o.done, 0);

    /* a call still waiting for its first exchange, and raw exchanges, cancel just as well */
    struct outcome o2 = {0};
    assert_int_equal(qn_http_call_start(fx->http, &spec, on_call, &o2, &c, NULL), QN_OK);
    qn_http_call_cancel(c);
    struct qn_http_req *r = NULL;
    struct qn_http_request req = {.method = "GET", .url = url};
    assert_int_equal(qn_http_submit(fx->http, &req, on_done, &o2, &r, NULL), QN_OK);
    qn_http_req_cancel(r);
    /* and the client can be freed with calls in flight (teardown does it) */
    static struct outcome never = {0};
    spec.gate = NULL;
    assert_int_equal(qn_http_call_start(fx->http, &spec, on_call, &never, NULL, NULL), QN_OK);
    run_for(fx->loop, 30);
    assert_int_equal(o2.done, 0);
}

/* ---- helpers ---- */

static void test_url_helpers(void **state)
{
    (void)state;
    struct qn_buf b;
    qn_buf_init(&b, 256);
    assert_int_equal(qn_buf_append_str(&b, "https://graph.microsoft.com/v1.0/users"), QN_OK);
    struct qn_error err = {0};
    assert_int_equal(qn_http_path_segment_append(&b, "a.b+c@contoso.com", &err), QN_OK);
    assert_int_equal(qn_http_query_append(&b, "$filter", "principalId eq 'x&y'"), QN_OK);
    assert_int_equal(qn_http_query_append(&b, "api-version", "2022-04-01"), QN_OK);
    assert_string_equal(qn_buf_cstr(&b), "https://graph.microsoft.com/v1.0/users/"
                                         "a.b%2Bc%40contoso.com?%24filter=principalId%20eq%20%27x"
                                         "%26y%27&api-version=2022-04-01");
    assert_int_equal(qn_http_path_segment_append(&b, "..", &err), QN_ERR_INVALID);
    assert_int_equal(qn_http_path_segment_append(&b, "", &err), QN_ERR_INVALID);
    assert_int_equal(qn_http_path_segment_append(&b, "a/b", &err), QN_ERR_INVALID);
    assert_int_equal(qn_http_path_segment_append(&b, "a\nb", &err), QN_ERR_INVALID);
    qn_buf_fini(&b);

    char origin[128];
    assert_int_equal(qn_http_url_origin("https://Management.Azure.com/x?y", origin, sizeof(origin)),
                     QN_OK);
    assert_string_equal(origin, "https://management.azure.com:443");
    assert_int_equal(qn_http_url_origin("http://169.254.169.254/metadata", origin, sizeof(origin)),
                     QN_OK);
    assert_string_equal(origin, "http://169.254.169.254:80");
    assert_int_equal(qn_http_url_origin("https://127.0.0.1:8443", origin, sizeof(origin)), QN_OK);
    assert_string_equal(origin, "https://127.0.0.1:8443");
    assert_int_equal(qn_http_url_origin("ftp://x/", origin, sizeof(origin)), QN_ERR_INVALID);
    assert_int_equal(qn_http_url_origin("/relative", origin, sizeof(origin)), QN_ERR_INVALID);
}

static void test_uuid4(void **state)
{
    (void)state;
    char a[QN_UUID_STR_LEN + 1];
    char b[QN_UUID_STR_LEN + 1];
    assert_int_equal(qn_uuid4(a), QN_OK);
    assert_int_equal(qn_uuid4(b), QN_OK);
    assert_true(is_uuid4(a));
    assert_true(is_uuid4(b));
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_round_trip_captures_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_sends_body_and_fresh_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_ca_fails_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_http_and_bad_requests_refused, setup, teardown),
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_error_body_forms),
        cmocka_unit_test(test_error_body_reference_payloads),
        cmocka_unit_test_setup_teardown(test_error_response_is_parsed_and_mapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_is_transient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_reuses_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_retry_after_then_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_exhausted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_not_replayed_unless_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_retry_after_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lro_azure_async_operation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lro_location, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lro_failed_and_foreign_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lro_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging_three_pages_arm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging_graph_odata_next_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging_bounds_and_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging_page_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_admits_every_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_holding_past_deadline_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
        cmocka_unit_test(test_url_helpers),
        cmocka_unit_test(test_uuid4),
    };
    return cmocka_run_group_tests_name("http", tests, group_setup, group_teardown);
}
