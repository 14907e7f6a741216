#!/usr/bin/python3
"""quench Azure simulator: Entra ID token endpoint, IMDS, Azure Resource Manager and
Microsoft Graph, stateful, over HTTPS with a throwaway test CA.  Python 3 standard
library only (plus the openssl CLI for key material).  See README.md.

    azure_sim.py --scenario FILE --state-dir DIR [--port 0] [--imds-port 0] [--ready-file F]
"""

import argparse
import copy
import email.utils
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import simarm  # noqa: E402
import simgraph  # noqa: E402
import simidentity  # noqa: E402
from simcore import (CLOCK, Response, HttpError, RateLimiter, FaultRule, RequestLog, LongRunningOp,  # noqa: E402
                     iso, new_id, sample_latency, ceil_seconds, encode_skiptoken, decode_skiptoken,
                     build_next_link)
from simmodel import Model, ModelError, COLLECTIONS, merge_config, DEFAULT_CONFIG, parse_resource_id, k, \
    fill_event, fill_audit, write_atomic  # noqa: E402

VERSION = "1.0"
TOKEN_PATH_RE = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$", re.I)
GRAPH_PATH_RE = re.compile(r"^/(v1\.0|beta)(/.*)?$", re.I)
SECRET_FORM_FIELDS = {"client_secret"}


def load_operations():
    for path in (os.path.join(HERE, "operations.json"),
                 "/work/shared/reference/azure/operations.json"):
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)["operations"], path
    raise SystemExit("azure-sim: operations.json not found")


# --------------------------------------------------------------------------- request context


class RequestContext:
    def __init__(self, sim, handler, port_kind):
        self.sim = sim
        self.method = handler.command.upper()
        raw = handler.path
        if raw.startswith("http://") or raw.startswith("https://"):
            raw = "/" + raw.split("/", 3)[-1] if raw.count("/") >= 3 else "/"
        self.raw_path, _, self.raw_query = raw.partition("?")
        self.path = urllib.parse.unquote(self.raw_path) or "/"
        if len(self.path) > 1:
            self.path = re.sub(r"/{2,}", "/", self.path)
        self.query_pairs = urllib.parse.parse_qsl(self.raw_query, keep_blank_values=True)
        self.query = {}
        for kk, v in self.query_pairs:
            self.query[kk.lower() if kk.lower() == "api-version" else kk] = v
        # case-insensitive lookups for OData options
        for kk, v in list(self.query.items()):
            if kk.startswith("$"):
                self.query[kk.lower()] = v
        self.headers = handler.headers
        self.body = b""
        self.port_kind = port_kind
        self.service = None
        self.principal = None
        self.principal_record = None
        self.claims = None
        self.route = None
        self.subscription = None
        self.form = None
        self.graph_version = "v1.0"
        self.request_id = new_id()
        self.client_request_id = self.header("x-ms-client-request-id") or self.header("client-request-id")
        self.correlation_id = self.header("x-ms-correlation-request-id") or self.request_id
        self.api_version = self.query.get("api-version")
        self.host = self.header("Host") or "127.0.0.1"
        self.client_addr = handler.client_address[0] if handler.client_address else None

    def header(self, name):
        v = self.headers.get(name) if self.headers is not None else None
        return v

    def json(self):
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))

    def principal_oid(self):
        return (self.principal or {}).get("oid")

    def principal_ids(self):
        return {str(v).lower() for v in (self.principal or {}).values() if v}


# --------------------------------------------------------------------------- the simulator


