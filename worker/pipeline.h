/*
 * pipeline.h - the running worker: one Kafka consumer (input, verdicts and work topics) and one
 * idempotent producer (work, outcomes, DLQ), both driven by the qn_loop through librdkafka's queue
 * wake-up fds, plus the /metrics and health endpoint. Ingest and respond run on the same loop.
 */
#ifndef QN_PIPELINE_H
#define QN_PIPELINE_H

#include "config.h"
#include "qn/err.h"

/*
 * @brief Runs the worker until SIGTERM/SIGINT or a fatal error. @p cfg is borrowed.
 * @returns 0 after a clean shutdown, 70 after a fatal runtime error, 78 for bad Kafka settings.
 */
int qn_pipeline_run(const struct qn_config *cfg);

#endif
