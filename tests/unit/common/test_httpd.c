/*
 * test_httpd.c - unit tests for the /metrics, /healthz and /readyz server.
 *
 * The server listens on 127.0.0.1 with an ephemeral port. The client is a plain non-blocking
 * socket watched by the same qn_loop, so one thread drives both sides; every exchange runs a
 * bounded number of loop iterations.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "qn/buf.h"
#include "qn/httpd.h"
#include "qn/loop.h"
#include "qn/metrics.h"

#define MAX_ITERATIONS 500
#define MAX_WAIT_MS    5000

struct fixture {
    struct qn_loop *loop;
    struct qn_metrics *metrics;
    struct qn_httpd *httpd;
    int ready;
    const char *reason;
};

struct client {
    int fd;
    const char *request;
    size_t sent;
    struct qn_buf response;
    int done;
    int failed;
};

static int ready_probe(void *opaque, char *reason, size_t reason_len)
{
    const struct fixture *fx = opaque;
    if (!fx->ready && fx->reason != NULL) {
        snprintf(reason, reason_len, "%s", fx->reason);
    }
    return fx->ready;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL) {
        return -1;
    }
    fx->ready = 1;
    struct qn_error err;
    memset(&err, 0, sizeof(err));
    if (qn_loop_new(&fx->loop, &err) != QN_OK || qn_metrics_new(&fx->metrics, &err) != QN_OK ||
        qn_httpd_start(fx->loop, "127.0.0.1", 0, fx->metrics, ready_probe, fx, &fx->httpd, &err) !=
            QN_OK) {
        fprintf(stderr, "setup failed: %s\n", err.msg);
        qn_metrics_free(fx->metrics);
        qn_loop_free(fx->loop);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    qn_httpd_stop(fx->httpd);
    qn_metrics_free(fx->metrics);
    qn_loop_free(fx->loop);
    free(fx);
    return 0;
}

static void finish(struct qn_loop *loop, struct client *c, int failed)
{
    qn_loop_unwatch_fd(loop, c->fd);
    c->done = 1;
    c->failed = failed;
}

static void on_client(struct qn_loop *loop, int fd, int events, void *opaque)
{
    struct client *c = opaque;
    size_t total = strlen(c->request);
    if ((events & QN_LOOP_WRITE) != 0 && c->sent < total) {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
            finish(loop, c, 1);
            return;
        }
        ssize_t n = send(fd, c->request + c->sent, total - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            finish(loop, c, 1);
            return;
        }
        if (n > 0) {
            c->sent += (size_t)n;
        }
        if (c->sent == total) {
            assert_int_equal(qn_loop_watch_fd(loop, fd, QN_LOOP_READ, on_client, c, NULL), QN_OK);
        }
        return;
    }
    if ((events & QN_LOOP_READ) == 0) {
        return;
    }
    for (;;) {
        char chunk[4096];
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n > 0) {
            assert_int_equal(qn_buf_append(&c->response, chunk, (size_t)n), QN_OK);
            continue;
        }
        if (n == 0) {
            finish(loop, c, 0);
        } else if (errno != EAGAIN && errno != EINTR) {
            finish(loop, c, 1);
        }
        return;
    }
}

/*
 * Sends @p request to the server and reads the whole response (HTTP/1.0: until the server
 * closes). @returns the status code; the body (after the blank line) goes to @p body.
 */
static int
http_exchange(struct fixture *fx, const char *request, struct qn_buf *head, struct qn_buf *body)
{
    struct client c = {.fd = -1, .request = request};
    qn_buf_init(&c.response, 1 << 20);
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c.fd >= 0);
    assert_int_equal(fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK), 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(qn_httpd_port(fx->httpd));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(c.fd, (const struct sockaddr *)&sa, sizeof(sa));
    assert_true(r == 0 || errno == EINPROGRESS);
    assert_int_equal(qn_loop_watch_fd(fx->loop, c.fd, QN_LOOP_WRITE, on_client, &c, NULL), QN_OK);

    int64_t deadline = qn_clock_ms() + MAX_WAIT_MS;
    for (int i = 0; i < MAX_ITERATIONS && !c.done && qn_clock_ms() < deadline; i++) {
        assert_int_equal(qn_loop_run_once(fx->loop, 50), QN_OK);
    }
    if (!c.done) {
        qn_loop_unwatch_fd(fx->loop, c.fd);
    }
    close(c.fd);
    assert_true(c.done);
    assert_false(c.failed);

    const char *resp = qn_buf_cstr(&c.response);
    const char *sep = strstr(resp, "\r\n\r\n");
    assert_non_null(sep);
    qn_buf_reset(head);
    qn_buf_reset(body);
    assert_int_equal(qn_buf_append(head, resp, (size_t)(sep - resp) + 2), QN_OK);
    assert_int_equal(qn_buf_append_str(body, sep + 4), QN_OK);
    int status = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.%*d %d", &status), 1);
    qn_buf_fini(&c.response);
    return status;
}

static int http_get(struct fixture *fx, const char *path, struct qn_buf *head, struct qn_buf *body)
{
    char request[256];
    snprintf(request, sizeof(request), "GET %s HTTP/1.0\r\n\r\n", path);
    return http_exchange(fx, request, head, body);
}

static void test_port_is_ephemeral(void **state)
{
    struct fixture *fx = *state;
    assert_true(qn_httpd_port(fx->httpd) != 0);
}

