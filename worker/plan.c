/*
 * plan.c - the observe-mode response plan, computed from the alert alone.
 *
 * Tasks follow DESIGN.md's table. From the alert we know the subscription, the accounts named as
 * compromised, and the VMs. Deleting users, role assignments, runbooks and resources is decided
 * from evidence (activity log, directory audits), so those tasks are not proposed here; the
 * collect_evidence task says which decisions it will make.
 */
#include "plan.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "qn/mem.h"
#include "qn/resid.h"

#define MAX_TASKS 256

struct task {
    enum qn_task_kind kind;
    const char *target_type;
    const char *target_id;
    const char *target_name;
    char id[QN_ID_HEX_LEN + 1];
    int depends[4]; /* indices into the task array, -1 terminated */
    const char *reason;
    const char *evidence_field;
    const char *evidence_value;
};

struct planner {
    const struct qn_alert *alert;
    const struct qn_config *cfg;
    const struct qn_emitter *emitter;
    struct task *tasks;
    int task_count;
    int events;
};

void qn_plan_task_id(const char *alert_id,
                     const char *kind,
                     const char *target,
                     char out[QN_ID_HEX_LEN + 1])
{
    qn_derive_id(out, "task", alert_id, kind, target, NULL);
}

static int add_task(struct planner *p,
                    enum qn_task_kind kind,
                    const char *target_type,
                    const char *target_id,
                    const char *target_name,
                    const char *reason)
{
    if (p->task_count == MAX_TASKS) {
        return -1;
    }
    struct task *t = &p->tasks[p->task_count];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->target_type = target_type;
    t->target_id = target_id;
    t->target_name = target_name;
    t->reason = reason;
    t->depends[0] = -1;
    qn_plan_task_id(p->alert->id, qn_task_kind_name(kind), target_id, t->id);
    return p->task_count++;
}

static void depends_on(struct planner *p, int task, int on)
{
    if (task < 0 || on < 0) {
        return;
    }
    int *d = p->tasks[task].depends;
    int n = 0;
    while (n < 3 && d[n] >= 0) {
        n++;
    }
    d[n] = on;
    d[n + 1] = -1;
}

static void set_evidence(struct planner *p, int task, const char *field, const char *value)
{
    if (task >= 0) {
        p->tasks[task].evidence_field = field;
        p->tasks[task].evidence_value = value;
    }
}

static void build_tasks(struct planner *p)
{
    const struct qn_alert *a = p->alert;
    struct qn_resid rid;
    const char *owner_type = "resource";
    if (qn_resid_parse(a->resource_id, 0, &rid, NULL) == QN_OK) {
        if (qn_resid_is_subscription(&rid)) {
            owner_type = "subscription";
        } else if (qn_resid_is_vm(&rid)) {
            owner_type = "vm";
        } else if (rid.provider[0] == '\0') {
            owner_type = "resource_group";
        }
    }
    int owner =
        add_task(p, QN_TASK_RESOLVE_OWNER, owner_type, a->resource_id, a->compromised_entity,
                 "ask the resource owner whether the activity was expected");
    set_evidence(p, owner, "AzureResourceId", a->resource_id);
    int evidence = add_task(p, QN_TASK_COLLECT_EVIDENCE, "subscription", a->subscription_id, NULL,
                            "read the activity log for the alert window, directory audits, role "
                            "assignments, runbooks, resources and the subscription's other alerts; "
                            "they decide delete_user, remove_role_assignment, remove_runbook and "
                            "delete_resource");
    set_evidence(p, evidence, "StartTimeUtc", a->start_time);
    for (size_t i = 0; i < a->account_count; i++) {
        const struct qn_account *acc = &a->accounts[i];
        const char *target = acc->aad_user_id != NULL ? acc->aad_user_id : acc->upn;
        const char *name = acc->upn != NULL ? acc->upn : acc->name;
        const char *field = strcmp(acc->source, "entity") == 0
                                ? "Entities[account]"
                                : "ExtendedProperties.Client principal name";
        int disable = add_task(p, QN_TASK_DISABLE_USER, "user", target, name,
                               "the alert names this account as the actor: block its sign-in");
        int revoke = add_task(p, QN_TASK_REVOKE_SESSIONS, "user", target, name,
                              "invalidate the account's refresh tokens and session cookies");
        int reset = add_task(p, QN_TASK_RESET_CREDENTIALS, "user", target, name,
                             "replace the password with an unknown random secret");
        int ids[] = {disable, revoke, reset};
        for (size_t k = 0; k < 3; k++) {
            depends_on(p, ids[k], evidence);
            set_evidence(p, ids[k], field, name != NULL ? name : target);
        }
        depends_on(p, revoke, disable);
        depends_on(p, reset, disable);
    }
    for (size_t i = 0; i < a->vm_count; i++) {
        const struct qn_vm *vm = &a->vms[i];
        int pw = add_task(p, QN_TASK_VM_RESET_PASSWORDS, "vm", vm->resource_id, vm->name,
                          "change the passwords of the VM's local users through run command");
        int scan = add_task(p, QN_TASK_VM_ANTIMALWARE_SCAN, "vm", vm->resource_id, vm->name,
                            "run a full antimalware scan through run command");
        int reimage = add_task(p, QN_TASK_VM_REIMAGE, "vm", vm->resource_id, vm->name,
                               "reimage the VM from a malware-free source");
        int ids[] = {pw, scan, reimage};
        for (size_t k = 0; k < 3; k++) {
            depends_on(p, ids[k], evidence);
            set_evidence(p, ids[k], "resource id", vm->resource_id);
        }
        depends_on(p, reimage, scan);
    }
}

