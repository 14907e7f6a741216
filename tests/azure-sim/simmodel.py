"""The simulator's tenant model: loading a scenario file, built-in data (providers,
role definitions, run-command documents), and the collections the admin API edits."""

import copy
import json
import os
import re
import uuid

from simcore import CLOCK, iso, iso_offset, new_id, parse_ts, Certificate, generate_client_cert, \
    b64url, merge_patch

# --------------------------------------------------------------------------- built-in data

NEWEST_RESOURCES = ["2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01",
                    "2022-09-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-06-01",
                    "2019-10-01", "2019-05-01", "2018-05-01"]
COMPUTE_VERSIONS = ["2024-11-01", "2024-07-01", "2024-03-01", "2023-09-01", "2023-07-01",
                    "2023-03-01", "2022-11-01", "2022-08-01", "2022-03-01", "2021-11-01",
                    "2021-07-01", "2021-03-01"]
AUTOMATION_VERSIONS = ["2024-10-23", "2023-11-01", "2023-05-15-preview", "2022-08-08",
                       "2022-02-22", "2020-01-13-preview", "2019-06-01", "2018-06-30",
                       "2015-10-31"]
ALL_LOCATIONS = ["West Europe", "North Europe", "East US", "East US 2", "West US", "West US 2",
                 "Central US", "Southeast Asia", "UK South", "Germany West Central"]


def _rt(name, versions, locations=None, caps=None):
    d = {"resourceType": name, "locations": list(locations if locations is not None else ALL_LOCATIONS),
         "apiVersions": list(versions)}
    if caps:
        d["capabilities"] = caps
    return d


BUILTIN_PROVIDERS = [
    {"namespace": "Microsoft.Resources", "registrationState": "Registered",
     "registrationPolicy": "RegistrationFree",
     "resourceTypes": [
         _rt("tags", NEWEST_RESOURCES, []), _rt("subscriptions", NEWEST_RESOURCES, []),
         _rt("resourceGroups", NEWEST_RESOURCES), _rt("resources", NEWEST_RESOURCES, []),
         _rt("providers", NEWEST_RESOURCES, []), _rt("operationresults", NEWEST_RESOURCES, []),
         _rt("deployments", NEWEST_RESOURCES, [])]},
    {"namespace": "Microsoft.Authorization", "registrationState": "Registered",
     "registrationPolicy": "RegistrationFree",
     "resourceTypes": [
         _rt("roleAssignments", ["2022-04-01", "2022-01-01-preview", "2020-10-01-preview",
                                 "2020-08-01-preview", "2020-04-01-preview", "2018-09-01-preview",
                                 "2015-07-01"], []),
         _rt("roleDefinitions", ["2022-05-01-preview", "2022-04-01", "2018-01-01-preview",
                                 "2015-07-01"], []),
         _rt("locks", ["2020-05-01", "2017-04-01", "2016-09-01", "2015-01-01"], [])]},
    {"namespace": "Microsoft.Security", "registrationState": "Registered",
     "registrationPolicy": "RegistrationRequired",
     "resourceTypes": [
         _rt("alerts", ["2022-01-01", "2021-01-01", "2020-01-01", "2019-01-01", "2015-06-01-preview"], []),
         _rt("locations", ["2015-06-01-preview"], []),
         _rt("locations/alerts", ["2022-01-01", "2021-01-01", "2020-01-01", "2019-01-01",
                                  "2015-06-01-preview"], []),
         _rt("securityContacts", ["2023-12-01-preview", "2020-01-01-preview", "2017-08-01-preview"], [])]},
    {"namespace": "Microsoft.Automation", "registrationState": "Registered",
     "registrationPolicy": "RegistrationRequired",
     "resourceTypes": [
         _rt("automationAccounts", AUTOMATION_VERSIONS),
         _rt("automationAccounts/runbooks", AUTOMATION_VERSIONS),
         _rt("automationAccounts/jobs", AUTOMATION_VERSIONS),
         _rt("automationAccounts/webhooks", AUTOMATION_VERSIONS)]},
    {"namespace": "Microsoft.Compute", "registrationState": "Registered",
     "registrationPolicy": "RegistrationRequired",
     "resourceTypes": [
         _rt("virtualMachines", COMPUTE_VERSIONS),
         _rt("virtualMachines/extensions", COMPUTE_VERSIONS),
         _rt("disks", ["2024-03-02", "2023-10-02", "2023-04-02", "2022-07-02"]),
         _rt("locations", COMPUTE_VERSIONS, []),
         _rt("locations/operations", COMPUTE_VERSIONS, []),
         _rt("locations/runCommands", COMPUTE_VERSIONS, [])]},
    {"namespace": "microsoft.insights", "registrationState": "Registered",
     "registrationPolicy": "RegistrationRequired",
     "resourceTypes": [
         _rt("eventtypes", ["2017-03-01-preview", "2015-04-01", "2014-11-01", "2014-04-01"], []),
         _rt("eventtypes/values", ["2017-03-01-preview", "2015-04-01", "2014-11-01", "2014-04-01"], [])]},
]

