/*
 * evidence.c - the "unfamiliar" decision, from collected evidence only (DESIGN.md):
 *   - users a compromised principal created (directory audits "Add user", at or after the window
 *     start)                                                                    -> delete_user
 *   - role assignments a compromised principal wrote in the window (activity log), or created by
 *     one in the window (createdBy), or created after the alert started by someone not on the
 *     known list                                                       -> remove_role_assignment
 *   - runbooks a compromised principal wrote or published in the window, or created after the
 *     alert started                                                             -> remove_runbook
 *   - top-level resources a compromised principal created in the window (the write's resource
 *     was created inside the window, or the write answered "Created"), or created after the
 *     alert started                                                            -> delete_resource
 *   - VMs a compromised principal ran commands on                           -> vm_reset_passwords
 * A compromised principal is an account of the alert (UPN or object id), or one of the evidence's
 * "principals"; an activity-log event is theirs when its caller or its object-id claim is.
 * Only operations that went through count (status Succeeded or Accepted). Familiar objects
 * (known principals, known resources), the alert's own resource, and anything created before the
 * window are never findings; a familiar resource a principal merely changed is not deleted.
 * Extension and child resources are left alone (their parent is not the attacker's).
 * Pure functions: no I/O.
 */
#include "evidence.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "qn/mem.h"
#include "qn/resid.h"
#include "qn/timefmt.h"

#define OID_CLAIM "http://schemas.microsoft.com/identity/claims/objectidentifier"

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

/* activity-log fields such as operationName and status are {"value", "localizedValue"} objects
 * in the REST API and plain strings in some exports: take either */
static const char *value_of(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(obj, key);
    if (cJSON_IsString(item)) {
        return item->valuestring;
    }
    return str(item, "value");
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

/* @returns true if @p when is a timestamp at or after @p since_ms. */
static bool at_or_after(const char *when, int64_t since_ms)
{
    int64_t t;
    return qn_time_parse_rfc3339(when, &t) && t >= since_ms;
}

/* What the decision needs besides the raw evidence. */
struct ctx {
    const cJSON *evidence;
    const struct qn_alert *alert;
    const struct qn_config *cfg;
    int64_t alert_start_ms; /* INT64_MAX when unknown: nothing is "after" it */
    int64_t window_start_ms;
};

struct collector {
    struct qn_finding *out;
    int max;
    int n;
};

static bool compromised(const struct ctx *x, const char *who)
{
    if (who == NULL || who[0] == '\0') {
        return false;
    }
    if (qn_evidence_is_compromised(x->alert, who)) {
        return true;
    }
    const cJSON *p = NULL;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(x->evidence, "principals"))
    {
        if (cJSON_IsString(p) && strcasecmp(p->valuestring, who) == 0) {
            return true;
        }
    }
    return false;
}

static struct qn_finding *find(struct collector *c, const char *kind, const char *id)
{
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->out[i].kind, kind) == 0 && strcasecmp(c->out[i].target_id, id) == 0) {
            return &c->out[i];
        }
    }
    return NULL;
}

static bool same(const cJSON *item, const char *key, const char *value)
{
    const char *have = str(item, key);
    return (have == NULL && value == NULL) ||
           (have != NULL && value != NULL && strcmp(have, value) == 0);
}

/* Appends {source, field?, value?, note?} unless the same item is there already. */
static void evidence_item(
    cJSON *list, const char *source, const char *field, const char *value, const char *note)
{
    const cJSON *old = NULL;
    cJSON_ArrayForEach(old, list)
    {
        if (same(old, "source", source) && same(old, "field", field) && same(old, "value", value) &&
            same(old, "note", note)) {
            return;
        }
    }
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

/* The number of "/providers/" in @p id: more than one marks an extension resource. */
static int provider_count(const char *id)
{
    int n = 0;
    for (const char *p = id; p != NULL && *p != '\0'; p++) {
        n += strncasecmp(p, "/providers/", 11) == 0;
    }
    return n;
}

/* The object of @p list (an evidence array) whose "id" is @p id, or NULL. */
static const cJSON *by_id(const cJSON *evidence, const char *list, const char *id)
{
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(evidence, list))
    {
        const char *iid = str(item, "id");
        if (iid != NULL && strcasecmp(iid, id) == 0) {
            return item;
        }
    }
    return NULL;
}

