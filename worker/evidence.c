/*
 * evidence.c - the "unfamiliar" decision, from collected evidence only (DESIGN.md):
 *   - users created by a compromised principal (directory audits "Add user")      -> delete_user
 *   - role assignments, runbooks and resources written by a compromised principal in the
 *     window (activity log), or created after the alert started and not on the known lists
 *                                                -> remove_role_assignment, remove_runbook,
 *                                                   delete_resource
 *   - VMs a compromised principal ran commands on  -> the VM tasks
 * Familiar objects (known principals, known resources) and anything created before the window
 * by someone else are never findings. Pure functions: no I/O.
 */
#include "evidence.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "qn/mem.h"
#include "qn/resid.h"

bool qn_evidence_is_compromised(const struct qn_alert *alert, const char *caller)
{
    if (caller == NULL || caller[0] == '\0') {
        return false;
    }
    for (size_t i = 0; i < alert->account_count; i++) {
        const struct qn_account *acc = &alert->accounts[i];
        if ((acc->upn != NULL && strcasecmp(acc->upn, caller) == 0) ||
            (acc->aad_user_id != NULL && strcasecmp(acc->aad_user_id, caller) == 0)) {
            return true;
        }
    }
    return false;
}

void qn_finding_fini(struct qn_finding *f)
{
    qn_free(f->target_id);
    qn_free(f->target_name);
    qn_free(f->reason);
    cJSON_Delete(f->evidence);
    memset(f, 0, sizeof(*f));
}

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* activity-log "operationName" is {"value": ..., "localizedValue": ...} or a plain string */
static const char *operation_name(const cJSON *event)
{
    const cJSON *op = cJSON_GetObjectItem(event, "operationName");
    if (cJSON_IsString(op)) {
        return op->valuestring;
    }
    return str(op, "value");
}

static bool in_list(const struct qn_string_list *list, const char *value)
{
    for (size_t i = 0; value != NULL && i < list->count; i++) {
        if (strcasecmp(list->items[i], value) == 0) {
            return true;
        }
    }
    return false;
}

/* ISO-8601 timestamps of the same shape compare as strings; only the first 19 chars matter. */
static bool after(const char *when, const char *start)
{
    return when != NULL && start != NULL && strncmp(when, start, 19) > 0;
}

struct collector {
    struct qn_finding *out;
    int max;
    int n;
};

static struct qn_finding *find(struct collector *c, const char *kind, const char *id)
{
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->out[i].kind, kind) == 0 && strcasecmp(c->out[i].target_id, id) == 0) {
            return &c->out[i];
        }
    }
    return NULL;
}

static void evidence_item(
    cJSON *list, const char *source, const char *field, const char *value, const char *note)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL) {
        return;
    }
    cJSON_AddStringToObject(item, "source", source);
    if (field != NULL) {
        cJSON_AddStringToObject(item, "field", field);
    }
    if (value != NULL) {
        cJSON_AddStringToObject(item, "value", value);
    }
    if (note != NULL) {
        cJSON_AddStringToObject(item, "note", note);
    }
    cJSON_AddItemToArray(list, item);
}

static struct qn_finding *add(struct collector *c,
                              const char *kind,
                              const char *target_type,
                              const char *id,
                              const char *name,
                              const char *reason)
{
    struct qn_finding *f = find(c, kind, id);
    if (f != NULL || c->n == c->max) {
        return f;
    }
    f = &c->out[c->n];
    f->kind = kind;
    f->target_type = target_type;
    f->target_id = qn_strdup(id);
    f->target_name = qn_strdup(name);
    f->reason = qn_strdup(reason);
    f->evidence = cJSON_CreateArray();
    if (f->target_id == NULL || f->reason == NULL || f->evidence == NULL) {
        qn_finding_fini(f);
        return NULL;
    }
    c->n++;
    return f;
}

static const char *last_segment(const char *id)
{
    const char *slash = id != NULL ? strrchr(id, '/') : NULL;
    return slash != NULL ? slash + 1 : id;
}

