/*
 * http.c - libcurl multi on the qn_loop, the one place where CURLcode and HTTP status become
 * qn_err_t, Azure error-body parsing, URL helpers, and the call engine (retries, long-running
 * operations, paging).
 *
 * Transport invariants: every in-flight exchange (struct qn_http_req) owns one easy handle that
 * is added to the client's multi handle, and is linked in the client's list until it completes or
 * is cancelled. curl tells us which fds to watch (socket callback) and when to wake it (timer
 * callback); both are forwarded to the loop, and completions are collected with
 * curl_multi_info_read after every curl_multi_socket_action. Headers and bodies given to curl are
 * copies owned by the exchange; header lines are wiped before they are freed because one of them
 * may be a bearer token.
 *
 * Call invariants: a call is in exactly one state: WAITING (its timer is armed: first start,
 * backoff, or LRO poll interval), ADMITTING (the gate holds it), INFLIGHT (one exchange) or DONE.
 * It is freed right after its callback returns, or by qn_http_call_cancel. The engine never
 * touches a call after handing control to code that may finish it (the gate, the callback).
 */
#include "qn/http.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "qn/log.h"
#include "qn/mem.h"
#include "qn/resid.h"
#include "qn/timefmt.h"

#ifndef QN_VERSION
#    define QN_VERSION "0"
#endif

#define HTTP_DEFAULT_TIMEOUT_MS 30000
#define HTTP_DEFAULT_CONNECT_MS 10000
#define HTTP_DEFAULT_HOST_CONNS 8
#define HTTP_MAX_HEADER_LINES   64
#define HTTP_MAX_TOTAL_BODY     ((size_t)64 * 1024 * 1024)

struct qn_http {
    struct qn_loop *loop;
    CURLM *multi;
    struct qn_loop_timer *timer;
    struct qn_http_config cfg;
    char *ca_file;
    char *user_agent;
    struct qn_http_req *reqs;
    size_t ninflight;
    struct qn_http_call *calls;
};

struct qn_http_req {
    struct qn_http *http;
    struct qn_http_req *prev;
    struct qn_http_req *next;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    unsigned flags;
    qn_http_done_fn fn;
    void *opaque;
    struct qn_http_response resp;
    char errbuf[CURL_ERROR_SIZE];
    char method[16];
    char *url;
    int64_t started;
    int64_t timeout_ms;
    bool too_big;
};

static int curl_users;

/* ---- small helpers ---- */

static void copy_trunc(char *dst, size_t size, const char *src, size_t len)
{
    if (size == 0) {
        return;
    }
    size_t n = len < size - 1 ? len : size - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        /* Text from the network ends up in logs and events: no control bytes. */
        dst[i] =
            (c < 0x20 || c == 0x7f) ? ' ' : (char)c; /* NOLINT(bugprone-narrowing-conversions) */
    }
    dst[n] = '\0';
}

static bool is_token_char(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Writes the URL without its query (they can be long and carry skip tokens) for logs. */
static void url_for_log(const char *url, char *out, size_t size)
{
    size_t n = strcspn(url, "?#");
    copy_trunc(out, size, url, n);
}

void qn_http_config_default(struct qn_http_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    cfg->connect_timeout_ms = HTTP_DEFAULT_CONNECT_MS;
    cfg->max_body = QN_HTTP_MAX_BODY;
    cfg->max_host_connections = HTTP_DEFAULT_HOST_CONNS;
}

qn_err_t qn_uuid4(char out[QN_UUID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    if (qn_random_bytes(b, sizeof(b)) != QN_OK) {
        out[0] = '\0';
        return QN_ERR_IO;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0xf];
    }
    out[o] = '\0';
    return QN_OK;
}

/* ---- error mapping: the only place where HTTP and curl codes become qn_err_t ---- */

qn_err_t qn_http_status_err(long status)
{
    if (status >= 200 && status < 300) {
        return QN_OK;
    }
    if (status == 429 || status == 408 || (status >= 500 && status != 501 && status != 505)) {
        return QN_ERR_HTTP_TRANSIENT;
    }
    if (status == 401) {
        return QN_ERR_AUTH;
    }
    if (status == 404) {
        return QN_ERR_NOT_FOUND;
    }
    return QN_ERR_HTTP_PERMANENT;
}

static qn_err_t map_curl(struct qn_http_req *r, CURLcode cc, struct qn_error *err)
{
    const char *detail = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return qn_error_set(err, QN_ERR_AUTH, "TLS certificate verify failed: %s", detail);
    case CURLE_OPERATION_TIMEDOUT:
        return qn_error_set(err, QN_ERR_HTTP_TRANSIENT, "request timed out after %" PRId64 " ms",
                            r->timeout_ms);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
        r->resp.not_sent = true;
        return qn_error_set(err, QN_ERR_HTTP_TRANSIENT, "connection failed: %s", detail);
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_AGAIN:
    case CURLE_BAD_CONTENT_ENCODING:
        return qn_error_set(err, QN_ERR_HTTP_TRANSIENT, "connection error: %s", detail);
    case CURLE_FILESIZE_EXCEEDED:
        return qn_error_set(err, QN_ERR_TOO_BIG, "response body over %zu bytes", r->resp.body.max);
    case CURLE_WRITE_ERROR:
        if (r->too_big) {
            return qn_error_set(err, QN_ERR_TOO_BIG, "response body over %zu bytes",
                                r->resp.body.max);
        }
        return qn_error_set(err, QN_ERR_NOMEM, "cannot store the response body");
    case CURLE_OUT_OF_MEMORY:
        return qn_error_set(err, QN_ERR_NOMEM, "curl: out of memory");
    case CURLE_UNSUPPORTED_PROTOCOL:
        return qn_error_set(err, QN_ERR_HTTP_PERMANENT, "protocol not allowed: %s", detail);
    default:
        return qn_error_set(err, QN_ERR_HTTP_PERMANENT, "curl error %d: %s", (int)cc, detail);
    }
}

static qn_err_t map_status(const struct qn_http_req *r, struct qn_error *err)
{
    const struct qn_http_response *resp = &r->resp;
    qn_err_t code = qn_http_status_err(resp->status);
    if (code == QN_OK) {
        return QN_OK;
    }
    const char *rid = resp->request_id[0] != '\0' ? resp->request_id : resp->graph_request_id;
    if (resp->error_code[0] != '\0' || resp->error_message[0] != '\0') {
        return qn_error_set(err, code, "HTTP %ld %s: %s (request id %s)", resp->status,
                            resp->error_code, resp->error_message, rid[0] != '\0' ? rid : "-");
    }
    return qn_error_set(err, code, "HTTP %ld for %s (request id %s)", resp->status, r->method,
                        rid[0] != '\0' ? rid : "-");
}

/* ---- error bodies ---- */

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) && item->valuestring != NULL ? item->valuestring : NULL;
}