# Built-in Azure roles.  GUIDs of the first six: reference/azure-api.md §3.2 (built-in-roles.md).
# Security Admin / Security Reader GUIDs are the well-known built-in ids (not in the reference).
_CONTRIB_NOT = ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write", "Microsoft.Purview/consents/delete",
                "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                "Microsoft.Subscription/cancel/action", "Microsoft.Subscription/enable/action"]
BUILTIN_ROLES = [
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner",
     "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
     ["*"], []),
    ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor",
     "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, "
     "manage assignments in Azure Blueprints, or share image galleries.", ["*"], _CONTRIB_NOT),
    ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader",
     "View all resources, but does not allow you to make any changes.", ["*/read"], []),
    ("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator",
     "Lets you manage user access to Azure resources.",
     ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"], []),
    ("f58310d9-a9f6-439a-9e8d-f62e7b41a168", "Role Based Access Control Administrator",
     "Manage access to Azure resources by assigning roles using Azure RBAC.",
     ["Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete",
      "*/read", "Microsoft.Support/*"], []),
    ("9980e02c-c2be-4d73-94e8-173b1dc7cf3c", "Virtual Machine Contributor",
     "Create and manage virtual machines, manage disks, install and run software, reset password of "
     "the root user of the virtual machine using VM extensions, and connect to Linux virtual machine "
     "using SSH public key.",
     ["Microsoft.Authorization/*/read", "Microsoft.Compute/*", "Microsoft.Network/*/read",
      "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Insights/*/read"], []),
    ("fb1c8493-542b-48eb-b624-b4c8fea62acd", "Security Admin",
     "Security Admin Role", ["Microsoft.Authorization/*/read", "Microsoft.Security/*",
                             "Microsoft.Resources/subscriptions/resourceGroups/read",
                             "Microsoft.Insights/*/read"], []),
    ("39bc4728-0917-49c7-9d2c-d95423bc2eb4", "Security Reader",
     "Security Reader Role", ["Microsoft.Authorization/*/read", "Microsoft.Security/*/read",
                              "Microsoft.Resources/subscriptions/resourceGroups/read",
                              "Microsoft.Insights/*/read"], []),
]

# Microsoft Entra built-in directory roles (roleTemplateId -> displayName).
DIRECTORY_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451": "Global Reader",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
}
# Roles whose holders only a privileged caller may disable, reset or delete (simplified).
PRIVILEGED_DIRECTORY_ROLES = set(DIRECTORY_ROLES) - {"f2ef992c-3afb-46b9-b7cf-a126ee74c451"}

RUN_COMMAND_DOCUMENTS = [
    {"$schema": "http://schema.management.azure.com/schemas/2016-11-17/runcommands.json",
     "id": "RunPowerShellScript", "osType": "Windows", "label": "Executes a PowerShell script",
     "description": "Custom multiline PowerShell script should be defined in script property. "
                    "Optional parameters can be set in parameters property.",
     "script": ["param(", "    [string]$arg1,", "    [string]$arg2", ")",
                "Write-Host This is a sample script with parameters $arg1 $arg2"],
     "parameters": [{"name": "arg1", "type": "string", "defaultValue": "value1"},
                    {"name": "arg2", "type": "string", "defaultValue": "value2"}]},
    {"$schema": "http://schema.management.azure.com/schemas/2016-11-17/runcommands.json",
     "id": "RunShellScript", "osType": "Linux", "label": "Run a Linux shell script",
     "description": "Custom multiline shell script should be defined in script property. "
                    "Optional parameters can be set in parameters property.",
     "script": [], "parameters": []},
    {"$schema": "http://schema.management.azure.com/schemas/2016-11-17/runcommands.json",
     "id": "ifconfig", "osType": "Linux", "label": "List network configuration",
     "description": "Get the configuration of all network interfaces.",
     "script": ["ifconfig"], "parameters": []},
    {"$schema": "http://schema.management.azure.com/schemas/2016-11-17/runcommands.json",
     "id": "IPConfig", "osType": "Windows", "label": "List IP configuration",
     "description": "Shows detail for the IP address, subnet mask and default gateway for each "
                    "adapter bound to TCP/IP.",
     "script": ["ipconfig /all"], "parameters": []},
]

