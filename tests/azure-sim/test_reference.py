#!/usr/bin/python3
"""Tests of the Azure simulator: reference conformance (every x-ms-examples file and the
documentation payloads), authentication, paging, long-running operations, rate limits,
fault injection, the admin API and the tenant model.

    /usr/bin/python3 tests/azure-sim/test_reference.py [-v] [-k SUBSTRING] [--reference-dir DIR]

Prints one line per test and `N passed, M failed`; exits 0 only if nothing failed.
"""

import argparse
import copy
import glob
import json
import os
import re
import sys
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from client import SimProcess, ARM_SCOPE, GRAPH_SCOPE, JWT_BEARER  # noqa: E402
from simcore import b64url, b64url_decode, openssl  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
BASIC = os.path.join(REPO, "tests", "data", "scenarios", "basic.json")
SHARED_REF = "/work/shared/reference/azure"
LOCAL_REF = os.path.join(HERE, "reference")

S1 = "3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34"
S2 = "8c1d4e2f-7a3b-4f6e-b5d9-0e2c4a6b8d13"
MALLORY = "5b0e7f3a-9c2d-4e1b-a8f6-3d7c0e9b2a14"
BACKUP = "d3adbeef-7f3c-4b1d-9e2a-5c6d7e8f9a01"
BREAK = "b7eac91a-55aa-4c3e-9d1f-0a1b2c3d4e5f"
WORKER = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
READER = "1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"
ALERT1 = "2516839117039431999_3a7f1c2e-8b4d-4c6a-9e1f-5d2b8a0c7e34"
AA = "/subscriptions/%s/resourceGroups/rg-automation/providers/Microsoft.Automation/automationAccounts/aa-ops" % S2
RG_PROD = "/subscriptions/%s/resourceGroups/rg-prod" % S1

# x-ms-examples file -> operationId (INDEX.md of the reference folder)
EXAMPLE_OPS = {
    "security-alerts-get.json": "Alerts_GetSubscriptionLevel",
    "security-alerts-list-subscription.json": "Alerts_List",
    "security-alerts-dismiss.json": "Alerts_UpdateSubscriptionLevelStateToDismiss",
    "security-alerts-resolve-resource-group.json": "Alerts_UpdateResourceGroupLevelStateToResolve",
    "security-locations-list.json": "Locations_List",
    "role-assignments-list.json": "RoleAssignments_ListForScope",
    "role-assignments-get.json": "RoleAssignments_Get",
    "role-assignments-delete.json": "RoleAssignments_Delete",
    "role-definitions-get.json": "RoleDefinitions_Get",
    "automation-accounts-list-by-resource-group.json": "AutomationAccount_ListByResourceGroup",
    "runbooks-list.json": "Runbook_ListByAutomationAccount",
    "runbooks-delete.json": "Runbook_Delete",
    "providers-get.json": "Providers_Get",
    "tags-get-at-scope.json": "Tags_GetAtScope",
    "activity-log-list.json": "ActivityLogs_List",
    "vm-get.json": "VirtualMachines_Get",
    "vm-run-command.json": "VirtualMachines_RunCommand",
    "vm-run-command-document-get.json": "VirtualMachineRunCommands_Get",
    "vm-reimage.json": "VirtualMachines_Reimage",
    "vm-power-off.json": "VirtualMachines_PowerOff",
    "vm-deallocate.json": "VirtualMachines_Deallocate",
    "vm-extension-create-or-update.json": "VirtualMachineExtensions_CreateOrUpdate",
}
OPTIONAL_KEYS = {"nextlink", "@odata.nextlink"}

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Failure(AssertionError):
    pass


def check(cond, msg, *args):
    if not cond:
        raise Failure(msg % args if args else msg)


def eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def status(r, want, what=""):
    wants = want if isinstance(want, (list, tuple, set)) else [want]
    if r.status not in wants:
        raise Failure("%s: HTTP %s (want %s): %s" % (what or "status", r.status, "/".join(map(str, wants)),
                                                     r.body[:400].decode("utf-8", "replace")))


def shape_diff(doc, got, path="$"):
    """Problems where `got` lacks a key of `doc` or has another JSON type.  Keys are compared
    case-insensitively; arrays of equal length element by element (they may be
    heterogeneous, e.g. resourceIdentifiers), otherwise element 0 with element 0; an empty
    array or a null where the document shows a value is accepted (nullable / no items)."""
    out = []
    if isinstance(doc, dict):
        if not isinstance(got, dict):
            return ["%s: want object, got %s" % (path, type(got).__name__)]
        low = {k.lower(): k for k in got}
        for k, v in doc.items():
            if k.lower() not in low:
                if k.lower() not in OPTIONAL_KEYS:
                    out.append("%s: missing key %r" % (path, k))
                continue
            out += shape_diff(v, got[low[k.lower()]], "%s.%s" % (path, k))
    elif isinstance(doc, list):
        if not isinstance(got, list):
            return ["%s: want array, got %s" % (path, type(got).__name__)]
        if doc and got:
            if len(doc) == len(got):
                for i, (d, g) in enumerate(zip(doc, got)):
                    out += shape_diff(d, g, "%s[%d]" % (path, i))
            else:
                out += shape_diff(doc[0], got[0], "%s[0]" % path)
    elif doc is None or got is None:
        pass
    elif isinstance(doc, bool):
        if not isinstance(got, bool):
            out.append("%s: want boolean, got %r" % (path, got))
    elif isinstance(doc, (int, float)):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            out.append("%s: want number, got %r" % (path, got))
    elif isinstance(doc, str):
        if not isinstance(got, str):
            out.append("%s: want string, got %r" % (path, got))
    return out


def shape(doc, got, what):
    d = shape_diff(doc, got)
    if d:
        raise Failure("%s: body shape differs from the reference: %s" % (what, "; ".join(d[:6])))


# --------------------------------------------------------------------------- fixtures


class Env:
    sim = None
    c = None
    ref = None
    basic = None
    examples = {}
    operations = {}


def ref_file(name):
    with open(os.path.join(Env.ref, name)) as f:
        return json.load(f)


def arm_token(client_id=WORKER):
    return Env.c.token_secret(client_id, ARM_SCOPE)


def graph_token(client_id=WORKER):
    return Env.c.token_secret(client_id, GRAPH_SCOPE)


def load_examples():
    out = {}
    for path in sorted(glob.glob(os.path.join(Env.ref, "*.json"))):
        try:
            with open(path) as f:
                d = json.load(f)
        except ValueError:
            continue
        if isinstance(d, dict) and "parameters" in d and "responses" in d:
            out[os.path.basename(path)] = d
    return out


