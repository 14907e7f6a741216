/*
 * test_plan.c - unit tests for the response plan and its outcome events, through a capturing
 * emitter: event order, task count and kinds per fixture, deterministic ids, task ids and their
 * dependencies, the CloudEvents envelope, cancellation, rejected records, emitter errors, and a
 * pinned event id as a regression guard for id derivation.
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
#include "outcome.h"
#include "plan.h"
#include "qn/mem.h"
#include "qn/resid.h"
#include "test_support.h"

#define MAX_EVENTS 128
#define ID_IP      "2516839117039431999_3a7f1c2e-8b4d-4c6a-9e1f-5d2b8a0c7e34"

struct event {
    char *type;
    char *id;
    char *key;
    char *json;
    size_t len;
};

struct capture {
    struct event events[MAX_EVENTS];
    int count;
    int fail_at; /* return QN_ERR_KAFKA for this event (0-based); -1 never */
};

static qn_err_t capture_fn(const char *type,
                           const char *event_id,
                           const char *key,
                           const char *json,
                           size_t len,
                           void *opaque)
{
    struct capture *cap = opaque;
    assert_true(cap->count < MAX_EVENTS);
    assert_int_equal(strlen(json), len);
    if (cap->count == cap->fail_at) {
        cap->count++;
        return QN_ERR_KAFKA;
    }
    struct event *ev = &cap->events[cap->count++];
    ev->type = strdup(type);
    ev->id = strdup(event_id);
    ev->key = strdup(key);
    ev->json = strdup(json);
    ev->len = len;
    return QN_OK;
}

static void capture_clear(struct capture *cap)
{
    for (int i = 0; i < cap->count && i < MAX_EVENTS; i++) {
        free(cap->events[i].type);
        free(cap->events[i].id);
        free(cap->events[i].key);
        free(cap->events[i].json);
    }
    memset(cap, 0, sizeof(*cap));
    cap->fail_at = -1;
}

struct fx {
    struct qn_config *cfg;
    struct capture cap;
    struct qn_emitter emitter;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(qn_config_load_flags(NULL, NULL, QN_CONFIG_OFFLINE, &f->cfg, NULL), QN_OK);
    f->cap.fail_at = -1;
    f->emitter.fn = capture_fn;
    f->emitter.opaque = &f->cap;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    capture_clear(&f->cap);
    qn_config_free(f->cfg);
    free(f);
    return 0;
}

static void decode(const char *rel, struct qn_alert *alert)
{
    cJSON *json = ts_parse_fixture(rel);
    enum qn_reject_reason reason;
    assert_int_equal(qn_alert_decode(json, alert, &reason, NULL), QN_OK);
    cJSON_Delete(json);
}

static const char *str_at(const cJSON *obj, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *node = obj;
    for (char *part = buf; node != NULL && part != NULL;) {
        char *dot = strchr(part, '.');
        if (dot != NULL) {
            *dot = '\0';
        }
        node = cJSON_GetObjectItemCaseSensitive(node, part);
        part = dot != NULL ? dot + 1 : NULL;
    }
    return cJSON_IsString(node) ? node->valuestring : NULL;
}

/* Checks the CloudEvents envelope of every captured event and returns the parsed events. */
static cJSON **parse_events(const struct capture *cap, const char *subject)
{
    cJSON **parsed = calloc((size_t)cap->count + 1, sizeof(*parsed));
    assert_non_null(parsed);
    for (int i = 0; i < cap->count; i++) {
        const struct event *ev = &cap->events[i];
        cJSON *json = cJSON_ParseWithLength(ev->json, ev->len);
        assert_non_null(json);
        assert_string_equal(str_at(json, "specversion"), "1.0");
        assert_string_equal(str_at(json, "id"), ev->id);
        assert_int_equal(strlen(ev->id), QN_ID_HEX_LEN);
        assert_string_equal(str_at(json, "type"), ev->type);
        assert_string_equal(str_at(json, "source"), QN_OUTCOME_SOURCE);
        assert_string_equal(str_at(json, "datacontenttype"), "application/json");
        assert_non_null(str_at(json, "time"));
        assert_true(strlen(str_at(json, "time")) >= 20);
        if (subject != NULL) {
            assert_string_equal(str_at(json, "subject"), subject);
        }
        assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(json, "data")));
        parsed[i] = json;
    }
    return parsed;
}

