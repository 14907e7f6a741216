/*
 * evidence.c - collect_evidence: the read-only task that gathers what decides "unfamiliar"
 * (evidence.h documents the object it builds; evidence.c at the worker's top decides from it).
 *
 * Reads run in parallel, each paged by hand through nextLink / @odata.nextLink so that a page can
 * be filtered as it arrives and evidence.max_pages bounds every read:
 *   activity         ActivityLogs_List over the window (the caller is not filterable server-side:
 *                    events are kept when the caller or its object-id claim is a compromised
 *                    principal; events from the alert's IP addresses by anyone else are published
 *                    as "ipActivity"; an alert that names no account gets its principals from the
 *                    callers at those addresses, as DESIGN.md says)
 *   createdUsers     Graph directoryAudits "Add user" initiated by each principal since the window
 *                    started
 *   roleAssignments, automation accounts -> runbooks, resources (with createdTime), alerts
 * A failed read is recorded in "errors" and the task goes on; it fails only when nothing at all
 * could be read. Events are kept in a compact form (no request bodies or claims beyond the
 * caller's object id) so no secret a caller sent can reach an outcome event.
 *
 * The window runs from the alert's start minus evidence.lookback_minutes to the later of the
 * alert's end and now: what a compromised principal did after the detection window closed is as
 * much the attacker's as what it did inside it.
 */
#include "evidence.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "outcome.h"
#include "qn/mem.h"
#include "qn/resid.h"
#include "qn/timefmt.h"
#include "tasks.h"

#define ACTIVITY_API      "2015-04-01"
#define ROLES_API         "2022-04-01"
#define AUTOMATION_API    "2024-10-23"
#define RESOURCES_API     "2021-04-01"
#define ALERTS_API        "2022-01-01"
#define MAX_ACCOUNTS      50  /* Automation accounts whose runbooks are read */
#define MAX_DERIVED       10  /* principals taken from the alert's IP addresses */
#define MAX_IP_EVENTS     500 /* events by others from the alert's IP addresses */
#define MAX_USER_ACTIVITY 1000
#define OID_CLAIM         "http://schemas.microsoft.com/identity/claims/objectidentifier"
#define DAY_MS            (86400LL * 1000)
#define MAX_RANGE_MS      (89 * DAY_MS) /* the activity log serves 90 days */

enum source {
    SRC_ACTIVITY,
    SRC_AUDITS,
    SRC_ROLES,
    SRC_ACCOUNTS,
    SRC_RUNBOOKS,
    SRC_RESOURCES,
    SRC_ALERTS,
};

static const char *const source_names[] = {
    [SRC_ACTIVITY] = "activity",     [SRC_AUDITS] = "createdUsers",
    [SRC_ROLES] = "roleAssignments", [SRC_ACCOUNTS] = "automationAccounts",
    [SRC_RUNBOOKS] = "runbooks",     [SRC_RESOURCES] = "resources",
    [SRC_ALERTS] = "alerts",
};

/* the evidence-item source (outcome.schema.json $defs evidence) of each read */
static const char *const item_sources[] = {
    [SRC_ACTIVITY] = "activity_log",
    [SRC_AUDITS] = "directory_audit",
    [SRC_ROLES] = "arm",
    [SRC_ACCOUNTS] = "arm",
    [SRC_RUNBOOKS] = "arm",
    [SRC_RESOURCES] = "arm",
    [SRC_ALERTS] = "arm",
};

struct ev_run;

/* One paged read. */
struct reader {
    struct ev_run *run;
    enum source src;
    enum qn_azure_audience audience;
    int pages;
    char *account_id; /* runbooks: the Automation account read */
    struct reader *next;
};