def example_scenario():
    """A scenario holding the objects the x-ms-examples files talk about."""
    ex = Env.examples
    basic = Env.basic
    worker = next(a for a in basic["apps"] if a["client_id"] == WORKER)
    sc = {"description": "objects of the reference x-ms-examples", "tenant": basic["tenant"],
          "config": {"enforce_rbac": False, "page_sizes": {"ActivityLogs_List": 1}},
          "apps": [{"client_id": WORKER, "object_id": worker["object_id"], "secrets": worker["secrets"]}],
          "subscriptions": [], "resource_groups": [], "resources": [], "alerts": [], "role_assignments": [],
          "role_definitions": [], "providers": [], "activity_log": []}
    subs = set()
    for d in ex.values():
        p = d["parameters"]
        if "subscriptionId" in p:
            subs.add(p["subscriptionId"])
        if isinstance(p.get("scope"), str) and p["scope"].startswith("subscriptions/"):
            subs.add(p["scope"].split("/")[1])
    for s in sorted(subs):
        sc["subscriptions"].append({"subscriptionId": s, "displayName": "example " + s,
                                    "securityLocations": ["centralus"]})

    def rg(sub, name):
        if not any(g.get("subscriptionId") == sub and g["name"] == name for g in sc["resource_groups"]):
            sc["resource_groups"].append({"subscriptionId": sub, "name": name, "location": "westus"})

    for d in ex.values():
        p = d["parameters"]
        if "subscriptionId" in p and "resourceGroupName" in p:
            rg(p["subscriptionId"], p["resourceGroupName"])
    # alerts: the list example, then the get example's object (same id, replaces list[0])
    for name in ("security-alerts-list-subscription.json", "security-alerts-get.json"):
        body = ex[name]["responses"]["200"]["body"]
        for a in body.get("value", [body]):
            sc["alerts"].append(copy.deepcopy(a))
            m = re.match(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/", a["id"])
            if m:
                rg(m.group(1), m.group(2))
    sc["role_assignments"] = copy.deepcopy(ex["role-assignments-list.json"]["responses"]["200"]["body"]["value"])
    sc["role_definitions"] = [copy.deepcopy(ex["role-definitions-get.json"]["responses"]["200"]["body"])]
    pg = ex["providers-get.json"]["responses"]["200"]["body"]
    sc["providers"].append({kk: copy.deepcopy(pg[kk]) for kk in ("namespace", "registrationState",
                                                                 "registrationPolicy", "resourceTypes")})
    for a in ex["automation-accounts-list-by-resource-group.json"]["responses"]["200"]["body"]["value"]:
        sc["resources"].append(copy.deepcopy(a))
    rl = ex["runbooks-list.json"]
    acct = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Automation/automationAccounts/%s" % (
        rl["parameters"]["subscriptionId"], rl["parameters"]["resourceGroupName"],
        rl["parameters"]["automationAccountName"])
    sc["resources"].append({"id": acct, "name": rl["parameters"]["automationAccountName"],
                            "type": "Microsoft.Automation/AutomationAccounts", "location": "East US 2",
                            "properties": {"state": "Ok"}})
    for r in rl["responses"]["200"]["body"]["value"]:
        r = copy.deepcopy(r)
        r["x-sim"] = {"content": "Write-Output 'hello from %s'\n" % r["name"]}
        sc["resources"].append(r)
    tg = ex["tags-get-at-scope.json"]
    scope = "/" + tg["parameters"]["scope"]
    m = re.match(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)/", scope, re.I)
    rg(m.group(1), m.group(2))
    sc["resources"].append({"id": scope, "location": "westus",
                            "tags": tg["responses"]["200"]["body"]["properties"]["tags"]})
    sc["resources"].append(copy.deepcopy(ex["vm-get.json"]["responses"]["200"]["body"]))

    def vm(name, rgname, sub, os_type):
        sc["resources"].append({"id": "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/"
                                      "virtualMachines/%s" % (sub, rgname, name),
                                "location": "westus", "properties": {
                                    "storageProfile": {"osDisk": {"osType": os_type}},
                                    "provisioningState": "Succeeded"}})
    for fname in ("vm-run-command.json", "vm-reimage.json", "vm-power-off.json", "vm-deallocate.json",
                  "vm-extension-create-or-update.json"):
        p = ex[fname]["parameters"]
        vid = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (
            p["subscriptionId"], p["resourceGroupName"], p["vmName"])
        if not any(r["id"].lower() == vid.lower() for r in sc["resources"]):
            vm(p["vmName"], p["resourceGroupName"], p["subscriptionId"], "Windows")
    al = ex["activity-log-list.json"]
    for e in al["responses"]["200"]["body"]["value"]:
        sc["activity_log"].append(copy.deepcopy(e))
        second = copy.deepcopy(e)
        second["eventDataId"] = "44ade6b4-3813-45e6-ae27-7420a95fa2f9"
        second["eventTimestamp"] = "2015-01-22T10:00:00.0000000Z"
        second["id"] = second["id"].replace("44ade6b4-3813-45e6-ae27-7420a95fa2f8", second["eventDataId"])
        sc["activity_log"].append(second)
    return sc


def example_request(op, params):
    path = op["path"]
    used = set()

    def fill(m):
        raw = m.group(1)
        name = re.sub(r"[^A-Za-z0-9_]", "", raw.split("|")[0])
        used.add(name)
        v = str(params[name])
        if name in ("scope", "resourceId", "roleAssignmentId", "roleId"):
            return "/" + urllib.parse.quote(v.strip("/"), safe="/")
        return "/" + urllib.parse.quote(v, safe="")
    path = re.sub(r"/\{([^}]+)\}", fill, path)
    query = {"api-version": params["api-version"]}
    body = None
    for kk, v in params.items():
        if kk in used or kk == "api-version":
            continue
        if isinstance(v, dict):
            body = v
        elif kk.startswith("$"):
            query[kk] = str(v)
    return path, query, body


# --------------------------------------------------------------------------- reference conformance


@test
def reference_operations_json_matches_shared():
    local = os.path.join(HERE, "operations.json")
    shared = os.path.join(SHARED_REF, "operations.json")
    if not os.path.exists(shared):
        return "skipped: %s absent" % shared
    with open(local, "rb") as a, open(shared, "rb") as b:
        check(a.read() == b.read(), "tests/azure-sim/operations.json differs from %s: copy it again" % shared)
    for name in os.listdir(LOCAL_REF):
        sp = os.path.join(SHARED_REF, name)
        if os.path.exists(sp):
            with open(os.path.join(LOCAL_REF, name), "rb") as a, open(sp, "rb") as b:
                check(a.read() == b.read(), "reference/%s differs from the shared copy" % name)


@test
def reference_every_operation_is_routed():
    from simarm import HANDLERS, ArmRouter
    import simgraph
    missing = []
    for op in Env.operations.values():
        if op["service"] == "arm" and op["operationId"] not in HANDLERS:
            missing.append(op["operationId"])
        if op["service"] == "graph":
            ids = {r[2] for r in simgraph.ROUTES}
            if op["operationId"] not in ids:
                missing.append(op["operationId"])
    check(not missing, "operations.json rows without a simulator route: %s", ", ".join(missing))
    router = ArmRouter(list(Env.operations.values()))
    samples = {"scope": "subscriptions/s1",
               "roleAssignmentId": "subscriptions/s1/providers/Microsoft.Authorization/roleAssignments/x1",
               "roleId": "subscriptions/s1/providers/Microsoft.Authorization/roleDefinitions/x1",
               "resourceId": "subscriptions/s1/resourceGroups/g1/providers/Microsoft.Storage/storageAccounts/x1"}
    for op in Env.operations.values():
        if op["service"] != "arm":
            continue
        sample = re.sub(r"\{([^}]+)\}", lambda m: samples.get(m.group(1), "x1"), op["path"])
        route, _ = router.match(op["method"], sample)
        check(route is not None and HANDLERS.get(route.id) is HANDLERS[op["operationId"]],
              "%s %s (%s) is routed to %s", op["method"], sample, op["operationId"], route and route.id)


def make_example_test(fname):
    def run():
        d = Env.examples[fname]
        op_id = d.get("operationId") or EXAMPLE_OPS.get(fname)
        check(op_id is not None, "no operationId mapping for %s (add it to EXAMPLE_OPS)", fname)
        op = Env.operations.get(op_id)
        check(op is not None, "operationId %s of %s is not in operations.json", op_id, fname)
        Env.c.reset(scenario=example_scenario())
        tok = arm_token()
        path, query, body = example_request(op, d["parameters"])
        r = Env.c.arm(op["method"], path, token=tok, body=body, query=query)
        documented = {int(s): v for s, v in d["responses"].items() if s.isdigit()}
        status(r, list(documented), "%s %s" % (op["method"], path))
        doc = documented[r.status]
        for hname in (doc.get("headers") or {}):
            check(r.header(hname) is not None, "documented header %r missing in the %d response", hname, r.status)
        if "body" in doc and doc["body"] not in (None, {}):
            shape(doc["body"], r.json(), fname)
        elif r.status == 204:
            eq(r.body, b"", "204 body")
        # a documented 202: follow the long-running operation to its documented final answer
        if r.status == 202:
            loc = r.header("Location") or r.header("Azure-AsyncOperation")
            check(loc and loc.startswith("https://127.0.0.1:%d/" % Env.c.port),
                  "202 without an absolute Location/Azure-AsyncOperation URL: %r", loc)
            final = poll_location(r, tok)
            status(final, [s for s in documented if s in (200, 201, 204)] or [200, 204], "final LRO status")
            fdoc = documented.get(final.status) or {}
            if fdoc.get("body"):
                shape(fdoc["body"], final.json(), fname + " (final result)")
    run.__name__ = "reference_example_" + re.sub(r"\W", "_", fname[:-5])
    return run


def poll_location(r, tok, limit=20):
    loc = r.header("Location")
    if not loc:
        # Azure-AsyncOperation only: poll status until terminal, then no final body
        url = r.header("Azure-AsyncOperation")
        for _ in range(limit):
            s = Env.c.request("GET", url, headers={"Authorization": "Bearer " + tok})
            if s.json().get("status") != "InProgress":
                return s
        raise Failure("operation did not finish")
    for _ in range(limit):
        p = Env.c.request("GET", loc, headers={"Authorization": "Bearer " + tok})
        if p.status != 202:
            return p
    raise Failure("Location still 202 after %d polls" % limit)


