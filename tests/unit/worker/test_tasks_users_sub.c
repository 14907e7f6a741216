/*
 * test_tasks_users_sub.c - unit tests for worker/tasks/users.c and worker/tasks/subscription.c.
 *
 * Both files are compiled into this test with the task API's policy and I/O entry points
 * (qn_task_call, qn_task_may_write, the protected lists, qn_task_evidence, qn_task_finish)
 * renamed by macro to fakes defined here, and their registry symbols renamed so they do not clash
 * with the copies linked from qn_worker. The recording functions (evidence, undo, detail) are the
 * real ones. A test starts a task, then answers its Azure calls one at a time, the way the loop
 * would, and checks every request (method, path, api-version, flags, body), the writes counted
 * against the policy, and how and with what undo data and detail the task finished. The pure
 * helpers (parent scopes, api-version choice, lock scopes, UTF-8 excerpts) are tested directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the code under test, with the task API's I/O replaced --------------------------------- */

#define qn_task_call                       fake_task_call
#define qn_task_may_write                  fake_may_write
#define qn_task_protected_principal        fake_protected_principal
#define qn_task_protected_tags             fake_protected_tags
#define qn_task_evidence                   fake_evidence
#define qn_task_finish                     fake_finish
#define qn_task_ops_disable_user           test_ops_disable_user
#define qn_task_ops_revoke_sessions        test_ops_revoke_sessions
#define qn_task_ops_reset_credentials      test_ops_reset_credentials
#define qn_task_ops_delete_user            test_ops_delete_user
#define qn_task_ops_remove_role_assignment test_ops_remove_role_assignment
#define qn_task_ops_remove_runbook         test_ops_remove_runbook
#define qn_task_ops_delete_resource        test_ops_delete_resource

#include "tasks/users.c"

#undef VERIFY_READS
#undef PATH_MAX_LEN
#define str         sub_str
#define parse_body  sub_parse_body
#define op_free     sub_op_free
#define finish      sub_finish
#define fail        sub_fail
#define may_write   sub_may_write
#define verify      sub_verify
#define on_verified sub_on_verified
#define on_checked  sub_on_checked

#include "tasks/subscription.c"

#undef str
#undef parse_body
#undef op_free
#undef finish
#undef fail
#undef may_write
#undef verify
#undef on_verified
#undef on_checked

/* after the code under test: cmocka defines a fail() macro */
#include <cmocka.h>

/* ---- fakes ------------------------------------------------------------------------------------
 */

#define MAX_CALLS 64
#define SUB       "3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34"
#define RG        "/subscriptions/" SUB "/resourceGroups/rg-prod"
#define USER_ID   "5b0e7f3a-9c2d-4e1b-a8f6-3d7c0e9b2a14"
#define USER_UPN  "mallory@contoso.com"

struct fake_call {
    char *method;
    char *target;
    char *body; /* copied, as the real client copies it */
    unsigned flags;
    qn_task_call_fn fn;
    void *opaque;
};

static struct {
    struct fake_call calls[MAX_CALLS];
    int count;    /* calls made */
    int answered; /* calls answered */
    bool deny_write;
    int writes; /* permissions asked */
    const char *protected_principal;
    const char *protected_tag;
    cJSON *evidence;
    int finishes;
    enum qn_task_state state;
    char *message;
    bool priv_left; /* priv was still set at finish */
} g;

qn_err_t fake_task_call(struct qn_task *task,
                        enum qn_azure_audience audience,
                        const char *method,
                        const char *target,
                        const char *body,
                        unsigned flags,
                        qn_task_call_fn fn,
                        void *opaque)
{
    (void)task;
    (void)audience;
    assert_true(g.count < MAX_CALLS);
    struct fake_call *c = &g.calls[g.count++];
    c->method = strdup(method);
    c->target = strdup(target);
    c->body = body != NULL ? strdup(body) : NULL;
    c->flags = flags;
    c->fn = fn;
    c->opaque = opaque;
    return QN_OK;
}

bool fake_may_write(struct qn_task *task, const char **why)
{
    (void)task;
    g.writes++;
    if (g.deny_write) {
        *why = "observe mode: the action is proposed, not taken";
        return false;
    }
    return true;
}

bool fake_protected_principal(const struct qn_task *task, const char *principal, const char **why)
{
    (void)task;
    if (g.protected_principal != NULL && principal != NULL &&
        strcasecmp(principal, g.protected_principal) == 0) {
        *why = "protected principal (policy.protected_principals): never touched";
        return true;
    }
    return false;
}

bool fake_protected_tags(const struct qn_task *task, const cJSON *tags, const char **why)
{
    (void)task;
    if (g.protected_tag != NULL && cJSON_GetObjectItem(tags, g.protected_tag) != NULL) {
        *why = "protected tag (policy.protected_tags): never touched";
        return true;
    }
    return false;
}

const cJSON *fake_evidence(const struct qn_task *task)
{
    (void)task;
    return g.evidence;
}

void fake_finish(struct qn_task *task, enum qn_task_state state, const char *message)
{
    g.finishes++;
    g.state = state;
    g.priv_left = g.priv_left || task->priv != NULL;
    free(g.message);
    g.message = strdup(message != NULL ? message : "");
    task->state = state;
}

