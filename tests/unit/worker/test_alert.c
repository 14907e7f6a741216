/*
 * test_alert.c - unit tests for record classification and alert decoding: every alert fixture of
 * both shapes field by field, $ref resolution, hostile records, Resource Manager type matching,
 * the Azure reference alert payloads, and allocation failures at every step of a decode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alert.h"
#include "qn/mem.h"
#include "qn/resid.h"
#include "test_support.h"

#define SUB_IP "3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34"
#define SUB_RB "8c1d4e2f-7a3b-4f6e-b5d9-0e2c4a6b8d13"
#define SUB_MB "a61b7c2d-0e3f-4a5b-8c9d-e0f1a2b3c4d5"
#define TENANT "c5e8a3d1-2b4f-4a6c-8e9d-1f3a5b7c9d02"
#define VM_WEB                                                                      \
    "/subscriptions/" SUB_IP "/resourceGroups/rg-prod/providers/Microsoft.Compute/" \
    "virtualMachines/vm-web-01"

/* Decodes @p record, failing the test with the decoder's message if it is rejected. */
static void decode_ok(const cJSON *record, struct qn_alert *alert)
{
    enum qn_reject_reason reason = QN_REJECT_NONE;
    struct qn_error err = {0};
    qn_err_t rc = qn_alert_decode(record, alert, &reason, &err);
    if (rc != QN_OK) {
        print_error("decode failed: %s (%s)\n", err.msg, qn_reject_reason_name(reason));
    }
    assert_int_equal(rc, QN_OK);
    assert_int_equal(reason, QN_REJECT_NONE);
}

static void decode_fixture(const char *rel, struct qn_alert *alert)
{
    cJSON *json = ts_parse_fixture(rel);
    assert_int_equal(qn_record_classify(json), QN_RECORD_ALERT);
    decode_ok(json, alert);
    cJSON_Delete(json);
}

static bool is_lower_guid(const char *s)
{
    if (!qn_is_guid(s)) {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s >= 'A' && *s <= 'Z') {
            return false;
        }
    }
    return true;
}

static bool alert_is_zero(const struct qn_alert *a)
{
    static const struct qn_alert zero;
    return memcmp(a, &zero, sizeof(zero)) == 0;
}

/* Decodes @p record expecting a rejection with @p expected; checks @p out is left zeroed. */
static void decode_bad(const cJSON *record, enum qn_reject_reason expected)
{
    struct qn_alert alert;
    memset(&alert, 0x5a, sizeof(alert));
    enum qn_reject_reason reason = QN_REJECT_NONE;
    struct qn_error err = {0};
    qn_err_t rc = qn_alert_decode(record, &alert, &reason, &err);
    if (rc == QN_OK) {
        print_error("expected a rejection (%s), the record decoded\n",
                    qn_reject_reason_name(expected));
        qn_alert_fini(&alert);
    } else if (reason != expected) {
        print_error("expected %s, got %s: %s\n", qn_reject_reason_name(expected),
                    qn_reject_reason_name(reason), err.msg);
    }
    assert_int_equal(rc, QN_ERR_PARSE);
    assert_int_equal(reason, expected);
    assert_true(err.msg[0] != '\0');
    assert_true(alert_is_zero(&alert));
}

static void decode_bad_fixture(const char *rel, enum qn_reject_reason expected)
{
    cJSON *json = ts_parse_fixture(rel);
    decode_bad(json, expected);
    cJSON_Delete(json);
}

/* Sets (replacing) member @p key of @p obj. */
static void set_item(cJSON *obj, const char *key, cJSON *value)
{
    if (cJSON_GetObjectItem(obj, key) != NULL) {
        cJSON_ReplaceItemInObject(obj, key, value);
    } else {
        cJSON_AddItemToObject(obj, key, value);
    }
}

static const struct qn_account *find_account(const struct qn_alert *a, const char *aad)
{
    for (size_t i = 0; i < a->account_count; i++) {
        if (a->accounts[i].aad_user_id != NULL && strcmp(a->accounts[i].aad_user_id, aad) == 0) {
            return &a->accounts[i];
        }
    }
    return NULL;
}

/* ---- fixtures, field by field ---------------------------------------------------------------- */

static void test_decode_flat_suspicious_ip(void **state)
{
    (void)state;
    struct qn_alert a;
    decode_fixture("alerts/arm-flat-suspicious-ip.json", &a);
    assert_int_equal(a.shape, QN_ALERT_SHAPE_FLAT);
    assert_string_equal(a.id, "2516839117039431999_3a7f1c2e-8b4d-4c6a-9e1f-5d2b8a0c7e34");
    assert_string_equal(a.type, "ARM_OperationFromSuspiciousIP");
    assert_string_equal(a.display_name,
                        "Azure Resource Manager operation from suspicious IP address");
    assert_string_equal(a.severity, "Medium");
    assert_string_equal(a.status_text, "New");
    assert_int_equal(a.status, QN_ALERT_STATUS_ACTIVE);
    assert_string_equal(a.start_time, "2026-11-28T08:57:13.4412345Z");
    assert_string_equal(a.end_time, "2026-11-28T09:03:41.0023311Z");
    assert_string_equal(a.time_generated, "2026-11-28T09:12:44.1234567Z");
    assert_string_equal(a.resource_id, "/subscriptions/" SUB_IP);
    assert_string_equal(a.subscription_id, SUB_IP);
    assert_null(a.resource_group);
    assert_string_equal(a.location, "westeurope");
    assert_string_equal(a.tenant_id, TENANT);
    assert_string_equal(a.compromised_entity, "Contoso Production");
    assert_non_null(a.description);
    assert_non_null(strstr(a.alert_uri, "/location/westeurope"));
    assert_string_equal(a.client_ip, "203.0.113.7");
    assert_false(a.is_snapshot);
    assert_int_equal(a.unresolved_refs, 0);

    /* one account: the entity, and "Client principal name" naming the same UPN */
    assert_int_equal(a.account_count, 1);
    assert_string_equal(a.accounts[0].aad_user_id, "5b0e7f3a-9c2d-4e1b-a8f6-3d7c0e9b2a14");
    assert_string_equal(a.accounts[0].upn, "mallory@contoso.com");
    assert_string_equal(a.accounts[0].name, "mallory");
    assert_string_equal(a.accounts[0].tenant_id, TENANT);
    assert_string_equal(a.accounts[0].source, "entity");

    /* one VM: the host's AzureID and the azure-resource entity name the same one */
    assert_int_equal(a.vm_count, 1);
    assert_string_equal(a.vms[0].resource_id, VM_WEB);
    assert_string_equal(a.vms[0].name, "vm-web-01");
    assert_string_equal(a.vms[0].os_family, "Linux");

    /* one IP: the ip entity, its $ref and the client IP */
    assert_int_equal(a.ip_count, 1);
    assert_string_equal(a.ips[0], "203.0.113.7");
    qn_alert_fini(&a);
    assert_true(alert_is_zero(&a));
}

