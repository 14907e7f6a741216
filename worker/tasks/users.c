/*
 * users.c - the user-account tasks of DESIGN.md ("User accounts"), on Microsoft Graph v1.0:
 *   disable_user       PATCH /v1.0/users/{id} {"accountEnabled":false}; undo: PATCH it back
 *   revoke_sessions    POST /v1.0/users/{id}/revokeSignInSessions; not undoable
 *   reset_credentials  PATCH /v1.0/users/{id} {"passwordProfile":{...}}, a random secret;
 *                      not undoable
 *   delete_user        DELETE /v1.0/users/{id}; undo: POST /v1.0/directory/deletedItems/{id}/
 *                      restore (30 days)
 *
 * Every task is a reconciler. Check: GET /v1.0/users/{target}?$select=... (the target is the
 * object id or the UPN); the account must exist, and neither its object id nor its UPN (nor the
 * task's target id and name) may be a protected principal. Act: only on the difference, right
 * after qn_task_may_write, on the object id the check returned. Verify: GET again (up to
 * VERIFY_READS times, since directory reads can lag a write).
 *
 * A user the directory does not know is "already gone" for delete_user and a failure for the
 * others: the alert named an account that cannot be contained here (a service principal, an
 * external identity), so a person has to act. disable_user also publishes what the account did in
 * the alert window (the collected activity-log events whose caller is this account) as detail
 * "activity".
 *
 * The password reset_credentials sets comes from getrandom (qn_random_bytes), lives only in stack
 * buffers that are wiped with OPENSSL_cleanse as soon as the request is submitted, and never
 * reaches a log line, an event, the evidence, the undo data or the request record (qn_task_call
 * records method, path and status only). Nobody learns it: the account is reopened by an
 * administrator's reset.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "qn/backoff.h"
#include "qn/buf.h"
#include "qn/mem.h"
#include "task.h"
#include "tasks/tasks.h"

#define USERS_BASE   "/v1.0/users"
#define VERIFY_READS 3   /* reads of the result before a mismatch counts */
#define ACTIVITY_MAX 200 /* activity-log events published with disable_user */
#define PASSWORD_LEN 40
#define PATH_MAX_LEN 4096

/* $select lists: literal, so they go into the path as they are. */
#define SELECT_BASE      "id,userPrincipalName,accountEnabled"
#define SELECT_REVOKE    SELECT_BASE ",signInSessionsValidFromDateTime"
#define SELECT_RESET     SELECT_BASE ",lastPasswordChangeDateTime"
#define SELECT_DELETE    SELECT_BASE ",createdDateTime"
#define SESSIONS_FIELD   "signInSessionsValidFromDateTime"
#define PASSWORD_CHANGED "lastPasswordChangeDateTime"

struct user_op {
    char *object_id; /* from the check read */
    char *upn;       /* from the check read, may be NULL */
    char *before;    /* the field a write changes, as read before it (revoke, reset) */
    int reads;       /* verification reads so far */
};

/* ---- helpers --------------------------------------------------------------------------------- */

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && a[0] != '\0' && strcasecmp(a, b) == 0;
}

static cJSON *parse_body(const struct qn_http_result *res)
{
    if (res == NULL || res->body == NULL || res->body->len == 0) {
        return NULL;
    }
    return cJSON_ParseWithLength(qn_buf_cstr(res->body), res->body->len);
}

static void op_free(struct user_op *op)
{
    if (op == NULL) {
        return;
    }
    qn_free(op->object_id);
    qn_free(op->upn);
    qn_free(op->before);
    qn_free(op);
}

static bool by_user(const cJSON *event, const char *const ids[], size_t n)
{
    const char *caller = str(event, "caller");
    const char *oid = str(cJSON_GetObjectItem(event, "claims"),
                          "http://schemas.microsoft.com/identity/claims/objectidentifier");
    for (size_t i = 0; i < n; i++) {
        if (same(caller, ids[i]) || same(oid, ids[i])) {
            return true;
        }
    }
    return false;
}

