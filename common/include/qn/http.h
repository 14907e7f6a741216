/*
 * http.h - the asynchronous HTTPS client on the event loop, and the Azure call engine on top.
 *
 * Transport: ONE libcurl multi handle per client, driven by the qn_loop (CURLMOPT_SOCKETFUNCTION
 * and CURLMOPT_TIMERFUNCTION bridged to qn_loop fd watchers and a loop timer). No threads, no
 * blocking, no sleeps. Connections are kept alive and shared; HTTP/2 is negotiated over TLS and
 * multiplexed, falling back to HTTP/1.1. TLS peer and host verification is always on and cannot
 * be turned off; the CA file is configurable. Only https:// URLs are accepted, unless a request
 * carries QN_HTTP_ALLOW_PLAIN (IMDS at http://169.254.169.254, loopback tests), and a plain-HTTP
 * request may not carry an Authorization header. Redirects are never followed.
 *
 * Every request sends x-ms-client-request-id: a fresh UUIDv4 from getrandom, kept across the
 * retries of one call's request (so the activity log's httpRequest.clientRequestId names every
 * attempt of it), fresh again for each LRO poll and page. Responses capture
 * x-ms-request-id, x-ms-correlation-request-id, request-id (Graph), Retry-After, Location,
 * Azure-AsyncOperation and the x-ms-ratelimit-remaining-* counters; bodies are capped.
 * CURLcode and HTTP status are mapped to qn_err_t here and nowhere else:
 *   429, 408, 5xx (but 501/505), timeouts, connection failures -> QN_ERR_HTTP_TRANSIENT
 *   401 -> QN_ERR_AUTH; 404 -> QN_ERR_NOT_FOUND; other 4xx -> QN_ERR_HTTP_PERMANENT
 *   TLS verification failure -> QN_ERR_AUTH ("certificate verify failed: ...")
 *   body over the cap -> QN_ERR_TOO_BIG
 * Error bodies are parsed for code and message in every Azure form (ARM {"error":{...}}, ARM
 * top-level {"code","message"}, Graph, and the identity platform's {"error","error_description"}).
 *
 * Call engine (qn_http_call_*): one logical Azure operation over several HTTP exchanges:
 * retries of transient failures with full-jitter backoff that honours Retry-After; long-running
 * operations (201/202 + Azure-AsyncOperation, else Location) polled to completion; paging through
 * nextLink / @odata.nextLink. An optional gate runs before every exchange (the Azure client uses
 * it for rate limiting and bearer tokens). Follow-up URLs from the server must stay on the origin
 * of the first request, so a bearer token is never sent elsewhere.
 *
 * Ownership: the client borrows its loop (which must outlive it). Requests copy everything they
 * are given. Callbacks run on the loop thread, never from inside the call that started the
 * request. Do not free the client from inside one of its callbacks.
 */
#ifndef QN_HTTP_H
#define QN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qn/backoff.h"
#include "qn/buf.h"
#include "qn/err.h"
#include "qn/loop.h"
#include "qn/metrics.h"

#define QN_UUID_STR_LEN      36
#define QN_HTTP_ID_LEN       128 /* storage for captured request ids, NUL included */
#define QN_HTTP_MAX_BODY     ((size_t)16 * 1024 * 1024)
#define QN_HTTP_MAX_URL      16384 /* Azure requires at least 4 KB for Location/AsyncOperation */
#define QN_HTTP_ERR_CODE_LEN 96
#define QN_HTTP_ERR_MSG_LEN  256

/* Request flags. */
#define QN_HTTP_ALLOW_PLAIN     0x1u /* accept an http:// URL (IMDS, loopback) */
#define QN_HTTP_SECRET_BODY     0x2u /* the request body is secret: wiped when freed */
#define QN_HTTP_SECRET_RESPONSE 0x4u /* the response body is secret: wiped when freed */

/* x-ms-ratelimit-remaining-* counters captured from responses (-1 = not sent). */
enum qn_http_rl_header {
    QN_HTTP_RL_SUB_READS = 0,
    QN_HTTP_RL_SUB_WRITES,
    QN_HTTP_RL_SUB_DELETES,
    QN_HTTP_RL_TENANT_READS,
    QN_HTTP_RL_TENANT_WRITES,
    QN_HTTP_RL__COUNT
};