static void test_decode_flat_runbook_uppercase_subscription(void **state)
{
    (void)state;
    struct qn_alert a;
    decode_fixture("alerts/arm-flat-runbook.json", &a);
    assert_int_equal(a.shape, QN_ALERT_SHAPE_FLAT);
    assert_string_equal(a.id, "2516838755512345678_0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f");
    assert_string_equal(a.type, "ARM_PowerZure.StartRunbook");
    assert_string_equal(a.severity, "High");
    /* the input names the subscription in upper case; the decoded one is lower case */
    assert_string_equal(a.subscription_id, SUB_RB);
    assert_string_equal(a.resource_group, "rg-automation");
    assert_string_equal(a.resource_id, "/subscriptions/8C1D4E2F-7A3B-4F6E-B5D9-0E2C4A6B8D13/"
                                       "resourceGroups/rg-automation/providers/"
                                       "Microsoft.Automation/automationAccounts/aa-ops");
    assert_string_equal(a.location, "westeurope");
    assert_int_equal(a.vm_count, 0);
    assert_int_equal(a.account_count, 1);
    assert_string_equal(a.accounts[0].aad_user_id, "e7d6c5b4-a3f2-4e1d-9c8b-7a6f5e4d3c2b");
    assert_string_equal(a.accounts[0].upn, "svc-deploy@contoso.com");
    assert_int_equal(a.ip_count, 1);
    assert_string_equal(a.ips[0], "198.51.100.77");
    assert_string_equal(a.client_ip, "198.51.100.77");
    qn_alert_fini(&a);
}

static void test_decode_rest_shape(void **state)
{
    (void)state;
    struct qn_alert a;
    decode_fixture("alerts/arm-rest-shape-microburst.json", &a);
    assert_int_equal(a.shape, QN_ALERT_SHAPE_REST);
    assert_string_equal(a.id, "2516838902123456789_9d4e2f1a-7c3b-4e5d-8a6f-1b2c3d4e5f60");
    assert_string_equal(a.type, "ARM_MicroBurst.AzVMBulkCMD");
    assert_string_equal(a.severity, "High");
    assert_string_equal(a.status_text, "Active");
    assert_int_equal(a.status, QN_ALERT_STATUS_ACTIVE);
    assert_string_equal(a.start_time, "2026-11-28T11:02:05.1000000Z");
    assert_string_equal(a.time_generated, "2026-11-28T11:09:30.0000000Z");
    assert_string_equal(a.subscription_id, SUB_MB);
    assert_string_equal(a.resource_group, "rg-batch");
    assert_string_equal(a.resource_id, "/subscriptions/" SUB_MB "/resourceGroups/rg-batch/"
                                       "providers/Microsoft.Compute/virtualMachines/vm-batch-03");
    assert_string_equal(a.location, "westeurope");
    assert_string_equal(a.compromised_entity, "vm-batch-03");
    assert_false(a.is_snapshot);
    /* the resource id and the host entity name the same VM; the host adds the OS family */
    assert_int_equal(a.vm_count, 1);
    assert_string_equal(a.vms[0].name, "vm-batch-03");
    assert_string_equal(a.vms[0].os_family, "Windows");
    /* account entity with camelCase keys, deduplicated with "Client principal name" */
    assert_int_equal(a.account_count, 1);
    assert_string_equal(a.accounts[0].aad_user_id, "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f");
    assert_string_equal(a.accounts[0].upn, "trent@fabrikam.com");
    assert_int_equal(a.ip_count, 1);
    assert_string_equal(a.ips[0], "198.51.100.23");
    qn_alert_fini(&a);
}

static void test_decode_status_dismissed_and_snapshot(void **state)
{
    (void)state;
    struct qn_alert a;
    decode_fixture("alerts/status-dismissed.json", &a);
    assert_int_equal(a.status, QN_ALERT_STATUS_DISMISSED);
    assert_string_equal(a.status_text, "Dismissed");
    assert_false(a.is_snapshot);
    qn_alert_fini(&a);

    decode_fixture("alerts/snapshot-alert.json", &a);
    assert_true(a.is_snapshot);
    assert_string_equal(a.type, "ARM_UnusedAccountPersistence");
    assert_int_equal(a.vm_count, 0);
    assert_int_equal(a.account_count, 1);
    assert_string_equal(a.accounts[0].upn, "old-contractor@contoso.com");
    qn_alert_fini(&a);
}

