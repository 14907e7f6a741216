/*
 * outcome.h - builds CloudEvents 1.0 outcome events (schemas/outcome.schema.json) and hands them
 * to an emitter: the Kafka publisher in the worker, stdout in `quench plan`, an array in tests.
 *
 * An event id is derived from (type, subject, discriminator) only, so a redelivered alert yields
 * byte-identical ids and consumers can deduplicate.
 */
#ifndef QN_OUTCOME_H
#define QN_OUTCOME_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "qn/crypto.h"
#include "qn/err.h"

#define QN_OUTCOME_SOURCE "urn:quench:worker"

/*
 * Receives one serialized event. @p key is the Kafka key to publish it under (the alert id, or the
 * DLQ coordinates for a rejected record). All pointers are borrowed for the call only.
 */
typedef qn_err_t (*qn_emit_fn)(const char *type,
                               const char *event_id,
                               const char *key,
                               const char *json,
                               size_t len,
                               void *opaque);

struct qn_emitter {
    qn_emit_fn fn;
    void *opaque;
};

/* An event under construction. Owned by the caller until qn_outcome_emit or qn_outcome_free. */
struct qn_outcome {
    cJSON *root;
    cJSON *data; /* borrowed view into root: add the type-specific fields here */
    char id[QN_ID_HEX_LEN + 1];
    const char *type;
    char *key;
};

/*
 * @brief Starts an event of @p type about @p subject; @p discriminator separates events of the
 *        same type and subject (a task id, a status, ...; may be "").
 * @returns QN_OK or QN_ERR_NOMEM.
 */
QN_NODISCARD qn_err_t qn_outcome_init(struct qn_outcome *ev,
                                      const char *type,
                                      const char *subject,
                                      const char *discriminator,
                                      const char *key);

/* Serialises the event, passes it to @p emitter, and releases it. @returns the emitter's result. */
QN_NODISCARD qn_err_t qn_outcome_emit(struct qn_outcome *ev, const struct qn_emitter *emitter);

/* Releases an event that was not emitted. */
void qn_outcome_fini(struct qn_outcome *ev);

/* Adds "name": value to @p obj unless @p value is NULL. */
void qn_json_add_str(cJSON *obj, const char *name, const char *value);

#endif