static void free_events(cJSON **parsed, int count)
{
    for (int i = 0; i < count; i++) {
        cJSON_Delete(parsed[i]);
    }
    free(parsed);
}

struct expect {
    const char *file;
    int tasks;
    int users;
    int vms;
};

/*
 * Runs the plan for a fixture and checks the structure of what it emits. @returns the number of
 * task events.
 */
static void check_plan(struct fx *f, const struct expect *x)
{
    struct qn_alert a;
    decode(x->file, &a);
    capture_clear(&f->cap);
    struct qn_plan_summary sum = {0};
    assert_int_equal(qn_plan_respond(&a, f->cfg, &f->emitter, &sum), QN_OK);
    assert_int_equal(sum.tasks, x->tasks);
    assert_int_equal(sum.events, x->tasks + 2);
    assert_int_equal(f->cap.count, x->tasks + 2);
    cJSON **ev = parse_events(&f->cap, a.id);

    /* contact first, tasks in the middle, closed last */
    assert_string_equal(f->cap.events[0].type, "quench.contact.requested");
    assert_string_equal(f->cap.events[f->cap.count - 1].type, "quench.response.closed");
    for (int i = 1; i < f->cap.count - 1; i++) {
        assert_string_equal(f->cap.events[i].type, "quench.task.proposed");
    }
    /* every event names the alert and is keyed by its id */
    for (int i = 0; i < f->cap.count; i++) {
        assert_string_equal(f->cap.events[i].key, a.id);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev[i], "data");
        assert_string_equal(str_at(data, "alertId"), a.id);
        assert_string_equal(str_at(data, "alertType"), a.type);
        assert_string_equal(str_at(data, "subscriptionId"), a.subscription_id);
        assert_string_equal(str_at(data, "mode"), "observe");
    }
    /* the contact event's answer key and the closed event's count */
    const cJSON *contact = cJSON_GetObjectItemCaseSensitive(ev[0], "data");
    assert_string_equal(str_at(contact, "answerKey.alertId"), a.id);
    assert_string_equal(str_at(contact, "answerKey.subscriptionId"), a.subscription_id);
    assert_string_equal(str_at(contact, "owner.resolution"), "pending");
    const cJSON *closed = cJSON_GetObjectItemCaseSensitive(ev[f->cap.count - 1], "data");
    const cJSON *proposed = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(closed, "tasks"), "proposed");
    assert_true(cJSON_IsNumber(proposed));
    assert_int_equal(proposed->valueint, x->tasks);

    /* event ids: hash of (type, subject, discriminator) */
    char want[QN_ID_HEX_LEN + 1];
    qn_derive_id(want, "quench.contact.requested", a.id, "contact", NULL);
    assert_string_equal(f->cap.events[0].id, want);
    qn_derive_id(want, "quench.response.closed", a.id, "closed", NULL);
    assert_string_equal(f->cap.events[f->cap.count - 1].id, want);

    /* tasks: ids, kinds, dependencies */
    int kinds[QN_TASK_KIND__COUNT] = {0};
    const char *task_ids[MAX_EVENTS];
    int n_tasks = 0;
    for (int i = 1; i < f->cap.count - 1; i++) {
        const cJSON *task = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(ev[i], "data"), "task");
        assert_non_null(task);
        const char *id = str_at(task, "id");
        const char *kind = str_at(task, "kind");
        const char *target_id = str_at(task, "target.id");
        const char *target_type = str_at(task, "target.type");
        assert_non_null(id);
        assert_non_null(kind);
        assert_non_null(target_id);
        assert_non_null(target_type);
        enum qn_task_kind k;
        assert_int_equal(qn_task_kind_parse(kind, &k), 0);
        kinds[k]++;
        assert_string_equal(str_at(task, "family"), qn_task_kind_family(k));
        assert_string_equal(str_at(task, "mode"), "observe");
        assert_string_equal(str_at(task, "configuredMode"), qn_mode_name(f->cfg->policy.modes[k]));
        char tid[QN_ID_HEX_LEN + 1];
        qn_plan_task_id(a.id, kind, target_id, tid);
        assert_string_equal(id, tid);
        qn_derive_id(want, "quench.task.proposed", a.id, tid, NULL);
        assert_string_equal(f->cap.events[i].id, want);
        /* dependencies name tasks proposed before this one */
        const cJSON *deps = cJSON_GetObjectItemCaseSensitive(task, "dependsOn");
        assert_true(cJSON_IsArray(deps));
        const cJSON *dep = NULL;
        cJSON_ArrayForEach(dep, deps)
        {
            assert_true(cJSON_IsString(dep));
            bool known = false;
            for (int t = 0; t < n_tasks; t++) {
                known = known || strcmp(task_ids[t], dep->valuestring) == 0;
            }
            assert_true(known);
        }
        /* the evidence names where in the alert the target came from */
        const cJSON *evidence = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(ev[i], "data"), "evidence");
        assert_true(cJSON_IsArray(evidence));
        assert_true(cJSON_GetArraySize(evidence) >= 1);
        task_ids[n_tasks++] = id;
    }
    /* task ids are unique */
    for (int i = 0; i < n_tasks; i++) {
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(task_ids[i], task_ids[j]);
        }
    }
    assert_int_equal(kinds[QN_TASK_RESOLVE_OWNER], 1);
    assert_int_equal(kinds[QN_TASK_COLLECT_EVIDENCE], 1);
    assert_int_equal(kinds[QN_TASK_DISABLE_USER], x->users);
    assert_int_equal(kinds[QN_TASK_REVOKE_SESSIONS], x->users);
    assert_int_equal(kinds[QN_TASK_RESET_CREDENTIALS], x->users);
    assert_int_equal(kinds[QN_TASK_VM_RESET_PASSWORDS], x->vms);
    assert_int_equal(kinds[QN_TASK_VM_ANTIMALWARE_SCAN], x->vms);
    assert_int_equal(kinds[QN_TASK_VM_REIMAGE], x->vms);
    /* never proposed from the alert alone: they are decided from evidence */
    assert_int_equal(kinds[QN_TASK_DELETE_USER], 0);
    assert_int_equal(kinds[QN_TASK_REMOVE_ROLE_ASSIGNMENT], 0);
    assert_int_equal(kinds[QN_TASK_REMOVE_RUNBOOK], 0);
    assert_int_equal(kinds[QN_TASK_DELETE_RESOURCE], 0);
    assert_int_equal(kinds[QN_TASK_DISMISS_ALERT], 0);
    free_events(ev, f->cap.count);
    qn_alert_fini(&a);
}

