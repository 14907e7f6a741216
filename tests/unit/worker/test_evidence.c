/*
 * test_evidence.c - unit tests for the "unfamiliar" decision (worker/evidence.c): users created
 * by the principal, role assignments, runbooks and resources it wrote or created in the window,
 * creation after the alert start, the known lists, other callers, failed operations, events in
 * both the REST ({value, localizedValue}) and the plain-string shape, principals named by the
 * object-id claim or by the evidence's own "principals", and the compromised-principal match.
 * The alert is tests/data/alerts/arm-flat-suspicious-ip.json (mallory@contoso.com, window from
 * 2026-11-28T08:57:13Z); the evidence is written inline, with ' for ".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "alert.h"
#include "config.h"
#include "evidence.h"
#include "test_support.h"

#define SUB      "/subscriptions/3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34"
#define RG       SUB "/resourceGroups/rg-prod"
#define MALLORY  "5b0e7f3a-9c2d-4e1b-a8f6-3d7c0e9b2a14"
#define ALICE    "a11ce000-1111-4222-8333-444455556666"
#define NEW_USER "d3adbeef-7f3c-4b1d-9e2a-5c6d7e8f9a01"
#define RA_NEW \
    SUB "/providers/Microsoft.Authorization/roleAssignments/7f3c0001-aaaa-4bbb-8ccc-000000000001"
#define RA_OLD \
    SUB "/providers/Microsoft.Authorization/roleAssignments/11111111-0000-4000-8000-000000000001"
#define AA \
    SUB "/resourceGroups/rg-automation/providers/Microsoft.Automation/automationAccounts/aa-ops"
#define RB_NEW AA "/runbooks/rb-maint-7f3c"
#define RB_OLD AA "/runbooks/Patch-Servers"
#define VM_NEW RG "/providers/Microsoft.Compute/virtualMachines/vm-miner-01"
#define VM_WEB RG "/providers/Microsoft.Compute/virtualMachines/vm-web-01"
#define NSG    RG "/providers/Microsoft.Network/networkSecurityGroups/nsg-web"
#define ST_NEW RG "/providers/Microsoft.Storage/storageAccounts/stexfil7f3c"
#define WINDOW "'window':{'start':'2026-11-28T07:57:13.441Z','end':'2026-11-29T12:00:00.000Z'}"
#define MAX    32

struct fx {
    struct qn_config *cfg;
    struct qn_alert alert;
    struct qn_finding findings[MAX];
    int n;
};

static struct qn_config *load_config(const char *text)
{
    struct qn_config *cfg = NULL;
    if (text == NULL) {
        assert_int_equal(qn_config_load_flags(NULL, NULL, QN_CONFIG_OFFLINE, &cfg, NULL), QN_OK);
        return cfg;
    }
    char path[64];
    assert_int_equal(ts_write_temp(path, sizeof(path), text), 0);
    struct qn_error err = {0};
    qn_err_t rc = qn_config_load_flags(path, NULL, QN_CONFIG_OFFLINE, &cfg, &err);
    unlink(path);
    if (rc != QN_OK) {
        fprintf(stderr, "config: %s\n", err.msg);
    }
    assert_int_equal(rc, QN_OK);
    return cfg;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->cfg = load_config(NULL);
    cJSON *json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
    enum qn_reject_reason reason;
    assert_int_equal(qn_alert_decode(json, &f->alert, &reason, NULL), QN_OK);
    cJSON_Delete(json);
    *state = f;
    return 0;
}

static void clear_findings(struct fx *f)
{
    for (int i = 0; i < f->n; i++) {
        qn_finding_fini(&f->findings[i]);
    }
    f->n = 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    clear_findings(f);
    qn_alert_fini(&f->alert);
    qn_config_free(f->cfg);
    free(f);
    return 0;
}

/* Parses @p text, a JSON object written with ' for " (the evidence has no apostrophes). */
static cJSON *json_sq(const char *text)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    for (char *p = copy; *p != '\0'; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }
    cJSON *json = cJSON_Parse(copy);
    if (json == NULL) {
        fprintf(stderr, "bad test JSON near: %.80s\n", cJSON_GetErrorPtr());
    }
    free(copy);
    assert_non_null(json);
    return json;
}