bool qn_http_error_body_parse(
    const char *body, size_t len, char *code, size_t code_size, char *message, size_t message_size)
{
    if (code_size > 0) {
        code[0] = '\0';
    }
    if (message_size > 0) {
        message[0] = '\0';
    }
    if (body == NULL || len == 0) {
        return false;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (root == NULL) {
        return false;
    }
    const char *c = NULL;
    const char *m = NULL;
    if (cJSON_IsObject(root)) {
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
        if (cJSON_IsObject(error)) {
            /* ARM CloudError / ErrorResponse, Graph, async-operation failures. */
            c = json_str(error, "code");
            m = json_str(error, "message");
        } else if (cJSON_IsString(error)) {
            /* Identity platform: {"error":"invalid_client","error_description":"AADSTS..."} */
            c = error->valuestring;
            m = json_str(root, "error_description");
        } else {
            /* Top-level form: activity log, Compute throttling. */
            c = json_str(root, "code");
            m = json_str(root, "message");
        }
    }
    if (c != NULL) {
        copy_trunc(code, code_size, c, strlen(c));
    }
    if (m != NULL) {
        copy_trunc(message, message_size, m, strlen(m));
    }
    cJSON_Delete(root);
    return c != NULL || m != NULL;
}

/* ---- URL helpers ---- */

static bool unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

qn_err_t qn_http_pct_encode(struct qn_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    qn_err_t rc = QN_OK;
    for (size_t i = 0; rc == QN_OK && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) && !(c >= 0x80)) {
            rc = qn_buf_append_char(out, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 0xf]};
            rc = qn_buf_append(out, esc, sizeof(esc));
        }
    }
    return rc;
}

qn_err_t qn_http_path_segment_append(struct qn_buf *url, const char *segment, struct qn_error *err)
{
    size_t len = strlen(segment);
    if (len == 0 || strcmp(segment, ".") == 0 || strcmp(segment, "..") == 0) {
        return qn_error_set(err, QN_ERR_INVALID, "invalid URL path segment");
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)segment[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') {
            return qn_error_set(err, QN_ERR_INVALID, "slash or control byte in URL path segment");
        }
    }
    qn_err_t rc = qn_buf_append_char(url, '/');
    if (rc == QN_OK) {
        rc = qn_http_pct_encode(url, segment, len);
    }
    if (rc != QN_OK) {
        return qn_error_set(err, rc, "URL too long");
    }
    return QN_OK;
}

qn_err_t qn_http_query_append(struct qn_buf *url, const char *name, const char *value)
{
    const char *cur = qn_buf_cstr(url);
    qn_err_t rc = qn_buf_append_char(url, strchr(cur, '?') != NULL ? '&' : '?');
    if (rc == QN_OK) {
        rc = qn_http_pct_encode(url, name, strlen(name));
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_char(url, '=');
    }
    if (rc == QN_OK) {
        rc = qn_http_pct_encode(url, value, strlen(value));
    }
    return rc;
}

qn_err_t qn_http_url_origin(const char *url, char *origin, size_t origin_size)
{
    CURLU *h = curl_url();
    if (h == NULL) {
        return QN_ERR_NOMEM;
    }
    char *scheme = NULL;
    char *host = NULL;
    char *port = NULL;
    int n = 0;
    qn_err_t rc = QN_ERR_INVALID;
    if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        goto out;
    }
    if (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0) {
        goto out;
    }
    n = snprintf(origin, origin_size, "%s://%s:%s", scheme, host, port);
    if (n < 0 || (size_t)n >= origin_size) {
        goto out;
    }
    for (char *p = origin; *p != '\0'; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    rc = QN_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(h);
    return rc;
}

/* Resolves @p ref (absolute or relative) against @p base. @returns a qn_malloc'd URL or NULL. */
static char *resolve_url(const char *base, const char *ref)
{
    CURLU *h = curl_url();
    if (h == NULL) {
        return NULL;
    }
    char *joined = NULL;
    char *copy = NULL;
    if (curl_url_set(h, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(h, CURLUPART_URL, ref, 0) == CURLUE_OK &&
        curl_url_get(h, CURLUPART_URL, &joined, 0) == CURLUE_OK) {
        copy = qn_strdup(joined);
    }
    curl_free(joined);
    curl_url_cleanup(h);
    return copy;
}

static qn_err_t check_url(const char *url, unsigned flags, bool *plain, struct qn_error *err)
{
    size_t len = strlen(url);
    if (len == 0 || len > QN_HTTP_MAX_URL) {
        return qn_error_set(err, QN_ERR_INVALID, "URL empty or longer than %d bytes",
                            QN_HTTP_MAX_URL);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f) {
            return qn_error_set(err, QN_ERR_INVALID,
                                "URL holds a blank, control or non-ASCII byte");
        }
    }
    if (strncasecmp(url, "https://", 8) == 0) {
        *plain = false;
        return QN_OK;
    }
    if (strncasecmp(url, "http://", 7) == 0) {
        if ((flags & QN_HTTP_ALLOW_PLAIN) == 0) {
            return qn_error_set(err, QN_ERR_INVALID, "plain http:// is not allowed here");
        }
        *plain = true;
        return QN_OK;
    }
    return qn_error_set(err, QN_ERR_INVALID, "only https:// URLs are allowed");
}

/* ---- curl callbacks ---- */

static void process_done(struct qn_http *http);