static int setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof(g));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < g.count; i++) {
        free(g.calls[i].method);
        free(g.calls[i].target);
        free(g.calls[i].body);
    }
    free(g.message);
    cJSON_Delete(g.evidence);
    memset(&g, 0, sizeof(g));
    return 0;
}

static struct qn_task *new_task(enum qn_task_kind kind, const char *target, const char *name)
{
    struct qn_task *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->kind = kind;
    t->target_id = qn_strdup(target);
    t->target_name = qn_strdup(name);
    t->evidence = cJSON_CreateArray();
    t->requests = cJSON_CreateArray();
    t->state = QN_TASK_RUNNING;
    return t;
}

static void free_task(struct qn_task *t)
{
    qn_free(t->target_id);
    qn_free(t->target_name);
    cJSON_Delete(t->evidence);
    cJSON_Delete(t->requests);
    cJSON_Delete(t->undo);
    cJSON_Delete(t->detail);
    free(t);
}

/* The next unanswered call: checks its method and that its target starts with @p prefix. */
static struct fake_call *expect_call(const char *method, const char *target)
{
    assert_true(g.answered < g.count);
    struct fake_call *c = &g.calls[g.answered];
    assert_string_equal(c->method, method);
    assert_string_equal(c->target, target);
    return c;
}

/* Answers the next call with @p status and @p body (an ARM error code for failures). */
static void
answer_raw(struct qn_task *task, long status, const char *body, size_t len, const char *error_code)
{
    assert_true(g.answered < g.count);
    struct fake_call *c = &g.calls[g.answered++];
    struct qn_http_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = status;
    snprintf(resp.error_code, sizeof(resp.error_code), "%s", error_code != NULL ? error_code : "");
    struct qn_buf buf;
    qn_buf_init(&buf, QN_HTTP_MAX_BODY);
    if (body != NULL) {
        assert_int_equal(qn_buf_append(&buf, body, len), QN_OK);
    }
    struct qn_http_result res;
    memset(&res, 0, sizeof(res));
    res.status = status;
    res.response = &resp;
    res.body = &buf;
    struct qn_error err = {0};
    const struct qn_error *errp = NULL;
    if (status < 200 || status > 299) {
        err.code = status == 404 ? QN_ERR_NOT_FOUND : QN_ERR_HTTP_PERMANENT;
        snprintf(err.msg, sizeof(err.msg), "HTTP %ld %s", status, resp.error_code);
        errp = &err;
    }
    c->fn(task, &res, errp, c->opaque);
    qn_buf_fini(&buf);
}

static void answer(struct qn_task *task, long status, const char *body)
{
    answer_raw(task, status, body, body != NULL ? strlen(body) : 0, NULL);
}

static void assert_finished(enum qn_task_state state, const char *message_part)
{
    assert_int_equal(g.finishes, 1);
    if (g.state != state) {
        fail_msg("state %d, not %d: %s", (int)g.state, (int)state, g.message);
    }
    assert_false(g.priv_left);
    assert_int_equal(g.answered, g.count); /* nothing left in flight */
    if (message_part != NULL && strstr(g.message, message_part) == NULL) {
        fail_msg("message '%s' lacks '%s'", g.message, message_part);
    }
}

static const char *jpath(const cJSON *obj, const char *a, const char *b, const char *c)
{
    const cJSON *x = cJSON_GetObjectItem(obj, a);
    if (b != NULL) {
        x = cJSON_GetObjectItem(x, b);
    }
    if (c != NULL) {
        x = cJSON_GetObjectItem(x, c);
    }
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* ---- users.c -------------------------------------------------------------------------------- */

#define USER_BODY(enabled) \
    "{\"id\":\"" USER_ID "\",\"userPrincipalName\":\"" USER_UPN "\",\"accountEnabled\":" enabled "}"

static void test_disable_user(void **state)
{
    (void)state;
    g.evidence = cJSON_Parse(
        "{\"activity\":["
        "{\"caller\":\"mallory@contoso.com\",\"operationName\":{\"value\":\"a/write\"}},"
        "{\"caller\":\"alice@contoso.com\",\"operationName\":{\"value\":\"b/write\"}},"
        "{\"caller\":\"x\",\"claims\":{\"http://schemas.microsoft.com/identity/claims/"
        "objectidentifier\":\"" USER_ID "\"}}]}");
    struct qn_task *t = new_task(QN_TASK_DISABLE_USER, USER_UPN, USER_UPN);
    run_user_task(t);
    expect_call("GET",
                "/v1.0/users/mallory%40contoso.com?$select=id,userPrincipalName,accountEnabled");
    answer(t, 200, USER_BODY("true"));
    struct fake_call *c = expect_call("PATCH", "/v1.0/users/" USER_ID);
    assert_string_equal(c->body, "{\"accountEnabled\":false}");
    assert_true(c->flags & QN_HTTP_CALL_RETRY_UNSAFE);
    assert_int_equal(g.writes, 1);
    answer(t, 204, NULL);
    expect_call("GET", "/v1.0/users/" USER_ID "?$select=id,accountEnabled");
    answer(t, 200, "{\"id\":\"" USER_ID "\",\"accountEnabled\":true}"); /* replica lag */
    expect_call("GET", "/v1.0/users/" USER_ID "?$select=id,accountEnabled");
    answer(t, 200, "{\"id\":\"" USER_ID "\",\"accountEnabled\":false}");
    assert_finished(QN_TASK_SUCCEEDED, "disabled");
    assert_string_equal(jpath(t->undo, "method", NULL, NULL), "PATCH");
    assert_string_equal(jpath(t->undo, "path", NULL, NULL), "/v1.0/users/" USER_ID);
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(t->undo, "body"), "accountEnabled")));
    const cJSON *activity = cJSON_GetObjectItem(t->detail, "activity");
    assert_int_equal(cJSON_GetArraySize(activity), 2); /* by UPN and by object-id claim */
    assert_int_equal(cJSON_GetObjectItem(t->detail, "activityCount")->valueint, 2);
    free_task(t);
}