static int decide(struct fx *f, const char *evidence_text)
{
    clear_findings(f);
    cJSON *ev = json_sq(evidence_text);
    f->n = qn_evidence_findings(ev, &f->alert, f->cfg, f->findings, MAX);
    cJSON_Delete(ev);
    for (int i = 0; i < f->n; i++) {
        assert_non_null(f->findings[i].kind);
        assert_non_null(f->findings[i].target_type);
        assert_non_null(f->findings[i].reason);
        assert_true(cJSON_GetArraySize(f->findings[i].evidence) > 0);
    }
    return f->n;
}

static const struct qn_finding *finding(const struct fx *f, const char *kind, const char *id)
{
    for (int i = 0; i < f->n; i++) {
        if (strcmp(f->findings[i].kind, kind) == 0 &&
            strcasecmp(f->findings[i].target_id, id) == 0) {
            return &f->findings[i];
        }
    }
    return NULL;
}

/* True if @p f's evidence has an item with @p source and @p value. */
static bool has_item(const struct qn_finding *f, const char *source, const char *value)
{
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, f->evidence)
    {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(item, "source");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, "value");
        if (cJSON_IsString(s) && strcmp(s->valuestring, source) == 0 && cJSON_IsString(v) &&
            strcmp(v->valuestring, value) == 0) {
            return true;
        }
    }
    return false;
}

/* An activity-log event in the REST shape: operationName and status are {value, localizedValue}. */
#define EVENT(caller, op, rid, when, status, code)                                         \
    "{'caller':'" caller "','operationName':{'value':'" op "','localizedValue':'" op "'}," \
    "'resourceId':'" rid "','eventTimestamp':'" when "','status':{'value':'" status        \
    "','localizedValue':'" status "'},'properties':{'statusCode':'" code "'}}"

/* ---- the principal ---- */

static void test_is_compromised(void **state)
{
    struct fx *f = *state;
    assert_true(qn_evidence_is_compromised(&f->alert, "mallory@contoso.com"));
    assert_true(qn_evidence_is_compromised(&f->alert, "MALLORY@Contoso.com"));
    assert_true(qn_evidence_is_compromised(&f->alert, MALLORY));
    assert_false(qn_evidence_is_compromised(&f->alert, "alice@contoso.com"));
    assert_false(qn_evidence_is_compromised(&f->alert, ""));
    assert_false(qn_evidence_is_compromised(&f->alert, NULL));
}

static void test_not_an_object(void **state)
{
    struct fx *f = *state;
    assert_int_equal(qn_evidence_findings(NULL, &f->alert, f->cfg, f->findings, MAX), 0);
    cJSON *arr = cJSON_CreateArray();
    assert_int_equal(qn_evidence_findings(arr, &f->alert, f->cfg, f->findings, MAX), 0);
    cJSON_Delete(arr);
    assert_int_equal(decide(f, "{" WINDOW "}"), 0);
}

/* ---- users ---- */

static void test_created_user_is_deleted(void **state)
{
    struct fx *f = *state;
    assert_int_equal(decide(f, "{" WINDOW ",'createdUsers':[{'id':'" NEW_USER "',"
                               "'userPrincipalName':'svc-backup-7f3c@contoso.com',"
                               "'activityDateTime':'2026-11-28T09:00:11.4410000Z',"
                               "'auditId':'Directory_7F3C_0001'}]}"),
                     1);
    const struct qn_finding *d = finding(f, "delete_user", NEW_USER);
    assert_non_null(d);
    assert_string_equal(d->target_type, "user");
    assert_string_equal(d->target_name, "svc-backup-7f3c@contoso.com");
    assert_true(has_item(d, "directory_audit", "Add user"));
    assert_true(has_item(d, "directory_audit", "2026-11-28T09:00:11.4410000Z"));
}