/* disable_user: what the account did in the alert window, from the collected activity log. */
static void add_activity(struct qn_task *task, const struct user_op *op)
{
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(qn_task_evidence(task), "activity");
    const char *ids[] = {task->target_id, task->target_name, op != NULL ? op->object_id : NULL,
                         op != NULL ? op->upn : NULL};
    cJSON *list = cJSON_CreateArray();
    if (list == NULL) {
        return;
    }
    int total = 0;
    const cJSON *event = NULL;
    cJSON_ArrayForEach(event, events)
    {
        if (!by_user(event, ids, sizeof(ids) / sizeof(ids[0]))) {
            continue;
        }
        if (++total > ACTIVITY_MAX) {
            continue;
        }
        /* collect_evidence keeps events compact already: nothing a caller sent */
        cJSON *item = cJSON_Duplicate(event, 1);
        if (item == NULL) {
            break;
        }
        cJSON_AddItemToArray(list, item);
    }
    qn_task_add_detail(task, "activity", list);
    qn_task_add_detail(task, "activityCount", cJSON_CreateNumber(total));
    if (total > ACTIVITY_MAX) {
        qn_task_add_detail(task, "activityTruncated", cJSON_CreateTrue());
    }
}

/* The one way a task of this file ends: priv freed, then qn_task_finish. */
static void finish(struct qn_task *task, enum qn_task_state state, const char *message)
{
    struct user_op *op = task->priv;
    if (task->kind == QN_TASK_DISABLE_USER) {
        add_activity(task, op);
    }
    op_free(op);
    task->priv = NULL;
    qn_task_finish(task, state, message);
}

static void fail(struct qn_task *task, const char *what, const struct qn_error *err)
{
    char msg[640];
    snprintf(msg, sizeof(msg), "%.200s: %.400s", what,
             err != NULL && err->msg[0] != '\0' ? err->msg : "unknown error");
    finish(task, QN_TASK_FAILED, msg);
}

/* @returns true if the policy lets the write go; otherwise the task is finished (SKIPPED). */
static bool may_write(struct qn_task *task)
{
    const char *why = NULL;
    if (qn_task_may_write(task, &why)) {
        return true;
    }
    finish(task, QN_TASK_SKIPPED, why != NULL ? why : "the policy refused the write");
    return false;
}

/*
 * Sends one Graph call on /v1.0/users/{id}{suffix}[?$select=...]. On failure to start it the task
 * is finished; either way the caller must return right after.
 */
static void graph_call(struct qn_task *task,
                       const char *method,
                       const char *id,
                       const char *suffix,
                       const char *select,
                       const char *body,
                       unsigned flags,
                       qn_task_call_fn fn)
{
    struct qn_buf path;
    qn_buf_init(&path, PATH_MAX_LEN);
    struct qn_error err = {0};
    qn_err_t rc = qn_azure_graph_path(&path, USERS_BASE, id, suffix, &err);
    if (rc == QN_OK && select != NULL) {
        rc = qn_buf_append_str(&path, "?$select=");
        if (rc == QN_OK) {
            rc = qn_buf_append_str(&path, select);
        }
    }
    if (rc == QN_OK) {
        rc = qn_task_call(task, QN_AZURE_GRAPH, method, qn_buf_cstr(&path), body, flags, fn, NULL);
    }
    qn_buf_fini(&path);
    if (rc != QN_OK) {
        char msg[256];
        snprintf(msg, sizeof(msg), "cannot send %s %s to Graph: %s%s%.120s", method,
                 suffix != NULL ? suffix : "/users/{id}", qn_err_str(rc),
                 err.msg[0] != '\0' ? ": " : "", err.msg);
        finish(task, QN_TASK_FAILED, msg);
    }
}

/* ---- the random password --------------------------------------------------------------------- */

/* No '"' or '\\': the password goes into JSON without escaping. All are allowed by Entra ID. */
static const char PASSWORD_ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "abcdefghijklmnopqrstuvwxyz"
                                        "0123456789"
                                        "!#$%&()*+,-.:;<=>?@[]^_{|}~";

static bool password_classes_ok(const char *pw, size_t len)
{
    bool lower = false, upper = false, digit = false, symbol = false;
    for (size_t i = 0; i < len; i++) {
        char c = pw[i];
        lower = lower || (c >= 'a' && c <= 'z');
        upper = upper || (c >= 'A' && c <= 'Z');
        digit = digit || (c >= '0' && c <= '9');
        symbol = symbol || strchr("!#$%&()*+,-.:;<=>?@[]^_{|}~", c) != NULL;
    }
    return lower && upper && digit && symbol;
}

