/*
 * verdict.c - strict validation of verdict records, mirroring schemas/verdict.schema.json.
 */
#include "verdict.h"

#include <ctype.h>
#include <string.h>

#include "alert.h"
#include "qn/resid.h"

static int printable(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int comment_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int is_task_id(const char *s)
{
    if (strlen(s) != 32) {
        return 0;
    }
    for (size_t i = 0; i < 32; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

qn_err_t qn_verdict_validate(const cJSON *record, char subscription[37], struct qn_error *err)
{
    static const char *const allowed[] = {"alertId",   "subscriptionId", "verdict",
                                          "approvals", "decidedBy",      "comment"};
    if (!cJSON_IsObject(record)) {
        return qn_error_set(err, QN_ERR_PARSE, "verdict must be a JSON object");
    }
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, record)
    {
        int known = 0;
        for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
            known = known || strcmp(item->string, allowed[i]) == 0;
        }
        if (!known) {
            return qn_error_set(err, QN_ERR_PARSE, "verdict has unknown field '%.64s'",
                                item->string);
        }
    }
    const cJSON *alert_id = cJSON_GetObjectItemCaseSensitive(record, "alertId");
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(record, "subscriptionId");
    const cJSON *verdict = cJSON_GetObjectItemCaseSensitive(record, "verdict");
    const cJSON *approvals = cJSON_GetObjectItemCaseSensitive(record, "approvals");
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(record, "decidedBy");
    const cJSON *comment = cJSON_GetObjectItemCaseSensitive(record, "comment");
    if (!cJSON_IsString(alert_id) || !qn_alert_id_is_valid(alert_id->valuestring)) {
        return qn_error_set(err, QN_ERR_PARSE,
                            "verdict field 'alertId' must be an alert id: 1-512 bytes without "
                            "'/', '\\\\', '?', '#', '%%', whitespace or control characters");
    }
    if (!cJSON_IsString(sub) || !qn_is_guid(sub->valuestring)) {
        return qn_error_set(err, QN_ERR_PARSE, "verdict field 'subscriptionId' must be a GUID");
    }
    if (!cJSON_IsString(by) || !printable(by->valuestring, 256)) {
        return qn_error_set(err, QN_ERR_PARSE,
                            "verdict field 'decidedBy' must be a string of "
                            "1-256 printable characters");
    }
    if (verdict == NULL && approvals == NULL) {
        return qn_error_set(err, QN_ERR_PARSE, "verdict needs 'verdict' or 'approvals'");
    }
    if (verdict != NULL &&
        (!cJSON_IsString(verdict) || (strcmp(verdict->valuestring, "expected") != 0 &&
                                      strcmp(verdict->valuestring, "unexpected") != 0))) {
        return qn_error_set(err, QN_ERR_PARSE,
                            "verdict field 'verdict' must be \"expected\" or \"unexpected\"");
    }
    if (approvals != NULL) {
        if (!cJSON_IsArray(approvals)) {
            return qn_error_set(err, QN_ERR_PARSE, "verdict field 'approvals' must be an array");
        }
        int count = cJSON_GetArraySize(approvals);
        if (count < 1 || count > 256) {
            return qn_error_set(err, QN_ERR_PARSE,
                                "verdict field 'approvals' must hold 1 to 256 task ids");
        }
        cJSON_ArrayForEach(item, approvals)
        {
            if (!cJSON_IsString(item) || !is_task_id(item->valuestring)) {
                return qn_error_set(err, QN_ERR_PARSE,
                                    "verdict field 'approvals' must hold task ids (32 hex digits)");
            }
            for (const cJSON *prev = approvals->child; prev != item; prev = prev->next) {
                if (strcmp(prev->valuestring, item->valuestring) == 0) {
                    return qn_error_set(err, QN_ERR_PARSE,
                                        "verdict field 'approvals' names task %s twice",
                                        item->valuestring);
                }
            }
        }
    }
    if (comment != NULL && (!cJSON_IsString(comment) || strlen(comment->valuestring) > 4096 ||
                            !comment_ok(comment->valuestring))) {
        return qn_error_set(err, QN_ERR_PARSE,
                            "verdict field 'comment' must be a string of at most 4096 bytes "
                            "without control characters other than tab and line breaks");
    }
    for (size_t i = 0; i < 36; i++) {
        subscription[i] = (char)tolower((unsigned char)sub->valuestring[i]);
    }
    subscription[36] = '\0';
    return QN_OK;
}
