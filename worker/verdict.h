/*
 * verdict.h - validation of verdict records (schemas/verdict.schema.json): the owner's answer to
 * a contact request, or approvals of tasks waiting in approve mode.
 */
#ifndef QN_VERDICT_H
#define QN_VERDICT_H

#include <cjson/cJSON.h>

#include "qn/err.h"

/*
 * @brief Checks that @p record is a valid verdict and copies its subscription id, lower-cased,
 *        into @p subscription (37 bytes).
 * @returns QN_OK or QN_ERR_PARSE with @p err naming the field.
 */
QN_NODISCARD qn_err_t qn_verdict_validate(const cJSON *record,
                                          char subscription[37],
                                          struct qn_error *err);

#endif
