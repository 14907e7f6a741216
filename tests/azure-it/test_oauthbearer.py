#!/usr/bin/python3
"""Kafka SASL/OAUTHBEARER with Entra ID tokens (worker/kafka_oauth.c) against the simulator.

quench-oauthtool loads a quench configuration with kafka_oauth "azure", creates a librdkafka
producer (SASL_PLAINTEXT, OAUTHBEARER) whose token refresh callback is the worker's, and reports
once librdkafka accepted a token (rd_kafka_oauthbearer_set_token returned NO_ERROR) or was given
the reason it got none (set_token_failure). The bootstrap is a small SASL broker in this script:
it answers ApiVersions, SaslHandshake, SaslAuthenticate and Metadata v0, and keeps the bearer
tokens librdkafka sends. Checked, for a client secret, workload identity (federated token file)
and managed identity (IMDS):

  - the callback fired and librdkafka accepted the token; the tool's SHA-256 prefix equals the
    SHA-256 of the token librdkafka sent to the broker, and that token is one the simulator issued
    (its uti is in GET /_admin/tokens) for https://eventhubs.azure.net to the right principal;
  - the simulator's request log shows one client-credentials request with scope
    https://eventhubs.azure.net/.default (or one IMDS GET with resource https://eventhubs.azure.net/);
    with an Event Hubs namespace as bootstrap (librdkafka redirected to the local broker) the scope
    is the namespace's, https://<namespace>.servicebus.windows.net/.default, also for a
    privatelink name;
  - metadata works over the authenticated connection; no token or secret appears in the output.

Also: with 10-second tokens librdkafka's refresh callback fires again and gets a new token; a
wrong client secret ends in
set_token_failure with the AADSTS error, librdkafka reports it and asks again (~10 s later), and
nothing reaches the broker; the docker/eventhubs presets load with `quench check-config` and
every Kafka property in them is accepted by librdkafka; a kafka_oauth/PLAIN mix-up is refused.
"""

import base64
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import azit

OAUTHTOOL = os.environ.get("QN_OAUTHTOOL") or os.path.join(azit.BIN_DIR, "quench-oauthtool")
QUENCH = os.path.join(azit.BIN_DIR, "quench")
PRESETS = os.path.join(azit.SOURCE_DIR, "docker", "eventhubs")
EVENTHUBS = "https://eventhubs.azure.net"
NAMESPACE_AUDIENCE = "https://contoso-alerts.servicebus.windows.net"


# --------------------------------------------------------------------------- a tiny SASL broker