class Sim:
    def __init__(self, scenario_path, state_dir, page_size=None, token_lifetime=None):
        self.lock = threading.RLock()
        self.state_dir = state_dir
        self.scenario_path = os.path.abspath(scenario_path)
        self.operations, self.operations_path = load_operations()
        self.arm = simarm.ArmRouter(self.operations)
        self.model = Model(state_dir)
        self.cli_overrides = {}
        if page_size:
            self.cli_overrides["page_size"] = page_size
        if token_lifetime:
            self.cli_overrides["token_lifetime_seconds"] = token_lifetime
        self.token_key = os.urandom(32)
        self.tokens = {}
        self.seen_jti = {}
        self.limiter = RateLimiter()
        self.faults = []
        self.fault_seq = 0
        self.log = RequestLog()
        self.lros = {}
        self.https_port = None
        self.http_port = None
        self.ready = {}
        self.load_scenario_file(scenario_path)

    # ------------------------------------------------------------------ scenario

    def load_scenario_file(self, path):
        with open(path) as f:
            scenario = json.load(f)
        self.load_scenario(scenario, os.path.dirname(os.path.abspath(path)))

    def load_scenario(self, scenario, base_dir):
        self.model.load(scenario, base_dir)
        if self.cli_overrides:
            self.model.config = merge_config(self.model.config, self.cli_overrides)
        self.lros = {}
        self.limiter.reset()

    def reset(self, body=None):
        with self.lock:
            if body and body.get("scenario") is not None:
                sc = body["scenario"]
                if isinstance(sc, str):
                    self.scenario_path = sc if os.path.isabs(sc) else os.path.join(os.getcwd(), sc)
                    self.load_scenario_file(self.scenario_path)
                else:
                    self.load_scenario(sc, (body.get("base_dir") or
                                            os.path.dirname(os.path.abspath(self.scenario_path))))
            else:
                self.load_scenario_file(self.scenario_path)
            keep = set((body or {}).get("keep") or [])
            if "faults" not in keep:
                self.faults = []
            if "requests" not in keep:
                self.log.clear()
            if "clock" not in keep:
                CLOCK.frozen = None
                CLOCK.offset = 0.0
            if "tokens" in ((body or {}).get("clear") or []):
                self.tokens = {}
            self.seen_jti = {}
            self.update_ready_apps()

    # ------------------------------------------------------------------ helpers for handlers

    def base_url(self, ctx):
        scheme = "http" if ctx.port_kind == "imds" else "https"
        return "%s://%s" % (scheme, ctx.host)

    def authority_bases(self, ctx):
        bases = {self.base_url(ctx) + "/"}
        if self.https_port:
            bases.add("https://127.0.0.1:%d/" % self.https_port)
            bases.add("https://localhost:%d/" % self.https_port)
        for extra in self.model.config.get("extra_authority_hosts") or []:
            bases.add(extra.rstrip("/") + "/")
        return bases

    def principal_by_client_id(self, cid):
        if not cid:
            return None
        a = self.model.apps.get(k(cid))
        if a:
            return dict(a, kind="app")
        m = self.model.managed_identities.get(k(cid))
        if m:
            return dict(m, kind="managed_identity")
        return None

    def arm_error(self, status, code, message, target=None, details=None, headers=None):
        err = {"code": code, "message": message}
        if target is not None:
            err["target"] = target
        if details is not None:
            err["details"] = details
        return Response(status, {"error": err}, headers=headers)

    def graph_error(self, ctx, status, code, message, inner=None):
        body = {"error": {"code": code, "message": message,
                          "innerError": inner or {"date": iso(frac=0)[:-1],
                                                  "request-id": ctx.request_id,
                                                  "client-request-id": ctx.client_request_id or ctx.request_id}}}
        return Response(status, body)

    def page_size(self, ctx, op_id, graph=False):
        cfg = self.model.config
        ps = cfg.get("page_sizes") or {}
        size = ps.get(op_id) or ps.get("graph" if graph else "arm") or cfg.get("page_size") or 100
        return max(1, int(size))

    def paginate(self, ctx, items, op_id, graph=False, top_param=None):
        size = self.page_size(ctx, op_id, graph)
        top = None
        if graph and ctx.query.get("$top"):
            try:
                top = int(ctx.query["$top"])
            except ValueError:
                raise HttpError(self.graph_error(ctx, 400, "BadRequest", "Invalid page size specified: '%s'."
                                                 % ctx.query["$top"]))
            if top < 1 or top > int(self.model.config.get("graph_max_page_size", 999)):
                raise HttpError(self.graph_error(ctx, 400, "Request_BadRequest",
                                                 "Invalid page size specified: '%d'. Must be between 1 and %d "
                                                 "inclusive." % (top, self.model.config.get("graph_max_page_size",
                                                                                              999))))
            size = top
        elif top_param and ctx.query.get(top_param):
            try:
                top = int(ctx.query[top_param])
            except ValueError:
                raise HttpError(self.arm_error(400, "InvalidParameter", "The $top value is invalid."))
            size = max(1, top)
        offset = 0
        tok = ctx.query.get("$skiptoken")
        if tok:
            offset, _ = decode_skiptoken(tok)
            if offset is None:
                if graph:
                    raise HttpError(self.graph_error(ctx, 400, "Request_BadRequest",
                                                     "Invalid Skip Token: the token is malformed."))
                raise HttpError(self.arm_error(400, "InvalidSkipToken", "The skip token '%s' is invalid." % tok))
        chunk = items[offset: offset + size]
        out = {"value": chunk}
        if offset + size < len(items):
            link = build_next_link(self.base_url(ctx), getattr(ctx, "link_path", None) or ctx.path, ctx.query_pairs,
                                   encode_skiptoken(offset + size))
            out["@odata.nextLink" if graph else "nextLink"] = link
        return out

    # LROs

    def lro_settings(self, ctx, kind):
        cfg = self.model.config.get("lro") or {}
        s = {"polls": cfg.get("polls", 1), "delay_seconds": cfg.get("delay_seconds", 0),
             "retry_after": cfg.get("retry_after", 1), "outcome": "Succeeded", "error": None,
             "failure_status": cfg.get("failure_status", 500)}
        s.update((cfg.get("kinds") or {}).get(kind) or {})
        for rule in getattr(ctx, "lro_faults", []):
            s.update(rule)
        return s

    def new_lro(self, ctx, kind, sub, ns, location, on_done=None, result_status=200, result=None,
                resource_id=None, on_fail=None):
        s = self.lro_settings(ctx, kind)
        lro = LongRunningOp(new_id(), kind, sub, ns, (location or "westeurope").replace(" ", "").lower(),
                            s["polls"], s["delay_seconds"], s["retry_after"], outcome=s.get("outcome", "Succeeded"),
                            error=s.get("error"), on_done=on_done, result=result, result_status=result_status,
                            api_version=ctx.api_version, resource_id=resource_id, on_fail=on_fail)
        lro.failure_status = int(s.get("failure_status") or 500)
        self.lros[lro.id] = lro
        if lro.polls_required <= 0 and lro.delay <= 0:
            pass  # still reported InProgress in the 202; completes on the first poll
        return lro

    def lro_urls(self, ctx, lro):
        base = self.base_url(ctx)
        av = lro.api_version or "2021-04-01"
        if lro.namespace.lower() == "microsoft.resources":
            loc = base + "/subscriptions/%s/operationresults/%s?api-version=%s" % (lro.subscription, lro.id, av)
            asy = base + "/subscriptions/%s/providers/Microsoft.Resources/locations/%s/operationStatuses/%s" \
                         "?api-version=%s" % (lro.subscription, lro.location, lro.id, av)
        else:
            path = "/subscriptions/%s/providers/%s/locations/%s/operations/%s" % (
                lro.subscription, lro.namespace, lro.location, lro.id)
            asy = base + path + "?p=%s&api-version=%s" % (lro.id[:8], av)
            loc = base + path + "?p=%s&monitor=true&api-version=%s" % (lro.id[:8], av)
        return asy, loc

    def lro_headers(self, ctx, lro, style):
        asy, loc = self.lro_urls(ctx, lro)
        styles = (self.model.config.get("lro_headers") or {})
        which = styles.get(style) or {"resources": ["Location"], "compute": ["Azure-AsyncOperation", "Location"],
                                      "compute_async": ["Azure-AsyncOperation", "Location"], "location": ["Location"]}[style]
        h = []
        if "Azure-AsyncOperation" in which:
            h.append(("Azure-AsyncOperation", asy))
        if "Location" in which:
            h.append(("Location", loc))
        if lro.retry_after is not None:
            h.append(("Retry-After", str(lro.retry_after)))
        return h

    def lro_poll(self, ctx, kind, groups):
        if kind == "location_rm":
            sub, op_id = groups
            ns = "Microsoft.Resources"
        else:
            sub, ns, loc, op_id = groups
        lro = self.lros.get(op_id)
        if lro is None or k(lro.subscription) != k(sub):
            raise HttpError(self.arm_error(404, "ResourceNotFound" if kind != "async" else "NotFound",
                                           "The operation '%s' was not found." % op_id))
        as_location = kind in ("location", "location_rm") or (
            kind == "async_or_location" and ctx.query.get("monitor", "").lower() == "true")
        status = lro.advance()
        ra = [("Retry-After", str(lro.retry_after))] if (status == "InProgress" and lro.retry_after is not None) else []
        if not as_location:
            return Response(200, lro.status_body(None if ns.lower() == "microsoft.compute" else ctx.path), headers=ra)
        if status == "InProgress":
            h = [("Location", self.base_url(ctx) + ctx.raw_path + ("?" + ctx.raw_query if ctx.raw_query else ""))]
            return Response(202, headers=h + ra)
        if status == "Succeeded":
            if lro.result is not None:
                return Response(lro.result_status if lro.result_status != 204 else 200, lro.result)
            return Response(lro.result_status)
        return Response(getattr(lro, "failure_status", 500),
                        {"error": lro.error or {"code": "InternalOperationError", "message": "The operation failed."}})

    # activity log and audit records of the simulator's own writes

    def record_activity(self, ctx, action, resource_id, status_code, event="EndRequest", status="Succeeded",
                        request_body=None, response_body=None):
        if not self.model.config.get("record_activity", True):
            return
        p = ctx.principal_record
        caller = (p or {}).get("client_id")
        props = {"statusCode": status_code, "serviceRequestId": ctx.request_id, "eventCategory": "Administrative",
                 "entity": resource_id, "message": action}
        if request_body is not None:
            props["requestbody"] = json.dumps(request_body)
        if response_body is not None:
            props["responseBody"] = json.dumps(response_body)
        parsed = parse_resource_id(resource_id) or {}
        e = {"operationName": action, "resourceId": resource_id, "caller": caller,
             "correlationId": ctx.correlation_id, "eventName": event, "status": status,
             "subStatus": "" if event == "EndRequest" else "", "properties": props,
             "subscriptionId": parsed.get("subscription") or "",
             "httpRequest": {"clientRequestId": ctx.client_request_id or "", "clientIpAddress": ctx.client_addr,
                             "method": ctx.method},
             "claims": {"aud": (ctx.claims or {}).get("aud"), "iss": (ctx.claims or {}).get("iss"),
                        "appid": caller, "http://schemas.microsoft.com/identity/claims/objectidentifier":
                            ctx.principal_oid(), "idtyp": "app"},
             "x-sim": {"generated": True}}
        self.model.put("activity_log", fill_event(e, self.model.tenant["id"]))

    def record_audit(self, ctx, activity, category, op_type, user, modified=None):
        if not self.model.config.get("record_directory_audits", True):
            return
        p = ctx.principal_record or {}
        d = {"category": category, "activityDisplayName": activity, "operationType": op_type,
             "correlationId": ctx.correlation_id, "result": "success", "loggedByService": "Core Directory",
             "initiatedBy": {"user": None, "app": {"appId": p.get("client_id"), "displayName": p.get("display_name"),
                                                   "servicePrincipalId": p.get("object_id"),
                                                   "servicePrincipalName": p.get("display_name")}},
             "targetResources": [{"id": user["id"], "displayName": user.get("displayName"), "type": "User",
                                  "userPrincipalName": user.get("userPrincipalName"),
                                  "modifiedProperties": modified or []}],
             "x-sim": {"generated": True}}
        self.model.put("directory_audits", fill_audit(d))

    # ------------------------------------------------------------------ rate limiting

    def arm_throttle(self, ctx, sub):
        cfg = (self.model.config.get("rate_limits") or {}).get("arm") or {}
        if not cfg.get("enabled", True):
            return []
        cls = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(ctx.method, "writes")
        spec = cfg.get(cls) or {}
        burst, rate = spec.get("burst", 250), spec.get("refill_per_second", 25)
        scope_kind = "subscription" if sub else "tenant"
        scope = sub or self.model.tenant["id"]
        actor = ctx.principal_oid() or "anonymous"
        b = self.limiter.bucket(("arm", scope_kind, k(scope), k(actor), cls), burst, rate)
        mult = cfg.get("global_multiplier")
        g = self.limiter.bucket(("arm-global", scope_kind, k(scope), cls), burst * mult, rate * mult) if mult else None
        ok, remaining, wait = b.take()
        if ok and g is not None:
            gok, gremaining, gwait = g.take()
            if not gok:
                b.level += 1  # give the token back
                ok, wait = False, gwait
        if not ok:
            secs = ceil_seconds(wait)
            word = cls[:-1]
            msg = ("Number of '%s' requests for %s '%s' actor '%s' exceeded. Please try again after '%d' seconds "
                   "after additional tokens are available. Refer to https://aka.ms/arm-throttling"
                   % (word, scope_kind, scope, actor, secs))
            code = "SubscriptionRequestsThrottled" if sub else "TenantRequestsThrottled"
            r = self.arm_error(429, code, msg, headers=[("Retry-After", str(secs))])
            raise HttpError(r)
        headers = [("x-ms-ratelimit-remaining-%s-%s" % (scope_kind, cls), str(int(remaining)))]
        if g is not None:
            headers.append(("x-ms-ratelimit-remaining-%s-global-%s" % (scope_kind, cls), str(int(g.peek()))))
        return headers

    def graph_throttle(self, ctx):
        cfg = (self.model.config.get("rate_limits") or {}).get("graph") or {}
        if not cfg.get("enabled", True):
            return
        appid = (ctx.principal or {}).get("appid") or "anonymous"
        b = self.limiter.bucket(("graph", k(appid)), cfg.get("burst", 2000), cfg.get("refill_per_second", 200))
        ok, remaining, wait = b.take()
        if not ok:
            wait = max(wait, 0.001)
            ra = ("%.3f" % wait) if cfg.get("retry_after_format") == "float" else str(ceil_seconds(wait))
            body = {"error": {"code": "TooManyRequests",
                              "innerError": {"code": "429", "date": iso(frac=0)[:-1], "message": "Please retry after",
                                             "request-id": ctx.request_id, "status": "429"},
                              "message": "Please retry again later."}}
            raise HttpError(Response(429, body, headers=[("Retry-After", ra)]))

    # ------------------------------------------------------------------ dispatch

    def classify(self, ctx):
        if ctx.port_kind == "imds":
            return "imds"
        if ctx.path == "/_admin" or ctx.path.startswith("/_admin/"):
            return "admin"
        if TOKEN_PATH_RE.match(ctx.path):
            return "token"
        if GRAPH_PATH_RE.match(ctx.path):
            return "graph"
        return "arm"

    def handle(self, ctx):
        """Run one request under the model lock; returns a Response."""
        with self.lock:
            try:
                if ctx.service == "token":
                    tenant = TOKEN_PATH_RE.match(ctx.path).group(1)
                    return simidentity.token_endpoint(self, ctx, tenant)
                if ctx.service == "imds":
                    if ctx.path.rstrip("/") != "/metadata/identity/oauth2/token":
                        return Response(404, {"error": "not_found", "error_description": "Not found"})
                    return simidentity.imds_endpoint(self, ctx)
                if ctx.service == "graph":
                    return self.handle_graph(ctx)
                return self.handle_arm(ctx)
            except HttpError as e:
                return e.response

    def peek_principal(self, ctx):
        auth = ctx.header("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            claims = simidentity.decode_access_token(self, auth[7:].strip())
            if claims:
                ctx.principal = {"appid": claims.get("appid"), "oid": claims.get("oid")}
        elif ctx.service == "token":
            form = dict(urllib.parse.parse_qsl(ctx.body.decode("utf-8", "replace")))
            if form.get("client_id"):
                ctx.principal = {"appid": form["client_id"]}

    def _authenticate(self, ctx, service):
        claims = simidentity.authenticate(self, ctx, service)
        ctx.claims = claims
        ctx.principal = {"appid": claims.get("appid"), "oid": claims.get("oid")}
        ctx.principal_record = self.principal_by_client_id(claims.get("appid"))

    def handle_arm(self, ctx):
        self._authenticate(ctx, "arm")
        m = re.match(r"^/subscriptions/([^/]+)", ctx.path, re.I)
        sub_id = m.group(1) if m else None
        sub = self.model.subscription(sub_id) if sub_id else None
        if sub:
            simidentity.check_tenant(self, ctx, ctx.claims, sub)
        rl_headers = self.arm_throttle(ctx, sub["subscriptionId"] if sub else (sub_id if sub_id else None))
        try:
            resp = self._arm_route(ctx, sub_id, sub)
        except HttpError as e:
            resp = e.response
        if resp.status < 400 or resp.status == 404:
            for h in rl_headers:
                resp.headers.append(h)
        return resp

    def _arm_route(self, ctx, sub_id, sub):
        if ctx.method == "GET":
            for kind, rx in simarm.LRO_ROUTES:
                mm = rx.match(ctx.path)
                if mm:
                    ctx.route = None
                    return self.lro_poll(ctx, kind, mm.groups())
        if not ctx.api_version:
            raise HttpError(self.arm_error(400, "MissingApiVersionParameter",
                                           "The api-version query parameter (?api-version=) is required for all "
                                           "requests."))
        route, params = self.arm.match(ctx.method, ctx.path)
        if route is None:
            if params:
                raise HttpError(self.arm_error(405, "MethodNotAllowed",
                                               "The requested resource does not support http method '%s'."
                                               % ctx.method))
            raise HttpError(self.arm_error(404, "InvalidResourceType",
                                           "The resource type could not be found for path '%s' and api version "
                                           "'%s'." % (ctx.path, ctx.api_version)))
        ctx.route = route
        if sub_id and not sub:
            raise HttpError(self.arm_error(404, "SubscriptionNotFound",
                                           "The subscription '%s' could not be found." % sub_id))
        ctx.subscription = sub
        self.check_api_version(ctx, route)
        if route.id in ("Resources_GetById", "Resources_DeleteById"):
            simarm.validate_generic(self, ctx, "/" + params["resourceId"].strip("/"))
        if self.model.config.get("enforce_rbac") and not route.id.startswith("RoleDefinitions_") and \
                route.id != "Subscriptions_List":
            action = simarm.rbac_action(ctx, route, params)
            if not simarm.authorize(self, ctx, action, ctx.path):
                raise HttpError(self.arm_error(
                    403, "AuthorizationFailed",
                    "The client '%s' with object id '%s' does not have authorization to perform action '%s' over "
                    "scope '%s' or the scope is invalid. If access was recently granted, please refresh your "
                    "credentials." % (ctx.principal.get("appid"), ctx.principal_oid(), action, ctx.path)))
        handler = simarm.HANDLERS.get(route.id)
        if handler is None:
            raise HttpError(self.arm_error(501, "NotImplemented", "Operation %s is not simulated." % route.id))
        return handler(self, ctx, params)

    def check_api_version(self, ctx, route):
        if route.op.get("api_version") is None:
            return  # by-id operations: validated against the provider data by the handler
        allowed = [route.op["api_version"]]
        ns = (route.op.get("provider") or "Microsoft.Resources").split(" ")[0]
        for v in self.model.provider_versions(ns):
            if v not in allowed:
                allowed.append(v)
        if ctx.api_version in allowed:
            return
        if k(ns) in ("microsoft.resources",):
            raise HttpError(self.arm_error(400, "InvalidApiVersionParameter",
                                           "The api-version '%s' is invalid. The supported versions are '%s'."
                                           % (ctx.api_version, ",".join(allowed))))
        tail = [seg for seg in route.template.split("/") if seg and not seg.startswith("{")]
        rtype = tail[-1] if tail else ns
        raise HttpError(self.arm_error(400, "NoRegisteredProviderFound",
                                       "No registered resource provider found for location 'global' and API version "
                                       "'%s' for type '%s'. The supported api-versions are '%s'. The supported "
                                       "locations are ''." % (ctx.api_version, rtype, ", ".join(allowed))))

    def handle_graph(self, ctx):
        m = GRAPH_PATH_RE.match(ctx.path)
        ctx.graph_version = m.group(1).lower()
        sub_path = m.group(2) or "/"
        self._authenticate(ctx, "graph")
        self.graph_throttle(ctx)
        op_id, fn, params = simgraph.match(ctx.method, sub_path.rstrip("/") or "/")
        if op_id is None:
            if params:
                raise HttpError(self.graph_error(ctx, 405, "Request_BadRequest",
                                                 "Specified HTTP method is not allowed for the request target."))
            seg = [s for s in sub_path.split("/") if s]
            raise HttpError(self.graph_error(ctx, 400, "BadRequest", "Resource not found for the segment '%s'."
                                             % (seg[0] if seg else "")))
        ctx.route = type("R", (), {"id": op_id})()
        ctx.link_path = ctx.path
        ctx.path = sub_path
        return fn(self, ctx, params)

    # ------------------------------------------------------------------ faults

    def match_faults(self, ctx):
        """Latency (seconds) to add and the first acting non-latency rule, if any."""
        latency, acting = 0.0, None
        lro_overrides = []
        with self.lock:
            for rule in self.faults:
                if not rule.matches(ctx):
                    continue
                if not rule.fire():
                    continue
                if rule.latency is not None:
                    latency += sample_latency(rule.latency)
                if rule.action == "latency":
                    continue
                if rule.action == "lro":
                    lro_overrides.append(rule.spec["lro"])
                    continue
                if acting is None:
                    acting = rule
        ctx.lro_faults = lro_overrides
        return latency, acting

    def fault_response(self, ctx, rule):
        spec = rule.spec
        status = int(spec.get("status", 429 if rule.action == "throttle" else 503))
        headers = list((spec.get("headers") or {}).items())
        ra = spec.get("retry_after")
        if ra is None and rule.action == "throttle":
            ra = 1
        if ra is not None:
            headers.append(("Retry-After", str(ra)))
        if "body" in spec:
            body = spec["body"]
            return Response(status, body if body is not None else None, headers=headers)
        code = spec.get("code")
        message = spec.get("message")
        if ctx.service == "graph":
            if rule.action == "throttle" or status == 429:
                r = Response(429, {"error": {"code": code or "TooManyRequests",
                                             "innerError": {"code": "429", "date": iso(frac=0)[:-1],
                                                            "message": "Please retry after",
                                                            "request-id": ctx.request_id, "status": "429"},
                                             "message": message or "Please retry again later."}}, headers=headers)
                r.status = status
                return r
            r = self.graph_error(ctx, status, code or {500: "InternalServerError", 503: "ServiceUnavailable",
                                                       504: "GatewayTimeout"}.get(status, "UnknownError"),
                                 message or "Injected fault.")
            r.headers += headers
            return r
        if ctx.service in ("token", "imds"):
            return Response(status, {"error": code or "temporarily_unavailable",
                                     "error_description": message or "Injected fault."}, headers=headers)
        if rule.action == "throttle" or status == 429:
            sub = re.match(r"^/subscriptions/([^/]+)", ctx.path, re.I)
            msg = message or ("Number of 'read' requests for subscription '%s' actor '%s' exceeded. Please try "
                              "again after '%s' seconds after additional tokens are available. Refer to "
                              "https://aka.ms/arm-throttling" % (sub.group(1) if sub else "",
                                                                  ctx.principal_oid() or "", ra))
            return self.arm_error(status, code or "SubscriptionRequestsThrottled", msg, headers=headers)
        default_codes = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable",
                         504: "GatewayTimeout", 409: "Conflict", 400: "BadRequest", 403: "AuthorizationFailed",
                         404: "ResourceNotFound", 401: "InvalidAuthenticationToken"}
        return self.arm_error(status, code or default_codes.get(status, "InjectedFault"),
                              message or "Injected fault (rule %s)." % rule.id, headers=headers)

    # ------------------------------------------------------------------ admin

    def update_ready_apps(self):
        apps = {}
        for a in self.model.apps.values():
            sim = a.get("x-sim") or {}
            apps[a["client_id"]] = {"object_id": a["object_id"],
                                    "secret": (a.get("secrets") or [None])[0],
                                    "cert_file": sim.get("cert_file"), "key_file": sim.get("key_file"),
                                    "federated_token_file": sim.get("federated_token_file")}
        self.ready["apps"] = apps
        self.ready["tenant_id"] = self.model.tenant["id"]
        if self.https_port:
            self.ready["token_url"] = "https://127.0.0.1:%d/%s/oauth2/v2.0/token" % (self.https_port,
                                                                                    self.model.tenant["id"])
        self.ready["managed_identities"] = [{"client_id": m["client_id"], "object_id": m["object_id"],
                                             "resource_id": m.get("resource_id")}
                                            for m in self.model.managed_identities.values()]


