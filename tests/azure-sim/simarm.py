"""Azure Resource Manager: routes built from operations.json, and their handlers."""

import copy
import fnmatch
import re

from simcore import Response, HttpError, iso, iso_offset, new_id, parse_ts, strip_sim, ODataFilter, FilterError
from simmodel import parse_resource_id, rg_id, k, RUN_COMMAND_DOCUMENTS

MULTI_SEGMENT = {"scope", "resourceId", "roleAssignmentId", "roleId", "parentResourcePath"}

# Operations the simulator serves that are not rows of operations.json.
EXTRA_OPS = [
    {"service": "arm", "operationId": "ResourceGroups_List", "method": "GET",
     "path": "/subscriptions/{subscriptionId}/resourcegroups", "api_version": "2021-04-01",
     "provider": "Microsoft.Resources", "success": [200], "pageable": True},
    {"service": "arm", "operationId": "Subscriptions_List", "method": "GET",
     "path": "/subscriptions", "api_version": "2022-12-01", "provider": "Microsoft.Resources",
     "success": [200], "pageable": True},
    {"service": "arm", "operationId": "VirtualMachines_List", "method": "GET",
     "path": "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
             "Microsoft.Compute/virtualMachines", "api_version": "2024-11-01",
     "provider": "Microsoft.Compute", "success": [200], "pageable": True},
    {"service": "arm", "operationId": "VirtualMachines_ListAll", "method": "GET",
     "path": "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/virtualMachines",
     "api_version": "2024-11-01", "provider": "Microsoft.Compute", "success": [200], "pageable": True},
]

# Literal-only prefixes under which the simulator answers long-running-operation polls.
LRO_ROUTES = [
    ("async_or_location", re.compile(r"^/subscriptions/([^/]+)/providers/([^/]+)/locations/([^/]+)/operations/([^/]+)$", re.I)),
    ("async", re.compile(r"^/subscriptions/([^/]+)/providers/([^/]+)/locations/([^/]+)/operationStatuses/([^/]+)$", re.I)),
    ("location", re.compile(r"^/subscriptions/([^/]+)/providers/([^/]+)/locations/([^/]+)/operationResults/([^/]+)$", re.I)),
    ("location_rm", re.compile(r"^/subscriptions/([^/]+)/operationresults/([^/]+)$", re.I)),
]


class Route:
    def __init__(self, op):
        self.op = op
        self.id = op["operationId"]
        self.method = op["method"].upper()
        self.template = op["path"]
        regex, literal = "^", 0
        pos = 0
        tmpl = self.template
        for m in re.finditer(r"/\{([^}]+)\}", tmpl):
            lit = tmpl[pos:m.start()]
            regex += re.escape(lit)
            literal += len(lit)
            name = re.sub(r"[^A-Za-z0-9_]", "", m.group(1).split("|")[0].strip())
            if name in MULTI_SEGMENT:
                if m.start() == 0:
                    regex += "(?:/(?P<%s>.+?))?" % name
                else:
                    regex += "/(?P<%s>.+?)" % name
            else:
                regex += "/(?P<%s>[^/]+)" % name
            pos = m.end()
        lit = tmpl[pos:]
        regex += re.escape(lit) + "$"
        literal += len(lit)
        self.regex = re.compile(regex, re.I)
        self.literal = literal
        self.guard = None
        if self.id in ("RoleAssignments_GetById", "RoleAssignments_DeleteById", "RoleAssignments_CreateById"):
            self.guard = re.compile(r"/providers/Microsoft\.Authorization/roleAssignments/[^/]+$", re.I)
        elif self.id == "RoleDefinitions_GetById":
            self.guard = re.compile(r"/providers/Microsoft\.Authorization/roleDefinitions/[^/]+$", re.I)

    def match(self, path):
        m = self.regex.match(path)
        if not m:
            return None
        if self.guard and not self.guard.search(path):
            return None
        return {kk: (v or "") for kk, v in m.groupdict().items()}


class ArmRouter:
    def __init__(self, operations):
        self.routes = [Route(o) for o in operations if o.get("service") == "arm"]
        self.routes += [Route(o) for o in EXTRA_OPS]

    def match(self, method, path):
        """(route, params) for the most specific route, or (None, methods_allowed)."""
        best, other_methods = None, set()
        for r in self.routes:
            params = r.match(path)
            if params is None:
                continue
            if r.method != method:
                if r.literal > 1:
                    other_methods.add(r.method)
                continue
            if best is None or r.literal > best[0].literal:
                best = (r, params)
        if best:
            return best
        return None, other_methods


HANDLERS = {}


def op(*ids):
    def deco(fn):
        for i in ids:
            HANDLERS[i] = fn
        return fn
    return deco


# --------------------------------------------------------------------------- helpers


def not_found(sim, code, message):
    return HttpError(sim.arm_error(404, code, message))


def resource_not_found(sim, rtype, name, rg):
    if rg:
        msg = ("The Resource '%s/%s' under resource group '%s' was not found. For more details please "
               "go to https://aka.ms/ARMResourceNotFoundFix" % (rtype, name, rg))
    else:
        msg = "The Resource '%s/%s' was not found. For more details please go to " \
              "https://aka.ms/ARMResourceNotFoundFix" % (rtype, name)
    return not_found(sim, "ResourceNotFound", msg)


def need_rg(sim, sub, rg):
    g = sim.model.resource_group(sub, rg)
    if not g:
        raise not_found(sim, "ResourceGroupNotFound", "Resource group '%s' could not be found." % rg)
    return g


def bad_request(sim, code, message, target=None):
    return HttpError(sim.arm_error(400, code, message, target=target))


def json_body(sim, ctx, required=False):
    if not ctx.body:
        if required:
            raise bad_request(sim, "InvalidRequestContent", "The request content was invalid and could not "
                                                            "be deserialized: 'Request body is missing'.")
        return None
    try:
        return ctx.json()
    except ValueError as e:
        raise bad_request(sim, "InvalidRequestContent",
                          "The request content was invalid and could not be deserialized: '%s'." % e)


def scope_of(params, ctx):
    s = params.get("scope")
    if s is not None and s != "":
        return "/" + s.strip("/")
    return None


def is_under(child, parent):
    """True if ARM path `child` equals `parent` or is below it (segment-aware)."""
    c, p = k(child).rstrip("/"), k(parent).rstrip("/")
    if p in ("", "/"):
        return True
    return c == p or c.startswith(p + "/")


def locked(sim, target_id, op_kind):
    """Locks at or above target that forbid op_kind ('delete' or 'write')."""
    out = []
    for lk in sim.model.locks.values():
        lock_scope = re.split(r"/providers/Microsoft\.Authorization/locks/", lk["id"], flags=re.I)[0]
        level = (lk.get("properties") or {}).get("level", "CanNotDelete")
        if is_under(target_id, lock_scope):
            if level == "ReadOnly" or (level == "CanNotDelete" and op_kind == "delete"):
                out.append(lock_scope)
    return out


def check_locks(sim, target_id, op_kind):
    scopes = locked(sim, target_id, op_kind)
    if scopes:
        raise HttpError(sim.arm_error(
            409, "ScopeLocked",
            "The scope '%s' cannot perform %s operation because following scope(s) are locked: '%s'. "
            "Please remove the lock and try again." % (target_id, op_kind, "','".join(scopes))))


def render(obj):
    return strip_sim(obj)


def resource_list_view(r, expand):
    out = {kk: r[kk] for kk in ("id", "name", "type", "sku", "kind", "location", "extendedLocation",
                                 "managedBy", "plan", "identity", "tags") if kk in r}
    if expand:
        ex = {e.strip().lower() for e in expand.split(",")}
        props = r.get("properties") or {}
        sim = r.get("x-sim") or {}
        if "createdtime" in ex:
            out["createdTime"] = r.get("systemData", {}).get("createdAt") or sim.get("createdTime") or \
                props.get("creationTime") or props.get("timeCreated") or "2026-01-01T00:00:00.0000000Z"
        if "changedtime" in ex:
            out["changedTime"] = r.get("systemData", {}).get("lastModifiedAt") or sim.get("changedTime") or \
                props.get("lastModifiedTime") or out.get("createdTime") or "2026-01-01T00:00:00.0000000Z"
        if "provisioningstate" in ex:
            out["provisioningState"] = props.get("provisioningState", "Succeeded")
    return out


