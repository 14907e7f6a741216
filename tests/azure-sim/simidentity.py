"""Identity: the Entra ID v2 token endpoint (client secret, certificate assertion,
federated/workload-identity assertion), the IMDS managed-identity endpoint, and
validation of the bearer tokens presented to ARM and Graph."""

import datetime as _dt
import hashlib
import hmac
import json
import urllib.parse

from simcore import CLOCK, Response, HttpError, b64url, b64url_decode, iso, new_id

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 600 + 300  # "5-10 minutes after nbf at most", plus skew
CLOCK_SKEW = 300


# --------------------------------------------------------------------------- token errors


def token_error(ctx, status, error, code, text):
    if error == "invalid_client":
        status = int(ctx.sim.model.config.get("invalid_client_status", status))
    now = CLOCK.wall()
    ts = _dt.datetime.fromtimestamp(now, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    trace = ctx.request_id
    corr = ctx.correlation_id
    body = {"error": error,
            "error_description": "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s"
                                 % (code, text, trace, corr, ts),
            "error_codes": [code], "timestamp": ts, "trace_id": trace, "correlation_id": corr,
            "error_uri": "https://login.microsoftonline.com/error?code=%d" % code}
    r = Response(status, body)
    r.set_header("Cache-Control", "no-store, no-cache")
    r.set_header("Pragma", "no-cache")
    return r


def _fail(ctx, status, error, code, text):
    raise HttpError(token_error(ctx, status, error, code, text))


# --------------------------------------------------------------------------- access tokens


def resource_of_scope(scope):
    """'https://management.azure.com/.default' -> 'https://management.azure.com'."""
    if not scope.endswith("/.default"):
        return None
    return scope[: -len("/.default")].rstrip("/")


def audience_service(sim, resource):
    res = resource.rstrip("/")
    for aud, svc in sim.model.config.get("token_audiences", {}).items():
        if aud.rstrip("/").lower() == res.lower():
            return svc
    return None


def issue_access_token(sim, principal, resource, service, flow):
    """Mint a JWT-shaped access token.  The signature is an HMAC with a per-process key;
    clients must treat it as opaque (real tokens are RS256 from Entra)."""
    now = int(CLOCK.wall())
    life = int(sim.model.config.get("token_lifetime_seconds", 3599))
    tid = sim.model.tenant["id"]
    uti = b64url(new_id().encode())[:22]
    claims = {"aud": resource if service != "arm" else resource.rstrip("/") + "/",
              "iss": "https://sts.windows.net/%s/" % tid, "iat": now, "nbf": now,
              "exp": now + life, "aio": b64url(new_id().encode())[:40],
              "appid": principal["client_id"], "appidacr": "1" if flow == "client_secret" else "2",
              "idp": "https://sts.windows.net/%s/" % tid, "idtyp": "app",
              "oid": principal["object_id"], "rh": "0.AAAA-sim.", "sub": principal["object_id"],
              "tid": tid, "uti": uti, "ver": "1.0", "xms_tcdt": 1600000000}
    if service == "graph" and principal.get("graph_permissions"):
        claims["roles"] = list(principal["graph_permissions"])
    if principal.get("kind") == "managed_identity" and principal.get("resource_id"):
        claims["xms_mirid"] = principal["resource_id"]
    header = {"typ": "JWT", "alg": "RS256", "x5t": "azure-sim", "kid": "azure-sim"}
    signing_input = b64url(json.dumps(header, separators=(",", ":"))) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")))
    sig = hmac.new(sim.token_key, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + b64url(sig)
    sim.tokens[uti] = {"uti": uti, "client_id": principal["client_id"],
                       "object_id": principal["object_id"], "kind": principal.get("kind"),
                       "flow": flow, "aud": claims["aud"], "service": service,
                       "issued_at": iso(now), "expires_at": iso(now + life), "exp": now + life,
                       "revoked": False}
    return token, claims, life


def decode_access_token(sim, token):
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        sig = b64url_decode(parts[2])
        expect = hmac.new(sim.token_key, (parts[0] + "." + parts[1]).encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(sig, expect):
            return None
        return json.loads(b64url_decode(parts[1]))
    except (ValueError, TypeError):
        return None


def _arm_401(ctx, code, message, desc):
    tid = ctx.sim.model.tenant["id"]
    r = Response(401, {"error": {"code": code, "message": message}})
    r.set_header("WWW-Authenticate",
                 'Bearer authorization_uri="https://login.microsoftonline.com/%s", '
                 'error="invalid_token", error_description="%s"' % (tid, desc))
    return r


def _dotnet_time(ts):
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    h = d.hour % 12 or 12
    return "%d/%d/%d %d:%02d:%02d %s" % (d.month, d.day, d.year, h, d.minute, d.second,
                                        "AM" if d.hour < 12 else "PM")


def authenticate(sim, ctx, service):
    """Validate the bearer token for ARM or Graph.  Returns the token claims; raises
    HttpError with the service's 401 body otherwise."""
    graph = service == "graph"
    auth = ctx.header("Authorization")

    def fail(arm_code, arm_msg, graph_msg, desc):
        if graph:
            raise HttpError(sim.graph_error(ctx, 401, "InvalidAuthenticationToken", graph_msg))
        raise HttpError(_arm_401(ctx, arm_code, arm_msg, desc))

    if not auth:
        fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
             "Access token is empty.", "The authentication failed because of missing 'Authorization' header.")
    scheme, _, token = auth.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        fail("AuthenticationFailedInvalidHeader",
             "Authentication failed. The 'Authorization' header is provided in an invalid format.",
             "Access token is empty." if not token else "Access token validation failure.",
             "The authentication failed because of an invalid 'Authorization' header.")
    claims = decode_access_token(sim, token)
    if claims is None:
        fail("InvalidAuthenticationToken", "The access token is invalid.",
             "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or "
             "JWE Compact Serialization Format." if token.count(".") != 2 else
             "Access token validation failure.", "The access token is invalid.")
    rec = sim.tokens.get(claims.get("uti"))
    if rec is None or rec.get("revoked"):
        fail("InvalidAuthenticationToken", "The access token is invalid.",
             "Access token validation failure.", "The access token is invalid.")
    now = CLOCK.wall()
    if claims.get("exp", 0) <= now:
        fail("ExpiredAuthenticationToken",
             "The access token expiry UTC time '%s' is earlier than current UTC time '%s'."
             % (_dotnet_time(claims["exp"]), _dotnet_time(now)),
             "Lifetime validation failed, the token is expired.", "The access token has expired.")
    if claims.get("nbf", 0) > now + CLOCK_SKEW:
        fail("InvalidAuthenticationToken", "The access token is not yet valid.",
             "Access token has expired or is not yet valid.", "The access token is not yet valid.")
    if audience_service(sim, claims.get("aud", "")) != service:
        if graph:
            fail("", "", "Access token validation failure. Invalid audience.", "")
        fail("InvalidAuthenticationTokenAudience",
             "The access token has been obtained for wrong audience or resource '%s'. It should exactly "
             "match with one of the allowed audiences 'https://management.core.windows.net/',"
             "'https://management.core.windows.net','https://management.azure.com/',"
             "'https://management.azure.com'." % claims.get("aud"),
             "Access token validation failure. Invalid audience.", "The access token audience is invalid.")
    # principal must still exist and be enabled
    principal = sim.principal_by_client_id(claims.get("appid"))
    if principal is None or principal.get("disabled"):
        fail("InvalidAuthenticationToken", "The access token is invalid.",
             "Access token validation failure.", "The access token is invalid.")
    return claims


def check_tenant(sim, ctx, claims, subscription):
    """ARM: a token from another tenant is refused for the subscription."""
    if subscription and claims.get("tid") and subscription.get("tenantId") and \
            claims["tid"].lower() != subscription["tenantId"].lower():
        raise HttpError(_arm_401(
            ctx, "InvalidAuthenticationTokenTenant",
            "The access token is from the wrong issuer 'https://sts.windows.net/%s/'. It must match the "
            "tenant 'https://sts.windows.net/%s/' associated with this subscription. Please use the "
            "authority (URL) 'https://login.windows.net/%s' to get the token. Note, if the subscription "
            "is transferred to another tenant there is no impact to the services, but information about "
            "new tenant could take time to propagate (up to an hour). If you just transferred your "
            "subscription and see this error message, please try back later."
            % (claims["tid"], subscription["tenantId"], subscription["tenantId"]),
            "The access token is from the wrong issuer."))


# --------------------------------------------------------------------------- token endpoint


def token_endpoint(sim, ctx, tenant):
    if ctx.method != "POST":
        _fail(ctx, 400, "invalid_request", 900561,
              "The endpoint only accepts POST, OPTIONS requests. Received a %s request." % ctx.method)
    ctype = (ctx.header("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        _fail(ctx, 400, "invalid_request", 900144,
              "The request body must contain the following parameter: 'grant_type'.")
    try:
        form = dict(urllib.parse.parse_qsl(ctx.body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        form = {}
    ctx.form = form
    t = sim.model.tenant
    if tenant.lower() not in {t["id"].lower(), (t.get("domain") or "").lower()}:
        _fail(ctx, 400, "invalid_request", 90002,
              "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing "
              "into the correct cloud. Check with your subscription administrator, this may happen if "
              "there are no active subscriptions for the tenant." % tenant)
    for p in ("grant_type", "client_id", "scope"):
        if not form.get(p):
            _fail(ctx, 400, "invalid_request", 900144,
                  "The request body must contain the following parameter: '%s'." % p)
    if form["grant_type"] != "client_credentials":
        _fail(ctx, 400, "unsupported_grant_type", 70003,
              "The app requested an unsupported grant type '%s'." % form["grant_type"])
    client_id = form["client_id"]
    app = sim.model.apps.get(client_id.lower())
    if app is None:
        _fail(ctx, 400, "unauthorized_client", 700016,
              "Application with identifier '%s' was not found in the directory '%s'. This can happen if "
              "the application has not been installed by the administrator of the tenant or consented "
              "to by any user in the tenant. You may have sent your authentication request to the wrong "
              "tenant." % (client_id, t.get("displayName") or t["id"]))
    if app.get("disabled"):
        _fail(ctx, 400, "unauthorized_client", 7000112,
              "Application '%s'(%s) is disabled." % (client_id, app["display_name"]))
    scopes = form["scope"].split()
    resources = set()
    for s in scopes:
        r = resource_of_scope(s)
        if r is None or audience_service(sim, r) is None:
            _fail(ctx, 400, "invalid_scope", 70011,
                  "The provided value for the input parameter 'scope' is not valid. The scope %s is not "
                  "valid." % form["scope"])
        resources.add(r.lower())
    if len(resources) != 1:
        _fail(ctx, 400, "invalid_scope", 70011,
              "The provided value for the input parameter 'scope' is not valid. The scope %s is not "
              "valid. Scope can only contain one resource." % form["scope"])
    resource = resource_of_scope(scopes[0])
    service = audience_service(sim, resource)

    secret = form.get("client_secret")
    assertion = form.get("client_assertion")
    if secret is not None and assertion is not None:
        _fail(ctx, 400, "invalid_request", 90014,
              "Only one client credential may be presented (client_secret or client_assertion).")
    if secret is None and assertion is None:
        _fail(ctx, 401, "invalid_client", 7000218,
              "The request body must contain the following parameter: 'client_assertion' or "
              "'client_secret'.")
    if secret is not None:
        flow = "client_secret"
        ok = any(hmac.compare_digest(secret.encode(), s.encode()) for s in app.get("secrets", [])
                 if isinstance(s, str))
        expired = [s for s in app.get("expired_secrets", []) if s == secret]
        if expired:
            _fail(ctx, 401, "invalid_client", 7000222,
                  "The provided client secret keys for app '%s' are expired. Visit the Azure portal to "
                  "create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
                  "certificate credentials for added security: https://aka.ms/certCreds." % client_id)
        if not ok:
            _fail(ctx, 401, "invalid_client", 7000215,
                  "Invalid client secret provided. Ensure the secret being sent in the request is the "
                  "client secret value, not the client secret ID, for a secret added to app '%s'."
                  % client_id)
    else:
        if form.get("client_assertion_type") != JWT_BEARER:
            _fail(ctx, 400, "invalid_request", 700025 if form.get("client_assertion_type") else 900144,
                  "The request body must contain the following parameter: 'client_assertion_type'."
                  if not form.get("client_assertion_type") else
                  "Client assertion type '%s' is not supported." % form["client_assertion_type"])
        flow = check_assertion(sim, ctx, app, assertion, tenant)
    principal = dict(app, kind="app")
    token, claims, life = issue_access_token(sim, principal, resource, service, flow)
    body = {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": token}
    r = Response(200, body)
    r.set_header("Cache-Control", "no-store, no-cache")
    r.set_header("Pragma", "no-cache")
    ctx.principal = {"appid": app["client_id"], "oid": app["object_id"]}
    return r


def _jwt_parts(assertion):
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        sig = b64url_decode(parts[2])
    except (ValueError, TypeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims, sig, (parts[0] + "." + parts[1]).encode()


def check_assertion(sim, ctx, app, assertion, tenant):
    """Certificate (x5t#S256 / x5t) or federated (registered token string) assertion."""
    client_id = app["client_id"]
    now = CLOCK.wall()
    # Federated (workload identity): the assertion must equal a registered token string.
    for tok in app.get("federated_tokens", []):
        if hmac.compare_digest(assertion.encode(), tok.encode()):
            parsed = _jwt_parts(assertion)
            if parsed and isinstance(parsed[1].get("exp"), (int, float)) and parsed[1]["exp"] < now - CLOCK_SKEW:
                _fail(ctx, 401, "invalid_client", 700024,
                      "Client assertion is not within its valid time range. Current time: %s, assertion "
                      "valid from %s, expiry time of assertion %s. Review the documentation at "
                      "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
                      % (iso(now), iso(parsed[1].get("nbf", 0)), iso(parsed[1]["exp"])))
            return "federated"
    parsed = _jwt_parts(assertion)
    if parsed is None:
        _fail(ctx, 401, "invalid_client", 50027,
              "JWT token is invalid or malformed.")
    header, claims, sig, signing_input = parsed
    if "x5t#S256" not in header and "x5t" not in header:
        # No certificate thumbprint: a federated (workload identity) token that matches nothing.
        _fail(ctx, 400, "invalid_request", 70021,
              "No matching federated identity record found for presented assertion. Assertion Issuer: "
              "'%s'. Assertion Subject: '%s'. Assertion Audience: '%s'."
              % (claims.get("iss"), claims.get("sub"), claims.get("aud")))
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        _fail(ctx, 401, "invalid_client", 5002738,
              "Invalid JWT token. '%s' is not a supported signature algorithm. Supported signing "
              "algorithms are: 'RS256, PS256'" % alg)
    certs = (app.get("x-sim") or {}).get("certs") or []
    cert = None
    if "x5t#S256" in header:
        cert = next((c for c in certs if c.x5t_s256 == header["x5t#S256"]), None)
        shown = header["x5t#S256"]
    else:
        cert = next((c for c in certs if header.get("x5t") and c.x5t == header["x5t"]), None)
        shown = header.get("x5t") or header.get("kid")
    if cert is None:
        _fail(ctx, 401, "invalid_client", 700027,
              "The certificate with identifier used to sign the client assertion is not registered on "
              "application. [Reason - The key was not found., Thumbprint of key used by client: '%s', "
              "Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured "
              "keys for app Id '%s'. Review the documentation at https://docs.microsoft.com/en-us/graph/"
              "deployments to determine the corresponding service endpoint and https://docs.microsoft."
              "com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query "
              "request URL, such as 'https://graph.microsoft.com/beta/applications/%s']"
              % (shown, client_id, client_id))
    if not cert.verify(alg, signing_input, sig):
        _fail(ctx, 401, "invalid_client", 700027,
              "Client assertion contains an invalid signature. [Reason - The provided signature value did "
              "not match the expected signature value., Thumbprint of key used by client: '%s', Found "
              "key 'Start=%s, End=%s']" % (cert.thumbprint_hex, iso(cert.not_before or 0),
                                           iso(cert.not_after or 0)))
    if cert.not_after and cert.not_after < now:
        _fail(ctx, 401, "invalid_client", 700027,
              "Client assertion contains an invalid signature. [Reason - The key used is expired., "
              "Thumbprint of key used by client: '%s']" % cert.thumbprint_hex)
    # claims
    t = sim.model.tenant
    allowed_aud = set()
    for base in sim.authority_bases(ctx):
        for tn in {tenant, t["id"], t.get("domain") or t["id"]}:
            allowed_aud.add("%s%s/oauth2/v2.0/token" % (base, tn))
            allowed_aud.add("%s%s/v2.0" % (base, tn))
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a.lower() in {x.lower() for x in allowed_aud} for a in auds):
        _fail(ctx, 401, "invalid_client", 700023,
              "Client assertion audience claim does not match Realm issuer. Review the documentation at "
              "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        _fail(ctx, 401, "invalid_client", 700021,
              "Client assertion application identifier doesn't match 'client_id' parameter. Review the "
              "documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)):
        _fail(ctx, 401, "invalid_client", 700024, "Client assertion is missing the 'exp' claim.")
    if exp < now - CLOCK_SKEW or (isinstance(nbf, (int, float)) and nbf > now + CLOCK_SKEW) or \
            (isinstance(nbf, (int, float)) and exp - nbf > MAX_ASSERTION_LIFETIME + 86400):
        _fail(ctx, 401, "invalid_client", 700024,
              "Client assertion is not within its valid time range. Current time: %s, assertion valid "
              "from %s, expiry time of assertion %s. Review the documentation at "
              "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
              % (iso(now), iso(nbf or 0), iso(exp)))
    jti = claims.get("jti")
    if not jti or not isinstance(jti, str):
        _fail(ctx, 401, "invalid_client", 700027, "Client assertion is missing the 'jti' claim.")
    key = (client_id.lower(), jti)
    if key in sim.seen_jti:
        _fail(ctx, 401, "invalid_client", 7000277,
              "Client assertion replay detected: the 'jti' claim '%s' was already used." % jti)
    sim.seen_jti[key] = exp
    return "client_assertion"


# --------------------------------------------------------------------------- IMDS


def imds_error(status, error, desc):
    return Response(status, {"error": error, "error_description": desc})


def imds_endpoint(sim, ctx):
    if ctx.method != "GET":
        raise HttpError(Response(405, {"error": "invalid_request",
                                       "error_description": "Method not allowed"}))
    if ctx.header("Metadata") != "true":
        raise HttpError(imds_error(400, "invalid_request", "Required metadata header not specified"))
    if ctx.header("X-Forwarded-For"):
        raise HttpError(imds_error(400, "invalid_request",
                                   "Request must not contain X-Forwarded-For header"))
    q = ctx.query
    if not q.get("api-version"):
        raise HttpError(imds_error(400, "invalid_request",
                                   "Required query variable 'api-version' is missing"))
    if q["api-version"] < "2018-02-01":
        raise HttpError(imds_error(400, "invalid_request",
                                   "Invalid API version. Please use API version 2018-02-01 or greater."))
    resource = q.get("resource")
    if not resource:
        raise HttpError(imds_error(400, "invalid_request",
                                   "Required query variable 'resource' is missing"))
    service = audience_service(sim, resource)
    if service is None:
        raise HttpError(imds_error(400, "invalid_resource",
                                   "AADSTS500011: The resource principal named %s was not found in the "
                                   "tenant named %s." % (resource, sim.model.tenant["id"])))
    mis = list(sim.model.managed_identities.values())
    sel = None
    cid, oid = q.get("client_id"), q.get("object_id")
    rid = q.get("msi_res_id") or q.get("mi_res_id")
    if cid or oid or rid:
        for m in mis:
            if (cid and m["client_id"].lower() == cid.lower()) or \
                    (oid and m["object_id"].lower() == oid.lower()) or \
                    (rid and (m.get("resource_id") or "").lower() == rid.lower()):
                sel = m
                break
        if sel is None:
            raise HttpError(imds_error(400, "invalid_request", "Identity not found"))
    else:
        system = [m for m in mis if m.get("system_assigned")]
        if system:
            sel = system[0]
        elif len(mis) == 1:
            sel = mis[0]
        elif not mis:
            raise HttpError(imds_error(400, "invalid_request", "Identity not found"))
        else:
            raise HttpError(imds_error(400, "invalid_request",
                                       "Multiple user assigned identities exist, please specify the "
                                       "clientId / resourceId of the identity in the token request"))
    principal = dict(sel, kind="managed_identity")
    token, claims, life = issue_access_token(sim, principal, resource.rstrip("/"), service, "imds")
    body = {"access_token": token, "refresh_token": "", "expires_in": str(life),
            "expires_on": str(claims["exp"]), "not_before": str(claims["nbf"]),
            "resource": resource, "token_type": "Bearer"}
    ctx.principal = {"appid": sel["client_id"], "oid": sel["object_id"]}
    return Response(200, body)