static void on_fd(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)loop;
    struct qn_http *http = opaque;
    int flags = 0;
    if ((events & QN_LOOP_READ) != 0) {
        flags |= CURL_CSELECT_IN;
    }
    if ((events & QN_LOOP_WRITE) != 0) {
        flags |= CURL_CSELECT_OUT;
    }
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(http->multi, fd, flags, &running);
    if (mc != CURLM_OK) {
        QN_LOG_WARN("http", "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    }
    process_done(http);
}

static void on_multi_timer(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    struct qn_http *http = opaque;
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (mc != CURLM_OK) {
        QN_LOG_WARN("http", "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    }
    process_done(http);
}

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    struct qn_http *http = userp;
    if (what == CURL_POLL_REMOVE || what == CURL_POLL_NONE) {
        qn_loop_unwatch_fd(http->loop, s);
        return 0;
    }
    int events = 0;
    if ((what & CURL_POLL_IN) != 0) {
        events |= QN_LOOP_READ;
    }
    if ((what & CURL_POLL_OUT) != 0) {
        events |= QN_LOOP_WRITE;
    }
    struct qn_error err = {0};
    if (qn_loop_watch_fd(http->loop, s, events, on_fd, http, &err) != QN_OK) {
        QN_LOG_ERROR("http", "cannot watch curl socket %d: %s", (int)s, err.msg);
        return -1;
    }
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct qn_http *http = userp;
    if (timeout_ms < 0) {
        qn_loop_timer_disarm(http->timer);
    } else {
        /* Never call curl_multi_socket_action from here: the loop timer does it. */
        qn_loop_timer_arm(http->timer, timeout_ms);
    }
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct qn_http_req *r = userdata;
    size_t n = size * nmemb;
    if (r->resp.body.len + n > r->resp.body.max) {
        r->too_big = true;
        return 0;
    }
    struct qn_buf *b = &r->resp.body;
    if ((r->flags & QN_HTTP_SECRET_RESPONSE) != 0 && b->len + n + 1 > b->cap) {
        /* Grow by hand so that no copy of a secret is left behind in freed memory. */
        size_t cap = b->cap * 2 > b->len + n + 1 ? b->cap * 2 : b->len + n + 1;
        cap = cap < 4096 ? 4096 : cap;
        cap = cap > b->max + 1 ? b->max + 1 : cap;
        char *data = qn_malloc(cap);
        if (data == NULL) {
            return 0;
        }
        if (b->data != NULL) {
            memcpy(data, b->data, b->len + 1);
            OPENSSL_cleanse(b->data, b->cap);
            qn_free(b->data);
        }
        b->data = data;
        b->cap = cap;
    }
    if (qn_buf_append(b, ptr, n) != QN_OK) {
        return 0;
    }
    return n;
}

static void reset_captured(struct qn_http_response *resp)
{
    resp->request_id[0] = '\0';
    resp->correlation_id[0] = '\0';
    resp->graph_request_id[0] = '\0';
    resp->retry_after_ms = -1;
    qn_free(resp->location);
    resp->location = NULL;
    qn_free(resp->async_operation);
    resp->async_operation = NULL;
    qn_free(resp->content_type);
    resp->content_type = NULL;
    for (int i = 0; i < QN_HTTP_RL__COUNT; i++) {
        resp->rl_remaining[i] = -1;
    }
}

static int64_t parse_count(const char *v, size_t len)
{
    int64_t n = 0;
    if (len == 0) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9' || n > INT64_MAX / 10 - 10) {
            return -1;
        }
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

static void set_owned(char **dst, const char *v, size_t len)
{
    qn_free(*dst);
    *dst = len <= QN_HTTP_MAX_URL ? qn_strndup(v, len) : NULL;
}

static void capture_header(
    struct qn_http_response *resp, const char *name, size_t nlen, const char *v, size_t vlen)
{
    static const struct {
        const char *name;
        enum qn_http_rl_header idx;
    } rl[] = {
        {"x-ms-ratelimit-remaining-subscription-reads", QN_HTTP_RL_SUB_READS},
        {"x-ms-ratelimit-remaining-subscription-writes", QN_HTTP_RL_SUB_WRITES},
        {"x-ms-ratelimit-remaining-subscription-deletes", QN_HTTP_RL_SUB_DELETES},
        {"x-ms-ratelimit-remaining-tenant-reads", QN_HTTP_RL_TENANT_READS},
        {"x-ms-ratelimit-remaining-tenant-writes", QN_HTTP_RL_TENANT_WRITES},
    };

#define HEADER_IS(lit) (nlen == sizeof(lit) - 1 && strncasecmp(name, lit, nlen) == 0)
    if (HEADER_IS("x-ms-request-id")) {
        copy_trunc(resp->request_id, sizeof(resp->request_id), v, vlen);
    } else if (HEADER_IS("x-ms-correlation-request-id")) {
        copy_trunc(resp->correlation_id, sizeof(resp->correlation_id), v, vlen);
    } else if (HEADER_IS("request-id")) {
        copy_trunc(resp->graph_request_id, sizeof(resp->graph_request_id), v, vlen);
    } else if (HEADER_IS("retry-after")) {
        char tmp[64];
        copy_trunc(tmp, sizeof(tmp), v, vlen);
        int64_t ms = -1;
        if (qn_retry_after_parse(tmp, qn_time_epoch_ms(), &ms) == QN_OK) {
            resp->retry_after_ms = ms;
        }
    } else if (HEADER_IS("location")) {
        set_owned(&resp->location, v, vlen);
    } else if (HEADER_IS("azure-asyncoperation")) {
        set_owned(&resp->async_operation, v, vlen);
    } else if (HEADER_IS("content-type")) {
        set_owned(&resp->content_type, v, vlen);
    } else {
        for (size_t i = 0; i < sizeof(rl) / sizeof(rl[0]); i++) {
            if (nlen == strlen(rl[i].name) && strncasecmp(name, rl[i].name, nlen) == 0) {
                resp->rl_remaining[rl[i].idx] = parse_count(v, vlen);
            }
        }
    }
#undef HEADER_IS
}

static size_t on_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
    struct qn_http_req *r = userdata;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(buffer, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue, say): forget the previous one's headers. */
        reset_captured(&r->resp);
        return n;
    }
    const char *colon = memchr(buffer, ':', n);
    if (colon == NULL) {
        return n;
    }
    size_t nlen = (size_t)(colon - buffer);
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
                        v[vlen - 1] == '\t')) {
        vlen--;
    }
    capture_header(&r->resp, buffer, nlen, v, vlen);
    return n;
}

/* ---- exchanges ---- */

static void wipe_slist(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l != NULL; l = l->next) {
        OPENSSL_cleanse(l->data, strlen(l->data));
    }
    curl_slist_free_all(list);
}

static void req_free(struct qn_http_req *r)
{
    if (r->easy != NULL) {
        curl_easy_cleanup(r->easy);
    }
    wipe_slist(r->headers);
    if (r->body != NULL) {
        /* always: a write's body may hold a secret (a new password) even when the caller did
         * not flag it, and request bodies are small */
        OPENSSL_cleanse(r->body, r->body_len);
        qn_free(r->body);
    }
    if ((r->flags & QN_HTTP_SECRET_RESPONSE) != 0 && r->resp.body.data != NULL) {
        OPENSSL_cleanse(r->resp.body.data, r->resp.body.cap);
    }
    qn_buf_fini(&r->resp.body);
    qn_free(r->resp.location);
    qn_free(r->resp.async_operation);
    qn_free(r->resp.content_type);
    qn_free(r->url);
    qn_free(r);
}

static void req_unlink(struct qn_http_req *r)
{
    struct qn_http *http = r->http;
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        http->reqs = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    r->prev = NULL;
    r->next = NULL;
    http->ninflight--;
}

static void count_status(struct qn_http *http, const struct qn_http_response *resp, qn_err_t code)
{
    if (http->cfg.metrics == NULL) {
        return;
    }
    char labels[32];
    if (resp->status >= 100 && resp->status < 600 && code != QN_ERR_TOO_BIG) {
        (void)snprintf(labels, sizeof(labels), "code=\"%ldxx\"", resp->status / 100);
    } else {
        (void)snprintf(labels, sizeof(labels), "code=\"error\"");
    }
    qn_metrics_add(http->cfg.metrics, "quench_http_requests_total", labels, 1);
}

static void log_exchange(const struct qn_http_req *r, qn_err_t code, const struct qn_error *err)
{
    if (qn_log_threshold < QN_LOG_LEVEL_DEBUG) {
        return;
    }
    const struct qn_http_response *resp = &r->resp;
    char url[256];
    url_for_log(r->url, url, sizeof(url));
    const char *rid = resp->request_id[0] != '\0' ? resp->request_id : resp->graph_request_id;
    QN_LOG_DEBUG("http", "%s %s -> %ld in %" PRId64 " ms (client id %s, request id %s)%s%s",
                 r->method, url, resp->status, resp->elapsed_ms, resp->client_request_id,
                 rid[0] != '\0' ? rid : "-", code != QN_OK ? ": " : "",
                 code != QN_OK ? err->msg : "");
}

static void complete(struct qn_http *http, struct qn_http_req *r, CURLcode cc)
{
    (void)curl_multi_remove_handle(http->multi, r->easy);
    req_unlink(r);
    struct qn_http_response *resp = &r->resp;
    long status = 0;
    (void)curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    long version = 0;
    (void)curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &version);
    resp->status = status;
    resp->http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : (version != 0 ? 1 : 0);
    resp->elapsed_ms = qn_clock_ms() - r->started;
    if (resp->status >= 400) {
        (void)qn_http_error_body_parse(resp->body.data, resp->body.len, resp->error_code,
                                       sizeof(resp->error_code), resp->error_message,
                                       sizeof(resp->error_message));
    }
    struct qn_error err = {0};
    qn_err_t code = cc != CURLE_OK ? map_curl(r, cc, &err) : map_status(r, &err);
    count_status(http, resp, code);
    log_exchange(r, code, &err);
    r->fn(resp, code != QN_OK ? &err : NULL, r->opaque);
    req_free(r);
}