/* Adds the fields every alert event carries. */
static void add_alert_fields(cJSON *data, const struct qn_alert *a, const char *mode)
{
    qn_json_add_str(data, "alertId", a->id);
    qn_json_add_str(data, "alertType", a->type);
    qn_json_add_str(data, "subscriptionId", a->subscription_id);
    qn_json_add_str(data, "mode", mode);
}

static qn_err_t emit_contact(struct planner *p)
{
    const struct qn_alert *a = p->alert;
    const struct qn_config *cfg = p->cfg;
    struct qn_outcome ev;
    qn_err_t rc = qn_outcome_init(&ev, "quench.contact.requested", a->id, "contact", a->id);
    if (rc != QN_OK) {
        return rc;
    }
    cJSON *d = ev.data;
    add_alert_fields(d, a, "observe");
    qn_json_add_str(d, "severity", a->severity);
    qn_json_add_str(d, "alertName", a->display_name);
    qn_json_add_str(d, "resourceId", a->resource_id);
    cJSON *owner = cJSON_AddObjectToObject(d, "owner");
    cJSON_AddStringToObject(owner, "resolution", "pending");
    cJSON *cands = cJSON_AddArrayToObject(owner, "candidates");
    char sub_scope[64];
    snprintf(sub_scope, sizeof(sub_scope), "/subscriptions/%s", a->subscription_id);
    char rg_scope[200];
    const char *scopes[3] = {NULL, NULL, NULL};
    size_t n_scopes = 0;
    if (strcasecmp(a->resource_id, sub_scope) != 0) {
        scopes[n_scopes++] = a->resource_id;
    }
    if (a->resource_group != NULL) {
        snprintf(rg_scope, sizeof(rg_scope), "%s/resourceGroups/%s", sub_scope, a->resource_group);
        if (strcasecmp(rg_scope, a->resource_id) != 0) {
            scopes[n_scopes++] = rg_scope;
        }
    }
    scopes[n_scopes++] = sub_scope;
    for (size_t i = 0; i < n_scopes; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "source", "tag");
        cJSON_AddStringToObject(c, "scope", scopes[i]);
        cJSON *tags = cJSON_AddArrayToObject(c, "tags");
        for (size_t t = 0; t < cfg->contact.owner_tags.count; t++) {
            cJSON_AddItemToArray(tags, cJSON_CreateString(cfg->contact.owner_tags.items[t]));
        }
        cJSON_AddItemToArray(cands, c);
    }
    for (size_t i = 0; i < n_scopes; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "source", "role");
        cJSON_AddStringToObject(c, "role", "Owner");
        cJSON_AddStringToObject(c, "scope", scopes[i]);
        cJSON_AddItemToArray(cands, c);
    }
    if (cfg->contact.security_contact[0] != '\0') {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "source", "security_contact");
        cJSON_AddStringToObject(c, "address", cfg->contact.security_contact);
        cJSON_AddItemToArray(cands, c);
    }
    cJSON *summary = cJSON_AddObjectToObject(d, "summary");
    qn_json_add_str(summary, "description", a->description);
    qn_json_add_str(summary, "startTime", a->start_time);
    qn_json_add_str(summary, "endTime", a->end_time);
    qn_json_add_str(summary, "compromisedEntity", a->compromised_entity);
    qn_json_add_str(summary, "alertUri", a->alert_uri);
    cJSON *key = cJSON_AddObjectToObject(d, "answerKey");
    cJSON_AddStringToObject(key, "alertId", a->id);
    cJSON_AddStringToObject(key, "subscriptionId", a->subscription_id);
    p->events++;
    return qn_outcome_emit(&ev, p->emitter);
}