# --------------------------------------------------------------------------- subscriptions, RGs, providers, tags


def sub_body(s):
    return {"id": "/subscriptions/" + s["subscriptionId"], "authorizationSource": "RoleBased",
            "managedByTenants": [], "tags": s.get("tags") or {}, "subscriptionId": s["subscriptionId"],
            "tenantId": s["tenantId"], "displayName": s["displayName"], "state": s["state"],
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                     "spendingLimit": "Off"}}


@op("Subscriptions_Get")
def subscriptions_get(sim, ctx, p):
    return Response(200, sub_body(ctx.subscription))


@op("Subscriptions_List")
def subscriptions_list(sim, ctx, p):
    items = [sub_body(s) for s in sim.model.subscriptions.values()]
    return Response(200, sim.paginate(ctx, items, "Subscriptions_List"))


@op("ResourceGroups_Get")
def resource_groups_get(sim, ctx, p):
    g = need_rg(sim, p["subscriptionId"], p["resourceGroupName"])
    return Response(200, render(g))


@op("ResourceGroups_List")
def resource_groups_list(sim, ctx, p):
    sub = ctx.subscription["subscriptionId"]
    items = [render(g) for g in sim.model.resource_groups.values()
             if is_under(g["id"], "/subscriptions/" + sub)]
    return Response(200, sim.paginate(ctx, items, "ResourceGroups_List"))


def provider_body(sub, p):
    body = {"id": "/subscriptions/%s/providers/%s" % (sub, p["namespace"]), "namespace": p["namespace"],
            "registrationState": p.get("registrationState", "Registered"),
            "registrationPolicy": p.get("registrationPolicy", "RegistrationRequired"),
            "resourceTypes": copy.deepcopy(p.get("resourceTypes", []))}
    return body


@op("Providers_Get")
def providers_get(sim, ctx, p):
    prov = sim.model.provider(p["resourceProviderNamespace"])
    if not prov:
        raise not_found(sim, "InvalidResourceNamespace",
                        "The resource namespace '%s' is invalid." % p["resourceProviderNamespace"])
    return Response(200, provider_body(ctx.subscription["subscriptionId"], prov))


@op("Providers_List")
def providers_list(sim, ctx, p):
    sub = ctx.subscription["subscriptionId"]
    items = [provider_body(sub, prov) for prov in sim.model.providers.values()]
    return Response(200, sim.paginate(ctx, items, "Providers_List"))


@op("Tags_GetAtScope")
def tags_get_at_scope(sim, ctx, p):
    scope = scope_of(p, ctx) or "/"
    parsed = parse_resource_id(scope) or {}
    tags = None
    if parsed.get("type"):
        r = sim.model.resource(scope)
        if not r:
            raise resource_not_found(sim, parsed["type"], parsed["names"][-1], parsed.get("resource_group"))
        tags = r.get("tags") or {}
    elif parsed.get("resource_group"):
        tags = need_rg(sim, parsed["subscription"], parsed["resource_group"]).get("tags") or {}
    elif parsed.get("subscription"):
        tags = ctx.subscription.get("tags") or {}
    else:
        raise bad_request(sim, "InvalidScope", "The scope '%s' is not valid for tags." % scope)
    return Response(200, {"id": scope + "/providers/Microsoft.Resources/tags/default", "name": "default",
                          "type": "Microsoft.Resources/tags", "properties": {"tags": tags}})


# --------------------------------------------------------------------------- generic resources


RES_FILTER_FIELDS = {"resourcetype": "type", "resourcegroup": None, "name": "name", "location": "location",
                     "tagname": None, "tagvalue": None}


def _res_getter(obj, path):
    low = path.lower()
    if low == "resourcetype":
        return obj.get("type")
    if low == "resourcegroup":
        return (parse_resource_id(obj["id"]) or {}).get("resource_group")
    if low == "tagname":
        return list((obj.get("tags") or {}).keys())
    if low == "identity/principalid":
        return (obj.get("identity") or {}).get("principalId")
    from simcore import default_getter
    return default_getter(obj, path)


def filter_resources(sim, items, flt):
    if not flt:
        return items
    m = re.match(r"^\s*tagName\s+eq\s+'((?:[^']|'')*)'(?:\s+and\s+tagValue\s+eq\s+'((?:[^']|'')*)')?\s*$", flt, re.I)
    if m:
        name, value = m.group(1).replace("''", "'"), m.group(2)
        out = []
        for r in items:
            tags = {kk.lower(): v for kk, v in (r.get("tags") or {}).items()}
            if name.lower() in tags and (value is None or tags[name.lower()] == value.replace("''", "'")):
                out.append(r)
        return out
    m = re.match(r"^\s*startswith\(\s*tagName\s*,\s*'((?:[^']|'')*)'\s*\)\s*$", flt, re.I)
    if m:
        pre = m.group(1).lower()
        return [r for r in items if any(t.lower().startswith(pre) for t in (r.get("tags") or {}))]
    try:
        f = ODataFilter(flt, getter=_res_getter)
    except FilterError as e:
        raise bad_request(sim, "InvalidFilterInQueryString", "Invalid $filter '%s': %s" % (flt, e))
    return [r for r in items if f.matches(r)]


@op("Resources_List", "Resources_ListByResourceGroup")
def resources_list(sim, ctx, p):
    sub = p["subscriptionId"]
    scope = "/subscriptions/" + sub
    if p.get("resourceGroupName"):
        need_rg(sim, sub, p["resourceGroupName"])
        scope = rg_id(sub, p["resourceGroupName"])
    items = [r for r in sim.model.resources.values() if is_under(r["id"], scope)]
    flt = ctx.query.get("$filter")
    tag_filter = bool(flt and re.search(r"\btagname\b", flt, re.I))
    items = filter_resources(sim, items, flt)
    out = [resource_list_view(r, ctx.query.get("$expand")) for r in items]
    if tag_filter:
        for r in out:
            r.pop("tags", None)
    return Response(200, sim.paginate(ctx, out, "Resources_List", top_param="$top"))


def validate_generic(sim, ctx, rid):
    """Checks of a by-id request: subscription, RG, namespace, type and api-version."""
    parsed = parse_resource_id(rid)
    if not parsed or not parsed.get("type"):
        raise not_found(sim, "InvalidResourceType", "The resource type could not be found in the namespace "
                                                    "'' for api version '%s'." % ctx.api_version)
    if parsed["resource_group"]:
        need_rg(sim, parsed["subscription"], parsed["resource_group"])
    prov = sim.model.provider(parsed["namespace"])
    if not prov:
        raise not_found(sim, "InvalidResourceType",
                        "The resource type '%s' could not be found in the namespace '%s' for api version '%s'."
                        % (parsed["resource_type"], parsed["namespace"], ctx.api_version))
    rt = sim.model.provider_type(parsed["namespace"], parsed["resource_type"])
    if not rt:
        raise not_found(sim, "InvalidResourceType",
                        "The resource type '%s' could not be found in the namespace '%s' for api version '%s'."
                        % (parsed["resource_type"], prov["namespace"], ctx.api_version))
    if ctx.api_version not in rt.get("apiVersions", []):
        r = sim.model.resource(rid)
        loc = (r or {}).get("location") or (rt.get("locations") or ["global"])[0]
        raise bad_request(sim, "NoRegisteredProviderFound",
                          "No registered resource provider found for location '%s' and API version '%s' for "
                          "type '%s'. The supported api-versions are '%s'. The supported locations are '%s'."
                          % (loc.replace(" ", "").lower(), ctx.api_version, rt["resourceType"],
                             ", ".join(rt.get("apiVersions", [])),
                             ", ".join(l.replace(" ", "").lower() for l in rt.get("locations", []))))
    return parsed