static void test_plan_per_fixture(void **state)
{
    struct fx *f = *state;
    static const struct expect cases[] = {
        {"alerts/arm-flat-suspicious-ip.json", 8, 1, 1},
        {"alerts/arm-flat-runbook.json", 5, 1, 0},
        {"alerts/arm-rest-shape-microburst.json", 8, 1, 1},
        {"alerts/status-dismissed.json", 8, 1, 1},
        {"alerts/snapshot-alert.json", 5, 1, 0},
        {"hostile/ref-loop.json", 5, 1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_plan(f, &cases[i]);
    }
}

/* Removes the "time" member so two runs can be compared byte for byte. */
static char *without_time(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "time");
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static void test_plan_is_deterministic(void **state)
{
    struct fx *f = *state;
    struct qn_alert a;
    decode("alerts/arm-rest-shape-microburst.json", &a);
    assert_int_equal(qn_plan_respond(&a, f->cfg, &f->emitter, NULL), QN_OK);
    struct capture first = f->cap;
    memset(&f->cap, 0, sizeof(f->cap));
    f->cap.fail_at = -1;
    /* a second decode of the same record, as after a redelivery */
    struct qn_alert b;
    decode("alerts/arm-rest-shape-microburst.json", &b);
    assert_int_equal(qn_plan_respond(&b, f->cfg, &f->emitter, NULL), QN_OK);
    assert_int_equal(f->cap.count, first.count);
    for (int i = 0; i < first.count; i++) {
        assert_string_equal(first.events[i].type, f->cap.events[i].type);
        assert_string_equal(first.events[i].id, f->cap.events[i].id);
        assert_string_equal(first.events[i].key, f->cap.events[i].key);
        char *x = without_time(first.events[i].json);
        char *y = without_time(f->cap.events[i].json);
        assert_string_equal(x, y);
        free(x);
        free(y);
        /* and the raw bytes differ at most inside "time" */
        const char *tx = strstr(first.events[i].json, "\"time\":\"");
        const char *ty = strstr(f->cap.events[i].json, "\"time\":\"");
        assert_non_null(tx);
        assert_non_null(ty);
        assert_int_equal(tx - first.events[i].json, ty - f->cap.events[i].json);
        assert_int_equal(first.events[i].len, f->cap.events[i].len);
    }
    capture_clear(&first);
    qn_alert_fini(&a);
    qn_alert_fini(&b);
}

static void test_task_targets(void **state)
{
    struct fx *f = *state;
    struct qn_alert a;
    decode("alerts/arm-flat-suspicious-ip.json", &a);
    assert_int_equal(qn_plan_respond(&a, f->cfg, &f->emitter, NULL), QN_OK);
    cJSON **ev = parse_events(&f->cap, a.id);
    const char *disable_id = NULL;
    const char *scan_id = NULL;
    for (int i = 1; i < f->cap.count - 1; i++) {
        const cJSON *task = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(ev[i], "data"), "task");
        const char *kind = str_at(task, "kind");
        const char *type = str_at(task, "target.type");
        const char *id = str_at(task, "target.id");
        const cJSON *deps = cJSON_GetObjectItemCaseSensitive(task, "dependsOn");
        if (strcmp(kind, "disable_user") == 0 || strcmp(kind, "revoke_sessions") == 0 ||
            strcmp(kind, "reset_credentials") == 0) {
            assert_string_equal(type, "user");
            assert_string_equal(id, "5b0e7f3a-9c2d-4e1b-a8f6-3d7c0e9b2a14");
            assert_string_equal(str_at(task, "target.name"), "mallory@contoso.com");
        } else if (strncmp(kind, "vm_", 3) == 0) {
            assert_string_equal(type, "vm");
            assert_string_equal(id, a.vms[0].resource_id);
            assert_string_equal(str_at(task, "target.name"), "vm-web-01");
        } else if (strcmp(kind, "collect_evidence") == 0) {
            assert_string_equal(type, "subscription");
            assert_string_equal(id, a.subscription_id);
            assert_int_equal(cJSON_GetArraySize(deps), 0);
        }
        if (strcmp(kind, "disable_user") == 0) {
            disable_id = str_at(task, "id");
            assert_int_equal(cJSON_GetArraySize(deps), 1);
        }
        if (strcmp(kind, "revoke_sessions") == 0 || strcmp(kind, "reset_credentials") == 0) {
            /* after the evidence and after disabling the account */
            assert_int_equal(cJSON_GetArraySize(deps), 2);
            assert_non_null(disable_id);
            assert_string_equal(cJSON_GetArrayItem(deps, 1)->valuestring, disable_id);
        }
        if (strcmp(kind, "vm_antimalware_scan") == 0) {
            scan_id = str_at(task, "id");
        }
        if (strcmp(kind, "vm_reimage") == 0) {
            assert_int_equal(cJSON_GetArraySize(deps), 2);
            assert_non_null(scan_id);
            assert_string_equal(cJSON_GetArrayItem(deps, 1)->valuestring, scan_id);
            assert_string_equal(str_at(task, "configuredMode"), "approve");
        }
    }
    free_events(ev, f->cap.count);
    qn_alert_fini(&a);
}