DEFAULT_CONFIG = {
    "token_lifetime_seconds": 3599,
    "page_size": 100,
    "page_sizes": {},
    "graph_max_page_size": 999,
    "lro": {"polls": 1, "delay_seconds": 0, "retry_after": 1, "kinds": {}},
    "rate_limits": {
        "arm": {"enabled": True,
                "reads": {"burst": 250, "refill_per_second": 25},
                "writes": {"burst": 200, "refill_per_second": 10},
                "deletes": {"burst": 200, "refill_per_second": 10},
                "global_multiplier": 15},
        "graph": {"enabled": True, "burst": 2000, "refill_per_second": 200,
                  "retry_after_format": "int"},
    },
    "enforce_rbac": False,
    "enforce_graph_permissions": True,
    "protect_privileged_users": True,
    "alerts_strict_level": False,
    "record_activity": True,
    "record_directory_audits": True,
    "echo_client_request_id": True,
    "graph_revoke_status": 200,
    "run_command_mode": "lro",
    "vm_action_mode": "lro",
    "activity_log_max_days": None,
    "password_policy": {"min_length": 8, "max_length": 256, "min_classes": 3},
    "federated_token_lifetime_seconds": 3600,
    "invalid_client_status": 401,
    "resource_delete_mode": "lro",
    "lro_headers": {},
    "token_audiences": {
        "https://management.azure.com": "arm",
        "https://management.core.windows.net": "arm",
        "https://graph.microsoft.com": "graph",
        "https://eventhubs.azure.net": "eventhubs",
    },
}

ARM_COLLECTIONS = ("resource_groups", "resources", "role_definitions", "role_assignments", "locks",
                   "alerts", "security_contacts")
GRAPH_COLLECTIONS = ("users", "groups", "directory_role_assignments", "directory_audits",
                     "deleted_items")
COLLECTIONS = ("apps", "managed_identities", "subscriptions", "providers") + ARM_COLLECTIONS + \
    ("activity_log",) + GRAPH_COLLECTIONS


class ModelError(ValueError):
    pass


# --------------------------------------------------------------------------- resource ids

_ID_RE = re.compile(r"^/subscriptions/([^/]+)(?:/resourcegroups/([^/]+))?(.*)$", re.I)


def parse_resource_id(rid):
    """Split an ARM id into its parts.

    Returns dict(subscription, resource_group, namespace, types[], names[], type (full,
    e.g. Microsoft.Compute/virtualMachines/extensions), resource_type (without namespace),
    parent (id of the parent resource or RG)), or None if it is not an id."""
    if not rid or not rid.startswith("/"):
        return None
    m = _ID_RE.match(rid.rstrip("/"))
    out = {"subscription": None, "resource_group": None, "namespace": None, "types": [],
           "names": [], "type": None, "resource_type": None}
    rest = rid.rstrip("/")
    if m:
        out["subscription"], out["resource_group"], rest = m.group(1), m.group(2), m.group(3)
    parts = [p for p in rest.split("/") if p != ""]
    if not parts:
        return out
    # last '/providers/{ns}/...' block wins (extension resources)
    idx = None
    for i, p in enumerate(parts):
        if p.lower() == "providers" and i + 1 < len(parts):
            idx = i
    if idx is None:
        return out
    ns = parts[idx + 1]
    tail = parts[idx + 2:]
    out["namespace"] = ns
    out["types"] = tail[0::2]
    out["names"] = tail[1::2]
    if out["types"]:
        out["resource_type"] = "/".join(out["types"])
        out["type"] = ns + "/" + out["resource_type"]
    return out


def rg_id(sub, rg):
    return "/subscriptions/%s/resourceGroups/%s" % (sub, rg)


def k(s):
    return (s or "").lower()


# --------------------------------------------------------------------------- model