class SaslBroker:
    """Speaks just enough Kafka for a librdkafka client to authenticate with OAUTHBEARER and
    fetch metadata: ApiVersions (v0-v3), SaslHandshake (v0-v1), SaslAuthenticate (v0-v1) and
    Metadata v0 (this broker only, no topics). Every bearer token received is kept."""

    APIS = [(18, 0, 3), (17, 0, 1), (36, 0, 1), (3, 0, 0)]

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.tokens = []
        self.mechanisms = []
        self.requests = []
        self.stopped = False

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def reset(self):
        with self.lock:
            self.tokens, self.mechanisms, self.requests = [], [], []

    def snapshot(self):
        with self.lock:
            return list(self.tokens), list(self.mechanisms), list(self.requests)

    def wait_tokens(self, n=1, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.tokens) >= n:
                    return list(self.tokens)
            time.sleep(0.05)
        with self.lock:
            return list(self.tokens)

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    @staticmethod
    def _str(s):
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    def _api_versions(self, version):
        if version >= 3:  # flexible body; the response header stays v0
            body = struct.pack(">h", 0) + bytes([len(self.APIS) + 1])
            for key, lo, hi in self.APIS:
                body += struct.pack(">hhh", key, lo, hi) + b"\x00"
            return body + struct.pack(">i", 0) + b"\x00"
        body = struct.pack(">hi", 0, len(self.APIS))
        for key, lo, hi in self.APIS:
            body += struct.pack(">hhh", key, lo, hi)
        return body + (struct.pack(">i", 0) if version >= 1 else b"")

    def _topics(self, body):
        """Metadata v0: every topic asked for exists with one partition led by this broker."""
        names = []
        count = struct.unpack(">i", body[:4])[0]
        pos = 4
        for _ in range(max(count, 0)):
            n = struct.unpack(">h", body[pos:pos + 2])[0]
            names.append(body[pos + 2:pos + 2 + n].decode())
            pos += 2 + n
        out = struct.pack(">i", len(names))
        for name in names:
            out += struct.pack(">h", 0) + self._str(name) + struct.pack(">i", 1) + \
                struct.pack(">hii", 0, 0, 1) + struct.pack(">ii", 1, 1) + struct.pack(">ii", 1, 1)
        return out

    def _serve(self, conn):
        authenticated = False
        try:
            while True:
                size = struct.unpack(">i", self._read(conn, 4))[0]
                data = self._read(conn, size)
                key, version, corr, cid_len = struct.unpack(">hhih", data[:10])
                pos = 10 + max(cid_len, 0)
                with self.lock:
                    self.requests.append((key, version))
                if key == 18:
                    body = self._api_versions(version)
                elif key == 17:
                    n = struct.unpack(">h", data[pos:pos + 2])[0]
                    mech = data[pos + 2:pos + 2 + n].decode()
                    with self.lock:
                        self.mechanisms.append(mech)
                    ok = mech == "OAUTHBEARER"
                    body = struct.pack(">h", 0 if ok else 33) + struct.pack(">i", 1) + self._str("OAUTHBEARER")
                elif key == 36:
                    n = struct.unpack(">i", data[pos:pos + 4])[0]
                    msg = data[pos + 4:pos + 4 + n].decode("ascii", "replace")
                    token = None
                    for part in msg.split("\x01"):
                        if part.startswith("auth=Bearer "):
                            token = part[len("auth=Bearer "):]
                    with self.lock:
                        self.tokens.append(token)
                    authenticated = token is not None
                    body = struct.pack(">hh", 0 if authenticated else 58, -1) + struct.pack(">i", 0)
                    if version >= 1:
                        body += struct.pack(">q", 0)
                elif key == 3 and authenticated:
                    body = struct.pack(">i", 1) + struct.pack(">i", 1) + self._str("127.0.0.1") + \
                        struct.pack(">i", self.port) + self._topics(data[pos:])
                else:
                    return  # anything else, or metadata before authentication: hang up
                conn.sendall(struct.pack(">ii", len(body) + 4, corr) + body)
        except (EOFError, OSError, struct.error, UnicodeDecodeError):
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


# --------------------------------------------------------------------------- helpers


def jwt_claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def write_json(directory, name, obj):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
    return path


