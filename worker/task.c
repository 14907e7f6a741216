/*
 * task.c - the API task implementations use: Azure calls with request recording, the write
 * gate (kill switch, mode, scope, provenance, caps), protected lists, and finishing.
 */
#include "task.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "qn/log.h"
#include "qn/mem.h"
#include "response.h"
#include "tasks/tasks.h"

const struct qn_task_ops *qn_task_ops_for(enum qn_task_kind kind)
{
    /* Weak references: a family that is not linked in reads as NULL. */
    const struct qn_task_ops *const table[QN_TASK_KIND__COUNT] = {
        [QN_TASK_RESOLVE_OWNER] = &qn_task_ops_resolve_owner,
        [QN_TASK_DISMISS_ALERT] = &qn_task_ops_dismiss_alert,
        [QN_TASK_COLLECT_EVIDENCE] = &qn_task_ops_collect_evidence,
        [QN_TASK_DISABLE_USER] = &qn_task_ops_disable_user,
        [QN_TASK_REVOKE_SESSIONS] = &qn_task_ops_revoke_sessions,
        [QN_TASK_RESET_CREDENTIALS] = &qn_task_ops_reset_credentials,
        [QN_TASK_DELETE_USER] = &qn_task_ops_delete_user,
        [QN_TASK_REMOVE_ROLE_ASSIGNMENT] = &qn_task_ops_remove_role_assignment,
        [QN_TASK_REMOVE_RUNBOOK] = &qn_task_ops_remove_runbook,
        [QN_TASK_DELETE_RESOURCE] = &qn_task_ops_delete_resource,
        [QN_TASK_VM_RESET_PASSWORDS] = &qn_task_ops_vm_reset_passwords,
        [QN_TASK_VM_ANTIMALWARE_SCAN] = &qn_task_ops_vm_antimalware_scan,
        [QN_TASK_VM_REIMAGE] = &qn_task_ops_vm_reimage,
    };
    return table[kind];
}

const struct qn_alert *qn_task_alert(const struct qn_task *task)
{
    return &task->resp->alert;
}

const struct qn_config *qn_task_config(const struct qn_task *task)
{
    return qn_engine_config(task->resp->engine);
}

const cJSON *qn_task_evidence(const struct qn_task *task)
{
    return task->resp->evidence;
}

/* ---- calls ---------------------------------------------------------------------------------- */

struct task_call {
    struct qn_task *task;
    enum qn_azure_audience audience;
    qn_task_call_fn fn;
    void *opaque;
    char *method;
    char *target;
};

/* The path of a target, without the query (which may carry $filter values); for the record. */
static void
record_request(struct qn_task *task, const struct task_call *tc, const struct qn_http_result *res)
{
    cJSON *req = cJSON_CreateObject();
    if (req == NULL) {
        return;
    }
    cJSON_AddStringToObject(req, "method", tc->method);
    /* the endpoint the call went to, then the path without its query */
    const struct qn_config *cfg = qn_task_config(task);
    struct qn_azure_endpoints preset;
    enum qn_azure_cloud cloud = QN_AZURE_CLOUD_PUBLIC;
    if (qn_azure_cloud_parse(cfg->azure.cloud, &cloud) != QN_OK) {
        cloud = QN_AZURE_CLOUD_PUBLIC; /* validated at start; kept for safety */
    }
    qn_azure_endpoints_preset(cloud, &preset);
    const char *configured =
        tc->audience == QN_AZURE_GRAPH ? cfg->azure.endpoints.graph : cfg->azure.endpoints.arm;
    const char *origin = configured[0] != '\0'            ? configured
                         : tc->audience == QN_AZURE_GRAPH ? preset.graph
                                                          : preset.arm;
    const char *q = strchr(tc->target, '?');
    size_t len = q != NULL ? (size_t)(q - tc->target) : strlen(tc->target);
    struct qn_buf url;
    qn_buf_init(&url, 8192);
    if (strncmp(tc->target, "https://", 8) != 0 && qn_buf_append_str(&url, origin) != QN_OK) {
        qn_buf_reset(&url);
    }
    if (qn_buf_append(&url, tc->target, len) != QN_OK) {
        qn_buf_reset(&url);
    }
    cJSON_AddStringToObject(req, "url", qn_buf_cstr(&url));
    qn_buf_fini(&url);
    cJSON_AddNumberToObject(req, "status", res != NULL ? (double)res->status : 0);
    if (res != NULL && res->request_id[0] != '\0') {
        cJSON_AddStringToObject(req, "requestId", res->request_id);
    }
    if (res != NULL && res->correlation_id[0] != '\0') {
        cJSON_AddStringToObject(req, "correlationId", res->correlation_id);
    }
    cJSON_AddItemToArray(task->requests, req);
}