static void test_created_user_before_window_or_not_a_guid(void **state)
{
    struct fx *f = *state;
    assert_int_equal(decide(f, "{" WINDOW ",'createdUsers':["
                               "{'id':'" NEW_USER "','activityDateTime':'2024-05-20T09:00:00Z'},"
                               "{'id':'not-a-guid','activityDateTime':'2026-11-28T09:00:11Z'},"
                               "{'id':'" MALLORY "','activityDateTime':'2026-11-28T09:00:11Z'}]}"),
                     0);
}

/* ---- role assignments ---- */

static void test_role_assignment_written_by_principal(void **state)
{
    struct fx *f = *state;
    const char *ev = "{" WINDOW ",'activity':[" EVENT(
        "mallory@contoso.com", "Microsoft.Authorization/roleAssignments/write", RA_NEW,
        "2026-11-28T09:01:30.22Z", "Succeeded",
        "Created") "],"
                   "'roleAssignments':["
                   /* the attacker's: Owner for the account it created */
                   "{'id':'" RA_NEW "','name':'7f3c0001-aaaa-4bbb-8ccc-000000000001','properties':{"
                   "'principalId':'" NEW_USER "','principalType':'User','scope':'" SUB "',"
                   "'roleDefinitionId':'/providers/Microsoft.Authorization/roleDefinitions/"
                   "8e3af657-a8ff-443c-a75c-2fe8c4bcb635','createdOn':'2026-11-28T09:01:30."
                   "2200000Z',"
                   "'createdBy':'" MALLORY "'}},"
                   /* familiar: alice's Owner, made long before the window by someone else */
                   "{'id':'" RA_OLD "','name':'11111111-0000-4000-8000-000000000001','properties':{"
                   "'principalId':'" ALICE "','principalType':'User','scope':'" SUB "',"
                   "'createdOn':'2024-01-10T10:00:00.0000000Z',"
                   "'createdBy':'b7eac91a-55aa-4c3e-9d1f-0a1b2c3d4e5f'}}]}";
    assert_int_equal(decide(f, ev), 1);
    const struct qn_finding *r = finding(f, "remove_role_assignment", RA_NEW);
    assert_non_null(r);
    assert_string_equal(r->target_type, "role_assignment");
    assert_string_equal(r->target_name, "7f3c0001-aaaa-4bbb-8ccc-000000000001");
    assert_true(has_item(r, "activity_log", "Microsoft.Authorization/roleAssignments/write"));
    assert_true(has_item(r, "arm", NEW_USER));
    assert_null(finding(f, "remove_role_assignment", RA_OLD));
}

static void test_role_assignment_created_by_principal(void **state)
{
    struct fx *f = *state;
    /* no activity log at all: createdBy names the compromised principal, in the window */
    const char *ev = "{" WINDOW ",'roleAssignments':[{'id':'" RA_NEW "','properties':{"
                     "'principalId':'e0e0e0e0-1111-4222-8333-999999999999',"
                     "'createdOn':'2026-11-28T08:30:00Z','createdBy':'" MALLORY "'}}]}";
    assert_int_equal(decide(f, ev), 1);
    assert_non_null(finding(f, "remove_role_assignment", RA_NEW));
    /* the same creator a year earlier: familiar */
    ev = "{" WINDOW ",'roleAssignments':[{'id':'" RA_NEW "','properties':{"
         "'principalId':'e0e0e0e0-1111-4222-8333-999999999999',"
         "'createdOn':'2025-11-28T08:30:00Z','createdBy':'" MALLORY "'}}]}";
    assert_int_equal(decide(f, ev), 0);
}

/* ---- runbooks ---- */