struct qn_http;
struct qn_http_req;
struct qn_http_call;

struct qn_http_config {
    const char *ca_file;        /* may be NULL: the system trust store */
    int64_t timeout_ms;         /* default per-request timeout; 0 = 30 s */
    int64_t connect_timeout_ms; /* 0 = 10 s */
    size_t max_body;            /* default response body cap; 0 = QN_HTTP_MAX_BODY */
    long max_host_connections;  /* 0 = 8 */
    const char *user_agent;     /* NULL = "quench/<version>" */
    struct qn_metrics *metrics; /* may be NULL; borrowed */
};

/* One HTTP exchange. Everything is copied by qn_http_submit. */
struct qn_http_request {
    const char *method;         /* "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE" */
    const char *url;            /* absolute https:// URL (http:// only with QN_HTTP_ALLOW_PLAIN) */
    const char *const *headers; /* NULL or NULL-terminated "Name: value" lines */
    const void *body;           /* may be NULL */
    size_t body_len;
    int64_t timeout_ms;            /* 0 = client default */
    size_t max_body;               /* 0 = client default */
    unsigned flags;                /* QN_HTTP_* */
    const char *client_request_id; /* NULL = a fresh UUIDv4; else a GUID to reuse (retries) */
};

/* The outcome of one exchange. Owned by the client; valid during the callback only. */
struct qn_http_response {
    long status;      /* 0 when no response arrived */
    int http_version; /* 1 or 2; 0 when unknown */
    char client_request_id[QN_UUID_STR_LEN + 1];
    char request_id[QN_HTTP_ID_LEN];       /* x-ms-request-id */
    char correlation_id[QN_HTTP_ID_LEN];   /* x-ms-correlation-request-id */
    char graph_request_id[QN_HTTP_ID_LEN]; /* request-id (Microsoft Graph) */
    int64_t retry_after_ms;                /* parsed Retry-After, -1 if absent */
    char *location;                        /* Location, NULL if absent */
    char *async_operation;                 /* Azure-AsyncOperation, NULL if absent */
    char *content_type;                    /* NULL if absent */
    int64_t rl_remaining[QN_HTTP_RL__COUNT];
    struct qn_buf body;                    /* capped; the callback may take it with qn_buf_detach */
    char error_code[QN_HTTP_ERR_CODE_LEN]; /* from an error body, "" if none */
    char error_message[QN_HTTP_ERR_MSG_LEN];
    bool not_sent;      /* failed before the request could reach the server (connect, DNS) */
    int64_t elapsed_ms; /* submit to completion */
};

/*
 * Completion of one exchange. @p err is NULL on success (a 2xx status), else it holds the mapped
 * code and a message that names the status, error code and request id. @p resp is never NULL.
 */
typedef void (*qn_http_done_fn)(struct qn_http_response *resp,
                                const struct qn_error *err,
                                void *opaque);

/* Fills @p cfg with the defaults. */
void qn_http_config_default(struct qn_http_config *cfg);

/* Creates a client on @p loop; @p cfg may be NULL for defaults and is copied. */
QN_NODISCARD qn_err_t qn_http_new(struct qn_loop *loop,
                                  const struct qn_http_config *cfg,
                                  struct qn_http **out,
                                  struct qn_error *err);

/*
 * Frees the client. Exchanges and calls still in flight are cancelled without their callbacks
 * (their owners must have cancelled or forgotten them). Accepts NULL.
 */
void qn_http_free(struct qn_http *http);

/* @returns the loop the client runs on. */
struct qn_loop *qn_http_loop(const struct qn_http *http);

/*
 * @brief Starts one exchange. @p fn is called exactly once, later, from the loop, unless the
 *        exchange is cancelled first.
 * @param out may be NULL; receives a handle valid until @p fn starts or qn_http_req_cancel.
 * @returns QN_OK; QN_ERR_INVALID for a bad method, URL scheme or header; QN_ERR_NOMEM.
 *          On failure @p fn is never called.
 */