static void test_decode_batch_fixtures(void **state)
{
    (void)state;
    cJSON *arr = ts_parse_fixture("alerts/batch-array.json");
    const cJSON *el = NULL;
    int alerts = 0;
    cJSON_ArrayForEach(el, arr)
    {
        struct qn_alert a;
        assert_int_equal(qn_record_classify(el), QN_RECORD_ALERT);
        decode_ok(el, &a);
        assert_true(qn_alert_type_is_resource_manager(a.type));
        assert_non_null(a.subscription_id);
        assert_true(is_lower_guid(a.subscription_id));
        qn_alert_fini(&a);
        alerts++;
    }
    assert_int_equal(alerts, 2);
    cJSON_Delete(arr);
}

static void test_status_mapping(void **state)
{
    (void)state;

    static const struct {
        const char *text;
        enum qn_alert_status status;
    } cases[] = {
        {"New", QN_ALERT_STATUS_ACTIVE},
        {"Active", QN_ALERT_STATUS_ACTIVE},
        {"InProgress", QN_ALERT_STATUS_IN_PROGRESS},
        {"Resolved", QN_ALERT_STATUS_RESOLVED},
        {"Dismissed", QN_ALERT_STATUS_DISMISSED},
        {"dismissed", QN_ALERT_STATUS_DISMISSED},
        {"RESOLVED", QN_ALERT_STATUS_RESOLVED},
    };

    cJSON *json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        set_item(json, "Status", cJSON_CreateString(cases[i].text));
        struct qn_alert a;
        decode_ok(json, &a);
        assert_int_equal(a.status, cases[i].status);
        assert_string_equal(a.status_text, cases[i].text);
        qn_alert_fini(&a);
    }
    cJSON_Delete(json);

    /* the REST shape's "status" */
    json = ts_parse_fixture("alerts/arm-rest-shape-microburst.json");
    cJSON *props = cJSON_GetObjectItem(json, "properties");
    set_item(props, "status", cJSON_CreateString("Resolved"));
    struct qn_alert a;
    decode_ok(json, &a);
    assert_int_equal(a.status, QN_ALERT_STATUS_RESOLVED);
    qn_alert_fini(&a);
    cJSON_Delete(json);

    assert_string_equal(qn_alert_status_name(QN_ALERT_STATUS_ACTIVE), "Active");
    assert_string_equal(qn_alert_status_name(QN_ALERT_STATUS_IN_PROGRESS), "InProgress");
    assert_string_equal(qn_alert_status_name(QN_ALERT_STATUS_RESOLVED), "Resolved");
    assert_string_equal(qn_alert_status_name(QN_ALERT_STATUS_DISMISSED), "Dismissed");
}

static void test_is_snapshot_forms(void **state)
{
    (void)state;
    cJSON *json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
    struct qn_alert a;
    set_item(json, "IsSnapshot", cJSON_CreateTrue());
    decode_ok(json, &a);
    assert_true(a.is_snapshot);
    qn_alert_fini(&a);
    set_item(json, "IsSnapshot", cJSON_CreateString("True"));
    decode_ok(json, &a);
    assert_true(a.is_snapshot);
    qn_alert_fini(&a);
    set_item(json, "IsSnapshot", cJSON_CreateFalse());
    decode_ok(json, &a);
    assert_false(a.is_snapshot);
    qn_alert_fini(&a);
    cJSON_Delete(json);

    json = ts_parse_fixture("alerts/arm-rest-shape-microburst.json");
    set_item(cJSON_GetObjectItem(json, "properties"), "isSnapshot", cJSON_CreateTrue());
    decode_ok(json, &a);
    assert_true(a.is_snapshot);
    qn_alert_fini(&a);
    cJSON_Delete(json);
}

/* ---- accounts, VMs, IPs ---------------------------------------------------------------------- */

/* A minimal flat alert on @p resource_id with the given Entities and ExtendedProperties. */
static cJSON *make_alert(const char *resource_id, const char *entities, const char *extended)
{
    char text[8192];
    snprintf(text, sizeof(text),
             "{\"SystemAlertId\":\"2516000000000000000_test\",\"AlertType\":\"ARM_Test\","
             "\"Status\":\"New\",\"AzureResourceId\":\"%s\",\"Entities\":%s,"
             "\"ExtendedProperties\":%s}",
             resource_id, entities != NULL ? entities : "[]", extended != NULL ? extended : "{}");
    cJSON *json = cJSON_Parse(text);
    assert_non_null(json);
    return json;
}

