/*
 * engine.c - the per-alert response state machine and the task DAG (see engine.h).
 *
 * Threading: none. Everything runs from loop callbacks: work records (qn_engine_alert,
 * qn_engine_verdict), Azure call completions (through task.c) and the deadline timers.
 * Responses are kept in a small array; a response is freed when it reached a final phase and no
 * task of it is still running.
 */
#include "engine.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "evidence.h"
#include "plan.h"
#include "qn/log.h"
#include "qn/mem.h"
#include "qn/resid.h"
#include "qn/timefmt.h"
#include "response.h"
#include "tasks/tasks.h"

#define MAX_FINDINGS       96
#define SUBSCRIPTION_SLOTS 256
#define HOUR_MS            (3600LL * 1000)

struct sub_window {
    char subscription[37];
    int64_t window_start_ms;
    long count;
};

struct qn_engine {
    struct qn_loop *loop;
    const struct qn_config *cfg;
    struct qn_metrics *metrics;
    struct qn_emitter emitter;
    const struct qn_emitter *now; /* set while handling a work record */
    struct qn_http *http;
    struct qn_azure *azure;
    struct qn_response **responses;
    size_t count;
    size_t cap;
    struct sub_window windows[SUBSCRIPTION_SLOTS];
    int running;
};

static void schedule(struct qn_response *resp);
static void maybe_close(struct qn_response *resp);
static void start_mitigation(struct qn_response *resp, const char *why);
static void continue_mitigation(struct qn_response *resp);

/* ---- small helpers ------------------------------------------------------------------------ */

const char *qn_phase_name(enum qn_phase phase)
{
    static const char *const names[] = {"received",   "contacting", "awaiting_verdict",
                                        "dismissing", "mitigating", "closed",
                                        "escalated",  "cancelled",  "failed"};
    return names[phase];
}

struct qn_azure *qn_engine_azure(struct qn_engine *engine)
{
    return engine->azure;
}

const struct qn_config *qn_engine_config(struct qn_engine *engine)
{
    return engine->cfg;
}

const struct qn_emitter *qn_engine_emitter(struct qn_engine *engine)
{
    return engine->now != NULL ? engine->now : &engine->emitter;
}

struct qn_metrics *qn_engine_metrics(struct qn_engine *engine)
{
    return engine->metrics;
}

static void count(struct qn_engine *e, const char *name, const char *labels)
{
    if (e->metrics != NULL) {
        qn_metrics_add(e->metrics, name, labels, 1);
    }
}

bool qn_engine_take_subscription_write(struct qn_engine *e, const char *subscription)
{
    int64_t now = qn_time_epoch_ms();
    struct sub_window *slot = NULL;
    for (int i = 0; i < SUBSCRIPTION_SLOTS; i++) {
        struct sub_window *w = &e->windows[i];
        if (strcmp(w->subscription, subscription) == 0) {
            slot = w;
            break;
        }
        if (slot == NULL && (w->subscription[0] == '\0' || now - w->window_start_ms >= HOUR_MS)) {
            slot = w;
        }
    }
    if (slot == NULL) {
        return false; /* more subscriptions written to this hour than we track: refuse */
    }
    if (strcmp(slot->subscription, subscription) != 0 || now - slot->window_start_ms >= HOUR_MS) {
        snprintf(slot->subscription, sizeof(slot->subscription), "%s", subscription);
        slot->window_start_ms = now;
        slot->count = 0;
    }
    if (slot->count >= e->cfg->policy.cap_per_subscription_hour) {
        return false;
    }
    slot->count++;
    return true;
}

void qn_response_add_alert_fields(const struct qn_response *resp, cJSON *data, const char *mode)
{
    qn_json_add_str(data, "alertId", resp->alert.id);
    qn_json_add_str(data, "alertType", resp->alert.type);
    qn_json_add_str(data, "subscriptionId", resp->alert.subscription_id);
    qn_json_add_str(data, "mode", mode);
}

static const char *response_mode(const struct qn_response *resp)
{
    const struct qn_config *cfg = resp->engine->cfg;
    return cfg->policy.dry_run || cfg->policy.kill_switch ? "observe" : "enforce";
}

static qn_err_t emit(struct qn_response *resp, struct qn_outcome *ev)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "type=\"%s\"", ev->type);
    count(resp->engine, "quench_engine_events_total", labels);
    return qn_outcome_emit(ev, qn_engine_emitter(resp->engine));
}

qn_err_t qn_response_emit_task(struct qn_response *resp, struct qn_task *task, const char *type)
{
    struct qn_outcome ev;
    qn_err_t rc = qn_outcome_init(&ev, type, resp->alert.id, task->id, resp->alert.id);
    if (rc != QN_OK) {
        return rc;
    }
    const struct qn_config *cfg = resp->engine->cfg;
    qn_response_add_alert_fields(resp, ev.data, qn_mode_name(task->mode));
    cJSON *t = cJSON_AddObjectToObject(ev.data, "task");
    cJSON_AddStringToObject(t, "id", task->id);
    cJSON_AddStringToObject(t, "kind", qn_task_kind_name(task->kind));
    cJSON_AddStringToObject(t, "family", qn_task_kind_family(task->kind));
    cJSON *target = cJSON_AddObjectToObject(t, "target");
    cJSON_AddStringToObject(target, "type", task->target_type);
    cJSON_AddStringToObject(target, "id", task->target_id);
    qn_json_add_str(target, "name", task->target_name);
    cJSON_AddStringToObject(t, "mode", qn_mode_name(task->mode));
    cJSON_AddStringToObject(t, "configuredMode", qn_mode_name(cfg->policy.modes[task->kind]));
    cJSON *deps = cJSON_AddArrayToObject(t, "dependsOn");
    for (int i = 0; i < task->dep_count; i++) {
        cJSON_AddItemToArray(deps, cJSON_CreateString(resp->tasks[task->deps[i]]->id));
    }
    cJSON_AddStringToObject(t, "reason", task->reason);
    cJSON_AddItemToObject(ev.data, "evidence", cJSON_Duplicate(task->evidence, 1));
    if (strcmp(type, "quench.task.proposed") != 0) {
        cJSON_AddItemToObject(ev.data, "requests", cJSON_Duplicate(task->requests, 1));
        if (task->undo != NULL) {
            cJSON_AddItemToObject(ev.data, "undo", cJSON_Duplicate(task->undo, 1));
        }
        if (task->detail != NULL) {
            cJSON_AddItemToObject(ev.data, "detail", cJSON_Duplicate(task->detail, 1));
        }
        if (task->state == QN_TASK_FAILED) {
            cJSON *error = cJSON_AddObjectToObject(ev.data, "error");
            cJSON_AddStringToObject(
                error, "message",
                task->message != NULL && task->message[0] != '\0' ? task->message : "failed");
            if (task->attempts > 0) {
                cJSON_AddNumberToObject(error, "attempts", task->attempts);
            }
        } else if (task->message != NULL) {
            cJSON_AddStringToObject(ev.data, "result", task->message);
        }
    }
    return emit(resp, &ev);
}