static const char *created_time(const cJSON *resource)
{
    const char *t = str(resource, "createdTime");
    return t != NULL ? t : str(cJSON_GetObjectItem(resource, "systemData"), "createdAt");
}

static bool went_through(const cJSON *event)
{
    const char *status = value_of(event, "status");
    /* an export without a status is taken as the completed request it records */
    return status == NULL || strcasecmp(status, "Succeeded") == 0 ||
           strcasecmp(status, "Accepted") == 0;
}

static bool is_run_command(const char *op)
{
    return strcasecmp(op, "Microsoft.Compute/virtualMachines/runCommand/action") == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Runbook writes: write, draft/write, draft/content/write, publish/action, draft/publish/action. */
static bool is_runbook_change(const char *op)
{
    static const char prefix[] = "Microsoft.Automation/automationAccounts/runbooks/";
    return strncasecmp(op, prefix, sizeof(prefix) - 1) == 0 &&
           (ends_with(op, "/write") || ends_with(op, "/publish/action"));
}

/* Cuts a resource id at ".../automationAccounts/{a}/runbooks/{r}"; false if it names none. */
static bool runbook_id(const char *id, char *out, size_t out_len, struct qn_resid *rid)
{
    const char *p = NULL;
    for (const char *s = id; *s != '\0'; s++) {
        if (strncasecmp(s, "/runbooks/", 10) == 0) {
            p = s;
        }
    }
    if (p == NULL) {
        return false;
    }
    size_t len = (size_t)(p - id) + 10 + strcspn(p + 10, "/");
    if (len >= out_len) {
        return false;
    }
    memcpy(out, id, len);
    out[len] = '\0';
    return qn_resid_parse(out, 0, rid, NULL) == QN_OK && rid->depth == 2 &&
           strcasecmp(rid->provider, "Microsoft.Automation") == 0 &&
           strcasecmp(rid->type, "automationAccounts/runbooks") == 0;
}

static void note_event(struct qn_finding *f, const cJSON *event, const char *op, const char *caller)
{
    char note[256];
    snprintf(note, sizeof(note), "%.120s by %.100s", op, caller != NULL ? caller : "?");
    evidence_item(f->evidence, "activity_log", "operationName", op, note);
    const char *when = str(event, "eventTimestamp");
    if (when != NULL) {
        evidence_item(f->evidence, "activity_log", "eventTimestamp", when, NULL);
    }
}

static void role_assignment_write(struct collector *c,
                                  const struct ctx *x,
                                  const cJSON *event,
                                  const char *rid_text,
                                  const char *op,
                                  const char *caller)
{
    struct qn_resid rid;
    if (qn_resid_parse(rid_text, QN_RESID_ALLOW_TENANT, &rid, NULL) != QN_OK ||
        strcasecmp(rid.provider, "Microsoft.Authorization") != 0 ||
        strcasecmp(rid.type, "roleAssignments") != 0 ||
        in_list(&x->cfg->policy.known_resources, rid_text)) {
        return;
    }
    const cJSON *ra = by_id(x->evidence, "roleAssignments", rid_text);
    const char *principal = str(cJSON_GetObjectItem(ra, "properties"), "principalId");
    if (in_list(&x->cfg->policy.known_principals, principal)) {
        return; /* granted to a familiar principal */
    }
    struct qn_finding *f =
        add(c, "remove_role_assignment", "role_assignment", rid_text, last_segment(rid_text),
            "a compromised principal created this role assignment in the alert window");
    if (f != NULL) {
        note_event(f, event, op, caller);
        if (principal != NULL) {
            evidence_item(f->evidence, "arm", "properties.principalId", principal, NULL);
        }
    }
}

static void runbook_write(struct collector *c,
                          const struct ctx *x,
                          const cJSON *event,
                          const char *rid_text,
                          const char *op,
                          const char *caller)
{
    char id[QN_RESID_MAX_LEN + 1];
    struct qn_resid rid;
    if (!runbook_id(rid_text, id, sizeof(id), &rid) ||
        in_list(&x->cfg->policy.known_resources, id)) {
        return;
    }
    struct qn_finding *f =
        add(c, "remove_runbook", "runbook", id, rid.name,
            "a compromised principal wrote or published this runbook in the alert window");
    if (f != NULL) {
        note_event(f, event, op, caller);
    }
}

static void run_command(struct collector *c,
                        const struct ctx *x,
                        const cJSON *event,
                        const char *rid_text,
                        const char *op,
                        const char *caller)
{
    (void)x;
    struct qn_resid rid;
    if (qn_resid_parse(rid_text, 0, &rid, NULL) != QN_OK || !qn_resid_is_vm(&rid) ||
        provider_count(rid_text) != 1) {
        return;
    }
    struct qn_finding *f =
        add(c, "vm_reset_passwords", "vm", rid_text, rid.name,
            "a compromised principal ran commands on this VM in the alert window");
    if (f != NULL) {
        note_event(f, event, op, caller);
    }
}

/* A write to a top-level resource: a finding only if the principal created it in the window. */
static void resource_write(struct collector *c,
                           const struct ctx *x,
                           const cJSON *event,
                           const char *rid_text,
                           const char *op,
                           const char *caller)
{
    struct qn_resid rid;
    if (qn_resid_parse(rid_text, 0, &rid, NULL) != QN_OK || rid.depth != 1 ||
        provider_count(rid_text) != 1 || strcasecmp(rid.provider, "Microsoft.Authorization") == 0 ||
        strcasecmp(rid.provider, "Microsoft.Resources") == 0 ||
        in_list(&x->cfg->policy.known_resources, rid_text) ||
        strcasecmp(rid_text, x->alert->resource_id) == 0) {
        return;
    }
    const cJSON *res = by_id(x->evidence, "resources", rid_text);
    const char *created = created_time(res);
    const char *code = str(cJSON_GetObjectItem(event, "properties"), "statusCode");
    bool created_in_window = created != NULL ? at_or_after(created, x->window_start_ms)
                                             : code != NULL && strcasecmp(code, "Created") == 0;
    if (!created_in_window) {
        return; /* a familiar resource the principal changed: review it, never delete it */
    }
    struct qn_finding *f = add(c, "delete_resource", "resource", rid_text, rid.name,
                               "a compromised principal created this resource in the alert window");
    if (f != NULL) {
        note_event(f, event, op, caller);
        if (created != NULL) {
            evidence_item(f->evidence, "arm", "createdTime", created, NULL);
        }
    }
}

static void from_activity(struct collector *c, const struct ctx *x)
{
    const cJSON *event = NULL;
    cJSON_ArrayForEach(event, cJSON_GetObjectItemCaseSensitive(x->evidence, "activity"))
    {
        const char *caller = str(event, "caller");
        const char *oid = str(cJSON_GetObjectItem(event, "claims"), OID_CLAIM);
        const char *op = value_of(event, "operationName");
        const char *rid_text = str(event, "resourceId");
        if ((!compromised(x, caller) && !compromised(x, oid)) || op == NULL || rid_text == NULL ||
            !went_through(event)) {
            continue;
        }
        if (strcasecmp(op, "Microsoft.Authorization/roleAssignments/write") == 0) {
            role_assignment_write(c, x, event, rid_text, op, caller);
        } else if (is_runbook_change(op)) {
            runbook_write(c, x, event, rid_text, op, caller);
        } else if (is_run_command(op)) {
            run_command(c, x, event, rid_text, op, caller);
        } else if (ends_with(op, "/write")) {
            resource_write(c, x, event, rid_text, op, caller);
        }
    }
}

static void from_created_users(struct collector *c, const struct ctx *x)
{
    const cJSON *u = NULL;
    cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(x->evidence, "createdUsers"))
    {
        const char *id = str(u, "id");
        const char *upn = str(u, "userPrincipalName");
        const char *when = str(u, "activityDateTime");
        if (id == NULL || !qn_is_guid(id) || in_list(&x->cfg->policy.known_principals, id) ||
            in_list(&x->cfg->policy.known_principals, upn) || compromised(x, id) ||
            (when != NULL && !at_or_after(when, x->window_start_ms))) {
            continue;
        }
        struct qn_finding *f = add(c, "delete_user", "user", id, upn,
                                   "a compromised principal created this account (directory "
                                   "audit 'Add user')");
        if (f != NULL) {
            evidence_item(f->evidence, "directory_audit", "activityDisplayName", "Add user",
                          str(u, "auditId"));
            if (when != NULL) {
                evidence_item(f->evidence, "directory_audit", "activityDateTime", when, NULL);
            }
        }
    }
}