static void test_disable_user_already_disabled(void **state)
{
    (void)state;
    struct qn_task *t = new_task(QN_TASK_DISABLE_USER, USER_ID, USER_UPN);
    run_user_task(t);
    answer(t, 200, USER_BODY("false"));
    assert_finished(QN_TASK_SUCCEEDED, "already disabled");
    assert_int_equal(g.writes, 0);
    assert_null(t->undo);
    assert_non_null(cJSON_GetObjectItem(t->detail, "activity"));
    free_task(t);
}

static void test_disable_user_protected_by_upn(void **state)
{
    (void)state;
    g.protected_principal = "MALLORY@contoso.com"; /* the task names the object id only */
    struct qn_task *t = new_task(QN_TASK_DISABLE_USER, USER_ID, NULL);
    run_user_task(t);
    answer(t, 200, USER_BODY("true"));
    assert_finished(QN_TASK_SKIPPED, "protected principal");
    assert_int_equal(g.writes, 0);
    free_task(t);
}

static void test_disable_user_denied_and_missing(void **state)
{
    (void)state;
    g.deny_write = true;
    struct qn_task *t = new_task(QN_TASK_DISABLE_USER, USER_ID, USER_UPN);
    run_user_task(t);
    answer(t, 200, USER_BODY("true"));
    assert_finished(QN_TASK_SKIPPED, "observe mode");
    free_task(t);
    teardown(NULL);
    t = new_task(QN_TASK_REVOKE_SESSIONS, USER_ID, USER_UPN);
    run_user_task(t);
    answer(t, 404, "{\"error\":{\"code\":\"Request_ResourceNotFound\"}}");
    assert_finished(QN_TASK_FAILED, "no such user");
    free_task(t);
}

static void test_disable_user_verify_mismatch(void **state)
{
    (void)state;
    struct qn_task *t = new_task(QN_TASK_DISABLE_USER, USER_ID, USER_UPN);
    run_user_task(t);
    answer(t, 200, USER_BODY("true"));
    answer(t, 204, NULL);
    for (int i = 0; i < 3; i++) {
        answer(t, 200, USER_BODY("true"));
    }
    assert_finished(QN_TASK_FAILED, "still reports");
    free_task(t);
}

static void test_revoke_sessions(void **state)
{
    (void)state;
    struct qn_task *t = new_task(QN_TASK_REVOKE_SESSIONS, USER_ID, USER_UPN);
    run_user_task(t);
    expect_call("GET", "/v1.0/users/" USER_ID "?$select=id,userPrincipalName,accountEnabled,"
                       "signInSessionsValidFromDateTime");
    answer(t, 200,
           "{\"id\":\"" USER_ID "\",\"signInSessionsValidFromDateTime\":\"2026-01-01T00:00:00Z\"}");
    struct fake_call *c = expect_call("POST", "/v1.0/users/" USER_ID "/revokeSignInSessions");
    assert_null(c->body);
    answer(t, 200, "{\"value\":true}");
    expect_call("GET", "/v1.0/users/" USER_ID "?$select=id,signInSessionsValidFromDateTime");
    answer(t, 200,
           "{\"id\":\"" USER_ID "\",\"signInSessionsValidFromDateTime\":\"2026-11-28T10:00:00Z\"}");
    assert_finished(QN_TASK_SUCCEEDED, "2026-11-28T10:00:00Z");
    assert_null(t->undo);
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_REVOKE_SESSIONS, USER_ID, USER_UPN);
    run_user_task(t);
    answer(t, 200, USER_BODY("false"));
    answer(t, 200, "{\"value\":false}");
    assert_finished(QN_TASK_FAILED, "value=false");
    free_task(t);
}

