/*
 * subscription.c - the subscription tasks of DESIGN.md ("Subscriptions"), on Azure Resource
 * Manager:
 *   remove_role_assignment  DELETE {roleAssignmentId}?api-version=2022-04-01
 *   remove_runbook          DELETE {runbookId}?api-version=2024-10-23, after exporting its content
 *   delete_resource         DELETE {resourceId}?api-version={the provider's} (long-running)
 *
 * Every task is a reconciler. Check: GET the target (404: "already gone", success), then the
 * safety rules on what was read: a role assignment's principal must not be protected; a runbook
 * or resource must not carry a protected tag, nor may its parents, resource group or subscription
 * (Tags_GetAtScope), and no CanNotDelete/ReadOnly management lock may apply to it (locks at, above
 * or below it: ManagementLocks_ListByScope, api-version 2020-05-01 per operations.json). Act:
 * DELETE, right after qn_task_may_write. Verify: GET again, expecting 404 (up to VERIFY_READS
 * reads). Role assignments get no lock read; whatever the target, a DELETE that ARM refuses with
 * 409 ScopeLocked (a lock placed meanwhile) ends the task as SKIPPED, and one that finds the
 * object gone (404, e.g. a retry after a lost answer) as "already gone".
 *
 * Undo data is the object as read, in the shape of the PUT that recreates it. The runbook's
 * content (published, else draft) is exported into detail.runbookContent (valid UTF-8, cut at
 * CONTENT_MAX bytes) with the SHA-256 of the whole content; a runbook whose content cannot be
 * exported is not deleted, since the export is the evidence.
 *
 * delete_resource's api-version is the resource provider's own: Providers_Get ->
 * resourceTypes[type].apiVersions -> the newest stable (non-preview) version, which is the first
 * one in Azure's newest-first lists (Cloud Custodian's rule; azure-api.md 3.4), chosen by date so
 * an unordered list gives the same answer.
 *
 * Ownership: a task's `priv` is its struct arm_op, freed by finish() before qn_task_finish.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "qn/buf.h"
#include "qn/crypto.h"
#include "qn/mem.h"
#include "qn/resid.h"
#include "task.h"
#include "tasks/tasks.h"

#define API_AUTHORIZATION "2022-04-01"
#define API_AUTOMATION    "2024-10-23"
#define API_RESOURCES     "2021-04-01" /* Providers_Get, Tags_GetAtScope */
#define API_LOCKS         "2020-05-01" /* ManagementLocks_ListByScope */
#define VERIFY_READS      3
#define MAX_SCOPES        8
#define CONTENT_MAX       ((size_t)64 * 1024)
#define PATH_MAX_LEN      8192
#define LOCKS_SEGMENT     "/providers/Microsoft.Authorization/locks/"

struct arm_op {
    char api_version[48]; /* of the target's own operations */
    int resid_flags;
    cJSON *body;              /* the target as read by the check */
    char *scopes[MAX_SCOPES]; /* parents whose tags are checked, nearest first */
    int scope_count;
    int scope_next;
    int reads;  /* verification reads so far */
    bool draft; /* the runbook content came from the draft */
};

/* ---- pure helpers ---------------------------------------------------------------------------- */

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* ARM paths compare case-insensitively and segment by segment: is @p child @p parent or below? */
static bool is_under(const char *child, const char *parent)
{
    size_t plen = strlen(parent);
    while (plen > 0 && parent[plen - 1] == '/') {
        plen--;
    }
    if (plen == 0) {
        return true;
    }
    size_t clen = strlen(child);
    return clen >= plen && strncasecmp(child, parent, plen) == 0 &&
           (clen == plen || child[plen] == '/');
}

/*
 * Writes the scope directly above ARM id @p id into @p out: the resource a child or extension
 * resource belongs to, else the resource group, else the subscription.
 * @returns false at subscription or tenant level (no parent), or if @p out is too small.
 */