/*
 * Fills @p out (len + 1 bytes) with a uniformly random password over PASSWORD_ALPHABET
 * (rejection sampling, no modulo bias) that mixes all four classes. The random bytes are wiped.
 */
static qn_err_t make_password(char *out, size_t len)
{
    const size_t n = sizeof(PASSWORD_ALPHABET) - 1;
    const unsigned limit = 256u - 256u % (unsigned)n;
    unsigned char rnd[64];
    qn_err_t rc = QN_ERR_IO;
    for (int attempt = 0; attempt < 16 && rc != QN_OK; attempt++) {
        size_t filled = 0;
        while (filled < len) {
            if (qn_random_bytes(rnd, sizeof(rnd)) != QN_OK) {
                OPENSSL_cleanse(rnd, sizeof(rnd));
                OPENSSL_cleanse(out, len + 1);
                return QN_ERR_IO;
            }
            for (size_t i = 0; i < sizeof(rnd) && filled < len; i++) {
                if (rnd[i] < limit) {
                    out[filled++] = PASSWORD_ALPHABET[rnd[i] % n];
                }
            }
        }
        out[len] = '\0';
        rc = password_classes_ok(out, len) ? QN_OK : QN_ERR_IO;
    }
    OPENSSL_cleanse(rnd, sizeof(rnd));
    if (rc != QN_OK) {
        OPENSSL_cleanse(out, len + 1);
    }
    return rc;
}

/* ---- verification ---------------------------------------------------------------------------- */

static void verify(struct qn_task *task);

static void on_verified(struct qn_task *task,
                        struct qn_http_result *res,
                        const struct qn_error *err,
                        void *opaque)
{
    (void)opaque;
    struct user_op *op = task->priv;
    op->reads++;
    bool again = op->reads < VERIFY_READS;
    if (task->kind == QN_TASK_DELETE_USER) {
        if (err != NULL && err->code == QN_ERR_NOT_FOUND) {
            qn_task_add_evidence(task, "graph", "GET /v1.0/users/{id}", "404",
                                 "verified: the user is in deleted items now");
            finish(task, QN_TASK_SUCCEEDED,
                   "deleted: the account is in the directory's deleted items, restorable for "
                   "30 days");
        } else if (err != NULL) {
            fail(task, "deleted (DELETE answered 204), but the read-back failed", err);
        } else if (again) {
            verify(task);
        } else {
            finish(task, QN_TASK_FAILED,
                   "DELETE answered 204 but Graph still returns the user on read-back");
        }
        return;
    }
    if (err != NULL) {
        fail(task, "the write was accepted, but the read-back failed", err);
        return;
    }
    cJSON *user = parse_body(res);
    char msg[256];
    switch (task->kind) {
    case QN_TASK_DISABLE_USER: {
        const cJSON *enabled = cJSON_GetObjectItem(user, "accountEnabled");
        if (cJSON_IsFalse(enabled)) {
            qn_task_add_evidence(task, "graph", "accountEnabled", "false",
                                 "verified after the PATCH");
            finish(task, QN_TASK_SUCCEEDED, "disabled: accountEnabled is false now");
        } else if (again) {
            verify(task);
        } else {
            finish(task, QN_TASK_FAILED,
                   "PATCH accountEnabled=false was accepted, but Graph still reports the account "
                   "as enabled");
        }
        break;
    }
    case QN_TASK_REVOKE_SESSIONS: {
        const char *now = str(user, SESSIONS_FIELD);
        bool moved = now != NULL && (op->before == NULL || strcmp(now, op->before) > 0);
        if (!moved && again) {
            verify(task);
            break;
        }
        qn_task_add_evidence(task, "graph", SESSIONS_FIELD, now,
                             moved ? "verified: moved forward by the revocation"
                                   : "not moved yet (Graph applies revocation with a delay)");
        snprintf(msg, sizeof(msg),
                 "sessions revoked: refresh tokens and session cookies issued before %.40s are "
                 "invalid%s",
                 now != NULL ? now : "now",
                 moved ? "" : " (the read-back does not show the new time yet)");
        finish(task, QN_TASK_SUCCEEDED, msg);
        break;
    }
    case QN_TASK_RESET_CREDENTIALS: {
        const char *now = str(user, PASSWORD_CHANGED);
        bool moved = now != NULL && (op->before == NULL || strcmp(now, op->before) != 0);
        if (!moved && again) {
            verify(task);
            break;
        }
        qn_task_add_evidence(task, "graph", PASSWORD_CHANGED, now,
                             moved ? "verified: changed by the reset" : "not changed on read-back");
        finish(task, QN_TASK_SUCCEEDED,
               moved ? "password replaced by an unknown random secret; a change is forced at the "
                       "next sign-in"
                     : "password replaced by an unknown random secret (Graph accepted it; "
                       "lastPasswordChangeDateTime did not move on read-back)");
        break;
    }
    default:
        finish(task, QN_TASK_FAILED, "internal error: unexpected task kind");
        break;
    }
    cJSON_Delete(user);
}

