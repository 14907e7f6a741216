/*
 * respond.h - the second stage: consumes work records (alerts and verdicts, in subscription
 * order) and publishes the response as outcome events. In this version every response is planned
 * in observe mode: the plan is published and nothing is written to Azure.
 */
#ifndef QN_RESPOND_H
#define QN_RESPOND_H

#include <stddef.h>

#include "config.h"
#include "ingest.h"
#include "outcome.h"
#include "qn/err.h"
#include "qn/metrics.h"

struct qn_respond;

/* @p cfg and @p metrics are borrowed; @p metrics may be NULL. */
QN_NODISCARD qn_err_t qn_respond_new(const struct qn_config *cfg,
                                     struct qn_metrics *metrics,
                                     struct qn_respond **out);
void qn_respond_free(struct qn_respond *resp);

/*
 * @brief Handles one work record of @p kind whose value is @p bytes (the original record bytes).
 * @returns QN_OK (also for records it deliberately ignores, which are counted and logged), or
 *          the emitter's error.
 */
QN_NODISCARD qn_err_t qn_respond_record(struct qn_respond *resp,
                                        enum qn_work_kind kind,
                                        const char *bytes,
                                        size_t len,
                                        const struct qn_emitter *emitter);

/* Forgets what was planned (on partition revocation the new owner takes over). */
void qn_respond_reset(struct qn_respond *resp);

#endif