struct ev_run {
    struct qn_task *task;
    int pending; /* readers in flight */
    int reads_ok;
    int reads_failed;
    bool activity_ok;
    int accounts;
    long window_events;
    char start[QN_RFC3339_LEN];
    char end[QN_RFC3339_LEN];
    cJSON *evidence; /* owns every array below */
    cJSON *principals;
    cJSON *activity;
    cJSON *created_users;
    cJSON *role_assignments;
    cJSON *runbooks;
    cJSON *resources;
    cJSON *alerts;
    cJSON *errors;
    cJSON *window_all;  /* every event of the window (compact), filtered when the read ends */
    cJSON *ip_activity; /* detail: events by others from the alert's addresses */
    struct reader *readers;
};

/* ---- helpers ------------------------------------------------------------------------------- */

static cJSON *parse_body(const struct qn_http_result *res)
{
    if (res == NULL || res->body == NULL || res->body->len == 0) {
        return NULL;
    }
    return cJSON_ParseWithLength(qn_buf_cstr(res->body), res->body->len);
}

static const char *jstr(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* A string, or the "value" of a {value, localizedValue} object (activity-log fields). */
static const char *jvalue(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : jstr(item, "value");
}

static const char *next_link(const cJSON *page)
{
    const char *next = jstr(page, "nextLink");
    if (next == NULL) {
        next = jstr(page, "@odata.nextLink");
    }
    return next != NULL && next[0] != '\0' ? next : NULL;
}

static bool has_string(const cJSON *array, const char *value)
{
    const cJSON *s = NULL;
    cJSON_ArrayForEach(s, array)
    {
        if (cJSON_IsString(s) && strcasecmp(s->valuestring, value) == 0) {
            return true;
        }
    }
    return false;
}

static void add_unique_string(cJSON *array, const char *value)
{
    if (value != NULL && value[0] != '\0' && !has_string(array, value)) {
        cJSON_AddItemToArray(array, cJSON_CreateString(value));
    }
}

static void copy_member(cJSON *to, const cJSON *from, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(from, key);
    if (item != NULL && !cJSON_IsNull(item)) {
        cJSON_AddItemToObject(to, key, cJSON_Duplicate(item, 1));
    }
}

static void add_error(struct ev_run *run, enum source src, const char *message)
{
    cJSON *e = cJSON_CreateObject();
    if (e == NULL) {
        return;
    }
    cJSON_AddStringToObject(e, "source", source_names[src]);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddItemToArray(run->errors, e);
    qn_task_add_evidence(run->task, item_sources[src], source_names[src], NULL, message);
}

/* ---- reads --------------------------------------------------------------------------------- */

static void finish(struct ev_run *run);
static void activity_done(struct ev_run *run);

static void
on_page(struct qn_task *task, struct qn_http_result *res, const struct qn_error *err, void *opaque);

/* Sends one page request of @p rd. @returns false (error recorded) when it cannot start. */
static bool reader_send(struct reader *rd, const char *target)
{
    qn_err_t rc = qn_task_call(rd->run->task, rd->audience, "GET", target, NULL, 0, on_page, rd);
    if (rc != QN_OK) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the read could not be started (%s)", qn_err_str(rc));
        add_error(rd->run, rd->src, msg);
        return false;
    }
    rd->pages++;
    return true;
}

/* Starts a read of @p target (a path built with qn_azure_*_path). Counts it as pending. */
static void reader_start(struct ev_run *run,
                         enum source src,
                         enum qn_azure_audience audience,
                         const char *target,
                         const char *account_id)
{
    struct reader *rd = qn_calloc(1, sizeof(*rd));
    if (rd == NULL) {
        add_error(run, src, "out of memory");
        run->reads_failed++;
        return;
    }
    rd->run = run;
    rd->src = src;
    rd->audience = audience;
    rd->account_id = qn_strdup(account_id);
    rd->next = run->readers;
    run->readers = rd;
    if (reader_send(rd, target)) {
        run->pending++;
    } else {
        run->reads_failed++;
    }
}