static bool parent_scope(const char *id, char *out, size_t size)
{
    size_t starts[128];
    size_t n = 0;
    for (size_t i = 0; id[i] != '\0'; i++) {
        if (id[i] == '/') {
            if (n == sizeof(starts) / sizeof(starts[0])) {
                return false;
            }
            starts[n++] = i;
        }
    }
    if (n <= 2) {
        return false;
    }
    size_t cut;
    const char *seg4 = n >= 4 ? id + starts[n - 4] + 1 : NULL;
    if (seg4 != NULL && strncasecmp(seg4, "providers/", 10) == 0) {
        cut = n - 4; /* ".../providers/{ns}/{type}/{name}": the scope it lives in */
    } else if (n == 4 && strncasecmp(id + starts[2] + 1, "resourceGroups/", 15) == 0) {
        cut = 2; /* a resource group: its subscription */
    } else {
        cut = n - 2; /* ".../{type}/{name}" under a parent resource */
    }
    if (cut < 2 || starts[cut] >= size) {
        return false;
    }
    memcpy(out, id, starts[cut]);
    out[starts[cut]] = '\0';
    return true;
}

/* A stable api-version is a bare date, YYYY-MM-DD; anything after it (-preview, -beta) is not. */
static bool stable_version(const char *v)
{
    if (strlen(v) != 10) {
        return false;
    }
    for (int i = 0; i < 10; i++) {
        bool dash = i == 4 || i == 7;
        if (dash ? v[i] != '-' : (v[i] < '0' || v[i] > '9')) {
            return false;
        }
    }
    return true;
}

/*
 * From a Providers_Get body, the api-version to use for resource type @p type (the type path
 * under the namespace, e.g. "storageAccounts" or "automationAccounts/runbooks"): the newest
 * stable version, else the first listed. @returns false if the type or its versions are missing.
 */
static bool pick_api_version(const cJSON *provider, const char *type, char *out, size_t size)
{
    const cJSON *rt = NULL;
    const cJSON *versions = NULL;
    cJSON_ArrayForEach(rt, cJSON_GetObjectItem(provider, "resourceTypes"))
    {
        const char *name = str(rt, "resourceType");
        if (name != NULL && strcasecmp(name, type) == 0) {
            versions = cJSON_GetObjectItem(rt, "apiVersions");
            break;
        }
    }
    const char *best = NULL;
    const char *first = NULL;
    const cJSON *v = NULL;
    cJSON_ArrayForEach(v, versions)
    {
        if (!cJSON_IsString(v) || v->valuestring[0] == '\0' || strlen(v->valuestring) >= size) {
            continue;
        }
        first = first != NULL ? first : v->valuestring;
        if (stable_version(v->valuestring) && (best == NULL || strcmp(v->valuestring, best) > 0)) {
            best = v->valuestring;
        }
    }
    const char *pick = best != NULL ? best : first;
    if (pick == NULL) {
        return false;
    }
    snprintf(out, size, "%s", pick);
    return true;
}

/* The scope a lock id sits at ("{scope}/providers/Microsoft.Authorization/locks/{name}"). */
static bool lock_scope(const char *lock_id, char *out, size_t size)
{
    const size_t seg = strlen(LOCKS_SEGMENT);
    const char *hit = NULL;
    for (const char *p = lock_id; *p != '\0'; p++) {
        if (strncasecmp(p, LOCKS_SEGMENT, seg) == 0) {
            hit = p;
        }
    }
    size_t len = hit != NULL ? (size_t)(hit - lock_id) : 0;
    if (hit == NULL || len >= size) {
        return false;
    }
    memcpy(out, lock_id, len);
    out[len] = '\0';
    return true;
}

/* Length of the valid UTF-8 sequence at @p s (at most @p avail bytes), 0 if invalid or NUL. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;
    if (c == 0) {
        return 0;
    }
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > avail) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/*
 * A copy of @p len bytes of @p data fit for a JSON string: valid UTF-8 (bad bytes and NULs become
 * U+FFFD), at most @p max bytes, cut between characters. *@p truncated tells whether input was
 * left out. @returns NULL when out of memory.
 */
static char *text_excerpt(const char *data, size_t len, size_t max, bool *truncated)
{
    char *out = qn_malloc(max + 1);
    if (out == NULL) {
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)data;
    size_t i = 0;
    size_t o = 0;
    while (i < len) {
        size_t n = utf8_seq(s + i, len - i);
        size_t need = n > 0 ? n : 3;
        if (o + need > max) {
            break;
        }
        if (n > 0) {
            memcpy(out + o, s + i, n);
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            i++;
        }
        o += need;
    }
    out[o] = '\0';
    *truncated = i < len;
    return out;
}

