/*
 * httpd.h - the /metrics, /healthz and /readyz endpoint, served by libmicrohttpd on the loop.
 *
 * libmicrohttpd runs without a thread of its own: its epoll fd is watched by the qn_loop and
 * MHD_run is called when it is readable or when its timeout passes. Handlers therefore run on the
 * loop thread and can read the metrics registry and health state without locks.
 */
#ifndef QN_HTTPD_H
#define QN_HTTPD_H

#include <stdint.h>

#include "qn/err.h"
#include "qn/loop.h"
#include "qn/metrics.h"

struct qn_httpd;

/*
 * Readiness probe: @returns 1 when ready, 0 when not, and may write a short reason into
 * @p reason (size @p reason_len) for the response body.
 */
typedef int (*qn_httpd_ready_fn)(void *opaque, char *reason, size_t reason_len);

/*
 * @brief Starts serving on @p address:@p port (port 0 picks a free one; see qn_httpd_port).
 * @param metrics borrowed; must outlive the server.
 * @param ready_fn may be NULL (then /readyz is always 200).
 */
QN_NODISCARD qn_err_t qn_httpd_start(struct qn_loop *loop,
                                     const char *address,
                                     uint16_t port,
                                     struct qn_metrics *metrics,
                                     qn_httpd_ready_fn ready_fn,
                                     void *ready_opaque,
                                     struct qn_httpd **out,
                                     struct qn_error *err);

/* @returns the port actually bound. */
uint16_t qn_httpd_port(const struct qn_httpd *httpd);

/* Marks the process alive for /healthz. Call once per loop iteration (heartbeat). */
void qn_httpd_heartbeat(struct qn_httpd *httpd, int64_t now_ms);

/* Stops the server and frees it. Accepts NULL. */
void qn_httpd_stop(struct qn_httpd *httpd);

#endif