static char *reset_once(void)
{
    struct qn_task *t = new_task(QN_TASK_RESET_CREDENTIALS, USER_ID, USER_UPN);
    run_user_task(t);
    answer(t, 200, "{\"id\":\"" USER_ID "\",\"userPrincipalName\":\"" USER_UPN "\"}");
    struct fake_call *c = expect_call("PATCH", "/v1.0/users/" USER_ID);
    cJSON *body = cJSON_Parse(c->body);
    const cJSON *profile = cJSON_GetObjectItem(body, "passwordProfile");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(profile, "forceChangePasswordNextSignIn")));
    const char *pw = jpath(profile, "password", NULL, NULL);
    assert_non_null(pw);
    assert_int_equal(strlen(pw), PASSWORD_LEN);
    assert_true(PASSWORD_LEN >= 32);
    assert_true(password_classes_ok(pw, strlen(pw)));
    char *copy = strdup(pw);
    cJSON_Delete(body);
    answer(t, 204, NULL);
    answer(t, 200, "{\"id\":\"" USER_ID "\",\"lastPasswordChangeDateTime\":\"2026-11-28T10:00Z\"}");
    assert_finished(QN_TASK_SUCCEEDED, "unknown random secret");
    assert_null(t->undo);
    /* the secret is nowhere in what the task publishes */
    char *ev = cJSON_PrintUnformatted(t->evidence);
    char *detail = t->detail != NULL ? cJSON_PrintUnformatted(t->detail) : NULL;
    assert_null(strstr(ev, copy));
    assert_true(detail == NULL || strstr(detail, copy) == NULL);
    assert_null(strstr(g.message, copy));
    for (int i = 0; i < g.count; i++) {
        assert_null(strstr(g.calls[i].target, copy));
    }
    cJSON_free(ev);
    cJSON_free(detail);
    free_task(t);
    teardown(NULL);
    return copy;
}

static void test_reset_credentials(void **state)
{
    (void)state;
    char *a = reset_once();
    char *b = reset_once();
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void test_password_generator(void **state)
{
    (void)state;
    int seen[128] = {0};
    for (int i = 0; i < 200; i++) {
        char pw[PASSWORD_LEN + 1];
        assert_int_equal(make_password(pw, PASSWORD_LEN), QN_OK);
        assert_int_equal(strlen(pw), PASSWORD_LEN);
        assert_true(password_classes_ok(pw, PASSWORD_LEN));
        for (int k = 0; k < PASSWORD_LEN; k++) {
            assert_true(pw[k] != '"' && pw[k] != '\\' && pw[k] > 0x20 && pw[k] < 0x7f);
            seen[(unsigned char)pw[k]]++;
        }
    }
    int distinct = 0;
    for (int c = 0; c < 128; c++) {
        distinct += seen[c] > 0;
    }
    assert_int_equal(distinct, (int)sizeof(PASSWORD_ALPHABET) - 1); /* 8000 draws cover all */
}

static void test_delete_user(void **state)
{
    (void)state;
    /* not shown by evidence to be the actor's: left alone */
    struct qn_task *t = new_task(QN_TASK_DELETE_USER, USER_ID, USER_UPN);
    run_user_task(t);
    answer(t, 200, USER_BODY("true"));
    assert_finished(QN_TASK_SKIPPED, "directory audit");
    assert_int_equal(g.writes, 0);
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_DELETE_USER, USER_ID, USER_UPN);
    qn_task_add_evidence(t, "directory_audit", "activityDisplayName", "Add user", NULL);
    run_user_task(t);
    answer(t, 200, USER_BODY("true"));
    expect_call("DELETE", "/v1.0/users/" USER_ID);
    answer(t, 204, NULL);
    expect_call("GET", "/v1.0/users/" USER_ID "?$select=id,accountEnabled");
    answer(t, 404, NULL);
    assert_finished(QN_TASK_SUCCEEDED, "30 days");
    assert_string_equal(jpath(t->undo, "method", NULL, NULL), "POST");
    assert_string_equal(jpath(t->undo, "path", NULL, NULL),
                        "/v1.0/directory/deletedItems/" USER_ID "/restore");
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_DELETE_USER, USER_ID, USER_UPN);
    run_user_task(t);
    answer(t, 404, NULL);
    assert_finished(QN_TASK_SUCCEEDED, "already gone");
    assert_null(t->undo);
    free_task(t);

    teardown(NULL);
    g.evidence = cJSON_Parse("{\"createdUsers\":[{\"id\":\"" USER_ID "\"}]}");
    t = new_task(QN_TASK_DELETE_USER, USER_ID, USER_UPN);
    run_user_task(t);
    answer(t, 200, USER_BODY("true"));
    answer(t, 404, NULL); /* deleted between check and act */
    assert_finished(QN_TASK_SUCCEEDED, "already gone");
    assert_non_null(t->undo);
    free_task(t);
}

/* ---- subscription.c ---------------------------------------------------------------------------
 */

#define RA_ID "/subscriptions/" SUB "/providers/Microsoft.Authorization/roleAssignments/7f3c0001"
#define RA_BODY                                                                                  \
    "{\"id\":\"" RA_ID                                                                           \
    "\",\"name\":\"7f3c0001\",\"properties\":{\"roleDefinitionId\":\"/subscript"                 \
    "ions/" SUB "/providers/Microsoft.Authorization/roleDefinitions/8e3af657\",\"principalId\":" \
    "\"d3adbeef\",\"principalType\":\"User\",\"scope\":\"/subscriptions/" SUB "\","              \
    "\"createdOn\":\"2026-11-28T09:01:30Z\",\"description\":null}}"