static void process_done(struct qn_http *http)
{
    for (;;) {
        int left = 0;
        CURLMsg *msg = curl_multi_info_read(http->multi, &left);
        if (msg == NULL) {
            break;
        }
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        char *priv = NULL;
        (void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        struct qn_http_req *r = (struct qn_http_req *)(void *)priv;
        CURLcode cc = msg->data.result;
        if (r != NULL) {
            complete(http, r, cc);
        }
    }
}

static bool header_named(const char *line, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static qn_err_t check_header(const char *line, bool plain, struct qn_error *err)
{
    const char *colon = strchr(line, ':');
    if (colon == NULL || colon == line) {
        return qn_error_set(err, QN_ERR_INVALID, "header line without a name");
    }
    for (const char *p = line; p < colon; p++) {
        if (!is_token_char((unsigned char)*p)) {
            return qn_error_set(err, QN_ERR_INVALID, "bad header name");
        }
    }
    for (const char *p = colon; *p != '\0'; p++) {
        if (*p == '\r' || *p == '\n' || *p == '\0') {
            return qn_error_set(err, QN_ERR_INVALID, "line break in a header value");
        }
    }
    if (header_named(line, "x-ms-client-request-id")) {
        return qn_error_set(err, QN_ERR_INVALID, "x-ms-client-request-id is set by the client");
    }
    if (plain && header_named(line, "Authorization")) {
        return qn_error_set(err, QN_ERR_INVALID, "refusing to send credentials over plain http");
    }
    return QN_OK;
}

static bool slist_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l == NULL) {
        return false;
    }
    *list = l;
    return true;
}

static qn_err_t build_headers(struct qn_http_req *r,
                              const struct qn_http_request *req,
                              bool plain,
                              struct qn_error *err)
{
    bool has_accept = false;
    bool has_ctype = false;
    size_t count = 0;
    for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
        qn_err_t rc = check_header(*h, plain, err);
        if (rc != QN_OK) {
            return rc;
        }
        if (++count > HTTP_MAX_HEADER_LINES) {
            return qn_error_set(err, QN_ERR_INVALID, "too many header lines");
        }
        has_accept = has_accept || header_named(*h, "Accept");
        has_ctype = has_ctype || header_named(*h, "Content-Type");
        if (!slist_add(&r->headers, *h)) {
            return qn_error_set(err, QN_ERR_NOMEM, "cannot copy headers");
        }
    }
    char line[64];
    (void)snprintf(line, sizeof(line), "x-ms-client-request-id: %s", r->resp.client_request_id);
    bool ok = slist_add(&r->headers, line) &&
              slist_add(&r->headers, "x-ms-return-client-request-id: true") &&
              slist_add(&r->headers, "Expect:");
    if (ok && !has_accept) {
        ok = slist_add(&r->headers, "Accept: application/json");
    }
    if (ok && !has_ctype && req->body_len > 0) {
        ok = slist_add(&r->headers, "Content-Type: application/json");
    }
    return ok ? QN_OK : qn_error_set(err, QN_ERR_NOMEM, "cannot copy headers");
}

static bool method_known(const char *m)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(m, methods[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Sets the request method and body (POST, PUT and PATCH always send one, maybe empty). */
static unsigned setup_method(CURL *e, const struct qn_http_req *r)
{
    unsigned failed = 0;
    if (strcmp(r->method, "GET") == 0) {
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    }
    if (strcmp(r->method, "HEAD") == 0) {
        return curl_easy_setopt(e, CURLOPT_NOBODY, 1L) != CURLE_OK;
    }
    if (strcmp(r->method, "POST") != 0) {
        failed |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method) != CURLE_OK;
    }
    if (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PATCH") == 0) {
        /* libcurl silently resends a request whose reused connection died before any response
         * byte; for a request that is not safe to repeat that could land it twice. A fresh
         * connection has no such retry: the failure reaches the call engine, which decides. */
        failed |= curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK;
    }
    if (strcmp(r->method, "DELETE") != 0 || r->body_len > 0) {
        failed |=
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len) != CURLE_OK;
        failed |=
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body != NULL ? r->body : "") != CURLE_OK;
    }
    return failed;
}

static qn_err_t setup_easy(struct qn_http *http, struct qn_http_req *r, bool plain)
{
    CURL *e = r->easy;
    unsigned failed = 0;
    failed |= curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)r) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_URL, r->url) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    failed |=
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, plain ? "http,https" : "https") != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L) != CURLE_OK;
    /* TLS verification is not configurable: it is always on. */
    failed |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK;
    if (http->ca_file != NULL) {
        failed |= curl_easy_setopt(e, CURLOPT_CAINFO, http->ca_file) != CURLE_OK;
    }
    if (plain) {
        /* IMDS and loopback must never go through a proxy. */
        failed |= curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK;
    }
    failed |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)http->cfg.connect_timeout_ms) !=
              CURLE_OK;
    failed |=
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->resp.body.max) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)r) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)r) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_USERAGENT, http->user_agent) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    failed |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
    failed |= setup_method(e, r);
    return failed == 0 ? QN_OK : QN_ERR_INVALID;
}

/* Gives @p r its client request id and copies of the URL and body. */
static qn_err_t
copy_request(struct qn_http_req *r, const struct qn_http_request *req, struct qn_error *err)
{
    if (req->client_request_id != NULL) {
        if (!qn_is_guid(req->client_request_id)) {
            return qn_error_set(err, QN_ERR_INVALID, "x-ms-client-request-id must be a GUID");
        }
        (void)snprintf(r->resp.client_request_id, sizeof(r->resp.client_request_id), "%s",
                       req->client_request_id);
    } else if (qn_uuid4(r->resp.client_request_id) != QN_OK) {
        return qn_error_set(err, QN_ERR_IO, "no randomness for x-ms-client-request-id");
    }
    r->url = qn_strdup(req->url);
    if (r->url == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot copy the URL");
    }
    if (req->body_len > 0) {
        r->body = qn_malloc(req->body_len);
        if (r->body == NULL) {
            return qn_error_set(err, QN_ERR_NOMEM, "cannot copy the request body");
        }
        memcpy(r->body, req->body, req->body_len);
        r->body_len = req->body_len;
    }
    return QN_OK;
}

qn_err_t qn_http_submit(struct qn_http *http,
                        const struct qn_http_request *req,
                        qn_http_done_fn fn,
                        void *opaque,
                        struct qn_http_req **out,
                        struct qn_error *err)
{
    if (req->method == NULL || !method_known(req->method)) {
        return qn_error_set(err, QN_ERR_INVALID, "unsupported HTTP method");
    }
    if (req->url == NULL) {
        return qn_error_set(err, QN_ERR_INVALID, "no URL");
    }
    bool plain = false;
    CURLMcode mc = CURLM_OK;
    qn_err_t rc = check_url(req->url, req->flags, &plain, err);
    if (rc != QN_OK) {
        return rc;
    }
    struct qn_http_req *r = qn_calloc(1, sizeof(*r));
    if (r == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a request");
    }
    r->http = http;
    r->fn = fn;
    r->opaque = opaque;
    r->flags = req->flags;
    (void)snprintf(r->method, sizeof(r->method), "%s", req->method);
    r->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : http->cfg.timeout_ms;
    qn_buf_init(&r->resp.body, req->max_body > 0 ? req->max_body : http->cfg.max_body);
    r->resp.retry_after_ms = -1;
    for (int i = 0; i < QN_HTTP_RL__COUNT; i++) {
        r->resp.rl_remaining[i] = -1;
    }
    rc = copy_request(r, req, err);
    if (rc != QN_OK) {
        goto fail;
    }
    rc = build_headers(r, req, plain, err);
    if (rc != QN_OK) {
        goto fail;
    }
    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        rc = qn_error_set(err, QN_ERR_NOMEM, "curl_easy_init failed");
        goto fail;
    }
    rc = setup_easy(http, r, plain);
    if (rc != QN_OK) {
        qn_error_set(err, rc, "curl rejected a request option");
        goto fail;
    }
    r->started = qn_clock_ms();
    mc = curl_multi_add_handle(http->multi, r->easy);
    if (mc != CURLM_OK) {
        rc = qn_error_set(err, QN_ERR_NOMEM, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        goto fail;
    }
    r->next = http->reqs;
    if (http->reqs != NULL) {
        http->reqs->prev = r;
    }
    http->reqs = r;
    http->ninflight++;
    if (out != NULL) {
        *out = r;
    }
    return QN_OK;
fail:
    req_free(r);
    return rc;
}