/* A task's target.type must describe its target.id (outcome.schema.json $defs/target). */
static const char *target_mismatch(const char *type, const char *id)
{
    struct qn_resid rid;
    bool arm = qn_resid_parse(id, 0, &rid, NULL) == QN_OK;
    if (strcmp(type, "subscription") == 0) {
        /* the ARM id of a subscription, or its bare GUID */
        return (arm && qn_resid_is_subscription(&rid)) || qn_is_guid(id) ? NULL
                                                                         : "not a subscription";
    }
    if (strcmp(type, "vm") == 0) {
        return arm && qn_resid_is_vm(&rid) ? NULL : "not a VM id";
    }
    if (strcmp(type, "user") == 0) {
        return qn_is_guid(id) || strchr(id, '@') != NULL ? NULL : "not a user";
    }
    return NULL;
}

static void test_task_target_types_match_ids(void **state)
{
    struct fx *f = *state;
    static const char *const files[] = {"alerts/arm-flat-suspicious-ip.json",
                                        "alerts/arm-flat-runbook.json",
                                        "alerts/arm-rest-shape-microburst.json"};
    int wrong = 0;
    for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
        struct qn_alert a;
        decode(files[k], &a);
        capture_clear(&f->cap);
        assert_int_equal(qn_plan_respond(&a, f->cfg, &f->emitter, NULL), QN_OK);
        cJSON **ev = parse_events(&f->cap, a.id);
        for (int i = 1; i < f->cap.count - 1; i++) {
            const cJSON *task = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(ev[i], "data"), "task");
            const char *type = str_at(task, "target.type");
            const char *id = str_at(task, "target.id");
            const char *why = target_mismatch(type, id);
            if (why != NULL) {
                print_error("%s: task %s has target.type '%s' but target.id %s is %s\n", files[k],
                            str_at(task, "kind"), type, id, why);
                wrong++;
            }
        }
        free_events(ev, f->cap.count);
        qn_alert_fini(&a);
    }
    assert_int_equal(wrong, 0);
}

