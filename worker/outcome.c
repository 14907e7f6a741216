/*
 * outcome.c - CloudEvents envelope, deterministic ids, and serialisation of outcome events.
 */
#include "outcome.h"

#include <string.h>

#include "qn/mem.h"
#include "qn/timefmt.h"

void qn_json_add_str(cJSON *obj, const char *name, const char *value)
{
    if (value != NULL) {
        cJSON_AddStringToObject(obj, name, value);
    }
}

qn_err_t qn_outcome_init(struct qn_outcome *ev,
                         const char *type,
                         const char *subject,
                         const char *discriminator,
                         const char *key)
{
    char now[QN_RFC3339_LEN];
    qn_time_now_rfc3339(now);
    qn_derive_id(ev->id, type, subject, discriminator, NULL);
    ev->type = type;
    ev->key = qn_strdup(key);
    ev->root = cJSON_CreateObject();
    ev->data = NULL;
    if (ev->root == NULL || ev->key == NULL) {
        qn_outcome_fini(ev);
        return QN_ERR_NOMEM;
    }
    cJSON_AddStringToObject(ev->root, "specversion", "1.0");
    cJSON_AddStringToObject(ev->root, "id", ev->id);
    cJSON_AddStringToObject(ev->root, "source", QN_OUTCOME_SOURCE);
    cJSON_AddStringToObject(ev->root, "type", type);
    cJSON_AddStringToObject(ev->root, "subject", subject);
    cJSON_AddStringToObject(ev->root, "time", now);
    cJSON_AddStringToObject(ev->root, "datacontenttype", "application/json");
    ev->data = cJSON_AddObjectToObject(ev->root, "data");
    if (ev->data == NULL) {
        qn_outcome_fini(ev);
        return QN_ERR_NOMEM;
    }
    return QN_OK;
}

qn_err_t qn_outcome_emit(struct qn_outcome *ev, const struct qn_emitter *emitter)
{
    char *json = cJSON_PrintUnformatted(ev->root);
    qn_err_t rc = QN_ERR_NOMEM;
    if (json != NULL) {
        rc = emitter->fn(ev->type, ev->id, ev->key, json, strlen(json), emitter->opaque);
        qn_free(json);
    }
    qn_outcome_fini(ev);
    return rc;
}

void qn_outcome_fini(struct qn_outcome *ev)
{
    cJSON_Delete(ev->root);
    qn_free(ev->key);
    ev->root = NULL;
    ev->data = NULL;
    ev->key = NULL;
}