static void test_runbook_written_by_principal(void **state)
{
    struct fx *f = *state;
    const char *ev =
        "{" WINDOW ",'activity':["
        /* plain-string shape, as exports write it */
        "{'caller':'mallory@contoso.com',"
        "'operationName':'Microsoft.Automation/automationAccounts/runbooks/write',"
        "'resourceId':'" RB_NEW
        "','status':'Succeeded','eventTimestamp':'2026-11-28T09:05:00Z'}," EVENT(
            "mallory@contoso.com",
            "Microsoft.Automation/automationAccounts/runbooks/draft/publish/action",
            RB_NEW "/draft", "2026-11-28T09:06:00Z", "Succeeded",
            "OK") "],"
                  "'runbooks':[{'id':'" RB_OLD "','name':'Patch-Servers','accountId':'" AA "',"
                  "'properties':{'creationTime':'2025-06-01T10:00:00.000+00:00'}}]}";
    assert_int_equal(decide(f, ev), 1);
    const struct qn_finding *r = finding(f, "remove_runbook", RB_NEW);
    assert_non_null(r);
    assert_string_equal(r->target_type, "runbook");
    assert_string_equal(r->target_name, "rb-maint-7f3c");
    assert_true(has_item(r, "activity_log",
                         "Microsoft.Automation/automationAccounts/runbooks/draft/publish/action"));
    assert_null(finding(f, "remove_runbook", RB_OLD));
}

/* ---- resources ---- */

static void test_resource_created_by_principal(void **state)
{
    struct fx *f = *state;
    const char *ev =
        "{" WINDOW
        ",'activity':[" EVENT("mallory@contoso.com", "Microsoft.Compute/virtualMachines/write",
                              VM_NEW, "2026-11-28T09:02:40Z", "Succeeded", "Created") ","
        /* a familiar resource she changed: reviewed, never deleted */
        EVENT("mallory@contoso.com", "Microsoft.Network/networkSecurityGroups/write", NSG,
              "2026-11-28T09:02:50Z", "Succeeded", "OK") ","
        /* a child of a familiar resource */
        EVENT("mallory@contoso.com", "Microsoft.Network/networkSecurityGroups/securityRules/write",
              NSG "/securityRules/allow-all", "2026-11-28T09:02:55Z", "Succeeded", "Created") ","
        /* an extension resource on a familiar VM */
        EVENT("mallory@contoso.com", "Microsoft.Insights/diagnosticSettings/write",
              VM_WEB "/providers/Microsoft.Insights/diagnosticSettings/off", "2026-11-28T09:02:56Z",
              "Succeeded", "Created") ","
        /* a deployment record */
        EVENT("mallory@contoso.com", "Microsoft.Resources/deployments/write",
              RG "/providers/Microsoft.Resources/deployments/miner-deploy", "2026-11-28T09:03:30Z",
              "Succeeded", "Created") ","
        /* not in the resource list: the write's "Created" decides */
        EVENT(
            "mallory@contoso.com", "Microsoft.Storage/storageAccounts/write", ST_NEW,
            "2026-11-28T09:03:10Z", "Accepted",
            "Created") "],"
                       "'resources':["
                       "{'id':'" VM_NEW
                       "','name':'vm-miner-01','createdTime':'2026-11-28T09:02:40.1234567+00:00'},"
                       "{'id':'" NSG
                       "','name':'nsg-web','createdTime':'2025-02-10T09:00:00.0000000Z'}]}";
    assert_int_equal(decide(f, ev), 2);
    const struct qn_finding *d = finding(f, "delete_resource", VM_NEW);
    assert_non_null(d);
    assert_string_equal(d->target_type, "resource");
    assert_string_equal(d->target_name, "vm-miner-01");
    assert_true(has_item(d, "arm", "2026-11-28T09:02:40.1234567+00:00"));
    assert_non_null(finding(f, "delete_resource", ST_NEW));
    assert_null(finding(f, "delete_resource", NSG));
    assert_null(finding(f, "delete_resource", VM_WEB));
}

static void test_run_command_on_vm(void **state)
{
    struct fx *f = *state;
    const char *ev = "{" WINDOW ",'activity':[" EVENT(
        "mallory@contoso.com", "Microsoft.Compute/virtualMachines/runCommand/action", VM_WEB,
        "2026-11-28T08:57:20.5Z", "Succeeded", "OK") "]}";
    assert_int_equal(decide(f, ev), 1);
    const struct qn_finding *v = finding(f, "vm_reset_passwords", VM_WEB);
    assert_non_null(v);
    assert_string_equal(v->target_type, "vm");
    assert_string_equal(v->target_name, "vm-web-01");
}

/* ---- what is never a finding ---- */