static void test_metrics_endpoint(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(
        qn_metrics_describe(fx->metrics, "qn_test_total", QN_METRIC_COUNTER, "A test counter."),
        QN_OK);
    qn_metrics_add(fx->metrics, "qn_test_total", "kind=\"x\"", 42);
    struct qn_buf head;
    struct qn_buf body;
    qn_buf_init(&head, 1 << 16);
    qn_buf_init(&body, 1 << 20);
    assert_int_equal(http_get(fx, "/metrics", &head, &body), 200);
    assert_non_null(strstr(qn_buf_cstr(&head), "text/plain; version=0.0.4"));
    assert_non_null(strstr(qn_buf_cstr(&body), "# TYPE qn_test_total counter\n"));
    assert_non_null(strstr(qn_buf_cstr(&body), "qn_test_total{kind=\"x\"} 42\n"));

    /* A second request sees the updated value: rendering happens per request. */
    qn_metrics_add(fx->metrics, "qn_test_total", "kind=\"x\"", 1);
    assert_int_equal(http_get(fx, "/metrics", &head, &body), 200);
    assert_non_null(strstr(qn_buf_cstr(&body), "qn_test_total{kind=\"x\"} 43\n"));
    qn_buf_fini(&head);
    qn_buf_fini(&body);
}

static void test_healthz(void **state)
{
    struct fixture *fx = *state;
    struct qn_buf head;
    struct qn_buf body;
    qn_buf_init(&head, 1 << 16);
    qn_buf_init(&body, 1 << 16);
    qn_httpd_heartbeat(fx->httpd, qn_clock_ms());
    assert_int_equal(http_get(fx, "/healthz", &head, &body), 200);
    assert_string_equal(qn_buf_cstr(&body), "ok\n");

    /* A heartbeat 20 s old is stale. */
    qn_httpd_heartbeat(fx->httpd, qn_clock_ms() - 20000);
    assert_int_equal(http_get(fx, "/healthz", &head, &body), 503);
    assert_non_null(strstr(qn_buf_cstr(&body), "unhealthy"));

    /* A fresh heartbeat (as the worker sends each iteration) makes it healthy again. */
    qn_httpd_heartbeat(fx->httpd, qn_loop_now(fx->loop));
    assert_int_equal(http_get(fx, "/healthz", &head, &body), 200);
    qn_buf_fini(&head);
    qn_buf_fini(&body);
}

static void test_readyz(void **state)
{
    struct fixture *fx = *state;
    struct qn_buf head;
    struct qn_buf body;
    qn_buf_init(&head, 1 << 16);
    qn_buf_init(&body, 1 << 16);
    assert_int_equal(http_get(fx, "/readyz", &head, &body), 200);
    assert_string_equal(qn_buf_cstr(&body), "ready\n");

    fx->ready = 0;
    fx->reason = "no partitions assigned";
    assert_int_equal(http_get(fx, "/readyz", &head, &body), 503);
    assert_string_equal(qn_buf_cstr(&body), "not ready: no partitions assigned\n");

    fx->reason = NULL;
    assert_int_equal(http_get(fx, "/readyz", &head, &body), 503);
    assert_string_equal(qn_buf_cstr(&body), "not ready: unspecified\n");
    qn_buf_fini(&head);
    qn_buf_fini(&body);
}

static void test_not_found_and_method(void **state)
{
    struct fixture *fx = *state;
    struct qn_buf head;
    struct qn_buf body;
    qn_buf_init(&head, 1 << 16);
    qn_buf_init(&body, 1 << 16);
    assert_int_equal(http_get(fx, "/nope", &head, &body), 404);
    assert_int_equal(http_get(fx, "/metrics/extra", &head, &body), 404);
    assert_int_equal(
        http_exchange(fx, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", &head, &body),
        405);
    assert_non_null(strstr(qn_buf_cstr(&head), "Allow: GET"));
    qn_buf_fini(&head);
    qn_buf_fini(&body);
}

static void test_start_errors(void **state)
{
    struct fixture *fx = *state;
    struct qn_httpd *other = NULL;
    struct qn_error err;
    memset(&err, 0, sizeof(err));
    assert_int_equal(
        qn_httpd_start(fx->loop, "not-an-ip", 0, fx->metrics, NULL, NULL, &other, &err),
        QN_ERR_CONFIG);
    assert_null(other);
    assert_non_null(strstr(err.msg, "not-an-ip"));

    /* The port is taken by the fixture's server. */
    memset(&err, 0, sizeof(err));
    assert_int_equal(qn_httpd_start(fx->loop, "127.0.0.1", qn_httpd_port(fx->httpd), fx->metrics,
                                    NULL, NULL, &other, &err),
                     QN_ERR_IO);
    assert_null(other);
    qn_httpd_stop(NULL);
}

static void test_ready_fn_null_means_ready(void **state)
{
    (void)state;
    struct fixture fx = {.ready = 1};
    assert_int_equal(qn_loop_new(&fx.loop, NULL), QN_OK);
    assert_int_equal(qn_metrics_new(&fx.metrics, NULL), QN_OK);
    assert_int_equal(
        qn_httpd_start(fx.loop, "127.0.0.1", 0, fx.metrics, NULL, NULL, &fx.httpd, NULL), QN_OK);
    struct qn_buf head;
    struct qn_buf body;
    qn_buf_init(&head, 1 << 16);
    qn_buf_init(&body, 1 << 16);
    assert_int_equal(http_get(&fx, "/readyz", &head, &body), 200);
    qn_buf_fini(&head);
    qn_buf_fini(&body);
    qn_httpd_stop(fx.httpd);
    qn_metrics_free(fx.metrics);
    qn_loop_free(fx.loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_port_is_ephemeral, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readyz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
        cmocka_unit_test(test_ready_fn_null_means_ready),
    };
    return cmocka_run_group_tests_name("httpd", tests, NULL, NULL);
}
