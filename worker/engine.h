/*
 * engine.h - the response engine: Microsoft's procedure as a state machine per alert, run on the
 * event loop against Azure (DESIGN.md "Response state machine").
 *
 *   received -> contacting (resolve_owner) -> awaiting_verdict (deadline timer)
 *     verdict expected                 -> dismissing (dismiss_alert) -> closed
 *     verdict unexpected, or deadline  -> mitigating: collect_evidence, then the tasks the alert
 *       with on_timeout = mitigate        and the evidence justify, as a DAG -> closed
 *   also -> escalated (deadline with escalate, a cap, provenance), -> cancelled (dismissed or
 *   resolved upstream), -> failed (a task failed).
 *
 * Every decision is published as an outcome event through the emitter. Task modes, scope,
 * protected lists, caps, the kill switch and provenance are enforced before every write
 * (task.h). Responses live in memory (a restart re-reads the work topic from the last commit).
 */
#ifndef QN_ENGINE_H
#define QN_ENGINE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "outcome.h"
#include "qn/err.h"
#include "qn/loop.h"
#include "qn/metrics.h"

struct qn_engine;

/*
 * @brief Creates the engine and its Azure client (azure.credential must not be "none").
 * @param emitter publishes events produced later, outside any consumed message; copied.
 * @param metrics may be NULL. All pointers are borrowed and must outlive the engine.
 */
QN_NODISCARD qn_err_t qn_engine_new(struct qn_loop *loop,
                                    const struct qn_config *cfg,
                                    struct qn_metrics *metrics,
                                    const struct qn_emitter *emitter,
                                    struct qn_engine **out,
                                    struct qn_error *err);

/* Cancels every call and timer (no callbacks) and frees everything. NULL ok. */
void qn_engine_free(struct qn_engine *engine);

/*
 * @brief Handles an alert from the work topic: starts a response, cancels one (Dismissed or
 *        Resolved upstream), or ignores a repeat. Events produced before it returns go to
 *        @p now (tied to the work record's offset); later ones to the engine's emitter.
 */
QN_NODISCARD qn_err_t qn_engine_alert(struct qn_engine *engine,
                                      const cJSON *record,
                                      const struct qn_emitter *now);

/* Handles a verdict (already validated) from the work topic. */
QN_NODISCARD qn_err_t qn_engine_verdict(struct qn_engine *engine,
                                        const cJSON *verdict,
                                        const struct qn_emitter *now);

/* @returns the number of responses not yet in a final phase, and of Azure calls in flight. */
size_t qn_engine_open_responses(const struct qn_engine *engine);
int qn_engine_running_tasks(const struct qn_engine *engine);

#endif