static void test_accounts_upn_and_dedupe(void **state)
{
    (void)state;
    /* UPN built from Name + UPNSuffix; a $ref to the same account and the extended property
     * naming it (by UPN, in another case) do not add a second account */
    cJSON *json = make_alert(
        "/subscriptions/" SUB_IP,
        "[{\"$id\":\"2\",\"Type\":\"account\",\"Name\":\"Bob\",\"UPNSuffix\":\"Contoso.com\","
        "\"AadUserId\":\"11111111-2222-4333-8444-555555555555\"},{\"$ref\":\"2\"},"
        "{\"$id\":\"3\",\"Type\":\"account\",\"Name\":\"carol\",\"UPNSuffix\":\"contoso.com\"},"
        "{\"$id\":\"4\",\"Type\":\"account\",\"Name\":\"localadmin\",\"NTDomain\":\"VM1\"}]",
        "{\"Client principal name\":\"bob@contoso.com\"}");
    struct qn_alert a;
    decode_ok(json, &a);
    assert_int_equal(a.account_count, 2);
    const struct qn_account *bob = find_account(&a, "11111111-2222-4333-8444-555555555555");
    assert_non_null(bob);
    assert_string_equal(bob->upn, "Bob@Contoso.com");
    assert_string_equal(bob->name, "Bob");
    assert_string_equal(bob->source, "entity");
    /* carol has a UPN but no object id */
    const struct qn_account *carol = bob == &a.accounts[0] ? &a.accounts[1] : &a.accounts[0];
    assert_null(carol->aad_user_id);
    assert_string_equal(carol->upn, "carol@contoso.com");
    qn_alert_fini(&a);
    cJSON_Delete(json);

    /* only the extended property: an account from there, by object id or by UPN */
    json = make_alert("/subscriptions/" SUB_IP, NULL,
                      "{\"Client principal name\":\"99999999-8888-4777-8666-555555555555\"}");
    decode_ok(json, &a);
    assert_int_equal(a.account_count, 1);
    assert_string_equal(a.accounts[0].aad_user_id, "99999999-8888-4777-8666-555555555555");
    assert_null(a.accounts[0].upn);
    assert_string_equal(a.accounts[0].source, "extended_properties");
    qn_alert_fini(&a);
    cJSON_Delete(json);

    json = make_alert("/subscriptions/" SUB_IP, NULL,
                      "{\"Client principal name\":\"dave@contoso.com\"}");
    decode_ok(json, &a);
    assert_int_equal(a.account_count, 1);
    assert_string_equal(a.accounts[0].upn, "dave@contoso.com");
    assert_string_equal(a.accounts[0].source, "extended_properties");
    qn_alert_fini(&a);
    cJSON_Delete(json);

    /* a principal name that is neither a GUID nor a UPN (an app name with spaces) adds nothing */
    json = make_alert("/subscriptions/" SUB_IP, NULL,
                      "{\"Client principal name\":\"Azure Portal app\"}");
    decode_ok(json, &a);
    assert_int_equal(a.account_count, 0);
    qn_alert_fini(&a);
    cJSON_Delete(json);

    /* an AadUserId that is not a GUID is an invalid alert */
    json = make_alert("/subscriptions/" SUB_IP,
                      "[{\"Type\":\"account\",\"Name\":\"x\",\"AadUserId\":\"../../me\"}]", NULL);
    decode_bad(json, QN_REJECT_INVALID_ALERT);
    cJSON_Delete(json);
}

static void test_vms_from_every_source(void **state)
{
    (void)state;
    const char *vm2 = "/subscriptions/" SUB_IP
                      "/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachines/vm-2";
    const char *vm3 = "/subscriptions/" SUB_IP
                      "/resourceGroups/rg3/providers/Microsoft.Compute/virtualMachines/vm-3";
    char entities[2048];
    snprintf(entities, sizeof(entities),
             "[{\"Type\":\"host\",\"HostName\":\"vm-2\",\"AzureID\":\"%s\",\"OSFamily\":\"Linux\"},"
             "{\"Type\":\"azure-resource\",\"ResourceId\":\"%s\"},"
             "{\"Type\":\"azure-resource\",\"ResourceId\":\"/subscriptions/" SUB_IP
             "/resourceGroups/rg3/providers/Microsoft.Storage/storageAccounts/st1\"},"
             "{\"Type\":\"host\",\"HostName\":\"onprem\"}]",
             vm2, vm3);
    cJSON *json = make_alert(VM_WEB, entities, NULL);
    struct qn_alert a;
    decode_ok(json, &a);
    assert_int_equal(a.vm_count, 3);
    assert_string_equal(a.vms[0].resource_id, VM_WEB);
    assert_string_equal(a.vms[0].name, "vm-web-01");
    assert_null(a.vms[0].os_family);
    assert_string_equal(a.vms[1].resource_id, vm2);
    assert_string_equal(a.vms[1].name, "vm-2");
    assert_string_equal(a.vms[1].os_family, "Linux");
    assert_string_equal(a.vms[2].resource_id, vm3);
    assert_string_equal(a.vms[2].name, "vm-3");
    assert_string_equal(a.resource_group, "rg-prod");
    qn_alert_fini(&a);
    cJSON_Delete(json);

    /* a bad id in a host entity rejects the record */
    json = make_alert("/subscriptions/" SUB_IP,
                      "[{\"Type\":\"host\",\"AzureID\":\"/subscriptions/" SUB_IP
                      "/resourceGroups/rg/../../x\"}]",
                      NULL);
    decode_bad(json, QN_REJECT_INVALID_RESOURCE_ID);
    cJSON_Delete(json);
    json = make_alert("/subscriptions/" SUB_IP,
                      "[{\"Type\":\"azure-resource\",\"ResourceId\":\"/subscriptions/" SUB_IP
                      "/resourceGroups/rg?x=1\"}]",
                      NULL);
    decode_bad(json, QN_REJECT_INVALID_RESOURCE_ID);
    cJSON_Delete(json);
}

static void test_ips(void **state)
{
    (void)state;
    cJSON *json = make_alert("/subscriptions/" SUB_IP,
                             "[{\"Type\":\"ip\",\"Address\":\"198.51.100.1\"},"
                             "{\"Type\":\"ip\",\"Address\":\"2001:db8::1\"},"
                             "{\"Type\":\"ip\",\"Address\":\"198.51.100.1\"},"
                             "{\"Type\":\"ip\",\"Address\":\"bad\\nip\"}]",
                             "{\"Client IP address\":\"203.0.113.9\"}");
    struct qn_alert a;
    decode_ok(json, &a);
    assert_int_equal(a.ip_count, 3);
    assert_string_equal(a.ips[0], "198.51.100.1");
    assert_string_equal(a.ips[1], "2001:db8::1");
    assert_string_equal(a.ips[2], "203.0.113.9");
    assert_string_equal(a.client_ip, "203.0.113.9");
    qn_alert_fini(&a);
    cJSON_Delete(json);
}

/* ---- $ref resolution ------------------------------------------------------------------------ */

static void test_refs_fixture_ref_loop(void **state)
{
    (void)state;
    struct qn_alert a;
    decode_fixture("hostile/ref-loop.json", &a);
    /* {"$ref":"42"} names nothing: counted, not fatal */
    assert_true(a.unresolved_refs >= 1);
    assert_int_equal(a.account_count, 1);
    assert_string_equal(a.accounts[0].aad_user_id, "5b0e7f3a-9c2d-4e1b-a8f6-3d7c0e9b2a14");
    /* the forward reference {"$ref":"6"} and entity 6 itself give one IP */
    assert_int_equal(a.ip_count, 1);
    assert_string_equal(a.ips[0], "203.0.113.7");
    qn_alert_fini(&a);
}