@op("Resources_GetById")
def resources_get_by_id(sim, ctx, p):
    rid = "/" + p["resourceId"].strip("/")
    parsed = validate_generic(sim, ctx, rid)
    r = sim.model.resource(rid)
    if not r:
        raise resource_not_found(sim, parsed["type"], parsed["names"][-1], parsed["resource_group"])
    if k(parsed["type"]) == "microsoft.compute/virtualmachines":
        return Response(200, vm_view(r, ctx.query.get("$expand")))
    return Response(200, render(r))


def children_of(sim, rid):
    return [kk for kk, r in sim.model.resources.items() if kk != k(rid) and is_under(r["id"], rid)]


def lro_params(sim, ctx, kind):
    return sim.lro_settings(ctx, kind)


@op("Resources_DeleteById")
def resources_delete_by_id(sim, ctx, p):
    rid = "/" + p["resourceId"].strip("/")
    parsed = validate_generic(sim, ctx, rid)
    r = sim.model.resource(rid)
    if not r:
        return Response(204)
    check_locks(sim, r["id"], "delete")
    action = parsed["type"] + "/delete"
    existing = (r.get("x-sim") or {}).get("deleting_op")
    if existing and existing in sim.lros and sim.lros[existing].status == "InProgress":
        lro = sim.lros[existing]
        return Response(202, headers=sim.lro_headers(ctx, lro, "resources"))
    mode = sim.model.config.get("resource_delete_mode", "lro")

    def done():
        for key in children_of(sim, r["id"]) + [k(r["id"])]:
            sim.model.resources.pop(key, None)
        for key in [kk for kk, a in sim.model.role_assignments.items()
                    if is_under(a["properties"].get("scope", ""), r["id"])]:
            sim.model.role_assignments.pop(key, None)
        sim.record_activity(ctx, action, r["id"], "OK")
        return None

    if mode == "sync":
        done()
        return Response(200)
    r.setdefault("properties", {})
    before_state = r["properties"].get("provisioningState", "Succeeded")

    def failed():
        r["properties"]["provisioningState"] = before_state
        sim.record_activity(ctx, action, r["id"], "Conflict", status="Failed")

    r["properties"]["provisioningState"] = "Deleting"
    lro = sim.new_lro(ctx, "delete", parsed["subscription"], "Microsoft.Resources",
                      r.get("location") or "westeurope", on_done=done, result_status=204, resource_id=r["id"],
                      on_fail=failed)
    r.setdefault("x-sim", {})["deleting_op"] = lro.id
    sim.record_activity(ctx, action, r["id"], "Accepted", event="BeginRequest", status="Started")
    return Response(202, headers=sim.lro_headers(ctx, lro, "resources"))


# --------------------------------------------------------------------------- security


ALERT_ID_RE = re.compile(r"^/subscriptions/([^/]+)(?:/resourceGroups/([^/]+))?/providers/Microsoft\.Security/"
                         r"locations/([^/]+)/alerts/([^/]+)$", re.I)


def alert_parts(a):
    m = ALERT_ID_RE.match(a["id"])
    if not m:
        return None, None, None, None
    return m.groups()


def find_alert(sim, sub, rg, loc, name, strict=None):
    if strict is None:
        strict = sim.model.config.get("alerts_strict_level")
    for a in sim.model.alerts.values():
        s, g, l, n = alert_parts(a)
        if s is None or k(s) != k(sub) or k(l) != k(loc):
            continue
        if rg is not None and k(g) != k(rg):
            continue
        if rg is None and strict and g:
            continue
        names = {k(n), k(a.get("name")), k((a.get("properties") or {}).get("systemAlertId"))}
        if k(name) in names:
            return a
    return None


@op("Alerts_List", "Alerts_ListByResourceGroup", "Alerts_ListSubscriptionLevelByRegion",
    "Alerts_ListResourceGroupLevelByRegion")
def alerts_list(sim, ctx, p):
    sub, rg, loc = p["subscriptionId"], p.get("resourceGroupName"), p.get("ascLocation")
    if rg:
        need_rg(sim, sub, rg)
    items = []
    for a in sim.model.alerts.values():
        s, g, l, n = alert_parts(a)
        if s is None or k(s) != k(sub):
            continue
        if rg and k(g) != k(rg):
            continue
        if loc and k(l) != k(loc):
            continue
        if ctx.route.id == "Alerts_ListSubscriptionLevelByRegion" and g and \
                sim.model.config.get("alerts_strict_level"):
            continue
        items.append(render(a))
    return Response(200, sim.paginate(ctx, items, ctx.route.id))


def alert_404(sim, name):
    return not_found(sim, "ResourceNotFound", "Alert '%s' was not found." % name)


@op("Alerts_GetSubscriptionLevel", "Alerts_GetResourceGroupLevel")
def alerts_get(sim, ctx, p):
    rg = p.get("resourceGroupName")
    if rg:
        need_rg(sim, p["subscriptionId"], rg)
    a = find_alert(sim, p["subscriptionId"], rg, p["ascLocation"], p["alertName"])
    if not a:
        raise alert_404(sim, p["alertName"])
    return Response(200, render(a))


ALERT_ACTIONS = {"dismiss": "Dismissed", "resolve": "Resolved", "activate": "Active", "inprogress": "InProgress"}


@op(*["Alerts_Update%sLevelStateTo%s" % (lvl, act) for lvl in ("Subscription", "ResourceGroup")
      for act in ("Dismiss", "Resolve", "Activate", "InProgress")])
def alerts_state(sim, ctx, p):
    action = ctx.path.rstrip("/").rsplit("/", 1)[-1].lower()
    rg = p.get("resourceGroupName")
    if rg:
        need_rg(sim, p["subscriptionId"], rg)
    a = find_alert(sim, p["subscriptionId"], rg, p["ascLocation"], p["alertName"])
    if not a:
        raise alert_404(sim, p["alertName"])
    a["properties"]["status"] = ALERT_ACTIONS[action]
    sim.record_activity(ctx, "Microsoft.Security/locations/alerts/%s/action" % action, a["id"], "NoContent")
    return Response(204)


@op("Alerts_Simulate")
def alerts_simulate(sim, ctx, p):
    body = json_body(sim, ctx, required=True)
    if not isinstance(body, dict) or "properties" not in body:
        raise bad_request(sim, "InvalidInputJson", "Input JSON is invalid: 'properties' is required.")
    lro = sim.new_lro(ctx, "simulate", p["subscriptionId"], "Microsoft.Security", p["ascLocation"],
                      result_status=200)
    return Response(202, headers=sim.lro_headers(ctx, lro, "location"))


def location_body(sub, loc):
    return {"id": "/subscriptions/%s/providers/Microsoft.Security/locations/%s" % (sub, loc), "name": loc,
            "type": "Microsoft.Security/locations", "properties": {"homeRegionName": loc}}


@op("Locations_List")
def locations_list(sim, ctx, p):
    sub = ctx.subscription
    items = [location_body(sub["subscriptionId"], l) for l in sub.get("securityLocations") or []]
    return Response(200, sim.paginate(ctx, items, "Locations_List"))


@op("Locations_Get")
def locations_get(sim, ctx, p):
    sub = ctx.subscription
    for l in sub.get("securityLocations") or []:
        if k(l) == k(p["ascLocation"]):
            return Response(200, location_body(sub["subscriptionId"], l))
    raise not_found(sim, "ResourceNotFound", "Location '%s' was not found." % p["ascLocation"])


@op("SecurityContacts_List")
def security_contacts_list(sim, ctx, p):
    items = [render(c) for c in sim.model.security_contacts.values()
             if is_under(c["id"], "/subscriptions/" + p["subscriptionId"])]
    return Response(200, sim.paginate(ctx, items, "SecurityContacts_List"))


