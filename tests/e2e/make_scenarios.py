#!/usr/bin/python3
"""Writes the end-to-end scenario files and their alerts, derived from basic.json.

    /usr/bin/python3 tests/e2e/make_scenarios.py          # rewrite the files
    /usr/bin/python3 tests/e2e/make_scenarios.py --check  # exit 1 if a file is out of date

Outputs (checked in; the tests read them, they never run this script):
  tests/data/scenarios/e2e-users.json         users area
  tests/data/scenarios/e2e-subscription.json  subscriptions area
  tests/data/scenarios/e2e-vm.json            virtual machines area
  tests/e2e/alerts/users.json                 the continuous-export (flat) alerts for the users
  tests/e2e/alerts/vm.json                    and VM areas
The subscriptions area uses tests/data/alerts/arm-flat-runbook.json, and the combined scenario
is basic.json itself with tests/data/alerts/arm-flat-suspicious-ip.json.

Each area scenario holds one threat actor's footprint in that area next to familiar look-alikes
and protected objects; the "description" of each file says which is which. The test
(test_response.py) asserts that exactly the footprint is removed or contained.
"""

import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SCEN = os.path.join(ROOT, "tests", "data", "scenarios")
ALERTS = os.path.join(ROOT, "tests", "data", "alerts")

TENANT = "c5e8a3d1-2b4f-4a6c-8e9d-1f3a5b7c9d02"
PROD = "3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34"
OPS = "8c1d4e2f-7a3b-4f6e-b5d9-0e2c4a6b8d13"
OWNER_ROLE = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER_ROLE = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
MALLORY = "5b0e7f3a-9c2d-4e1b-a8f6-3d7c0e9b2a14"
ALICE = "a11ce000-1111-4222-8333-444455556666"
BOB = "b0b00000-1234-4567-89ab-cdef01234567"
CAROL = "ca201000-2222-4333-8444-555566667777"
BREAKGLASS = "b7eac91a-55aa-4c3e-9d1f-0a1b2c3d4e5f"
SVC_DEPLOY = "e7d6c5b4-a3f2-4e1d-9c8b-7a6f5e4d3c2b"
UNKNOWN_SP = "e0e0e0e0-1111-4222-8333-999999999999"

# Alert ids (Defender's shape: digits, underscore, GUID).
USERS_ALERT = "2516839117039432001_4b8e2d3f-9c5a-4d7b-8f20-6e3c9b1d8a45"
VM_ALERT = "2516839100000000777_7c1d9e2a-3b4f-4a6d-9e8c-5f0a1b2c3d4e"
SUBSCRIPTION_ALERT = "2516838755512345678_0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"  # basic.json's


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def rg_id(sub, rg):
    return "/subscriptions/%s/resourceGroups/%s" % (sub, rg)


