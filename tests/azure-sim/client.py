"""Helpers for tests that use the Azure simulator (standard library only).

    from client import SimProcess, SimClient
    with SimProcess("tests/data/scenarios/basic.json") as sim:       # starts azure_sim.py
        c = sim.client()                                            # SimClient bound to its ready file
        tok = c.token_secret(c.worker_app)                          # ARM token (client secret)
        st, hdrs, body = c.arm("GET", "/subscriptions/%s/providers/Microsoft.Security/alerts" % sub,
                               "2022-01-01", tok)
        c.add_fault(service="arm", path="/runbooks/", status=503, count=2)
        log = c.requests(method="DELETE")

Requests go through http.client over TLS verified with the simulator's CA, one
keep-alive connection per client and thread (urllib.request is used by `urlopen_json`
for one-off calls).  The simulator's admin API is documented in README.md.
"""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from simcore import sign_jwt_openssl, b64url  # noqa: E402

ARM_SCOPE = "https://management.azure.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Reply:
    """status, headers (dict, lower-case names), body (bytes); .json() parses the body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def header(self, name):
        return self.headers.get(name.lower())

    def __iter__(self):  # allows: status, headers, body = reply
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "<Reply %s %s>" % (self.status, self.body[:200])


class SimClient:
    def __init__(self, ready):
        if isinstance(ready, str):
            with open(ready) as f:
                ready = json.load(f)
        self.ready = ready
        self.port = ready["https_port"]
        self.imds_port = ready["http_port"]
        self.tenant = ready["tenant_id"]
        self.ssl = ssl.create_default_context(cafile=ready["ca_file"])
        self.ssl.set_alpn_protocols(["http/1.1"])
        self._local = threading.local()
        apps = ready.get("apps") or {}
        self.worker_app = next(iter(apps), None)

    # ------------------------------------------------------------------ transport

    def _conn(self, fresh=False):
        c = getattr(self._local, "conn", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl, timeout=30)
            self._local.conn = c
        return c

    def request(self, method, path, body=None, headers=None, retry_on_reset=False):
        """Raw request to the HTTPS port; `path` may be an absolute https URL (e.g. a nextLink)."""
        if path.startswith("https://"):
            u = urllib.parse.urlsplit(path)
            path = u.path + ("?" + u.query if u.query else "")
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        for attempt in (0, 1):
            reused = getattr(self._local, "conn", None) is not None and attempt == 0
            c = self._conn(fresh=attempt > 0)
            try:
                c.request(method, path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                h = {kk.lower(): v for kk, v in r.getheaders()}
                if h.get("connection", "").lower() == "close":
                    c.close()
                    self._local.conn = None
                return Reply(r.status, h, data)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.BadStatusLine, ssl.SSLError, ssl.SSLEOFError) as e:
                self._local.conn = None
                c.close()
                # a kept-alive connection may have been closed by the server between requests
                if reused and retry_on_reset:
                    continue
                raise e

    def close(self):
        c = getattr(self._local, "conn", None)
        if c:
            c.close()
        self._local.conn = None

    # ------------------------------------------------------------------ admin API

    def admin(self, method, path, body=None):
        r = self.request(method, "/_admin" + path, body=body, retry_on_reset=True)
        if r.status >= 300:
            raise RuntimeError("admin %s %s -> %s %s" % (method, path, r.status, r.body[:300]))
        return r.json()

    def state(self, collection=None, key=None):
        path = "/state" + ("/" + collection if collection else "") + ("/" + key.lstrip("/") if key else "")
        return self.admin("GET", path)

    def put_object(self, collection, obj, key=None):
        if key:
            return self.admin("PUT", "/state/%s/%s" % (collection, key.lstrip("/")), obj)
        return self.admin("POST", "/state/" + collection, obj)

    def patch_object(self, collection, key, patch):
        return self.admin("PATCH", "/state/%s/%s" % (collection, key.lstrip("/")), patch)

    def delete_object(self, collection, key):
        return self.admin("DELETE", "/state/%s/%s" % (collection, key.lstrip("/")))

    def load_state(self, scenario):
        return self.admin("PUT", "/state", scenario)

    def reset(self, scenario=None, keep=None):
        body = {}
        if scenario is not None:
            body["scenario"] = scenario
        if keep:
            body["keep"] = keep
        return self.admin("POST", "/reset", body)

    def config(self, patch=None):
        if patch is None:
            return self.admin("GET", "/config")
        return self.admin("PATCH", "/config", patch)

    def requests(self, **filters):
        q = urllib.parse.urlencode({kk: v for kk, v in filters.items() if v is not None})
        return self.admin("GET", "/requests" + ("?" + q if q else ""))["requests"]

    def clear_requests(self):
        return self.admin("DELETE", "/requests")

    def add_fault(self, **rule):
        return self.admin("POST", "/faults", rule)["ids"][0]

    def faults(self):
        return self.admin("GET", "/faults")["faults"]

    def clear_faults(self, fault_id=None):
        return self.admin("DELETE", "/faults" + ("/" + fault_id if fault_id else ""))

    def clock(self, advance=None, offset=None, freeze=None):
        body = {}
        if advance is not None:
            body["advance_seconds"] = advance
        if offset is not None:
            body["offset_seconds"] = offset
        if freeze is not None:
            body["freeze"] = freeze
        return self.admin("POST", "/clock", body)

    def lros(self):
        return self.admin("GET", "/lro")["operations"]

    def tokens(self):
        return self.admin("GET", "/tokens")["tokens"]

    def revoke_tokens(self, **what):
        return self.admin("POST", "/tokens/revoke", what)

    def rotate_federated_token(self, client_id, keep_old=False, token=None):
        body = {"keep_old": keep_old}
        if token:
            body["token"] = token
        return self.admin("POST", "/apps/%s/federated-token" % client_id, body)

    # ------------------------------------------------------------------ identity

    @property
    def token_path(self):
        return "/%s/oauth2/v2.0/token" % self.tenant

    @property
    def token_url(self):
        return "https://127.0.0.1:%d%s" % (self.port, self.token_path)

    def token_request(self, form):
        return self.request("POST", self.token_path, body=urllib.parse.urlencode(form),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    def _take(self, r):
        if r.status != 200:
            raise RuntimeError("token request failed: %s %s" % (r.status, r.body[:300]))
        return r.json()["access_token"]

    def token_secret(self, client_id=None, scope=ARM_SCOPE, secret=None):
        client_id = client_id or self.worker_app
        secret = secret if secret is not None else self.ready["apps"][client_id]["secret"]
        return self._take(self.token_request({"client_id": client_id, "scope": scope, "client_secret": secret,
                                              "grant_type": "client_credentials"}))

    def make_assertion(self, client_id=None, alg="RS256", key_file=None, cert_file=None, aud=None, iss=None,
                       sub=None, exp_in=300, nbf_offset=0, jti=None, header_extra=None):
        """A certificate client assertion signed with the openssl CLI."""
        import hashlib
        import base64
        import re
        client_id = client_id or self.worker_app
        app = self.ready["apps"][client_id]
        key_file = key_file or app["key_file"]
        cert_file = cert_file or app["cert_file"]
        with open(cert_file) as f:
            pem = f.read()
        der = base64.b64decode("".join(re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----",
                                                 pem, re.S).group(1).split()))
        header = {"alg": alg, "typ": "JWT", "x5t#S256": b64url(hashlib.sha256(der).digest())}
        for hk, hv in (header_extra or {}).items():
            if hv is None:
                header.pop(hk, None)
            else:
                header[hk] = hv
        now = int(time.time()) + int(self.clock_offset())
        claims = {"aud": aud or self.token_url, "iss": iss or client_id, "sub": sub or client_id,
                  "jti": jti or str(uuid.uuid4()), "nbf": now + nbf_offset, "iat": now + nbf_offset,
                  "exp": now + exp_in}
        return sign_jwt_openssl(header, claims, key_file, alg)

    def clock_offset(self):
        try:
            return float(self.admin("GET", "/clock").get("offset_seconds", 0))
        except Exception:  # noqa: BLE001
            return 0.0

    def token_assertion(self, client_id=None, scope=ARM_SCOPE, assertion=None, **kw):
        client_id = client_id or self.worker_app
        assertion = assertion or self.make_assertion(client_id, **kw)
        return self.token_request({"client_id": client_id, "scope": scope, "grant_type": "client_credentials",
                                   "client_assertion_type": JWT_BEARER, "client_assertion": assertion})

    def token_federated(self, client_id=None, scope=ARM_SCOPE, token_file=None):
        client_id = client_id or self.worker_app
        token_file = token_file or self.ready["apps"][client_id]["federated_token_file"]
        with open(token_file) as f:
            assertion = f.read().strip()
        return self.token_request({"client_id": client_id, "scope": scope, "grant_type": "client_credentials",
                                   "client_assertion_type": JWT_BEARER, "client_assertion": assertion})

    def imds(self, resource="https://management.azure.com/", metadata=True, **params):
        q = {"api-version": "2018-02-01", "resource": resource}
        q.update(params)
        c = http.client.HTTPConnection("127.0.0.1", self.imds_port, timeout=30)
        try:
            c.request("GET", "/metadata/identity/oauth2/token?" + urllib.parse.urlencode(q),
                      headers={"Metadata": "true"} if metadata else {})
            r = c.getresponse()
            return Reply(r.status, {kk.lower(): v for kk, v in r.getheaders()}, r.read())
        finally:
            c.close()

    # ------------------------------------------------------------------ ARM / Graph

    def arm(self, method, path, api_version=None, token=None, body=None, headers=None, query=None):
        hdrs = {"x-ms-client-request-id": str(uuid.uuid4())}
        if token:
            hdrs["Authorization"] = "Bearer " + token
        hdrs.update(headers or {})
        if not path.startswith("https://"):
            q = dict(query or {})
            if api_version:
                q["api-version"] = api_version
            if q:
                path += ("&" if "?" in path else "?") + urllib.parse.urlencode(q, quote_via=urllib.parse.quote,
                                                                               safe="$'(),:")
        return self.request(method, path, body=body, headers=hdrs)

    def graph(self, method, path, token=None, body=None, headers=None, query=None, version="v1.0"):
        hdrs = {"client-request-id": str(uuid.uuid4())}
        if token:
            hdrs["Authorization"] = "Bearer " + token
        hdrs.update(headers or {})
        if not path.startswith("https://"):
            path = "/%s%s" % (version, path)
            if query:
                path += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote, safe="$'(),:/")
        return self.request(method, path, body=body, headers=hdrs)

    def follow(self, method, first, token, graph=False, **kw):
        """All pages of a list: returns (items, pages)."""
        items, pages = [], 0
        r = (self.graph if graph else self.arm)(method, first, token=token, **kw)
        while True:
            if r.status != 200:
                raise RuntimeError("page %d: %s %s" % (pages, r.status, r.body[:300]))
            body = r.json()
            items += body.get("value", [])
            pages += 1
            nxt = body.get("@odata.nextLink" if graph else "nextLink")
            if not nxt:
                return items, pages
            r = self.request("GET", nxt, headers={"Authorization": "Bearer " + token})

    def urlopen_json(self, url, data=None, headers=None, method=None):
        req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
        with urllib.request.urlopen(req, context=self.ssl, timeout=30) as r:
            return json.loads(r.read().decode())


class SimProcess:
    """Start azure_sim.py on ephemeral ports; stop it with SIGTERM."""

    def __init__(self, scenario, state_dir=None, extra_args=None, python="/usr/bin/python3", verbose=False):
        self.scenario = scenario
        self.own_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="azure-sim-")
        self.extra = list(extra_args or [])
        self.python = python if os.path.exists(python) else sys.executable
        self.verbose = verbose
        self.proc = None
        self.ready = None

    def start(self, timeout=60):
        ready_file = os.path.join(self.state_dir, "ready.json")
        if os.path.exists(ready_file):
            os.unlink(ready_file)
        cmd = [self.python, os.path.join(HERE, "azure_sim.py"), "--scenario", self.scenario,
               "--state-dir", self.state_dir, "--ready-file", ready_file] + self.extra + \
            (["--verbose"] if self.verbose else [])
        self.log_path = os.path.join(self.state_dir, "sim.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(ready_file):
                with open(ready_file) as f:
                    self.ready = json.load(f)
                return self
            if self.proc.poll() is not None:
                with open(self.log_path) as f:
                    raise RuntimeError("azure-sim exited: %s" % f.read())
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("azure-sim did not become ready in %ss" % timeout)

    def client(self):
        return SimClient(self.ready)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        if self.own_dir and not self.verbose:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return self.proc.returncode if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