class AdminError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def admin(sim, ctx):
    """The /_admin API (JSON in, JSON out; no auth; never logged, throttled or faulted)."""
    parts = [p for p in ctx.path[len("/_admin"):].split("/") if p]
    head = parts[0] if parts else ""
    m = ctx.method
    q = {kk: [v] for kk, v in ctx.query_pairs}

    def body():
        if not ctx.body:
            return None
        try:
            return json.loads(ctx.body.decode("utf-8"))
        except ValueError as e:
            raise AdminError(400, "invalid JSON body: %s" % e)

    try:
        with sim.lock:
            if head in ("", "health") and m == "GET":
                return Response(200, {"ok": True, "version": VERSION, "time": iso()})
            if head == "info" and m == "GET":
                return Response(200, sim.ready)
            if head == "reset" and m == "POST":
                sim.reset(body())
                return Response(200, {"ok": True})
            if head == "state":
                return admin_state(sim, ctx, parts[1:], m, body)
            if head == "config":
                if m == "GET":
                    return Response(200, sim.model.config)
                if m in ("PATCH", "PUT"):
                    b = body()
                    if not isinstance(b, dict):
                        raise AdminError(400, "config patch must be an object")
                    if m == "PUT":
                        sim.model.config = merge_config(copy.deepcopy(DEFAULT_CONFIG), b)
                    else:
                        sim.model.config = merge_config(sim.model.config, b)
                    return Response(200, sim.model.config)
            if head == "requests":
                if m == "GET":
                    return Response(200, {"requests": sim.log.query(q)})
                if m == "DELETE":
                    sim.log.clear()
                    return Response(200, {"ok": True})
            if head == "faults":
                if m == "GET":
                    return Response(200, {"faults": [f.to_json() for f in sim.faults]})
                if m == "POST":
                    b = body()
                    specs = b if isinstance(b, list) else [b]
                    ids = []
                    for spec in specs:
                        sim.fault_seq += 1
                        try:
                            rule = FaultRule(spec, "f%d" % sim.fault_seq)
                        except (ValueError, KeyError, re.error) as e:
                            raise AdminError(400, "bad fault rule: %s" % e)
                        sim.faults = [f for f in sim.faults if f.id != rule.id] + [rule]
                        ids.append(rule.id)
                    return Response(201, {"ids": ids})
                if m == "DELETE":
                    if len(parts) > 1:
                        before = len(sim.faults)
                        sim.faults = [f for f in sim.faults if f.id != parts[1]]
                        if len(sim.faults) == before:
                            raise AdminError(404, "no fault %s" % parts[1])
                    else:
                        sim.faults = []
                    return Response(200, {"ok": True})
            if head == "lro" and m == "GET":
                return Response(200, {"operations": [l.to_json() for l in sim.lros.values()]})
            if head == "lro" and m == "POST" and len(parts) > 2 and parts[2] == "complete":
                lro = sim.lros.get(parts[1])
                if not lro:
                    raise AdminError(404, "no operation %s" % parts[1])
                lro.finish()
                return Response(200, lro.to_json())
            if head == "clock":
                if m == "GET":
                    return Response(200, {"offset_seconds": CLOCK.offset, "frozen": bool(CLOCK.frozen),
                                          "now": iso()})
                if m == "POST":
                    b = body() or {}
                    if "offset_seconds" in b:
                        CLOCK.offset = float(b["offset_seconds"])
                    if "advance_seconds" in b:
                        CLOCK.offset += float(b["advance_seconds"])
                    if "freeze" in b:
                        CLOCK.freeze(bool(b["freeze"]))
                    return Response(200, {"offset_seconds": CLOCK.offset, "frozen": bool(CLOCK.frozen),
                                          "now": iso()})
            if head == "tokens":
                if m == "GET":
                    return Response(200, {"tokens": list(sim.tokens.values())})
                if m == "POST" and len(parts) > 1 and parts[1] == "revoke":
                    b = body() or {}
                    n = 0
                    for t in sim.tokens.values():
                        if b.get("all") or (b.get("client_id") and k(t["client_id"]) == k(b["client_id"])) or \
                                (b.get("service") and t["service"] == b["service"]):
                            t["revoked"] = True
                            n += 1
                    return Response(200, {"revoked": n})
            if head == "ratelimits" and m == "GET":
                return Response(200, {"buckets": sim.limiter.snapshot()})
            if head == "ratelimits" and m == "DELETE":
                sim.limiter.reset()
                return Response(200, {"ok": True})
            if head == "apps" and len(parts) >= 3:
                app = sim.model.apps.get(k(parts[1]))
                if not app:
                    raise AdminError(404, "no app %s" % parts[1])
                if parts[2] == "federated-token" and m == "POST":
                    b = body() or {}
                    tok = b.get("token") or sim.model.make_federated_token(app["client_id"])
                    if not b.get("keep_old"):
                        app["federated_tokens"] = []
                    app["federated_tokens"].append(tok)
                    sim.model.put("apps", app)
                    sim.update_ready_apps()
                    path = (sim.model.apps[k(parts[1])].get("x-sim") or {}).get("federated_token_file")
                    return Response(200, {"token": tok, "file": path})
                if parts[2] == "certificates" and m == "POST":
                    pem = ctx.body.decode()
                    if pem.lstrip().startswith("{"):
                        pem = json.loads(pem)["pem"]
                    certs = list(app.get("certificates") or []) + [pem]
                    app = dict(app, certificates=certs)
                    app.pop("generate_certificate", None)
                    try:
                        sim.model.put("apps", app)
                    except Exception as e:  # noqa: BLE001 - report bad PEM to the caller
                        raise AdminError(400, "bad certificate: %s" % e)
                    return Response(201, {"ok": True})
            raise AdminError(404, "unknown admin endpoint %s %s" % (m, ctx.path))
    except AdminError as e:
        return Response(e.status, {"error": e.message})
    except ModelError as e:
        return Response(400, {"error": str(e)})


