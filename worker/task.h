/*
 * task.h - one response task (DESIGN.md's task table) and the API its implementation uses.
 *
 * A task is a reconciler: check the current state, act only on the difference, verify. Each kind
 * is implemented in worker/tasks/<family>.c as a `run` function that starts asynchronous Azure
 * calls with qn_task_call and ends, exactly once, with qn_task_finish. The engine runs tasks as a
 * DAG on the event loop; a task starts when its dependencies have succeeded (or were skipped).
 *
 * Safety: a task must call qn_task_may_write immediately before every write it sends. The engine
 * has already checked the mode (observe/approve/enforce), the kill switch, the scope and the
 * blast-radius caps when the task started, but qn_task_may_write checks again (the kill switch
 * may have been thrown meanwhile), checks provenance, and counts the write against the caps.
 * Protected principals and tags are checked with qn_task_protected_principal and
 * qn_task_protected_tags from the task's check step, on what it read from Azure.
 *
 * Everything a task learns goes into its event: evidence (what justified it), requests (the
 * Azure calls, with their request ids, added by qn_task_call), undo data, and detail. No secret
 * may ever be put into a task's JSON.
 *
 * Ownership: the engine owns tasks and frees them with the response. cJSON members are owned by
 * the task. `priv` belongs to the implementation, which must free it before qn_task_finish.
 */
#ifndef QN_TASK_H
#define QN_TASK_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "alert.h"
#include "config.h"
#include "qn/azure_auth.h"
#include "qn/crypto.h"
#include "qn/err.h"
#include "qn/http.h"
#include "task_kind.h"

struct qn_response;

enum qn_task_state {
    QN_TASK_PENDING,           /* waiting for dependencies */
    QN_TASK_AWAITING_APPROVAL, /* approve mode: waiting for a verdict that names it */
    QN_TASK_RUNNING,
    QN_TASK_SUCCEEDED,
    QN_TASK_FAILED,
    QN_TASK_SKIPPED, /* nothing to do, protected, out of scope, or observe mode */
};

#define QN_TASK_MAX_DEPS 8

struct qn_task {
    struct qn_response *resp; /* the response it belongs to (borrowed) */
    char id[QN_ID_HEX_LEN + 1];
    enum qn_task_kind kind;
    char *target_type; /* user | subscription | resource_group | vm | resource | alert |
                          role_assignment | runbook */
    char *target_id;
    char *target_name; /* may be NULL */
    enum qn_mode mode; /* effective mode */
    enum qn_task_state state;
    int deps[QN_TASK_MAX_DEPS]; /* indices of tasks in the response */
    int dep_count;
    char *reason;    /* why the task exists */
    cJSON *evidence; /* array of {source, field?, value?, note?} */
    cJSON *requests; /* array of {method, url, status, requestId?, correlationId?} */
    cJSON *undo;     /* object, or NULL when the action cannot be undone */
    cJSON *detail;   /* object, or NULL: extra data for the event (e.g. exported runbook) */
    char *message;   /* how it ended, for the event */
    int attempts;
    bool approved;
    bool wrote;   /* a write was sent (counts against the caps) */
    bool started; /* set by the engine while the task's run is in flight */
    void *priv;
};

/* What a task implementation provides. */
struct qn_task_ops {
    enum qn_task_kind kind;
    /* Starts check -> act -> verify. Must end, now or later, with exactly one qn_task_finish. */
    void (*run)(struct qn_task *task);
};

/* @returns the ops for @p kind, or NULL when the kind is not implemented. */
const struct qn_task_ops *qn_task_ops_for(enum qn_task_kind kind);

/* ---- what implementations may read ---- */

const struct qn_alert *qn_task_alert(const struct qn_task *task);
const struct qn_config *qn_task_config(const struct qn_task *task);

/* The evidence collected by collect_evidence (NULL before it ran); see evidence.h. */
const cJSON *qn_task_evidence(const struct qn_task *task);

/* ---- Azure calls ---- */

/*
 * Completion of a task's call. @p res is valid during the call only (take its body with
 * qn_buf_detach if needed); @p err is NULL on success (2xx). A 404 arrives as
 * err->code == QN_ERR_NOT_FOUND, which reconcilers usually treat as "already gone".
 */
typedef void (*qn_task_call_fn)(struct qn_task *task,
                                struct qn_http_result *res,
                                const struct qn_error *err,
                                void *opaque);

/*
 * @brief Sends one ARM or Graph operation for @p task and records it in task->requests.
 * @param target a path built with qn_azure_arm_path / qn_azure_graph_path (ids strictly parsed),
 *        or a same-origin absolute URL (e.g. a nextLink).
 * @param body NULL, or JSON text. It is not recorded (it may hold a secret).
 * @param flags QN_HTTP_CALL_LRO, QN_HTTP_CALL_PAGED.
 * @returns QN_OK, or an error (then @p fn is not called and the caller should finish the task).
 */
QN_NODISCARD qn_err_t qn_task_call(struct qn_task *task,
                                   enum qn_azure_audience audience,
                                   const char *method,
                                   const char *target,
                                   const char *body,
                                   unsigned flags,
                                   qn_task_call_fn fn,
                                   void *opaque);

/* ---- policy ---- */

/*
 * @brief Asks permission for one write, immediately before sending it. Checks the kill switch,
 *        dry-run, scope, caps and (for destructive kinds) provenance; counts the write.
 * @returns true if the write may be sent; false with @p why set (static text) otherwise, and the
 *          task must then finish as QN_TASK_SKIPPED with that reason (or the engine escalates).
 */
bool qn_task_may_write(struct qn_task *task, const char **why);

/* @returns true (and @p why) if the principal (object id or UPN) is on the protected list. */
bool qn_task_protected_principal(const struct qn_task *task,
                                 const char *principal,
                                 const char **why);

/* @returns true (and @p why) if @p tags (a JSON object name -> value, may be NULL) match a
 *          protected tag ("name" or "name=value", case-insensitive names). */
bool qn_task_protected_tags(const struct qn_task *task, const cJSON *tags, const char **why);

/* ---- recording ---- */

/* Appends {source, field, value, note} (NULL members omitted) to task->evidence. */
void qn_task_add_evidence(struct qn_task *task,
                          const char *source,
                          const char *field,
                          const char *value,
                          const char *note);

/* Sets (replacing) task->undo; takes ownership of @p undo. */
void qn_task_set_undo(struct qn_task *task, cJSON *undo);

/* Adds @p item (taken) under @p name in task->detail. */
void qn_task_add_detail(struct qn_task *task, const char *name, cJSON *item);

/*
 * @brief Ends the task: SUCCEEDED, FAILED or SKIPPED, with a human-readable @p message (copied).
 *        Publishes quench.task.succeeded|failed|skipped and lets the engine go on. The task must
 *        not be touched afterwards.
 */
void qn_task_finish(struct qn_task *task, enum qn_task_state state, const char *message);

#endif