static qn_err_t emit_task(struct planner *p, const struct task *t)
{
    const struct qn_alert *a = p->alert;
    struct qn_outcome ev;
    qn_err_t rc = qn_outcome_init(&ev, "quench.task.proposed", a->id, t->id, a->id);
    if (rc != QN_OK) {
        return rc;
    }
    enum qn_mode configured = p->cfg->policy.modes[t->kind];
    add_alert_fields(ev.data, a, "observe");
    cJSON *task = cJSON_AddObjectToObject(ev.data, "task");
    cJSON_AddStringToObject(task, "id", t->id);
    cJSON_AddStringToObject(task, "kind", qn_task_kind_name(t->kind));
    cJSON_AddStringToObject(task, "family", qn_task_kind_family(t->kind));
    cJSON *target = cJSON_AddObjectToObject(task, "target");
    cJSON_AddStringToObject(target, "type", t->target_type);
    cJSON_AddStringToObject(target, "id", t->target_id);
    qn_json_add_str(target, "name", t->target_name);
    cJSON_AddStringToObject(task, "mode", "observe");
    cJSON_AddStringToObject(task, "configuredMode", qn_mode_name(configured));
    cJSON *deps = cJSON_AddArrayToObject(task, "dependsOn");
    for (int k = 0; k < 4 && t->depends[k] >= 0; k++) {
        cJSON_AddItemToArray(deps, cJSON_CreateString(p->tasks[t->depends[k]].id));
    }
    cJSON_AddStringToObject(task, "reason", t->reason);
    cJSON *evidence = cJSON_AddArrayToObject(ev.data, "evidence");
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "source", "alert");
    qn_json_add_str(item, "field", t->evidence_field);
    qn_json_add_str(item, "value", t->evidence_value);
    cJSON_AddItemToArray(evidence, item);
    p->events++;
    return qn_outcome_emit(&ev, p->emitter);
}

static qn_err_t emit_closed(struct planner *p)
{
    const struct qn_alert *a = p->alert;
    struct qn_outcome ev;
    qn_err_t rc = qn_outcome_init(&ev, "quench.response.closed", a->id, "closed", a->id);
    if (rc != QN_OK) {
        return rc;
    }
    add_alert_fields(ev.data, a, "observe");
    cJSON_AddStringToObject(ev.data, "phase", "closed");
    cJSON_AddStringToObject(ev.data, "reason",
                            "observe mode: the plan was published and nothing was written to "
                            "Azure");
    cJSON *tasks = cJSON_AddObjectToObject(ev.data, "tasks");
    cJSON_AddNumberToObject(tasks, "proposed", p->task_count);
    p->events++;
    return qn_outcome_emit(&ev, p->emitter);
}

qn_err_t qn_plan_respond(const struct qn_alert *alert,
                         const struct qn_config *cfg,
                         const struct qn_emitter *emitter,
                         struct qn_plan_summary *summary)
{
    struct planner p = {.alert = alert, .cfg = cfg, .emitter = emitter};
    p.tasks = qn_calloc(MAX_TASKS, sizeof(*p.tasks));
    if (p.tasks == NULL) {
        return QN_ERR_NOMEM;
    }
    build_tasks(&p);
    qn_err_t rc = emit_contact(&p);
    for (int i = 0; rc == QN_OK && i < p.task_count; i++) {
        rc = emit_task(&p, &p.tasks[i]);
    }
    if (rc == QN_OK) {
        rc = emit_closed(&p);
    }
    if (summary != NULL) {
        summary->events = p.events;
        summary->tasks = p.task_count;
    }
    qn_free(p.tasks);
    return rc;
}

qn_err_t qn_plan_cancel(const struct qn_alert *alert, const struct qn_emitter *emitter)
{
    struct qn_outcome ev;
    const char *status = qn_alert_status_name(alert->status);
    qn_err_t rc = qn_outcome_init(&ev, "quench.response.cancelled", alert->id, status, alert->id);
    if (rc != QN_OK) {
        return rc;
    }
    add_alert_fields(ev.data, alert, "observe");
    cJSON_AddStringToObject(ev.data, "status", status);
    cJSON_AddStringToObject(ev.data, "reason",
                            alert->status == QN_ALERT_STATUS_DISMISSED
                                ? "the alert was dismissed upstream"
                                : "the alert was resolved upstream");
    return qn_outcome_emit(&ev, emitter);
}

qn_err_t qn_plan_rejected(const struct qn_record_origin *origin,
                          const char *reason,
                          const char *message,
                          const char *alert_id,
                          const struct qn_emitter *emitter)
{
    char subject[512];
    char disc[64];
    snprintf(subject, sizeof(subject), "record:%s/%d/%lld", origin->topic, origin->partition,
             origin->offset);
    snprintf(disc, sizeof(disc), "%d", origin->index);
    struct qn_outcome ev;
    qn_err_t rc = qn_outcome_init(&ev, "quench.record.rejected", subject, disc, subject);
    if (rc != QN_OK) {
        return rc;
    }
    cJSON_AddStringToObject(ev.data, "reason", reason);
    cJSON_AddStringToObject(ev.data, "message", message);
    cJSON *rec = cJSON_AddObjectToObject(ev.data, "record");
    cJSON_AddStringToObject(rec, "topic", origin->topic);
    cJSON_AddNumberToObject(rec, "partition", origin->partition);
    cJSON_AddNumberToObject(rec, "offset", (double)origin->offset);
    cJSON_AddNumberToObject(rec, "index", origin->index);
    cJSON *dlq = cJSON_AddObjectToObject(ev.data, "dlq");
    cJSON_AddStringToObject(dlq, "topic", origin->dlq_topic);
    qn_json_add_str(ev.data, "alertId", alert_id);
    return qn_outcome_emit(&ev, emitter);
}