class Model:
    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.config = copy.deepcopy(DEFAULT_CONFIG)
        self.clear()

    def clear(self):
        self.description = ""
        self.tenant = {"id": "00000000-0000-0000-0000-000000000000", "domain": "contoso.com",
                       "displayName": "Contoso"}
        self.apps = {}
        self.managed_identities = {}
        self.subscriptions = {}
        self.providers = {}
        for p in BUILTIN_PROVIDERS:
            self.providers[k(p["namespace"])] = copy.deepcopy(p)
        self.resource_groups = {}
        self.resources = {}
        self.role_definitions = {}
        for guid, name, desc, actions, not_actions in BUILTIN_ROLES:
            self.role_definitions[guid] = {
                "id": "/providers/Microsoft.Authorization/roleDefinitions/" + guid,
                "name": guid, "type": "Microsoft.Authorization/roleDefinitions",
                "properties": {"roleName": name, "type": "BuiltInRole", "description": desc,
                               "assignableScopes": ["/"],
                               "permissions": [{"actions": actions, "notActions": not_actions,
                                                "dataActions": [], "notDataActions": []}],
                               "createdOn": "2015-02-02T21:55:09.8806423Z",
                               "updatedOn": "2024-01-01T00:00:00.0000000Z",
                               "createdBy": None, "updatedBy": None}}
        self.role_assignments = {}
        self.locks = {}
        self.alerts = {}
        self.security_contacts = {}
        self.activity_log = {}
        self.users = {}
        self.groups = {}
        self.directory_role_assignments = {}
        self.directory_audits = {}
        self.deleted_items = {}
        self.deleted_runbooks = {}
        self.files = {}

    # ------------------------------------------------------------------ loading

    def load(self, scenario, base_dir=None):
        if not isinstance(scenario, dict):
            raise ModelError("a scenario must be a JSON object")
        known = {"description", "config", "tenant", "$schema", "comment", "_comment"} | set(COLLECTIONS)
        unknown = set(scenario) - known
        if unknown:
            raise ModelError("unknown scenario keys: %s" % ", ".join(sorted(unknown)))
        self.clear()
        self.base_dir = base_dir
        self.description = scenario.get("description", "")
        self.config = merge_config(copy.deepcopy(DEFAULT_CONFIG), scenario.get("config") or {})
        t = scenario.get("tenant") or {}
        self.tenant.update({kk: v for kk, v in t.items()})
        for name in COLLECTIONS:
            for obj in scenario.get(name) or []:
                self.put(name, obj)

    def to_scenario(self):
        out = {"description": self.description, "config": copy.deepcopy(self.config),
               "tenant": dict(self.tenant)}
        for name in COLLECTIONS:
            items = list(self.collection(name).values())
            if name == "providers":
                items = [p for p in items]
            if name == "role_definitions":
                items = [d for d in items if d["properties"].get("type") != "BuiltInRole"
                         or d.get("x-sim", {}).get("modified")]
            if name == "apps":
                items = [self.app_public(a) for a in items]
            out[name] = copy.deepcopy(items)
        return out

    def collection(self, name):
        if name not in COLLECTIONS:
            raise ModelError("unknown collection %r (known: %s)" % (name, ", ".join(COLLECTIONS)))
        return getattr(self, name)

    def key_of(self, name, obj):
        if name == "apps":
            return k(obj.get("client_id"))
        if name == "managed_identities":
            return k(obj.get("client_id"))
        if name == "subscriptions":
            return k(obj.get("subscriptionId"))
        if name == "providers":
            return k(obj.get("namespace"))
        if name == "role_definitions":
            return k(obj.get("name"))
        if name == "activity_log":
            return k(obj.get("eventDataId"))
        return k(obj.get("id"))

    def lookup_key(self, name, key):
        """Key used for a lookup from a URL path segment (ARM ids may lack a leading '/')."""
        key = key or ""
        if name in ARM_COLLECTIONS and name != "role_definitions" and not key.startswith("/"):
            key = "/" + key
        if name == "role_definitions" and "/" in key:
            key = key.rstrip("/").rsplit("/", 1)[-1]
        return k(key)

    def put(self, name, obj):
        """Insert or replace one object (normalising scenario short forms)."""
        if not isinstance(obj, dict):
            raise ModelError("%s entries must be objects" % name)
        obj = copy.deepcopy(obj)
        fn = getattr(self, "_norm_" + name, None)
        if fn:
            obj = fn(obj)
        key = self.key_of(name, obj)
        if not key:
            raise ModelError("%s entry has no key: %s" % (name, json.dumps(obj)[:200]))
        self.collection(name)[key] = obj
        return key, obj

    def patch(self, name, key, patch):
        coll = self.collection(name)
        key = self.lookup_key(name, key)
        if key not in coll:
            raise KeyError(key)
        new = merge_patch(coll[key], patch)
        del coll[key]
        return self.put(name, new)

    def delete(self, name, key):
        coll = self.collection(name)
        key = self.lookup_key(name, key)
        return coll.pop(key, None)

    # ------------------------------------------------------------------ normalisers

    def _norm_apps(self, a):
        if not a.get("client_id"):
            raise ModelError("app needs client_id")
        a.setdefault("object_id", str(uuid.uuid5(uuid.NAMESPACE_URL, "sp:" + a["client_id"])))
        a.setdefault("display_name", "app-" + a["client_id"][:8])
        a.setdefault("secrets", [])
        a.setdefault("federated_tokens", [])
        a.setdefault("graph_permissions", None)
        a.setdefault("entra_roles", [])
        a.setdefault("disabled", False)
        certs = []
        sim = a.setdefault("x-sim", {})
        for c in a.get("certificates") or []:
            pem = c
            if not c.lstrip().startswith("-----BEGIN"):
                path = c if os.path.isabs(c) else os.path.join(self.base_dir or ".", c)
                with open(path) as f:
                    pem = f.read()
            certs.append(pem)
        if a.get("generate_certificate") and self.state_dir:
            pem_path, key_path = generate_client_cert(self.state_dir, a["client_id"])
            with open(pem_path) as f:
                pem = f.read()
            if pem not in certs:
                certs.append(pem)
            sim["cert_file"], sim["key_file"] = pem_path, key_path
        a["certificates"] = certs
        sim["certs"] = [Certificate(p) for p in certs]
        if a.get("generate_federated_token") and not a["federated_tokens"]:
            a["federated_tokens"].append(self.make_federated_token(a["client_id"]))
        if a["federated_tokens"] and self.state_dir:
            path = os.path.join(self.state_dir, "federated-token-%s" % re.sub(r"[^A-Za-z0-9_.-]", "_",
                                                                               a["client_id"]))
            write_atomic(path, a["federated_tokens"][-1])
            sim["federated_token_file"] = path
        return a

    def make_federated_token(self, client_id):
        now = int(CLOCK.wall())
        life = int(self.config.get("federated_token_lifetime_seconds") or 3600)
        header = {"alg": "RS256", "kid": "azure-sim-sa", "typ": "JWT"}
        claims = {"aud": ["api://AzureADTokenExchange"],
                  "iss": "https://oidc.azure-sim.invalid/" + self.tenant["id"] + "/",
                  "sub": "system:serviceaccount:quench:quench", "iat": now, "nbf": now,
                  "exp": now + life, "jti": new_id(), "x-sim-client": client_id}
        return "%s.%s.%s" % (b64url(json.dumps(header)), b64url(json.dumps(claims)),
                             b64url(os.urandom(64)))

    def app_public(self, a):
        out = {kk: v for kk, v in a.items() if kk != "x-sim"}
        sim = a.get("x-sim") or {}
        files = {kk: sim[kk] for kk in ("cert_file", "key_file", "federated_token_file") if kk in sim}
        if files:
            out["x-sim"] = files
        return out

    def _norm_managed_identities(self, m):
        if not m.get("client_id"):
            raise ModelError("managed identity needs client_id")
        m.setdefault("object_id", str(uuid.uuid5(uuid.NAMESPACE_URL, "mi:" + m["client_id"])))
        m.setdefault("display_name", "mi-" + m["client_id"][:8])
        m.setdefault("resource_id", None)
        m.setdefault("graph_permissions", None)
        m.setdefault("entra_roles", [])
        return m

    def _norm_subscriptions(self, s):
        if not s.get("subscriptionId"):
            raise ModelError("subscription needs subscriptionId")
        s.setdefault("displayName", s["subscriptionId"])
        s.setdefault("state", "Enabled")
        s.setdefault("tenantId", self.tenant["id"])
        s.setdefault("tags", {})
        s.setdefault("securityLocations", ["westeurope"])
        return s

    def _norm_providers(self, p):
        if not p.get("namespace"):
            raise ModelError("provider needs namespace")
        base = self.providers.get(k(p["namespace"]))
        if base and not p.get("replace"):
            merged = copy.deepcopy(base)
            for kk, v in p.items():
                if kk != "resourceTypes":
                    merged[kk] = v
            by = {k(rt["resourceType"]): rt for rt in merged.get("resourceTypes", [])}
            for rt in p.get("resourceTypes") or []:
                by[k(rt["resourceType"])] = rt
            merged["resourceTypes"] = list(by.values())
            p = merged
        p.pop("replace", None)
        p.setdefault("registrationState", "Registered")
        p.setdefault("registrationPolicy", "RegistrationRequired")
        p.setdefault("resourceTypes", [])
        for rt in p["resourceTypes"]:
            rt.setdefault("locations", [])
            rt.setdefault("apiVersions", [])
        return p

    def _norm_resource_groups(self, g):
        if not g.get("id"):
            if not (g.get("subscriptionId") and g.get("name")):
                raise ModelError("resource group needs id or subscriptionId+name")
            g["id"] = rg_id(g.pop("subscriptionId"), g["name"])
        else:
            g.pop("subscriptionId", None)
        g.setdefault("name", g["id"].rstrip("/").rsplit("/", 1)[-1])
        g.setdefault("type", "Microsoft.Resources/resourceGroups")
        g.setdefault("location", "westeurope")
        g.setdefault("tags", {})
        g.setdefault("properties", {"provisioningState": "Succeeded"})
        return g

    def _norm_resources(self, r):
        if not r.get("id"):
            raise ModelError("resource needs id")
        p = parse_resource_id(r["id"])
        if not p or not p["type"]:
            raise ModelError("not a resource id: %s" % r["id"])
        r.setdefault("name", p["names"][-1] if p["names"] else "")
        if "type" not in r:
            r["type"] = p["type"]
        r.setdefault("location", "westeurope")
        if "x-sim" in r and "content" in r["x-sim"] and not isinstance(r["x-sim"]["content"], str):
            raise ModelError("runbook x-sim.content must be a string")
        return r

    def _norm_role_definitions(self, d):
        guid = d.get("name") or (d.get("id") or "").rstrip("/").rsplit("/", 1)[-1]
        if not guid:
            raise ModelError("role definition needs name or id")
        d["name"] = guid
        d.setdefault("id", "/providers/Microsoft.Authorization/roleDefinitions/" + guid)
        d.setdefault("type", "Microsoft.Authorization/roleDefinitions")
        props = d.setdefault("properties", {})
        props.setdefault("roleName", guid)
        props.setdefault("type", "CustomRole")
        props.setdefault("permissions", [])
        props.setdefault("assignableScopes", [])
        if k(guid) in self.role_definitions and \
                self.role_definitions[k(guid)]["properties"].get("type") == "BuiltInRole":
            d.setdefault("x-sim", {})["modified"] = True
        return d

    def role_definition_by_name(self, name):
        for d in self.role_definitions.values():
            if k(d["properties"].get("roleName")) == k(name):
                return d
        return None

    def _norm_role_assignments(self, a):
        if "properties" not in a:
            scope = a.pop("scope", None)
            if not scope:
                raise ModelError("role assignment needs scope (short form) or properties")
            rd = a.pop("roleDefinitionId", None)
            rdn = a.pop("roleDefinitionName", None)
            if rdn:
                d = self.role_definition_by_name(rdn)
                if not d:
                    raise ModelError("unknown role %r" % rdn)
                rd = d["name"]
            if not rd:
                raise ModelError("role assignment needs roleDefinitionId or roleDefinitionName")
            if "/" not in rd:
                sp = parse_resource_id(scope) or {}
                rd = ("/subscriptions/%s" % sp["subscription"] if sp.get("subscription") else "") + \
                    "/providers/Microsoft.Authorization/roleDefinitions/" + rd
            now = iso_offset()
            props = {"roleDefinitionId": rd, "principalId": a.pop("principalId"),
                     "principalType": a.pop("principalType", "User"), "scope": scope,
                     "condition": a.pop("condition", None), "conditionVersion": a.pop("conditionVersion", None),
                     "createdOn": a.pop("createdOn", now), "updatedOn": a.pop("updatedOn", now),
                     "createdBy": a.pop("createdBy", None), "updatedBy": a.pop("updatedBy", None),
                     "delegatedManagedIdentityResourceId": None,
                     "description": a.pop("description", None)}
            a["properties"] = props
        props = a["properties"]
        if not a.get("id"):
            name = a.get("name") or str(uuid.uuid4())
            a["id"] = props["scope"].rstrip("/") + "/providers/Microsoft.Authorization/roleAssignments/" + name
        a.setdefault("name", a["id"].rstrip("/").rsplit("/", 1)[-1])
        a.setdefault("type", "Microsoft.Authorization/roleAssignments")
        if "scope" not in props:
            props["scope"] = a["id"].split("/providers/Microsoft.Authorization/roleAssignments/")[0] or "/"
        return a

    def _norm_locks(self, lk):
        if not lk.get("id"):
            raise ModelError("lock needs id")
        lk.setdefault("name", lk["id"].rstrip("/").rsplit("/", 1)[-1])
        lk.setdefault("type", "Microsoft.Authorization/locks")
        lk.setdefault("properties", {"level": "CanNotDelete", "notes": None, "owners": None})
        return lk

    def _norm_alerts(self, a):
        if not a.get("id"):
            raise ModelError("alert needs id")
        a.setdefault("name", a["id"].rstrip("/").rsplit("/", 1)[-1])
        a.setdefault("type", "Microsoft.Security/Locations/alerts")
        props = a.setdefault("properties", {})
        props.setdefault("systemAlertId", a["name"])
        props.setdefault("status", "Active")
        return a

    def _norm_security_contacts(self, c):
        if not c.get("id"):
            raise ModelError("security contact needs id")
        c.setdefault("name", c["id"].rstrip("/").rsplit("/", 1)[-1])
        c.setdefault("type", "Microsoft.Security/securityContacts")
        c.setdefault("properties", {})
        return c

    def _norm_activity_log(self, e):
        e = fill_event(e, self.tenant["id"])
        return e

    def _norm_users(self, u):
        if not u.get("id"):
            u["id"] = new_id()
        u.setdefault("displayName", u.get("userPrincipalName", u["id"]))
        for prop in ("businessPhones",):
            u.setdefault(prop, [])
        for prop in ("givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
                     "preferredLanguage", "surname"):
            u.setdefault(prop, None)
        u.setdefault("userPrincipalName", u["id"] + "@" + self.tenant.get("domain", "contoso.com"))
        u.setdefault("accountEnabled", True)
        u.setdefault("userType", "Member")
        u.setdefault("createdDateTime", iso(frac=0))
        u.setdefault("onPremisesSyncEnabled", None)
        u.setdefault("signInSessionsValidFromDateTime", u["createdDateTime"])
        u.setdefault("mailNickname", u["userPrincipalName"].split("@")[0])
        return u

    def _norm_groups(self, g):
        if not g.get("id"):
            g["id"] = new_id()
        g.setdefault("displayName", g["id"])
        g.setdefault("mailEnabled", False)
        g.setdefault("securityEnabled", True)
        g.setdefault("groupTypes", [])
        g.setdefault("members", [])
        return g

    def _norm_directory_role_assignments(self, a):
        if not a.get("principalId") or not a.get("roleDefinitionId"):
            raise ModelError("directory role assignment needs principalId and roleDefinitionId")
        a.setdefault("id", b64url(uuid.uuid4().bytes) + "-1")
        a.setdefault("directoryScopeId", "/")
        a.setdefault("resourceScope", a["directoryScopeId"])
        return a

    def _norm_directory_audits(self, d):
        return fill_audit(d)

    def _norm_deleted_items(self, d):
        if not d.get("id"):
            raise ModelError("deleted item needs id")
        d.setdefault("@odata.type", "#microsoft.graph.user")
        d.setdefault("deletedDateTime", iso(frac=0))
        if d["@odata.type"] == "#microsoft.graph.user":
            d = self._norm_users(d)
        return d

    # ------------------------------------------------------------------ lookups

    def subscription(self, sub):
        return self.subscriptions.get(k(sub))

    def resource_group(self, sub, rg):
        return self.resource_groups.get(k(rg_id(sub, rg)))

    def resource(self, rid):
        return self.resources.get(k(rid))

    def find_user(self, key):
        u = self.users.get(k(key))
        if u:
            return u
        for u in self.users.values():
            if k(u.get("userPrincipalName")) == k(key):
                return u
        return None

    def find_principal(self, pid):
        """A directory object by id: user, group, app SP or managed identity."""
        u = self.users.get(k(pid))
        if u:
            return "user", u
        g = self.groups.get(k(pid))
        if g:
            return "group", g
        for a in list(self.apps.values()) + list(self.managed_identities.values()):
            if k(a["object_id"]) == k(pid):
                return "servicePrincipal", a
        return None, None

    def provider(self, ns):
        return self.providers.get(k(ns))

    def provider_type(self, ns, rtype):
        p = self.provider(ns)
        if not p:
            return None
        for rt in p.get("resourceTypes", []):
            if k(rt["resourceType"]) == k(rtype):
                return rt
        return None

    def provider_versions(self, ns):
        p = self.provider(ns)
        out = []
        if p:
            for rt in p.get("resourceTypes", []):
                for v in rt.get("apiVersions", []):
                    if v not in out:
                        out.append(v)
        return out

    def directory_roles_of(self, principal_id, include_groups=True):
        ids = {k(principal_id)}
        if include_groups:
            ids |= {k(g["id"]) for g in self.transitive_groups(principal_id)}
        return [a for a in self.directory_role_assignments.values() if k(a["principalId"]) in ids]

    def direct_groups(self, member_id):
        return [g for g in self.groups.values() if k(member_id) in {k(m) for m in g.get("members", [])}]

    def transitive_groups(self, member_id):
        seen, out, todo = set(), [], [member_id]
        while todo:
            cur = todo.pop()
            for g in self.direct_groups(cur):
                if k(g["id"]) not in seen:
                    seen.add(k(g["id"]))
                    out.append(g)
                    todo.append(g["id"])
        return out

    def is_privileged_user(self, user_id):
        return any(a["roleDefinitionId"] in PRIVILEGED_DIRECTORY_ROLES
                   for a in self.directory_roles_of(user_id))