static void call_done(struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct task_call *tc = opaque;
    struct qn_task *task = tc->task;
    record_request(task, tc, res);
    task->attempts += res != NULL ? res->attempts : 0;
    tc->fn(task, res, err, tc->opaque);
    qn_free(tc->method);
    qn_free(tc->target);
    qn_free(tc);
}

qn_err_t qn_task_call(struct qn_task *task,
                      enum qn_azure_audience audience,
                      const char *method,
                      const char *target,
                      const char *body,
                      unsigned flags,
                      qn_task_call_fn fn,
                      void *opaque)
{
    struct qn_azure *az = qn_engine_azure(task->resp->engine);
    if (az == NULL) {
        return QN_ERR_CONFIG;
    }
    struct task_call *tc = qn_calloc(1, sizeof(*tc));
    if (tc == NULL) {
        return QN_ERR_NOMEM;
    }
    tc->task = task;
    tc->audience = audience;
    tc->fn = fn;
    tc->opaque = opaque;
    tc->method = qn_strdup(method);
    tc->target = qn_strdup(target);
    if (tc->method == NULL || tc->target == NULL) {
        qn_free(tc->method);
        qn_free(tc->target);
        qn_free(tc);
        return QN_ERR_NOMEM;
    }
    static const char *const json_headers[] = {"Content-Type: application/json", NULL};
    struct qn_azure_request req = {
        .audience = audience,
        .method = method,
        .target = target,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .headers = body != NULL ? json_headers : NULL,
        .flags = flags,
        .timeout_ms = qn_task_config(task)->azure.request_timeout_ms,
    };
    struct qn_http_call_opts lro_opts;
    if (flags & QN_HTTP_CALL_LRO) {
        /* run commands may run up to 90 minutes (a full scan), a reimage often longer than the
         * default 5-minute call budget */
        qn_http_call_opts_default(&lro_opts);
        lro_opts.total_timeout_ms = 95LL * 60 * 1000;
        lro_opts.lro_poll_ms = 10000;
        req.opts = &lro_opts;
    }
    struct qn_error err = {0};
    qn_err_t rc = qn_azure_request(az, &req, call_done, tc, NULL, &err);
    if (rc != QN_OK) {
        QN_LOG_WARN("task", "task %s: cannot start %s %s: %s", task->id, method, tc->target,
                    err.msg);
        qn_free(tc->method);
        qn_free(tc->target);
        qn_free(tc);
    }
    return rc;
}

/* ---- policy --------------------------------------------------------------------------------- */

static bool in_list(const struct qn_string_list *list, const char *value)
{
    for (size_t i = 0; value != NULL && i < list->count; i++) {
        if (strcasecmp(list->items[i], value) == 0) {
            return true;
        }
    }
    return false;
}

static bool destructive(enum qn_task_kind kind)
{
    return kind == QN_TASK_DELETE_USER || kind == QN_TASK_REMOVE_ROLE_ASSIGNMENT ||
           kind == QN_TASK_REMOVE_RUNBOOK || kind == QN_TASK_DELETE_RESOURCE ||
           kind == QN_TASK_VM_REIMAGE;
}