/* Builds the ARM path of @p id + @p suffix and starts reading it. */
static void arm_read(struct ev_run *run,
                     enum source src,
                     const char *id,
                     const char *suffix,
                     const char *api_version,
                     const char *qname,
                     const char *qvalue,
                     const char *account_id)
{
    struct qn_buf url;
    struct qn_error err = {0};
    qn_buf_init(&url, QN_HTTP_MAX_URL);
    qn_err_t rc = qn_azure_arm_path(&url, id, 0, suffix, api_version, &err);
    if (rc == QN_OK && qname != NULL) {
        rc = qn_http_query_append(&url, qname, qvalue);
    }
    if (rc == QN_OK) {
        reader_start(run, src, QN_AZURE_ARM, qn_buf_cstr(&url), account_id);
    } else {
        char msg[300];
        snprintf(msg, sizeof(msg), "cannot address the read: %s",
                 err.msg[0] != '\0' ? err.msg : qn_err_str(rc));
        add_error(run, src, msg);
        run->reads_failed++;
    }
    qn_buf_fini(&url);
}

/* Appends @p value to an OData string literal body, doubling single quotes. */
static qn_err_t odata_quoted(struct qn_buf *b, const char *value)
{
    qn_err_t rc = qn_buf_append_char(b, '\'');
    for (const char *p = value; rc == QN_OK && *p != '\0'; p++) {
        rc = *p == '\'' ? qn_buf_append_str(b, "''") : qn_buf_append_char(b, *p);
    }
    return rc == QN_OK ? qn_buf_append_char(b, '\'') : rc;
}

/* Directory audits "Add user" initiated by one principal (object id, else UPN) since the start. */
static void audits_read(struct ev_run *run, const char *object_id, const char *upn)
{
    struct qn_buf filter;
    struct qn_buf url;
    struct qn_error err = {0};
    qn_buf_init(&filter, 2048);
    qn_buf_init(&url, QN_HTTP_MAX_URL);
    qn_err_t rc = qn_buf_append_str(&filter, "activityDisplayName eq 'Add user' and ");
    if (rc == QN_OK) {
        rc = qn_buf_append_str(&filter, object_id != NULL
                                            ? "initiatedBy/user/id eq "
                                            : "initiatedBy/user/userPrincipalName eq ");
    }
    if (rc == QN_OK) {
        rc = odata_quoted(&filter, object_id != NULL ? object_id : upn);
    }
    if (rc == QN_OK) {
        rc = qn_buf_printf(&filter, " and activityDateTime ge %s", run->start);
    }
    if (rc == QN_OK) {
        rc = qn_azure_graph_path(&url, "/v1.0/auditLogs/directoryAudits", NULL, NULL, &err);
    }
    if (rc == QN_OK) {
        rc = qn_http_query_append(&url, "$filter", qn_buf_cstr(&filter));
    }
    if (rc == QN_OK) {
        reader_start(run, SRC_AUDITS, QN_AZURE_GRAPH, qn_buf_cstr(&url), NULL);
    } else {
        add_error(run, SRC_AUDITS, "cannot address the directory audits");
        run->reads_failed++;
    }
    qn_buf_fini(&filter);
    qn_buf_fini(&url);
}

/* ---- items --------------------------------------------------------------------------------- */

/* The fields of an activity-log event that evidence and reviewers need; nothing a caller sent. */
static cJSON *compact_event(const cJSON *e)
{
    static const char *const keys[] = {
        "caller",    "eventTimestamp", "operationName", "resourceId",           "status",
        "subStatus", "correlationId",  "eventDataId",   "operationId",          "resourceGroupName",
        "category",  "level",          "resourceType",  "resourceProviderName",
    };
    cJSON *out = cJSON_CreateObject();
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        copy_member(out, e, keys[i]);
    }
    const cJSON *http = cJSON_GetObjectItemCaseSensitive(e, "httpRequest");
    if (cJSON_IsObject(http)) {
        cJSON *h = cJSON_AddObjectToObject(out, "httpRequest");
        copy_member(h, http, "clientIpAddress");
        copy_member(h, http, "method");
        copy_member(h, http, "clientRequestId");
    }
    const char *code = jstr(cJSON_GetObjectItemCaseSensitive(e, "properties"), "statusCode");
    if (code != NULL) {
        cJSON_AddStringToObject(cJSON_AddObjectToObject(out, "properties"), "statusCode", code);
    }
    const char *oid = jstr(cJSON_GetObjectItemCaseSensitive(e, "claims"), OID_CLAIM);
    if (oid != NULL) {
        cJSON_AddStringToObject(cJSON_AddObjectToObject(out, "claims"), OID_CLAIM, oid);
    }
    return out;
}

