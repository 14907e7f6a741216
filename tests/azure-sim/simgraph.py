"""Microsoft Graph (v1.0 and beta): users, deleted items, directory audits, memberships,
directory role assignments and service principals."""

import copy
import re

from simcore import Response, HttpError, iso, ODataFilter, FilterError
from simmodel import k, DIRECTORY_ROLES

USER_DEFAULT = ["businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"]
USER_WRITABLE = {"accountEnabled", "passwordProfile", "displayName", "givenName", "surname", "jobTitle",
                 "mobilePhone", "officeLocation", "businessPhones", "preferredLanguage", "mail",
                 "userPrincipalName", "usageLocation", "department", "passwordPolicies", "mailNickname",
                 "companyName", "employeeId", "city", "country", "state", "streetAddress", "postalCode",
                 "userType", "aboutMe"}
USER_READONLY = {"id", "createdDateTime", "deletedDateTime", "signInSessionsValidFromDateTime",
                 "onPremisesSyncEnabled", "lastPasswordChangeDateTime"}

# Application permissions that satisfy each operation (any one of them).
PERMS = {
    "read_users": ["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All",
                   "User.ReadBasic.All"],
    "enable_disable": ["User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"],
    "password": ["User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"],
    "update": ["User.ReadWrite.All", "Directory.ReadWrite.All"],
    "delete": ["User.DeleteRestore.All", "User.ReadWrite.All", "Directory.ReadWrite.All"],
    "revoke": ["User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"],
    "restore": ["User.DeleteRestore.All", "User.ReadWrite.All", "Directory.ReadWrite.All"],
    "members": ["User.Read.All", "GroupMember.Read.All", "Group.Read.All", "Directory.Read.All",
                "Directory.ReadWrite.All", "User.ReadWrite.All"],
    "role_assignments": ["RoleManagement.Read.Directory", "RoleManagement.Read.All", "Directory.Read.All",
                         "RoleManagement.ReadWrite.Directory", "Directory.ReadWrite.All"],
    "audit": ["AuditLog.Read.All"],
    "sp": ["Application.Read.All", "Application.ReadWrite.All", "Application.ReadWrite.OwnedBy",
           "Directory.Read.All", "Directory.ReadWrite.All"],
}
PRIVILEGED_CALLER_ROLES = {"global administrator", "privileged authentication administrator"}

ROUTES = []


def route(method, pattern, op_id):
    def deco(fn):
        ROUTES.append((method, re.compile("^" + pattern + "$", re.I), op_id, fn))
        return fn
    return deco


def match(method, path):
    """(op_id, fn, params) or (None, None, allowed_methods)."""
    allowed = set()
    for m, rx, op_id, fn in ROUTES:
        mm = rx.match(path)
        if mm:
            if m == method:
                return op_id, fn, mm.groupdict()
            allowed.add(m)
    return None, None, allowed


# --------------------------------------------------------------------------- helpers


def gerr(sim, ctx, status, code, message):
    return HttpError(sim.graph_error(ctx, status, code, message))


def not_found(sim, ctx, key):
    return gerr(sim, ctx, 404, "Request_ResourceNotFound",
                "Resource '%s' does not exist or one of its queried reference-property objects are not present."
                % key)