/* The part of a resource id up to and including its first (type, name) under a provider. */
static bool top_resource(const char *id, char *out, size_t out_len, struct qn_resid *rid)
{
    if (qn_resid_parse(id, 0, rid, NULL) != QN_OK || rid->provider[0] == '\0') {
        return false;
    }
    /* .../providers/{ns}/{type}/{name}: cut after the name */
    const char *p = strstr(id, "/providers/");
    int slashes = 0;
    size_t i = p != NULL ? (size_t)(p - id) + strlen("/providers/") : 0;
    for (; p != NULL && id[i] != '\0'; i++) {
        if (id[i] == '/' && ++slashes == 3) {
            break;
        }
    }
    if (p == NULL || i >= out_len) {
        return false;
    }
    memcpy(out, id, i);
    out[i] = '\0';
    return true;
}

static bool is_role_assignment(const char *op)
{
    return op != NULL && strcasecmp(op, "Microsoft.Authorization/roleAssignments/write") == 0;
}

static bool is_runbook_write(const char *op)
{
    return op != NULL &&
           strcasecmp(op, "Microsoft.Automation/automationAccounts/runbooks/write") == 0;
}

static bool is_run_command(const char *op)
{
    return op != NULL && strcasecmp(op, "Microsoft.Compute/virtualMachines/runCommand/action") == 0;
}

static void from_activity(struct collector *c,
                          const cJSON *evidence,
                          const struct qn_alert *alert,
                          const struct qn_config *cfg)
{
    const cJSON *event = NULL;
    cJSON_ArrayForEach(event, cJSON_GetObjectItemCaseSensitive(evidence, "activity"))
    {
        const char *caller = str(event, "caller");
        const char *op = operation_name(event);
        const char *rid_text = str(event, "resourceId");
        const char *when = str(event, "eventTimestamp");
        const cJSON *status = cJSON_GetObjectItem(event, "status");
        const char *status_value =
            cJSON_IsString(status) ? status->valuestring : str(status, "value");
        if (!qn_evidence_is_compromised(alert, caller) || op == NULL || rid_text == NULL ||
            (status_value != NULL && strcasecmp(status_value, "Succeeded") != 0)) {
            continue;
        }
        char note[256];
        snprintf(note, sizeof(note), "%.120s by %.100s", op, caller);
        struct qn_resid rid;
        struct qn_finding *f = NULL;
        if (is_role_assignment(op)) {
            if (qn_resid_parse(rid_text, QN_RESID_ALLOW_TENANT, &rid, NULL) == QN_OK) {
                f = add(c, "remove_role_assignment", "role_assignment", rid_text,
                        last_segment(rid_text),
                        "a compromised principal created this role assignment in the alert window");
            }
        } else if (is_runbook_write(op)) {
            if (qn_resid_parse(rid_text, 0, &rid, NULL) == QN_OK &&
                !in_list(&cfg->policy.known_resources, rid_text)) {
                f = add(c, "remove_runbook", "runbook", rid_text, rid.name,
                        "a compromised principal wrote this runbook in the alert window");
            }
        } else if (is_run_command(op)) {
            char vm[1024];
            if (top_resource(rid_text, vm, sizeof(vm), &rid) &&
                qn_resid_parse(vm, 0, &rid, NULL) == QN_OK && qn_resid_is_vm(&rid)) {
                f = add(c, "vm_reset_passwords", "vm", vm, rid.name,
                        "a compromised principal ran commands on this VM in the alert window");
            }
        } else if (strlen(op) > 6 && strcasecmp(op + strlen(op) - 6, "/write") == 0) {
            char top[1024];
            if (top_resource(rid_text, top, sizeof(top), &rid) &&
                strncasecmp(rid.provider, "Microsoft.Authorization", 23) != 0 &&
                strncasecmp(rid.provider, "Microsoft.Automation", 20) != 0 &&
                !in_list(&cfg->policy.known_resources, top) &&
                strcasecmp(top, alert->resource_id) != 0) {
                struct qn_resid top_rid;
                if (qn_resid_parse(top, 0, &top_rid, NULL) == QN_OK) {
                    f = add(c, "delete_resource", "resource", top, top_rid.name,
                            "a compromised principal created or changed this resource in the alert "
                            "window");
                }
            }
        }
        if (f != NULL) {
            evidence_item(f->evidence, "activity_log", "operationName", op, note);
            if (when != NULL) {
                evidence_item(f->evidence, "activity_log", "eventTimestamp", when, NULL);
            }
        }
    }
}