@op("SecurityContacts_Get")
def security_contacts_get(sim, ctx, p):
    for c in sim.model.security_contacts.values():
        if is_under(c["id"], "/subscriptions/" + p["subscriptionId"]) and k(c["name"]) == k(p["securityContactName"]):
            return Response(200, render(c))
    raise not_found(sim, "ResourceNotFound", "Security contact '%s' was not found." % p["securityContactName"])


# --------------------------------------------------------------------------- authorization


def ra_scope_from(ctx, p):
    rid = ctx.route.id
    if rid == "RoleAssignments_ListForSubscription":
        return "/subscriptions/" + p["subscriptionId"]
    if rid == "RoleAssignments_ListForResourceGroup":
        return rg_id(p["subscriptionId"], p["resourceGroupName"])
    if rid == "RoleAssignments_ListForResource":
        return "%s/providers/%s/%s/%s" % (rg_id(p["subscriptionId"], p["resourceGroupName"]),
                                          p["resourceProviderNamespace"], p["resourceType"], p["resourceName"])
    return scope_of(p, ctx) or "/"


_RA_FILTER = re.compile(r"""^\s*(?:
    (?P<at>atScope\(\)) |
    principalId\s+eq\s+'?(?P<pid>[0-9a-fA-F-]{36})'? |
    assignedTo\('(?P<assigned>[0-9a-fA-F-]{36})'\)
)\s*$""", re.X | re.I)


def parse_ra_filter(sim, flt):
    out = {"at": False, "principal": None, "assigned": None}
    if not flt:
        return out
    for clause in re.split(r"\s+and\s+", flt.strip(), flags=re.I):
        m = _RA_FILTER.match(clause)
        if not m:
            raise bad_request(sim, "UnsupportedQuery",
                              "The filter '%s' is not supported. Supported filters are either 'atScope()' or "
                              "'principalId eq '{value}'' or 'assignedTo('{value}')'." % flt)
        if m.group("at"):
            out["at"] = True
        if m.group("pid"):
            out["principal"] = m.group("pid").lower()
        if m.group("assigned"):
            out["assigned"] = m.group("assigned").lower()
    return out


@op("RoleAssignments_ListForSubscription", "RoleAssignments_ListForResourceGroup",
    "RoleAssignments_ListForResource", "RoleAssignments_ListForScope")
def role_assignments_list(sim, ctx, p):
    scope = ra_scope_from(ctx, p)
    parsed = parse_resource_id(scope) or {}
    if parsed.get("resource_group"):
        need_rg(sim, parsed["subscription"], parsed["resource_group"])
    f = parse_ra_filter(sim, ctx.query.get("$filter"))
    principals = None
    if f["principal"]:
        principals = {f["principal"]}
    if f["assigned"]:
        principals = {f["assigned"]} | {k(g["id"]) for g in sim.model.transitive_groups(f["assigned"])}
    items = []
    for a in sim.model.role_assignments.values():
        s = a["properties"].get("scope") or "/"
        above = is_under(scope, s)
        below = is_under(s, scope)
        if f["at"] and not above:
            continue
        if not (above or below):
            continue
        if principals is not None and k(a["properties"].get("principalId")) not in principals:
            continue
        items.append(render(a))
    return Response(200, sim.paginate(ctx, items, "RoleAssignments_List"))


def find_ra(sim, scope, name):
    for a in sim.model.role_assignments.values():
        if k(a["name"]) == k(name) and k((a["properties"].get("scope") or "/").rstrip("/")) == k(scope.rstrip("/") or "/"):
            return a
    for a in sim.model.role_assignments.values():
        if k(a["id"]) == k(scope.rstrip("/") + "/providers/Microsoft.Authorization/roleAssignments/" + name):
            return a
    return None


def ra_target(ctx, p):
    if "roleAssignmentId" in p:
        rid = "/" + p["roleAssignmentId"].strip("/")
        scope, _, name = rid.rpartition("/providers/Microsoft.Authorization/roleAssignments/")
        if not name:
            m = re.match(r"^(.*)/providers/Microsoft\.Authorization/roleAssignments/([^/]+)$", rid, re.I)
            scope, name = m.group(1), m.group(2)
        return scope or "/", name
    return scope_of(p, ctx) or "/", p["roleAssignmentName"]


@op("RoleAssignments_Get", "RoleAssignments_GetById")
def role_assignments_get(sim, ctx, p):
    scope, name = ra_target(ctx, p)
    a = find_ra(sim, scope, name)
    if not a:
        raise not_found(sim, "RoleAssignmentNotFound", "The role assignment '%s' is not found." % name)
    return Response(200, render(a))


@op("RoleAssignments_Delete", "RoleAssignments_DeleteById")
def role_assignments_delete(sim, ctx, p):
    scope, name = ra_target(ctx, p)
    a = find_ra(sim, scope, name)
    if not a:
        return Response(204)
    del sim.model.role_assignments[k(a["id"])]
    sim.record_activity(ctx, "Microsoft.Authorization/roleAssignments/delete", a["id"], "OK",
                        response_body=render(a))
    return Response(200, render(a))


@op("RoleAssignments_Create", "RoleAssignments_CreateById")
def role_assignments_create(sim, ctx, p):
    scope, name = ra_target(ctx, p)
    body = json_body(sim, ctx, required=True)
    props = (body or {}).get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict) or not props.get("roleDefinitionId") or not props.get("principalId"):
        raise bad_request(sim, "InvalidRoleAssignmentRequest" if props else "MissingRequiredProperty",
                          "The request must contain 'properties.roleDefinitionId' and 'properties.principalId'.")
    if not re.match(r"^[0-9a-fA-F-]{36}$", name):
        raise bad_request(sim, "InvalidRoleAssignmentId",
                          "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID." % name)
    guid = props["roleDefinitionId"].rstrip("/").rsplit("/", 1)[-1]
    if k(guid) not in sim.model.role_definitions:
        raise bad_request(sim, "RoleDefinitionDoesNotExist",
                          "The specified role definition with ID '%s' does not exist." % guid)
    existing = find_ra(sim, scope, name)
    for a in sim.model.role_assignments.values():
        ap = a["properties"]
        if a is not existing and k(ap.get("principalId")) == k(props["principalId"]) and \
                k(ap.get("scope")) == k(scope) and k(ap.get("roleDefinitionId")).endswith(k(guid)):
            raise HttpError(sim.arm_error(409, "RoleAssignmentExists", "The role assignment already exists."))
    if existing:
        ep = existing["properties"]
        if k(ep.get("principalId")) != k(props["principalId"]) or not k(ep.get("roleDefinitionId")).endswith(k(guid)):
            raise HttpError(sim.arm_error(409, "RoleAssignmentUpdateNotPermitted",
                                          "Tenant ID, application ID, principal ID, and scope are not allowed "
                                          "to be updated."))
        return Response(200, render(existing))
    now = iso_offset()
    obj = {"id": scope.rstrip("/") + "/providers/Microsoft.Authorization/roleAssignments/" + name,
           "name": name, "type": "Microsoft.Authorization/roleAssignments",
           "properties": {"roleDefinitionId": props["roleDefinitionId"], "principalId": props["principalId"],
                          "principalType": props.get("principalType", "User"), "scope": scope,
                          "condition": props.get("condition"), "conditionVersion": props.get("conditionVersion"),
                          "createdOn": now, "updatedOn": now, "createdBy": ctx.principal_oid(),
                          "updatedBy": ctx.principal_oid(), "delegatedManagedIdentityResourceId": None,
                          "description": props.get("description")}}
    sim.model.put("role_assignments", obj)
    sim.record_activity(ctx, "Microsoft.Authorization/roleAssignments/write", obj["id"], "Created",
                        request_body=body)
    return Response(201, render(obj))


def role_def_view(d, scope):
    out = render(d)
    parsed = parse_resource_id(scope or "/") or {}
    if parsed.get("subscription") and out["properties"].get("type") == "BuiltInRole":
        out["id"] = "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (
            parsed["subscription"], d["name"])
    return out