static void test_remove_role_assignment(void **state)
{
    (void)state;
    struct qn_task *t = new_task(QN_TASK_REMOVE_ROLE_ASSIGNMENT, RA_ID, "7f3c0001");
    run_remove_role_assignment(t);
    expect_call("GET", RA_ID "?api-version=2022-04-01");
    answer(t, 200, RA_BODY);
    struct fake_call *c = expect_call("DELETE", RA_ID "?api-version=2022-04-01");
    assert_int_equal(c->flags, 0);
    assert_int_equal(g.writes, 1);
    answer(t, 200, RA_BODY);
    expect_call("GET", RA_ID "?api-version=2022-04-01");
    answer(t, 404, NULL);
    assert_finished(QN_TASK_SUCCEEDED, "removed");
    assert_string_equal(jpath(t->undo, "method", NULL, NULL), "PUT");
    assert_string_equal(jpath(t->undo, "path", NULL, NULL), RA_ID);
    const cJSON *props = cJSON_GetObjectItem(cJSON_GetObjectItem(t->undo, "body"), "properties");
    assert_string_equal(jpath(props, "principalId", NULL, NULL), "d3adbeef");
    assert_string_equal(jpath(props, "principalType", NULL, NULL), "User");
    assert_non_null(jpath(props, "roleDefinitionId", NULL, NULL));
    assert_null(cJSON_GetObjectItem(props, "createdOn"));   /* read-only: not in a PUT */
    assert_null(cJSON_GetObjectItem(props, "description")); /* null: left out */
    assert_non_null(cJSON_GetObjectItem(t->undo, "original"));
    free_task(t);
}

static void test_remove_role_assignment_edges(void **state)
{
    (void)state;
    struct qn_task *t = new_task(QN_TASK_REMOVE_ROLE_ASSIGNMENT, RA_ID, NULL);
    run_remove_role_assignment(t);
    answer(t, 404, NULL);
    assert_finished(QN_TASK_SUCCEEDED, "already gone");
    assert_int_equal(g.writes, 0);
    free_task(t);

    teardown(NULL);
    g.protected_principal = "D3ADBEEF";
    t = new_task(QN_TASK_REMOVE_ROLE_ASSIGNMENT, RA_ID, NULL);
    run_remove_role_assignment(t);
    answer(t, 200, RA_BODY);
    assert_finished(QN_TASK_SKIPPED, "protected principal");
    assert_int_equal(g.writes, 0);
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_REMOVE_ROLE_ASSIGNMENT, RA_ID, NULL);
    run_remove_role_assignment(t);
    answer(t, 200, "{\"id\":\"" RA_ID "\"}"); /* no properties at all */
    assert_finished(QN_TASK_SKIPPED, "names no principal");
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_REMOVE_ROLE_ASSIGNMENT,
                 RG "/providers/Microsoft.Storage/storageAccounts/x", NULL);
    run_remove_role_assignment(t);
    assert_finished(QN_TASK_FAILED, "not a role assignment");
    assert_int_equal(g.count, 0);
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_REMOVE_ROLE_ASSIGNMENT, RA_ID "/../../x", NULL);
    run_remove_role_assignment(t);
    assert_finished(QN_TASK_FAILED, "not a role assignment");
    assert_int_equal(g.count, 0);
    free_task(t);
}

#define ST_ID RG "/providers/Microsoft.Storage/storageAccounts/stexfil7f3c"
#define ST_BODY \
    "{\"id\":\"" ST_ID "\",\"name\":\"stexfil7f3c\",\"location\":\"westeurope\",\"tags\":{}}"
#define PROVIDER_BODY                                                                              \
    "{\"namespace\":\"Microsoft.Storage\",\"resourceTypes\":[{\"resourceType\":\"storageAccounts/" \
    "blobServices\",\"apiVersions\":[\"2099-01-01\"]},{\"resourceType\":\"storageAccounts\","      \
    "\"apiVersions\":[\"2024-01-01-preview\",\"2023-05-01\",\"2023-01-01\"]}]}"
#define TAGS(t) "{\"properties\":{\"tags\":" t "}}"

/* delete_resource up to its lock check */
static struct qn_task *resource_to_locks(void)
{
    struct qn_task *t = new_task(QN_TASK_DELETE_RESOURCE, ST_ID, "stexfil7f3c");
    run_delete_resource(t);
    expect_call("GET", "/subscriptions/" SUB "/providers/Microsoft.Storage?api-version=2021-04-01");
    answer(t, 200, PROVIDER_BODY);
    expect_call("GET", ST_ID "?api-version=2023-05-01");
    answer(t, 200, ST_BODY);
    expect_call("GET", RG "/providers/Microsoft.Resources/tags/default?api-version=2021-04-01");
    answer(t, 200, TAGS("{\"owner\":\"alice@contoso.com\"}"));
    expect_call("GET", "/subscriptions/" SUB
                       "/providers/Microsoft.Resources/tags/default?api-version=2021-04-01");
    answer(t, 200, TAGS("{}"));
    struct fake_call *c =
        expect_call("GET", ST_ID "/providers/Microsoft.Authorization/locks?api-version=2020-05-01");
    assert_true(c->flags & QN_HTTP_CALL_PAGED);
    return t;
}

