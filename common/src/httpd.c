/*
 * httpd.c - the /metrics, /healthz and /readyz endpoint, libmicrohttpd driven by the qn_loop.
 *
 * The daemon is started in external-epoll mode (MHD_USE_EPOLL without an internal thread). Its
 * epoll fd is watched for readability, and a loop timer is kept armed from MHD_get_timeout() after
 * every MHD_run(), as libmicrohttpd requires for connection timeouts and buffered data. Handlers
 * therefore run on the loop thread and read the metrics registry and health state without locks.
 * The server borrows the loop and the registry; it owns the daemon and its timer.
 */
#include "qn/httpd.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "qn/buf.h"
#include "qn/log.h"
#include "qn/mem.h"

/* /healthz fails once the last heartbeat is older than this. */
#define HEALTH_MAX_AGE_MS 10000
/* Idle connections are closed after this many seconds. */
#define CONNECTION_TIMEOUT_S 10U
#define CONNECTION_LIMIT     64U
/* Bound on the rendered /metrics body. */
#define METRICS_MAX_BYTES (16U * 1024U * 1024U)

#define CONTENT_TYPE_TEXT    "text/plain; charset=utf-8"
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct qn_httpd {
    struct qn_loop *loop;
    struct MHD_Daemon *daemon;
    struct qn_loop_timer *timer;
    struct qn_metrics *metrics;
    qn_httpd_ready_fn ready_fn;
    void *ready_opaque;
    int epoll_fd;
    uint16_t port;
    int64_t heartbeat_ms;
};

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0) {
        return;
    }
    /* libmicrohttpd messages end with a newline; the logger adds its own framing. */
    size_t len = strlen(msg);
    if (len > 0 && msg[len - 1] == '\n') {
        msg[len - 1] = '\0';
    }
    QN_LOG_WARN("httpd", "libmicrohttpd: %s", msg);
}

static enum MHD_Result respond(struct MHD_Connection *conn,
                               unsigned int status,
                               const char *content_type,
                               const char *body,
                               size_t len)
{
    /* MHD_RESPMEM_MUST_COPY copies the bytes and never writes through the pointer. */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (ret == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        ret = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, MHD_HTTP_METHOD_GET);
    }
    if (ret == MHD_YES) {
        ret = MHD_queue_response(conn, status, resp);
    }
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
respond_text(struct MHD_Connection *conn, unsigned int status, const char *body)
{
    return respond(conn, status, CONTENT_TYPE_TEXT, body, strlen(body));
}

static enum MHD_Result serve_metrics(struct qn_httpd *httpd, struct MHD_Connection *conn)
{
    struct qn_buf body;
    qn_buf_init(&body, METRICS_MAX_BYTES);
    qn_err_t rc = qn_metrics_render(httpd->metrics, &body);
    enum MHD_Result ret;
    if (rc == QN_OK) {
        ret = respond(conn, MHD_HTTP_OK, CONTENT_TYPE_METRICS, qn_buf_cstr(&body), body.len);
    } else {
        QN_LOG_ERROR("httpd", "cannot render metrics: %s", qn_err_str(rc));
        ret = respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n");
    }
    qn_buf_fini(&body);
    return ret;
}