/* Owner candidates name each scope once, however the alert spells the subscription. */
static void test_contact_candidates(void **state)
{
    struct fx *f = *state;

    static const struct {
        const char *file;
        const char *resource_id; /* NULL: as in the fixture */
        int scopes;
    } cases[] = {
        {"alerts/arm-flat-suspicious-ip.json", NULL, 1},
        {"alerts/arm-flat-runbook.json", NULL, 3},
        {"alerts/arm-flat-suspicious-ip.json",
         "/subscriptions/3F2A9C1E-6B4D-4E8A-9C7B-2D5E8F1A0B34", 1},
        {"alerts/arm-flat-suspicious-ip.json",
         "/subscriptions/3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34/resourceGroups/rg-prod", 2},
        {"alerts/arm-flat-suspicious-ip.json",
         "/subscriptions/3F2A9C1E-6B4D-4E8A-9C7B-2D5E8F1A0B34/resourceGroups/rg-prod", 2},
    };

    int wrong = 0;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        cJSON *json = ts_parse_fixture(cases[k].file);
        if (cases[k].resource_id != NULL) {
            cJSON_ReplaceItemInObject(json, "AzureResourceId",
                                      cJSON_CreateString(cases[k].resource_id));
            cJSON_DeleteItemFromObject(json, "ResourceIdentifiers");
        }
        struct qn_alert a;
        enum qn_reject_reason reason;
        assert_int_equal(qn_alert_decode(json, &a, &reason, NULL), QN_OK);
        cJSON_Delete(json);
        capture_clear(&f->cap);
        assert_int_equal(qn_plan_respond(&a, f->cfg, &f->emitter, NULL), QN_OK);
        cJSON **ev = parse_events(&f->cap, a.id);
        const cJSON *cands = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev[0], "data"),
                                             "owner"),
            "candidates");
        assert_true(cJSON_IsArray(cands));
        int tag = 0;
        int role = 0;
        int dup = 0;
        const cJSON *c = NULL;
        cJSON_ArrayForEach(c, cands)
        {
            const char *source = str_at(c, "source");
            const char *scope = str_at(c, "scope");
            if (strcmp(source, "tag") == 0) {
                tag++;
                const cJSON *tags = cJSON_GetObjectItemCaseSensitive(c, "tags");
                assert_int_equal(cJSON_GetArraySize(tags), 3);
            } else if (strcmp(source, "role") == 0) {
                role++;
                assert_string_equal(str_at(c, "role"), "Owner");
            }
            for (const cJSON *d = cands->child; d != c; d = d->next) {
                if (strcmp(str_at(d, "source"), source) == 0 && scope != NULL &&
                    strcasecmp(str_at(d, "scope"), scope) == 0) {
                    dup++;
                }
            }
        }
        if (tag != cases[k].scopes || role != cases[k].scopes || dup != 0) {
            print_error("resource %s: %d tag and %d role candidates (%d duplicate scopes), "
                        "expected %d of each\n",
                        a.resource_id, tag, role, dup, cases[k].scopes);
            wrong++;
        }
        free_events(ev, f->cap.count);
        qn_alert_fini(&a);
    }
    assert_int_equal(wrong, 0);
}