/* The last dotted component of an evidence field name ("properties.createdOn" -> "createdOn"). */
static const char *field_leaf(const char *field)
{
    const char *dot = strrchr(field, '.');
    return dot != NULL ? dot + 1 : field;
}

/* Adds an "arm" fact unless the evidence holds it already (the planner records some of them). */
static void add_fact(struct qn_task *task, const char *field, const char *value, const char *note)
{
    if (value == NULL) {
        return; /* a field this object does not have: nothing to record */
    }
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, task->evidence)
    {
        const char *src = str(item, "source");
        const char *f = str(item, "field");
        const char *v = str(item, "value");
        if (src != NULL && f != NULL && v != NULL && strcmp(src, "arm") == 0 &&
            strcmp(v, value) == 0 && strcmp(field_leaf(f), field_leaf(field)) == 0) {
            return;
        }
    }
    qn_task_add_evidence(task, "arm", field, value, note);
}

/* ---- task plumbing --------------------------------------------------------------------------- */

static void op_free(struct arm_op *op)
{
    if (op == NULL) {
        return;
    }
    cJSON_Delete(op->body);
    for (int i = 0; i < op->scope_count; i++) {
        qn_free(op->scopes[i]);
    }
    qn_free(op);
}

static void finish(struct qn_task *task, enum qn_task_state state, const char *message)
{
    op_free(task->priv);
    task->priv = NULL;
    qn_task_finish(task, state, message);
}

static void fail(struct qn_task *task, const char *what, const struct qn_error *err)
{
    char msg[1600];
    snprintf(msg, sizeof(msg), "%.1100s: %.400s", what,
             err != NULL && err->msg[0] != '\0' ? err->msg : "unknown error");
    finish(task, QN_TASK_FAILED, msg);
}

static bool may_write(struct qn_task *task)
{
    const char *why = NULL;
    if (qn_task_may_write(task, &why)) {
        return true;
    }
    finish(task, QN_TASK_SKIPPED, why != NULL ? why : "the policy refused the write");
    return false;
}

static cJSON *parse_body(const struct qn_http_result *res)
{
    if (res == NULL || res->body == NULL || res->body->len == 0) {
        return NULL;
    }
    return cJSON_ParseWithLength(qn_buf_cstr(res->body), res->body->len);
}

/*
 * Sends one ARM call on {id}{suffix}?api-version=... (id strictly parsed). On failure to start
 * it the task is finished; either way the caller must return right after.
 */
static void arm_call(struct qn_task *task,
                     const char *method,
                     const char *id,
                     int resid_flags,
                     const char *suffix,
                     const char *api_version,
                     unsigned flags,
                     qn_task_call_fn fn)
{
    struct qn_buf path;
    qn_buf_init(&path, PATH_MAX_LEN);
    struct qn_error err = {0};
    qn_err_t rc = qn_azure_arm_path(&path, id, resid_flags, suffix, api_version, &err);
    if (rc == QN_OK) {
        rc = qn_task_call(task, QN_AZURE_ARM, method, qn_buf_cstr(&path), NULL, flags, fn, NULL);
    }
    qn_buf_fini(&path);
    if (rc != QN_OK) {
        char msg[400];
        snprintf(msg, sizeof(msg), "cannot send %s%s to ARM: %s%s%.200s", method,
                 suffix != NULL ? suffix : "", qn_err_str(rc), err.msg[0] != '\0' ? ": " : "",
                 err.msg);
        finish(task, QN_TASK_FAILED, msg);
    }
}

static const char *response_error_code(const struct qn_http_result *res)
{
    return res != NULL && res->response != NULL ? res->response->error_code : "";
}

/* ---- verify ---------------------------------------------------------------------------------- */

static void verify(struct qn_task *task);