static enum MHD_Result serve_healthz(const struct qn_httpd *httpd, struct MHD_Connection *conn)
{
    int64_t age = qn_clock_ms() - httpd->heartbeat_ms;
    if (age < HEALTH_MAX_AGE_MS) {
        return respond_text(conn, MHD_HTTP_OK, "ok\n");
    }
    char body[96];
    snprintf(body, sizeof(body), "unhealthy: no heartbeat for %" PRId64 " ms\n", age);
    return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result serve_readyz(const struct qn_httpd *httpd, struct MHD_Connection *conn)
{
    char reason[256] = "";
    if (httpd->ready_fn == NULL || httpd->ready_fn(httpd->ready_opaque, reason, sizeof(reason))) {
        return respond_text(conn, MHD_HTTP_OK, "ready\n");
    }
    reason[sizeof(reason) - 1] = '\0';
    char body[300];
    snprintf(body, sizeof(body), "not ready: %s\n", reason[0] != '\0' ? reason : "unspecified");
    return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result handle_request(void *cls,
                                      struct MHD_Connection *conn,
                                      const char *url,
                                      const char *method,
                                      const char *version,
                                      const char *upload_data,
                                      size_t *upload_data_size,
                                      void **con_cls)
{
    struct qn_httpd *httpd = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    /* Every route answers on the first call; a request body, if any, is never read. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    if (strcmp(url, "/metrics") == 0) {
        return serve_metrics(httpd, conn);
    }
    if (strcmp(url, "/healthz") == 0) {
        return serve_healthz(httpd, conn);
    }
    if (strcmp(url, "/readyz") == 0) {
        return serve_readyz(httpd, conn);
    }
    return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* Re-arms the timer from MHD_get_timeout: MHD must run again by then even without fd activity. */
static void schedule(struct qn_httpd *httpd)
{
    MHD_UNSIGNED_LONG_LONG timeout = 0;
    if (MHD_get_timeout(httpd->daemon, &timeout) != MHD_YES) {
        qn_loop_timer_disarm(httpd->timer);
        return;
    }
    if (timeout > (MHD_UNSIGNED_LONG_LONG)INT32_MAX) {
        timeout = INT32_MAX;
    }
    qn_loop_timer_arm(httpd->timer, (int64_t)timeout);
}

static void run_daemon(struct qn_httpd *httpd)
{
    if (MHD_run(httpd->daemon) != MHD_YES) {
        QN_LOG_WARN("httpd", "MHD_run failed");
    }
    schedule(httpd);
}

static void on_epoll_fd(struct qn_loop *loop, int fd, int events, void *opaque)
{
    (void)loop;
    (void)fd;
    (void)events;
    run_daemon(opaque);
}

static void on_timer(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    run_daemon(opaque);
}

static qn_err_t start_daemon(struct qn_httpd *httpd,
                             const struct sockaddr_in *sa,
                             const char *address,
                             struct qn_error *err)
{
    /* The logger goes first so that libmicrohttpd reports option errors through it too. */
    httpd->daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, ntohs(sa->sin_port), NULL, NULL, handle_request, httpd,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)sa, MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT, MHD_OPTION_END);
    if (httpd->daemon == NULL) {
        return qn_error_set(err, QN_ERR_IO, "cannot serve http on %s:%u", address,
                            (unsigned)ntohs(sa->sin_port));
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(httpd->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        return qn_error_set(err, QN_ERR_IO, "libmicrohttpd has no epoll fd");
    }
    httpd->epoll_fd = info->epoll_fd;
    info = MHD_get_daemon_info(httpd->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        return qn_error_set(err, QN_ERR_IO, "cannot find the port bound on %s", address);
    }
    httpd->port = info->port;
    return QN_OK;
}

qn_err_t qn_httpd_start(struct qn_loop *loop,
                        const char *address,
                        uint16_t port,
                        struct qn_metrics *metrics,
                        qn_httpd_ready_fn ready_fn,
                        void *ready_opaque,
                        struct qn_httpd **out,
                        struct qn_error *err)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        return qn_error_set(err, QN_ERR_CONFIG, "http listen address '%s' is not an IPv4 address",
                            address);
    }
    struct qn_httpd *httpd = qn_calloc(1, sizeof(*httpd));
    if (httpd == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate the http server");
    }
    httpd->loop = loop;
    httpd->metrics = metrics;
    httpd->ready_fn = ready_fn;
    httpd->ready_opaque = ready_opaque;
    httpd->epoll_fd = -1;
    /* Alive from the start: the first heartbeat comes with the first loop iteration. */
    httpd->heartbeat_ms = qn_clock_ms();

    qn_err_t rc = qn_loop_timer_new(loop, on_timer, httpd, &httpd->timer, err);
    if (rc == QN_OK) {
        rc = start_daemon(httpd, &sa, address, err);
    }
    if (rc == QN_OK) {
        rc = qn_loop_watch_fd(loop, httpd->epoll_fd, QN_LOOP_READ, on_epoll_fd, httpd, err);
    }
    if (rc != QN_OK) {
        if (httpd->daemon != NULL) {
            MHD_stop_daemon(httpd->daemon);
        }
        qn_loop_timer_free(httpd->timer);
        qn_free(httpd);
        return rc;
    }
    schedule(httpd);
    QN_LOG_INFO("httpd", "serving /metrics /healthz /readyz on %s:%u", address,
                (unsigned)httpd->port);
    *out = httpd;
    return QN_OK;
}

uint16_t qn_httpd_port(const struct qn_httpd *httpd)
{
    return httpd->port;
}

void qn_httpd_heartbeat(struct qn_httpd *httpd, int64_t now_ms)
{
    httpd->heartbeat_ms = now_ms;
}

void qn_httpd_stop(struct qn_httpd *httpd)
{
    if (httpd == NULL) {
        return;
    }
    /* Unwatch before MHD closes its epoll fd, so the number can be reused safely. */
    qn_loop_unwatch_fd(httpd->loop, httpd->epoll_fd);
    qn_loop_timer_free(httpd->timer);
    MHD_stop_daemon(httpd->daemon);
    qn_free(httpd);
}
