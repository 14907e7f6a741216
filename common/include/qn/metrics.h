/*
 * metrics.h - a small registry of Prometheus counters and gauges, rendered as text format 0.0.4.
 *
 * Series are identified by (name, labels), where labels is pre-rendered text such as
 * `reason="not_json"` or "" for none. Series are created on first use. The registry is used from
 * the loop thread only. Families get HELP and TYPE lines from qn_metrics_describe.
 */
#ifndef QN_METRICS_H
#define QN_METRICS_H

#include <stdint.h>

#include "qn/buf.h"
#include "qn/err.h"

struct qn_metrics;

enum qn_metric_type {
    QN_METRIC_COUNTER,
    QN_METRIC_GAUGE,
};

QN_NODISCARD qn_err_t qn_metrics_new(struct qn_metrics **out, struct qn_error *err);
void qn_metrics_free(struct qn_metrics *metrics);

/* Declares a family's type and help text. Series of undeclared families render as untyped. */
QN_NODISCARD qn_err_t qn_metrics_describe(struct qn_metrics *metrics,
                                          const char *name,
                                          enum qn_metric_type type,
                                          const char *help);

/* Adds @p delta to the counter series (name, labels), creating it at 0 first. */
void qn_metrics_add(struct qn_metrics *metrics, const char *name, const char *labels, double delta);

/* Sets the gauge series (name, labels) to @p value. */
void qn_metrics_set(struct qn_metrics *metrics, const char *name, const char *labels, double value);

/* @returns the current value of a series, 0 if it does not exist. */
double qn_metrics_get(const struct qn_metrics *metrics, const char *name, const char *labels);

/* Renders every family in declaration order, then undeclared ones, as Prometheus text. */
QN_NODISCARD qn_err_t qn_metrics_render(const struct qn_metrics *metrics, struct qn_buf *out);

#endif