@op("RoleDefinitions_Get", "RoleDefinitions_GetById")
def role_definitions_get(sim, ctx, p):
    if "roleId" in p:
        rid = "/" + p["roleId"].strip("/")
        scope, _, guid = rid.rpartition("/providers/Microsoft.Authorization/roleDefinitions/")
        if not guid:
            m = re.match(r"^(.*)/providers/Microsoft\.Authorization/roleDefinitions/([^/]+)$", rid, re.I)
            scope, guid = m.group(1), m.group(2)
    else:
        scope, guid = scope_of(p, ctx), p["roleDefinitionId"]
    d = sim.model.role_definitions.get(k(guid))
    if not d:
        raise not_found(sim, "RoleDefinitionDoesNotExist",
                        "The specified role definition with ID '%s' does not exist." % guid)
    return Response(200, role_def_view(d, scope))


@op("RoleDefinitions_List")
def role_definitions_list(sim, ctx, p):
    scope = scope_of(p, ctx) or "/"
    flt = ctx.query.get("$filter")
    items = list(sim.model.role_definitions.values())
    if flt:
        m = re.match(r"^\s*(roleName|type)\s+eq\s+'((?:[^']|'')*)'\s*$", flt, re.I)
        if not m:
            if not re.match(r"^\s*atScopeAndBelow\(\)\s*$", flt, re.I):
                raise bad_request(sim, "UnsupportedQuery",
                                  "The filter '%s' is not supported. Supported filters are 'roleName eq' and "
                                  "'type eq'." % flt)
        else:
            field, value = m.group(1).lower(), m.group(2).replace("''", "'")
            key = "roleName" if field == "rolename" else "type"
            items = [d for d in items if k(d["properties"].get(key)) == k(value)]
    out = [role_def_view(d, scope) for d in items]
    return Response(200, sim.paginate(ctx, out, "RoleDefinitions_List"))


@op("ManagementLocks_ListAtSubscriptionLevel", "ManagementLocks_ListAtResourceGroupLevel",
    "ManagementLocks_ListAtResourceLevel", "ManagementLocks_ListByScope")
def locks_list(sim, ctx, p):
    rid = ctx.route.id
    if rid == "ManagementLocks_ListAtSubscriptionLevel":
        scope = "/subscriptions/" + p["subscriptionId"]
    elif rid == "ManagementLocks_ListAtResourceGroupLevel":
        scope = rg_id(p["subscriptionId"], p["resourceGroupName"])
        need_rg(sim, p["subscriptionId"], p["resourceGroupName"])
    elif rid == "ManagementLocks_ListAtResourceLevel":
        scope = "%s/providers/%s/%s/%s/%s" % (rg_id(p["subscriptionId"], p["resourceGroupName"]),
                                             p["resourceProviderNamespace"], p["parentResourcePath"],
                                             p["resourceType"], p["resourceName"])
        scope = scope.replace("//", "/")
    else:
        scope = scope_of(p, ctx) or "/"
    items = []
    for lk in sim.model.locks.values():
        ls = re.split(r"/providers/Microsoft\.Authorization/locks/", lk["id"], flags=re.I)[0]
        # locks at, above or below the scope (ARM lists inherited locks too)
        if is_under(scope, ls) or is_under(ls, scope):
            items.append(render(lk))
    return Response(200, sim.paginate(ctx, items, "ManagementLocks_List"))


# --------------------------------------------------------------------------- automation


def account_id(p):
    return "%s/providers/Microsoft.Automation/automationAccounts/%s" % (
        rg_id(p["subscriptionId"], p["resourceGroupName"]), p["automationAccountName"])


def need_account(sim, p):
    need_rg(sim, p["subscriptionId"], p["resourceGroupName"])
    a = sim.model.resource(account_id(p))
    if not a:
        raise resource_not_found(sim, "Microsoft.Automation/automationAccounts", p["automationAccountName"],
                                 p["resourceGroupName"])
    return a


def automation_error(sim, status, code, message):
    # Automation's own ErrorResponse: {code, message} at the top level.
    return HttpError(Response(status, {"code": code, "message": message}))


@op("AutomationAccount_List", "AutomationAccount_ListByResourceGroup")
def automation_accounts_list(sim, ctx, p):
    scope = "/subscriptions/" + p["subscriptionId"]
    if p.get("resourceGroupName"):
        need_rg(sim, p["subscriptionId"], p["resourceGroupName"])
        scope = rg_id(p["subscriptionId"], p["resourceGroupName"])
    items = [render(r) for r in sim.model.resources.values()
             if k(r.get("type")) == "microsoft.automation/automationaccounts" and is_under(r["id"], scope)]
    return Response(200, sim.paginate(ctx, items, ctx.route.id))


@op("AutomationAccount_Get")
def automation_account_get(sim, ctx, p):
    return Response(200, render(need_account(sim, p)))


def runbook_id(p):
    return account_id(p) + "/runbooks/" + p["runbookName"]


def check_runbook_name(sim, name):
    if not re.match(r"^[a-zA-Z][a-zA-Z-_0-9]*$", name):
        raise bad_request(sim, "InvalidParameter", "The runbook name '%s' is invalid." % name, target="runbookName")


def need_runbook(sim, p):
    need_account(sim, p)
    check_runbook_name(sim, p["runbookName"])
    r = sim.model.resource(runbook_id(p))
    if not r:
        raise automation_error(sim, 404, "NotFound", "The Runbook was not found.")
    return r


def runbook_view(r):
    return render(r)


@op("Runbook_ListByAutomationAccount")
def runbooks_list(sim, ctx, p):
    need_account(sim, p)
    prefix = account_id(p) + "/runbooks/"
    items = [runbook_view(r) for r in sim.model.resources.values()
             if k(r["id"]).startswith(k(prefix)) and "/" not in r["id"][len(prefix):]]
    return Response(200, sim.paginate(ctx, items, "Runbook_ListByAutomationAccount"))


@op("Runbook_Get")
def runbook_get(sim, ctx, p):
    return Response(200, runbook_view(need_runbook(sim, p)))


@op("Runbook_GetContent", "RunbookDraft_GetContent")
def runbook_content(sim, ctx, p):
    r = need_runbook(sim, p)
    sim_data = r.get("x-sim") or {}
    draft = ctx.route.id == "RunbookDraft_GetContent"
    text = sim_data.get("draftContent" if draft else "content")
    if text is None:
        if draft:
            text = sim_data.get("content")
        if text is None:
            raise automation_error(sim, 404, "NotFound", "The Runbook content was not found.")
    return Response(200, text, content_type="text/powershell")


@op("Runbook_Delete")
def runbook_delete(sim, ctx, p):
    need_account(sim, p)
    check_runbook_name(sim, p["runbookName"])
    r = sim.model.resource(runbook_id(p))
    if not r:
        return Response(204)
    check_locks(sim, r["id"], "delete")
    del sim.model.resources[k(r["id"])]
    props = r.get("properties") or {}
    sim.model.deleted_runbooks[k(r["id"])] = {
        "id": r["id"], "name": r["name"],
        "properties": {"runbookId": (r.get("x-sim") or {}).get("runbookId", new_id()),
                       "runbookType": props.get("runbookType"), "runtime": props.get("runtime"),
                       "runtimeEnvironment": props.get("runtimeEnvironment"),
                       "creationTime": props.get("creationTime"), "deletionTime": iso_offset()}}
    sim.record_activity(ctx, "Microsoft.Automation/automationAccounts/runbooks/delete", r["id"], "OK")
    return Response(200)


@op("AutomationAccount_ListDeletedRunbooks")
def list_deleted_runbooks(sim, ctx, p):
    need_account(sim, p)
    prefix = k(account_id(p) + "/runbooks/")
    items = [copy.deepcopy(d) for kk, d in sim.model.deleted_runbooks.items() if kk.startswith(prefix)]
    return Response(200, sim.paginate(ctx, items, "AutomationAccount_ListDeletedRunbooks"))