static void test_refs_missing_self_and_cycles(void **state)
{
    (void)state;
    cJSON *json = make_alert(
        "/subscriptions/" SUB_IP,
        "[{\"$ref\":\"missing-1\"},{\"$ref\":\"missing-2\"},{\"$ref\":7},"
        "{\"$id\":\"s\",\"$ref\":\"s\",\"Type\":\"account\",\"AadUserId\":"
        "\"11111111-2222-4333-8444-555555555555\"},"
        "{\"$id\":\"a\",\"Type\":\"process\",\"Parent\":{\"$ref\":\"b\"}},"
        "{\"$id\":\"b\",\"Type\":\"process\",\"Parent\":{\"$ref\":\"a\"}},"
        "{\"$id\":\"c\",\"Type\":{\"$ref\":\"d\"}},{\"$id\":\"d\",\"Type\":{\"$ref\":\"c\"}},"
        "{\"$id\":\"e\",\"Type\":\"ip\",\"Address\":{\"$ref\":\"e\"}}]",
        NULL);
    struct qn_alert a;
    decode_ok(json, &a);
    assert_true(a.unresolved_refs >= 3);
    assert_int_equal(a.ip_count, 0);
    qn_alert_fini(&a);
    cJSON_Delete(json);
}

/*
 * Json.NET writes an object in full the first time it meets it, which may be inside another
 * entity, and as {"$ref"} afterwards, also at the top level of Entities. An account first written
 * inside a host entity and then referenced at the top level is still an entity of the alert.
 */
static void test_refs_nested_definition(void **state)
{
    (void)state;
    cJSON *json = make_alert(
        "/subscriptions/" SUB_IP,
        "[{\"$id\":\"1\",\"Type\":\"host\",\"HostName\":\"vm1\",\"Account\":{\"$id\":\"2\","
        "\"Type\":\"account\",\"Name\":\"erin\",\"UPNSuffix\":\"contoso.com\",\"AadUserId\":"
        "\"22222222-3333-4444-8555-666666666666\"}},{\"$ref\":\"2\"}]",
        NULL);
    struct qn_alert a;
    decode_ok(json, &a);
    assert_int_equal(a.unresolved_refs, 0);
    if (a.account_count != 1) {
        print_error("account defined inside a host entity and referenced at the top level: "
                    "expected 1 account, decoded %zu\n",
                    a.account_count);
    }
    size_t count = a.account_count;
    const struct qn_account *erin = find_account(&a, "22222222-3333-4444-8555-666666666666");
    bool found = erin != NULL && erin->upn != NULL && strcmp(erin->upn, "erin@contoso.com") == 0;
    qn_alert_fini(&a);
    cJSON_Delete(json);
    assert_int_equal(count, 1);
    assert_true(found);
}

static void test_refs_field_values(void **state)
{
    (void)state;
    /* a field that is a reference resolves to an object, never to a string */
    cJSON *json = make_alert("/subscriptions/" SUB_IP,
                             "[{\"$id\":\"1\",\"Type\":\"ip\",\"Address\":{\"$ref\":\"2\"}},"
                             "{\"$id\":\"2\",\"Type\":\"ip\",\"Address\":\"198.51.100.5\"}]",
                             NULL);
    struct qn_alert a;
    decode_ok(json, &a);
    assert_int_equal(a.ip_count, 1);
    assert_string_equal(a.ips[0], "198.51.100.5");
    qn_alert_fini(&a);
    cJSON_Delete(json);
}

/* ---- hostile --------------------------------------------------------------------------------- */

static void test_hostile_fixtures(void **state)
{
    (void)state;
    decode_bad_fixture("hostile/no-alert-id.json", QN_REJECT_NO_ALERT_ID);
    decode_bad_fixture("hostile/bad-resource-id-dotdot.json", QN_REJECT_INVALID_RESOURCE_ID);
    decode_bad_fixture("hostile/bad-resource-id-query.json", QN_REJECT_INVALID_RESOURCE_ID);
    decode_bad_fixture("hostile/bad-resource-id-encoded-slash.json", QN_REJECT_INVALID_RESOURCE_ID);
    decode_bad_fixture("hostile/bad-resource-id-control.json", QN_REJECT_INVALID_RESOURCE_ID);
}

static void test_no_alert_id_forms(void **state)
{
    (void)state;
    cJSON *json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
    set_item(json, "SystemAlertId", cJSON_CreateString(""));
    decode_bad(json, QN_REJECT_NO_ALERT_ID);
    set_item(json, "SystemAlertId", cJSON_CreateNull());
    decode_bad(json, QN_REJECT_NO_ALERT_ID);
    cJSON_DeleteItemFromObject(json, "SystemAlertId");
    decode_bad(json, QN_REJECT_NO_ALERT_ID);
    cJSON_Delete(json);

    json = ts_parse_fixture("alerts/arm-rest-shape-microburst.json");
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(json, "properties"), "systemAlertId");
    decode_bad(json, QN_REJECT_NO_ALERT_ID);
    cJSON_Delete(json);
}