static void on_verified(struct qn_task *task,
                        struct qn_http_result *res,
                        const struct qn_error *err,
                        void *opaque)
{
    (void)res;
    (void)opaque;
    struct arm_op *op = task->priv;
    op->reads++;
    if (err != NULL && err->code == QN_ERR_NOT_FOUND) {
        qn_task_add_evidence(task, "arm", "GET {id}", "404", "verified: gone after the DELETE");
        finish(task, QN_TASK_SUCCEEDED,
               task->kind == QN_TASK_REMOVE_ROLE_ASSIGNMENT ? "removed: the role assignment is gone"
               : task->kind == QN_TASK_REMOVE_RUNBOOK
                   ? "removed: the runbook is gone (its content is in detail.runbookContent)"
                   : "deleted: the resource is gone");
    } else if (err != NULL) {
        fail(task, "the DELETE was accepted, but the read-back failed", err);
    } else if (op->reads < VERIFY_READS) {
        verify(task);
    } else {
        finish(task, QN_TASK_FAILED, "the DELETE was accepted, but ARM still returns the object");
    }
}

static void verify(struct qn_task *task)
{
    struct arm_op *op = task->priv;
    arm_call(task, "GET", task->target_id, op->resid_flags, NULL, op->api_version, 0, on_verified);
}

/* ---- undo data ------------------------------------------------------------------------------- */

static void copy_member(cJSON *to, const cJSON *from, const char *name)
{
    const cJSON *item = cJSON_GetObjectItem(from, name);
    if (item != NULL && !cJSON_IsNull(item)) {
        cJSON_AddItemToObject(to, name, cJSON_Duplicate(item, 1));
    }
}

static cJSON *undo_put(const struct qn_task *task, const char *api_version)
{
    cJSON *undo = cJSON_CreateObject();
    if (undo != NULL) {
        cJSON_AddStringToObject(undo, "method", "PUT");
        cJSON_AddStringToObject(undo, "path", task->target_id);
        cJSON_AddStringToObject(undo, "apiVersion", api_version);
    }
    return undo;
}

static void set_undo(struct qn_task *task)
{
    struct arm_op *op = task->priv;
    cJSON *undo = undo_put(task, op->api_version);
    if (undo == NULL) {
        return;
    }
    const cJSON *props = cJSON_GetObjectItem(op->body, "properties");
    if (task->kind == QN_TASK_REMOVE_ROLE_ASSIGNMENT) {
        cJSON *p = cJSON_AddObjectToObject(cJSON_AddObjectToObject(undo, "body"), "properties");
        static const char *const keep[] = {"roleDefinitionId",
                                           "principalId",
                                           "principalType",
                                           "description",
                                           "condition",
                                           "conditionVersion",
                                           "delegatedManagedIdentityResourceId"};
        for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
            copy_member(p, props, keep[i]);
        }
        cJSON_AddItemToObject(undo, "original", cJSON_Duplicate(op->body, 1));
        cJSON_AddStringToObject(undo, "note",
                                "recreates the assignment with the same name, role, principal and "
                                "scope; original is the assignment as read before removal");
    } else if (task->kind == QN_TASK_REMOVE_RUNBOOK) {
        cJSON *body = cJSON_AddObjectToObject(undo, "body");
        copy_member(body, op->body, "location");
        copy_member(body, op->body, "tags");
        cJSON *p = cJSON_AddObjectToObject(body, "properties");
        static const char *const keep[] = {"runbookType", "description",      "logVerbose",
                                           "logProgress", "logActivityTrace", "runtimeEnvironment"};
        for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
            copy_member(p, props, keep[i]);
        }
        const cJSON *sha = cJSON_GetObjectItem(task->detail, "runbookContentSha256");
        if (cJSON_IsString(sha)) {
            cJSON_AddStringToObject(undo, "contentSha256", sha->valuestring);
        }
        cJSON_AddStringToObject(undo, "note",
                                "content exported in detail.runbookContent: recreate the runbook, "
                                "PUT the content to {id}/draft/content, then publish it");
    } else {
        cJSON_AddItemToObject(undo, "body", cJSON_Duplicate(op->body, 1));
        cJSON_AddStringToObject(undo, "note", "recreate; data-plane contents are not restored");
    }
    qn_task_set_undo(task, undo);
}

/* ---- delete ---------------------------------------------------------------------------------- */