# --------------------------------------------------------------------------- activity log


_AL_CLAUSE = re.compile(r"^\s*(eventTimestamp|resourceGroupName|resourceUri|resourceProvider|correlationId)"
                        r"\s+(ge|le|eq)\s+'([^']*)'\s*$", re.I)


def insights_error(status, code, message):
    # The activity-log spec declares a top-level ErrorResponse {code, message}.
    return HttpError(Response(status, {"code": code, "message": message}))


def parse_activity_filter(flt):
    if not flt:
        raise insights_error(400, "BadRequest", "The $filter query parameter is required and must contain "
                                                "'eventTimestamp ge' and 'eventTimestamp le'.")
    # split on ' and ' outside quotes
    clauses, cur, inq = [], "", False
    i = 0
    while i < len(flt):
        ch = flt[i]
        if ch == "'":
            inq = not inq
        if not inq and flt[i:i + 5].lower() == " and ":
            clauses.append(cur)
            cur = ""
            i += 5
            continue
        cur += ch
        i += 1
    clauses.append(cur)
    out = {}
    for c in clauses:
        m = _AL_CLAUSE.match(c)
        if not m:
            raise insights_error(400, "BadRequest",
                                 "The $filter '%s' is not supported: only 'eventTimestamp ge', 'eventTimestamp le' "
                                 "and one of 'resourceGroupName eq', 'resourceUri eq', 'resourceProvider eq', "
                                 "'correlationId eq' are allowed." % flt)
        field, opr, value = m.group(1).lower(), m.group(2).lower(), m.group(3)
        if field == "eventtimestamp":
            if opr not in ("ge", "le"):
                raise insights_error(400, "BadRequest", "eventTimestamp only supports 'ge' and 'le'.")
            t = parse_ts(value)
            if t is None:
                raise insights_error(400, "BadRequest", "The value '%s' is not a valid timestamp." % value)
            if opr in out:
                raise insights_error(400, "BadRequest", "Duplicate eventTimestamp %s clause." % opr)
            out[opr] = t
        else:
            if opr != "eq":
                raise insights_error(400, "BadRequest", "'%s' only supports 'eq'." % m.group(1))
            if "extra" in out:
                raise insights_error(400, "BadRequest", "Only one of resourceGroupName, resourceUri, "
                                                        "resourceProvider, correlationId may be given.")
            out["extra"] = (field, value)
    if "ge" not in out or "le" not in out:
        raise insights_error(400, "BadRequest", "The $filter must contain both 'eventTimestamp ge' and "
                                                "'eventTimestamp le'.")
    if out["ge"] > out["le"]:
        raise insights_error(400, "BadRequest", "The start time must be before the end time.")
    return out


_AL_SELECT = {"authorization", "claims", "correlationid", "description", "eventdataid", "eventname",
              "eventtimestamp", "httprequest", "level", "operationid", "operationname", "properties",
              "resourcegroupname", "resourceprovidername", "resourceid", "status", "submissiontimestamp",
              "substatus", "subscriptionid", "caller", "category", "resourcetype", "tenantid", "id", "channels"}


@op("ActivityLogs_List")
def activity_logs_list(sim, ctx, p):
    f = parse_activity_filter(ctx.query.get("$filter"))
    maxd = sim.model.config.get("activity_log_max_days")
    if maxd and f["le"] - f["ge"] > float(maxd) * 86400:
        raise insights_error(400, "BadRequest", "The time range must not exceed %s days." % maxd)
    sub = k(p["subscriptionId"])
    items = []
    for e in sim.model.activity_log.values():
        if k(e.get("subscriptionId")) != sub:
            continue
        t = parse_ts(e.get("eventTimestamp"))
        if t is None or t < f["ge"] or t > f["le"]:
            continue
        if "extra" in f:
            field, value = f["extra"]
            if field == "resourcegroupname" and k(e.get("resourceGroupName")) != k(value):
                continue
            if field == "resourceuri" and k(e.get("resourceId")) != k(value):
                continue
            if field == "resourceprovider" and k((e.get("resourceProviderName") or {}).get("value")) != k(value):
                continue
            if field == "correlationid" and k(e.get("correlationId")) != k(value):
                continue
        items.append((t, e))
    items.sort(key=lambda x: x[0], reverse=True)
    out = [render(e) for _, e in items]
    sel = ctx.query.get("$select")
    if sel:
        fields = [s.strip() for s in sel.split(",") if s.strip()]
        bad = [s for s in fields if s.lower() not in _AL_SELECT]
        if bad:
            raise insights_error(400, "BadRequest", "Invalid $select field(s): %s" % ", ".join(bad))
        low = {s.lower() for s in fields}
        out = [{kk: v for kk, v in e.items() if kk.lower() in low} for e in out]
    return Response(200, sim.paginate(ctx, out, "ActivityLogs_List"))


# --------------------------------------------------------------------------- compute


def vm_id(p):
    return "%s/providers/Microsoft.Compute/virtualMachines/%s" % (rg_id(p["subscriptionId"], p["resourceGroupName"]),
                                                                  p["vmName"])


def need_vm(sim, p):
    need_rg(sim, p["subscriptionId"], p["resourceGroupName"])
    v = sim.model.resource(vm_id(p))
    if not v:
        raise resource_not_found(sim, "Microsoft.Compute/virtualMachines", p["vmName"], p["resourceGroupName"])
    return v


POWER_DISPLAY = {"running": "VM running", "stopped": "VM stopped", "deallocated": "VM deallocated",
                 "starting": "VM starting", "stopping": "VM stopping", "deallocating": "VM deallocating"}


def vm_os_type(v):
    return (((v.get("properties") or {}).get("storageProfile") or {}).get("osDisk") or {}).get("osType") or \
        (v.get("x-sim") or {}).get("osType") or "Linux"


def vm_instance_view(v):
    sim = v.get("x-sim") or {}
    stored = copy.deepcopy(sim.get("instanceView") or {})
    power = sim.get("powerState", "running")
    prov = (v.get("properties") or {}).get("provisioningState", "Succeeded")
    stored.setdefault("computerName", ((v.get("properties") or {}).get("osProfile") or {}).get("computerName",
                                                                                            v.get("name")))
    stored.setdefault("osName", "Windows Server 2022 Datacenter" if vm_os_type(v) == "Windows" else "ubuntu")
    stored.setdefault("vmAgent", {"vmAgentVersion": "2.10.0.8", "statuses": [
        {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
         "message": "Guest Agent is running", "time": iso_offset()}]})
    stored["statuses"] = [
        {"code": "ProvisioningState/%s" % prov.lower(), "level": "Info",
         "displayStatus": "Provisioning %s" % prov.lower(), "time": sim.get("provisionedAt") or iso_offset()},
        {"code": "PowerState/%s" % power, "level": "Info", "displayStatus": POWER_DISPLAY.get(power, power)}]
    return stored


def vm_view(v, expand):
    out = render(v)
    props = out.setdefault("properties", {})
    ex = (expand or "").lower()
    if "userdata" not in ex:
        props.pop("userData", None)
    if "instanceview" in ex:
        props["instanceView"] = vm_instance_view(v)
    else:
        props.pop("instanceView", None)
    return out


@op("VirtualMachines_Get")
def vm_get(sim, ctx, p):
    v = need_vm(sim, p)
    ex = ctx.query.get("$expand")
    if ex and ex.lower() not in ("instanceview", "userdata", "resiliencypolicy"):
        raise bad_request(sim, "InvalidParameter", "The value '%s' of parameter '$expand' is invalid." % ex,
                          target="$expand")
    return Response(200, vm_view(v, ex))


@op("VirtualMachines_InstanceView")
def vm_instance_view_get(sim, ctx, p):
    return Response(200, vm_instance_view(need_vm(sim, p)))