def doc_tests():
    """Checks against the documentation payloads (bodies lifted from Markdown pages)."""

    @test
    def reference_doc_token_response():
        r = Env.c.token_request({"client_id": WORKER, "scope": ARM_SCOPE, "grant_type": "client_credentials",
                                 "client_secret": Env.c.ready["apps"][WORKER]["secret"]})
        status(r, 200)
        shape(ref_file("identity-token-response.json"), r.json(), "token response")
        check(isinstance(r.json()["expires_in"], int), "expires_in must be a number")

    @test
    def reference_doc_token_error():
        r = Env.c.token_request({"client_id": WORKER, "scope": ARM_SCOPE, "grant_type": "client_credentials",
                                 "client_secret": "wrong"})
        status(r, 401)
        shape(ref_file("identity-token-error.json"), r.json(), "token error")

    @test
    def reference_doc_imds_response():
        r = Env.c.imds()
        status(r, 200)
        doc = ref_file("imds-token-response.json")
        shape(doc, r.json(), "IMDS response")
        eq(sorted(r.json()), sorted(doc), "IMDS response keys")

    @test
    def reference_doc_graph_user_get():
        r = Env.c.graph("GET", "/users/" + MALLORY, graph_token())
        status(r, 200)
        body = r.json()
        body.pop("@odata.context")
        doc = ref_file("graph-user-get.json")
        eq(sorted(body), sorted(doc), "default user properties")
        shape(doc, body, "user")

    @test
    def reference_doc_graph_users_list():
        r = Env.c.graph("GET", "/users", graph_token(), headers={"ConsistencyLevel": "eventual"},
                        query={"$filter": "endswith(mail,'e@contoso.com')", "$orderby": "userPrincipalName",
                               "$count": "true"})
        status(r, 200)
        shape(ref_file("graph-users-list.json"), r.json(), "users list")
        check(r.header("request-id") and r.header("client-request-id"), "Graph request-id headers missing")
        check((r.header("content-type") or "").startswith("application/json;odata.metadata=minimal"),
              "Graph content type: %r", r.header("content-type"))

    @test
    def reference_doc_graph_revoke():
        r = Env.c.graph("POST", "/users/%s/revokeSignInSessions" % MALLORY, graph_token())
        status(r, 200)
        shape(ref_file("graph-revoke-sessions.json"), r.json(), "revoke")

    @test
    def reference_doc_graph_deleted_items():
        r = Env.c.graph("GET", "/directory/deletedItems/microsoft.graph.user", graph_token(),
                        headers={"ConsistencyLevel": "eventual"},
                        query={"$count": "true", "$orderBy": "deletedDateTime asc",
                               "$select": "id,DisplayName,deletedDateTime"})
        status(r, 200)
        shape(ref_file("graph-deleted-users-list.json"), r.json(), "deleted items")
        check(r.json()["value"][0]["id"], "deleted item id")

    @test
    def reference_doc_graph_restore():
        t = graph_token()
        status(Env.c.graph("DELETE", "/users/" + BACKUP, t), 204)
        r = Env.c.graph("POST", "/directory/deletedItems/%s/restore" % BACKUP, t)
        status(r, 200)
        doc = {k: v for k, v in ref_file("graph-deleted-item-restore.json").items()
               if k in ("@odata.context", "@odata.type", "id", "displayName")}
        shape(doc, r.json(), "restore")
        eq(r.json()["@odata.type"], "#microsoft.graph.user", "@odata.type")

    @test
    def reference_doc_graph_directory_audits():
        t = graph_token()
        r = Env.c.graph("GET", "/auditLogs/directoryAudits", t)
        status(r, 200)
        shape(ref_file("graph-directory-audits-list.json"), r.json(), "directoryAudits")
        r = Env.c.graph("GET", "/auditLogs/directoryAudits", t,
                        query={"$filter": "initiatedBy/user/id eq '%s'" % MALLORY})
        status(r, 200)
        shape(ref_file("graph-directory-audits-list-filter-initiatedby.json"), r.json(),
              "directoryAudits initiatedBy filter")

    @test
    def reference_doc_graph_role_assignments():
        r = Env.c.graph("GET", "/roleManagement/directory/roleAssignments", graph_token(),
                        query={"$filter": "principalId eq '%s'" % BREAK})
        status(r, 200)
        shape(ref_file("graph-role-assignments-list.json"), r.json(), "roleAssignments")
        eq(r.json()["value"][0]["roleDefinitionId"], "62e90394-69f5-4237-9190-012177145e10", "role")

    @test
    def reference_doc_graph_transitive_member_of():
        r = Env.c.graph("GET", "/users/alice@contoso.com/transitiveMemberOf", graph_token())
        status(r, 200)
        shape(ref_file("graph-user-transitive-memberof.json"), r.json(), "transitiveMemberOf")
        names = sorted(g["displayName"] for g in r.json()["value"])
        eq(names, ["All Staff", "Prod Operators"], "transitive groups of alice")

    @test
    def reference_doc_graph_errors():
        t = graph_token()
        r = Env.c.graph("GET", "/users/00000000-0000-0000-0000-00000000dead", t)
        status(r, 404)
        shape(ref_file("graph-error-404.json"), r.json(), "Graph 404")
        shape(ref_file("graph-error.json"), r.json(), "Graph error")

    @test
    def reference_doc_graph_paging():
        r = Env.c.graph("GET", "/users", graph_token(), query={"$top": "2"})
        status(r, 200)
        shape(ref_file("graph-paging-nextlink.json"), r.json(), "Graph page")
        check(r.json()["@odata.nextLink"].startswith("https://127.0.0.1:%d/v1.0/users?" % Env.c.port),
              "nextLink %r", r.json()["@odata.nextLink"])

    @test
    def reference_doc_async_operation_status():
        t = arm_token()
        r = Env.c.arm("POST", RG_PROD + "/providers/Microsoft.Compute/virtualMachines/vm-web-01/powerOff",
                      "2024-11-01", t)
        status(r, 202)
        s = Env.c.request("GET", r.header("Azure-AsyncOperation"), headers={"Authorization": "Bearer " + t})
        status(s, 200)
        shape(ref_file("arm-async-operation-status.json"), s.json(), "async operation status")
        eq(s.json()["status"], "InProgress", "first poll")

    @test
    def reference_doc_activity_log_events():
        t = arm_token()
        r = Env.c.arm("GET", "/subscriptions/%s/providers/microsoft.insights/eventtypes/management/values" % S1,
                      "2015-04-01", t, query={"$filter": "eventTimestamp ge '2026-11-27T00:00:00Z' and "
                                                        "eventTimestamp le '2026-11-29T00:00:00Z'"})
        status(r, 200)
        events = r.json()["value"]
        generic = ref_file("activity-log-event-generic-write.json")
        generic["claims"] = {}       # free-form: the caller's token claims
        generic["properties"] = {}   # free-form string map
        shape(generic, events[0], "activity-log event")
        ra = [e for e in events if e["operationName"]["value"] == "Microsoft.Authorization/roleAssignments/write"]
        check(ra, "no role assignment write event")
        shape(ref_file("activity-log-event-role-assignment-write.json")[1], ra[0], "role assignment write event")
        body = json.loads(ra[0]["properties"]["requestbody"])
        check("PrincipalId" in body["Properties"], "requestbody uses the PascalCase shape")


# --------------------------------------------------------------------------- auth