static void on_deleted(struct qn_task *task,
                       struct qn_http_result *res,
                       const struct qn_error *err,
                       void *opaque)
{
    (void)opaque;
    if (err != NULL && err->code == QN_ERR_NOT_FOUND) {
        /* gone between check and act, maybe by a retry of this call whose answer was lost */
        set_undo(task);
        finish(task, QN_TASK_SUCCEEDED,
               "already gone: deleted between the check and the DELETE (perhaps by a retry of "
               "this DELETE whose first answer was lost)");
        return;
    }
    if (err != NULL && strcasecmp(response_error_code(res), "ScopeLocked") == 0) {
        qn_task_add_evidence(task, "arm", "error.code", "ScopeLocked", err->msg);
        finish(task, QN_TASK_SKIPPED,
               "resource lock: ARM refused the DELETE (ScopeLocked); locked resources are never "
               "touched");
        return;
    }
    if (err != NULL) {
        fail(task, "ARM refused the DELETE", err);
        return;
    }
    set_undo(task);
    if (task->kind == QN_TASK_REMOVE_ROLE_ASSIGNMENT && res != NULL && res->status == 204) {
        qn_task_add_evidence(task, "arm", "DELETE status", "204",
                             "ARM says the assignment was already deleted");
    }
    verify(task);
}

static void delete_target(struct qn_task *task)
{
    struct arm_op *op = task->priv;
    if (!may_write(task)) {
        return;
    }
    /* Resources_DeleteById is long-running; role assignments and runbooks answer 200/204 */
    unsigned flags = task->kind == QN_TASK_DELETE_RESOURCE ? QN_HTTP_CALL_LRO : 0;
    arm_call(task, "DELETE", task->target_id, op->resid_flags, NULL, op->api_version, flags,
             on_deleted);
}

/* ---- runbook content export ------------------------------------------------------------------ */

static void on_content(struct qn_task *task,
                       struct qn_http_result *res,
                       const struct qn_error *err,
                       void *opaque)
{
    (void)opaque;
    struct arm_op *op = task->priv;
    if (err != NULL && err->code == QN_ERR_NOT_FOUND && !op->draft) {
        op->draft = true; /* never published: the draft is what would run */
        arm_call(task, "GET", task->target_id, 0, "/draft/content", API_AUTOMATION, 0, on_content);
        return;
    }
    if (err != NULL && err->code == QN_ERR_NOT_FOUND) {
        qn_task_add_detail(task, "runbookContentSource", cJSON_CreateString("none"));
        qn_task_add_evidence(task, "arm", "runbook content", "404",
                             "neither published nor draft content exists");
        delete_target(task);
        return;
    }
    if (err != NULL) {
        fail(task, "cannot export the runbook content, so the runbook is not deleted", err);
        return;
    }
    const char *data = res != NULL && res->body != NULL ? qn_buf_cstr(res->body) : "";
    size_t len = res != NULL && res->body != NULL ? res->body->len : 0;
    char sha[65];
    qn_sha256_hex(data, len, sha);
    bool truncated = false;
    char *text = text_excerpt(data, len, CONTENT_MAX, &truncated);
    if (text == NULL) {
        finish(task, QN_TASK_FAILED, "out of memory exporting the runbook content");
        return;
    }
    qn_task_add_detail(task, "runbookContent", cJSON_CreateString(text));
    qn_free(text);
    qn_task_add_detail(task, "runbookContentSha256", cJSON_CreateString(sha));
    qn_task_add_detail(task, "runbookContentBytes", cJSON_CreateNumber((double)len));
    qn_task_add_detail(task, "runbookContentTruncated", cJSON_CreateBool(truncated));
    qn_task_add_detail(task, "runbookContentSource",
                       cJSON_CreateString(op->draft ? "draft" : "published"));
    qn_task_add_evidence(task, "arm",
                         op->draft ? "runbook draft content SHA-256" : "runbook content SHA-256",
                         sha, "exported to detail.runbookContent before deletion");
    delete_target(task);
}

/* ---- locks ----------------------------------------------------------------------------------- */