static void verify(struct qn_task *task)
{
    struct user_op *op = task->priv;
    const char *select = task->kind == QN_TASK_REVOKE_SESSIONS     ? "id," SESSIONS_FIELD
                         : task->kind == QN_TASK_RESET_CREDENTIALS ? "id," PASSWORD_CHANGED
                                                                   : "id,accountEnabled";
    graph_call(task, "GET", op->object_id, NULL, select, NULL, 0, on_verified);
}

/* ---- acting ---------------------------------------------------------------------------------- */

static cJSON *undo_object(const char *method, const char *path)
{
    cJSON *undo = cJSON_CreateObject();
    if (undo != NULL) {
        cJSON_AddStringToObject(undo, "method", method);
        cJSON_AddStringToObject(undo, "path", path);
    }
    return undo;
}

static void set_disable_undo(struct qn_task *task, const char *id)
{
    struct qn_buf path;
    qn_buf_init(&path, PATH_MAX_LEN);
    if (qn_azure_graph_path(&path, USERS_BASE, id, NULL, NULL) == QN_OK) {
        cJSON *undo = undo_object("PATCH", qn_buf_cstr(&path));
        cJSON *body = cJSON_AddObjectToObject(undo, "body");
        cJSON_AddTrueToObject(body, "accountEnabled");
        qn_task_set_undo(task, undo);
    }
    qn_buf_fini(&path);
}

static void set_delete_undo(struct qn_task *task, const char *id)
{
    struct qn_buf path;
    qn_buf_init(&path, PATH_MAX_LEN);
    if (qn_azure_graph_path(&path, "/v1.0/directory/deletedItems", id, "/restore", NULL) == QN_OK) {
        cJSON *undo = undo_object("POST", qn_buf_cstr(&path));
        cJSON_AddStringToObject(undo, "note", "restorable for 30 days");
        qn_task_set_undo(task, undo);
    }
    qn_buf_fini(&path);
}

static void on_written(struct qn_task *task,
                       struct qn_http_result *res,
                       const struct qn_error *err,
                       void *opaque)
{
    (void)opaque;
    struct user_op *op = task->priv;
    if (task->kind == QN_TASK_DELETE_USER && err != NULL && err->code == QN_ERR_NOT_FOUND) {
        /* gone between check and act, possibly by an earlier attempt of this very call whose
         * answer was lost: either way the account may sit in deleted items */
        set_delete_undo(task, op->object_id);
        finish(task, QN_TASK_SUCCEEDED,
               "already gone: deleted between the check and the DELETE (perhaps by a retry of "
               "this DELETE whose first answer was lost); restorable from deleted items");
        return;
    }
    if (err != NULL && err->code == QN_ERR_NOT_FOUND) {
        finish(task, QN_TASK_FAILED,
               "no such user any more: the account was deleted between the check and the write");
        return;
    }
    if (err != NULL) {
        fail(task,
             task->kind == QN_TASK_DISABLE_USER      ? "Graph refused to disable the account"
             : task->kind == QN_TASK_REVOKE_SESSIONS ? "Graph refused to revoke the sessions"
             : task->kind == QN_TASK_DELETE_USER     ? "Graph refused to delete the account"
                                                     : "Graph refused the password reset",
             err);
        return;
    }
    if (task->kind == QN_TASK_REVOKE_SESSIONS) {
        /* 200 {"value": true}; a known issue answers another 2xx without a body */
        cJSON *body = parse_body(res);
        bool refused = cJSON_IsFalse(cJSON_GetObjectItem(body, "value"));
        cJSON_Delete(body);
        if (refused) {
            finish(task, QN_TASK_FAILED, "revokeSignInSessions answered value=false");
            return;
        }
    } else if (task->kind == QN_TASK_DISABLE_USER) {
        set_disable_undo(task, op->object_id);
    } else if (task->kind == QN_TASK_DELETE_USER) {
        set_delete_undo(task, op->object_id);
    }
    verify(task);
}