@test
def auth_secret_ok_and_bad():
    r = Env.c.token_request({"client_id": WORKER, "scope": ARM_SCOPE, "grant_type": "client_credentials",
                             "client_secret": Env.c.ready["apps"][WORKER]["secret"]})
    status(r, 200)
    eq(r.json()["token_type"], "Bearer", "token_type")
    r = Env.c.token_request({"client_id": WORKER, "scope": ARM_SCOPE, "grant_type": "client_credentials",
                             "client_secret": "not-the-secret"})
    status(r, 401)
    eq(r.json()["error"], "invalid_client", "error")
    eq(r.json()["error_codes"], [7000215], "error_codes")
    check(r.json()["error_description"].startswith("AADSTS7000215:"), "description")
    log = Env.c.requests(service="token")
    check(all("not-the-secret" not in json.dumps(e) for e in log), "client_secret must be redacted in the log")
    r = Env.c.token_request({"client_id": "99999999-9999-4999-8999-999999999999", "scope": ARM_SCOPE,
                             "grant_type": "client_credentials", "client_secret": "x"})
    status(r, 400)
    eq(r.json()["error_codes"], [700016], "unknown app")
    r = Env.c.token_request({"client_id": WORKER, "scope": "https://management.azure.com/user_impersonation",
                             "grant_type": "client_credentials", "client_secret": "x"})
    status(r, 400)
    eq(r.json()["error"], "invalid_scope", "scope")
    r = Env.c.request("POST", "/00000000-0000-0000-0000-000000000bad/oauth2/v2.0/token",
                      body="client_id=%s&scope=x&grant_type=client_credentials" % WORKER,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    status(r, 400)
    eq(r.json()["error_codes"], [90002], "unknown tenant")


@test
def auth_assertion_ok_rs256_and_ps256():
    for alg in ("RS256", "PS256"):
        r = Env.c.token_assertion(WORKER, alg=alg)
        status(r, 200, alg)
        t = r.json()["access_token"]
        status(Env.c.arm("GET", "/subscriptions/" + S1, "2022-12-01", t), 200, "ARM with %s token" % alg)


@test
def auth_assertion_forged_signature():
    key = os.path.join(Env.sim.state_dir, "other.key")
    openssl(["genrsa", "-out", key, "2048"])
    # header claims the registered certificate (x5t#S256) but is signed with another key
    r = Env.c.token_assertion(WORKER, key_file=key)
    status(r, 401)
    eq(r.json()["error_codes"], [700027], "forged signature")
    check("invalid signature" in r.json()["error_description"], "message: %s", r.json()["error_description"])
    # tampered payload
    good = Env.c.make_assertion(WORKER)
    h, p, s = good.split(".")
    claims = json.loads(b64url_decode(p))
    claims["exp"] += 3600
    p2 = b64url(json.dumps(claims))
    r = Env.c.token_assertion(WORKER, assertion="%s.%s.%s" % (h, p2, s))
    status(r, 401)
    eq(r.json()["error_codes"], [700027], "tampered payload")


@test
def auth_assertion_claims_checked():
    c = Env.c
    r = c.token_assertion(WORKER, aud="https://login.microsoftonline.com/%s/oauth2/v2.0/token" % c.tenant)
    status(r, 401)
    eq(r.json()["error_codes"], [700023], "wrong aud")
    r = c.token_assertion(WORKER, iss="someone-else")
    status(r, 401)
    eq(r.json()["error_codes"], [700021], "iss != client_id")
    r = c.token_assertion(WORKER, exp_in=-3600, nbf_offset=-4000)
    status(r, 401)
    eq(r.json()["error_codes"], [700024], "expired assertion")
    jti = "5f9c0e2a-0000-4000-8000-00000000abcd"
    status(c.token_assertion(WORKER, jti=jti), 200, "first use of jti")
    r = c.token_assertion(WORKER, jti=jti)
    status(r, 401, "replayed jti")
    # older form: RS256 with x5t (SHA-1 thumbprint) instead of x5t#S256 is accepted too
    import hashlib
    import base64
    with open(c.ready["apps"][WORKER]["cert_file"]) as f:
        pem = f.read()
    der = base64.b64decode("".join(pem.split("-----")[2].split()))
    a = c.make_assertion(WORKER, header_extra={"x5t": b64url(hashlib.sha1(der).digest()), "x5t#S256": None})
    check("x5t#S256" not in json.loads(b64url_decode(a.split(".")[0])), "header without x5t#S256")
    status(c.token_assertion(WORKER, assertion=a), 200, "x5t (SHA-1) assertion")
    r = c.token_assertion(WORKER, alg="HS256")
    status(r, 401, "unsupported alg")


@test
def auth_certificate_registered_through_admin():
    c = Env.c
    key = os.path.join(Env.sim.state_dir, "rotated.key")
    pem = os.path.join(Env.sim.state_dir, "rotated.pem")
    openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem, "-days", "2",
             "-subj", "/CN=rotated"])
    r = c.token_assertion(READER, key_file=key, cert_file=pem)
    status(r, 401, "certificate not registered yet")
    eq(r.json()["error_codes"], [700027], "unknown thumbprint")
    with open(pem) as f:
        c.request("POST", "/_admin/apps/%s/certificates" % READER, body=f.read())
    status(c.token_assertion(READER, key_file=key, cert_file=pem), 200, "after registration")


@test
def cli_bad_scenario_fails_fast():
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="azure-sim-bad-")
    bad = os.path.join(d, "bad.json")
    with open(bad, "w") as f:
        json.dump({"tenant": {"id": "x"}, "userz": []}, f)
    try:
        p = subprocess.run([sys.executable, os.path.join(HERE, "azure_sim.py"), "--scenario", bad,
                            "--state-dir", d], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)
    eq(p.returncode, 2, "exit status")
    check(b"unknown scenario keys: userz" in p.stderr, "message: %r", p.stderr)