def need_perm(sim, ctx, perm_key):
    if not sim.model.config.get("enforce_graph_permissions", True):
        return
    p = ctx.principal_record
    granted = p.get("graph_permissions") if p else None
    if granted is None:
        return
    granted = {g.lower() for g in granted}
    if not any(x.lower() in granted for x in PERMS[perm_key]):
        raise gerr(sim, ctx, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def caller_privileged(ctx):
    p = ctx.principal_record or {}
    return bool({r.lower() for r in p.get("entra_roles") or []} & PRIVILEGED_CALLER_ROLES)


def protect_privileged(sim, ctx, user):
    if not sim.model.config.get("protect_privileged_users", True):
        return
    if sim.model.is_privileged_user(user["id"]) and not caller_privileged(ctx):
        raise gerr(sim, ctx, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def context_url(sim, ctx, fragment):
    return "%s/%s/$metadata#%s" % (sim.base_url(ctx), ctx.graph_version, fragment)


def select_fields(ctx):
    sel = ctx.query.get("$select")
    if not sel:
        return None
    return [s.strip() for s in sel.split(",") if s.strip()]


def project(obj, fields, defaults):
    src = {kk: v for kk, v in obj.items() if kk != "x-sim"}
    if fields is None:
        fields = defaults
    if fields is None:
        return copy.deepcopy(src)
    out = {}
    low = {kk.lower(): kk for kk in src}
    for f in fields:
        if f.lower() in low:
            out[low[f.lower()]] = copy.deepcopy(src[low[f.lower()]])
        elif f == "passwordProfile":
            out["passwordProfile"] = None
    for kk in ("@odata.type",):
        if kk in src:
            out[kk] = src[kk]
    return out


def user_view(u, fields):
    out = project(u, fields, USER_DEFAULT)
    if fields and "passwordProfile" in fields:
        pp = u.get("passwordProfile") or {}
        out["passwordProfile"] = {"password": None,
                                  "forceChangePasswordNextSignIn": pp.get("forceChangePasswordNextSignIn", False),
                                  "forceChangePasswordNextSignInWithMfa": pp.get("forceChangePasswordNextSignInWithMfa",
                                                                                 False)}
    return out


def apply_filter(sim, ctx, items):
    flt = ctx.query.get("$filter")
    if not flt:
        return items
    try:
        f = ODataFilter(flt)
    except FilterError as e:
        raise gerr(sim, ctx, 400, "BadRequest", "Invalid filter clause: %s" % e)
    try:
        return [i for i in items if f.matches(i)]
    except FilterError as e:
        raise gerr(sim, ctx, 400, "BadRequest", "Invalid filter clause: %s" % e)


def apply_orderby(ctx, items, default=None):
    ob = ctx.query.get("$orderby") or default
    if not ob:
        return items
    field, _, direction = ob.strip().partition(" ")
    rev = direction.strip().lower() == "desc"
    return sorted(items, key=lambda x: (x.get(field) is None, str(x.get(field) or "").lower()), reverse=rev)


def page(sim, ctx, items, op_id, fragment, extra=None):
    body = sim.paginate(ctx, items, op_id, graph=True)
    out = {"@odata.context": context_url(sim, ctx, fragment)}
    if ctx.query.get("$count", "").lower() == "true" and not ctx.query.get("$skiptoken"):
        out["@odata.count"] = len(items)
    if extra:
        out.update(extra)
    out.update(body)
    return out


def need_user(sim, ctx, key):
    u = sim.model.find_user(key)
    if not u:
        raise not_found(sim, ctx, key)
    return u


def audit_initiator(sim, ctx):
    p = ctx.principal_record or {}
    return {"app": {"appId": p.get("client_id"), "displayName": p.get("display_name"),
                    "servicePrincipalId": p.get("object_id"), "servicePrincipalName": p.get("display_name")},
            "user": None}


# --------------------------------------------------------------------------- users


@route("GET", r"/users", "user.list")
def users_list(sim, ctx, p):
    need_perm(sim, ctx, "read_users")
    items = [dict(u) for u in sim.model.users.values()]
    items = apply_filter(sim, ctx, items)
    items = apply_orderby(ctx, items)
    fields = select_fields(ctx)
    views = [user_view(u, fields) for u in items]
    frag = "users" if not fields else "users(%s)" % ",".join(fields)
    return Response(200, page(sim, ctx, views, "user.list", frag))


@route("GET", r"/users/(?P<id>[^/]+)", "user.get")
def user_get(sim, ctx, p):
    need_perm(sim, ctx, "read_users")
    u = need_user(sim, ctx, p["id"])
    fields = select_fields(ctx)
    body = {"@odata.context": context_url(sim, ctx, "users/$entity" if not fields else
                                          "users(%s)/$entity" % ",".join(fields))}
    body.update(user_view(u, fields))
    return Response(200, body)


def password_ok(policy, pw):
    if not isinstance(pw, str):
        return False
    if len(pw) < policy.get("min_length", 8) or len(pw) > policy.get("max_length", 256):
        return False
    classes = sum(bool(re.search(rx, pw)) for rx in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return classes >= policy.get("min_classes", 3)


@route("PATCH", r"/users/(?P<id>[^/]+)", "user.update")
def user_update(sim, ctx, p):
    u = need_user(sim, ctx, p["id"])
    try:
        body = ctx.json()
    except ValueError:
        raise gerr(sim, ctx, 400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type "
                                                "header is set and payload is of valid JSON format.")
    if not isinstance(body, dict) or not body:
        raise gerr(sim, ctx, 400, "BadRequest", "Empty Payload. JSON content expected.")
    for key in body:
        if key in USER_READONLY:
            raise gerr(sim, ctx, 400, "Request_BadRequest", "Property '%s' is read-only and cannot be set." % key)
        if key not in USER_WRITABLE:
            raise gerr(sim, ctx, 400, "Request_BadRequest", "Invalid property '%s'." % key)
    needs = set()
    if "accountEnabled" in body:
        needs.add("enable_disable")
    if "passwordProfile" in body:
        needs.add("password")
    if set(body) - {"accountEnabled", "passwordProfile"}:
        needs.add("update")
    for n in sorted(needs):
        need_perm(sim, ctx, n)
    if "accountEnabled" in body or "passwordProfile" in body:
        protect_privileged(sim, ctx, u)
    if "accountEnabled" in body and not isinstance(body["accountEnabled"], bool):
        raise gerr(sim, ctx, 400, "Request_BadRequest",
                   "Invalid value specified for property 'accountEnabled' of resource 'User'.")
    pp = body.get("passwordProfile")
    if "passwordProfile" in body:
        if not isinstance(pp, dict):
            raise gerr(sim, ctx, 400, "Request_BadRequest",
                       "Invalid value specified for property 'passwordProfile' of resource 'User'.")
        bad = set(pp) - {"password", "forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa"}
        if bad:
            raise gerr(sim, ctx, 400, "Request_BadRequest", "Invalid property '%s'." % sorted(bad)[0])
        if "password" in pp and not password_ok(sim.model.config.get("password_policy") or {}, pp["password"]):
            raise gerr(sim, ctx, 400, "Request_BadRequest",
                       "The specified password does not comply with password complexity requirements. Please "
                       "provide a different password.")
    changed = []
    for key, v in body.items():
        if key == "passwordProfile":
            sim_data = u.setdefault("x-sim", {})
            stored = u.setdefault("passwordProfile", {})
            for kk in ("forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa"):
                if kk in v:
                    stored[kk] = v[kk]
            if "password" in v:
                sim_data["password"] = v["password"]
                sim_data["passwordResets"] = sim_data.get("passwordResets", 0) + 1
                u["lastPasswordChangeDateTime"] = iso(frac=0)
            changed.append("PasswordProfile")
        else:
            u[key] = v
            changed.append(key[0].upper() + key[1:])
    if "passwordProfile" in body:
        sim.record_audit(ctx, "Reset user password", "UserManagement", "Update", u)
    if set(body) - {"passwordProfile"}:
        sim.record_audit(ctx, "Update user", "UserManagement", "Update", u,
                         modified=[{"displayName": c, "oldValue": None, "newValue": None} for c in changed
                                   if c != "PasswordProfile"])
    return Response(204)


@route("DELETE", r"/users/(?P<id>[^/]+)", "user.delete")
def user_delete(sim, ctx, p):
    need_perm(sim, ctx, "delete")
    u = need_user(sim, ctx, p["id"])
    protect_privileged(sim, ctx, u)
    del sim.model.users[k(u["id"])]
    item = dict(u)
    item["@odata.type"] = "#microsoft.graph.user"
    item["deletedDateTime"] = iso(frac=0)
    sim.model.deleted_items[k(u["id"])] = item
    sim.record_audit(ctx, "Delete user", "UserManagement", "Delete", u)
    return Response(204)


@route("POST", r"/users/(?P<id>[^/]+)/revokeSignInSessions", "user.revokeSignInSessions")
def user_revoke(sim, ctx, p):
    need_perm(sim, ctx, "revoke")
    u = need_user(sim, ctx, p["id"])
    u["signInSessionsValidFromDateTime"] = iso(frac=0)
    sim_data = u.setdefault("x-sim", {})
    sim_data["revocations"] = sim_data.get("revocations", 0) + 1
    sim.record_audit(ctx, "Invalidate all refresh tokens for user", "UserManagement", "Update", u)
    status = int(sim.model.config.get("graph_revoke_status", 200))
    if status == 204:
        return Response(204)
    return Response(status, {"@odata.context": context_url(sim, ctx, "Edm.Boolean"), "value": True})


def member_view(sim, ctx, obj, kind):
    if kind == "group":
        out = {kk: v for kk, v in obj.items() if kk not in ("members", "x-sim")}
        out = {"@odata.type": "#microsoft.graph.group", **out}
        return out
    return obj


def directory_role_objects(sim, principal_id, include_groups):
    out = []
    for a in sim.model.directory_roles_of(principal_id, include_groups):
        tid = a["roleDefinitionId"]
        out.append({"@odata.type": "#microsoft.graph.directoryRole",
                    "id": "dr-" + tid, "deletedDateTime": None,
                    "description": None, "displayName": DIRECTORY_ROLES.get(tid, tid),
                    "roleTemplateId": tid})
    seen, uniq = set(), []
    for o in out:
        if o["id"] not in seen:
            seen.add(o["id"])
            uniq.append(o)
    return uniq


@route("GET", r"/users/(?P<id>[^/]+)/transitiveMemberOf", "user.listTransitiveMemberOf")
@route("GET", r"/users/(?P<id>[^/]+)/memberOf", "user.listMemberOf")
def user_member_of(sim, ctx, p):
    need_perm(sim, ctx, "members")
    u = need_user(sim, ctx, p["id"])
    transitive = ctx.path.lower().endswith("/transitivememberof")
    groups = sim.model.transitive_groups(u["id"]) if transitive else sim.model.direct_groups(u["id"])
    items = [member_view(sim, ctx, g, "group") for g in groups]
    items += directory_role_objects(sim, u["id"], transitive)
    items = apply_filter(sim, ctx, items)
    fields = select_fields(ctx)
    if fields:
        items = [project(i, fields, None) for i in items]
    return Response(200, page(sim, ctx, items, "user.listTransitiveMemberOf" if transitive else "user.listMemberOf",
                              "directoryObjects"))


@route("GET", r"/users/(?P<id>[^/]+)/(?P<rest>.+)", "user.unknownSegment")
def user_unknown(sim, ctx, p):
    seg = p["rest"].split("/")[0]
    raise gerr(sim, ctx, 400, "BadRequest", "Resource not found for the segment '%s'." % seg)


# --------------------------------------------------------------------------- deleted items


@route("GET", r"/directory/deletedItems/microsoft\.graph\.(?P<type>user|group|application|servicePrincipal)",
       "directory.deletedItems.listUsers")
def deleted_list(sim, ctx, p):
    need_perm(sim, ctx, "read_users")
    t = "#microsoft.graph." + p["type"]
    items = [dict(d) for d in sim.model.deleted_items.values() if k(d.get("@odata.type")) == k(t)]
    items = apply_filter(sim, ctx, items)
    items = apply_orderby(ctx, items)
    fields = select_fields(ctx)
    defaults = USER_DEFAULT + ["deletedDateTime"] if p["type"] == "user" else None
    views = []
    for d in items:
        v = project(d, fields, defaults)
        v.pop("@odata.type", None)
        views.append(v)
    coll = {"user": "users", "group": "groups", "application": "applications",
            "servicePrincipal": "servicePrincipals"}[p["type"]]
    frag = coll if not fields else "%s(%s)" % (coll, ",".join(fields))
    return Response(200, page(sim, ctx, views, "directory.deletedItems.listUsers", frag))


@route("GET", r"/directory/deletedItems", "directory.deletedItems.listUntyped")
def deleted_list_untyped(sim, ctx, p):
    raise gerr(sim, ctx, 400, "Request_BadRequest",
               "Unsupported request: listing deletedItems requires an OData cast, e.g. "
               "/directory/deletedItems/microsoft.graph.user.")


def need_deleted(sim, ctx, key):
    d = sim.model.deleted_items.get(k(key))
    if not d:
        raise not_found(sim, ctx, key)
    return d


@route("GET", r"/directory/deletedItems/(?P<id>[^/]+)", "directory.deletedItems.get")
def deleted_get(sim, ctx, p):
    need_perm(sim, ctx, "read_users")
    d = need_deleted(sim, ctx, p["id"])
    body = {"@odata.context": context_url(sim, ctx, "directoryObjects/$entity")}
    body.update(project(d, select_fields(ctx), None))
    return Response(200, body)


@route("POST", r"/directory/deletedItems/(?P<id>[^/]+)/restore", "directory.deletedItems.restore")
def deleted_restore(sim, ctx, p):
    need_perm(sim, ctx, "restore")
    d = need_deleted(sim, ctx, p["id"])
    if d.get("@odata.type") == "#microsoft.graph.user":
        upn = d.get("userPrincipalName")
        if upn and sim.model.find_user(upn):
            raise gerr(sim, ctx, 400, "Request_BadRequest",
                       "Another object with the same value for property userPrincipalName already exists.")
    del sim.model.deleted_items[k(d["id"])]
    restored = {kk: v for kk, v in d.items() if kk not in ("deletedDateTime",)}
    if restored.get("@odata.type") == "#microsoft.graph.user":
        obj = {kk: v for kk, v in restored.items() if kk != "@odata.type"}
        obj["deletedDateTime"] = None
        sim.model.users[k(obj["id"])] = obj
        sim.record_audit(ctx, "Restore user", "UserManagement", "Update", obj)
    elif restored.get("@odata.type") == "#microsoft.graph.group":
        obj = {kk: v for kk, v in restored.items() if kk != "@odata.type"}
        obj.setdefault("members", [])
        sim.model.groups[k(obj["id"])] = obj
    body = {"@odata.context": context_url(sim, ctx, "directoryObjects/$entity")}
    view = {kk: v for kk, v in restored.items() if kk not in ("x-sim", "members", "passwordProfile")}
    body.update(view)
    body["@odata.type"] = restored.get("@odata.type")
    return Response(200, body)


@route("DELETE", r"/directory/deletedItems/(?P<id>[^/]+)", "directory.deletedItems.delete")
def deleted_delete(sim, ctx, p):
    need_perm(sim, ctx, "delete")
    d = need_deleted(sim, ctx, p["id"])
    del sim.model.deleted_items[k(d["id"])]
    return Response(204)


# --------------------------------------------------------------------------- audit logs


@route("GET", r"/auditLogs/directoryAudits", "directoryAudit_list")
def directory_audits_list(sim, ctx, p):
    need_perm(sim, ctx, "audit")
    items = [dict(d) for d in sim.model.directory_audits.values()]
    items = apply_filter(sim, ctx, items)
    items = apply_orderby(ctx, items, "activityDateTime desc")
    fields = select_fields(ctx)
    extra = None
    if fields:
        items = [project(i, fields, None) for i in items]
    else:
        extra = {"@microsoft.graph.tips": "Use $select to choose only the properties your app needs, as this can "
                                          "lead to performance improvements. For example: GET "
                                          "auditLogs/directoryAudits?$select=activityDateTime,activityDisplayName"}
    return Response(200, page(sim, ctx, items, "directoryAudit_list", "auditLogs/directoryAudits", extra))


@route("GET", r"/auditLogs/directoryAudits/(?P<id>[^/]+)", "directoryAudit_get")
def directory_audit_get(sim, ctx, p):
    need_perm(sim, ctx, "audit")
    d = sim.model.directory_audits.get(k(p["id"]))
    if not d:
        raise not_found(sim, ctx, p["id"])
    body = {"@odata.context": context_url(sim, ctx, "auditLogs/directoryAudits/$entity")}
    body.update(d)
    return Response(200, body)


# --------------------------------------------------------------------------- role management


@route("GET", r"/roleManagement/directory/roleAssignments", "roleManagement.directory.listRoleAssignments")
def role_assignments_list(sim, ctx, p):
    need_perm(sim, ctx, "role_assignments")
    items = [dict(a) for a in sim.model.directory_role_assignments.values()]
    items = apply_filter(sim, ctx, items)
    expand = (ctx.query.get("$expand") or "").lower()
    frag = "roleManagement/directory/roleAssignments"
    if expand == "principal":
        frag += "(principal())"
        for a in items:
            kind, obj = sim.model.find_principal(a["principalId"])
            if kind == "user":
                pr = {kk: v for kk, v in obj.items() if kk not in ("x-sim", "passwordProfile")}
                a["principal"] = {"@odata.type": "#microsoft.graph.user", **pr}
            elif kind == "group":
                a["principal"] = member_view(sim, ctx, obj, "group")
            elif kind == "servicePrincipal":
                a["principal"] = {"@odata.type": "#microsoft.graph.servicePrincipal", "id": obj["object_id"],
                                  "appId": obj["client_id"], "displayName": obj["display_name"]}
            else:
                a["principal"] = None
    elif expand:
        raise gerr(sim, ctx, 400, "BadRequest", "Could not find a property named '%s' on type "
                                                "'microsoft.graph.unifiedRoleAssignment'." % expand)
    fields = select_fields(ctx)
    if fields:
        items = [project(i, fields + (["principal"] if expand else []), None) for i in items]
    return Response(200, page(sim, ctx, items, "roleManagement.directory.listRoleAssignments", frag))


# --------------------------------------------------------------------------- service principals


def sp_view(a):
    return {"id": a["object_id"], "appId": a["client_id"], "displayName": a["display_name"],
            "accountEnabled": not a.get("disabled", False),
            "servicePrincipalType": "ManagedIdentity" if a.get("kind") == "managed_identity" or
            "resource_id" in a else "Application",
            "appRoles": [], "keyCredentials": [], "passwordCredentials": [], "tags": []}


@route("GET", r"/servicePrincipals\(appId='(?P<appid>[^']+)'\)", "servicePrincipal.getByAppId")
@route("GET", r"/servicePrincipals/(?P<id>[^/]+)", "servicePrincipal.get")
def sp_get(sim, ctx, p):
    target = None
    for a in list(sim.model.apps.values()) + list(sim.model.managed_identities.values()):
        if (p.get("id") and k(a["object_id"]) == k(p["id"])) or (p.get("appid") and k(a["client_id"]) == k(p["appid"])):
            target = a
            break
    me = ctx.principal_record or {}
    if target is None or k(target.get("object_id")) != k(me.get("object_id")):
        need_perm(sim, ctx, "sp")
    if target is None:
        raise not_found(sim, ctx, p.get("id") or p.get("appid"))
    body = {"@odata.context": context_url(sim, ctx, "servicePrincipals/$entity")}
    body.update(sp_view(target))
    return Response(200, body)