def run(argv, timeout=60, env=None):
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       text=True, errors="replace", env=env)
    return azit.Run(argv, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def tool(cfg_path, *args, timeout=60):
    return run([OAUTHTOOL, "--config", cfg_path, "--log-level", "info"] + list(args), timeout=timeout)


class Case:
    def __init__(self, ck, sim, broker, d):
        self.ck, self.sim, self.broker, self.d = ck, sim, broker, d
        self.c = sim.client()
        self.ready = sim.ready
        self.app = self.c.worker_app

    def config(self, name, azure, kafka_extra=None):
        kafka = {"bootstrap.servers": "127.0.0.1:%d" % self.broker.port,
                 "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
                 "socket.keepalive.enable": True, "metadata.max.age.ms": 180000}
        kafka.update(kafka_extra or {})
        base = {"tenant_id": self.ready["tenant_id"], "ca_file": self.ready["ca_file"],
                "endpoints": {"authority": self.ready["authority_url"], "imds": self.ready["imds_url"]}}
        base.update(azure)
        return write_json(self.d, name + ".json", {"kafka": kafka, "kafka_oauth": "azure", "azure": base})

    def secret_file(self, secret, name="client-secret"):
        path = os.path.join(self.d, name)
        with open(path, "w") as f:
            f.write(secret + "\n")
        return path

    def token_flow(self, what, cfg, principal, audience=EVENTHUBS, flow_check=None, extra=()):
        """Runs the tool once and checks the whole path of one token."""
        ck, c = self.ck, self.c
        c.clear_requests()
        self.broker.reset()
        r = tool(cfg, "--metadata-ms", "10000", *extra)
        o = r.last("oauth")
        ck.check("%s: exit 0, the refresh callback fired and set_token returned NO_ERROR" % what,
                 r.rc == 0 and o.get("token_set") is True and o.get("set_token_result") == "NO_ERROR"
                 and o.get("refresh_callbacks", 0) >= 1 and o.get("failures") == 0, r)
        ck.check("%s: scope %s/.default, principal %s" % (what, audience, principal),
                 o.get("scope") == audience + "/.default" and o.get("principal") == principal, o)
        ck.check("%s: lifetime ~1 h (the simulator's 3599 s)" % what,
                 3500 * 1000 < o.get("lifetime_ms", 0) <= 3599 * 1000, o)
        wire = self.broker.wait_tokens(1)
        tokens, mechs, reqs = self.broker.snapshot()
        ck.check("%s: librdkafka authenticated to the broker with OAUTHBEARER" % what,
                 "OAUTHBEARER" in mechs and wire and all(t for t in wire), (mechs, reqs))
        tok = wire[0] if wire else ""
        ck.check("%s: tool's token_sha256_prefix = SHA-256 of the token librdkafka sent" % what,
                 bool(tok) and hashlib.sha256(tok.encode()).hexdigest()[:16] == o.get("token_sha256_prefix")
                 and all(t == tok for t in wire), (o.get("token_sha256_prefix"), len(wire)))
        claims = {}
        try:
            claims = jwt_claims(tok)
        except Exception as e:  # noqa: BLE001
            claims = {"error": repr(e)}
        issued = [t for t in c.tokens() if t.get("uti") == claims.get("uti")]
        ck.check("%s: the simulator issued that token (uti %s) for %s to %s" % (what, claims.get("uti"),
                                                                               audience, principal),
                 len(issued) == 1 and issued[0].get("aud") == audience and
                 issued[0].get("client_id") == principal and issued[0].get("service") == "eventhubs" and
                 claims.get("aud") == audience and claims.get("appid") == principal and
                 claims.get("tid") == self.ready["tenant_id"], (claims, issued))
        md = r.last("metadata")
        ck.check("%s: metadata over the authenticated connection" % what,
                 md.get("ok") is True and md.get("brokers") == 1, r.lines)
        if flow_check:
            flow_check(c.requests())
        text = r.stdout + r.stderr
        ck.check("%s: the token is not in the tool's output or logs" % what, bool(tok) and tok not in text)
        azit.no_leaks(ck, what, r, self.ready)
        return o


# --------------------------------------------------------------------------- the worker


def start_worker(k, name, azure, log_name):
    cfg = k.config(name, azure, {"enable.idempotence": False})  # the small broker has no Produce
    with open(cfg) as f:
        c = json.load(f)
    c.update({"http": {"address": "127.0.0.1", "port": 0}, "shutdown": {"budget_ms": 2000}})
    with open(cfg, "w") as f:
        json.dump(c, f)
    log_path = os.path.join(k.d, log_name)
    log = open(log_path, "w")
    p = subprocess.Popen([QUENCH, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    return p, log_path


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def wait_log(path, words, p, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = read(path)
        if all(w in text for w in words) or p.poll() is not None:
            return text
        time.sleep(0.1)
    return read(path)


def stop(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return "killed"


def worker_checks(ck, k, secret, bad):
    app = k.app
    azure = {"credential": "secret", "client_id": app, "client_secret_file": secret}
    k.c.clear_requests()
    k.broker.reset()
    p, log_path = start_worker(k, "worker", azure, "worker.log")
    words = ["quench#producer-1: OAUTHBEARER token from Entra ID set",
             "quench#consumer-2: OAUTHBEARER token from Entra ID set", "quench started"]
    text = wait_log(log_path, words, p)
    rc = stop(p)
    text = read(log_path)
    ck.check("worker: the producer got its token before start-up finished, the consumer through the "
             "refresh callback; SIGTERM then exit 0", all(w in text for w in words) and rc == 0 and
             text.index(words[0]) < text.index("quench started"), (rc, text[-3000:]))
    tokens, mechs, _ = k.broker.snapshot()
    issued = {t["uti"] for t in k.c.tokens() if t.get("service") == "eventhubs"}
    ck.check("worker: producer and consumer authenticated to the broker with the simulator's token",
             len(tokens) >= 2 and all(t and jwt_claims(t).get("uti") in issued for t in tokens), (mechs, len(tokens)))
    log = k.c.requests(service="token")
    ck.check("worker: one token request for both handles (the Azure client's cache)",
             len(log) == 1 and log[0]["body"].get("scope") == EVENTHUBS + "/.default", log)
    ck.check("worker: no token in the worker's log", tokens and all(t not in text for t in tokens))

    # SIGTERM while start-up still waits for the first token: handled after it, clean exit
    k.c.add_fault(service="token", action="latency", latency_ms=3000)
    p, log_path = start_worker(k, "worker-slow", azure, "worker-slow.log")
    time.sleep(1)
    rc = stop(p)
    k.c.clear_faults()
    text = read(log_path)
    ck.check("worker: SIGTERM during the first token request: no crash, exit 0",
             rc == 0 and "signal 15" in text and "stopped (exit 0)" in text, (rc, text[-2000:]))

    # a wrong secret: the worker refuses to start, exit 78, and says why
    p, log_path = start_worker(k, "worker-bad", dict(azure, client_secret_file=bad), "worker-bad.log")
    try:
        rc = p.wait(20)
    except subprocess.TimeoutExpired:
        rc = stop(p)
    text = read(log_path)
    ck.check("worker: wrong secret -> exit 78, 'cannot get an OAUTHBEARER token' with AADSTS7000215",
             rc == 78 and "cannot get an OAUTHBEARER token" in text and "AADSTS7000215" in text,
             (rc, text[-2000:]))


# --------------------------------------------------------------------------- the checks


def main():
    for exe in (OAUTHTOOL, QUENCH):
        if not os.access(exe, os.X_OK):
            print("%s not found (build it, or set QN_BIN_DIR)" % exe)
            print("0 passed, 1 failed")
            return 1
    ck = azit.Checks("kafka oauthbearer, %s" % os.path.basename(OAUTHTOOL))
    sim = azit.start_sim()
    broker = SaslBroker().start()
    d = azit.tmpdir()
    k = Case(ck, sim, broker, d)
    ready, app = k.ready, k.app
    mi = ready["managed_identities"][0]["client_id"]

    # ---- client secret
    secret = k.secret_file(ready["apps"][app]["secret"])

    def secret_flow(log):
        tok = [e for e in log if e["service"] == "token"]
        ck.check("secret: one client-credentials request, scope https://eventhubs.azure.net/.default",
                 len(tok) == 1 and tok[0]["status"] == 200 and tok[0].get("grant") == "client_secret" and
                 tok[0].get("client_id") == app and tok[0]["body"].get("grant_type") == "client_credentials" and
                 tok[0]["body"].get("scope") == EVENTHUBS + "/.default" and
                 tok[0]["body"].get("client_secret") != ready["apps"][app]["secret"], log)
        ck.check("secret: no ARM, Graph or IMDS request", all(e["service"] == "token" for e in log), log)

    k.token_flow("secret", k.config("secret", {"credential": "secret", "client_id": app,
                                                "client_secret_file": secret}), app, flow_check=secret_flow)

    # ---- workload identity: the federated token file is the client assertion (the preset's)
    fed_file = ready["apps"][app]["federated_token_file"]
    with open(fed_file) as f:
        fed = f.read().strip()

    def workload_flow(log):
        tok = [e for e in log if e["service"] == "token"]
        ck.check("workload: one client-credentials request with the federated token as assertion, "
                 "scope https://eventhubs.azure.net/.default",
                 len(tok) == 1 and tok[0]["status"] == 200 and tok[0].get("grant") == "client_assertion" and
                 tok[0]["body"].get("client_assertion") == fed and
                 tok[0]["body"].get("scope") == EVENTHUBS + "/.default", log)

    k.token_flow("workload", k.config("workload", {"credential": "workload", "client_id": app,
                                                    "federated_token_file": fed_file}),
                 app, flow_check=workload_flow)

    # ---- managed identity through IMDS
    def managed_flow(log):
        ck.check("managed: one IMDS GET, resource https://eventhubs.azure.net/, the identity's client_id",
                 len(log) == 1 and log[0]["service"] == "imds" and log[0]["status"] == 200 and
                 log[0]["query"].get("resource") == EVENTHUBS + "/" and
                 log[0]["query"].get("client_id") == mi, log)

    k.token_flow("managed", k.config("managed", {"credential": "managed", "client_id": mi}), mi,
                 flow_check=managed_flow)

    # ---- an Event Hubs namespace in bootstrap.servers: the namespace audience Microsoft documents
    # for Kafka clients (librdkafka still connects to the local broker)
    k.c.config({"token_audiences": {NAMESPACE_AUDIENCE: "eventhubs"}})
    for host in ("contoso-alerts.servicebus.windows.net", "Contoso-Alerts.privatelink.servicebus.windows.net"):
        what = "namespace %s" % host.split(".")[1]

        def namespace_flow(log, what=what):
            tok = [e for e in log if e["service"] == "token"]
            ck.check("%s: the token request asked for %s/.default" % (what, NAMESPACE_AUDIENCE),
                     len(tok) == 1 and tok[0]["status"] == 200 and
                     tok[0]["body"].get("scope") == NAMESPACE_AUDIENCE + "/.default", log)

        cfg = k.config("namespace", {"credential": "secret", "client_id": app, "client_secret_file": secret},
                       {"bootstrap.servers": host + ":9093"})
        k.token_flow(what, cfg, app, audience=NAMESPACE_AUDIENCE, flow_check=namespace_flow,
                     extra=("--bootstrap", "127.0.0.1:%d" % broker.port))

    # ---- refresh: 10-second tokens; librdkafka asks again at 80 % of the lifetime and gets the
    # token the Azure client fetched at half-life
    k.c.config({"token_lifetime_seconds": 10})
    k.c.clear_requests()
    broker.reset()
    cfg = k.config("refresh", {"credential": "secret", "client_id": app, "client_secret_file": secret})
    r = tool(cfg, "--hold-ms", "11000", timeout=90)
    first, s = r.last("oauth"), r.last("summary")
    ck.check("refresh: a first token (10 s), then librdkafka's refresh callback fired again",
             r.rc == 0 and first.get("token_set") is True and 0 < first.get("lifetime_ms", 0) <= 10000 and
             s.get("refresh_callbacks", 0) >= 2 and s.get("failures") == 0, r)
    ck.check("refresh: librdkafka accepted a new token (another fingerprint)",
             s.get("token_sets", 0) >= 2 and s.get("fingerprint") not in ("", first.get("token_sha256_prefix")), s)
    log = k.c.requests(service="token")
    ck.check("refresh: the simulator issued two or more Event Hubs tokens, all for the same scope",
             len(log) >= 2 and all(e["status"] == 200 and e["body"].get("scope") == EVENTHUBS + "/.default"
                                   for e in log), log)
    k.c.config({"token_lifetime_seconds": 3599})

    # ---- a wrong secret: set_token_failure with the reason, librdkafka retries, nothing sent
    bad = k.secret_file("qn.sim~Not-The-Registered-Secret-000000", "bad-secret")
    cfg = k.config("bad", {"credential": "secret", "client_id": app, "client_secret_file": bad})
    k.c.clear_requests()
    broker.reset()
    r = tool(cfg, "--hold-ms", "13000", timeout=90)
    o = r.last("oauth")
    ck.check("bad secret: exit 2, no token, no crash", r.rc == 2 and o.get("token_set") is False, r)
    ck.check("bad secret: set_token_failure with a clear reason (authentication failed, invalid_client, "
             "AADSTS7000215)",
             all(w in o.get("error", "") for w in ("authentication failed", "invalid_client", "AADSTS7000215")) and
             o.get("failures", 0) >= 1, o)
    errs = [e for e in r.events("kafka_error") if e.get("code") == "_AUTHENTICATION"]
    ck.check("bad secret: librdkafka reports 'Failed to acquire SASL OAUTHBEARER token' with the reason",
             errs and all("Failed to acquire SASL OAUTHBEARER token" in e.get("reason", "") and
                          "AADSTS7000215" in e.get("reason", "") for e in errs), r.events("kafka_error"))
    s = r.last("summary")
    ck.check("bad secret: librdkafka called the refresh callback again after the failure (~10 s)",
             s.get("refresh_callbacks", 0) >= 2 and s.get("failures", 0) >= 2 and s.get("token_sets") == 0, s)
    tokens, _, _ = broker.snapshot()
    ck.check("bad secret: no SASL token reached the broker", tokens == [], tokens)
    log = k.c.requests(service="token")
    ck.check("bad secret: the simulator answered the token requests with 401 invalid_client",
             log and all(e["status"] == 401 for e in log), log)
    azit.no_leaks(ck, "bad secret", r, ready)

    # ---- the worker itself: tokens on its producer (at start) and consumer (refresh callback)
    worker_checks(ck, k, secret, bad)

    # ---- the docker/eventhubs presets
    with open(os.path.join(PRESETS, "sasl-plain.json")) as f:
        plain = json.load(f)
    conn = ("Endpoint=sb://contoso-alerts.servicebus.windows.net/;SharedAccessKeyName=quench;"
            "SharedAccessKey=c2ltdWxhdGVkLW5vdC1hLXJlYWwta2V5LTAwMDAwMDA=")
    cs_path = os.path.join(d, "connection-string")
    with open(cs_path, "w") as f:
        f.write(conn + "\n")
    ck.check("sasl-plain.json: SASL_SSL, PLAIN, $ConnectionString, password from the documented file, "
             "port 9093",
             plain["kafka"].get("security.protocol") == "SASL_SSL" and
             plain["kafka"].get("sasl.mechanisms") == "PLAIN" and
             plain["kafka"].get("sasl.username") == "$ConnectionString" and
             plain["kafka"]["bootstrap.servers"].endswith(".servicebus.windows.net:9093") and
             plain["kafka_secret_files"] == {"sasl.password": "/var/run/secrets/quench/eventhubs/connection-string"},
             plain)
    plain["kafka_secret_files"]["sasl.password"] = cs_path
    plain_path = write_json(d, "sasl-plain.json", plain)
    r = run([QUENCH, "check-config", plain_path])
    ck.check("sasl-plain.json: quench check-config accepts it (connection string from a file)",
             r.rc == 0 and '"sasl.password":\t"[redacted]"' in r.stdout and conn not in r.stdout + r.stderr, r)
    r = run([OAUTHTOOL, "--config", plain_path, "--check-conf"])
    ck.check("sasl-plain.json: librdkafka accepts every kafka property", r.rc == 0 and r.last("conf").get("ok"), r)

    oauth_preset = os.path.join(PRESETS, "oauthbearer.json")
    with open(oauth_preset) as f:
        oauth = json.load(f)
    ck.check("oauthbearer.json: SASL_SSL, OAUTHBEARER, kafka_oauth azure, workload identity",
             oauth["kafka"].get("security.protocol") == "SASL_SSL" and
             oauth["kafka"].get("sasl.mechanisms") == "OAUTHBEARER" and oauth.get("kafka_oauth") == "azure" and
             oauth["azure"].get("credential") == "workload", oauth)
    r = run([QUENCH, "check-config", oauth_preset])
    rendered = {}
    try:
        rendered = json.loads(r.stdout)
    except ValueError:
        pass
    ck.check("oauthbearer.json: quench check-config accepts it as is",
             r.rc == 0 and rendered.get("kafka_oauth") == "azure" and
             rendered.get("azure", {}).get("credential") == "workload", r)
    r = run([OAUTHTOOL, "--config", oauth_preset, "--check-conf"])
    ck.check("oauthbearer.json: librdkafka accepts every kafka property", r.rc == 0 and r.last("conf").get("ok"), r)
    for name in ("sasl-plain.json", "oauthbearer.json"):
        with open(os.path.join(PRESETS, name)) as f:
            p = json.load(f)
        # the producer's message.max.bytes is ingest.max_record_bytes + 64 KiB unless set
        max_request = int(p["kafka"].get("message.max.bytes", p["ingest"]["max_record_bytes"] + 65536))
        ck.check("%s: producer requests <= 1,000,000 bytes (Event Hubs closes connections above "
                 "1,046,528)" % name, max_request <= 1000000, p)

    # ---- mistakes are refused with the key named
    mixed = dict(oauth, kafka=dict(oauth["kafka"], **{"sasl.mechanisms": "PLAIN"}))
    r = run([QUENCH, "check-config", write_json(d, "mixed.json", mixed)])
    ck.check("kafka_oauth azure with PLAIN: check-config exits 78 naming kafka_oauth",
             r.rc == 78 and "kafka_oauth" in r.stderr and "OAUTHBEARER" in r.stderr, r)
    oidc = dict(oauth, kafka=dict(oauth["kafka"], **{"sasl.oauthbearer.method": "oidc"}))
    r = run([QUENCH, "check-config", write_json(d, "oidc.json", oidc)])
    ck.check("kafka_oauth azure with sasl.oauthbearer.method oidc: refused", r.rc == 78 and
             "sasl.oauthbearer.method" in r.stderr, r)
    nocred = dict(oauth, azure={"credential": "none"})
    r = run([QUENCH, "check-config", write_json(d, "nocred.json", nocred)])
    ck.check("kafka_oauth azure with azure.credential none: refused", r.rc == 78 and
             "azure.credential" in r.stderr, r)
    env = dict(os.environ, QUENCH_KAFKA_OAUTH="azure")
    r = run([QUENCH, "check-config", plain_path], env=env)
    ck.check("QUENCH_KAFKA_OAUTH=azure on the PLAIN preset: refused", r.rc == 78 and "kafka_oauth" in r.stderr, r)

    broker.stop()
    return ck.summary()


if __name__ == "__main__":
    sys.exit(main())