static void reset_password(struct qn_task *task, const char *id)
{
    static const char prefix[] =
        "{\"passwordProfile\":{\"forceChangePasswordNextSignIn\":true,\"password\":\"";
    static const char suffix[] = "\"}}";
    char password[PASSWORD_LEN + 1];
    char body[sizeof(prefix) - 1 + PASSWORD_LEN + sizeof(suffix)];
    if (make_password(password, PASSWORD_LEN) != QN_OK) {
        finish(task, QN_TASK_FAILED, "no randomness available for the new password");
        return;
    }
    memcpy(body, prefix, sizeof(prefix) - 1);
    memcpy(body + sizeof(prefix) - 1, password, PASSWORD_LEN);
    memcpy(body + sizeof(prefix) - 1 + PASSWORD_LEN, suffix, sizeof(suffix));
    OPENSSL_cleanse(password, sizeof(password));
    /* same body on a retry: the PATCH is idempotent, so a retry after a lost answer is safe */
    graph_call(task, "PATCH", id, NULL, NULL, body, QN_HTTP_CALL_RETRY_UNSAFE, on_written);
    OPENSSL_cleanse(body, sizeof(body));
}

/* delete_user is only for accounts the evidence shows the threat actor created. */
static bool created_by_actor(const struct qn_task *task, const struct user_op *op)
{
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, task->evidence)
    {
        if (same(str(item, "source"), "directory_audit")) {
            return true;
        }
    }
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(qn_task_evidence(task), "createdUsers");
    cJSON_ArrayForEach(item, users)
    {
        const char *id = str(item, "id");
        if (same(id, op->object_id) || same(id, task->target_id)) {
            return true;
        }
    }
    return false;
}

static void act(struct qn_task *task)
{
    struct user_op *op = task->priv;
    switch (task->kind) {
    case QN_TASK_DISABLE_USER:
        if (may_write(task)) {
            graph_call(task, "PATCH", op->object_id, NULL, NULL, "{\"accountEnabled\":false}",
                       QN_HTTP_CALL_RETRY_UNSAFE, on_written);
        }
        break;
    case QN_TASK_REVOKE_SESSIONS:
        if (may_write(task)) {
            graph_call(task, "POST", op->object_id, "/revokeSignInSessions", NULL, NULL,
                       QN_HTTP_CALL_RETRY_UNSAFE, on_written);
        }
        break;
    case QN_TASK_RESET_CREDENTIALS:
        if (may_write(task)) {
            reset_password(task, op->object_id);
        }
        break;
    case QN_TASK_DELETE_USER:
        if (!created_by_actor(task, op)) {
            finish(task, QN_TASK_SKIPPED,
                   "no directory audit shows a compromised principal created this account: "
                   "only such accounts are deleted");
        } else if (may_write(task)) {
            graph_call(task, "DELETE", op->object_id, NULL, NULL, NULL, 0, on_written);
        }
        break;
    default:
        finish(task, QN_TASK_FAILED, "internal error: unexpected task kind");
        break;
    }
}

/* ---- checking -------------------------------------------------------------------------------- */