static void test_other_caller_ignored(void **state)
{
    struct fx *f = *state;
    const char *ev = "{" WINDOW ",'activity':[" EVENT(
        "alice@contoso.com", "Microsoft.Authorization/roleAssignments/write", RA_NEW,
        "2026-11-28T09:01:30Z", "Succeeded",
        "Created") "," EVENT("alice@contoso.com", "Microsoft.Compute/virtualMachines/write", VM_NEW,
                             "2026-11-28T09:02:40Z", "Succeeded",
                             "Created") "," EVENT("alice@contoso.com",
                                                  "Microsoft.Automation/automationAccounts/"
                                                  "runbooks/write",
                                                  RB_NEW, "2026-11-28T09:05:00Z", "Succeeded",
                                                  "Created") "]}";
    assert_int_equal(decide(f, ev), 0);
}

static void test_failed_operations_ignored(void **state)
{
    struct fx *f = *state;
    const char *ev = "{" WINDOW ",'activity':[" EVENT(
        "mallory@contoso.com", "Microsoft.Authorization/roleAssignments/write", RA_NEW,
        "2026-11-28T09:01:30Z", "Failed",
        "Forbidden") "," EVENT("mallory@contoso.com", "Microsoft.Compute/virtualMachines/write",
                               VM_NEW, "2026-11-28T09:02:40Z", "Started",
                               "Created") "," EVENT("mallory@contoso.com",
                                                    "Microsoft.Automation/automationAccounts/"
                                                    "runbooks/write",
                                                    RB_NEW, "2026-11-28T09:05:00Z", "Canceled",
                                                    "Created") "," EVENT("mallory@contoso.com",
                                                                         "Microsoft.Storage/"
                                                                         "storageAccounts/delete",
                                                                         RG "/providers/"
                                                                            "Microsoft.Storage/"
                                                                            "storageAccounts/"
                                                                            "stprodlogs01",
                                                                         "2026-11-28T09:03:50Z",
                                                                         "Failed", "Conflict") "]}";
    assert_int_equal(decide(f, ev), 0);
}

static void test_known_lists_exclude(void **state)
{
    struct fx *f = *state;
    qn_config_free(f->cfg);
    f->cfg = load_config("{\"policy\": {"
                         "\"known_principals\": [\"" NEW_USER "\", \"e0e0e0e0-1111-4222-8333-"
                         "999999999999\"],"
                         "\"known_resources\": [\"" ST_NEW "\", \"" RB_NEW "\"]}}");
    const char *ev =
        "{" WINDOW ",'createdUsers':[{'id':'" NEW_USER
        "','activityDateTime':'2026-11-28T09:00:11Z'}],"
        "'activity':[" EVENT(
            "mallory@contoso.com", "Microsoft.Authorization/roleAssignments/write", RA_NEW,
            "2026-11-28T09:01:30Z", "Succeeded",
            "Created") "," EVENT("mallory@contoso.com", "Microsoft.Storage/storageAccounts/write",
                                 ST_NEW, "2026-11-28T09:03:10Z", "Succeeded",
                                 "Created") "," EVENT("mallory@contoso.com",
                                                      "Microsoft.Automation/automationAccounts/"
                                                      "runbooks/write",
                                                      RB_NEW, "2026-11-28T09:05:00Z", "Succeeded",
                                                      "Created") "," EVENT("mallory@contoso.com",
                                                                           "Microsoft.Compute/"
                                                                           "virtualMachines/write",
                                                                           VM_NEW,
                                                                           "2026-11-28T09:02:40Z",
                                                                           "Succeeded",
                                                                           "Created") "],"
                                                                                      "'roleAssignm"
                                                                                      "ents':[{'id'"
                                                                                      ":'" RA_NEW
                                                                                      "','"
                                                                                      "properties':"
                                                                                      "{'"
                                                                                      "principalId'"
                                                                                      ":'" NEW_USER
                                                                                      "',"
                                                                                      "'createdOn':"
                                                                                      "'2026-11-"
                                                                                      "28T09:01:"
                                                                                      "30Z','"
                                                                                      "createdBy':"
                                                                                      "'" MALLORY
                                                                                      "'}},"
                                                                                      "{'id':'" SUB
                                                                                      "/providers/"
                                                                                      "Microsoft."
                                                                                      "Authorizatio"
                                                                                      "n/"
                                                                                      "roleAssignme"
                                                                                      "nts/"
                                                                                      "7f3c0002',"
                                                                                      "'properties'"
                                                                                      ":{'"
                                                                                      "principalId'"
                                                                                      ":'e0e0e0e0-"
                                                                                      "1111-4222-"
                                                                                      "8333-"
                                                                                      "999999999999"
                                                                                      "',"
                                                                                      "'createdOn':"
                                                                                      "'2026-11-"
                                                                                      "28T09:02:"
                                                                                      "05Z','"
                                                                                      "createdBy':"
                                                                                      "'" MALLORY
                                                                                      "'}}],"
                                                                                      "'runbooks':["
                                                                                      "{'id':"
                                                                                      "'" RB_NEW
                                                                                      "','"
                                                                                      "properties':"
                                                                                      "{'"
                                                                                      "creationTime"
                                                                                      "':'2026-11-"
                                                                                      "28T09:05:"
                                                                                      "00Z'}}],"
                                                                                      "'resources':"
                                                                                      "[{'id':"
                                                                                      "'" ST_NEW
                                                                                      "','"
                                                                                      "createdTime'"
                                                                                      ":'2026-11-"
                                                                                      "28T09:03:"
                                                                                      "10Z'}]}";
    assert_int_equal(decide(f, ev), 1); /* only the VM is not on a known list */
    assert_non_null(finding(f, "delete_resource", VM_NEW));
}