static void test_delete_resource(void **state)
{
    (void)state;
    struct qn_task *t = resource_to_locks();
    answer(t, 200,
           "{\"value\":[{\"id\":\"" RG "/providers/Microsoft.Storage/storageAccounts/stprodlogs01/"
           "providers/Microsoft.Authorization/locks/keep-logs\",\"name\":\"keep-logs\","
           "\"properties\":{\"level\":\"CanNotDelete\"}}]}"); /* a sibling's lock */
    struct fake_call *c = expect_call("DELETE", ST_ID "?api-version=2023-05-01");
    assert_true(c->flags & QN_HTTP_CALL_LRO);
    assert_int_equal(g.writes, 1);
    answer(t, 204, NULL);
    expect_call("GET", ST_ID "?api-version=2023-05-01");
    answer(t, 404, NULL);
    assert_finished(QN_TASK_SUCCEEDED, "deleted");
    assert_string_equal(jpath(t->undo, "apiVersion", NULL, NULL), "2023-05-01");
    assert_string_equal(jpath(t->undo, "body", "name", NULL), "stexfil7f3c");
    assert_string_equal(jpath(t->undo, "path", NULL, NULL), ST_ID);
    free_task(t);
}

static void test_delete_resource_locked(void **state)
{
    (void)state;
    struct qn_task *t = resource_to_locks();
    answer(t, 200,
           "{\"value\":[{\"id\":\"" RG "/providers/Microsoft.Authorization/locks/freeze\","
           "\"name\":\"freeze\",\"properties\":{\"level\":\"ReadOnly\"}}]}");
    assert_finished(QN_TASK_SKIPPED, "resource lock freeze");
    assert_int_equal(g.writes, 0);
    free_task(t);

    teardown(NULL);
    t = resource_to_locks();
    answer(t, 200, "{\"value\":[]}");
    static const char locked[] = "{\"error\":{\"code\":\"ScopeLocked\"}}"; /* locked meanwhile */
    answer_raw(t, 409, locked, sizeof(locked) - 1, "ScopeLocked");
    assert_finished(QN_TASK_SKIPPED, "ScopeLocked");
    assert_null(t->undo);
    free_task(t);

    teardown(NULL);
    t = resource_to_locks();
    answer(t, 403, "{\"error\":{\"code\":\"AuthorizationFailed\"}}");
    assert_finished(QN_TASK_FAILED, "locks");
    assert_int_equal(g.writes, 0);
    free_task(t);
}

static void test_delete_resource_protected_and_gone(void **state)
{
    (void)state;
    g.protected_tag = "quench";
    struct qn_task *t = new_task(QN_TASK_DELETE_RESOURCE, ST_ID, NULL);
    run_delete_resource(t);
    answer(t, 200, PROVIDER_BODY);
    answer(t, 200, ST_BODY);
    answer(t, 200, TAGS("{\"quench\":\"protected\"}")); /* on the resource group */
    assert_finished(QN_TASK_SKIPPED, "protected tag");
    assert_non_null(strstr(g.message, RG));
    assert_int_equal(g.writes, 0);
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_DELETE_RESOURCE, ST_ID, NULL);
    run_delete_resource(t);
    answer(t, 200, PROVIDER_BODY);
    answer(t, 404, "{\"error\":{\"code\":\"ResourceNotFound\"}}");
    assert_finished(QN_TASK_SUCCEEDED, "already gone");
    assert_null(t->undo);
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_DELETE_RESOURCE, RG, NULL);
    run_delete_resource(t);
    assert_finished(QN_TASK_FAILED, "never deleted");
    assert_int_equal(g.count, 0);
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_DELETE_RESOURCE, ST_ID, NULL);
    run_delete_resource(t);
    answer(t, 200, "{\"resourceTypes\":[{\"resourceType\":\"other\",\"apiVersions\":[\"x\"]}]}");
    assert_finished(QN_TASK_FAILED, "lists no api-version");
    free_task(t);
}

#define AA_ID RG "/providers/Microsoft.Automation/automationAccounts/aa-ops"
#define RB_ID AA_ID "/runbooks/rb-maint-7f3c"
#define RB_BODY                                                                                    \
    "{\"id\":\"" RB_ID "\",\"name\":\"rb-maint-7f3c\",\"location\":\"westeurope\",\"tags\":{},"    \
    "\"properties\":{\"runbookType\":\"PowerShell\",\"state\":\"Published\",\"logVerbose\":false," \
    "\"creationTime\":\"2026-11-28T09:00:00Z\"}}"
#define RB_LOCKS   RB_ID "/providers/Microsoft.Authorization/locks?api-version=2020-05-01"
#define TAG_SUFFIX "/providers/Microsoft.Resources/tags/default?api-version=2021-04-01"