static const char *event_ip(const cJSON *event)
{
    return jstr(cJSON_GetObjectItemCaseSensitive(event, "httpRequest"), "clientIpAddress");
}

static bool from_alert_ip(const struct qn_alert *alert, const cJSON *event)
{
    const char *ip = event_ip(event);
    for (size_t i = 0; ip != NULL && i < alert->ip_count; i++) {
        if (strcmp(alert->ips[i], ip) == 0) {
            return true;
        }
    }
    return false;
}

static bool by_principal(const struct ev_run *run, const cJSON *event)
{
    const struct qn_alert *alert = qn_task_alert(run->task);
    const char *caller = jstr(event, "caller");
    const char *oid = jstr(cJSON_GetObjectItemCaseSensitive(event, "claims"), OID_CLAIM);
    return qn_evidence_is_compromised(alert, caller) || qn_evidence_is_compromised(alert, oid) ||
           (caller != NULL && has_string(run->principals, caller)) ||
           (oid != NULL && has_string(run->principals, oid));
}

static void on_created_users(struct ev_run *run, const cJSON *audit)
{
    const char *result = jstr(audit, "result");
    if (result != NULL && strcasecmp(result, "success") != 0) {
        return; /* a failed "Add user" created nobody */
    }
    const cJSON *target = NULL;
    cJSON_ArrayForEach(target, cJSON_GetObjectItemCaseSensitive(audit, "targetResources"))
    {
        const char *type = jstr(target, "type");
        if (type == NULL) {
            type = jstr(target, "Type"); /* the older documented spelling */
        }
        const char *id = jstr(target, "id");
        if (type == NULL || strcasecmp(type, "User") != 0 || id == NULL) {
            continue;
        }
        bool seen = false;
        const cJSON *u = NULL;
        cJSON_ArrayForEach(u, run->created_users)
        {
            seen = seen || strcasecmp(jstr(u, "id"), id) == 0;
        }
        if (seen) {
            continue;
        }
        cJSON *u2 = cJSON_CreateObject();
        if (u2 == NULL) {
            return;
        }
        cJSON_AddStringToObject(u2, "id", id);
        qn_json_add_str(u2, "userPrincipalName", jstr(target, "userPrincipalName"));
        qn_json_add_str(u2, "activityDateTime", jstr(audit, "activityDateTime"));
        qn_json_add_str(u2, "auditId", jstr(audit, "id"));
        cJSON_AddItemToArray(run->created_users, u2);
    }
}

static cJSON *compact_alert(const cJSON *alert)
{
    static const char *const keys[] = {
        "alertType",    "systemAlertId", "alertDisplayName",  "severity",         "status",
        "startTimeUtc", "endTimeUtc",    "compromisedEntity", "timeGeneratedUtc", "intent",
    };
    cJSON *out = cJSON_CreateObject();
    if (out == NULL) {
        return NULL;
    }
    copy_member(out, alert, "id");
    copy_member(out, alert, "name");
    copy_member(out, alert, "type");
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(alert, "properties");
    cJSON *p = cJSON_AddObjectToObject(out, "properties");
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        copy_member(p, props, keys[i]);
    }
    return out;
}