static void
on_locks(struct qn_task *task, struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    (void)opaque;
    if (err != NULL) {
        fail(task, "cannot read the management locks, so nothing is deleted", err);
        return;
    }
    cJSON *body = parse_body(res);
    const cJSON *lock = NULL;
    char scope[QN_RESID_MAX_LEN + 1];
    cJSON_ArrayForEach(lock, cJSON_GetObjectItem(body, "value"))
    {
        const char *id = str(lock, "id");
        const char *level = str(cJSON_GetObjectItem(lock, "properties"), "level");
        if (id == NULL || !lock_scope(id, scope, sizeof(scope))) {
            continue;
        }
        /* a lock at or above the target guards it; one below it would block the cascade */
        if (!is_under(task->target_id, scope) && !is_under(scope, task->target_id)) {
            continue;
        }
        /* CanNotDelete and ReadOnly block; an unknown level counts as blocking */
        if (level != NULL && strcasecmp(level, "NotSpecified") == 0) {
            continue;
        }
        char why[QN_RESID_MAX_LEN + 200];
        snprintf(why, sizeof(why),
                 "resource lock %.300s (%.20s) applies: locked resources are never touched",
                 str(lock, "name") != NULL ? str(lock, "name") : id,
                 level != NULL ? level : "level not given");
        qn_task_add_evidence(task, "arm", "management lock", id, level);
        cJSON_Delete(body);
        finish(task, QN_TASK_SKIPPED, why);
        return;
    }
    cJSON_Delete(body);
    if (task->kind == QN_TASK_REMOVE_RUNBOOK) {
        arm_call(task, "GET", task->target_id, 0, "/content", API_AUTOMATION, 0, on_content);
    } else {
        delete_target(task);
    }
}

static void check_locks(struct qn_task *task)
{
    arm_call(task, "GET", task->target_id, 0, "/providers/Microsoft.Authorization/locks", API_LOCKS,
             QN_HTTP_CALL_PAGED, on_locks);
}

/* ---- protected tags -------------------------------------------------------------------------- */

static void check_next_scope(struct qn_task *task);

static bool tags_protected(struct qn_task *task, const cJSON *tags, const char *where)
{
    const char *why = NULL;
    if (!qn_task_protected_tags(task, tags, &why)) {
        return false;
    }
    char msg[QN_RESID_MAX_LEN + 200];
    snprintf(msg, sizeof(msg), "%.200s (on %.900s)", why, where);
    qn_task_add_evidence(task, "config", "policy.protected_tags", where, NULL);
    finish(task, QN_TASK_SKIPPED, msg);
    return true;
}

static void on_scope_tags(struct qn_task *task,
                          struct qn_http_result *res,
                          const struct qn_error *err,
                          void *opaque)
{
    (void)opaque;
    struct arm_op *op = task->priv;
    const char *scope = op->scopes[op->scope_next];
    if (err != NULL && err->code != QN_ERR_NOT_FOUND) {
        char what[QN_RESID_MAX_LEN + 80];
        snprintf(what, sizeof(what), "cannot read the tags of %.900s, so nothing is deleted",
                 scope);
        fail(task, what, err);
        return;
    }
    cJSON *body = err == NULL ? parse_body(res) : NULL;
    const cJSON *tags = cJSON_GetObjectItem(cJSON_GetObjectItem(body, "properties"), "tags");
    bool stop = tags_protected(task, tags, scope);
    cJSON_Delete(body);
    if (stop) {
        return;
    }
    op->scope_next++;
    check_next_scope(task);
}

static void check_next_scope(struct qn_task *task)
{
    struct arm_op *op = task->priv;
    if (op->scope_next >= op->scope_count) {
        check_locks(task);
        return;
    }
    arm_call(task, "GET", op->scopes[op->scope_next], 0,
             "/providers/Microsoft.Resources/tags/default", API_RESOURCES, 0, on_scope_tags);
}

/* ---- check (runbooks and resources) ---------------------------------------------------------- */