def admin_state(sim, ctx, parts, m, body):
    model = sim.model
    if not parts:
        if m == "GET":
            return Response(200, model.to_scenario())
        if m == "PUT":
            b = body()
            sim.load_scenario(b, os.path.dirname(os.path.abspath(sim.scenario_path)))
            sim.update_ready_apps()
            return Response(200, {"ok": True})
        raise AdminError(405, "use GET or PUT on /_admin/state")
    name = parts[0]
    if name not in COLLECTIONS:
        raise AdminError(404, "unknown collection %r (known: %s)" % (name, ", ".join(COLLECTIONS)))
    coll = model.collection(name)
    key = "/".join(parts[1:]) if len(parts) > 1 else None
    if key is None:
        if m == "GET":
            items = list(coll.values())
            if name == "apps":
                items = [model.app_public(a) for a in items]
            return Response(200, {"value": copy.deepcopy(items)})
        if m == "POST":
            b = body()
            objs = b if isinstance(b, list) else [b]
            keys = []
            for o in objs:
                kk, _ = model.put(name, o)
                keys.append(kk)
            if name == "apps":
                sim.update_ready_apps()
            return Response(201, {"keys": keys})
        raise AdminError(405, "use GET or POST on a collection")
    lk = model.lookup_key(name, key)
    if m == "GET":
        obj = coll.get(lk)
        if obj is None:
            raise AdminError(404, "%s %s not found" % (name, key))
        return Response(200, model.app_public(obj) if name == "apps" else copy.deepcopy(obj))
    if m == "PUT":
        b = body()
        if not isinstance(b, dict):
            raise AdminError(400, "body must be an object")
        coll.pop(lk, None)
        kk, obj = model.put(name, b)
        if name == "apps":
            sim.update_ready_apps()
        return Response(200, model.app_public(obj) if name == "apps" else copy.deepcopy(obj))
    if m == "PATCH":
        try:
            kk, obj = model.patch(name, key, body() or {})
        except KeyError:
            raise AdminError(404, "%s %s not found" % (name, key))
        return Response(200, model.app_public(obj) if name == "apps" else copy.deepcopy(obj))
    if m == "DELETE":
        if model.delete(name, key) is None:
            raise AdminError(404, "%s %s not found" % (name, key))
        return Response(200, {"ok": True})
    raise AdminError(405, "method not allowed")