static void on_item(struct reader *rd, const cJSON *item)
{
    struct ev_run *run = rd->run;
    const struct qn_alert *alert = qn_task_alert(run->task);
    if (!cJSON_IsObject(item)) {
        return;
    }
    switch (rd->src) {
    case SRC_ACTIVITY:
        run->window_events++;
        cJSON_AddItemToArray(run->window_all, compact_event(item));
        break;
    case SRC_AUDITS:
        on_created_users(run, item);
        break;
    case SRC_ROLES:
    case SRC_RESOURCES:
        cJSON_AddItemToArray(rd->src == SRC_ROLES ? run->role_assignments : run->resources,
                             cJSON_Duplicate(item, 1));
        break;
    case SRC_ACCOUNTS: {
        const char *id = jstr(item, "id");
        if (id == NULL) {
            break;
        }
        if (run->accounts >= MAX_ACCOUNTS) {
            if (run->accounts++ == MAX_ACCOUNTS) {
                add_error(run, SRC_RUNBOOKS, "more Automation accounts than the task reads (50)");
            }
            break;
        }
        run->accounts++;
        arm_read(run, SRC_RUNBOOKS, id, "/runbooks", AUTOMATION_API, NULL, NULL, id);
        break;
    }
    case SRC_RUNBOOKS: {
        cJSON *rb = cJSON_Duplicate(item, 1);
        if (rb != NULL) {
            cJSON_AddStringToObject(rb, "accountId", rd->account_id != NULL ? rd->account_id : "");
            cJSON_AddItemToArray(run->runbooks, rb);
        }
        break;
    }
    case SRC_ALERTS: {
        const char *sys =
            jstr(cJSON_GetObjectItemCaseSensitive(item, "properties"), "systemAlertId");
        const char *name = jstr(item, "name");
        if ((sys != NULL && strcasecmp(sys, alert->id) == 0) ||
            (name != NULL && strcasecmp(name, alert->id) == 0)) {
            break; /* this alert itself */
        }
        cJSON_AddItemToArray(run->alerts, compact_alert(item));
        break;
    }
    }
}

static void reader_done(struct reader *rd, bool ok)
{
    struct ev_run *run = rd->run;
    if (ok) {
        run->reads_ok++;
    } else {
        run->reads_failed++;
    }
    if (rd->src == SRC_ACTIVITY) {
        run->activity_ok = ok;
        activity_done(run); /* may start more reads before this one stops counting */
    }
    if (--run->pending == 0) {
        finish(run);
    }
}

static void
on_page(struct qn_task *task, struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct reader *rd = opaque;
    struct ev_run *run = rd->run;
    if (err != NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s%s", rd->pages > 1 ? "a later page failed: " : "",
                 err->msg[0] != '\0' ? err->msg : qn_err_str(err->code));
        add_error(run, rd->src, msg);
        reader_done(rd, rd->pages > 1); /* the earlier pages were read */
        return;
    }
    cJSON *body = parse_body(res);
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(body, "value");
    if (!cJSON_IsArray(value)) {
        cJSON_Delete(body);
        add_error(run, rd->src, "the response is not a list");
        reader_done(rd, false);
        return;
    }
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, value)
    {
        on_item(rd, item);
    }
    const char *next = next_link(body);
    long max_pages = qn_task_config(task)->evidence.max_pages;
    if (next != NULL && rd->pages < max_pages) {
        bool sent = reader_send(rd, next);
        cJSON_Delete(body);
        if (!sent) {
            reader_done(rd, true);
        }
        return;
    }
    cJSON_Delete(body);
    if (next != NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "more pages than evidence.max_pages (%ld): the rest was not read", max_pages);
        add_error(run, rd->src, msg);
    }
    reader_done(rd, true);
}

/* ---- the activity log, filtered once it is all read ---------------------------------------- */