@op("VirtualMachines_List", "VirtualMachines_ListAll")
def vm_list(sim, ctx, p):
    scope = "/subscriptions/" + p["subscriptionId"]
    if p.get("resourceGroupName"):
        need_rg(sim, p["subscriptionId"], p["resourceGroupName"])
        scope = rg_id(p["subscriptionId"], p["resourceGroupName"])
    items = [vm_view(r, None) for r in sim.model.resources.values()
             if k(r.get("type")) == "microsoft.compute/virtualmachines" and is_under(r["id"], scope)]
    return Response(200, sim.paginate(ctx, items, ctx.route.id))


def vm_busy(sim, v):
    op_id = (v.get("x-sim") or {}).get("busy_op")
    if op_id and op_id in sim.lros and sim.lros[op_id].status == "InProgress":
        return sim.lros[op_id]
    return None


def conflict_busy(sim, v, lro):
    return HttpError(sim.arm_error(
        409, "OperationNotAllowed" if lro.kind != "runCommand" else "Conflict",
        "Operation '%s' is not allowed since the Virtual Machine '%s' is currently performing operation '%s'."
        % ("action", v["name"], lro.kind)))


def vm_action(sim, ctx, p, kind, effect, new_transient=None, result=None, result_status=200, mode_key="vm_action_mode"):
    v = need_vm(sim, p)
    check_locks(sim, v["id"], "write")
    busy = vm_busy(sim, v)
    if busy:
        raise conflict_busy(sim, v, busy)
    vs = v.setdefault("x-sim", {})
    props = v.setdefault("properties", {})
    mode = sim.model.config.get(mode_key, "lro")
    action = "Microsoft.Compute/virtualMachines/%s/action" % kind

    def done():
        props["provisioningState"] = "Succeeded"
        vs.pop("busy_op", None)
        res = effect()
        sim.record_activity(ctx, action, v["id"], "OK")
        return res

    if mode == "sync":
        res = done()
        return Response(result_status if res is None else 200, res if res is not None else None)
    before_power = vs.get("powerState", "running")

    def failed():
        props["provisioningState"] = "Failed"
        vs["powerState"] = before_power
        vs.pop("busy_op", None)
        sim.record_activity(ctx, action, v["id"], "Conflict", status="Failed")

    props["provisioningState"] = "Updating"
    if new_transient:
        vs["powerState"] = new_transient
    lro = sim.new_lro(ctx, kind, p["subscriptionId"], "Microsoft.Compute",
                      (v.get("location") or "westeurope").replace(" ", "").lower(), on_done=done,
                      result_status=result_status, resource_id=v["id"], on_fail=failed)
    vs["busy_op"] = lro.id
    sim.record_activity(ctx, action, v["id"], "Accepted", event="BeginRequest", status="Started")
    return Response(202, headers=sim.lro_headers(ctx, lro, "compute"))


def _bool_q(ctx, name):
    v = ctx.query.get(name)
    if v is None:
        return None
    return v.lower() == "true"


@op("VirtualMachines_PowerOff")
def vm_power_off(sim, ctx, p):
    v = need_vm(sim, p)
    skip = _bool_q(ctx, "skipShutdown") or _bool_q(ctx, "skipshutdown")

    def effect():
        v["x-sim"]["powerState"] = "stopped"
        v["x-sim"]["lastPowerOff"] = {"skipShutdown": bool(skip), "time": iso()}
    return vm_action(sim, ctx, p, "powerOff", effect, "stopping")


@op("VirtualMachines_Deallocate")
def vm_deallocate(sim, ctx, p):
    v = need_vm(sim, p)
    hib = _bool_q(ctx, "hibernate")

    def effect():
        v["x-sim"]["powerState"] = "deallocated"
        v["x-sim"]["lastDeallocate"] = {"hibernate": bool(hib), "time": iso()}
    return vm_action(sim, ctx, p, "deallocate", effect, "deallocating")


@op("VirtualMachines_Start")
def vm_start(sim, ctx, p):
    v = need_vm(sim, p)

    def effect():
        v["x-sim"]["powerState"] = "running"
    return vm_action(sim, ctx, p, "start", effect, "starting")


@op("VirtualMachines_Reimage")
def vm_reimage(sim, ctx, p):
    v = need_vm(sim, p)
    body = json_body(sim, ctx) or {}
    if not isinstance(body, dict):
        raise bad_request(sim, "InvalidRequestContent", "The request content was invalid.")
    unknown = set(body) - {"tempDisk", "exactVersion", "osProfile"}
    if unknown:
        raise bad_request(sim, "InvalidRequestContent", "Could not find member '%s' on object of type "
                                                        "'VirtualMachineReimageParameters'." % sorted(unknown)[0])

    def effect():
        vs = v["x-sim"]
        vs["reimageCount"] = vs.get("reimageCount", 0) + 1
        vs.setdefault("reimages", []).append({"time": iso(), "parameters": copy.deepcopy(body)})
        vs["powerState"] = "running"
        vs["provisionedAt"] = iso_offset()
        pw = (body.get("osProfile") or {}).get("adminPassword")
        if pw:
            vs["adminPassword"] = pw
    return vm_action(sim, ctx, p, "reimage", effect)


def run_command_output(v, body):
    script = "\n".join(body.get("script") or [])
    for rule in (v.get("x-sim") or {}).get("runCommandOutputs") or []:
        if rule.get("commandId") and k(rule["commandId"]) != k(body.get("commandId")):
            continue
        if rule.get("match") and not re.search(rule["match"], script, re.I | re.S):
            continue
        return rule.get("stdout", ""), rule.get("stderr", "")
    if k(body.get("commandId")) == "runpowershellscript" and not script:
        return "This is a sample script with parameters value1 value2", ""
    return "", ""


@op("VirtualMachines_RunCommand")
def vm_run_command(sim, ctx, p):
    v = need_vm(sim, p)
    body = json_body(sim, ctx, required=True)
    if not isinstance(body, dict) or not body.get("commandId"):
        raise bad_request(sim, "InvalidParameter", "Required parameter 'commandId' is missing (null).",
                          target="commandId")
    doc = next((d for d in RUN_COMMAND_DOCUMENTS if k(d["id"]) == k(body["commandId"])), None)
    if doc is None:
        raise bad_request(sim, "InvalidParameter", "The value '%s' of parameter 'commandId' is invalid."
                          % body["commandId"], target="commandId")
    os_type = vm_os_type(v)
    if k(doc["osType"]) != k(os_type):
        raise bad_request(sim, "InvalidParameter",
                          "Run command '%s' is not supported for OS type '%s'." % (doc["id"], os_type),
                          target="commandId")
    if not isinstance(body.get("script", []), list):
        raise bad_request(sim, "InvalidParameter", "Parameter 'script' must be an array of strings.",
                          target="script")
    power = (v.get("x-sim") or {}).get("powerState", "running")
    if power != "running":
        raise HttpError(sim.arm_error(409, "OperationNotAllowed",
                                      "Cannot execute Run Command on the VM '%s' because it is not running "
                                      "(power state '%s')." % (v["name"], power)))
    stdout, stderr = run_command_output(v, body)
    result = {"value": [
        {"code": "ComponentStatus/StdOut/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
         "message": stdout},
        {"code": "ComponentStatus/StdErr/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
         "message": stderr}]}

    def effect():
        v["x-sim"].setdefault("runCommands", []).append(
            {"time": iso(), "commandId": body["commandId"], "script": body.get("script") or [],
             "parameters": body.get("parameters") or []})
        return result
    return vm_action(sim, ctx, p, "runCommand", effect, result_status=200, mode_key="run_command_mode")


def ext_id(p):
    return vm_id(p) + "/extensions/" + p["vmExtensionName"]