static qn_err_t
emit_simple(struct qn_response *resp, const char *type, const char *disc, const char *reason)
{
    struct qn_outcome ev;
    qn_err_t rc = qn_outcome_init(&ev, type, resp->alert.id, disc, resp->alert.id);
    if (rc != QN_OK) {
        return rc;
    }
    qn_response_add_alert_fields(resp, ev.data, response_mode(resp));
    if (reason != NULL) {
        cJSON_AddStringToObject(ev.data, "reason", reason);
    }
    return emit(resp, &ev);
}

/* Marks the response for escalation with the first reason given (copied). */
static void escalate(struct qn_response *resp, const char *why)
{
    resp->escalated = true;
    if (resp->escalation_note == NULL) {
        resp->escalation_note = qn_strdup(why);
    }
}

/* ---- tasks ------------------------------------------------------------------------------------
 */

static enum qn_mode task_mode(const struct qn_config *cfg, enum qn_task_kind kind)
{
    if (!qn_task_kind_writes(kind)) {
        return QN_MODE_ENFORCE; /* reads run even in dry run: they write nothing */
    }
    if (cfg->policy.kill_switch) {
        return QN_MODE_OBSERVE; /* every write off: skipped before any call (task.c refuses too) */
    }
    return qn_config_effective_mode(cfg, kind);
}

static void free_task(struct qn_task *t)
{
    if (t == NULL) {
        return;
    }
    qn_free(t->target_type);
    qn_free(t->target_id);
    qn_free(t->target_name);
    qn_free(t->reason);
    qn_free(t->message);
    cJSON_Delete(t->evidence);
    cJSON_Delete(t->requests);
    cJSON_Delete(t->undo);
    cJSON_Delete(t->detail);
    qn_free(t);
}

static int find_task(const struct qn_response *resp, const char *id)
{
    for (int i = 0; i < resp->task_count; i++) {
        if (strcmp(resp->tasks[i]->id, id) == 0) {
            return i;
        }
    }
    return -1;
}

/* Adds a task (or finds the same one: ids are hash(alert, kind, target)). @returns its index. */
static int add_task(struct qn_response *resp,
                    enum qn_task_kind kind,
                    const char *target_type,
                    const char *target_id,
                    const char *target_name,
                    const char *reason)
{
    char id[QN_ID_HEX_LEN + 1];
    qn_plan_task_id(resp->alert.id, qn_task_kind_name(kind), target_id, id);
    int existing = find_task(resp, id);
    if (existing >= 0) {
        return existing;
    }
    if (resp->task_count == QN_RESPONSE_MAX_TASKS) {
        QN_LOG_WARN("engine", "alert %s: more than %d tasks; %s %s dropped", resp->alert.id,
                    QN_RESPONSE_MAX_TASKS, qn_task_kind_name(kind), target_id);
        return -1;
    }
    struct qn_task *t = qn_calloc(1, sizeof(*t));
    if (t == NULL) {
        return -1;
    }
    t->resp = resp;
    memcpy(t->id, id, sizeof(id));
    t->kind = kind;
    t->target_type = qn_strdup(target_type);
    t->target_id = qn_strdup(target_id);
    t->target_name = qn_strdup(target_name);
    t->reason = qn_strdup(reason);
    t->evidence = cJSON_CreateArray();
    t->requests = cJSON_CreateArray();
    t->mode = task_mode(resp->engine->cfg, kind);
    t->state = QN_TASK_PENDING;
    if (t->target_type == NULL || t->target_id == NULL || t->reason == NULL ||
        t->evidence == NULL || t->requests == NULL) {
        free_task(t);
        return -1;
    }
    resp->tasks[resp->task_count] = t;
    return resp->task_count++;
}

static void depends_on(struct qn_response *resp, int task, int on)
{
    if (task < 0 || on < 0 || task == on) {
        return;
    }
    struct qn_task *t = resp->tasks[task];
    for (int i = 0; i < t->dep_count; i++) {
        if (t->deps[i] == on) {
            return;
        }
    }
    if (t->dep_count < QN_TASK_MAX_DEPS) {
        t->deps[t->dep_count++] = on;
    }
}

static bool terminal(enum qn_task_state s)
{
    return s == QN_TASK_SUCCEEDED || s == QN_TASK_FAILED || s == QN_TASK_SKIPPED;
}

static bool is_final(enum qn_phase p)
{
    return p == QN_PHASE_CLOSED || p == QN_PHASE_CANCELLED || p == QN_PHASE_FAILED;
}

static void run_task(struct qn_response *resp, struct qn_task *t)
{
    const struct qn_task_ops *ops = qn_task_ops_for(t->kind);
    if (ops == NULL || ops->run == NULL) {
        qn_task_finish(t, QN_TASK_FAILED, "this task kind is not implemented in this build");
        return;
    }
    t->state = QN_TASK_RUNNING;
    t->started = true;
    resp->running++;
    resp->engine->running++;
    ops->run(t);
}

/* Starts every task whose dependencies are done, as far as modes and provenance allow. */
static void schedule(struct qn_response *resp)
{
    const struct qn_config *cfg = resp->engine->cfg;
    bool progress = true;
    while (progress && !is_final(resp->phase)) {
        progress = false;
        for (int i = 0; i < resp->task_count; i++) {
            struct qn_task *t = resp->tasks[i];
            if (t->state != QN_TASK_PENDING && t->state != QN_TASK_AWAITING_APPROVAL) {
                continue;
            }
            bool ready = true;
            bool dep_failed = false;
            for (int d = 0; d < t->dep_count; d++) {
                enum qn_task_state ds = resp->tasks[t->deps[d]]->state;
                ready = ready && terminal(ds);
                dep_failed = dep_failed || ds == QN_TASK_FAILED;
            }
            if (!ready) {
                continue;
            }
            progress = true;
            if (resp->cancel_requested) {
                qn_task_finish(t, QN_TASK_SKIPPED, "the response was cancelled");
            } else if (dep_failed) {
                qn_task_finish(t, QN_TASK_SKIPPED, "a task it depends on failed");
            } else if (t->mode == QN_MODE_OBSERVE) {
                qn_task_finish(t, QN_TASK_SKIPPED,
                               cfg->policy.kill_switch
                                   ? "the kill switch is on: every write is off"
                                   : "observe mode: the action is proposed, not taken");
            } else if (t->mode == QN_MODE_APPROVE && !t->approved) {
                t->state = QN_TASK_AWAITING_APPROVAL; /* a verdict naming it starts it */
                progress = false;
                continue;
            } else if (qn_task_kind_writes(t->kind) && t->kind != QN_TASK_DISMISS_ALERT &&
                       resp->provenance == QN_PROVENANCE_CHECKING) {
                progress = false; /* wait for the read-back of the alert */
                continue;
            } else {
                run_task(resp, t);
            }
            if (is_final(resp->phase)) {
                return;
            }
        }
    }
}