static void
from_created_users(struct collector *c, const cJSON *evidence, const struct qn_config *cfg)
{
    const cJSON *u = NULL;
    cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(evidence, "createdUsers"))
    {
        const char *id = str(u, "id");
        const char *upn = str(u, "userPrincipalName");
        if (id == NULL || !qn_is_guid(id) || in_list(&cfg->policy.known_principals, id) ||
            in_list(&cfg->policy.known_principals, upn)) {
            continue;
        }
        struct qn_finding *f = add(c, "delete_user", "user", id, upn,
                                   "a compromised principal created this account (directory "
                                   "audit 'Add user')");
        if (f != NULL) {
            evidence_item(f->evidence, "directory_audit", "activityDisplayName", "Add user",
                          str(u, "auditId"));
            if (str(u, "activityDateTime") != NULL) {
                evidence_item(f->evidence, "directory_audit", "activityDateTime",
                              str(u, "activityDateTime"), NULL);
            }
        }
    }
}

/* Objects created after the alert started that nobody listed as known. */
static void from_creation_times(struct collector *c,
                                const cJSON *evidence,
                                const struct qn_alert *alert,
                                const struct qn_config *cfg)
{
    const char *start = alert->start_time;
    const cJSON *ra = NULL;
    cJSON_ArrayForEach(ra, cJSON_GetObjectItemCaseSensitive(evidence, "roleAssignments"))
    {
        const cJSON *props = cJSON_GetObjectItem(ra, "properties");
        const char *id = str(ra, "id");
        const char *created = str(props, "createdOn");
        const char *principal = str(props, "principalId");
        if (id == NULL || !after(created, start) ||
            in_list(&cfg->policy.known_principals, principal) ||
            in_list(&cfg->policy.known_resources, id)) {
            continue;
        }
        struct qn_finding *f =
            add(c, "remove_role_assignment", "role_assignment", id, str(ra, "name"),
                "this role assignment was created after the alert started and "
                "its principal is not on the known list");
        if (f != NULL) {
            evidence_item(f->evidence, "arm", "createdOn", created, principal);
        }
    }
    const cJSON *rb = NULL;
    cJSON_ArrayForEach(rb, cJSON_GetObjectItemCaseSensitive(evidence, "runbooks"))
    {
        const cJSON *props = cJSON_GetObjectItem(rb, "properties");
        const char *id = str(rb, "id");
        const char *created = str(props, "creationTime");
        if (id == NULL || !after(created, start) || in_list(&cfg->policy.known_resources, id)) {
            continue;
        }
        struct qn_finding *f = add(c, "remove_runbook", "runbook", id, str(rb, "name"),
                                   "this runbook was created after the alert started and is not "
                                   "on the known list");
        if (f != NULL) {
            evidence_item(f->evidence, "arm", "creationTime", created, NULL);
        }
    }
    const cJSON *res = NULL;
    cJSON_ArrayForEach(res, cJSON_GetObjectItemCaseSensitive(evidence, "resources"))
    {
        const char *id = str(res, "id");
        const char *created = str(res, "createdTime");
        struct qn_resid rid;
        if (id == NULL || !after(created, start) || in_list(&cfg->policy.known_resources, id) ||
            strcasecmp(id, alert->resource_id) == 0 || qn_resid_parse(id, 0, &rid, NULL) != QN_OK ||
            strcasecmp(rid.provider, "Microsoft.Automation") == 0) {
            continue;
        }
        const char *kind = qn_resid_is_vm(&rid) ? "delete_resource" : "delete_resource";
        struct qn_finding *f = add(c, kind, "resource", id, str(res, "name"),
                                   "this resource was created after the alert started and is not "
                                   "on the known list");
        if (f != NULL) {
            evidence_item(f->evidence, "arm", "createdTime", created, NULL);
        }
    }
}

int qn_evidence_findings(const cJSON *evidence,
                         const struct qn_alert *alert,
                         const struct qn_config *cfg,
                         struct qn_finding *out,
                         int max)
{
    struct collector c = {.out = out, .max = max, .n = 0};
    if (!cJSON_IsObject(evidence)) {
        return 0;
    }
    from_created_users(&c, evidence, cfg);
    from_activity(&c, evidence, alert, cfg);
    from_creation_times(&c, evidence, alert, cfg);
    return c.n;
}