static void from_role_assignments(struct collector *c, const struct ctx *x)
{
    const cJSON *ra = NULL;
    cJSON_ArrayForEach(ra, cJSON_GetObjectItemCaseSensitive(x->evidence, "roleAssignments"))
    {
        const cJSON *props = cJSON_GetObjectItem(ra, "properties");
        const char *id = str(ra, "id");
        const char *created = str(props, "createdOn");
        const char *principal = str(props, "principalId");
        const char *by = str(props, "createdBy");
        if (id == NULL || in_list(&x->cfg->policy.known_principals, principal) ||
            in_list(&x->cfg->policy.known_resources, id)) {
            continue;
        }
        const char *reason = NULL;
        if (compromised(x, by) && at_or_after(created, x->window_start_ms)) {
            reason = "a compromised principal created this role assignment in the alert window "
                     "(createdBy)";
        } else if (at_or_after(created, x->alert_start_ms) &&
                   !in_list(&x->cfg->policy.known_principals, by)) {
            reason = "this role assignment was created after the alert started and neither its "
                     "principal nor its creator is on the known list";
        }
        if (reason == NULL) {
            continue;
        }
        struct qn_finding *f =
            add(c, "remove_role_assignment", "role_assignment", id, str(ra, "name"), reason);
        if (f != NULL) {
            evidence_item(f->evidence, "arm", "createdOn", created, by);
            if (principal != NULL) {
                evidence_item(f->evidence, "arm", "properties.principalId", principal, NULL);
            }
        }
    }
}