/* ---- creation after the alert started, without the activity log ---- */

static void test_created_after_start(void **state)
{
    struct fx *f = *state;
    qn_config_free(f->cfg);
    f->cfg = load_config("{\"policy\": {\"known_principals\": [\"" ALICE "\"]}}");
    const char *ev =
        "{" WINDOW ",'roleAssignments':["
        /* after the start, by a creator nobody knows */
        "{'id':'" RA_NEW "','properties':{'principalId':'e0e0e0e0-1111-4222-8333-999999999999',"
        "'createdOn':'2026-11-28T10:00:00Z','createdBy':'99999999-9999-4999-8999-999999999999'}},"
        /* after the start, by a known principal: familiar */
        "{'id':'" SUB "/providers/Microsoft.Authorization/roleAssignments/by-alice',"
        "'properties':{'principalId':'ca201000-2222-4333-8444-555566667777',"
        "'createdOn':'2026-11-28T10:00:00Z','createdBy':'" ALICE "'}},"
        /* in the lookback, before the start, by someone else: familiar */
        "{'id':'" RA_OLD "','properties':{'principalId':'ca201000-2222-4333-8444-555566667777',"
        "'createdOn':'2026-11-28T08:30:00Z','createdBy':'99999999-9999-4999-8999-999999999999'}}],"
        "'runbooks':["
        "{'id':'" RB_NEW "','name':'rb-maint-7f3c','properties':{'creationTime':"
        "'2026-11-28T13:21:40.100+00:00'}},"
        "{'id':'" RB_OLD "','name':'Patch-Servers','properties':{'creationTime':"
        "'2025-06-01T10:00:00.000+00:00'}}],"
        "'resources':["
        "{'id':'" ST_NEW "','name':'stexfil7f3c','createdTime':'2026-11-28T09:03:10.555Z'},"
        "{'id':'" NSG "','name':'nsg-web','createdTime':'2025-02-10T09:00:00Z'},"
        /* a child resource and the alert's own resource are left alone */
        "{'id':'" RB_NEW "','name':'aa-ops/rb-maint-7f3c','createdTime':'2026-11-28T13:21:40Z'},"
        "{'id':'" SUB "','createdTime':'2026-11-28T13:21:40Z'},"
        /* the same instant as the start (other offset) counts as after it */
        "{'id':'" RG "/providers/Microsoft.Network/publicIPAddresses/pip-1',"
        "'createdTime':'2026-11-28T09:57:13.4412345+01:00'}]}";
    assert_int_equal(decide(f, ev), 4);
    assert_non_null(finding(f, "remove_role_assignment", RA_NEW));
    assert_non_null(finding(f, "remove_runbook", RB_NEW));
    assert_non_null(finding(f, "delete_resource", ST_NEW));
    assert_non_null(finding(f, "delete_resource",
                            RG "/providers/Microsoft.Network/"
                               "publicIPAddresses/pip-1"));
    assert_null(finding(f, "delete_resource", RB_NEW));
    assert_null(finding(f, "delete_resource", NSG));
}

