/*
 * task_kind.h - the response task kinds of DESIGN.md's task table, their families and default
 * modes. One table, used by the planner, the policy and the configuration.
 */
#ifndef QN_TASK_KIND_H
#define QN_TASK_KIND_H

enum qn_task_kind {
    QN_TASK_RESOLVE_OWNER,
    QN_TASK_DISMISS_ALERT,
    QN_TASK_COLLECT_EVIDENCE,
    QN_TASK_DISABLE_USER,
    QN_TASK_REVOKE_SESSIONS,
    QN_TASK_RESET_CREDENTIALS,
    QN_TASK_DELETE_USER,
    QN_TASK_REMOVE_ROLE_ASSIGNMENT,
    QN_TASK_REMOVE_RUNBOOK,
    QN_TASK_DELETE_RESOURCE,
    QN_TASK_VM_RESET_PASSWORDS,
    QN_TASK_VM_ANTIMALWARE_SCAN,
    QN_TASK_VM_REIMAGE,
    QN_TASK_KIND__COUNT
};

enum qn_mode {
    QN_MODE_OBSERVE,
    QN_MODE_APPROVE,
    QN_MODE_ENFORCE,
};

/* @returns the snake_case name used in configuration and events, e.g. "delete_user". */
const char *qn_task_kind_name(enum qn_task_kind kind);

/* @returns the family: "owner", "evidence", "users", "subscription" or "vm". */
const char *qn_task_kind_family(enum qn_task_kind kind);

/* @returns the mode a kind has when configuration says nothing. */
enum qn_mode qn_task_kind_default_mode(enum qn_task_kind kind);

/* @returns true if the task writes to Azure (everything but resolve_owner, collect_evidence). */
int qn_task_kind_writes(enum qn_task_kind kind);

/* @returns 0 and sets *out, or -1 if @p name is not a task kind. */
int qn_task_kind_parse(const char *name, enum qn_task_kind *out);

const char *qn_mode_name(enum qn_mode mode);

/* @returns 0 and sets *out, or -1 if @p name is not observe|approve|enforce. */
int qn_mode_parse(const char *name, enum qn_mode *out);

#endif