@op("VirtualMachineExtensions_CreateOrUpdate")
def vm_extension_put(sim, ctx, p):
    v = need_vm(sim, p)
    check_locks(sim, v["id"], "write")
    body = json_body(sim, ctx, required=True)
    if not isinstance(body, dict) or not body.get("location"):
        raise bad_request(sim, "LocationRequired", "The location property is required for this definition.")
    props = body.get("properties") or {}
    eid = ext_id(p)
    existing = sim.model.resource(eid)
    protected = props.pop("protectedSettings", None)
    obj = {"name": p["vmExtensionName"], "id": eid, "type": "Microsoft.Compute/virtualMachines/extensions",
           "location": body["location"], "properties": dict(props, provisioningState="Creating" if not existing
                                                             else "Updating")}
    if body.get("tags") is not None:
        obj["tags"] = body["tags"]
    obj["x-sim"] = {"protectedSettings": protected, "history": (existing or {}).get("x-sim", {}).get("history", [])}
    obj["x-sim"]["history"].append({"time": iso(), "settings": props.get("settings"),
                                    "protectedSettings": protected})
    sim.model.put("resources", obj)

    def done():
        r = sim.model.resource(eid)
        if r:
            r["properties"]["provisioningState"] = "Succeeded"
        apply_vmaccess(v, props, protected)
        sim.record_activity(ctx, "Microsoft.Compute/virtualMachines/extensions/write", eid, "OK")
        return render(r) if r else None

    lro = sim.new_lro(ctx, "extension", p["subscriptionId"], "Microsoft.Compute",
                      (v.get("location") or "westeurope").replace(" ", "").lower(), on_done=done,
                      result_status=200, resource_id=eid)
    return Response(200 if existing else 201, render(obj), headers=sim.lro_headers(ctx, lro, "compute_async"))


def apply_vmaccess(v, props, protected):
    """Record VMAccess password resets on the VM (x-sim.localUsers)."""
    typ = k(props.get("type"))
    if typ not in ("vmaccessforlinux", "vmaccessagent"):
        return
    settings = props.get("settings") or {}
    protected = protected or {}
    user = protected.get("username") or settings.get("username") or settings.get("UserName")
    pw = protected.get("password") or protected.get("Password")
    vs = v.setdefault("x-sim", {})
    users = vs.setdefault("localUsers", {})
    if user and protected.get("remove_user"):
        users.pop(user, None)
    elif user:
        entry = users.setdefault(user, {})
        if pw:
            entry["password"] = pw
            entry["passwordChangedAt"] = iso()
            entry["resets"] = entry.get("resets", 0) + 1


@op("VirtualMachineExtensions_Get")
def vm_extension_get(sim, ctx, p):
    need_vm(sim, p)
    r = sim.model.resource(ext_id(p))
    if not r:
        raise resource_not_found(sim, "Microsoft.Compute/virtualMachines/extensions",
                                 p["vmName"] + "/" + p["vmExtensionName"], p["resourceGroupName"])
    return Response(200, render(r))


@op("VirtualMachineExtensions_Delete")
def vm_extension_delete(sim, ctx, p):
    v = need_vm(sim, p)
    r = sim.model.resource(ext_id(p))
    if not r:
        return Response(204)
    check_locks(sim, r["id"], "delete")
    r["properties"]["provisioningState"] = "Deleting"

    def done():
        sim.model.resources.pop(k(r["id"]), None)
        sim.record_activity(ctx, "Microsoft.Compute/virtualMachines/extensions/delete", r["id"], "OK")
    lro = sim.new_lro(ctx, "extensionDelete", p["subscriptionId"], "Microsoft.Compute",
                      (v.get("location") or "westeurope").replace(" ", "").lower(), on_done=done,
                      result_status=200, resource_id=r["id"])
    return Response(202, headers=sim.lro_headers(ctx, lro, "compute"))


@op("VirtualMachineRunCommands_Get")
def run_command_doc_get(sim, ctx, p):
    doc = next((d for d in RUN_COMMAND_DOCUMENTS if k(d["id"]) == k(p["commandId"])), None)
    if not doc:
        raise not_found(sim, "NotFound", "The entity was not found in this Azure location.")
    return Response(200, copy.deepcopy(doc))


@op("VirtualMachineRunCommands_List")
def run_command_doc_list(sim, ctx, p):
    items = [{kk: d[kk] for kk in ("$schema", "id", "osType", "label", "description")} for d in RUN_COMMAND_DOCUMENTS]
    return Response(200, sim.paginate(ctx, items, "VirtualMachineRunCommands_List"))


# --------------------------------------------------------------------------- RBAC


def rbac_action(ctx, route, params):
    """The Azure RBAC action a request needs (used when config.enforce_rbac is true)."""
    rid = route.id
    m = ctx.method
    table = {
        "Alerts_": "Microsoft.Security/locations/alerts/read",
        "Locations_": "Microsoft.Security/locations/read",
        "SecurityContacts_": "Microsoft.Security/securityContacts/read",
        "RoleAssignments_": "Microsoft.Authorization/roleAssignments/%s" % (
            "read" if m == "GET" else "write" if m == "PUT" else "delete"),
        "RoleDefinitions_": "Microsoft.Authorization/roleDefinitions/read",
        "ManagementLocks_": "Microsoft.Authorization/locks/read",
        "AutomationAccount_": "Microsoft.Automation/automationAccounts/read",
        "Runbook_": "Microsoft.Automation/automationAccounts/runbooks/%s" % ("delete" if m == "DELETE" else "read"),
        "RunbookDraft_": "Microsoft.Automation/automationAccounts/runbooks/draft/read",
        "Resources_List": "Microsoft.Resources/subscriptions/resources/read",
        "Providers_": "Microsoft.Resources/subscriptions/providers/read",
        "Tags_": "Microsoft.Resources/tags/read",
        "ResourceGroups_": "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Subscriptions_": "Microsoft.Resources/subscriptions/read",
        "ActivityLogs_": "Microsoft.Insights/eventtypes/values/read",
        "VirtualMachineExtensions_": "Microsoft.Compute/virtualMachines/extensions/%s" % (
            "read" if m == "GET" else "write" if m == "PUT" else "delete"),
        "VirtualMachineRunCommands_": "Microsoft.Compute/locations/runCommands/read",
    }
    if rid.startswith("Alerts_Update") or rid == "Alerts_Simulate":
        return "Microsoft.Security/locations/alerts/%s/action" % ctx.path.rstrip("/").rsplit("/", 1)[-1]
    if rid == "AutomationAccount_ListDeletedRunbooks":
        return "Microsoft.Automation/automationAccounts/listDeletedRunbooks/action"
    if rid.startswith("VirtualMachines_"):
        if m == "GET":
            return "Microsoft.Compute/virtualMachines/read"
        return "Microsoft.Compute/virtualMachines/%s/action" % ctx.path.rstrip("/").rsplit("/", 1)[-1]
    if rid in ("Resources_GetById", "Resources_DeleteById"):
        parsed = parse_resource_id("/" + params.get("resourceId", "").strip("/")) or {}
        return "%s/%s" % (parsed.get("type") or "Microsoft.Resources/resources",
                          "read" if m == "GET" else "delete")
    for prefix, action in table.items():
        if rid.startswith(prefix):
            return action
    return "Microsoft.Resources/%s" % ("read" if m == "GET" else "write")


def _action_match(pattern, action):
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def authorize(sim, ctx, action, target):
    oid = ctx.principal_oid()
    principals = {k(oid)} | {k(g["id"]) for g in sim.model.transitive_groups(oid)}
    for a in sim.model.role_assignments.values():
        props = a["properties"]
        if k(props.get("principalId")) not in principals:
            continue
        if not is_under(target, props.get("scope") or "/"):
            continue
        guid = (props.get("roleDefinitionId") or "").rstrip("/").rsplit("/", 1)[-1]
        d = sim.model.role_definitions.get(k(guid))
        if not d:
            continue
        for perm in d["properties"].get("permissions") or []:
            if any(_action_match(x, action) for x in perm.get("actions") or []) and \
                    not any(_action_match(x, action) for x in perm.get("notActions") or []):
                return True
    return False