bool qn_task_may_write(struct qn_task *task, const char **why)
{
    struct qn_response *resp = task->resp;
    const struct qn_config *cfg = qn_task_config(task);
    const struct qn_alert *a = &resp->alert;
    if (cfg->policy.kill_switch) {
        *why = "the kill switch is on: every write is off";
        return false;
    }
    if (cfg->policy.dry_run || task->mode == QN_MODE_OBSERVE) {
        *why = "observe mode: the action is proposed, not taken";
        return false;
    }
    if (task->mode == QN_MODE_APPROVE && !task->approved) {
        *why = "approve mode: no approval names this task";
        return false;
    }
    const char *tenant = a->tenant_id != NULL ? a->tenant_id : cfg->azure.tenant_id;
    bool tenant_ok = cfg->policy.allowed_tenants.count > 0
                         ? in_list(&cfg->policy.allowed_tenants, tenant)
                         : strcasecmp(tenant, cfg->azure.tenant_id) == 0;
    if (!tenant_ok) {
        *why = "out of scope: the alert's tenant is not an allowed tenant";
        return false;
    }
    if (cfg->policy.allowed_subscriptions.count > 0 &&
        !in_list(&cfg->policy.allowed_subscriptions, a->subscription_id)) {
        *why = "out of scope: the subscription is not in policy.allowed_subscriptions";
        return false;
    }
    if (task->kind != QN_TASK_DISMISS_ALERT && cfg->policy.provenance &&
        resp->provenance != QN_PROVENANCE_VERIFIED) {
        *why = "provenance: the alert could not be confirmed by the Microsoft.Security API";
        return false;
    }
    if (destructive(task->kind)) {
        if (resp->destructive_writes >= cfg->policy.cap_per_alert) {
            *why = "cap reached: destructive actions per alert (policy.caps.per_alert)";
            resp->escalated = true;
            if (resp->escalation_note == NULL) {
                resp->escalation_note = qn_strdup(*why);
            }
            return false;
        }
        if (!qn_engine_take_subscription_write(resp->engine, a->subscription_id)) {
            *why = "cap reached: destructive actions per subscription per hour "
                   "(policy.caps.per_subscription_hour)";
            resp->escalated = true;
            if (resp->escalation_note == NULL) {
                resp->escalation_note = qn_strdup(*why);
            }
            return false;
        }
        resp->destructive_writes++;
    }
    task->wrote = true;
    return true;
}

bool qn_task_protected_principal(const struct qn_task *task,
                                 const char *principal,
                                 const char **why)
{
    if (in_list(&qn_task_config(task)->policy.protected_principals, principal)) {
        *why = "protected principal (policy.protected_principals): never touched";
        return true;
    }
    return false;
}

bool qn_task_protected_tags(const struct qn_task *task, const cJSON *tags, const char **why)
{
    const struct qn_string_list *list = &qn_task_config(task)->policy.protected_tags;
    for (size_t i = 0; cJSON_IsObject(tags) && i < list->count; i++) {
        const char *entry = list->items[i];
        const char *eq = strchr(entry, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - entry) : strlen(entry);
        const cJSON *tag = NULL;
        cJSON_ArrayForEach(tag, tags)
        {
            if (strlen(tag->string) != name_len || strncasecmp(tag->string, entry, name_len) != 0) {
                continue;
            }
            if (eq == NULL || (cJSON_IsString(tag) && strcmp(tag->valuestring, eq + 1) == 0)) {
                *why = "protected tag (policy.protected_tags): never touched";
                return true;
            }
        }
    }
    return false;
}

/* ---- recording ------------------------------------------------------------------------------ */

void qn_task_add_evidence(struct qn_task *task,
                          const char *source,
                          const char *field,
                          const char *value,
                          const char *note)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL) {
        return;
    }
    qn_json_add_str(item, "source", source);
    qn_json_add_str(item, "field", field);
    qn_json_add_str(item, "value", value);
    qn_json_add_str(item, "note", note);
    cJSON_AddItemToArray(task->evidence, item);
}

void qn_task_set_undo(struct qn_task *task, cJSON *undo)
{
    cJSON_Delete(task->undo);
    task->undo = undo;
}

void qn_task_add_detail(struct qn_task *task, const char *name, cJSON *item)
{
    if (task->detail == NULL) {
        task->detail = cJSON_CreateObject();
    }
    if (task->detail == NULL || !cJSON_AddItemToObject(task->detail, name, item)) {
        cJSON_Delete(item);
    }
}

void qn_task_finish(struct qn_task *task, enum qn_task_state state, const char *message)
{
    QN_ASSERT(state == QN_TASK_SUCCEEDED || state == QN_TASK_FAILED || state == QN_TASK_SKIPPED);
    task->state = state;
    qn_free(task->message);
    task->message = qn_strdup(message != NULL ? message : "");
    const char *type = state == QN_TASK_SUCCEEDED ? "quench.task.succeeded"
                       : state == QN_TASK_FAILED  ? "quench.task.failed"
                                                  : "quench.task.skipped";
    (void)qn_response_emit_task(task->resp, task, type);
    qn_engine_task_finished(task->resp, task);
}