static void test_contact_security_contact(void **state)
{
    (void)state;
    char env0[] = "QUENCH_CONTACT_SECURITY_CONTACT=secops@contoso.com";
    char *envp[] = {env0, NULL};
    struct qn_config *cfg = NULL;
    assert_int_equal(qn_config_load_flags(NULL, envp, QN_CONFIG_OFFLINE, &cfg, NULL), QN_OK);
    struct capture cap;
    memset(&cap, 0, sizeof(cap));
    cap.fail_at = -1;
    struct qn_emitter em = {.fn = capture_fn, .opaque = &cap};
    struct qn_alert a;
    decode("alerts/arm-flat-suspicious-ip.json", &a);
    assert_int_equal(qn_plan_respond(&a, cfg, &em, NULL), QN_OK);
    cJSON *contact = cJSON_Parse(cap.events[0].json);
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(contact, "data"),
                                         "owner"),
        "candidates");
    const cJSON *last = cJSON_GetArrayItem(cands, cJSON_GetArraySize(cands) - 1);
    assert_string_equal(str_at(last, "source"), "security_contact");
    assert_string_equal(str_at(last, "address"), "secops@contoso.com");
    cJSON_Delete(contact);
    capture_clear(&cap);
    qn_alert_fini(&a);
    qn_config_free(cfg);
}

static void test_emitter_error_stops_the_plan(void **state)
{
    struct fx *f = *state;
    struct qn_alert a;
    decode("alerts/arm-flat-suspicious-ip.json", &a);
    for (int fail = 0; fail < 10; fail++) {
        capture_clear(&f->cap);
        f->cap.fail_at = fail;
        struct qn_plan_summary sum = {0};
        assert_int_equal(qn_plan_respond(&a, f->cfg, &f->emitter, &sum), QN_ERR_KAFKA);
        /* nothing is emitted after the failing event */
        assert_int_equal(f->cap.count, fail + 1);
        f->cap.count = fail; /* the failed slot holds nothing to free */
    }
    capture_clear(&f->cap);
    qn_alert_fini(&a);
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    struct qn_alert a;
    decode("alerts/status-dismissed.json", &a);
    capture_clear(&f->cap);
    assert_int_equal(qn_plan_cancel(&a, &f->emitter), QN_OK);
    assert_int_equal(f->cap.count, 1);
    assert_string_equal(f->cap.events[0].type, "quench.response.cancelled");
    assert_string_equal(f->cap.events[0].key, a.id);
    cJSON **ev = parse_events(&f->cap, a.id);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev[0], "data");
    assert_string_equal(str_at(data, "alertId"), a.id);
    assert_string_equal(str_at(data, "status"), "Dismissed");
    assert_non_null(strstr(str_at(data, "reason"), "dismissed"));
    char want[QN_ID_HEX_LEN + 1];
    qn_derive_id(want, "quench.response.cancelled", a.id, "Dismissed", NULL);
    assert_string_equal(f->cap.events[0].id, want);
    free_events(ev, f->cap.count);

    /* resolved upstream: another event id */
    a.status = QN_ALERT_STATUS_RESOLVED;
    capture_clear(&f->cap);
    assert_int_equal(qn_plan_cancel(&a, &f->emitter), QN_OK);
    ev = parse_events(&f->cap, a.id);
    data = cJSON_GetObjectItemCaseSensitive(ev[0], "data");
    assert_string_equal(str_at(data, "status"), "Resolved");
    assert_non_null(strstr(str_at(data, "reason"), "resolved"));
    assert_string_not_equal(f->cap.events[0].id, want);
    free_events(ev, f->cap.count);
    qn_alert_fini(&a);
}