static void activity_done(struct ev_run *run)
{
    const struct qn_alert *alert = qn_task_alert(run->task);
    if (!run->activity_ok) {
        return;
    }
    if (alert->account_count == 0) {
        /* DESIGN.md: failing accounts in the alert, the callers from its client IP addresses */
        int derived = 0;
        const cJSON *e = NULL;
        cJSON_ArrayForEach(e, run->window_all)
        {
            const char *caller = jstr(e, "caller");
            if (derived < MAX_DERIVED && caller != NULL && from_alert_ip(alert, e) &&
                !has_string(run->principals, caller)) {
                cJSON_AddItemToArray(run->principals, cJSON_CreateString(caller));
                qn_task_add_evidence(run->task, "activity_log", "caller", caller,
                                     "a caller from the alert's client IP address: treated as "
                                     "the compromised principal (the alert names no account)");
                bool guid = qn_is_guid(caller);
                if (guid || strchr(caller, '@') != NULL) {
                    audits_read(run, guid ? caller : NULL, guid ? NULL : caller);
                }
                derived++;
            }
        }
    }
    int ip_events = 0;
    while (cJSON_GetArraySize(run->window_all) > 0) {
        cJSON *e = cJSON_DetachItemFromArray(run->window_all, 0);
        if (by_principal(run, e)) {
            cJSON_AddItemToArray(run->activity, e);
        } else if (from_alert_ip(alert, e) && ip_events < MAX_IP_EVENTS) {
            cJSON_AddItemToArray(run->ip_activity, e);
            ip_events++;
        } else {
            cJSON_Delete(e);
        }
    }
}

/* ---- the end ------------------------------------------------------------------------------- */

static void
add_count(struct ev_run *run, const char *source, const char *field, int n, const char *note)
{
    char value[32];
    snprintf(value, sizeof(value), "%d", n);
    qn_task_add_evidence(run->task, source, field, value, note);
}