void qn_http_req_cancel(struct qn_http_req *req)
{
    if (req == NULL) {
        return;
    }
    (void)curl_multi_remove_handle(req->http->multi, req->easy);
    req_unlink(req);
    req_free(req);
}

size_t qn_http_inflight(const struct qn_http *http)
{
    return http->ninflight;
}

struct qn_loop *qn_http_loop(const struct qn_http *http)
{
    return http->loop;
}

/* ---- the client ---- */

static void call_destroy(struct qn_http_call *call);

static void apply_defaults(struct qn_http_config *cfg)
{
    struct qn_http_config defaults;
    qn_http_config_default(&defaults);
    if (cfg->timeout_ms <= 0) {
        cfg->timeout_ms = defaults.timeout_ms;
    }
    if (cfg->connect_timeout_ms <= 0) {
        cfg->connect_timeout_ms = defaults.connect_timeout_ms;
    }
    if (cfg->max_body == 0) {
        cfg->max_body = defaults.max_body;
    }
    if (cfg->max_host_connections <= 0) {
        cfg->max_host_connections = defaults.max_host_connections;
    }
}

/* Creates the multi handle and bridges it to the loop. */
static qn_err_t setup_multi(struct qn_http *http, struct qn_error *err)
{
    http->multi = curl_multi_init();
    if (http->multi == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "curl_multi_init failed");
    }
    CURLM *m = http->multi;
    unsigned failed = 0;
    failed |= curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK;
    failed |= curl_multi_setopt(m, CURLMOPT_SOCKETDATA, (void *)http) != CURLM_OK;
    failed |= curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK;
    failed |= curl_multi_setopt(m, CURLMOPT_TIMERDATA, (void *)http) != CURLM_OK;
    failed |= curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) != CURLM_OK;
    failed |= curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, http->cfg.max_host_connections) !=
              CURLM_OK;
    if (failed != 0) {
        return qn_error_set(err, QN_ERR_INVALID, "curl rejected a multi option");
    }
    return QN_OK;
}

qn_err_t qn_http_new(struct qn_loop *loop,
                     const struct qn_http_config *cfg,
                     struct qn_http **out,
                     struct qn_error *err)
{
    struct qn_http *http = qn_calloc(1, sizeof(*http));
    if (http == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate the http client");
    }
    http->loop = loop;
    if (cfg != NULL) {
        http->cfg = *cfg;
    } else {
        qn_http_config_default(&http->cfg);
    }
    apply_defaults(&http->cfg);
    if (curl_users++ == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        curl_users--;
        qn_free(http);
        return qn_error_set(err, QN_ERR_NOMEM, "curl_global_init failed");
    }
    qn_err_t rc = QN_OK;
    http->ca_file = http->cfg.ca_file != NULL ? qn_strdup(http->cfg.ca_file) : NULL;
    http->user_agent =
        qn_strdup(http->cfg.user_agent != NULL ? http->cfg.user_agent : "quench/" QN_VERSION);
    if (http->user_agent == NULL || (http->cfg.ca_file != NULL && http->ca_file == NULL)) {
        rc = qn_error_set(err, QN_ERR_NOMEM, "cannot copy the http configuration");
    }
    http->cfg.ca_file = http->ca_file;
    http->cfg.user_agent = http->user_agent;
    if (rc == QN_OK) {
        rc = qn_loop_timer_new(loop, on_multi_timer, http, &http->timer, err);
    }
    if (rc == QN_OK) {
        rc = setup_multi(http, err);
    }
    if (rc != QN_OK) {
        qn_http_free(http);
        return rc;
    }
    if (http->cfg.metrics != NULL &&
        (qn_metrics_describe(http->cfg.metrics, "quench_http_requests_total", QN_METRIC_COUNTER,
                             "HTTP exchanges by status class.") != QN_OK ||
         qn_metrics_describe(http->cfg.metrics, "quench_http_retries_total", QN_METRIC_COUNTER,
                             "HTTP exchanges retried after a failure.") != QN_OK)) {
        QN_LOG_WARN("http", "cannot describe the http metrics");
    }
    *out = http;
    return QN_OK;
}

void qn_http_free(struct qn_http *http)
{
    if (http == NULL) {
        return;
    }
    while (http->calls != NULL) {
        qn_http_call_cancel(http->calls);
    }
    while (http->reqs != NULL) {
        qn_http_req_cancel(http->reqs);
    }
    if (http->multi != NULL) {
        curl_multi_cleanup(http->multi);
    }
    qn_loop_timer_free(http->timer);
    qn_free(http->ca_file);
    qn_free(http->user_agent);
    qn_free(http);
    if (--curl_users == 0) {
        curl_global_cleanup();
    }
}

/* ---- the call engine ---- */

enum call_stage { STAGE_INITIAL, STAGE_LRO_ASYNC, STAGE_LRO_LOCATION, STAGE_PAGE };

enum call_state { CALL_WAITING, CALL_ADMITTING, CALL_INFLIGHT, CALL_DONE };

struct qn_http_call {
    struct qn_http *http;
    struct qn_http_call *prev;
    struct qn_http_call *next;
    qn_http_call_done_fn fn;
    void *opaque;
    struct qn_http_call_opts opts;
    struct qn_http_gate gate;
    bool has_gate;
    qn_http_page_fn page_fn;
    unsigned flags;
    /* the initial request, copied */
    char method[16];
    char **headers; /* NULL-terminated */
    char *body;
    size_t body_len;
    int64_t req_timeout_ms;
    size_t req_max_body;
    unsigned req_flags;
    char origin[256];
    char client_request_id[QN_UUID_STR_LEN + 1]; /* reused by the initial request's retries */
    /* progress */
    enum call_stage stage;
    enum call_state state;
    char *url; /* of the current exchange */
    int attempt;
    struct qn_loop_timer *timer;
    struct qn_http_req *req;
    int64_t deadline;
    struct qn_buf acc;
    bool accumulate;
    struct qn_http_result result;
};

void qn_http_call_opts_default(struct qn_http_call_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->max_attempts = 4;
    opts->backoff.base_ms = 500;
    opts->backoff.cap_ms = 30000;
    opts->max_retry_after_ms = 120000;
    opts->total_timeout_ms = 300000;
    opts->lro_poll_ms = 5000;
    opts->lro_min_poll_ms = 1000;
    opts->max_pages = 100;
    opts->max_total_body = HTTP_MAX_TOTAL_BODY;
}