static void on_checked(struct qn_task *task,
                       struct qn_http_result *res,
                       const struct qn_error *err,
                       void *opaque)
{
    (void)opaque;
    struct arm_op *op = task->priv;
    if (err != NULL && err->code == QN_ERR_NOT_FOUND) {
        qn_task_add_evidence(task, "arm", "GET {id}", "404", NULL);
        finish(task, QN_TASK_SUCCEEDED, "already gone: ARM has no such object");
        return;
    }
    if (err != NULL) {
        fail(task, "cannot read the target from ARM", err);
        return;
    }
    op->body = parse_body(res);
    if (!cJSON_IsObject(op->body)) {
        finish(task, QN_TASK_FAILED, "ARM answered the read with something that is not an object");
        return;
    }
    const cJSON *props = cJSON_GetObjectItem(op->body, "properties");
    const cJSON *sys = cJSON_GetObjectItem(op->body, "systemData");
    add_fact(task, "provisioningState", str(props, "provisioningState"), NULL);
    if (task->kind == QN_TASK_REMOVE_RUNBOOK) {
        add_fact(task, "properties.creationTime", str(props, "creationTime"), NULL);
        add_fact(task, "properties.lastModifiedTime", str(props, "lastModifiedTime"), NULL);
        cJSON *runbook = cJSON_CreateObject();
        copy_member(runbook, op->body, "id");
        copy_member(runbook, op->body, "name");
        copy_member(runbook, op->body, "location");
        copy_member(runbook, op->body, "tags");
        copy_member(runbook, op->body, "properties");
        qn_task_add_detail(task, "runbook", runbook);
    }
    if (str(sys, "createdAt") != NULL) {
        add_fact(task, "systemData.createdAt", str(sys, "createdAt"), str(sys, "createdBy"));
    }
    if (tags_protected(task, cJSON_GetObjectItem(op->body, "tags"), task->target_id)) {
        return;
    }
    char scope[QN_RESID_MAX_LEN + 1];
    const char *from = task->target_id;
    while (op->scope_count < MAX_SCOPES && parent_scope(from, scope, sizeof(scope))) {
        op->scopes[op->scope_count] = qn_strdup(scope);
        if (op->scopes[op->scope_count] == NULL) {
            finish(task, QN_TASK_FAILED, "out of memory");
            return;
        }
        from = op->scopes[op->scope_count++];
    }
    check_next_scope(task);
}

static struct arm_op *start(struct qn_task *task)
{
    struct arm_op *op = qn_calloc(1, sizeof(*op));
    if (op == NULL) {
        qn_task_finish(task, QN_TASK_FAILED, "out of memory");
        return NULL;
    }
    task->priv = op;
    return op;
}

static void run_remove_runbook(struct qn_task *task)
{
    struct qn_resid rid;
    struct qn_error err = {0};
    if (qn_resid_parse(task->target_id, 0, &rid, &err) != QN_OK ||
        strcasecmp(rid.provider, "Microsoft.Automation") != 0 ||
        strcasecmp(rid.type, "automationAccounts/runbooks") != 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "the target is not a runbook id%s%.300s",
                 err.msg[0] != '\0' ? ": " : "", err.msg);
        qn_task_finish(task, QN_TASK_FAILED, msg);
        return;
    }
    struct arm_op *op = start(task);
    if (op == NULL) {
        return;
    }
    snprintf(op->api_version, sizeof(op->api_version), "%s", API_AUTOMATION);
    arm_call(task, "GET", task->target_id, 0, NULL, op->api_version, 0, on_checked);
}

/* ---- delete_resource: the provider's api-version first --------------------------------------- */

static void on_provider(struct qn_task *task,
                        struct qn_http_result *res,
                        const struct qn_error *err,
                        void *opaque)
{
    (void)opaque;
    struct arm_op *op = task->priv;
    struct qn_resid rid;
    if (qn_resid_parse(task->target_id, 0, &rid, NULL) != QN_OK) {
        finish(task, QN_TASK_FAILED, "internal error: the target id no longer parses");
        return;
    }
    if (err != NULL) {
        char what[300];
        snprintf(what, sizeof(what), "cannot read resource provider %.128s for its api-versions",
                 rid.provider);
        fail(task, what, err);
        return;
    }
    cJSON *provider = parse_body(res);
    bool found = pick_api_version(provider, rid.type, op->api_version, sizeof(op->api_version));
    cJSON_Delete(provider);
    if (!found) {
        char msg[500];
        snprintf(msg, sizeof(msg), "resource provider %.128s lists no api-version for type %.255s",
                 rid.provider, rid.type);
        finish(task, QN_TASK_FAILED, msg);
        return;
    }
    char note[512];
    snprintf(note, sizeof(note), "newest stable api-version %.128s lists for %.255s", rid.provider,
             rid.type);
    qn_task_add_evidence(task, "arm", "apiVersion", op->api_version, note);
    arm_call(task, "GET", task->target_id, 0, NULL, op->api_version, 0, on_checked);
}

