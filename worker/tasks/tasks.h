/*
 * tasks.h - the registry of task implementations, one `struct qn_task_ops` per kind, defined in
 * worker/tasks/<family>.c: owner.c (resolve_owner, dismiss_alert), evidence.c
 * (collect_evidence), users.c, subscription.c, vm.c. A kind whose ops are not linked in is
 * reported as not implemented (its task fails with that message); nothing is faked.
 */
#ifndef QN_TASKS_H
#define QN_TASKS_H

#include "task.h"

#define QN_TASK_OPS_DECL(name) \
    extern const struct qn_task_ops qn_task_ops_##name __attribute__((weak))

QN_TASK_OPS_DECL(resolve_owner);
QN_TASK_OPS_DECL(dismiss_alert);
QN_TASK_OPS_DECL(collect_evidence);
QN_TASK_OPS_DECL(disable_user);
QN_TASK_OPS_DECL(revoke_sessions);
QN_TASK_OPS_DECL(reset_credentials);
QN_TASK_OPS_DECL(delete_user);
QN_TASK_OPS_DECL(remove_role_assignment);
QN_TASK_OPS_DECL(remove_runbook);
QN_TASK_OPS_DECL(delete_resource);
QN_TASK_OPS_DECL(vm_reset_passwords);
QN_TASK_OPS_DECL(vm_antimalware_scan);
QN_TASK_OPS_DECL(vm_reimage);

#undef QN_TASK_OPS_DECL

#endif