static void test_non_string_fields(void **state)
{
    (void)state;
    static const char *const string_fields[] = {
        "SystemAlertId",   "AlertType",         "AlertDisplayName", "Severity",
        "Status",          "StartTimeUtc",      "EndTimeUtc",       "TimeGenerated",
        "AzureResourceId", "CompromisedEntity", "Description",      "AlertUri",
    };
    for (size_t i = 0; i < sizeof(string_fields) / sizeof(string_fields[0]); i++) {
        cJSON *json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
        set_item(json, string_fields[i], cJSON_CreateNumber(42));
        decode_bad(json, QN_REJECT_INVALID_ALERT);
        set_item(json, string_fields[i], cJSON_CreateObject());
        decode_bad(json, QN_REJECT_INVALID_ALERT);
        set_item(json, string_fields[i], cJSON_CreateTrue());
        decode_bad(json, QN_REJECT_INVALID_ALERT);
        cJSON_Delete(json);
    }
    static const char *const containers[] = {"Entities", "ExtendedProperties",
                                             "ResourceIdentifiers"};
    for (size_t i = 0; i < sizeof(containers) / sizeof(containers[0]); i++) {
        cJSON *json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
        set_item(json, containers[i], cJSON_CreateString("x"));
        decode_bad(json, QN_REJECT_INVALID_ALERT);
        cJSON_Delete(json);
    }
    /* no resource at all */
    cJSON *json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
    cJSON_DeleteItemFromObject(json, "AzureResourceId");
    cJSON_DeleteItemFromObject(json, "ResourceIdentifiers");
    decode_bad(json, QN_REJECT_INVALID_ALERT);
    cJSON_Delete(json);
    /* not an object at all */
    cJSON *arr = cJSON_CreateArray();
    decode_bad(arr, QN_REJECT_NO_ALERT_ID);
    cJSON_Delete(arr);
}

static void test_control_characters_and_bad_types(void **state)
{
    (void)state;
    static const char *const bad_ids[] = {"abc\x01", "abc\ndef", "abc\rdef",
                                          "\t",      "x\x7f",    "x\x1b[2J"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        cJSON *json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
        set_item(json, "SystemAlertId", cJSON_CreateString(bad_ids[i]));
        decode_bad(json, QN_REJECT_INVALID_ALERT);
        cJSON_Delete(json);
    }
    char long_id[600];
    memset(long_id, 'a', 513);
    long_id[513] = '\0';
    cJSON *json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
    set_item(json, "SystemAlertId", cJSON_CreateString(long_id));
    decode_bad(json, QN_REJECT_INVALID_ALERT);
    long_id[512] = '\0';
    set_item(json, "SystemAlertId", cJSON_CreateString(long_id));
    struct qn_alert a;
    decode_ok(json, &a);
    qn_alert_fini(&a);
    cJSON_Delete(json);

    static const char *const bad_types[] = {"ARM_x/../y", "ARM/x",        "ARM_x y", "",
                                            "ARM_x?y",    "ARM_\xc3\xa9", "ARM_x\n"};
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
        set_item(json, "AlertType", cJSON_CreateString(bad_types[i]));
        decode_bad(json, QN_REJECT_INVALID_ALERT);
        cJSON_Delete(json);
    }
    json = ts_parse_fixture("alerts/arm-flat-suspicious-ip.json");
    cJSON_DeleteItemFromObject(json, "AlertType");
    decode_bad(json, QN_REJECT_INVALID_ALERT);
    cJSON_Delete(json);
}

/* ---- classification and types ---------------------------------------------------------------- */

static void test_classify(void **state)
{
    (void)state;

    static const struct {
        const char *file;
        enum qn_record_class cls;
        const char *name;
    } cases[] = {
        {"alerts/assessment.json", QN_RECORD_ASSESSMENT, "assessment"},
        {"alerts/sub-assessment.json", QN_RECORD_SUB_ASSESSMENT, "sub_assessment"},
        {"alerts/secure-score.json", QN_RECORD_SECURE_SCORE, "secure_score"},
        {"alerts/compliance.json", QN_RECORD_COMPLIANCE, "compliance"},
        {"alerts/arm-flat-suspicious-ip.json", QN_RECORD_ALERT, "alert"},
        {"alerts/arm-rest-shape-microburst.json", QN_RECORD_ALERT, "alert"},
        {"alerts/non-arm-vm-alert.json", QN_RECORD_ALERT, "alert"},
        {"hostile/no-alert-id.json", QN_RECORD_ALERT, "alert"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *json = ts_parse_fixture(cases[i].file);
        enum qn_record_class cls = qn_record_classify(json);
        if (cls != cases[i].cls) {
            print_error("%s classified as %s\n", cases[i].file, qn_record_class_name(cls));
        }
        assert_int_equal(cls, cases[i].cls);
        assert_string_equal(qn_record_class_name(cls), cases[i].name);
        cJSON_Delete(json);
    }
    cJSON *json = cJSON_Parse("{\"hello\":\"world\"}");
    assert_int_equal(qn_record_classify(json), QN_RECORD_UNKNOWN);
    assert_string_equal(qn_record_class_name(QN_RECORD_UNKNOWN), "unknown");
    cJSON_Delete(json);
    json = cJSON_Parse("[1,2]");
    assert_int_equal(qn_record_classify(json), QN_RECORD_UNKNOWN);
    cJSON_Delete(json);
    json = cJSON_Parse("\"SystemAlertId\"");
    assert_int_equal(qn_record_classify(json), QN_RECORD_UNKNOWN);
    cJSON_Delete(json);
}

static void test_resource_manager_types(void **state)
{
    (void)state;
    assert_true(qn_alert_type_is_resource_manager("ARM_x"));
    assert_true(qn_alert_type_is_resource_manager("arm_x"));
    assert_true(qn_alert_type_is_resource_manager("RM_x"));
    assert_true(qn_alert_type_is_resource_manager("Arm_Suspicious_Vault_Recovering"));
    assert_true(qn_alert_type_is_resource_manager("ARM_MicroBurst.AzVMBulkCMD"));
    assert_false(qn_alert_type_is_resource_manager("VM_EICAR"));
    assert_false(qn_alert_type_is_resource_manager("ARMx"));
    assert_false(qn_alert_type_is_resource_manager("XARM_x"));
    assert_false(qn_alert_type_is_resource_manager("K8S_x"));
    assert_false(qn_alert_type_is_resource_manager(""));
    assert_false(qn_alert_type_is_resource_manager("SUSPECT_SVCHOST"));

    assert_true(qn_alert_type_matches("k8s_Privileged", "K8S_*"));
    assert_false(qn_alert_type_matches("K8S", "K8S_*"));
    assert_true(qn_alert_type_matches("vm_eicar", "VM_EICAR"));
    assert_false(qn_alert_type_matches("VM_EICAR2", "VM_EICAR"));
    assert_false(qn_alert_type_matches("VM_EICA", "VM_EICAR"));
    assert_true(qn_alert_type_matches("anything", "*"));
}

/* ---- reference payloads ---------------------------------------------------------------------- */

static cJSON *parse_reference(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", QN_REFERENCE_DIR, name);
    char *text = ts_read_path(path, NULL);
    if (text == NULL) {
        return NULL;
    }
    cJSON *json = cJSON_Parse(text);
    free(text);
    return json;
}

static void test_reference_alert_get(void **state)
{
    (void)state;
    cJSON *root = parse_reference("security-alerts-get.json");
    if (root == NULL) {
        skip();
    }
    const cJSON *body = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "responses"), "200"), "body");
    assert_non_null(body);
    assert_int_equal(qn_record_classify(body), QN_RECORD_ALERT);
    struct qn_alert a;
    decode_ok(body, &a);
    assert_int_equal(a.shape, QN_ALERT_SHAPE_REST);
    assert_string_equal(a.id, "2518298467986649999_4d25bfef-2d77-4a08-adc0-3e35715cc92a");
    assert_string_equal(a.type, "VM_EICAR");
    assert_false(qn_alert_type_is_resource_manager(a.type));
    assert_string_equal(a.subscription_id, "20ff7fc3-e762-44dd-bd96-b71116dcdc23");
    assert_string_equal(a.resource_group, "myRg1");
    assert_string_equal(a.location, "westeurope");
    assert_int_equal(a.status, QN_ALERT_STATUS_ACTIVE);
    assert_int_equal(a.vm_count, 1);
    assert_string_equal(a.vms[0].name, "vm1");
    assert_int_equal(a.ip_count, 1);
    assert_string_equal(a.ips[0], "192.0.2.1");
    qn_alert_fini(&a);
    cJSON_Delete(root);
}