static void run_delete_resource(struct qn_task *task)
{
    struct qn_resid rid;
    struct qn_error err = {0};
    if (qn_resid_parse(task->target_id, 0, &rid, &err) != QN_OK || rid.provider[0] == '\0' ||
        rid.subscription[0] == '\0') {
        char msg[400];
        snprintf(msg, sizeof(msg),
                 "the target is not a resource id (subscriptions and resource groups are never "
                 "deleted)%s%.250s",
                 err.msg[0] != '\0' ? ": " : "", err.msg);
        qn_task_finish(task, QN_TASK_FAILED, msg);
        return;
    }
    if (start(task) == NULL) {
        return;
    }
    char sub[64];
    char suffix[160];
    snprintf(sub, sizeof(sub), "/subscriptions/%s", rid.subscription);
    snprintf(suffix, sizeof(suffix), "/providers/%.140s", rid.provider);
    arm_call(task, "GET", sub, 0, suffix, API_RESOURCES, 0, on_provider);
}

/* ---- remove_role_assignment ------------------------------------------------------------------ */

static void on_assignment(struct qn_task *task,
                          struct qn_http_result *res,
                          const struct qn_error *err,
                          void *opaque)
{
    (void)opaque;
    struct arm_op *op = task->priv;
    if (err != NULL && err->code == QN_ERR_NOT_FOUND) {
        qn_task_add_evidence(task, "arm", "GET {roleAssignmentId}", "404", NULL);
        finish(task, QN_TASK_SUCCEEDED, "already gone: the role assignment does not exist");
        return;
    }
    if (err != NULL) {
        fail(task, "cannot read the role assignment", err);
        return;
    }
    op->body = parse_body(res);
    const cJSON *props = cJSON_GetObjectItem(op->body, "properties");
    const char *principal = str(props, "principalId");
    add_fact(task, "properties.principalId", principal, NULL);
    add_fact(task, "properties.principalType", str(props, "principalType"), NULL);
    add_fact(task, "properties.roleDefinitionId", str(props, "roleDefinitionId"), NULL);
    add_fact(task, "properties.scope", str(props, "scope"), NULL);
    add_fact(task, "properties.createdOn", str(props, "createdOn"), str(props, "createdBy"));
    if (principal == NULL || principal[0] == '\0' || str(props, "roleDefinitionId") == NULL) {
        finish(task, QN_TASK_SKIPPED,
               "the role assignment as read names no principal or role: it cannot be checked "
               "against the protected principals or restored, so it is left alone");
        return;
    }
    const char *why = NULL;
    if (qn_task_protected_principal(task, principal, &why)) {
        qn_task_add_evidence(task, "config", "policy.protected_principals", principal, NULL);
        finish(task, QN_TASK_SKIPPED, why);
        return;
    }
    delete_target(task);
}

static void run_remove_role_assignment(struct qn_task *task)
{
    struct qn_resid rid;
    struct qn_error err = {0};
    if (qn_resid_parse(task->target_id, QN_RESID_ALLOW_TENANT, &rid, &err) != QN_OK ||
        strcasecmp(rid.provider, "Microsoft.Authorization") != 0 ||
        strcasecmp(rid.type, "roleAssignments") != 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "the target is not a role assignment id%s%.300s",
                 err.msg[0] != '\0' ? ": " : "", err.msg);
        qn_task_finish(task, QN_TASK_FAILED, msg);
        return;
    }
    struct arm_op *op = start(task);
    if (op == NULL) {
        return;
    }
    op->resid_flags = QN_RESID_ALLOW_TENANT;
    snprintf(op->api_version, sizeof(op->api_version), "%s", API_AUTHORIZATION);
    arm_call(task, "GET", task->target_id, op->resid_flags, NULL, op->api_version, 0,
             on_assignment);
}

const struct qn_task_ops qn_task_ops_remove_role_assignment = {
    .kind = QN_TASK_REMOVE_ROLE_ASSIGNMENT,
    .run = run_remove_role_assignment,
};

const struct qn_task_ops qn_task_ops_remove_runbook = {
    .kind = QN_TASK_REMOVE_RUNBOOK,
    .run = run_remove_runbook,
};

const struct qn_task_ops qn_task_ops_delete_resource = {
    .kind = QN_TASK_DELETE_RESOURCE,
    .run = run_delete_resource,
};
