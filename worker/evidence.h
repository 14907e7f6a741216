/*
 * evidence.h - the shape of the evidence collect_evidence gathers, and the decision of what is
 * "unfamiliar" (DESIGN.md: decided from evidence, never guessed).
 *
 * The evidence is one JSON object (owned by the response, read by later tasks):
 *   {
 *     "window":          {"start": RFC3339, "end": RFC3339},   alert window plus lookback
 *     "principals":      [ "upn or object id", ... ],          the compromised principals
 *     "activity":        [ activity-log event, ... ],          by those principals in the window
 *                                                               (filtered on caller client-side)
 *     "createdUsers":    [ {"id", "userPrincipalName", "activityDateTime", "auditId"} ],
 *                                                               directory audits "Add user"
 *                                                               initiated by a principal
 *     "roleAssignments": [ role assignment resource, ... ],    at the subscription
 *     "runbooks":        [ runbook resource + "accountId" ],   of every Automation account
 *     "resources":       [ resource with createdTime ],        of the subscription
 *     "alerts":          [ alert resource, ... ],              the subscription's other alerts
 *     "errors":          [ {"source", "message"} ]             reads that failed (not fatal)
 *   }
 */
#ifndef QN_EVIDENCE_H
#define QN_EVIDENCE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "alert.h"
#include "config.h"

/* One target the evidence marks for removal, with the reason and the evidence behind it. */
struct qn_finding {
    const char *kind;        /* task kind name: delete_user, remove_role_assignment, ... */
    const char *target_type; /* user | role_assignment | runbook | resource | vm */
    char *target_id;
    char *target_name;
    char *reason;
    cJSON *evidence; /* array of evidence items; owned */
};

/*
 * @brief Decides the targets the evidence justifies: users created by a compromised principal,
 *        role assignments / runbooks / resources created or changed by one in the window, or
 *        created after the alert started and not on the known lists; VMs a principal ran
 *        commands on. Pure: no I/O, so `quench plan` and tests can call it.
 * @returns the number of findings written to @p out (at most @p max); each must be released
 *          with qn_finding_fini.
 */
int qn_evidence_findings(const cJSON *evidence,
                         const struct qn_alert *alert,
                         const struct qn_config *cfg,
                         struct qn_finding *out,
                         int max);

void qn_finding_fini(struct qn_finding *finding);

/* @returns true if @p caller (activity-log caller: UPN or object id) is one of the alert's
 *          compromised principals (case-insensitive). */
bool qn_evidence_is_compromised(const struct qn_alert *alert, const char *caller);

#endif