static void from_runbooks(struct collector *c, const struct ctx *x)
{
    const cJSON *rb = NULL;
    cJSON_ArrayForEach(rb, cJSON_GetObjectItemCaseSensitive(x->evidence, "runbooks"))
    {
        const cJSON *props = cJSON_GetObjectItem(rb, "properties");
        const char *id = str(rb, "id");
        const char *created = str(props, "creationTime");
        if (id == NULL || !at_or_after(created, x->alert_start_ms) ||
            in_list(&x->cfg->policy.known_resources, id)) {
            continue;
        }
        struct qn_finding *f = add(c, "remove_runbook", "runbook", id, str(rb, "name"),
                                   "this runbook was created after the alert started and is not "
                                   "on the known list");
        if (f != NULL) {
            evidence_item(f->evidence, "arm", "creationTime", created, NULL);
        }
    }
}

static void from_resources(struct collector *c, const struct ctx *x)
{
    const cJSON *res = NULL;
    cJSON_ArrayForEach(res, cJSON_GetObjectItemCaseSensitive(x->evidence, "resources"))
    {
        const char *id = str(res, "id");
        const char *created = created_time(res);
        struct qn_resid rid;
        /* top-level resources only: runbooks are decided above, other child resources are their
         * parent's business */
        if (id == NULL || !at_or_after(created, x->alert_start_ms) ||
            in_list(&x->cfg->policy.known_resources, id) ||
            strcasecmp(id, x->alert->resource_id) == 0 ||
            qn_resid_parse(id, 0, &rid, NULL) != QN_OK || rid.depth != 1 ||
            provider_count(id) != 1) {
            continue;
        }
        struct qn_finding *f = add(c, "delete_resource", "resource", id, str(res, "name"),
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
    struct ctx x = {.evidence = evidence, .alert = alert, .cfg = cfg};
    if (!qn_time_parse_rfc3339(alert->start_time, &x.alert_start_ms)) {
        x.alert_start_ms = INT64_MAX;
    }
    const cJSON *window = cJSON_GetObjectItemCaseSensitive(evidence, "window");
    if (!qn_time_parse_rfc3339(str(window, "start"), &x.window_start_ms)) {
        x.window_start_ms = x.alert_start_ms;
    }
    if (x.window_start_ms > x.alert_start_ms) {
        x.window_start_ms = x.alert_start_ms;
    }
    from_created_users(&c, &x);
    from_activity(&c, &x);
    from_role_assignments(&c, &x);
    from_runbooks(&c, &x);
    from_resources(&c, &x);
    return c.n;
}