static void on_checked(struct qn_task *task,
                       struct qn_http_result *res,
                       const struct qn_error *err,
                       void *opaque)
{
    (void)opaque;
    struct user_op *op = task->priv;
    if (err != NULL && err->code == QN_ERR_NOT_FOUND) {
        qn_task_add_evidence(task, "graph", "GET /v1.0/users/{id}", "404", task->target_id);
        if (task->kind == QN_TASK_DELETE_USER) {
            finish(task, QN_TASK_SUCCEEDED, "already gone: the directory has no such user");
        } else {
            finish(task, QN_TASK_FAILED,
                   "no such user in the directory: the account cannot be contained here (a "
                   "service principal or an external identity needs a person)");
        }
        return;
    }
    if (err != NULL) {
        fail(task, "cannot read the user from Graph", err);
        return;
    }
    cJSON *user = parse_body(res);
    const char *id = str(user, "id");
    const char *upn = str(user, "userPrincipalName");
    const cJSON *enabled = cJSON_GetObjectItem(user, "accountEnabled");
    /* read now: `user` is freed before the decision */
    const bool disabled = cJSON_IsFalse(enabled);
    const char *enabled_text =
        cJSON_IsBool(enabled) ? (disabled ? "false" : "true") : "(not returned)";
    if (id == NULL || id[0] == '\0') {
        cJSON_Delete(user);
        finish(task, QN_TASK_FAILED, "Graph answered without the user's id");
        return;
    }
    op->object_id = qn_strdup(id);
    op->upn = qn_strdup(upn);
    const char *field = task->kind == QN_TASK_REVOKE_SESSIONS     ? SESSIONS_FIELD
                        : task->kind == QN_TASK_RESET_CREDENTIALS ? PASSWORD_CHANGED
                                                                  : NULL;
    op->before = field != NULL ? qn_strdup(str(user, field)) : NULL;
    qn_task_add_evidence(task, "graph", "id", id, NULL);
    if (upn != NULL) {
        qn_task_add_evidence(task, "graph", "userPrincipalName", upn, NULL);
    }
    qn_task_add_evidence(task, "graph", "accountEnabled", enabled_text, "before the action");
    if (task->kind == QN_TASK_DELETE_USER && str(user, "createdDateTime") != NULL) {
        qn_task_add_evidence(task, "graph", "createdDateTime", str(user, "createdDateTime"), NULL);
    }
    cJSON_Delete(user);
    if (op->object_id == NULL) {
        finish(task, QN_TASK_FAILED, "out of memory");
        return;
    }
    const char *candidates[] = {task->target_id, task->target_name, op->object_id, op->upn};
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        const char *why = NULL;
        if (candidates[i] != NULL && qn_task_protected_principal(task, candidates[i], &why)) {
            qn_task_add_evidence(task, "config", "policy.protected_principals", candidates[i],
                                 NULL);
            finish(task, QN_TASK_SKIPPED, why);
            return;
        }
    }
    if (task->kind == QN_TASK_DISABLE_USER && disabled) {
        finish(task, QN_TASK_SUCCEEDED, "already disabled: accountEnabled is false");
        return;
    }
    act(task);
}

static void run_user_task(struct qn_task *task)
{
    struct user_op *op = qn_calloc(1, sizeof(*op));
    if (op == NULL) {
        qn_task_finish(task, QN_TASK_FAILED, "out of memory");
        return;
    }
    task->priv = op;
    const char *select = task->kind == QN_TASK_REVOKE_SESSIONS     ? SELECT_REVOKE
                         : task->kind == QN_TASK_RESET_CREDENTIALS ? SELECT_RESET
                         : task->kind == QN_TASK_DELETE_USER       ? SELECT_DELETE
                                                                   : SELECT_BASE;
    graph_call(task, "GET", task->target_id, NULL, select, NULL, 0, on_checked);
}

const struct qn_task_ops qn_task_ops_disable_user = {
    .kind = QN_TASK_DISABLE_USER,
    .run = run_user_task,
};

const struct qn_task_ops qn_task_ops_revoke_sessions = {
    .kind = QN_TASK_REVOKE_SESSIONS,
    .run = run_user_task,
};

const struct qn_task_ops qn_task_ops_reset_credentials = {
    .kind = QN_TASK_RESET_CREDENTIALS,
    .run = run_user_task,
};

const struct qn_task_ops qn_task_ops_delete_user = {
    .kind = QN_TASK_DELETE_USER,
    .run = run_user_task,
};