QN_NODISCARD qn_err_t qn_http_submit(struct qn_http *http,
                                     const struct qn_http_request *req,
                                     qn_http_done_fn fn,
                                     void *opaque,
                                     struct qn_http_req **out,
                                     struct qn_error *err);

/* Cancels an exchange in flight; its callback is not called. Accepts NULL. */
void qn_http_req_cancel(struct qn_http_req *req);

/* @returns the number of exchanges in flight. */
size_t qn_http_inflight(const struct qn_http *http);

/*
 * @brief Maps an HTTP status to an error code: QN_OK for 2xx, otherwise as in the table at the
 *        top of this file (1xx and 3xx are permanent: redirects are not followed).
 */
qn_err_t qn_http_status_err(long status);

/*
 * @brief Extracts code and message from an Azure error body: {"error":{"code","message"}}
 *        (ARM and Graph), top-level {"code","message"} (ARM activity log, RP throttling),
 *        {"error":"...","error_description":"..."} (identity platform), and
 *        {"status":"Failed","error":{...}} (async operation). Never fails: unknown shapes leave
 *        "" in both outputs. Outputs are truncated to their sizes and stripped of control bytes.
 * @returns true if a code or message was found.
 */
bool qn_http_error_body_parse(
    const char *body, size_t len, char *code, size_t code_size, char *message, size_t message_size);

/* Writes a random (version 4) UUID in lower-case 8-4-4-4-12 form. @returns QN_ERR_IO if no
 * randomness is available. */
QN_NODISCARD qn_err_t qn_uuid4(char out[QN_UUID_STR_LEN + 1]);

/* ---- URL building: nothing from outside reaches the wire unescaped ---- */

/* Appends @p s percent-encoded: every byte but RFC 3986 unreserved (A-Z a-z 0-9 - . _ ~). */
QN_NODISCARD qn_err_t qn_http_pct_encode(struct qn_buf *out, const char *s, size_t len);

/*
 * @brief Appends "/" and one path segment, percent-encoded.
 * @returns QN_ERR_INVALID for an empty segment, "." or "..", or one holding "/", "\\" or a
 *          control byte.
 */
QN_NODISCARD qn_err_t qn_http_path_segment_append(struct qn_buf *url,
                                                  const char *segment,
                                                  struct qn_error *err);

/* Appends "?name=value" (or "&name=value" if the URL has a query already), value encoded. */
QN_NODISCARD qn_err_t qn_http_query_append(struct qn_buf *url, const char *name, const char *value);

/*
 * @brief Checks that @p url is absolute http(s) and writes its origin ("https://host:port",
 *        lower-case scheme and host, default port made explicit) into @p origin.
 * @returns QN_OK or QN_ERR_INVALID.
 */
QN_NODISCARD qn_err_t qn_http_url_origin(const char *url, char *origin, size_t origin_size);

/* ---- the call engine ---- */

#define QN_HTTP_CALL_LRO          0x1u /* follow 201/202 with Azure-AsyncOperation or Location */
#define QN_HTTP_CALL_PAGED        0x2u /* follow nextLink / @odata.nextLink */
#define QN_HTTP_CALL_RETRY_UNSAFE 0x4u /* retry POST/PATCH even if the request may have landed */

struct qn_http_call_opts {
    int max_attempts;           /* per exchange (first request, each poll, each page); >= 1 */
    struct qn_backoff backoff;  /* between attempts when there is no Retry-After */
    int64_t max_retry_after_ms; /* longer Retry-After: give up with the transient error */
    int64_t total_timeout_ms;   /* the whole call: retries, polls, pages -> QN_ERR_TIMEOUT */
    int64_t lro_poll_ms;        /* poll interval without Retry-After */
    int64_t lro_min_poll_ms;    /* floor for poll intervals, even with Retry-After: 0 */
    int max_pages;              /* more pages fail the call with QN_ERR_TOO_BIG */
    size_t max_total_body;      /* cap on the accumulated value[] of a paged call */
};

/* Fills @p opts: 4 attempts, backoff 500 ms..30 s, Retry-After up to 120 s, total 5 min, LRO
 * polls every 5 s (at least 1 s), 100 pages, 64 MiB. */