# --------------------------------------------------------------------------- HTTP plumbing


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azure-sim/" + VERSION
    sys_version = ""
    timeout = 120

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.sim_verbose:
            sys.stderr.write("azure-sim: %s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > 32 * 1024 * 1024:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def dispatch(self):
        sim = self.server.sim
        start = time.monotonic()
        ctx = RequestContext(sim, self, self.server.port_kind)
        try:
            ctx.body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        ctx.service = sim.classify(ctx)
        if ctx.service == "admin":
            try:
                resp = admin(sim, ctx)
            except Exception as e:  # noqa: BLE001 - report admin bugs to the caller
                traceback.print_exc()
                resp = Response(500, {"error": "%s: %s" % (type(e).__name__, e)})
            self.send(ctx, resp, admin_call=True)
            return
        # the caller is identified early (without validation) so fault rules can match a principal
        sim.peek_principal(ctx)
        latency, rule = sim.match_faults(ctx)
        if latency:
            time.sleep(latency)
        resp = None
        if rule is not None and rule.when == "before":
            if rule.action == "reset":
                self.log_request_entry(ctx, None, start, rule)
                self.reset_connection()
                return
            resp = sim.fault_response(ctx, rule)
            resp.fault = rule.id
        if resp is None:
            try:
                resp = sim.handle(ctx)
            except Exception:  # noqa: BLE001 - a simulator bug must not kill the connection thread
                traceback.print_exc()
                resp = sim.arm_error(500, "InternalServerError", "azure-sim internal error (see its stderr).")
            if rule is not None and rule.when == "after":
                if rule.action == "reset":
                    self.log_request_entry(ctx, resp, start, rule)
                    self.reset_connection()
                    return
                resp = sim.fault_response(ctx, rule)
                resp.fault = rule.id
        self.log_request_entry(ctx, resp, start, rule if resp.fault else None)
        self.send(ctx, resp)

    def log_request_entry(self, ctx, resp, start, rule):
        body = None
        if ctx.method in ("POST", "PUT", "PATCH", "DELETE") and ctx.body:
            if ctx.service == "token":
                form = dict(urllib.parse.parse_qsl(ctx.body.decode("utf-8", "replace"), keep_blank_values=True))
                body = {kk: ("<redacted>" if kk in SECRET_FORM_FIELDS else v) for kk, v in form.items()}
            else:
                try:
                    body = json.loads(ctx.body.decode("utf-8"))
                except ValueError:
                    body = ctx.body.decode("utf-8", "replace")
        route = getattr(ctx, "route", None)
        entry = {"time": iso(), "ts": CLOCK.wall(), "service": ctx.service, "method": ctx.method,
                 "path": ctx.raw_path if ctx.service != "graph" else urllib.parse.unquote(ctx.raw_path),
                 "decoded_path": urllib.parse.unquote(ctx.raw_path),
                 "query": {kk: v for kk, v in ctx.query_pairs}, "raw_query": ctx.raw_query,
                 "status": resp.status if resp is not None else None,
                 "reset": resp is None,
                 "operation": getattr(route, "id", None) if route else None,
                 "principal": ctx.principal, "client_request_id": ctx.client_request_id,
                 "request_id": ctx.request_id, "correlation_id": ctx.correlation_id,
                 "fault": rule.id if rule else None, "body": body,
                 "duration_ms": round((time.monotonic() - start) * 1000, 2),
                 "user_agent": ctx.header("User-Agent"), "http_version": self.request_version}
        if ctx.service == "token" and ctx.form is not None:
            entry["client_id"] = ctx.form.get("client_id")
            entry["grant"] = ("client_secret" if "client_secret" in ctx.form else
                              "client_assertion" if "client_assertion" in ctx.form else None)
        self.server.sim.log.add(entry)

    def reset_connection(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            sock = self.connection
            if isinstance(sock, ssl.SSLSocket):
                raw = socket.socket(fileno=sock.detach())
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raw.close()
            else:
                sock.close()
        except OSError:
            pass
        self.close_connection = True
        self.wfile = _NullWriter()
        self.rfile = _NullReader()

    def send(self, ctx, resp, admin_call=False):
        sim = self.server.sim
        headers = list(resp.headers)
        names = {h.lower() for h, _ in headers}
        body = resp.body if ctx.method != "HEAD" else b""
        if not admin_call:
            common = [("x-ms-request-id", ctx.request_id), ("x-ms-correlation-request-id", ctx.correlation_id)]
            if ctx.service == "arm":
                common.append(("x-ms-routing-request-id", "WESTEUROPE:%s:%s" % (
                    time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(CLOCK.wall())), ctx.request_id)))
                common += [("Cache-Control", "no-cache"), ("Pragma", "no-cache"), ("Expires", "-1"),
                           ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
                           ("X-Content-Type-Options", "nosniff")]
            if ctx.service == "graph":
                common += [("request-id", ctx.request_id),
                           ("client-request-id", ctx.client_request_id or ctx.request_id),
                           ("x-ms-ags-diagnostic", '{"ServerInfo":{"DataCenter":"West Europe","Slice":"E",'
                                                   '"Ring":"5","ScaleUnit":"000","RoleInstance":"azure-sim"}}'),
                           ("OData-Version", "4.0"), ("Cache-Control", "no-cache"),
                           ("Strict-Transport-Security", "max-age=31536000")]
                if resp.header("Content-Type") and resp.header("Content-Type").startswith("application/json") \
                        and resp.status < 300:
                    resp.set_header("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;"
                                                    "IEEE754Compatible=false;charset=utf-8")
                    headers = list(resp.headers)
            if ctx.service == "token":
                common.append(("x-ms-ests-server", "2.1.99999.0 - azure-sim"))
            if ctx.client_request_id and sim.model.config.get("echo_client_request_id", True) and \
                    ctx.service != "graph":
                common.append(("x-ms-client-request-id", ctx.client_request_id))
            for h in common:
                if h[0].lower() not in names:
                    headers.append(h)
        try:
            self.send_response(resp.status)
            for kk, v in headers:
                self.send_header(kk, v)
            self.send_header("Content-Length", str(len(resp.body)))
            if self.close_connection or ctx.header("Connection") == "close":
                self.send_header("Connection", "close")
            self.end_headers()
            if body:
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(CLOCK.wall() if timestamp is None else timestamp, usegmt=True)

    def finish(self):
        try:
            super().finish()
        except (OSError, ssl.SSLError, ValueError):
            pass


class _NullWriter:
    def write(self, b):
        return len(b)

    def flush(self):
        pass

    def close(self):
        pass


class _NullReader:
    def readline(self, *a):
        return b""

    def read(self, *a):
        return b""

    def close(self):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False  # do not wait for idle keep-alive connections at SIGTERM
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, sim, port_kind, ssl_ctx=None, verbose=False):
        self.sim = sim
        self.port_kind = port_kind
        self.ssl_ctx = ssl_ctx
        self.sim_verbose = verbose
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # TLS handshake in the worker thread, so one slow client cannot block accept().
        conn = request
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.ssl_ctx is not None:
            try:
                request.settimeout(30)
                conn = self.ssl_ctx.wrap_socket(request, server_side=True)
                conn.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                if self.sim_verbose:
                    sys.stderr.write("azure-sim: TLS handshake failed from %s: %s\n" % (client_address[0], e))
                try:
                    request.close()
                except OSError:
                    pass
                return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            if conn is not request:
                try:
                    conn.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        if self.sim_verbose:
            super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="quench Azure simulator (ARM, Graph, Entra ID token, IMDS)")
    ap.add_argument("--scenario", required=True, help="scenario JSON file")
    ap.add_argument("--state-dir", required=True, help="directory for the CA, certificates and tokens")
    ap.add_argument("--port", type=int, default=0, help="HTTPS port (ARM, Graph, token, admin); 0 = any")
    ap.add_argument("--imds-port", type=int, default=0, help="plain-HTTP IMDS port; 0 = any")
    ap.add_argument("--ready-file", help="write a JSON description here once listening")
    ap.add_argument("--page-size", type=int, help="override config.page_size")
    ap.add_argument("--token-lifetime", type=int, help="override config.token_lifetime_seconds")
    ap.add_argument("--verbose", "-v", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    os.makedirs(args.state_dir, exist_ok=True)
    try:
        sim = Sim(args.scenario, os.path.abspath(args.state_dir), args.page_size, args.token_lifetime)
    except (ModelError, ValueError, OSError, KeyError, TypeError) as e:
        sys.stderr.write("azure-sim: cannot load scenario %s: %s\n" % (args.scenario, e))
        return 2
    from simcore import generate_ca
    ca_pem, srv_pem, srv_key = generate_ca(args.state_dir)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(srv_pem, srv_key)
    ctx.set_alpn_protocols(["http/1.1"])

    https = Server(("127.0.0.1", args.port), sim, "https", ctx, args.verbose)
    imds = Server(("127.0.0.1", args.imds_port), sim, "imds", None, args.verbose)
    sim.https_port = https.server_address[1]
    sim.http_port = imds.server_address[1]
    base = "https://127.0.0.1:%d" % sim.https_port
    sim.ready.update({
        "pid": os.getpid(), "https_port": sim.https_port, "http_port": sim.http_port,
        "imds_url": "http://127.0.0.1:%d" % sim.http_port,
        "imds_token_url": "http://127.0.0.1:%d/metadata/identity/oauth2/token" % sim.http_port,
        "admin_url": base + "/_admin", "ca_file": os.path.abspath(ca_pem),
        "authority_url": base + "/", "arm_url": base, "graph_url": base,
        "graph_v1_url": base + "/v1.0", "scenario": os.path.abspath(args.scenario),
        "state_dir": os.path.abspath(args.state_dir), "operations": sim.operations_path})
    sim.update_ready_apps()

    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
               for s in (https, imds)]
    for t in threads:
        t.start()
    if args.ready_file:
        write_atomic(args.ready_file, json.dumps(sim.ready, indent=2) + "\n")
    sys.stderr.write("azure-sim: https=%d imds=%d admin=%s/_admin scenario=%s\n"
                     % (sim.https_port, sim.http_port, base, args.scenario))
    sys.stderr.flush()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.is_set():
        stop.wait(0.5)
    for s in (https, imds):
        s.shutdown()
        s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