def merge_config(base, over):
    for kk, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(base.get(kk), dict) and kk not in ("page_sizes",):
            base[kk] = merge_config(base[kk], v)
        elif isinstance(v, dict) and isinstance(base.get(kk), dict):
            base[kk] = dict(base[kk], **v)
        else:
            base[kk] = v
    return base


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _loc(v):
    return {"value": v, "localizedValue": v}


def fill_event(e, tenant_id):
    """Complete an activity-log EventData from a short form (operationName, resourceId,
    caller, eventTimestamp, status ...), keeping every field given."""
    e = dict(e)
    op = e.get("operationName")
    if isinstance(op, str):
        e["operationName"] = _loc(op)
    op_value = (e.get("operationName") or {}).get("value", "")
    rid = e.get("resourceId") or (e.get("authorization") or {}).get("scope") or ""
    p = parse_resource_id(rid) or {}
    e.setdefault("eventDataId", new_id())
    e.setdefault("correlationId", new_id())
    e.setdefault("operationId", e["correlationId"])
    e.setdefault("eventTimestamp", iso())
    ts = parse_ts(e["eventTimestamp"]) or CLOCK.wall()
    e.setdefault("submissionTimestamp", iso(ts + 12.5))
    e.setdefault("authorization", {"action": op_value, "role": None, "scope": rid})
    e.setdefault("caller", None)
    e.setdefault("claims", {})
    e.setdefault("channels", "Operation")
    e.setdefault("description", "")
    cat = e.get("category", "Administrative")
    e["category"] = _loc(cat) if isinstance(cat, str) else cat
    ev = e.get("eventName", "EndRequest")
    e["eventName"] = {"value": ev, "localizedValue": "End request" if ev == "EndRequest" else ev} \
        if isinstance(ev, str) else ev
    e.setdefault("level", "Informational")
    st = e.get("status", "Succeeded")
    e["status"] = _loc(st) if isinstance(st, str) else st
    sub_st = e.get("subStatus", "")
    e["subStatus"] = _loc(sub_st) if isinstance(sub_st, str) else sub_st
    e.setdefault("resourceId", rid)
    if p.get("resource_group") and "resourceGroupName" not in e:
        e["resourceGroupName"] = p["resource_group"]
    ns = p.get("namespace") or (op_value.split("/")[0] if "/" in op_value else "")
    rpn = e.get("resourceProviderName", ns)
    e["resourceProviderName"] = _loc(rpn) if isinstance(rpn, str) else rpn
    rt = e.get("resourceType", p.get("type") or "/".join(op_value.split("/")[:-1]))
    e["resourceType"] = _loc(rt) if isinstance(rt, str) else rt
    e.setdefault("subscriptionId", p.get("subscription") or "")
    e.setdefault("tenantId", tenant_id)
    props = e.setdefault("properties", {})
    props.setdefault("statusCode", "OK")
    props.setdefault("serviceRequestId", None)
    props.setdefault("eventCategory", cat if isinstance(cat, str) else "Administrative")
    props.setdefault("entity", rid)
    props.setdefault("message", op_value)
    props.setdefault("hierarchy", "%s/%s" % (tenant_id, p.get("subscription") or e.get("subscriptionId") or ""))
    ticks = int(ts * 10 ** 7) + 621355968000000000
    e.setdefault("id", "%s/events/%s/ticks/%d" % (rid, e["eventDataId"], ticks))
    e.setdefault("relatedEvents", [])
    return e


def fill_audit(d):
    d = dict(d)
    d.setdefault("id", "Directory_" + new_id().replace("-", "")[:20] + "_" + str(abs(hash(d.get("activityDisplayName")))
                                                                             % 100000000))
    d.setdefault("category", "UserManagement")
    d.setdefault("correlationId", new_id())
    d.setdefault("result", "success")
    d.setdefault("resultReason", "")
    d.setdefault("activityDisplayName", "")
    d.setdefault("activityDateTime", iso())
    d.setdefault("loggedByService", "Core Directory")
    d.setdefault("operationType", "Add" if d["activityDisplayName"].startswith("Add") else "Update")
    d.setdefault("initiatedBy", {"user": None, "app": None})
    d.setdefault("targetResources", [])
    d.setdefault("additionalDetails", [])
    return d