static void test_reference_alert_list(void **state)
{
    (void)state;
    cJSON *root = parse_reference("security-alerts-list-subscription.json");
    if (root == NULL) {
        skip();
    }
    const cJSON *value = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "responses"), "200"),
                            "body"),
        "value");
    assert_true(cJSON_IsArray(value));
    int n = 0;
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, value)
    {
        struct qn_alert a;
        assert_int_equal(qn_record_classify(item), QN_RECORD_ALERT);
        decode_ok(item, &a);
        assert_int_equal(a.shape, QN_ALERT_SHAPE_REST);
        assert_non_null(a.id);
        assert_non_null(a.type);
        assert_string_equal(a.subscription_id, "20ff7fc3-e762-44dd-bd96-b71116dcdc23");
        qn_alert_fini(&a);
        n++;
    }
    assert_true(n >= 2);
    cJSON_Delete(root);
}

/* ---- allocation failures ------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * @returns NULL if @p got equals @p want in every field, else a static list of the names of the
 * fields that differ.
 */
static const char *alert_diff(const struct qn_alert *want, const struct qn_alert *got)
{
    static char names[512];
    names[0] = '\0';

    const struct {
        const char *name;
        const char *w;
        const char *g;
    } fields[] = {
        {"id", want->id, got->id},
        {"type", want->type, got->type},
        {"display_name", want->display_name, got->display_name},
        {"severity", want->severity, got->severity},
        {"status_text", want->status_text, got->status_text},
        {"start_time", want->start_time, got->start_time},
        {"end_time", want->end_time, got->end_time},
        {"time_generated", want->time_generated, got->time_generated},
        {"resource_id", want->resource_id, got->resource_id},
        {"subscription_id", want->subscription_id, got->subscription_id},
        {"resource_group", want->resource_group, got->resource_group},
        {"location", want->location, got->location},
        {"tenant_id", want->tenant_id, got->tenant_id},
        {"compromised_entity", want->compromised_entity, got->compromised_entity},
        {"description", want->description, got->description},
        {"alert_uri", want->alert_uri, got->alert_uri},
        {"client_ip", want->client_ip, got->client_ip},
    };

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (!str_eq(fields[i].w, fields[i].g)) {
            strncat(names, " ", sizeof(names) - strlen(names) - 1);
            strncat(names, fields[i].name, sizeof(names) - strlen(names) - 1);
        }
    }
    bool accounts = want->account_count != got->account_count;
    for (size_t i = 0; !accounts && i < want->account_count; i++) {
        accounts = !str_eq(want->accounts[i].aad_user_id, got->accounts[i].aad_user_id) ||
                   !str_eq(want->accounts[i].upn, got->accounts[i].upn) ||
                   !str_eq(want->accounts[i].name, got->accounts[i].name) ||
                   !str_eq(want->accounts[i].tenant_id, got->accounts[i].tenant_id);
    }
    bool vms = want->vm_count != got->vm_count;
    for (size_t i = 0; !vms && i < want->vm_count; i++) {
        vms = !str_eq(want->vms[i].resource_id, got->vms[i].resource_id) ||
              !str_eq(want->vms[i].name, got->vms[i].name) ||
              !str_eq(want->vms[i].os_family, got->vms[i].os_family);
    }
    bool ips = want->ip_count != got->ip_count;
    for (size_t i = 0; !ips && i < want->ip_count; i++) {
        ips = !str_eq(want->ips[i], got->ips[i]);
    }

    const struct {
        const char *name;
        bool differs;
    } lists[] = {
        {"accounts", accounts},
        {"vms", vms},
        {"ips", ips},
        {"status", want->status != got->status || want->is_snapshot != got->is_snapshot},
    };

    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (lists[i].differs) {
            strncat(names, " ", sizeof(names) - strlen(names) - 1);
            strncat(names, lists[i].name, sizeof(names) - strlen(names) - 1);
        }
    }
    return names[0] != '\0' ? names + 1 : NULL;
}