static struct qn_task *runbook_to_content(void)
{
    struct qn_task *t = new_task(QN_TASK_REMOVE_RUNBOOK, RB_ID, "rb-maint-7f3c");
    run_remove_runbook(t);
    expect_call("GET", RB_ID "?api-version=2024-10-23");
    answer(t, 200, RB_BODY);
    expect_call("GET", AA_ID TAG_SUFFIX);
    answer(t, 200, TAGS("{}"));
    expect_call("GET", RG TAG_SUFFIX);
    answer(t, 200, TAGS("{}"));
    expect_call("GET", "/subscriptions/" SUB TAG_SUFFIX);
    answer(t, 200, TAGS("{}"));
    expect_call("GET", RB_LOCKS);
    answer(t, 200, "{\"value\":[]}");
    return t;
}

static void test_remove_runbook(void **state)
{
    (void)state;
    static const char script[] = "$c = Get-AutomationPSCredential -Name 'x'\n\xff\xfe end";
    struct qn_task *t = runbook_to_content();
    expect_call("GET", RB_ID "/content?api-version=2024-10-23");
    answer_raw(t, 200, script, sizeof(script) - 1, NULL);
    struct fake_call *c = expect_call("DELETE", RB_ID "?api-version=2024-10-23");
    assert_int_equal(c->flags, 0);
    answer(t, 200, NULL);
    answer(t, 404, NULL);
    assert_finished(QN_TASK_SUCCEEDED, "runbookContent");
    char sha[65];
    qn_sha256_hex(script, sizeof(script) - 1, sha);
    assert_string_equal(jpath(t->detail, "runbookContentSha256", NULL, NULL), sha);
    assert_string_equal(jpath(t->undo, "contentSha256", NULL, NULL), sha);
    const char *text = jpath(t->detail, "runbookContent", NULL, NULL);
    assert_non_null(strstr(text, "Get-AutomationPSCredential"));
    assert_non_null(strstr(text, "\xef\xbf\xbd\xef\xbf\xbd end")); /* bad bytes replaced */
    assert_string_equal(jpath(t->detail, "runbookContentSource", NULL, NULL), "published");
    assert_string_equal(jpath(t->detail, "runbook", "properties", "state"), "Published");
    assert_string_equal(jpath(t->undo, "body", "properties", "runbookType"), "PowerShell");
    assert_null(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(t->undo, "body"), "properties"), "creationTime"));
    free_task(t);
}

static void test_remove_runbook_draft_and_failures(void **state)
{
    (void)state;
    struct qn_task *t = runbook_to_content();
    answer(t, 404, "{\"code\":\"NotFound\"}");
    expect_call("GET", RB_ID "/draft/content?api-version=2024-10-23");
    answer(t, 200, "draft text");
    answer(t, 204, NULL);
    answer(t, 404, NULL);
    assert_finished(QN_TASK_SUCCEEDED, NULL);
    assert_string_equal(jpath(t->detail, "runbookContentSource", NULL, NULL), "draft");
    free_task(t);

    teardown(NULL);
    t = runbook_to_content();
    answer(t, 500, NULL);
    assert_finished(QN_TASK_FAILED, "not deleted");
    assert_int_equal(g.writes, 0);
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_REMOVE_RUNBOOK, RB_ID, NULL);
    run_remove_runbook(t);
    answer(t, 404, "{\"code\":\"NotFound\"}");
    assert_finished(QN_TASK_SUCCEEDED, "already gone");
    free_task(t);

    teardown(NULL);
    g.protected_tag = "keep";
    t = new_task(QN_TASK_REMOVE_RUNBOOK, RB_ID, NULL);
    run_remove_runbook(t);
    answer(t, 200, RB_BODY);
    answer(t, 200, TAGS("{\"keep\":\"1\"}")); /* on the Automation account */
    assert_finished(QN_TASK_SKIPPED, "protected tag");
    free_task(t);

    teardown(NULL);
    t = new_task(QN_TASK_REMOVE_RUNBOOK, AA_ID, NULL);
    run_remove_runbook(t);
    assert_finished(QN_TASK_FAILED, "not a runbook");
    free_task(t);
}

static void test_runbook_content_truncated(void **state)
{
    (void)state;
    size_t len = 70 * 1024;
    char *big = malloc(len);
    for (size_t i = 0; i < len; i += 2) {
        memcpy(big + i, "\xc3\xa9", 2); /* é, so a cut could split a character */
    }
    struct qn_task *t = runbook_to_content();
    answer_raw(t, 200, big, len, NULL);
    answer(t, 204, NULL);
    answer(t, 404, NULL);
    assert_finished(QN_TASK_SUCCEEDED, NULL);
    const char *text = jpath(t->detail, "runbookContent", NULL, NULL);
    assert_int_equal(strlen(text), CONTENT_MAX);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(t->detail, "runbookContentTruncated")));
    assert_int_equal(cJSON_GetObjectItem(t->detail, "runbookContentBytes")->valuedouble,
                     (double)len);
    free(big);
    free_task(t);
}

/* ---- pure helpers ------------------------------------------------------------------------------
 */

