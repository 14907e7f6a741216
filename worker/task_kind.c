/*
 * task_kind.c - names, families and default modes of the response task kinds.
 */
#include "task_kind.h"

#include <string.h>

struct kind_info {
    const char *name;
    const char *family;
    enum qn_mode default_mode;
    int writes;
};

static const struct kind_info kinds[QN_TASK_KIND__COUNT] = {
    [QN_TASK_RESOLVE_OWNER] = {"resolve_owner", "owner", QN_MODE_ENFORCE, 0},
    [QN_TASK_DISMISS_ALERT] = {"dismiss_alert", "owner", QN_MODE_ENFORCE, 1},
    [QN_TASK_COLLECT_EVIDENCE] = {"collect_evidence", "evidence", QN_MODE_ENFORCE, 0},
    [QN_TASK_DISABLE_USER] = {"disable_user", "users", QN_MODE_ENFORCE, 1},
    [QN_TASK_REVOKE_SESSIONS] = {"revoke_sessions", "users", QN_MODE_ENFORCE, 1},
    [QN_TASK_RESET_CREDENTIALS] = {"reset_credentials", "users", QN_MODE_ENFORCE, 1},
    [QN_TASK_DELETE_USER] = {"delete_user", "users", QN_MODE_ENFORCE, 1},
    [QN_TASK_REMOVE_ROLE_ASSIGNMENT] = {"remove_role_assignment", "subscription", QN_MODE_ENFORCE,
                                        1},
    [QN_TASK_REMOVE_RUNBOOK] = {"remove_runbook", "subscription", QN_MODE_ENFORCE, 1},
    [QN_TASK_DELETE_RESOURCE] = {"delete_resource", "subscription", QN_MODE_APPROVE, 1},
    [QN_TASK_VM_RESET_PASSWORDS] = {"vm_reset_passwords", "vm", QN_MODE_ENFORCE, 1},
    [QN_TASK_VM_ANTIMALWARE_SCAN] = {"vm_antimalware_scan", "vm", QN_MODE_ENFORCE, 1},
    [QN_TASK_VM_REIMAGE] = {"vm_reimage", "vm", QN_MODE_APPROVE, 1},
};

static const char *const mode_names[] = {"observe", "approve", "enforce"};

const char *qn_task_kind_name(enum qn_task_kind kind)
{
    return kinds[kind].name;
}

const char *qn_task_kind_family(enum qn_task_kind kind)
{
    return kinds[kind].family;
}

enum qn_mode qn_task_kind_default_mode(enum qn_task_kind kind)
{
    return kinds[kind].default_mode;
}

int qn_task_kind_writes(enum qn_task_kind kind)
{
    return kinds[kind].writes;
}

int qn_task_kind_parse(const char *name, enum qn_task_kind *out)
{
    for (int i = 0; i < QN_TASK_KIND__COUNT; i++) {
        if (strcmp(name, kinds[i].name) == 0) {
            *out = (enum qn_task_kind)i;
            return 0;
        }
    }
    return -1;
}

const char *qn_mode_name(enum qn_mode mode)
{
    return mode_names[mode];
}

int qn_mode_parse(const char *name, enum qn_mode *out)
{
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, mode_names[i]) == 0) {
            *out = (enum qn_mode)i;
            return 0;
        }
    }
    return -1;
}