/* Outcomes of one decode with an injected allocation failure, as the child's exit code. */
enum {
    ALLOC_FAILED_CLEANLY = 10,
    ALLOC_SUCCEEDED = 11,
    ALLOC_SUCCEEDED_PARTIAL = 12,
    ALLOC_FAILED_DIRTY = 13,
};

struct alloc_run {
    const cJSON *json;
    const struct qn_alert *want;
    long n;
};

static int alloc_run_child(void *opaque)
{
    const struct alloc_run *run = opaque;
    struct qn_alert got;
    enum qn_reject_reason reason = QN_REJECT_NONE;
    struct qn_error err = {0};
    qn_mem_fail_after(run->n);
    qn_err_t rc = qn_alert_decode(run->json, &got, &reason, &err);
    qn_mem_fail_after(-1);
    if (rc != QN_OK) {
        /* out of memory is QN_ERR_NOMEM with no reject reason: the record is not to blame */
        int clean = rc == QN_ERR_NOMEM && reason == QN_REJECT_NONE && alert_is_zero(&got);
        return clean ? ALLOC_FAILED_CLEANLY : ALLOC_FAILED_DIRTY;
    }
    const char *diff = alert_diff(run->want, &got);
    if (diff != NULL) {
        fprintf(stderr, "allocation %ld failing: QN_OK with field(s) '%s' missing or different\n",
                run->n, diff);
    }
    qn_alert_fini(&got);
    return diff == NULL ? ALLOC_SUCCEEDED : ALLOC_SUCCEEDED_PARTIAL;
}

/*
 * Makes the Nth allocation of a decode fail, for N = 0, 1, ... until a decode succeeds. Each run
 * happens in a child process (a crash fails that run, not the test binary; LeakSanitizer checks
 * each child) and must fail cleanly (zeroed output, a reason) or succeed with exactly the alert a
 * decode without failures yields: an allocation failure must never produce a partial alert.
 */
static void alloc_failure_loop(const char *rel)
{
    cJSON *json = ts_parse_fixture(rel);
    struct qn_alert want;
    decode_ok(json, &want);
    long problems = 0;
    long n = 0;
    for (; n < 2000; n++) {
        struct alloc_run run = {.json = json, .want = &want, .n = n};
        int sig = 0;
        int code = ts_fork_run(alloc_run_child, &run, &sig);
        if (code == ALLOC_SUCCEEDED) {
            break;
        }
        if (code == ALLOC_FAILED_CLEANLY) {
            continue;
        }
        problems++;
        if (code == TS_CHILD_SIGNAL) {
            print_error("%s: allocation %ld failing: qn_alert_decode died of signal %d\n", rel, n,
                        sig);
        } else if (code == TS_CHILD_SANITIZER) {
            print_error("%s: allocation %ld failing: sanitizer error in qn_alert_decode (see "
                        "above)\n",
                        rel, n);
        } else if (code == TS_CHILD_LEAK) {
            print_error("%s: allocation %ld failing: memory leaked\n", rel, n);
        } else if (code == ALLOC_SUCCEEDED_PARTIAL) {
            print_error("%s: allocation %ld failing: returned QN_OK with a partial alert\n", rel,
                        n);
        } else {
            print_error("%s: allocation %ld failing: outcome %d\n", rel, n, code);
        }
    }
    qn_alert_fini(&want);
    cJSON_Delete(json);
    print_message("%s: %ld allocation-failure points, %ld problems\n", rel, n, problems);
    assert_int_equal(problems, 0);
    assert_true(n < 2000);
}

static void test_alloc_failure_flat(void **state)
{
    (void)state;
    alloc_failure_loop("alerts/arm-flat-suspicious-ip.json");
}

static void test_alloc_failure_rest(void **state)
{
    (void)state;
    alloc_failure_loop("alerts/arm-rest-shape-microburst.json");
}

static void test_alloc_failure_runbook(void **state)
{
    (void)state;
    alloc_failure_loop("alerts/arm-flat-runbook.json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_flat_suspicious_ip),
        cmocka_unit_test(test_decode_flat_runbook_uppercase_subscription),
        cmocka_unit_test(test_decode_rest_shape),
        cmocka_unit_test(test_decode_status_dismissed_and_snapshot),
        cmocka_unit_test(test_decode_batch_fixtures),
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_is_snapshot_forms),
        cmocka_unit_test(test_accounts_upn_and_dedupe),
        cmocka_unit_test(test_vms_from_every_source),
        cmocka_unit_test(test_ips),
        cmocka_unit_test(test_refs_fixture_ref_loop),
        cmocka_unit_test(test_refs_missing_self_and_cycles),
        cmocka_unit_test(test_refs_nested_definition),
        cmocka_unit_test(test_refs_field_values),
        cmocka_unit_test(test_hostile_fixtures),
        cmocka_unit_test(test_no_alert_id_forms),
        cmocka_unit_test(test_non_string_fields),
        cmocka_unit_test(test_control_characters_and_bad_types),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_resource_manager_types),
        cmocka_unit_test(test_reference_alert_get),
        cmocka_unit_test(test_reference_alert_list),
        cmocka_unit_test(test_alloc_failure_flat),
        cmocka_unit_test(test_alloc_failure_rest),
        cmocka_unit_test(test_alloc_failure_runbook),
    };
    return cmocka_run_group_tests_name("alert", tests, NULL, NULL);
}