static void call_unlink(struct qn_http_call *call)
{
    struct qn_http *http = call->http;
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else if (http->calls == call) {
        http->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    call->prev = NULL;
    call->next = NULL;
}

static void call_destroy(struct qn_http_call *call)
{
    call_unlink(call);
    if (call->has_gate && call->gate.release != NULL) {
        call->gate.release(call, call->gate.opaque);
    }
    qn_loop_timer_free(call->timer);
    if (call->headers != NULL) {
        for (char **h = call->headers; *h != NULL; h++) {
            qn_free_secret(*h);
        }
        qn_free(call->headers);
    }
    if (call->body != NULL) {
        OPENSSL_cleanse(call->body, call->body_len); /* see free_req: bodies may hold secrets */
        qn_free(call->body);
    }
    qn_buf_fini(&call->acc);
    qn_free(call->url);
    qn_free(call);
}

void qn_http_call_cancel(struct qn_http_call *call)
{
    if (call == NULL) {
        return;
    }
    if (call->req != NULL) {
        qn_http_req_cancel(call->req);
        call->req = NULL;
    }
    call->state = CALL_DONE;
    call_destroy(call);
}

const char *qn_http_call_method(const struct qn_http_call *call)
{
    return call->stage == STAGE_INITIAL ? call->method : "GET";
}

const char *qn_http_call_url(const struct qn_http_call *call)
{
    return call->url;
}

static void capture_ids(struct qn_http_call *call, const struct qn_http_response *resp)
{
    struct qn_http_result *res = &call->result;
    (void)snprintf(res->client_request_id, sizeof(res->client_request_id), "%s",
                   resp->client_request_id);
    (void)snprintf(res->request_id, sizeof(res->request_id), "%s",
                   resp->request_id[0] != '\0' ? resp->request_id : resp->graph_request_id);
    (void)snprintf(res->correlation_id, sizeof(res->correlation_id), "%s", resp->correlation_id);
}

/* Ends the call: callback, then gate release and free. Nothing may touch @p call afterwards. */
static void
finish(struct qn_http_call *call, struct qn_http_response *resp, const struct qn_error *err)
{
    call->state = CALL_DONE;
    call->req = NULL;
    qn_loop_timer_disarm(call->timer);
    struct qn_http_result *res = &call->result;
    res->status = resp != NULL ? resp->status : 0;
    res->response = resp;
    if (call->accumulate && err == NULL) {
        res->body = &call->acc;
    } else if (resp != NULL) {
        res->body = &resp->body;
    } else {
        qn_buf_reset(&call->acc);
        res->body = &call->acc;
    }
    call_unlink(call);
    call->fn(res, err, call->opaque);
    call_destroy(call);
}

static void
finish_msg(struct qn_http_call *call, struct qn_http_response *resp, qn_err_t code, const char *msg)
{
    struct qn_error err = {0};
    qn_error_set(&err, code, "%s", msg);
    finish(call, resp, &err);
}

static bool method_idempotent(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
           strcmp(m, "DELETE") == 0;
}

static void
on_exchange_done(struct qn_http_response *resp, const struct qn_error *err, void *opaque);

/* Arms the call's timer for the next exchange in @p delay_ms, within the deadline. */
static bool schedule(struct qn_http_call *call, int64_t delay_ms)
{
    int64_t now = qn_clock_ms();
    if (delay_ms < 0) {
        delay_ms = 0;
    }
    if (now + delay_ms >= call->deadline) {
        return false;
    }
    call->state = CALL_WAITING;
    qn_loop_timer_arm(call->timer, delay_ms);
    return true;
}

static void send_exchange(struct qn_http_call *call, const char *auth)
{
    const char *lines[HTTP_MAX_HEADER_LINES + 2];
    size_t n = 0;
    if (call->stage != STAGE_LRO_ASYNC && call->stage != STAGE_LRO_LOCATION) {
        for (char **h = call->headers; *h != NULL && n < HTTP_MAX_HEADER_LINES; h++) {
            /* Pages are GETs without a body: no Content-Type for them. */
            if (call->stage == STAGE_PAGE && header_named(*h, "Content-Type")) {
                continue;
            }
            lines[n++] = *h;
        }
    }
    if (auth != NULL) {
        lines[n++] = auth;
    }
    lines[n] = NULL;
    int64_t left = call->deadline - qn_clock_ms();
    int64_t timeout = call->req_timeout_ms > 0 ? call->req_timeout_ms : call->http->cfg.timeout_ms;
    if (left < timeout) {
        timeout = left > 1 ? left : 1;
    }
    bool initial = call->stage == STAGE_INITIAL;
    struct qn_http_request req = {
        .method = qn_http_call_method(call),
        .url = call->url,
        .headers = lines,
        .body = initial ? call->body : NULL,
        .body_len = initial ? call->body_len : 0,
        .timeout_ms = timeout,
        .max_body = call->req_max_body,
        .flags = call->req_flags & (initial ? ~0U : ~QN_HTTP_SECRET_BODY),
        .client_request_id = initial ? call->client_request_id : NULL,
    };
    struct qn_error err = {0};
    call->attempt++;
    call->result.attempts++;
    call->state = CALL_INFLIGHT;
    qn_err_t rc = qn_http_submit(call->http, &req, on_exchange_done, call, &call->req, &err);
    if (rc != QN_OK) {
        call->req = NULL;
        finish(call, NULL, &err);
    }
}

static void on_call_timer(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    struct qn_http_call *call = opaque;
    if (call->state == CALL_ADMITTING) {
        /* The deadline passed while the gate held the call (a long rate-limit queue, say). */
        finish_msg(call, NULL, QN_ERR_TIMEOUT,
                   "call deadline reached while waiting for admission (rate limit or token)");
        return;
    }
    if (call->has_gate) {
        call->state = CALL_ADMITTING;
        int64_t left = call->deadline - qn_clock_ms();
        qn_loop_timer_arm(call->timer, left > 0 ? left : 0);
        /* The gate may admit (and so even finish the call) before returning. */
        call->gate.admit(call, call->gate.opaque);
        return;
    }
    send_exchange(call, NULL);
}

/* Retry decision after a failed exchange or admission. @returns true if a retry was scheduled. */
static bool try_retry(struct qn_http_call *call,
                      const struct qn_http_response *resp,
                      const struct qn_error *err)
{
    if (!qn_err_is_retriable(err->code) || call->attempt >= call->opts.max_attempts) {
        return false;
    }
    bool replay_safe = call->stage != STAGE_INITIAL || method_idempotent(call->method) ||
                       (call->flags & QN_HTTP_CALL_RETRY_UNSAFE) != 0;
    /* A POST/PATCH is replayed only when it surely did not land: refused before sending or 429. */
    if (!replay_safe && resp != NULL && !resp->not_sent && resp->status != 429) {
        return false;
    }
    int64_t retry_after = resp != NULL ? resp->retry_after_ms : -1;
    if (retry_after > call->opts.max_retry_after_ms) {
        return false;
    }
    int64_t delay =
        qn_backoff_next_ms(&call->opts.backoff, (unsigned)(call->attempt - 1), retry_after);
    if (!schedule(call, delay)) {
        return false;
    }
    if (call->http->cfg.metrics != NULL) {
        qn_metrics_add(call->http->cfg.metrics, "quench_http_retries_total", "", 1);
    }
    QN_LOG_DEBUG("http", "retrying %s in %" PRId64 " ms (attempt %d of %d): %s",
                 qn_http_call_method(call), delay, call->attempt + 1, call->opts.max_attempts,
                 err->msg);
    return true;
}

void qn_http_call_admit(struct qn_http_call *call,
                        const char *auth_header,
                        const struct qn_error *err)
{
    QN_ASSERT(call->state == CALL_ADMITTING);
    qn_loop_timer_disarm(call->timer); /* the admission deadline */
    if (err == NULL) {
        send_exchange(call, auth_header);
        return;
    }
    call->attempt++;
    if (try_retry(call, NULL, err)) {
        return;
    }
    finish(call, NULL, err);
}

/* Switches the call to a new URL from the server, which must stay on the call's origin. */
static qn_err_t
follow(struct qn_http_call *call, enum call_stage stage, const char *ref, struct qn_error *err)
{
    char *next = resolve_url(call->url, ref);
    char origin[sizeof(call->origin)];
    if (next == NULL) {
        return qn_error_set(err, QN_ERR_PARSE, "the server sent an unusable follow-up URL");
    }
    if (strlen(next) > QN_HTTP_MAX_URL ||
        qn_http_url_origin(next, origin, sizeof(origin)) != QN_OK ||
        strcmp(origin, call->origin) != 0) {
        qn_free(next);
        return qn_error_set(err, QN_ERR_HTTP_PERMANENT, "refusing a follow-up URL outside %s",
                            call->origin);
    }
    qn_free(call->url);
    call->url = next;
    call->stage = stage;
    call->attempt = 0;
    return QN_OK;
}

static int64_t poll_delay(const struct qn_http_call *call, const struct qn_http_response *resp)
{
    int64_t d = resp->retry_after_ms >= 0 ? resp->retry_after_ms : call->opts.lro_poll_ms;
    return d < call->opts.lro_min_poll_ms ? call->opts.lro_min_poll_ms : d;
}

static void schedule_poll(struct qn_http_call *call, struct qn_http_response *resp)
{
    if (!schedule(call, poll_delay(call, resp))) {
        char msg[96];
        (void)snprintf(msg, sizeof(msg), "long-running operation not done within %" PRId64 " ms",
                       call->opts.total_timeout_ms);
        finish_msg(call, resp, QN_ERR_TIMEOUT, msg);
    }
}

/* Handles an accepted (201/202) first response of a call with QN_HTTP_CALL_LRO. */
static void start_lro(struct qn_http_call *call, struct qn_http_response *resp)
{
    struct qn_error err = {0};
    qn_err_t rc = QN_OK;
    if (resp->async_operation != NULL) {
        rc = follow(call, STAGE_LRO_ASYNC, resp->async_operation, &err);
    } else if (resp->location != NULL && resp->status == 202) {
        rc = follow(call, STAGE_LRO_LOCATION, resp->location, &err);
    } else {
        finish(call, resp, NULL);
        return;
    }
    if (rc != QN_OK) {
        finish(call, resp, &err);
        return;
    }
    schedule_poll(call, resp);
}

static void on_async_status(struct qn_http_call *call, struct qn_http_response *resp)
{
    cJSON *root =
        cJSON_ParseWithLength(resp->body.data != NULL ? resp->body.data : "", resp->body.len);
    const char *status = root != NULL ? json_str(root, "status") : NULL;
    if (status == NULL) {
        cJSON_Delete(root);
        finish_msg(call, resp, QN_ERR_PARSE, "Azure-AsyncOperation status body has no status");
        return;
    }
    bool succeeded = strcasecmp(status, "Succeeded") == 0;
    bool failed = strcasecmp(status, "Failed") == 0 || strcasecmp(status, "Canceled") == 0 ||
                  strcasecmp(status, "Cancelled") == 0;
    if (succeeded || failed) {
        copy_trunc(call->result.lro_status, sizeof(call->result.lro_status), status,
                   strlen(status));
    }
    cJSON_Delete(root);
    if (succeeded) {
        finish(call, resp, NULL);
    } else if (failed) {
        (void)qn_http_error_body_parse(resp->body.data, resp->body.len, resp->error_code,
                                       sizeof(resp->error_code), resp->error_message,
                                       sizeof(resp->error_message));
        struct qn_error err = {0};
        qn_error_set(&err, QN_ERR_HTTP_PERMANENT, "long-running operation %s: %s: %s",
                     call->result.lro_status, resp->error_code, resp->error_message);
        finish(call, resp, &err);
    } else {
        call->attempt = 0;
        schedule_poll(call, resp);
    }
}

static void on_location_status(struct qn_http_call *call, struct qn_http_response *resp)
{
    if (resp->status != 202) {
        finish(call, resp, NULL);
        return;
    }
    if (resp->location != NULL) {
        struct qn_error err = {0};
        if (follow(call, STAGE_LRO_LOCATION, resp->location, &err) != QN_OK) {
            finish(call, resp, &err);
            return;
        }
    }
    call->attempt = 0;
    schedule_poll(call, resp);
}

static qn_err_t accumulate_items(struct qn_http_call *call, const cJSON *root, struct qn_error *err)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(root, "value");
    if (value != NULL && !cJSON_IsArray(value)) {
        return qn_error_set(err, QN_ERR_PARSE, "page \"value\" is not an array");
    }
    qn_err_t rc = QN_OK;
    if (call->acc.len == 0) {
        rc = qn_buf_append_str(&call->acc, "{\"value\":[");
    }
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, value)
    {
        char *text = cJSON_PrintUnformatted(item);
        if (text == NULL) {
            return qn_error_set(err, QN_ERR_NOMEM, "cannot re-encode a page item");
        }
        bool first = call->acc.len > 0 && call->acc.data[call->acc.len - 1] == '[';
        if (rc == QN_OK && !first) {
            rc = qn_buf_append_char(&call->acc, ',');
        }
        if (rc == QN_OK) {
            rc = qn_buf_append_str(&call->acc, text);
        }
        cJSON_free(text);
        if (rc != QN_OK) {
            break;
        }
    }
    if (rc != QN_OK) {
        return qn_error_set(err, rc, "paged result over %zu bytes", call->acc.max);
    }
    return QN_OK;
}