def claims(oid, upn, ip):
    c = {"aud": "https://management.core.windows.net/",
         "iss": "https://sts.windows.net/%s/" % TENANT,
         "http://schemas.microsoft.com/identity/claims/objectidentifier": oid,
         "ipaddr": ip, "appid": "1950a258-227b-4e31-a9cf-717495945fc2"}
    if upn:
        c["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] = upn
    return c


def activity(ts, caller, op, resource_id, sub, method, crid, oid, ip, status_code="Created",
             status="Succeeded"):
    return {"eventTimestamp": ts, "caller": caller, "operationName": op,
            "resourceId": resource_id, "status": status, "category": "Administrative",
            "subscriptionId": sub, "subStatus": "",
            "httpRequest": {"clientRequestId": crid, "clientIpAddress": ip, "method": method},
            "properties": {"statusCode": status_code, "serviceRequestId": None,
                           "eventCategory": "Administrative"},
            "claims": claims(oid, caller if "@" in caller else None, ip)}


def graph_user(uid, upn, display, created, job=None, note=None):
    u = {"id": uid, "userPrincipalName": upn, "displayName": display, "givenName": None,
         "surname": None, "jobTitle": job, "mail": upn if job else None, "mobilePhone": None,
         "officeLocation": None, "preferredLanguage": "en-US", "businessPhones": [],
         "accountEnabled": True, "userType": "Member", "createdDateTime": created,
         "onPremisesSyncEnabled": None, "mailNickname": upn.split("@")[0]}
    if note:
        u["x-sim"] = {"note": note}
    return u


def add_user_audit(n, audit_id, ts, by_id, by_upn, by_name, by_ip, uid, upn, display):
    return {"id": audit_id, "category": "UserManagement",
            "correlationId": "f0a1b2c3-d4e5-4f60-8a7b-%012d" % n,
            "result": "success", "resultReason": "", "activityDisplayName": "Add user",
            "activityDateTime": ts, "loggedByService": "Core Directory", "operationType": "Add",
            "initiatedBy": {"app": None, "user": {
                "id": by_id, "displayName": by_name, "userPrincipalName": by_upn,
                "ipAddress": by_ip, "userType": "Member", "homeTenantId": TENANT,
                "homeTenantName": "Contoso"}},
            "targetResources": [{"id": uid, "displayName": display, "type": "User",
                                 "userPrincipalName": upn, "groupType": None,
                                 "modifiedProperties": [
                                     {"displayName": "AccountEnabled", "oldValue": "[]",
                                      "newValue": "[true]"}]}],
            "additionalDetails": []}


def role_assignment(name, scope, principal, ptype, role, created, by):
    return {"name": name, "scope": scope, "principalId": principal, "principalType": ptype,
            "roleDefinitionId": role, "createdOn": created, "updatedOn": created,
            "createdBy": by, "updatedBy": by}


def storage(sub, rg, name, created, by, location="westeurope", tags=None):
    return {"id": "%s/providers/Microsoft.Storage/storageAccounts/%s" % (rg_id(sub, rg), name),
            "name": name, "type": "Microsoft.Storage/storageAccounts", "location": location,
            "kind": "StorageV2", "sku": {"name": "Standard_LRS", "tier": "Standard"},
            "tags": tags or {},
            "properties": {"provisioningState": "Succeeded", "creationTime": created},
            "systemData": {"createdBy": by, "createdByType": "User", "createdAt": created,
                           "lastModifiedBy": by, "lastModifiedByType": "User",
                           "lastModifiedAt": created}}


def strip_mallory_arm(s):
    """Removes mallory's Resource Manager footprint from basic.json (role assignments, created
    resources and her activity-log events), leaving the directory as it is."""
    s["role_assignments"] = [r for r in s["role_assignments"] if not r["name"].startswith("7f3c")]
    s["resources"] = [r for r in s["resources"]
                      if r["name"] not in ("vm-miner-01", "stexfil7f3c")]
    s["activity_log"] = [e for e in s["activity_log"] if e["caller"] != "mallory@contoso.com"]


def strip_mallory_directory(s):
    s["users"] = [u for u in s["users"] if u["id"] != "d3adbeef-7f3c-4b1d-9e2a-5c6d7e8f9a01"]
    s["directory_audits"] = [a for a in s["directory_audits"]
                             if not a["id"].startswith("Directory_7F3C")]


def rest_alert(alert_id, sub, rg, atype, name, severity, start, end, resource_id, entity,
               entities, extended):
    scope = rg_id(sub, rg) if rg else "/subscriptions/%s" % sub
    uri = ("https://portal.azure.com/#blade/Microsoft_Azure_Security_AzureDefenderForData/"
           "AlertBlade/alertId/%s/subscriptionId/%s/%sreferencedFrom/alertDeepLink/location/"
           "westeurope" % (alert_id, sub, ("resourceGroup/%s/" % rg) if rg else ""))
    return {"id": "%s/providers/Microsoft.Security/locations/westeurope/alerts/%s"
                  % (scope, alert_id),
            "name": alert_id, "type": "Microsoft.Security/Locations/alerts",
            "properties": {
                "version": "2022-01-01", "alertType": atype, "systemAlertId": alert_id,
                "productComponentName": "Resource Manager", "alertDisplayName": name,
                "description": name + ".", "severity": severity, "intent": "Persistence",
                "startTimeUtc": start, "endTimeUtc": end,
                "resourceIdentifiers": [{"azureResourceId": resource_id,
                                         "type": "AzureResource"}],
                "remediationSteps": [
                    "Contact the resource owner to find out whether the activity was expected. "
                    "If it was, dismiss the alert.",
                    "If it was not, treat the related user accounts, subscriptions and virtual "
                    "machines as compromised and mitigate."],
                "vendorName": "Microsoft", "status": "Active", "extendedLinks": [],
                "alertUri": uri, "timeGeneratedUtc": end, "productName":
                    "Microsoft Defender for Cloud", "processingEndTimeUtc": end,
                "entities": entities, "isIncident": False, "correlationKey": None,
                "extendedProperties": extended, "compromisedEntity": entity,
                "techniques": [], "subTechniques": []}}, uri


def flat_alert(template, alert_id, atype, name, severity, start, end, resource_id, entity,
               entities, extended, uri, sub):
    a = copy.deepcopy(template)
    a.update({"AlertType": atype, "SystemAlertId": alert_id, "AlertDisplayName": name,
              "Description": name + ".", "Severity": severity, "Status": "New",
              "StartTimeUtc": start, "EndTimeUtc": end, "TimeGenerated": end,
              "ProcessingEndTime": end, "AzureResourceId": resource_id,
              "CompromisedEntity": entity, "Entities": entities, "AlertUri": uri,
              "ExtendedProperties": extended, "Intent": "Persistence"})
    a["ResourceIdentifiers"] = [
        {"$id": "90", "AzureResourceId": resource_id, "Type": "AzureResource",
         "AzureResourceTenantId": TENANT},
        {"$id": "91", "AadTenantId": TENANT, "Type": "AAD"}]
    return a


# ------------------------------------------------------------------------------ users area

def users_area(basic, template):
    s = copy.deepcopy(basic)
    strip_mallory_arm(s)
    s["description"] = (
        "e2e users area (derived from basic.json by tests/e2e/make_scenarios.py). Alert "
        "ARM_UnusedAccountPersistence %s on Contoso Production names mallory@contoso.com "
        "(familiar, compromised) and the break-glass account breakglass@contoso.com, whose "
        "sign-in the threat actor used. Footprint, directory only: mallory created "
        "svc-backup-7f3c (audit 09:00:11, as in basic.json) and adm-ops-7f3c (audit 09:04:30). "
        "Look-alikes: lena.vermeer@contoso.com, created by alice in the same window (audit "
        "09:05:00); alice, bob, carol, svc-deploy. Protected: breakglass (policy."
        "protected_principals lists its UPN; it is also a Global Administrator). Mallory's "
        "Resource Manager footprint of basic.json is removed: no role assignment, resource or VM "
        "is involved." % USERS_ALERT)
    s["users"].append(graph_user("ad0f7f3c-0b1e-4c2d-9e3f-4a5b6c7d8e90", "adm-ops-7f3c@contoso.com",
                                 "adm-ops", "2026-11-28T09:04:30Z",
                                 note="created by mallory during the alert window (threat actor)"))
    s["users"].append(graph_user("1e4a0000-5555-4666-8777-888899990000",
                                 "lena.vermeer@contoso.com", "Lena Vermeer",
                                 "2026-11-28T09:05:00Z", job="Platform Engineer",
                                 note="new hire created by alice in the window (familiar)"))
    s["directory_audits"].append(add_user_audit(
        3, "Directory_7F3C_0003", "2026-11-28T09:04:30.1200000Z", MALLORY, "mallory@contoso.com",
        "Mallory Vos", "203.0.113.7", "ad0f7f3c-0b1e-4c2d-9e3f-4a5b6c7d8e90",
        "adm-ops-7f3c@contoso.com", "adm-ops"))
    s["directory_audits"].append(add_user_audit(
        4, "Directory_ALICE_0003", "2026-11-28T09:05:00.0000000Z", ALICE, "alice@contoso.com",
        "Alice Jansen", "192.0.2.10", "1e4a0000-5555-4666-8777-888899990000",
        "lena.vermeer@contoso.com", "Lena Vermeer"))
    start, end = "2026-11-28T08:57:13.0000000Z", "2026-11-28T09:06:00.0000000Z"
    name = "PREVIEW - Suspicious management session using an inactive account detected"
    atype = "ARM_UnusedAccountPersistence"
    rest_entities = [
        {"type": "account", "name": "mallory", "upnSuffix": "contoso.com",
         "aadTenantId": TENANT, "aadUserId": MALLORY},
        {"type": "account", "name": "breakglass", "upnSuffix": "contoso.com",
         "aadTenantId": TENANT, "aadUserId": BREAKGLASS},
        {"type": "ip", "address": "203.0.113.7"}]
    rest_ext = {"resourceType": "Subscription", "Client IP address": "203.0.113.7",
                "Client principal name": "mallory@contoso.com",
                "CompromisedEntity": "Contoso Production",
                "ProductComponentName": "Resource Manager"}
    sub_id = "/subscriptions/%s" % PROD
    alert, uri = rest_alert(USERS_ALERT, PROD, None, atype, name, "Medium", start, end, sub_id,
                            "Contoso Production", rest_entities, rest_ext)
    s["alerts"].append(alert)
    flat_entities = [
        {"$id": "2", "Name": "mallory", "UPNSuffix": "contoso.com", "AadTenantId": TENANT,
         "AadUserId": MALLORY, "Asset": False, "Type": "account"},
        {"$id": "3", "Name": "breakglass", "UPNSuffix": "contoso.com", "AadTenantId": TENANT,
         "AadUserId": BREAKGLASS, "Asset": False, "Type": "account"},
        {"$id": "4", "Address": "203.0.113.7", "Asset": False, "Type": "ip"}]
    flat_ext = dict(rest_ext, **{
        "Operations": "Add user; Add user",
        "EffectiveAzureResourceId": sub_id, "EffectiveSubscriptionId": PROD})
    flat = flat_alert(template, USERS_ALERT, atype, name, "Medium", start, end, sub_id,
                      "Contoso Production", flat_entities, flat_ext, uri, PROD)
    return s, flat


# ------------------------------------------------------------------------ subscriptions area

def subscription_area(basic):
    s = copy.deepcopy(basic)
    s["description"] = (
        "e2e subscriptions area (derived from basic.json by tests/e2e/make_scenarios.py). Alert "
        "ARM_PowerZure.StartRunbook %s on Contoso Operations "
        "(tests/data/alerts/arm-flat-runbook.json) names svc-deploy@contoso.com (familiar, "
        "compromised). Footprint in the subscription, all in the alert window 13:20:00-13:24:10: "
        "runbook rb-maint-7f3c in aa-ops (basic.json), role assignment 7f3c0003-... giving the "
        "unknown service principal e0e0e0e0-... Owner on the subscription (13:22:30), storage "
        "account stdrop7f3c in rg-automation (13:23:40). Protected: storage account stsecdrop7f3c "
        "that svc-deploy created at 13:23:58 in rg-secops, whose resource group carries the tag "
        "quench=protected: it is footprint, but the tag says a person decides; storage account "
        "stlock7f3c that svc-deploy created at 13:23:50 and then guarded with a CanNotDelete "
        "lock keep-7f3c (13:24:05): locks are never touched, so it stays too. Look-alikes: "
        "stsecops01 in rg-secops, familiar, which svc-deploy merely changed at 13:23:55; "
        "runbooks Patch-Servers and Rotate-Keys, "
        "runbook Hotfix-Certs that bob created at 13:25:00 (listed in policy.known_resources), "
        "a Reader assignment for carol that bob made at 13:26:00 (carol is in "
        "policy.known_principals), stlegacy01, aa-ops itself, and everything in Contoso "
        "Production (mallory's footprint there belongs to another alert and stays)." %
        SUBSCRIPTION_ALERT)
    ip = "198.51.100.77"
    s["resource_groups"].append({"subscriptionId": OPS, "name": "rg-secops",
                                 "location": "westeurope",
                                 "tags": {"owner": "secops@contoso.com", "quench": "protected"}})
    ra_bad = role_assignment("7f3c0003-aaaa-4bbb-8ccc-000000000003", "/subscriptions/%s" % OPS,
                             UNKNOWN_SP, "ServicePrincipal", OWNER_ROLE,
                             "2026-11-28T13:22:30.4000000Z", SVC_DEPLOY)
    ra_carol = role_assignment("33333333-0000-4000-8000-000000000001",
                               rg_id(OPS, "rg-automation"), CAROL, "User", READER_ROLE,
                               "2026-11-28T13:26:00.0000000Z", BOB)
    s["role_assignments"] += [ra_bad, ra_carol]
    drop = storage(OPS, "rg-automation", "stdrop7f3c", "2026-11-28T13:23:40.2000000Z",
                   "svc-deploy@contoso.com")
    secops = storage(OPS, "rg-secops", "stsecops01", "2025-01-15T10:00:00.0000000Z",
                     "secops@contoso.com")
    hotfix = copy.deepcopy(next(r for r in s["resources"] if r["name"] == "Rotate-Keys"))
    hotfix["id"] = hotfix["id"].replace("Rotate-Keys", "Hotfix-Certs")
    hotfix["name"] = "Hotfix-Certs"
    hotfix["properties"].update({"creationTime": "2026-11-28T13:25:00.000+00:00",
                                 "lastModifiedTime": "2026-11-28T13:25:00.000+00:00",
                                 "description": "Emergency certificate renewal (bob)"})
    hotfix["x-sim"] = {"content": "Connect-AzAccount -Identity | Out-Null\n"
                                  "Update-AzKeyVaultCertificate -VaultName kv-ops -Name web\n"}
    secdrop = storage(OPS, "rg-secops", "stsecdrop7f3c", "2026-11-28T13:23:58.6000000Z",
                      "svc-deploy@contoso.com")
    locked = storage(OPS, "rg-automation", "stlock7f3c", "2026-11-28T13:23:50.1000000Z",
                     "svc-deploy@contoso.com")
    s["resources"] += [drop, secops, secdrop, locked, hotfix]
    lock_id = locked["id"] + "/providers/Microsoft.Authorization/locks/keep-7f3c"
    s["locks"].append({"id": lock_id, "name": "keep-7f3c", "type": "Microsoft.Authorization/locks",
                       "properties": {"level": "CanNotDelete", "notes": "do not delete",
                                      "owners": None}})
    ra_scope_id = "/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments/%s" % (
        OPS, ra_bad["name"])
    carol_ra_id = "%s/providers/Microsoft.Authorization/roleAssignments/%s" % (
        rg_id(OPS, "rg-automation"), ra_carol["name"])
    s["activity_log"] += [
        activity("2026-11-28T13:22:30.4000000Z", "svc-deploy@contoso.com",
                 "Microsoft.Authorization/roleAssignments/write", ra_scope_id, OPS, "PUT",
                 "0c0c0c0c-0021-4000-8000-000000000021", SVC_DEPLOY, ip),
        activity("2026-11-28T13:23:40.2000000Z", "svc-deploy@contoso.com",
                 "Microsoft.Storage/storageAccounts/write", drop["id"], OPS, "PUT",
                 "0c0c0c0c-0022-4000-8000-000000000022", SVC_DEPLOY, ip),
        activity("2026-11-28T13:23:55.0000000Z", "svc-deploy@contoso.com",
                 "Microsoft.Storage/storageAccounts/write", secops["id"], OPS, "PATCH",
                 "0c0c0c0c-0023-4000-8000-000000000023", SVC_DEPLOY, ip, status_code="OK"),
        activity("2026-11-28T13:23:50.1000000Z", "svc-deploy@contoso.com",
                 "Microsoft.Storage/storageAccounts/write", locked["id"], OPS, "PUT",
                 "0c0c0c0c-0027-4000-8000-000000000027", SVC_DEPLOY, ip),
        activity("2026-11-28T13:24:05.0000000Z", "svc-deploy@contoso.com",
                 "Microsoft.Authorization/locks/write", lock_id, OPS, "PUT",
                 "0c0c0c0c-0028-4000-8000-000000000028", SVC_DEPLOY, ip),
        activity("2026-11-28T13:23:58.6000000Z", "svc-deploy@contoso.com",
                 "Microsoft.Storage/storageAccounts/write", secdrop["id"], OPS, "PUT",
                 "0c0c0c0c-0026-4000-8000-000000000026", SVC_DEPLOY, ip),
        activity("2026-11-28T13:25:00.0000000Z", "bob@contoso.com",
                 "Microsoft.Automation/automationAccounts/runbooks/write", hotfix["id"], OPS,
                 "PUT", "0c0c0c0c-0024-4000-8000-000000000024", BOB, "192.0.2.20"),
        activity("2026-11-28T13:26:00.0000000Z", "bob@contoso.com",
                 "Microsoft.Authorization/roleAssignments/write", carol_ra_id, OPS, "PUT",
                 "0c0c0c0c-0025-4000-8000-000000000025", BOB, "192.0.2.20"),
    ]
    return s


# --------------------------------------------------------------------------------- VM area

def vm_area(basic, template):
    s = copy.deepcopy(basic)
    strip_mallory_arm(s)
    strip_mallory_directory(s)
    vm = next(r for r in s["resources"] if r["name"] == "vm-app-02")
    s["description"] = (
        "e2e virtual machines area (derived from basic.json by tests/e2e/make_scenarios.py). "
        "Alert ARM_MicroBurst.AzVMBulkCMD %s names only the Windows VM vm-app-02 in rg-prod "
        "(host entity and AzureResourceId; no account, no client principal): someone ran "
        "MicroBurst's bulk command on it at 10:41:12 (the activity log shows the unknown "
        "service principal e0e0e0e0-... as caller). The response is the VM procedure: change "
        "the local users' passwords, run a full antimalware scan, reimage. Look-alikes: the "
        "Linux VM vm-web-01 (same resource group, same owner) and every other object. "
        "Mallory's footprint of basic.json is removed." % VM_ALERT)
    s["activity_log"].append(activity(
        "2026-11-28T10:41:12.0000000Z", UNKNOWN_SP,
        "Microsoft.Compute/virtualMachines/runCommand/action", vm["id"], PROD, "POST",
        "0c0c0c0c-0031-4000-8000-000000000031", UNKNOWN_SP, "203.0.113.99", status_code="OK"))
    start, end = "2026-11-28T10:40:00.0000000Z", "2026-11-28T10:45:00.0000000Z"
    name = "MicroBurst exploitation toolkit used to execute code on your virtual machine"
    atype = "ARM_MicroBurst.AzVMBulkCMD"
    rest_entities = [{"type": "host", "hostName": "vm-app-02", "azureId": vm["id"],
                      "osFamily": "Windows"},
                     {"type": "azure-resource", "resourceId": vm["id"]}]
    rest_ext = {"resourceType": "Virtual Machine", "CompromisedEntity": "vm-app-02",
                "ProductComponentName": "Resource Manager",
                "Operations": "Microsoft.Compute/virtualMachines/runCommand/action"}
    alert, uri = rest_alert(VM_ALERT, PROD, "rg-prod", atype, name, "High", start, end, vm["id"],
                            "vm-app-02", rest_entities, rest_ext)
    s["alerts"].append(alert)
    flat_entities = [
        {"$id": "2", "HostName": "vm-app-02", "AzureID": vm["id"], "OSFamily": "Windows",
         "Asset": True, "Type": "host"},
        {"$id": "3", "ResourceId": vm["id"], "ResourceType": "Virtual Machine",
         "ResourceName": "vm-app-02", "Asset": True, "Type": "azure-resource"}]
    flat_ext = dict(rest_ext, **{"EffectiveAzureResourceId": vm["id"],
                                 "EffectiveSubscriptionId": PROD})
    flat = flat_alert(template, VM_ALERT, atype, name, "High", start, end, vm["id"], "vm-app-02",
                      flat_entities, flat_ext, uri, PROD)
    return s, flat


def dump(obj):
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def outputs():
    basic = load(os.path.join(SCEN, "basic.json"))
    template = load(os.path.join(ALERTS, "arm-flat-suspicious-ip.json"))
    users, users_alert = users_area(basic, template)
    vm, vm_alert = vm_area(basic, template)
    return {
        os.path.join(SCEN, "e2e-users.json"): dump(users),
        os.path.join(SCEN, "e2e-subscription.json"): dump(subscription_area(basic)),
        os.path.join(SCEN, "e2e-vm.json"): dump(vm),
        os.path.join(HERE, "alerts", "users.json"): dump(users_alert),
        os.path.join(HERE, "alerts", "vm.json"): dump(vm_alert),
    }


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for path, text in outputs().items():
        old = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
        if old == text:
            continue
        stale.append(path)
        if not check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    for p in stale:
        print("%s %s" % ("out of date:" if check else "wrote", os.path.relpath(p, ROOT)))
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