static void test_rejected(void **state)
{
    struct fx *f = *state;
    struct qn_record_origin origin = {.topic = "defender.alerts",
                                      .partition = 3,
                                      .offset = 4242424242LL,
                                      .index = 1,
                                      .dlq_topic = "quench.dlq"};
    capture_clear(&f->cap);
    assert_int_equal(
        qn_plan_rejected(&origin, "not_json", "record is not valid JSON", NULL, &f->emitter),
        QN_OK);
    assert_int_equal(f->cap.count, 1);
    const char *subject = "record:defender.alerts/3/4242424242";
    assert_string_equal(f->cap.events[0].type, "quench.record.rejected");
    assert_string_equal(f->cap.events[0].key, subject);
    cJSON **ev = parse_events(&f->cap, subject);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev[0], "data");
    assert_string_equal(str_at(data, "reason"), "not_json");
    assert_string_equal(str_at(data, "message"), "record is not valid JSON");
    assert_string_equal(str_at(data, "record.topic"), "defender.alerts");
    assert_string_equal(str_at(data, "dlq.topic"), "quench.dlq");
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(data, "record");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(rec, "partition")->valueint, 3);
    assert_true(cJSON_GetObjectItemCaseSensitive(rec, "offset")->valuedouble == 4242424242.0);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(rec, "index")->valueint, 1);
    assert_null(cJSON_GetObjectItemCaseSensitive(data, "alertId"));
    char want[QN_ID_HEX_LEN + 1];
    qn_derive_id(want, "quench.record.rejected", subject, "1", NULL);
    assert_string_equal(f->cap.events[0].id, want);
    free_events(ev, f->cap.count);

    /* with an alert id; another index of the same value is another event */
    origin.index = 2;
    capture_clear(&f->cap);
    assert_int_equal(qn_plan_rejected(&origin, "invalid_resource_id", "bad id", ID_IP, &f->emitter),
                     QN_OK);
    ev = parse_events(&f->cap, subject);
    data = cJSON_GetObjectItemCaseSensitive(ev[0], "data");
    assert_string_equal(str_at(data, "alertId"), ID_IP);
    assert_string_not_equal(f->cap.events[0].id, want);
    free_events(ev, f->cap.count);
}

/*
 * Regression guard: event ids are published and consumers deduplicate on them, so the derivation
 * must never change. These values were computed once from the current implementation.
 */
static void test_pinned_ids(void **state)
{
    (void)state;
    struct qn_outcome ev;
    assert_int_equal(qn_outcome_init(&ev, "quench.contact.requested", ID_IP, "contact", ID_IP),
                     QN_OK);
    char id[QN_ID_HEX_LEN + 1];
    memcpy(id, ev.id, sizeof(id));
    qn_outcome_fini(&ev);
    assert_string_equal(id, "21cb1fc9d4ba4377c57c65bee2706bf3");
    char tid[QN_ID_HEX_LEN + 1];
    qn_plan_task_id(ID_IP, "disable_user", "5b0e7f3a-9c2d-4e1b-a8f6-3d7c0e9b2a14", tid);
    assert_string_equal(tid, "aa63e2b582e744cb1b61f08b433028d1");
}

static void test_outcome_init_and_emit(void **state)
{
    struct fx *f = *state;
    struct qn_outcome ev;
    assert_int_equal(qn_outcome_init(&ev, "quench.task.skipped", "subj", "d", "key-1"), QN_OK);
    char want[QN_ID_HEX_LEN + 1];
    qn_derive_id(want, "quench.task.skipped", "subj", "d", NULL);
    assert_string_equal(ev.id, want);
    assert_string_equal(ev.type, "quench.task.skipped");
    assert_string_equal(ev.key, "key-1");
    qn_json_add_str(ev.data, "present", "yes");
    qn_json_add_str(ev.data, "absent", NULL);
    capture_clear(&f->cap);
    assert_int_equal(qn_outcome_emit(&ev, &f->emitter), QN_OK);
    assert_null(ev.root);
    assert_null(ev.key);
    cJSON **parsed = parse_events(&f->cap, "subj");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(parsed[0], "data");
    assert_string_equal(str_at(data, "present"), "yes");
    assert_null(cJSON_GetObjectItemCaseSensitive(data, "absent"));
    free_events(parsed, f->cap.count);

    /* allocation failures while building an event */
    for (long n = 0; n < 100; n++) {
        qn_mem_fail_after(n);
        qn_err_t rc = qn_outcome_init(&ev, "quench.task.skipped", "subj", "d", "key-1");
        qn_mem_fail_after(-1);
        if (rc == QN_OK) {
            qn_outcome_fini(&ev);
            break;
        }
        assert_int_equal(rc, QN_ERR_NOMEM);
        assert_null(ev.root);
        assert_null(ev.key);
    }
}

int main(void)
{
    qn_mem_install_cjson_hooks();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plan_per_fixture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_is_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_target_types_match_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contact_candidates, setup, teardown),
        cmocka_unit_test(test_contact_security_contact),
        cmocka_unit_test_setup_teardown(test_emitter_error_stops_the_plan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejected, setup, teardown),
        cmocka_unit_test(test_pinned_ids),
        cmocka_unit_test_setup_teardown(test_outcome_init_and_emit, setup, teardown),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