static void test_parent_scope(void **state)
{
    (void)state;
    char out[1100];
    assert_true(parent_scope(RB_ID, out, sizeof(out)));
    assert_string_equal(out, AA_ID);
    assert_true(parent_scope(AA_ID, out, sizeof(out)));
    assert_string_equal(out, RG);
    assert_true(parent_scope(RG, out, sizeof(out)));
    assert_string_equal(out, "/subscriptions/" SUB);
    assert_false(parent_scope("/subscriptions/" SUB, out, sizeof(out)));
    assert_true(parent_scope("/subscriptions/" SUB "/providers/Microsoft.Web/certificates/c", out,
                             sizeof(out)));
    assert_string_equal(out, "/subscriptions/" SUB);
    assert_true(
        parent_scope(ST_ID "/providers/Microsoft.Insights/diagnosticSettings/d", out, sizeof(out)));
    assert_string_equal(out, ST_ID);
    assert_false(
        parent_scope("/providers/Microsoft.Management/managementGroups/m", out, sizeof(out)));
    assert_false(parent_scope(RB_ID, out, 10));
}

static void test_pick_api_version(void **state)
{
    (void)state;
    char v[48];
    cJSON *p = cJSON_Parse(PROVIDER_BODY);
    assert_true(pick_api_version(p, "STORAGEACCOUNTS", v, sizeof(v)));
    assert_string_equal(v, "2023-05-01");
    assert_true(pick_api_version(p, "storageAccounts/blobServices", v, sizeof(v)));
    assert_string_equal(v, "2099-01-01");
    assert_false(pick_api_version(p, "fileServices", v, sizeof(v)));
    cJSON_Delete(p);
    /* unordered; only previews; odd entries */
    p = cJSON_Parse("{\"resourceTypes\":[{\"resourceType\":\"a\",\"apiVersions\":[\"2019-01-01\","
                    "\"2021-06-01-beta\",\"2020-01-01\"]},{\"resourceType\":\"b\",\"apiVersions\":"
                    "[\"2022-01-01-preview\",\"2021-01-01-preview\"]},{\"resourceType\":\"c\","
                    "\"apiVersions\":[1,\"\"]},{\"resourceType\":\"d\"}]}");
    assert_true(pick_api_version(p, "a", v, sizeof(v)));
    assert_string_equal(v, "2020-01-01");
    assert_true(pick_api_version(p, "b", v, sizeof(v)));
    assert_string_equal(v, "2022-01-01-preview");
    assert_false(pick_api_version(p, "c", v, sizeof(v)));
    assert_false(pick_api_version(p, "d", v, sizeof(v)));
    assert_false(pick_api_version(NULL, "a", v, sizeof(v)));
    cJSON_Delete(p);
}

static void test_locks_and_scopes(void **state)
{
    (void)state;
    char scope[1100];
    assert_true(lock_scope(RG "/providers/microsoft.authorization/LOCKS/x", scope, sizeof(scope)));
    assert_string_equal(scope, RG);
    assert_false(lock_scope(RG, scope, sizeof(scope)));
    assert_true(is_under(ST_ID, RG));
    assert_true(is_under(ST_ID, ST_ID));
    assert_true(is_under(ST_ID, "/SUBSCRIPTIONS/" SUB "/"));
    assert_false(is_under(RG "2/providers/x/y/z", RG));
    assert_false(is_under(RG, ST_ID));
}

static void test_text_excerpt(void **state)
{
    (void)state;
    bool cut = true;
    char *s = text_excerpt("plain", 5, 100, &cut);
    assert_string_equal(s, "plain");
    assert_false(cut);
    qn_free(s);
    /* NUL, overlong, surrogate, truncated sequence: each byte becomes U+FFFD */
    s = text_excerpt("a\0b\xc0\xaf\xed\xa0\x80\xe2\x82", 10, 100, &cut);
    assert_false(cut);
    assert_non_null(strstr(s, "a\xef\xbf\xbd"
                              "b\xef\xbf\xbd"));
    assert_null(strchr(s + 1, 'a'));
    qn_free(s);
    s = text_excerpt("\xe2\x82\xac\xe2\x82\xac", 6, 4, &cut); /* two euros, room for one */
    assert_string_equal(s, "\xe2\x82\xac");
    assert_true(cut);
    qn_free(s);
    s = text_excerpt("\xf0\x9f\x98\x80", 4, 100, &cut); /* 4-byte emoji survives */
    assert_string_equal(s, "\xf0\x9f\x98\x80");
    qn_free(s);
}

int main(void)
{
    qn_mem_install_cjson_hooks();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disable_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_user_already_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_user_protected_by_upn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_user_denied_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_user_verify_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_credentials, setup, teardown),
        cmocka_unit_test(test_password_generator),
        cmocka_unit_test_setup_teardown(test_delete_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_role_assignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_role_assignment_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_resource_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_resource_protected_and_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_runbook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_runbook_draft_and_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runbook_content_truncated, setup, teardown),
        cmocka_unit_test(test_parent_scope),
        cmocka_unit_test(test_pick_api_version),
        cmocka_unit_test(test_locks_and_scopes),
        cmocka_unit_test(test_text_excerpt),
    };
    return cmocka_run_group_tests_name("tasks_users_sub", tests, NULL, NULL);
}