void qn_http_call_opts_default(struct qn_http_call_opts *opts);

/*
 * The gate runs before every exchange of a call. admit() must eventually call
 * qn_http_call_admit() exactly once (it may do so before returning); observe() sees every
 * response; release() is called once when the call ends (done or cancelled) so the gate can drop
 * whatever it still holds for the call (a queued rate-limit waiter, say). All may be NULL except
 * admit; opaque is per call. If the call's total deadline passes while admit() holds it, the call
 * ends with QN_ERR_TIMEOUT (and release() runs).
 */
struct qn_http_gate {
    void (*admit)(struct qn_http_call *call, void *opaque);
    void (*observe)(struct qn_http_call *call, const struct qn_http_response *resp, void *opaque);
    void (*release)(struct qn_http_call *call, void *opaque);
    void *opaque;
};

/* The outcome of a call. Owned by the engine; valid during the callback only. */
struct qn_http_result {
    long status;                       /* final HTTP status, 0 if none */
    struct qn_http_response *response; /* the last exchange's response, NULL if none */
    struct qn_buf *body;               /* the result body (detachable): the last response's body,
                                          or {"value":[...]} with every page's items for a paged
                                          call without a page callback */
    char client_request_id[QN_UUID_STR_LEN + 1]; /* of the initial request (all its attempts) */
    char request_id[QN_HTTP_ID_LEN];             /* x-ms-request-id (or Graph request-id) of it */
    char correlation_id[QN_HTTP_ID_LEN];         /* x-ms-correlation-request-id of it */
    char lro_status[32]; /* terminal Azure-AsyncOperation status, "" if none */
    int attempts;        /* HTTP exchanges made, all stages */
    int pages;           /* pages read by a paged call */
};

typedef void (*qn_http_call_done_fn)(struct qn_http_result *res,
                                     const struct qn_error *err,
                                     void *opaque);

/*
 * Called for each page of a paged call; the page is not accumulated then. Return QN_OK to go on,
 * anything else (with @p err filled) to end the call with that error.
 */
typedef qn_err_t (*qn_http_page_fn)(const struct qn_http_response *page,
                                    void *opaque,
                                    struct qn_error *err);

struct qn_http_call_spec {
    struct qn_http_request req;           /* the initial request (copied) */
    unsigned flags;                       /* QN_HTTP_CALL_* */
    const struct qn_http_call_opts *opts; /* NULL = defaults; copied */
    const struct qn_http_gate *gate;      /* NULL = none; copied */
    qn_http_page_fn page_fn;              /* NULL = accumulate value[] */
};

/*
 * @brief Starts a call. @p fn is called exactly once, later, from the loop, unless the call is
 *        cancelled first; the engine frees the call after @p fn returns.
 * @param out may be NULL; a handle valid until @p fn starts, for qn_http_call_cancel.
 * @returns QN_OK, QN_ERR_INVALID or QN_ERR_NOMEM (then @p fn is never called, but the gate's
 *          release is, if a gate was given).
 */
QN_NODISCARD qn_err_t qn_http_call_start(struct qn_http *http,
                                         const struct qn_http_call_spec *spec,
                                         qn_http_call_done_fn fn,
                                         void *opaque,
                                         struct qn_http_call **out,
                                         struct qn_error *err);

/* Cancels a call: no callback, the gate is released. Not from inside its own callback. NULL ok. */
void qn_http_call_cancel(struct qn_http_call *call);

/*
 * @brief The gate's answer to admit(). @p auth_header is a full header line such as
 *        "Authorization: Bearer ..." or NULL; it is copied and wiped after use. A non-NULL
 *        @p err refuses the exchange: retriable codes are retried with backoff, others end the
 *        call with that error.
 * @remark This may end the call, and so run the done callback and release(), before it
 *         returns: make it the gate's last action and touch no per-call state afterwards.
 */
void qn_http_call_admit(struct qn_http_call *call,
                        const char *auth_header,
                        const struct qn_error *err);

/* The method and URL of the exchange being admitted; valid until it is admitted. */
const char *qn_http_call_method(const struct qn_http_call *call);
const char *qn_http_call_url(const struct qn_http_call *call);

#endif