static void on_page(struct qn_http_call *call, struct qn_http_response *resp)
{
    struct qn_error err = {0};
    call->result.pages++;
    if (call->page_fn != NULL && call->page_fn(resp, call->opaque, &err) != QN_OK) {
        if (err.code == QN_OK) {
            qn_error_set(&err, QN_ERR_INVALID, "page callback stopped the call");
        }
        finish(call, resp, &err);
        return;
    }
    cJSON *root =
        cJSON_ParseWithLength(resp->body.data != NULL ? resp->body.data : "", resp->body.len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        finish_msg(call, resp, QN_ERR_PARSE, "a page is not a JSON object");
        return;
    }
    qn_err_t rc = QN_OK;
    if (call->accumulate) {
        rc = accumulate_items(call, root, &err);
    }
    const char *next = json_str(root, "nextLink");
    if (next == NULL) {
        next = json_str(root, "@odata.nextLink");
    }
    char *next_copy = (rc == QN_OK && next != NULL && next[0] != '\0') ? qn_strdup(next) : NULL;
    bool has_next = rc == QN_OK && next != NULL && next[0] != '\0';
    cJSON_Delete(root);
    if (rc == QN_OK && has_next && next_copy == NULL) {
        rc = qn_error_set(&err, QN_ERR_NOMEM, "cannot copy nextLink");
    }
    if (rc == QN_OK && has_next && call->result.pages >= call->opts.max_pages) {
        rc = qn_error_set(&err, QN_ERR_TOO_BIG, "more than %d pages", call->opts.max_pages);
    }
    if (rc == QN_OK && has_next) {
        rc = follow(call, STAGE_PAGE, next_copy, &err);
    }
    qn_free(next_copy);
    if (rc != QN_OK) {
        finish(call, resp, &err);
        return;
    }
    if (has_next) {
        if (!schedule(call, 0)) {
            finish_msg(call, resp, QN_ERR_TIMEOUT, "paged read did not finish in time");
        }
        return;
    }
    if (call->accumulate && qn_buf_append_str(&call->acc, "]}") != QN_OK) {
        finish_msg(call, resp, QN_ERR_TOO_BIG, "paged result too big");
        return;
    }
    finish(call, resp, NULL);
}