/* ---- other ways to name the principal ---- */

static void test_principal_by_claim_and_evidence(void **state)
{
    struct fx *f = *state;
    /* the caller is an app id, the object-id claim is mallory's */
    const char *ev =
        "{" WINDOW ",'activity':[{'caller':'1950a258-227b-4e31-a9cf-717495945fc2',"
        "'claims':{'http://schemas.microsoft.com/identity/claims/objectidentifier':'" MALLORY "'},"
        "'operationName':{'value':'Microsoft.Authorization/roleAssignments/write'},"
        "'resourceId':'" RA_NEW "','status':{'value':'Succeeded'},"
        "'eventTimestamp':'2026-11-28T09:01:30Z'}]}";
    assert_int_equal(decide(f, ev), 1);
    assert_non_null(finding(f, "remove_role_assignment", RA_NEW));

    /* an alert naming no account: the evidence's principals decide */
    size_t accounts = f->alert.account_count;
    f->alert.account_count = 0;
    ev = "{" WINDOW ",'principals':['svc-x@contoso.com'],'activity':[" EVENT(
        "svc-x@contoso.com", "Microsoft.Compute/virtualMachines/write", VM_NEW,
        "2026-11-28T09:02:40Z", "Succeeded",
        "Created") "," EVENT("mallory@contoso.com", "Microsoft.Storage/storageAccounts/write",
                             ST_NEW, "2026-11-28T09:03:10Z", "Succeeded", "Created") "]}";
    int n = decide(f, ev);
    f->alert.account_count = accounts;
    assert_int_equal(n, 1);
    assert_non_null(finding(f, "delete_resource", VM_NEW));
}

static void test_capacity_and_dedup(void **state)
{
    struct fx *f = *state;
    /* the same role assignment from the activity log and from createdBy: one finding */
    const char *ev = "{" WINDOW ",'activity':[" EVENT(
        "mallory@contoso.com", "Microsoft.Authorization/roleAssignments/write", RA_NEW,
        "2026-11-28T09:01:30Z", "Succeeded",
        "Created") "," EVENT("mallory@contoso.com", "Microsoft.Compute/virtualMachines/write",
                             VM_NEW, "2026-11-28T09:02:40Z", "Succeeded",
                             "Created") "],"
                                        "'roleAssignments':[{'id':'" RA_NEW
                                        "','properties':{'principalId':'" NEW_USER "',"
                                        "'createdOn':'2026-11-28T09:01:30Z','createdBy':'" MALLORY
                                        "'}}]}";
    assert_int_equal(decide(f, ev), 2);
    const struct qn_finding *r = finding(f, "remove_role_assignment", RA_NEW);
    assert_non_null(r);
    assert_true(has_item(r, "arm", "2026-11-28T09:01:30Z")); /* both sources' evidence */
    assert_true(has_item(r, "activity_log", "Microsoft.Authorization/roleAssignments/write"));
    /* a cap of one keeps the first */
    clear_findings(f);
    cJSON *json = json_sq(ev);
    f->n = qn_evidence_findings(json, &f->alert, f->cfg, f->findings, 1);
    cJSON_Delete(json);
    assert_int_equal(f->n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_is_compromised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_an_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_created_user_is_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_created_user_before_window_or_not_a_guid, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_role_assignment_written_by_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_assignment_created_by_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runbook_written_by_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resource_created_by_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_command_on_vm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_caller_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_operations_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_known_lists_exclude, setup, teardown),
        cmocka_unit_test_setup_teardown(test_created_after_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_principal_by_claim_and_evidence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_and_dedup, setup, teardown),
    };
    return cmocka_run_group_tests_name("evidence", tests, NULL, NULL);
}