@test
def auth_federated_ok_bad_and_rotation():
    c = Env.c
    r = c.token_federated(WORKER)
    status(r, 200, "federated token from the file")
    r = c.token_request({"client_id": WORKER, "scope": ARM_SCOPE, "grant_type": "client_credentials",
                         "client_assertion_type": JWT_BEARER,
                         "client_assertion": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub3BlIn0.c2ln"})
    status(r, 400)
    eq(r.json()["error_codes"], [70021], "unknown federated token")
    path = c.ready["apps"][WORKER]["federated_token_file"]
    with open(path) as f:
        old = f.read()
    rot = c.rotate_federated_token(WORKER)
    with open(path) as f:
        new = f.read()
    check(new != old and new == rot["token"], "rotation rewrites the projected token file")
    status(c.token_federated(WORKER), 200, "new token accepted")
    r = c.token_request({"client_id": WORKER, "scope": ARM_SCOPE, "grant_type": "client_credentials",
                         "client_assertion_type": JWT_BEARER, "client_assertion": old})
    status(r, 400, "old token after rotation")


@test
def auth_imds_metadata_header():
    c = Env.c
    r = c.imds()
    status(r, 200)
    b = r.json()
    for f in ("expires_in", "expires_on", "not_before"):
        check(isinstance(b[f], str) and b[f].isdigit(), "IMDS %s must be a string of digits: %r", f, b[f])
    status(c.arm("GET", "/subscriptions/" + S1, "2022-12-01", b["access_token"]), 200, "ARM with an IMDS token")
    r = c.imds(metadata=False)
    status(r, 400)
    eq(r.json()["error_description"], "Required metadata header not specified", "no Metadata header")
    r = c.imds(resource="https://vault.azure.net")
    status(r, 400, "unknown resource")
    r = c.imds(client_id="2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f")
    status(r, 200, "explicit client_id")
    r = c.imds(client_id="00000000-0000-0000-0000-000000000000")
    status(r, 400, "unknown client_id")
    g = c.imds(resource="https://graph.microsoft.com/").json()["access_token"]
    status(c.graph("GET", "/users/" + MALLORY, g), 200, "Graph with an IMDS token")


@test
def auth_audience_mismatch():
    c = Env.c
    arm, graph = arm_token(), graph_token()
    r = c.graph("GET", "/users/" + MALLORY, arm)
    status(r, 401)
    eq(r.json()["error"]["code"], "InvalidAuthenticationToken", "ARM token on Graph")
    r = c.arm("GET", "/subscriptions/" + S1, "2022-12-01", graph)
    status(r, 401)
    eq(r.json()["error"]["code"], "InvalidAuthenticationTokenAudience", "Graph token on ARM")
    r = c.arm("GET", "/subscriptions/" + S1, "2022-12-01", None)
    status(r, 401)
    eq(r.json()["error"]["code"], "AuthenticationFailed", "no token")
    check(r.header("WWW-Authenticate"), "WWW-Authenticate on ARM 401")
    r = c.arm("GET", "/subscriptions/" + S1, "2022-12-01", arm[:-4] + "AAAA")
    status(r, 401)
    eq(r.json()["error"]["code"], "InvalidAuthenticationToken", "bad signature")


@test
def auth_token_expiry_and_refresh():
    c = Env.c
    c.config({"token_lifetime_seconds": 60})
    r = c.token_request({"client_id": WORKER, "scope": ARM_SCOPE, "grant_type": "client_credentials",
                         "client_secret": c.ready["apps"][WORKER]["secret"]})
    eq(r.json()["expires_in"], 60, "configured lifetime")
    arm, graph = r.json()["access_token"], graph_token()
    status(c.arm("GET", "/subscriptions/" + S1, "2022-12-01", arm), 200, "fresh token")
    c.clock(advance=120)
    r = c.arm("GET", "/subscriptions/" + S1, "2022-12-01", arm)
    status(r, 401)
    eq(r.json()["error"]["code"], "ExpiredAuthenticationToken", "ARM expired")
    r = c.graph("GET", "/users/" + MALLORY, graph)
    status(r, 401)
    eq(r.json()["error"]["code"], "InvalidAuthenticationToken", "Graph expired")
    status(c.arm("GET", "/subscriptions/" + S1, "2022-12-01", arm_token()), 200, "refreshed token")


@test
def auth_revoked_token_and_wrong_tenant():
    c = Env.c
    t = arm_token()
    c.revoke_tokens(client_id=WORKER)
    status(c.arm("GET", "/subscriptions/" + S1, "2022-12-01", t), 401, "revoked")
    c.patch_object("subscriptions", S2, {"tenantId": "11111111-2222-4333-8444-555555555555"})
    r = c.arm("GET", "/subscriptions/" + S2, "2022-12-01", arm_token())
    status(r, 401)
    eq(r.json()["error"]["code"], "InvalidAuthenticationTokenTenant", "wrong tenant")


# --------------------------------------------------------------------------- ARM behaviour


@test
def arm_request_ids_on_every_response():
    c = Env.c
    t = arm_token()
    for r in (c.arm("GET", "/subscriptions/" + S1, "2022-12-01", t, headers={"x-ms-client-request-id": "crid-1"}),
              c.arm("GET", "/nope", "2022-12-01", t),
              c.graph("GET", "/users/" + MALLORY, graph_token(), headers={"client-request-id": "crid-2"}),
              c.token_request({"client_id": WORKER, "scope": ARM_SCOPE, "grant_type": "client_credentials",
                               "client_secret": "bad"})):
        check(r.header("x-ms-request-id") and r.header("x-ms-correlation-request-id"),
              "x-ms-request-id / x-ms-correlation-request-id missing on %s", r.status)
    r = c.arm("GET", "/subscriptions/" + S1, "2022-12-01", t, headers={"x-ms-client-request-id": "crid-1",
                                                                        "x-ms-correlation-request-id": "corr-9"})
    eq(r.header("x-ms-client-request-id"), "crid-1", "echoed client request id")
    eq(r.header("x-ms-correlation-request-id"), "corr-9", "echoed correlation id")
    g = c.graph("GET", "/users/" + MALLORY, graph_token(), headers={"client-request-id": "crid-2"})
    eq(g.header("client-request-id"), "crid-2", "Graph client-request-id")
    log = c.requests(client_request_id="crid-1")
    check(log and log[-1]["status"] == 200 and log[-1]["principal"]["appid"] == WORKER, "request log entry: %r", log)


@test
def arm_unknown_path_and_api_versions():
    c = Env.c
    t = arm_token()
    r = c.arm("GET", "/subscriptions/%s/resourceGroups/rg-prod/providers/Microsoft.Foo/bars/x" % S1, "2021-04-01", t)
    status(r, 404)
    eq(r.json()["error"]["code"], "InvalidResourceType", "unknown namespace")
    r = c.arm("GET", "/what/ever", "2021-04-01", t)
    status(r, 404)
    eq(r.json()["error"]["code"], "InvalidResourceType", "unknown path")
    r = c.arm("GET", RG_PROD + "/providers/Microsoft.Storage/storageAccounts/nope", "2023-05-01", t)
    status(r, 404)
    eq(r.json()["error"]["code"], "ResourceNotFound", "missing resource")
    r = c.arm("GET", "/subscriptions/%s/resourcegroups/nope" % S1, "2021-04-01", t)
    status(r, 404)
    eq(r.json()["error"]["code"], "ResourceGroupNotFound", "missing RG")
    r = c.arm("GET", "/subscriptions/00000000-0000-0000-0000-00000000beef", "2022-12-01", t)
    status(r, 404)
    eq(r.json()["error"]["code"], "SubscriptionNotFound", "missing subscription")
    r = c.arm("GET", "/subscriptions/%s/providers/Microsoft.Security/alerts" % S1, "1999-01-01", t)
    status(r, 400)
    eq(r.json()["error"]["code"], "NoRegisteredProviderFound", "bad api-version (RP)")
    r = c.arm("GET", "/subscriptions/%s/resourcegroups/rg-prod" % S1, "1999-01-01", t)
    status(r, 400)
    eq(r.json()["error"]["code"], "InvalidApiVersionParameter", "bad api-version (Resources)")
    r = c.arm("GET", "/subscriptions/%s/providers/Microsoft.Security/alerts" % S1, None, t)
    status(r, 400)
    eq(r.json()["error"]["code"], "MissingApiVersionParameter", "no api-version")
    # generic by id: the provider's api-version, validated against Providers_Get data
    prov = c.arm("GET", "/subscriptions/%s/providers/Microsoft.ManagedIdentity" % S1, "2021-04-01", t).json()
    versions = prov["resourceTypes"][0]["apiVersions"]
    stable = next(v for v in versions if "preview" not in v)
    mi = "/subscriptions/%s/resourceGroups/rg-quench/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-quench" % S1
    status(c.arm("GET", mi, stable, t), 200, "by id with the provider's version")
    r = c.arm("GET", mi, "2021-04-01", t)
    status(r, 400)
    eq(r.json()["error"]["code"], "NoRegisteredProviderFound", "by id with the Resources version")
    check(stable in r.json()["error"]["message"], "message lists the supported versions")


@test
def arm_paging_three_pages():
    c = Env.c
    t = arm_token()
    first = "/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments" % S1
    all_items, pages = c.follow("GET", first + "?api-version=2022-04-01", t)
    eq(pages, 1, "pages with the default page size")
    n = len(all_items)
    check(n >= 9, "need >= 9 assignments, have %d", n)
    c.config({"page_sizes": {"RoleAssignments_List": (n + 2) // 3}})
    r = c.arm("GET", first, "2022-04-01", t)
    nl = r.json()["nextLink"]
    check(nl.startswith("https://127.0.0.1:%d/subscriptions/" % c.port), "absolute nextLink: %s", nl)
    check("api-version=2022-04-01" in nl and "$skiptoken=" in nl, "nextLink keeps api-version: %s", nl)
    items, pages = c.follow("GET", first + "?api-version=2022-04-01", t)
    eq(pages, 3, "pages")
    eq(sorted(i["id"] for i in items), sorted(i["id"] for i in all_items), "items over 3 pages")
    # with $filter the nextLink carries the filter
    c.config({"page_sizes": {"RoleAssignments_List": 1}})
    flt = "principalId eq '%s'" % "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"
    items, pages = c.follow("GET", first + "?api-version=2022-04-01&$filter=" + urllib.parse.quote(flt), t)
    eq(len(items), 2, "worker assignments")
    eq(pages, 2, "filtered pages")
    # Graph: $top=3 over 7 users -> 3 pages
    g = graph_token()
    items, pages = c.follow("GET", "/users", g, graph=True, query={"$top": "3"})
    eq(pages, 3, "Graph pages")
    eq(len(items), 7, "Graph users")
    # activity log paging
    c.config({"page_sizes": {"ActivityLogs_List": 4}})
    items, pages = c.follow("GET", "/subscriptions/%s/providers/microsoft.insights/eventtypes/management/values"
                            "?api-version=2015-04-01&$filter=%s" % (S1, urllib.parse.quote(
                                "eventTimestamp ge '2026-11-01T00:00:00Z' and eventTimestamp le '2026-11-30T00:00:00Z'")),
                            t)
    eq(pages, 3, "activity log pages")
    eq(len(items), 10, "activity log events")
    ts = [i["eventTimestamp"] for i in items]
    eq(ts, sorted(ts, reverse=True), "newest first")


@test
def arm_lro_delete_resource():
    c = Env.c
    t = arm_token()
    rid = RG_PROD + "/providers/Microsoft.Storage/storageAccounts/stexfil7f3c"
    c.config({"lro": {"polls": 2, "retry_after": 0}})
    r = c.arm("DELETE", rid, "2023-05-01", t)
    status(r, 202)
    loc = r.header("Location")
    check(loc and "/operationresults/" in loc, "Location: %r", loc)
    eq(r.header("Retry-After"), "0", "Retry-After")
    g = c.arm("GET", rid, "2023-05-01", t)
    eq(g.json()["properties"]["provisioningState"], "Deleting", "state while deleting")
    p1 = c.request("GET", loc, headers={"Authorization": "Bearer " + t})
    status(p1, 202, "poll 1")
    p2 = c.request("GET", loc, headers={"Authorization": "Bearer " + t})
    status(p2, 202, "poll 2")
    p3 = c.request("GET", loc, headers={"Authorization": "Bearer " + t})
    status(p3, 204, "poll 3")
    status(c.arm("GET", rid, "2023-05-01", t), 404, "gone")
    status(c.arm("DELETE", rid, "2023-05-01", t), 204, "delete again: already gone")
    ev = [e for e in c.state("activity_log")["value"] if e["resourceId"] == rid and
          e["operationName"]["value"].endswith("/delete")]
    check(any(e["caller"] == WORKER for e in ev), "activity log records the worker's delete")
    # lock: CanNotDelete on stprodlogs01
    r = c.arm("DELETE", RG_PROD + "/providers/Microsoft.Storage/storageAccounts/stprodlogs01", "2023-05-01", t)
    status(r, 409)
    eq(r.json()["error"]["code"], "ScopeLocked", "locked")


@test
def arm_lro_vm_actions():
    c = Env.c
    t = arm_token()
    vm = RG_PROD + "/providers/Microsoft.Compute/virtualMachines/vm-web-01"
    c.config({"lro": {"polls": 1, "retry_after": 0}})
    r = c.arm("POST", vm + "/runCommand", "2024-11-01", t,
              body={"commandId": "RunShellScript", "script": ["getent passwd | cut -d: -f1"]})
    status(r, 202)
    check(r.header("Azure-AsyncOperation") and r.header("Location"), "both LRO headers")
    s = c.request("GET", r.header("Azure-AsyncOperation"), headers={"Authorization": "Bearer " + t})
    eq(s.json()["status"], "InProgress", "first status poll")
    r2 = c.arm("POST", vm + "/powerOff", "2024-11-01", t)
    status(r2, 409, "VM busy while the command runs")
    final = poll_location(r, t)
    status(final, 200)
    check("azureuser" in final.json()["value"][0]["message"], "stdout: %r", final.json())
    s = c.request("GET", r.header("Azure-AsyncOperation"), headers={"Authorization": "Bearer " + t})
    eq(s.json()["status"], "Succeeded", "status after completion")
    r = c.arm("POST", vm + "/runCommand", "2024-11-01", t, body={"commandId": "RunPowerShellScript"})
    status(r, 400, "Windows command on a Linux VM")
    r = c.arm("POST", vm + "/powerOff", "2024-11-01", t, query={"skipShutdown": "true"})
    status(r, 202)
    poll_location(r, t)
    iv = c.arm("GET", vm, "2024-11-01", t, query={"$expand": "instanceView"}).json()
    codes = [s["code"] for s in iv["properties"]["instanceView"]["statuses"]]
    check("PowerState/stopped" in codes, "power state: %s", codes)
    r = c.arm("POST", vm + "/runCommand", "2024-11-01", t, body={"commandId": "RunShellScript", "script": ["id"]})
    status(r, 409, "run command on a stopped VM")
    r = c.arm("POST", vm + "/reimage", "2024-11-01", t, body={"osProfile": {"adminPassword": "N3w!Passw0rd-x"}})
    status(r, 202)
    poll_location(r, t)
    st = c.state("resources", vm)
    eq(st["x-sim"]["reimageCount"], 1, "reimaged once")
    eq(st["x-sim"]["powerState"], "running", "running after reimage")
    check("userData" not in c.arm("GET", vm, "2024-11-01", t).json()["properties"], "userData only with $expand")
    # VMAccess password reset through an extension
    r = c.arm("PUT", vm + "/extensions/enablevmaccess", "2024-11-01", t,
              body={"location": "westeurope", "properties": {"publisher": "Microsoft.OSTCExtensions",
                                                              "type": "VMAccessForLinux",
                                                              "typeHandlerVersion": "1.5",
                                                              "autoUpgradeMinorVersion": True, "settings": {},
                                                              "protectedSettings": {"username": "azureuser",
                                                                                    "password": "S3cret!pw-1"}}})
    status(r, 201)
    check("protectedSettings" not in r.json()["properties"], "protectedSettings never returned")
    poll_location(r, t)
    st = c.state("resources", vm)
    eq(st["x-sim"]["localUsers"]["azureuser"]["password"], "S3cret!pw-1", "password recorded")


@test
def arm_lro_slow_and_failed():
    c = Env.c
    t = arm_token()
    vm = RG_PROD + "/providers/Microsoft.Compute/virtualMachines/vm-app-02"
    c.config({"lro": {"retry_after": 0}})
    c.add_fault(service="arm", method="POST", path="/deallocate$", action="lro",
                lro={"polls": 4, "retry_after": 7})
    r = c.arm("POST", vm + "/deallocate", "2024-11-01", t)
    status(r, 202)
    eq(r.header("Retry-After"), "7", "Retry-After from the slow-LRO fault")
    n = 0
    while True:
        s = c.request("GET", r.header("Azure-AsyncOperation"), headers={"Authorization": "Bearer " + t})
        n += 1
        if s.json()["status"] != "InProgress":
            break
    eq(n, 5, "polls until done")
    c.add_fault(service="arm", method="POST", path="/start$", action="lro", count=1,
                lro={"polls": 0, "outcome": "Failed", "failure_status": 409,
                     "error": {"code": "OperationPreempted", "message": "Operation execution has been preempted."}})
    r = c.arm("POST", vm + "/start", "2024-11-01", t)
    s = c.request("GET", r.header("Azure-AsyncOperation"), headers={"Authorization": "Bearer " + t})
    eq(s.json()["status"], "Failed", "failed LRO")
    eq(s.json()["error"]["code"], "OperationPreempted", "error code")
    p = c.request("GET", r.header("Location"), headers={"Authorization": "Bearer " + t})
    status(p, 409, "Location of a failed LRO")
    eq(c.state("resources", vm)["x-sim"]["powerState"], "deallocated", "failed start changed nothing")
    # time-based completion with the admin clock
    c.config({"lro": {"polls": 0, "delay_seconds": 30}})
    r = c.arm("POST", vm + "/start", "2024-11-01", t)
    s = c.request("GET", r.header("Azure-AsyncOperation"), headers={"Authorization": "Bearer " + t})
    eq(s.json()["status"], "InProgress", "before the delay")
    c.clock(advance=31)
    s = c.request("GET", r.header("Azure-AsyncOperation"), headers={"Authorization": "Bearer " + arm_token()})
    eq(s.json()["status"], "Succeeded", "after the delay")


@test
def arm_rate_limit_reads_burst():
    c = Env.c
    t = arm_token()
    c.clock(freeze=True)
    try:
        path = "/subscriptions/%s/resourcegroups/rg-prod" % S1
        results = []
        for i in range(300):
            r = c.arm("GET", path, "2021-04-01", t)
            results.append(r)
        ok = [r for r in results if r.status == 200]
        eq(len(ok), 250, "reads allowed by a full bucket")
        eq(results[249].status, 200, "request 250")
        first_429 = results[250]
        status(first_429, 429, "request 251")
        check(first_429.header("Retry-After") and int(first_429.header("Retry-After")) >= 1, "Retry-After seconds")
        eq(first_429.json()["error"]["code"], "SubscriptionRequestsThrottled", "throttle body")
        eq(results[0].header("x-ms-ratelimit-remaining-subscription-reads"), "249", "remaining after the first")
        eq(results[248].header("x-ms-ratelimit-remaining-subscription-reads"), "1", "remaining after 249")
        # other principals and subscriptions have their own buckets
        status(c.arm("GET", path, "2021-04-01", arm_token(READER)), 200, "another principal")
        status(c.arm("GET", "/subscriptions/%s/resourcegroups/rg-automation" % S2, "2021-04-01", t), 200,
               "another subscription")
        # writes/deletes are separate buckets
        r = c.arm("DELETE", AA + "/runbooks/rb-maint-7f3c", "2024-10-23", t)
        status(r, 200, "delete while reads are exhausted")
        check(r.header("x-ms-ratelimit-remaining-subscription-deletes") == "199", "deletes header: %r",
              r.header("x-ms-ratelimit-remaining-subscription-deletes"))
        c.clock(advance=1)
        status(c.arm("GET", path, "2021-04-01", t), 200, "after 1 s refill")
        logged = c.requests(status="429")
        eq(len(logged), 50, "429s in the request log")
    finally:
        c.clock(freeze=False)


@test
def graph_rate_limit():
    c = Env.c
    c.config({"rate_limits": {"graph": {"burst": 5, "refill_per_second": 0.5, "retry_after_format": "float"}}})
    t = graph_token()
    codes = [c.graph("GET", "/users/" + MALLORY, t).status for _ in range(5)]
    eq(codes, [200] * 5, "within the limit")
    r = c.graph("GET", "/users/" + MALLORY, t)
    status(r, 429)
    shape(ref_file("graph-error-429.json"), r.json(), "Graph 429")
    check(float(r.header("Retry-After")) > 0, "fractional Retry-After: %r", r.header("Retry-After"))


# --------------------------------------------------------------------------- faults


@test
def faults_latency_error_reset():
    c = Env.c
    t = arm_token()
    path = "/subscriptions/%s/resourcegroups/rg-prod" % S1
    c.add_fault(service="arm", path="/resourcegroups/rg-prod$", latency_ms=300)
    t0 = time.time()
    status(c.arm("GET", path, "2021-04-01", t), 200)
    check(time.time() - t0 >= 0.29, "latency applied")
    c.clear_faults()
    c.add_fault(service="arm", path="/resourcegroups/rg-prod$", latency_ms={"dist": "uniform", "min": 50, "max": 60})
    t0 = time.time()
    c.arm("GET", path, "2021-04-01", t)
    check(time.time() - t0 >= 0.049, "distribution latency applied")
    c.clear_faults()
    fid = c.add_fault(service="arm", method="GET", path="/resourcegroups/rg-prod$", status=503, count=2,
                      retry_after=2)
    r1, r2, r3 = (c.arm("GET", path, "2021-04-01", t) for _ in range(3))
    status(r1, 503)
    eq(r1.header("Retry-After"), "2", "fault Retry-After")
    eq(r1.json()["error"]["code"], "ServiceUnavailable", "fault body")
    status(r2, 503)
    status(r3, 200, "after count")
    f = next(x for x in c.faults() if x["id"] == fid)
    eq(f["fired"], 2, "fired count")
    c.clear_faults()
    c.add_fault(service="arm", path="/resourcegroups/rg-prod$", status=500, probability=0.5)
    codes = [c.arm("GET", path, "2021-04-01", t).status for _ in range(60)]
    check(5 < codes.count(500) < 55 and codes.count(200) > 5, "probability 0.5: %s", codes.count(500))
    c.clear_faults()
    c.add_fault(service="arm", path="/resourcegroups/rg-prod$", action="reset", count=1)
    c.close()
    try:
        c.arm("GET", path, "2021-04-01", t)
        raise Failure("expected a connection reset")
    except Failure:
        raise
    except Exception:  # noqa: BLE001 - any transport error is the expected outcome
        pass
    c.close()
    status(c.arm("GET", path, "2021-04-01", t), 200, "after the reset")
    log = c.requests(path="/resourcegroups/rg-prod$")
    check(any(e["reset"] for e in log), "reset logged")


@test
def faults_reset_after_write_is_applied():
    c = Env.c
    t = arm_token()
    rb = AA + "/runbooks/rb-maint-7f3c"
    c.add_fault(service="arm", method="DELETE", path="/runbooks/", action="reset", when="after", count=1)
    c.close()
    try:
        c.arm("DELETE", rb, "2024-10-23", t)
        raise Failure("expected a reset")
    except Failure:
        raise
    except Exception:  # noqa: BLE001
        pass
    c.close()
    status(c.arm("GET", rb, "2024-10-23", t), 404, "the delete took effect although the reply was lost")
    r = c.arm("DELETE", rb, "2024-10-23", t)
    status(r, 204, "retried delete: already gone")
    c.add_fault(service="graph", method="DELETE", status=429, retry_after=3, count=1)
    r = c.graph("DELETE", "/users/" + BACKUP, graph_token())
    status(r, 429)
    eq(r.json()["error"]["code"], "TooManyRequests", "Graph fault body")
    status(c.graph("DELETE", "/users/" + BACKUP, graph_token()), 204, "then succeeds")
    c.add_fault(service="token", status=503, count=1)
    r = c.token_request({"client_id": WORKER, "scope": ARM_SCOPE, "grant_type": "client_credentials",
                         "client_secret": c.ready["apps"][WORKER]["secret"]})
    status(r, 503, "token endpoint fault")


# --------------------------------------------------------------------------- model behaviour


@test
def model_alerts_get_dismiss_resolve():
    c = Env.c
    t = arm_token()
    sub_level = "/subscriptions/%s/providers/Microsoft.Security/locations/westeurope/alerts/%s" % (S1, ALERT1)
    rg_level = "%s/providers/Microsoft.Security/locations/westeurope/alerts/%s" % (RG_PROD, ALERT1)
    status(c.arm("GET", sub_level, "2022-01-01", t), 200, "subscription level (lenient)")
    r = c.arm("GET", rg_level, "2022-01-01", t)
    status(r, 200, "RG level")
    eq(r.json()["properties"]["systemAlertId"], ALERT1, "alert id")
    status(c.arm("GET", sub_level.replace("westeurope", "centralus"), "2022-01-01", t), 404, "wrong location")
    c.config({"alerts_strict_level": True})
    status(c.arm("GET", sub_level, "2022-01-01", t), 404, "strict: RG alert not at subscription level")
    status(c.arm("POST", rg_level + "/dismiss", "2022-01-01", t), 204, "dismiss")
    eq(c.arm("GET", rg_level, "2022-01-01", t).json()["properties"]["status"], "Dismissed", "status")
    status(c.arm("POST", rg_level + "/activate", "2022-01-01", t), 204, "activate")
    status(c.arm("POST", rg_level + "/resolve", "2022-01-01", t), 204, "resolve")
    eq(c.arm("GET", rg_level, "2022-01-01", t).json()["properties"]["status"], "Resolved", "status")
    c.config({"page_sizes": {"Alerts_List": 2}})
    items, pages = c.follow("GET", "/subscriptions/%s/providers/Microsoft.Security/alerts?api-version=2022-01-01"
                            % S1, t)
    eq((len(items), pages), (4, 2), "alerts over pages")
    loc = c.arm("GET", "/subscriptions/%s/providers/Microsoft.Security/locations" % S1, "2015-06-01-preview", t)
    eq(loc.json()["value"][0]["properties"]["homeRegionName"], "westeurope", "ascLocation")
    sc = c.arm("GET", "/subscriptions/%s/providers/Microsoft.Security/securityContacts/default" % S1,
               "2023-12-01-preview", t)
    check("secops@contoso.com" in sc.json()["properties"]["emails"], "security contact")


@test
def model_role_assignments():
    c = Env.c
    t = arm_token()
    base = "/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments" % S1
    r = c.arm("GET", base, "2022-04-01", t, query={"$filter": "principalId eq '%s'" % BACKUP})
    items = r.json()["value"]
    eq(len(items), 1, "svc-backup assignments")
    ra = items[0]
    check(ra["properties"]["roleDefinitionId"].endswith("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"), "Owner")
    r = c.arm("GET", RG_PROD + "/providers/Microsoft.Authorization/roleAssignments", "2022-04-01", t,
              query={"$filter": "atScope()"})
    scopes = {i["properties"]["scope"] for i in r.json()["value"]}
    check(all(s in ("/subscriptions/" + S1, RG_PROD) for s in scopes), "atScope: %s", scopes)
    r = c.arm("GET", base, "2022-04-01", t, query={"$filter": "caller eq 'x'"})
    status(r, 400, "unsupported filter")
    d = c.arm("DELETE", ra["id"], "2022-04-01", t)
    status(d, 200)
    eq(d.json()["id"], ra["id"], "delete returns the assignment")
    status(c.arm("DELETE", ra["id"], "2022-04-01", t), 204, "already deleted")
    status(c.arm("GET", ra["id"], "2022-04-01", t), 404, "get after delete")
    # undo: re-create from the returned body
    p = d.json()["properties"]
    r = c.arm("PUT", ra["id"], "2022-04-01", t, body={"properties": {"roleDefinitionId": p["roleDefinitionId"],
                                                                     "principalId": p["principalId"],
                                                                     "principalType": p["principalType"]}})
    status(r, 201, "re-create")
    rd = c.arm("GET", "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/"
                      "acdd72a7-3385-48ef-bd42-f606fba81ae7" % S1, "2022-04-01", t)
    eq(rd.json()["properties"]["roleName"], "Reader", "built-in role")
    rl = c.arm("GET", "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions" % S1, "2022-04-01", t,
               query={"$filter": "roleName eq 'Owner'"})
    eq([x["name"] for x in rl.json()["value"]], ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635"], "filter roleName")


@test
def model_rbac_enforced():
    c = Env.c
    t = arm_token(READER)
    status(c.arm("GET", AA + "/runbooks", "2024-10-23", arm_token(READER)), 403, "reader has no role on sub 2")
    status(c.arm("GET", "/subscriptions/%s/resourcegroups/rg-prod" % S1, "2021-04-01", t), 200, "reader reads")
    r = c.arm("DELETE", RG_PROD + "/providers/Microsoft.Storage/storageAccounts/stexfil7f3c", "2023-05-01", t)
    status(r, 403)
    eq(r.json()["error"]["code"], "AuthorizationFailed", "reader cannot delete")
    check("Microsoft.Storage/storageAccounts/delete" in r.json()["error"]["message"], "action in message")


@test
def model_runbooks_and_resources():
    c = Env.c
    t = arm_token()
    r = c.arm("GET", AA + "/runbooks", "2024-10-23", t)
    eq(sorted(x["name"] for x in r.json()["value"]), ["Patch-Servers", "Rotate-Keys", "rb-maint-7f3c"], "runbooks")
    r = c.arm("GET", AA + "/runbooks/rb-maint-7f3c/content", "2024-10-23", t)
    status(r, 200)
    check(r.header("content-type").startswith("text/powershell"), "content type %s", r.header("content-type"))
    check(b"Invoke-WebRequest" in r.body, "script text")
    status(c.arm("DELETE", AA + "/runbooks/rb-maint-7f3c", "2024-10-23", t), 200, "delete runbook")
    r = c.arm("GET", AA + "/runbooks/rb-maint-7f3c", "2024-10-23", t)
    status(r, 404)
    eq(r.json()["code"], "NotFound", "Automation error body is top-level")
    r = c.arm("POST", AA + "/listDeletedRunbooks", "2024-10-23", t)
    eq([x["name"] for x in r.json()["value"]], ["rb-maint-7f3c"], "listDeletedRunbooks")
    r = c.arm("GET", "/subscriptions/%s/resources" % S1, "2021-04-01", t,
              query={"$filter": "resourceType eq 'Microsoft.Storage/storageAccounts'", "$expand": "createdTime"})
    names = sorted(x["name"] for x in r.json()["value"])
    eq(names, ["stexfil7f3c", "stprodlogs01"], "filtered resources")
    check(all("createdTime" in x for x in r.json()["value"]), "$expand=createdTime")
    r = c.arm("GET", "/subscriptions/%s/resources" % S1, "2021-04-01", t,
              query={"$filter": "tagName eq 'owner' and tagValue eq 'alice@contoso.com'"})
    check(r.json()["value"] and all("tags" not in x for x in r.json()["value"]), "tag filter drops tags")
    tg = c.arm("GET", RG_PROD + "/providers/Microsoft.Resources/tags/default", "2021-04-01", t)
    eq(tg.json()["properties"]["tags"]["owner"], "alice@contoso.com", "RG tags")
    tg = c.arm("GET", "/subscriptions/%s/providers/Microsoft.Resources/tags/default" % S1, "2021-04-01", t)
    eq(tg.json()["properties"]["tags"]["costCenter"], "cc-100", "subscription tags")
    lk = c.arm("GET", "/subscriptions/%s/providers/Microsoft.Authorization/locks" % S1, "2020-05-01", t)
    eq([x["name"] for x in lk.json()["value"]], ["keep-logs"], "locks")


@test
def model_activity_log_filters():
    c = Env.c
    t = arm_token()
    url = "/subscriptions/%s/providers/microsoft.insights/eventtypes/management/values" % S1
    rng = "eventTimestamp ge '2026-11-28T08:57:00Z' and eventTimestamp le '2026-11-28T09:04:00Z'"
    r = c.arm("GET", url, "2015-04-01", t, query={"$filter": rng})
    callers = {e["caller"] for e in r.json()["value"]}
    eq(callers, {"mallory@contoso.com"}, "callers in the alert window")
    eq(len(r.json()["value"]), 7, "events in the window")
    r = c.arm("GET", url, "2015-04-01", t, query={"$filter": rng + " and caller eq 'mallory@contoso.com'"})
    status(r, 400, "caller is not filterable")
    eq(sorted(r.json()), ["code", "message"], "activity-log error body is top-level")
    r = c.arm("GET", url, "2015-04-01", t, query={"$filter": "eventTimestamp ge '2026-11-28T08:57:00Z'"})
    status(r, 400, "both bounds required")
    vm = RG_PROD + "/providers/Microsoft.Compute/virtualMachines/vm-miner-01"
    r = c.arm("GET", url, "2015-04-01", t, query={"$filter": rng + " and resourceUri eq '%s'" % vm})
    eq([e["operationName"]["value"] for e in r.json()["value"]], ["Microsoft.Compute/virtualMachines/write"],
       "resourceUri filter")
    r = c.arm("GET", url, "2015-04-01", t, query={"$filter": rng + " and resourceGroupName eq 'rg-prod'",
                                                   "$select": "caller,operationName,eventTimestamp"})
    eq(sorted(r.json()["value"][0]), ["caller", "eventTimestamp", "operationName"], "$select")


@test
def model_graph_users():
    c = Env.c
    t = graph_token()
    r = c.graph("GET", "/users/" + MALLORY, t, query={"$select": "id,accountEnabled,createdDateTime,userType"})
    eq(sorted(r.json()), ["@odata.context", "accountEnabled", "createdDateTime", "id", "userType"], "$select")
    status(c.graph("PATCH", "/users/" + MALLORY, t, body={"accountEnabled": False}), 204, "disable")
    eq(c.graph("GET", "/users/" + MALLORY, t, query={"$select": "accountEnabled"}).json()["accountEnabled"],
       False, "disabled")
    r = c.graph("PATCH", "/users/" + MALLORY, t, body={"passwordProfile": {"password": "weak",
                                                                           "forceChangePasswordNextSignIn": True}})
    status(r, 400, "weak password")
    status(c.graph("PATCH", "/users/" + MALLORY, t,
                   body={"passwordProfile": {"password": "Xq9!vT2#mL7@pR4z", "forceChangePasswordNextSignIn": True}}),
           204, "reset password")
    eq(c.state("users", MALLORY)["x-sim"]["password"], "Xq9!vT2#mL7@pR4z", "stored password")
    r = c.graph("POST", "/users/%s/revokeSignInSessions" % MALLORY, t)
    eq(r.json()["value"], True, "revoke")
    status(c.graph("PATCH", "/users/" + BREAK, t, body={"accountEnabled": False}), 403, "break-glass protected")
    status(c.graph("DELETE", "/users/" + BREAK, t), 403, "break-glass delete")
    status(c.graph("DELETE", "/users/svc-backup-7f3c@contoso.com", t), 204, "delete by UPN")
    status(c.graph("GET", "/users/" + BACKUP, t), 404, "deleted")
    status(c.graph("DELETE", "/users/" + BACKUP, t), 404, "delete again")
    r = c.graph("GET", "/directory/deletedItems/microsoft.graph.user", t)
    check(BACKUP in [x["id"] for x in r.json()["value"]], "in the recycle bin")
    r = c.graph("GET", "/auditLogs/directoryAudits", t,
                query={"$filter": "activityDisplayName eq 'Add user' and initiatedBy/user/id eq '%s'" % MALLORY})
    eq([x["targetResources"][0]["id"] for x in r.json()["value"]], [BACKUP], "Add user by mallory")
    r = c.graph("GET", "/auditLogs/directoryAudits", t,
                query={"$filter": "activityDateTime ge 2026-11-28T00:00:00Z and "
                                  "targetResources/any(x: x/id eq '%s')" % BACKUP})
    acts = sorted(x["activityDisplayName"] for x in r.json()["value"])
    check("Delete user" in acts and "Add user" in acts, "audit trail: %s", acts)
    reader = graph_token(READER)
    status(c.graph("PATCH", "/users/" + MALLORY, reader, body={"accountEnabled": True}), 403, "no permission")
    status(c.graph("GET", "/users/" + MALLORY + "/bogus", t), 400, "unknown segment")


@test
def admin_state_roundtrip_and_reset():
    c = Env.c
    t = arm_token()
    rb = AA + "/runbooks/Injected-1"
    c.put_object("resources", {"id": rb, "type": "Microsoft.Automation/AutomationAccounts/Runbooks",
                               "location": "westeurope", "properties": {"runbookType": "PowerShell",
                                                                        "state": "Published"},
                               "x-sim": {"content": "Write-Output 1"}})
    status(c.arm("GET", rb, "2024-10-23", t), 200, "added through admin")
    c.patch_object("resources", rb, {"properties": {"state": "Edit"}})
    eq(c.arm("GET", rb, "2024-10-23", t).json()["properties"]["state"], "Edit", "patched")
    c.patch_object("users", MALLORY, {"jobTitle": "Changed"})
    eq(c.state("users", MALLORY)["jobTitle"], "Changed", "patched user")
    full = c.state()
    check(set(full) >= {"subscriptions", "resources", "users", "alerts", "activity_log"}, "full state")
    c.reset()
    status(c.arm("GET", rb, "2024-10-23", arm_token()), 404, "reset drops it")
    eq(c.state("users", MALLORY)["jobTitle"], "DevOps Engineer", "reset restores")
    c.load_state(full)
    status(c.arm("GET", rb, "2024-10-23", arm_token()), 200, "state reloaded from GET /_admin/state")


@test
def concurrency_parallel_clients():
    c = Env.c
    c.config({"rate_limits": {"arm": {"enabled": False}}})
    t = arm_token()
    errors = []

    def worker(n):
        from client import SimClient
        cl = SimClient(c.ready)
        for i in range(25):
            r = cl.arm("GET", "/subscriptions/%s/providers/Microsoft.Security/alerts" % S1, "2022-01-01", t)
            if r.status != 200:
                errors.append(r.status)
        cl.close()
    th = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    eq(errors, [], "errors under 8 parallel keep-alive clients")
    log = c.requests(operation="Alerts_List")
    eq(len(log), 200, "logged requests")


# --------------------------------------------------------------------------- runner


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("-k", dest="pattern", help="run tests whose name contains this")
    ap.add_argument("--reference-dir", help="reference payload folder (default: %s if present, else %s)"
                                            % (SHARED_REF, LOCAL_REF))
    args = ap.parse_args()
    Env.ref = args.reference_dir or (SHARED_REF if os.path.isdir(SHARED_REF) else LOCAL_REF)
    with open(os.path.join(HERE, "operations.json")) as f:
        Env.operations = {o["operationId"]: o for o in json.load(f)["operations"]}
    with open(BASIC) as f:
        Env.basic = json.load(f)
    Env.examples = load_examples()
    doc_tests()
    example_tests = [make_example_test(f) for f in sorted(Env.examples)]
    all_tests = example_tests + TESTS
    if args.pattern:
        all_tests = [t for t in all_tests if args.pattern in t.__name__]
    passed = failed = 0
    sim = SimProcess(BASIC, verbose=args.verbose)
    sim.start()
    Env.sim, Env.c = sim, sim.client()
    print("azure-sim on https://127.0.0.1:%d (reference: %s, %d x-ms-examples files)"
          % (Env.c.port, Env.ref, len(Env.examples)))
    try:
        for t in all_tests:
            try:
                Env.c.reset()
                Env.c.close()
                t0 = time.time()
                note = t()
                print("PASS %s (%.2fs)%s" % (t.__name__, time.time() - t0, "  [%s]" % note if note else ""))
                passed += 1
            except Failure as e:
                print("FAIL %s: %s" % (t.__name__, e))
                failed += 1
            except Exception as e:  # noqa: BLE001
                print("FAIL %s: %s: %s" % (t.__name__, type(e).__name__, e))
                if args.verbose:
                    traceback.print_exc()
                failed += 1
    finally:
        rc = sim.stop()
        if rc not in (0, None):
            print("FAIL simulator exit status %s (see its log)" % rc)
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