static void
on_exchange_done(struct qn_http_response *resp, const struct qn_error *err, void *opaque)
{
    struct qn_http_call *call = opaque;
    call->req = NULL;
    if (call->stage == STAGE_INITIAL) {
        capture_ids(call, resp);
    }
    if (call->has_gate && call->gate.observe != NULL) {
        call->gate.observe(call, resp, call->gate.opaque);
    }
    if (err != NULL) {
        if (try_retry(call, resp, err)) {
            return;
        }
        if (qn_err_is_retriable(err->code) && qn_clock_ms() + 1 >= call->deadline) {
            struct qn_error late = {0};
            qn_error_set(&late, QN_ERR_TIMEOUT, "call deadline reached: %s", err->msg);
            finish(call, resp, &late);
            return;
        }
        finish(call, resp, err);
        return;
    }
    switch (call->stage) {
    case STAGE_INITIAL:
        if ((call->flags & QN_HTTP_CALL_LRO) != 0 && (resp->status == 201 || resp->status == 202)) {
            start_lro(call, resp);
        } else if ((call->flags & QN_HTTP_CALL_PAGED) != 0) {
            on_page(call, resp);
        } else {
            finish(call, resp, NULL);
        }
        break;
    case STAGE_LRO_ASYNC:
        on_async_status(call, resp);
        break;
    case STAGE_LRO_LOCATION:
        on_location_status(call, resp);
        break;
    case STAGE_PAGE:
        on_page(call, resp);
        break;
    }
}

static qn_err_t
copy_spec(struct qn_http_call *call, const struct qn_http_call_spec *spec, struct qn_error *err)
{
    const struct qn_http_request *req = &spec->req;
    size_t nheaders = 0;
    for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
        nheaders++;
    }
    if (nheaders > HTTP_MAX_HEADER_LINES) {
        return qn_error_set(err, QN_ERR_INVALID, "too many header lines");
    }
    call->headers = qn_calloc(nheaders + 1, sizeof(char *));
    if (call->headers == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot copy headers");
    }
    for (size_t i = 0; i < nheaders; i++) {
        call->headers[i] = qn_strdup(req->headers[i]);
        if (call->headers[i] == NULL) {
            return qn_error_set(err, QN_ERR_NOMEM, "cannot copy headers");
        }
    }
    if (req->body_len > 0) {
        call->body = qn_malloc(req->body_len);
        if (call->body == NULL) {
            return qn_error_set(err, QN_ERR_NOMEM, "cannot copy the request body");
        }
        memcpy(call->body, req->body, req->body_len);
        call->body_len = req->body_len;
    }
    call->url = qn_strdup(req->url);
    if (call->url == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot copy the URL");
    }
    return QN_OK;
}

/* The id every attempt of the initial request sends: the caller's GUID or a fresh UUIDv4. */
static qn_err_t set_client_id(struct qn_http_call *call, const char *given, struct qn_error *err)
{
    if (given == NULL) {
        return qn_uuid4(call->client_request_id) == QN_OK
                   ? QN_OK
                   : qn_error_set(err, QN_ERR_IO, "no randomness for x-ms-client-request-id");
    }
    if (!qn_is_guid(given)) {
        return qn_error_set(err, QN_ERR_INVALID, "x-ms-client-request-id must be a GUID");
    }
    (void)snprintf(call->client_request_id, sizeof(call->client_request_id), "%s", given);
    return QN_OK;
}

/* Copies the caller's options (or the defaults) and repairs values that cannot work. */
static void set_opts(struct qn_http_call *call, const struct qn_http_call_opts *opts)
{
    struct qn_http_call_opts defaults;
    qn_http_call_opts_default(&defaults);
    call->opts = opts != NULL ? *opts : defaults;
    struct qn_http_call_opts *o = &call->opts;
    o->max_attempts = o->max_attempts < 1 ? 1 : o->max_attempts;
    o->max_pages = o->max_pages < 1 ? 1 : o->max_pages;
    o->max_total_body = o->max_total_body == 0 ? defaults.max_total_body : o->max_total_body;
    o->total_timeout_ms =
        o->total_timeout_ms <= 0 ? defaults.total_timeout_ms : o->total_timeout_ms;
}

qn_err_t qn_http_call_start(struct qn_http *http,
                            const struct qn_http_call_spec *spec,
                            qn_http_call_done_fn fn,
                            void *opaque,
                            struct qn_http_call **out,
                            struct qn_error *err)
{
    const struct qn_http_request *req = &spec->req;
    if (spec->gate != NULL && spec->gate->admit == NULL) {
        if (spec->gate->release != NULL) {
            spec->gate->release(NULL, spec->gate->opaque);
        }
        return qn_error_set(err, QN_ERR_INVALID, "a gate needs an admit function");
    }
    struct qn_http_call *call = qn_calloc(1, sizeof(*call));
    if (call == NULL) {
        if (spec->gate != NULL && spec->gate->release != NULL) {
            spec->gate->release(NULL, spec->gate->opaque);
        }
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a call");
    }
    call->http = http;
    call->fn = fn;
    call->opaque = opaque;
    if (spec->gate != NULL) {
        call->gate = *spec->gate;
        call->has_gate = true;
    }
    set_opts(call, spec->opts);
    call->page_fn = spec->page_fn;
    call->flags = spec->flags;
    call->accumulate = (spec->flags & QN_HTTP_CALL_PAGED) != 0 && spec->page_fn == NULL;
    call->req_timeout_ms = req->timeout_ms;
    call->req_max_body = req->max_body;
    call->req_flags = req->flags;
    call->stage = STAGE_INITIAL;
    qn_buf_init(&call->acc, call->opts.max_total_body);
    qn_err_t rc = QN_OK;
    bool plain = false;
    if (req->method == NULL || !method_known(req->method) || req->url == NULL) {
        rc = qn_error_set(err, QN_ERR_INVALID, "a call needs a known method and a URL");
        goto fail;
    }
    (void)snprintf(call->method, sizeof(call->method), "%s", req->method);
    rc = check_url(req->url, req->flags, &plain, err);
    if (rc == QN_OK && qn_http_url_origin(req->url, call->origin, sizeof(call->origin)) != QN_OK) {
        rc = qn_error_set(err, QN_ERR_INVALID, "cannot parse the URL's origin");
    }
    if (rc == QN_OK) {
        rc = copy_spec(call, spec, err);
    }
    if (rc == QN_OK) {
        rc = set_client_id(call, spec->req.client_request_id, err);
    }
    if (rc == QN_OK) {
        rc = qn_loop_timer_new(http->loop, on_call_timer, call, &call->timer, err);
    }
    if (rc != QN_OK) {
        goto fail;
    }
    call->deadline = qn_clock_ms() + call->opts.total_timeout_ms;
    call->next = http->calls;
    if (http->calls != NULL) {
        http->calls->prev = call;
    }
    http->calls = call;
    /* Start from the loop, so that neither the gate nor the callback runs inside this call. */
    call->state = CALL_WAITING;
    qn_loop_timer_arm(call->timer, 0);
    if (out != NULL) {
        *out = call;
    }
    return QN_OK;
fail:
    call_destroy(call);
    return rc;
}