static cJSON *user_activity(const struct ev_run *run)
{
    cJSON *list = cJSON_CreateArray();
    int n = 0;
    const cJSON *e = NULL;
    cJSON_ArrayForEach(e, run->activity)
    {
        if (list == NULL || n++ == MAX_USER_ACTIVITY) {
            break;
        }
        cJSON *o = cJSON_CreateObject();
        if (o == NULL) {
            break;
        }
        qn_json_add_str(o, "operationName", jvalue(e, "operationName"));
        qn_json_add_str(o, "resourceId", jstr(e, "resourceId"));
        qn_json_add_str(o, "eventTimestamp", jstr(e, "eventTimestamp"));
        qn_json_add_str(o, "status", jvalue(e, "status"));
        qn_json_add_str(o, "caller", jstr(e, "caller"));
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

static cJSON *other_alerts(const struct ev_run *run)
{
    cJSON *list = cJSON_CreateArray();
    const cJSON *a = NULL;
    cJSON_ArrayForEach(a, run->alerts)
    {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(a, "properties");
        cJSON *o = cJSON_CreateObject();
        if (list == NULL || o == NULL) {
            cJSON_Delete(o);
            break;
        }
        qn_json_add_str(o, "name", jstr(a, "name"));
        qn_json_add_str(o, "alertType", jstr(props, "alertType"));
        qn_json_add_str(o, "alertDisplayName", jstr(props, "alertDisplayName"));
        qn_json_add_str(o, "severity", jstr(props, "severity"));
        qn_json_add_str(o, "status", jstr(props, "status"));
        qn_json_add_str(o, "startTimeUtc", jstr(props, "startTimeUtc"));
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

static void run_free(struct ev_run *run)
{
    while (run->readers != NULL) {
        struct reader *rd = run->readers;
        run->readers = rd->next;
        qn_free(rd->account_id);
        qn_free(rd);
    }
    cJSON_Delete(run->evidence);
    cJSON_Delete(run->window_all);
    cJSON_Delete(run->ip_activity);
    qn_free(run);
}

static void finish(struct ev_run *run)
{
    struct qn_task *task = run->task;
    char note[200];
    snprintf(note, sizeof(note),
             "events by the compromised principal(s) among %ld in the window %s .. %s",
             run->window_events, run->start, run->end);
    if (run->activity_ok) {
        add_count(run, "activity_log", "ActivityLogs_List", cJSON_GetArraySize(run->activity),
                  note);
    }
    add_count(run, "directory_audit", "Add user", cJSON_GetArraySize(run->created_users),
              "accounts the principal(s) created (directory audits)");
    add_count(run, "arm", "roleAssignments", cJSON_GetArraySize(run->role_assignments),
              "role assignments at, above and below the subscription");
    add_count(run, "arm", "runbooks", cJSON_GetArraySize(run->runbooks),
              "runbooks of the subscription's Automation accounts");
    add_count(run, "arm", "resources", cJSON_GetArraySize(run->resources),
              "resources of the subscription");
    add_count(run, "arm", "alerts", cJSON_GetArraySize(run->alerts),
              "the subscription's other security alerts");
    if (cJSON_GetArraySize(run->ip_activity) > 0) {
        add_count(run, "activity_log", "httpRequest.clientIpAddress",
                  cJSON_GetArraySize(run->ip_activity),
                  "events by other callers from the alert's IP address(es)");
    }
    char msg[400];
    enum qn_task_state state = QN_TASK_SUCCEEDED;
    if (run->reads_ok == 0) {
        state = QN_TASK_FAILED;
        snprintf(msg, sizeof(msg), "no evidence could be read (%d read(s) failed; see errors)",
                 run->reads_failed);
    } else {
        snprintf(msg, sizeof(msg),
                 "%s%d event(s) by the principal(s), %d account(s) they created, %d role "
                 "assignment(s), %d runbook(s), %d resource(s), %d other alert(s); %d read(s) "
                 "failed",
                 run->activity_ok ? "" : "the activity log could not be read; ",
                 cJSON_GetArraySize(run->activity), cJSON_GetArraySize(run->created_users),
                 cJSON_GetArraySize(run->role_assignments), cJSON_GetArraySize(run->runbooks),
                 cJSON_GetArraySize(run->resources), cJSON_GetArraySize(run->alerts),
                 run->reads_failed);
    }
    qn_task_add_detail(task, "userActivity", user_activity(run));
    qn_task_add_detail(task, "otherAlerts", other_alerts(run));
    qn_task_add_detail(task, "ipActivity", run->ip_activity);
    run->ip_activity = NULL;
    qn_task_add_detail(task, "evidence", run->evidence);
    run->evidence = NULL;
    task->priv = NULL;
    run_free(run);
    qn_task_finish(task, state, msg);
}

/* ---- start --------------------------------------------------------------------------------- */

static void window(struct ev_run *run)
{
    const struct qn_alert *alert = qn_task_alert(run->task);
    const struct qn_config *cfg = qn_task_config(run->task);
    int64_t now = qn_time_epoch_ms();
    int64_t start = 0;
    int64_t end = now;
    int64_t alert_end = 0;
    if (qn_time_parse_rfc3339(alert->end_time, &alert_end) && alert_end > end) {
        end = alert_end;
    }
    if (!qn_time_parse_rfc3339(alert->start_time, &start)) {
        start = end - DAY_MS;
        qn_task_add_evidence(run->task, "alert", "StartTimeUtc", alert->start_time,
                             "not a timestamp: the window starts a day before its end");
    }
    start -= (int64_t)cfg->evidence.lookback_minutes * 60 * 1000;
    if (end - start > MAX_RANGE_MS) {
        start = end - MAX_RANGE_MS;
        add_error(run, SRC_ACTIVITY,
                  "the window is longer than the activity log keeps: cut to 89 "
                  "days");
    }
    qn_time_format_rfc3339(start, run->start);
    qn_time_format_rfc3339(end, run->end);
}

static bool make_arrays(struct ev_run *run)
{
    cJSON *ev = run->evidence = cJSON_CreateObject();
    if (ev == NULL) {
        return false;
    }
    cJSON *w = cJSON_AddObjectToObject(ev, "window");
    run->principals = cJSON_AddArrayToObject(ev, "principals");
    run->activity = cJSON_AddArrayToObject(ev, "activity");
    run->created_users = cJSON_AddArrayToObject(ev, "createdUsers");
    run->role_assignments = cJSON_AddArrayToObject(ev, "roleAssignments");
    run->runbooks = cJSON_AddArrayToObject(ev, "runbooks");
    run->resources = cJSON_AddArrayToObject(ev, "resources");
    run->alerts = cJSON_AddArrayToObject(ev, "alerts");
    run->errors = cJSON_AddArrayToObject(ev, "errors");
    run->window_all = cJSON_CreateArray();
    run->ip_activity = cJSON_CreateArray();
    return w != NULL && run->principals != NULL && run->activity != NULL &&
           run->created_users != NULL && run->role_assignments != NULL && run->runbooks != NULL &&
           run->resources != NULL && run->alerts != NULL && run->errors != NULL &&
           run->window_all != NULL && run->ip_activity != NULL;
}

static void collect_evidence_run(struct qn_task *task)
{
    const struct qn_alert *alert = qn_task_alert(task);
    struct ev_run *run = qn_calloc(1, sizeof(*run));
    if (run == NULL) {
        qn_task_finish(task, QN_TASK_FAILED, "out of memory");
        return;
    }
    run->task = task;
    if (!make_arrays(run)) {
        run_free(run);
        qn_task_finish(task, QN_TASK_FAILED, "out of memory");
        return;
    }
    task->priv = run;
    window(run);
    cJSON *w = cJSON_GetObjectItemCaseSensitive(run->evidence, "window");
    cJSON_AddStringToObject(w, "start", run->start);
    cJSON_AddStringToObject(w, "end", run->end);
    for (size_t i = 0; i < alert->account_count; i++) {
        add_unique_string(run->principals, alert->accounts[i].upn);
        add_unique_string(run->principals, alert->accounts[i].aad_user_id);
    }
    char sub[64];
    snprintf(sub, sizeof(sub), "/subscriptions/%s", alert->subscription_id);
    char filter[160];
    snprintf(filter, sizeof(filter), "eventTimestamp ge '%s' and eventTimestamp le '%s'",
             run->start, run->end);
    run->pending = 1; /* held while the reads start, so none can finish the task early */
    arm_read(run, SRC_ACTIVITY, sub, "/providers/microsoft.insights/eventtypes/management/values",
             ACTIVITY_API, "$filter", filter, NULL);
    for (size_t i = 0; i < alert->account_count; i++) {
        const struct qn_account *acc = &alert->accounts[i];
        if ((acc->aad_user_id != NULL && qn_is_guid(acc->aad_user_id)) || acc->upn != NULL) {
            audits_read(run,
                        acc->aad_user_id != NULL && qn_is_guid(acc->aad_user_id) ? acc->aad_user_id
                                                                                 : NULL,
                        acc->upn);
        }
    }
    arm_read(run, SRC_ROLES, sub, "/providers/Microsoft.Authorization/roleAssignments", ROLES_API,
             NULL, NULL, NULL);
    arm_read(run, SRC_ACCOUNTS, sub, "/providers/Microsoft.Automation/automationAccounts",
             AUTOMATION_API, NULL, NULL, NULL);
    arm_read(run, SRC_RESOURCES, sub, "/resources", RESOURCES_API, "$expand",
             "createdTime,changedTime", NULL);
    arm_read(run, SRC_ALERTS, sub, "/providers/Microsoft.Security/alerts", ALERTS_API, NULL, NULL,
             NULL);
    if (--run->pending == 0) {
        finish(run);
    }
}

const struct qn_task_ops qn_task_ops_collect_evidence = {
    .kind = QN_TASK_COLLECT_EVIDENCE,
    .run = collect_evidence_run,
};