/* ---- owner and contact ------------------------------------------------------------------- */

static void arm_deadline(struct qn_response *resp);

static int severity_index(const char *severity)
{
    static const char *const names[] = {"High", "Medium", "Low", "Informational"};
    for (int i = 0; severity != NULL && i < 4; i++) {
        if (strcasecmp(severity, names[i]) == 0) {
            return i;
        }
    }
    return 1; /* unknown severities get the Medium policy */
}

static void emit_contact(struct qn_response *resp)
{
    const struct qn_alert *a = &resp->alert;
    const struct qn_config *cfg = resp->engine->cfg;
    struct qn_outcome ev;
    if (qn_outcome_init(&ev, "quench.contact.requested", a->id, "contact", a->id) != QN_OK) {
        return;
    }
    cJSON *d = ev.data;
    qn_response_add_alert_fields(resp, d, response_mode(resp));
    qn_json_add_str(d, "severity", a->severity);
    qn_json_add_str(d, "alertName", a->display_name);
    qn_json_add_str(d, "resourceId", a->resource_id);
    cJSON *owner = cJSON_AddObjectToObject(d, "owner");
    const cJSON *owners = cJSON_GetObjectItemCaseSensitive(resp->owner, "owners");
    bool resolved = false;
    const cJSON *o = NULL;
    cJSON_ArrayForEach(o, owners)
    {
        resolved = resolved || cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "address"));
    }
    cJSON_AddStringToObject(owner, "resolution", resolved ? "resolved" : "pending");
    cJSON *cands = cJSON_IsArray(owners) ? cJSON_Duplicate(owners, 1) : cJSON_CreateArray();
    if (!resolved && cfg->contact.security_contact[0] != '\0') {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "source", "security_contact");
        cJSON_AddStringToObject(c, "address", cfg->contact.security_contact);
        cJSON_AddItemToArray(cands, c);
    }
    cJSON_AddItemToObject(owner, "candidates", cands);
    cJSON *summary = cJSON_AddObjectToObject(d, "summary");
    qn_json_add_str(summary, "description", a->description);
    qn_json_add_str(summary, "startTime", a->start_time);
    qn_json_add_str(summary, "endTime", a->end_time);
    qn_json_add_str(summary, "compromisedEntity", a->compromised_entity);
    qn_json_add_str(summary, "alertUri", a->alert_uri);
    cJSON *key = cJSON_AddObjectToObject(d, "answerKey");
    cJSON_AddStringToObject(key, "alertId", a->id);
    cJSON_AddStringToObject(key, "subscriptionId", a->subscription_id);
    int sev = severity_index(a->severity);
    long secs = cfg->contact.by_severity[sev].deadline_seconds;
    char deadline[QN_RFC3339_LEN];
    qn_time_format_rfc3339(qn_time_epoch_ms() + secs * 1000, deadline);
    cJSON_AddStringToObject(d, "deadline", deadline);
    (void)emit(resp, &ev);
}

static void on_deadline(struct qn_loop *loop, struct qn_loop_timer *timer, void *opaque)
{
    (void)loop;
    (void)timer;
    struct qn_response *resp = opaque;
    if (resp->phase != QN_PHASE_AWAITING_VERDICT) {
        return;
    }
    const struct qn_config *cfg = resp->engine->cfg;
    const char *action = cfg->contact.by_severity[severity_index(resp->alert.severity)].on_timeout;
    QN_LOG_INFO("engine", "alert %s: contact deadline passed; policy %s", resp->alert.id, action);
    count(resp->engine, "quench_contact_deadlines_total", "");
    if (strcmp(action, "mitigate") == 0) {
        start_mitigation(resp, "the owner did not answer before the deadline (policy mitigate)");
    } else if (strcmp(action, "escalate") == 0) {
        resp->phase = QN_PHASE_ESCALATED;
        (void)emit_simple(resp, "quench.response.escalated", "deadline",
                          "the owner did not answer before the deadline (policy escalate)");
    }
}

static void arm_deadline(struct qn_response *resp)
{
    const struct qn_config *cfg = resp->engine->cfg;
    long secs = cfg->contact.by_severity[severity_index(resp->alert.severity)].deadline_seconds;
    if (resp->deadline == NULL &&
        qn_loop_timer_new(resp->engine->loop, on_deadline, resp, &resp->deadline, NULL) != QN_OK) {
        QN_LOG_ERROR("engine", "alert %s: cannot arm the contact deadline", resp->alert.id);
        return;
    }
    qn_loop_timer_arm(resp->deadline, (int64_t)secs * 1000);
}

/* ---- provenance ------------------------------------------------------------------------------ */

static void provenance_done(struct qn_response *resp, enum qn_provenance result, const char *note)
{
    resp->provenance = result;
    qn_free(resp->provenance_note);
    resp->provenance_note = qn_strdup(note);
    QN_LOG_INFO("engine", "alert %s: provenance %s: %s", resp->alert.id,
                result == QN_PROVENANCE_VERIFIED ? "verified" : "failed", note);
    if (result == QN_PROVENANCE_FAILED) {
        escalate(resp, note);
        maybe_close(resp);
        return;
    }
    continue_mitigation(resp);
}

struct provenance_call {
    struct qn_response *resp;
    int attempt; /* 0: subscription-level path, 1: resource-group level */
};

/* Case-insensitive substring search. */
static bool mentions(const char *haystack, const char *needle)
{
    size_t n = needle != NULL ? strlen(needle) : 0;
    if (haystack == NULL || n == 0) {
        return false;
    }
    for (const char *p = haystack; *p != '\0'; p++) {
        if (strncasecmp(p, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

/* Adds a name to a bounded, comma-separated list; past the bound the list ends with "...". */
static void note_name(struct qn_buf *list, const char *name)
{
    if (qn_buf_printf(list, "%s%s", list->len > 0 ? ", " : "", name != NULL ? name : "?") !=
        QN_OK) {
        list->len = list->len > 3 ? list->len - 3 : list->len;
        if (qn_buf_append_str(list, "...") != QN_OK && list->data != NULL) {
            list->data[list->len] = '\0';
        }
    }
}

static bool account_confirmed(const struct qn_account *acc, const char *text)
{
    if (mentions(text, acc->aad_user_id) || mentions(text, acc->upn)) {
        return true;
    }
    /* the API's account entity spells a UPN as name + upnSuffix */
    const char *at = acc->upn != NULL ? strchr(acc->upn, '@') : NULL;
    if (at == NULL || at == acc->upn) {
        return false;
    }
    char local[256];
    size_t n =
        (size_t)(at - acc->upn) < sizeof(local) - 1 ? (size_t)(at - acc->upn) : sizeof(local) - 1;
    memcpy(local, acc->upn, n);
    local[n] = '\0';
    return mentions(text, local) && mentions(text, at + 1);
}

/*
 * Keeps only the accounts and VMs of the Kafka record that the alert read back from the
 * Microsoft.Security API also names; the others are dropped (never touched) and the response will
 * escalate, since a record naming more than the real alert is suspect.
 */
static bool record_names_account(const struct qn_alert *a, const struct qn_account *acc)
{
    for (size_t i = 0; i < a->account_count; i++) {
        const struct qn_account *b = &a->accounts[i];
        if ((acc->aad_user_id != NULL && b->aad_user_id != NULL &&
             strcasecmp(acc->aad_user_id, b->aad_user_id) == 0) ||
            (acc->upn != NULL && b->upn != NULL && strcasecmp(acc->upn, b->upn) == 0)) {
            return true;
        }
    }
    return false;
}

static bool record_names_vm(const struct qn_alert *a, const char *resource_id)
{
    for (size_t i = 0; i < a->vm_count; i++) {
        if (strcasecmp(a->vms[i].resource_id, resource_id) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * The alert read back from the Microsoft.Security API is the source of truth for what to act on:
 * its accounts and VMs replace the ones the Kafka record named. Targets only the record named are
 * left alone and make the response escalate (the record is suspect); targets only the API names
 * are added, so a forged record reusing a real alert's id cannot steer the response away from
 * the real footprint. When the read-back cannot be decoded, the record's targets are kept only
 * where the read-back text names them.
 */
static void confirm_targets(
    struct qn_response *resp, const cJSON *body, const char *text, char *note, size_t note_len)
{
    struct qn_alert *a = &resp->alert;
    struct qn_alert api;
    enum qn_reject_reason reason;
    struct qn_buf dropped;
    qn_buf_init(&dropped, 400);
    if (qn_alert_decode(body, &api, &reason, NULL) == QN_OK) {
        for (size_t i = 0; i < a->account_count; i++) {
            if (!record_names_account(&api, &a->accounts[i])) {
                note_name(&dropped, a->accounts[i].upn != NULL ? a->accounts[i].upn
                                                               : a->accounts[i].aad_user_id);
            }
        }
        for (size_t i = 0; i < a->vm_count; i++) {
            if (!record_names_vm(&api, a->vms[i].resource_id)) {
                note_name(&dropped, a->vms[i].name);
            }
        }
        /* swap the target lists: the API's become the response's */
        struct qn_account *accounts = a->accounts;
        size_t account_count = a->account_count;
        struct qn_vm *vms = a->vms;
        size_t vm_count = a->vm_count;
        a->accounts = api.accounts;
        a->account_count = api.account_count;
        a->vms = api.vms;
        a->vm_count = api.vm_count;
        api.accounts = accounts;
        api.account_count = account_count;
        api.vms = vms;
        api.vm_count = vm_count;
        qn_alert_fini(&api);
    } else {
        size_t kept = 0;
        for (size_t i = 0; i < a->account_count; i++) {
            struct qn_account *acc = &a->accounts[i];
            if (account_confirmed(acc, text)) {
                a->accounts[kept++] = *acc;
                continue;
            }
            note_name(&dropped, acc->upn != NULL ? acc->upn : acc->aad_user_id);
            qn_free(acc->aad_user_id);
            qn_free(acc->upn);
            qn_free(acc->name);
            qn_free(acc->tenant_id);
        }
        a->account_count = kept;
        kept = 0;
        for (size_t i = 0; i < a->vm_count; i++) {
            struct qn_vm *vm = &a->vms[i];
            if (mentions(text, vm->resource_id) ||
                strcasecmp(vm->resource_id, a->resource_id) == 0) {
                a->vms[kept++] = *vm;
                continue;
            }
            note_name(&dropped, vm->name);
            qn_free(vm->resource_id);
            qn_free(vm->name);
            qn_free(vm->os_family);
        }
        a->vm_count = kept;
    }
    if (dropped.len > 0) {
        snprintf(note, note_len,
                 "the Microsoft.Security API confirms the alert but not these targets the record "
                 "named, which are left alone: %s",
                 qn_buf_cstr(&dropped));
        escalate(resp, note);
    } else {
        snprintf(note, note_len,
                 "the Microsoft.Security API returned the alert with the same type and entity; "
                 "its accounts and VMs are the targets");
    }
    qn_buf_fini(&dropped);
}

static void provenance_start_attempt(struct provenance_call *pc);

static void provenance_result(struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct provenance_call *pc = opaque;
    struct qn_response *resp = pc->resp;
    resp->engine->running--;
    resp->running--;
    if (err != NULL && err->code == QN_ERR_NOT_FOUND && pc->attempt == 0 &&
        resp->alert.resource_group != NULL) {
        pc->attempt = 1;
        provenance_start_attempt(pc);
        return;
    }
    qn_free(pc);
    if (err != NULL) {
        provenance_done(resp, QN_PROVENANCE_FAILED,
                        err->code == QN_ERR_NOT_FOUND
                            ? "the Microsoft.Security API does not know this alert"
                            : "the alert could not be read back from the Microsoft.Security API");
        return;
    }
    cJSON *body = cJSON_ParseWithLength(qn_buf_cstr(res->body), res->body->len);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(body, "properties");
    const cJSON *type = cJSON_GetObjectItem(props, "alertType");
    const cJSON *entity = cJSON_GetObjectItem(props, "compromisedEntity");
    const cJSON *idents = cJSON_GetObjectItem(props, "resourceIdentifiers");
    bool type_ok = cJSON_IsString(type) && strcasecmp(type->valuestring, resp->alert.type) == 0;
    bool entity_ok = resp->alert.compromised_entity != NULL && cJSON_IsString(entity) &&
                     strcasecmp(entity->valuestring, resp->alert.compromised_entity) == 0;
    const cJSON *ident = NULL;
    cJSON_ArrayForEach(ident, idents)
    {
        const cJSON *rid = cJSON_GetObjectItem(ident, "azureResourceId");
        entity_ok = entity_ok || (cJSON_IsString(rid) &&
                                  strcasecmp(rid->valuestring, resp->alert.resource_id) == 0);
    }
    if (type_ok && entity_ok) {
        char *text = cJSON_PrintUnformatted(body);
        char note[512];
        confirm_targets(resp, body, text, note, sizeof(note));
        qn_free(text);
        cJSON_Delete(body);
        provenance_done(resp, QN_PROVENANCE_VERIFIED, note);
    } else {
        cJSON_Delete(body);
        provenance_done(resp, QN_PROVENANCE_FAILED,
                        type_ok ? "the alert read back names a different entity"
                                : "the alert read back has a different type");
    }
}

static void provenance_start_attempt(struct provenance_call *pc)
{
    struct qn_response *resp = pc->resp;
    const struct qn_alert *a = &resp->alert;
    char scope[256];
    if (pc->attempt == 0) {
        snprintf(scope, sizeof(scope),
                 "/subscriptions/%s/providers/Microsoft.Security/locations/%s", a->subscription_id,
                 a->location);
    } else {
        snprintf(scope, sizeof(scope),
                 "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Security/locations/%s",
                 a->subscription_id, a->resource_group, a->location);
    }
    struct qn_buf path;
    qn_buf_init(&path, 4096);
    struct qn_error err = {0};
    char suffix[600];
    /* the alert name is one path segment: qn_azure_arm_path percent-encodes the id's segments */
    snprintf(suffix, sizeof(suffix), "%s/alerts/%s", scope, a->id);
    qn_err_t rc = qn_azure_arm_path(&path, suffix, 0, NULL, "2022-01-01", &err);
    struct qn_azure_request req = {
        .audience = QN_AZURE_ARM, .method = "GET", .target = qn_buf_cstr(&path)};
    if (rc == QN_OK) {
        rc = qn_azure_request(resp->engine->azure, &req, provenance_result, pc, NULL, &err);
    }
    qn_buf_fini(&path);
    if (rc != QN_OK) {
        qn_free(pc);
        provenance_done(resp, QN_PROVENANCE_FAILED,
                        "the alert could not be addressed for read-back");
        return;
    }
    resp->engine->running++;
    resp->running++;
}

static void start_provenance(struct qn_response *resp)
{
    const struct qn_config *cfg = resp->engine->cfg;
    if (!cfg->policy.provenance) {
        resp->provenance = QN_PROVENANCE_VERIFIED;
        return;
    }
    if (resp->provenance != QN_PROVENANCE_UNKNOWN) {
        return;
    }
    if (resp->alert.location == NULL) {
        resp->provenance = QN_PROVENANCE_FAILED;
        resp->provenance_note = qn_strdup("the alert names no location to read it back from");
        escalate(resp, resp->provenance_note);
        return;
    }
    struct provenance_call *pc = qn_calloc(1, sizeof(*pc));
    if (pc == NULL) {
        resp->provenance = QN_PROVENANCE_FAILED;
        return;
    }
    pc->resp = resp;
    resp->provenance = QN_PROVENANCE_CHECKING;
    provenance_start_attempt(pc);
}

/* ---- phases ------------------------------------------------------------------------------------
 */

static void propose(struct qn_response *resp, int index)
{
    if (index >= 0) {
        (void)qn_response_emit_task(resp, resp->tasks[index], "quench.task.proposed");
    }
}

static const char *resource_kind(const char *resource_id)
{
    struct qn_resid rid;
    if (qn_resid_parse(resource_id, 0, &rid, NULL) != QN_OK) {
        return "resource";
    }
    if (qn_resid_is_subscription(&rid)) {
        return "subscription";
    }
    if (qn_resid_is_vm(&rid)) {
        return "vm";
    }
    return rid.provider[0] == '\0' ? "resource_group" : "resource";
}

static void start_contact(struct qn_response *resp)
{
    resp->phase = QN_PHASE_CONTACTING;
    int owner = add_task(resp, QN_TASK_RESOLVE_OWNER, resource_kind(resp->alert.resource_id),
                         resp->alert.resource_id, resp->alert.compromised_entity,
                         "find the resource owner to ask whether the activity was expected");
    if (owner < 0) {
        return;
    }
    qn_task_add_evidence(resp->tasks[owner], "alert", "AzureResourceId", resp->alert.resource_id,
                         NULL);
    propose(resp, owner);
    schedule(resp);
}

static void start_dismiss(struct qn_response *resp)
{
    if (resp->deadline != NULL) {
        qn_loop_timer_disarm(resp->deadline);
    }
    resp->phase = QN_PHASE_DISMISSING;
    int t = add_task(resp, QN_TASK_DISMISS_ALERT, "alert", resp->alert.id, resp->alert.display_name,
                     "the owner said the activity was expected: dismiss the alert");
    if (t >= 0) {
        qn_task_add_evidence(resp->tasks[t], "alert", "SystemAlertId", resp->alert.id,
                             "verdict: expected");
    }
    propose(resp, t);
    schedule(resp);
    maybe_close(resp);
}

static void continue_mitigation(struct qn_response *resp)
{
    if (resp->finished || resp->cancel_requested) {
        return;
    }
    const char *why = resp->mitigation_reason != NULL ? resp->mitigation_reason : "";
    int ev =
        add_task(resp, QN_TASK_COLLECT_EVIDENCE, "subscription", resp->alert.subscription_id, NULL,
                 "read the activity log, directory audits, role assignments, runbooks, "
                 "resources and alerts that decide what is unfamiliar");
    if (ev >= 0) {
        qn_task_add_evidence(resp->tasks[ev], "alert", "StartTimeUtc", resp->alert.start_time, why);
        if (resp->provenance == QN_PROVENANCE_VERIFIED && resp->provenance_note != NULL) {
            qn_task_add_evidence(resp->tasks[ev], "arm", "provenance", NULL, resp->provenance_note);
        }
    }
    propose(resp, ev);
    schedule(resp);
    maybe_close(resp);
}

/*
 * Mitigation starts with provenance: the alert is read back from the Microsoft.Security API, and
 * only the accounts and VMs that alert confirms are acted on. A record the API does not know, or
 * whose type or entity differs, leads to an escalation and no task at all: a forged Kafka record
 * can neither delete nor contain anything.
 */
static void start_mitigation(struct qn_response *resp, const char *why)
{
    if (resp->deadline != NULL) {
        qn_loop_timer_disarm(resp->deadline);
    }
    resp->phase = QN_PHASE_MITIGATING;
    resp->mitigation_reason = why;
    QN_LOG_INFO("engine", "alert %s: mitigating: %s", resp->alert.id, why);
    start_provenance(resp);
    if (resp->provenance == QN_PROVENANCE_CHECKING) {
        return; /* provenance_done continues */
    }
    if (resp->provenance == QN_PROVENANCE_FAILED) {
        maybe_close(resp);
        return;
    }
    continue_mitigation(resp);
}

/* After collect_evidence: the containment and eradication tasks the alert and evidence justify. */
static void plan_mitigation(struct qn_response *resp, int evidence_task)
{
    const struct qn_alert *a = &resp->alert;
    int first_new = resp->task_count;
    for (size_t i = 0; i < a->account_count; i++) {
        const struct qn_account *acc = &a->accounts[i];
        const char *target = acc->aad_user_id != NULL ? acc->aad_user_id : acc->upn;
        const char *name = acc->upn != NULL ? acc->upn : acc->name;
        int disable = add_task(resp, QN_TASK_DISABLE_USER, "user", target, name,
                               "the alert names this account as the actor: block its sign-in");
        int revoke = add_task(resp, QN_TASK_REVOKE_SESSIONS, "user", target, name,
                              "invalidate the account's refresh tokens and sessions");
        int reset = add_task(resp, QN_TASK_RESET_CREDENTIALS, "user", target, name,
                             "replace the password with an unknown random secret");
        int ids[] = {disable, revoke, reset};
        for (int k = 0; k < 3; k++) {
            if (ids[k] >= 0) {
                qn_task_add_evidence(resp->tasks[ids[k]], "alert", "compromised account",
                                     name != NULL ? name : target, acc->source);
                depends_on(resp, ids[k], evidence_task);
            }
        }
        depends_on(resp, revoke, disable);
        depends_on(resp, reset, disable);
    }
    for (size_t i = 0; i < a->vm_count; i++) {
        const struct qn_vm *vm = &a->vms[i];
        int pw = add_task(resp, QN_TASK_VM_RESET_PASSWORDS, "vm", vm->resource_id, vm->name,
                          "change the passwords of the VM's local users through run command");
        int scan = add_task(resp, QN_TASK_VM_ANTIMALWARE_SCAN, "vm", vm->resource_id, vm->name,
                            "run a full antimalware scan through run command");
        int reimage = add_task(resp, QN_TASK_VM_REIMAGE, "vm", vm->resource_id, vm->name,
                               "reimage the VM from a malware-free source");
        int ids[] = {pw, scan, reimage};
        for (int k = 0; k < 3; k++) {
            if (ids[k] >= 0) {
                qn_task_add_evidence(resp->tasks[ids[k]], "alert", "VM", vm->resource_id, NULL);
                depends_on(resp, ids[k], evidence_task);
            }
        }
        depends_on(resp, scan, pw); /* one VM runs one operation at a time */
        depends_on(resp, reimage, scan);
        depends_on(resp, reimage, pw);
    }
    struct qn_finding *findings = qn_calloc(MAX_FINDINGS, sizeof(*findings));
    int n = findings != NULL
                ? qn_evidence_findings(resp->evidence, a, resp->engine->cfg, findings, MAX_FINDINGS)
                : 0;
    for (int i = 0; i < n; i++) {
        struct qn_finding *f = &findings[i];
        enum qn_task_kind kind;
        if (qn_task_kind_parse(f->kind, &kind) == 0) {
            int t = add_task(resp, kind, f->target_type, f->target_id, f->target_name, f->reason);
            if (t >= first_new && resp->tasks[t]->state == QN_TASK_PENDING) {
                const cJSON *item = NULL;
                cJSON_ArrayForEach(item, f->evidence)
                {
                    cJSON_AddItemToArray(resp->tasks[t]->evidence, cJSON_Duplicate(item, 1));
                }
                depends_on(resp, t, evidence_task);
            }
        }
        qn_finding_fini(f);
    }
    qn_free(findings);
    bool destructive_planned = false;
    for (int i = first_new; i < resp->task_count; i++) {
        struct qn_task *t = resp->tasks[i];
        /* a VM is reimaged last, after the users and the subscription are contained */
        if (t->kind == QN_TASK_VM_REIMAGE) {
            for (int j = first_new; j < resp->task_count; j++) {
                if (resp->tasks[j]->kind == QN_TASK_DISABLE_USER) {
                    depends_on(resp, i, j);
                }
            }
        }
        propose(resp, i);
        destructive_planned =
            destructive_planned || (qn_task_kind_writes(t->kind) && t->mode != QN_MODE_OBSERVE);
    }
    (void)destructive_planned;
}

/* Decrements the running counts of a task that ran (called from qn_task_finish paths). */
static void task_stopped(struct qn_response *resp)
{
    if (resp->running > 0) {
        resp->running--;
    }
    if (resp->engine->running > 0) {
        resp->engine->running--;
    }
}

void qn_engine_task_finished(struct qn_response *resp, struct qn_task *task)
{
    struct qn_engine *e = resp->engine;
    if (task->started) {
        task->started = false;
        task_stopped(resp);
    }
    char labels[128];
    snprintf(labels, sizeof(labels), "kind=\"%s\",result=\"%s\"", qn_task_kind_name(task->kind),
             task->state == QN_TASK_SUCCEEDED ? "succeeded"
             : task->state == QN_TASK_FAILED  ? "failed"
                                              : "skipped");
    count(e, "quench_tasks_total", labels);
    if (task->kind == QN_TASK_RESOLVE_OWNER) {
        cJSON_Delete(resp->owner);
        resp->owner = task->detail != NULL ? cJSON_Duplicate(task->detail, 1) : NULL;
        if (resp->phase == QN_PHASE_CONTACTING) {
            emit_contact(resp);
            resp->phase = QN_PHASE_AWAITING_VERDICT;
            arm_deadline(resp);
        }
    } else if (task->kind == QN_TASK_COLLECT_EVIDENCE) {
        cJSON_Delete(resp->evidence);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(task->detail, "evidence");
        resp->evidence = ev != NULL ? cJSON_Duplicate(ev, 1) : NULL;
        if (task->state == QN_TASK_SUCCEEDED && !resp->cancel_requested) {
            plan_mitigation(resp, find_task(resp, task->id));
        }
    } else if (task->kind == QN_TASK_DISMISS_ALERT && task->state == QN_TASK_SUCCEEDED) {
        struct qn_outcome ev;
        if (qn_outcome_init(&ev, "quench.alert.dismissed", resp->alert.id, "dismissed",
                            resp->alert.id) == QN_OK) {
            qn_response_add_alert_fields(resp, ev.data, qn_mode_name(task->mode));
            cJSON_AddItemToObject(ev.data, "requests", cJSON_Duplicate(task->requests, 1));
            (void)emit(resp, &ev);
        }
    }
    schedule(resp);
    maybe_close(resp);
}

static void
count_states(const struct qn_response *resp, int *ok, int *failed, int *skipped, int *open)
{
    *ok = *failed = *skipped = *open = 0;
    for (int i = 0; i < resp->task_count; i++) {
        switch (resp->tasks[i]->state) {
        case QN_TASK_SUCCEEDED:
            (*ok)++;
            break;
        case QN_TASK_FAILED:
            (*failed)++;
            break;
        case QN_TASK_SKIPPED:
            (*skipped)++;
            break;
        default:
            (*open)++;
            break;
        }
    }
}

static void maybe_close(struct qn_response *resp)
{
    if (resp->finished ||
        (resp->phase != QN_PHASE_DISMISSING && resp->phase != QN_PHASE_MITIGATING)) {
        return;
    }
    int ok, failed, skipped, open;
    count_states(resp, &ok, &failed, &skipped, &open);
    if (open > 0 || resp->running > 0) {
        return;
    }
    resp->finished = true;
    if (resp->escalated) {
        resp->phase = QN_PHASE_ESCALATED;
        (void)emit_simple(resp, "quench.response.escalated", "final",
                          resp->escalation_note != NULL
                              ? resp->escalation_note
                              : "a blast-radius cap was reached; the remaining actions need a "
                                "person");
        count(resp->engine, "quench_responses_total", "phase=\"escalated\"");
        return;
    }
    struct qn_outcome ev;
    const char *type = failed > 0 ? "quench.response.failed" : "quench.response.closed";
    if (qn_outcome_init(&ev, type, resp->alert.id, "closed", resp->alert.id) != QN_OK) {
        return;
    }
    resp->phase = failed > 0 ? QN_PHASE_FAILED : QN_PHASE_CLOSED;
    qn_response_add_alert_fields(resp, ev.data, response_mode(resp));
    cJSON_AddStringToObject(ev.data, "phase", qn_phase_name(resp->phase));
    char reason[160];
    if (failed > 0) {
        snprintf(reason, sizeof(reason), "%d task(s) failed; see their quench.task.failed events",
                 failed);
    } else {
        snprintf(reason, sizeof(reason), "%s: %d task(s) succeeded, %d skipped",
                 resp->verdict_seen ? "response complete" : "response complete after the deadline",
                 ok, skipped);
    }
    cJSON_AddStringToObject(ev.data, "reason", reason);
    cJSON *tasks = cJSON_AddObjectToObject(ev.data, "tasks");
    cJSON_AddNumberToObject(tasks, "proposed", resp->task_count);
    cJSON_AddNumberToObject(tasks, "succeeded", ok);
    cJSON_AddNumberToObject(tasks, "failed", failed);
    cJSON_AddNumberToObject(tasks, "skipped", skipped);
    (void)emit(resp, &ev);
    char labels[64];
    snprintf(labels, sizeof(labels), "phase=\"%s\"", qn_phase_name(resp->phase));
    count(resp->engine, "quench_responses_total", labels);
}

/* ---- responses --------------------------------------------------------------------------------
 */

static void free_response(struct qn_response *resp)
{
    for (int i = 0; i < resp->task_count; i++) {
        free_task(resp->tasks[i]);
    }
    qn_loop_timer_free(resp->deadline);
    cJSON_Delete(resp->evidence);
    cJSON_Delete(resp->owner);
    qn_free(resp->provenance_note);
    qn_free(resp->escalation_note);
    qn_alert_fini(&resp->alert);
    qn_free(resp);
}

static struct qn_response *find_response(struct qn_engine *e, const char *alert_id)
{
    for (size_t i = 0; i < e->count; i++) {
        if (strcmp(e->responses[i]->alert.id, alert_id) == 0) {
            return e->responses[i];
        }
    }
    return NULL;
}

/* Frees finished responses with nothing in flight (keeps their ids for repeat detection?
 * repeats of a closed alert are harmless: their events have the same ids). */
static void reap(struct qn_engine *e)
{
    size_t kept = 0;
    for (size_t i = 0; i < e->count; i++) {
        struct qn_response *r = e->responses[i];
        bool done = (r->finished || r->phase == QN_PHASE_CANCELLED) && r->running == 0;
        if (done && e->count > 1024) {
            free_response(r);
        } else {
            e->responses[kept++] = r;
        }
    }
    e->count = kept;
}

qn_err_t qn_engine_alert(struct qn_engine *e, const cJSON *record, const struct qn_emitter *now)
{
    struct qn_alert alert;
    enum qn_reject_reason reason;
    struct qn_error err = {0};
    qn_err_t rc = qn_alert_decode(record, &alert, &reason, &err);
    if (rc != QN_OK) {
        if (rc == QN_ERR_NOMEM) {
            return rc;
        }
        QN_LOG_ERROR("engine", "ignoring invalid alert on the work topic: %s", err.msg);
        count(e, "quench_work_records_total", "kind=\"alert\",result=\"invalid\"");
        return QN_OK;
    }
    e->now = now;
    struct qn_response *resp = find_response(e, alert.id);
    bool upstream_closed =
        alert.status == QN_ALERT_STATUS_DISMISSED || alert.status == QN_ALERT_STATUS_RESOLVED;
    if (resp != NULL) {
        if (upstream_closed && !resp->cancel_requested && !resp->finished) {
            resp->cancel_requested = true;
            if (resp->deadline != NULL) {
                qn_loop_timer_disarm(resp->deadline);
            }
            resp->phase = QN_PHASE_CANCELLED;
            struct qn_outcome ev;
            const char *status = qn_alert_status_name(alert.status);
            if (qn_outcome_init(&ev, "quench.response.cancelled", alert.id, status, alert.id) ==
                QN_OK) {
                qn_response_add_alert_fields(resp, ev.data, response_mode(resp));
                cJSON_AddStringToObject(ev.data, "status", status);
                cJSON_AddStringToObject(ev.data, "reason",
                                        alert.status == QN_ALERT_STATUS_DISMISSED
                                            ? "the alert was dismissed upstream"
                                            : "the alert was resolved upstream");
                (void)emit(resp, &ev);
            }
            count(e, "quench_responses_total", "phase=\"cancelled\"");
        } else {
            count(e, "quench_work_records_total", "kind=\"alert\",result=\"repeat\"");
        }
        qn_alert_fini(&alert);
        e->now = NULL;
        return QN_OK;
    }
    if (upstream_closed) {
        /* never seen active: nothing to cancel but say so */
        rc = qn_plan_cancel(&alert, now);
        qn_alert_fini(&alert);
        e->now = NULL;
        return rc;
    }
    reap(e);
    if (e->count == e->cap) {
        size_t cap = e->cap == 0 ? 64 : e->cap * 2;
        struct qn_response **grown = qn_realloc(e->responses, cap * sizeof(*grown));
        if (grown == NULL) {
            qn_alert_fini(&alert);
            e->now = NULL;
            return QN_ERR_NOMEM;
        }
        e->responses = grown;
        e->cap = cap;
    }
    resp = qn_calloc(1, sizeof(*resp));
    if (resp == NULL) {
        qn_alert_fini(&alert);
        e->now = NULL;
        return QN_ERR_NOMEM;
    }
    resp->engine = e;
    resp->alert = alert; /* ownership moves */
    resp->phase = QN_PHASE_RECEIVED;
    e->responses[e->count++] = resp;
    count(e, "quench_work_records_total", "kind=\"alert\",result=\"started\"");
    start_contact(resp);
    e->now = NULL;
    return QN_OK;
}

qn_err_t qn_engine_verdict(struct qn_engine *e, const cJSON *verdict, const struct qn_emitter *now)
{
    const cJSON *alert_id = cJSON_GetObjectItemCaseSensitive(verdict, "alertId");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(verdict, "verdict");
    const cJSON *approvals = cJSON_GetObjectItemCaseSensitive(verdict, "approvals");
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(verdict, "decidedBy");
    struct qn_response *resp =
        cJSON_IsString(alert_id) ? find_response(e, alert_id->valuestring) : NULL;
    if (resp == NULL) {
        QN_LOG_WARN("engine", "verdict for unknown alert %s ignored",
                    cJSON_IsString(alert_id) ? alert_id->valuestring : "?");
        count(e, "quench_work_records_total", "kind=\"verdict\",result=\"unknown_alert\"");
        return QN_OK;
    }
    e->now = now;
    char disc[128];
    snprintf(disc, sizeof(disc), "%s/%s", cJSON_IsString(value) ? value->valuestring : "approvals",
             cJSON_IsString(by) ? by->valuestring : "");
    struct qn_outcome ev;
    if (qn_outcome_init(&ev, "quench.verdict.received", resp->alert.id, disc, resp->alert.id) ==
        QN_OK) {
        qn_response_add_alert_fields(resp, ev.data, response_mode(resp));
        if (cJSON_IsString(value)) {
            cJSON_AddStringToObject(ev.data, "verdict", value->valuestring);
        }
        if (approvals != NULL) {
            cJSON_AddItemToObject(ev.data, "approvals", cJSON_Duplicate(approvals, 1));
        }
        cJSON_AddStringToObject(ev.data, "decidedBy", cJSON_IsString(by) ? by->valuestring : "");
        (void)emit(resp, &ev);
    }
    count(e, "quench_work_records_total", "kind=\"verdict\",result=\"applied\"");
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, approvals)
    {
        int t = cJSON_IsString(item) ? find_task(resp, item->valuestring) : -1;
        if (t >= 0) {
            resp->tasks[t]->approved = true;
            if (resp->tasks[t]->state == QN_TASK_AWAITING_APPROVAL) {
                resp->tasks[t]->state = QN_TASK_PENDING;
            }
        }
    }
    bool waiting = resp->phase == QN_PHASE_AWAITING_VERDICT || resp->phase == QN_PHASE_ESCALATED ||
                   resp->phase == QN_PHASE_CONTACTING;
    if (cJSON_IsString(value) && !resp->verdict_seen && waiting && !resp->finished) {
        resp->verdict_seen = true;
        if (strcmp(value->valuestring, "expected") == 0) {
            start_dismiss(resp);
        } else {
            start_mitigation(resp, "the owner said the activity was not expected");
        }
    } else {
        schedule(resp);
        maybe_close(resp);
    }
    e->now = NULL;
    return QN_OK;
}

size_t qn_engine_open_responses(const struct qn_engine *e)
{
    size_t open = 0;
    for (size_t i = 0; i < e->count; i++) {
        open += !e->responses[i]->finished && e->responses[i]->phase != QN_PHASE_CANCELLED;
    }
    return open;
}

int qn_engine_running_tasks(const struct qn_engine *e)
{
    return e->running;
}

/* ---- life cycle -------------------------------------------------------------------------------
 */

static qn_err_t make_azure(struct qn_engine *e, struct qn_error *err)
{
    const struct qn_config *cfg = e->cfg;
    struct qn_http_config hcfg;
    qn_http_config_default(&hcfg);
    hcfg.ca_file = cfg->azure.ca_file[0] != '\0' ? cfg->azure.ca_file : NULL;
    hcfg.timeout_ms = cfg->azure.request_timeout_ms;
    hcfg.metrics = e->metrics;
    qn_err_t rc = qn_http_new(e->loop, &hcfg, &e->http, err);
    if (rc != QN_OK) {
        return rc;
    }
    struct qn_azure_config acfg;
    qn_azure_config_default(&acfg);
    (void)qn_azure_config_from_env(&acfg);
    if (qn_azure_cloud_parse(cfg->azure.cloud, &acfg.cloud) != QN_OK) {
        return qn_error_set(err, QN_ERR_CONFIG, "config key 'azure.cloud': unknown cloud");
    }
    const char *cred = cfg->azure.credential;
    acfg.credential = strcmp(cred, "certificate") == 0 ? QN_AZURE_CRED_CERTIFICATE
                      : strcmp(cred, "workload") == 0  ? QN_AZURE_CRED_WORKLOAD
                      : strcmp(cred, "managed") == 0   ? QN_AZURE_CRED_MANAGED
                                                       : QN_AZURE_CRED_SECRET;
#define OVERRIDE(field, value) \
    if ((value)[0] != '\0') {  \
        acfg.field = (value);  \
    }
    OVERRIDE(tenant_id, cfg->azure.tenant_id);
    OVERRIDE(client_id, cfg->azure.client_id);
    OVERRIDE(certificate_file, cfg->azure.certificate_file);
    OVERRIDE(private_key_file, cfg->azure.private_key_file);
    OVERRIDE(federated_token_file, cfg->azure.federated_token_file);
    OVERRIDE(endpoints.authority, cfg->azure.endpoints.authority);
    OVERRIDE(endpoints.arm, cfg->azure.endpoints.arm);
    OVERRIDE(endpoints.graph, cfg->azure.endpoints.graph);
    OVERRIDE(endpoints.imds, cfg->azure.endpoints.imds);
#undef OVERRIDE

    static const enum qn_ratelimit_class classes[4] = {QN_RATELIMIT_READ, QN_RATELIMIT_WRITE,
                                                       QN_RATELIMIT_DELETE, QN_RATELIMIT_GRAPH};

    for (int i = 0; i < 4; i++) {
        acfg.ratelimit.classes[classes[i]].burst = (double)cfg->azure.ratelimit[i].burst;
        acfg.ratelimit.classes[classes[i]].refill_per_sec =
            (double)cfg->azure.ratelimit[i].per_second;
    }
    acfg.ratelimit.metrics = e->metrics;
    char *secret = NULL;
    if (acfg.credential == QN_AZURE_CRED_SECRET) {
        FILE *f = cfg->azure.client_secret_file[0] != '\0'
                      ? fopen(cfg->azure.client_secret_file, "rb")
                      : NULL;
        if (f == NULL) {
            return qn_error_set(
                err, QN_ERR_CONFIG,
                "config key 'azure.client_secret_file': cannot read the secret file");
        }
        secret = qn_calloc(1, 4097);
        size_t n = secret != NULL ? fread(secret, 1, 4096, f) : 0;
        fclose(f);
        while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r')) {
            secret[--n] = '\0';
        }
        acfg.client_secret = secret;
    }
    rc = qn_azure_new(e->http, &acfg, &e->azure, err);
    qn_free_secret(secret);
    return rc;
}

qn_err_t qn_engine_new(struct qn_loop *loop,
                       const struct qn_config *cfg,
                       struct qn_metrics *metrics,
                       const struct qn_emitter *emitter,
                       struct qn_engine **out,
                       struct qn_error *err)
{
    struct qn_engine *e = qn_calloc(1, sizeof(*e));
    if (e == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    }
    e->loop = loop;
    e->cfg = cfg;
    e->metrics = metrics;
    e->emitter = *emitter;
    qn_err_t rc = make_azure(e, err);
    if (rc != QN_OK) {
        qn_engine_free(e);
        return rc;
    }
    *out = e;
    return QN_OK;
}

void qn_engine_free(struct qn_engine *e)
{
    if (e == NULL) {
        return;
    }
    qn_azure_free(e->azure); /* cancels calls: no callbacks */
    for (size_t i = 0; i < e->count; i++) {
        free_response(e->responses[i]);
    }
    qn_free(e->responses);
    qn_http_free(e->http);
    qn_free(e);
}
