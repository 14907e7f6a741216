#!/usr/bin/python3
"""Helpers for quench's end-to-end tests: the Azure simulator, quench-devkafka and `quench run`
wired together, one response driven through Kafka the way owners and ticketing tools do, and
the evidence the checks need (the simulator's state before and after, its request log, the
outcome events, the worker's log).

Reuses tests/integration/harness.py (processes, Kafka clients, Checks, schema validation) and
tests/azure-sim/client.py (the simulator's admin API); nothing here edits them.

Environment: QN_BIN_DIR, QN_SOURCE_DIR as for harness.py; QN_KEEP_TMP=1 keeps the temporary
directories (worker logs, configs, simulator state) for inspection.
"""

import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.environ.get("QN_SOURCE_DIR") or os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "azure-sim"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "tools"))

import harness as h  # noqa: E402
from client import SimClient  # noqa: E402
import validate  # noqa: E402

SCENARIOS = os.path.join(SOURCE_DIR, "tests", "data", "scenarios")
ALERT_FIXTURES = os.path.join(SOURCE_DIR, "tests", "data", "alerts")
E2E_ALERTS = os.path.join(HERE, "alerts")
SIM_SCRIPT = os.path.join(SOURCE_DIR, "tests", "azure-sim", "azure_sim.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

INPUT = "defender.alerts"
VERDICTS = "quench.verdicts"
OUTCOMES = "quench.outcomes"
KAFKA = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}

FINAL = ("quench.response.closed", "quench.response.failed", "quench.response.cancelled",
         "quench.response.escalated")
TERMINAL = ("quench.task.succeeded", "quench.task.failed", "quench.task.skipped")
WRITE_KINDS = ("dismiss_alert", "disable_user", "revoke_sessions", "reset_credentials",
               "delete_user", "remove_role_assignment", "remove_runbook", "delete_resource",
               "vm_reset_passwords", "vm_antimalware_scan", "vm_reimage")
READ_METHODS = ("GET", "HEAD")
LINUX_SCAN = "mdatp scan full"
WINDOWS_SCAN = "Start-MpScan -ScanType FullScan"

log = h.log


def check_binaries():
    missing = [p for p in (h.QUENCH, h.DEVKAFKA) if not os.access(p, os.X_OK)]
    if missing:
        raise SystemExit("missing executables: %s (set QN_BIN_DIR)" % ", ".join(missing))


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------------------------------- the simulator

class Sim:
    """azure_sim.py started through harness.spawn (killed with the test, however it ends)."""

    def __init__(self, scenario, tmpdir=None):
        self.dir = tmpdir or h.make_tmpdir("qn-e2e-sim-")
        os.makedirs(self.dir, exist_ok=True)
        self.ready_file = os.path.join(self.dir, "ready.json")
        self.log_path = os.path.join(self.dir, "sim.log")
        self._log = open(self.log_path, "wb")
        self.proc = h.spawn([PYTHON, SIM_SCRIPT, "--scenario", scenario, "--state-dir", self.dir,
                             "--ready-file", self.ready_file], subprocess.DEVNULL, self._log)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("azure-sim exited with %s:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if os.path.exists(self.ready_file) and os.path.getsize(self.ready_file) > 0:
                return load_json(self.ready_file)
            return None

        self.ready = h.wait_until(ready, 60, desc="azure-sim ready file")
        self.client = SimClient(self.ready)
        self.client_id, app = next(iter(self.ready["apps"].items()))
        self.secret = app["secret"]
        self.secret_file = os.path.join(self.dir, "client-secret")
        with open(self.secret_file, "w") as f:
            f.write(self.secret + "\n")
        os.chmod(self.secret_file, 0o600)

    def reset(self, scenario):
        """Loads a scenario; clears the request log, faults and the clock."""
        self.client.reset(scenario=scenario)

    def state(self):
        return self.client.state()

    def requests(self):
        return self.client.requests()

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def azure_config(self):
        r = self.ready
        return {"credential": "secret", "tenant_id": r["tenant_id"], "client_id": self.client_id,
                "client_secret_file": self.secret_file, "ca_file": r["ca_file"],
                "endpoints": {"authority": r["authority_url"].rstrip("/"), "arm": r["arm_url"],
                              "graph": r["graph_url"]}}

    def stop(self):
        h.stop_process(self.proc, timeout=10)
        self._log.close()


# ------------------------------------------------------------------------- the worker

class Worker:
    """`quench run` with an Azure credential. Same as harness.Worker, whose start-up wait only
    knows the observe-mode line ("quench started (observe mode)"); with Azure configured the
    worker says "quench started (Azure responses)" or "(Azure reads, dry run)"."""

    def __init__(self, config, tmpdir, name="worker", start_timeout=60):
        self.name = name
        self.dir = tmpdir
        self.config = config
        self.config_path = os.path.join(tmpdir, name + ".json")
        self.log_path = os.path.join(tmpdir, name + ".log")
        self.budget_ms = config.get("shutdown", {}).get("budget_ms", 5000)
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)
        self._log = open(self.log_path, "wb")
        self.proc = h.spawn([h.QUENCH, "run", "--config", self.config_path], subprocess.DEVNULL,
                            self._log)

        def started():
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s during start-up:\n%s"
                                   % (self.name, self.proc.returncode, self.log_tail()))
            for rec in self.logs():
                if str(rec.get("msg", "")).startswith("quench started") and "http_port" in rec:
                    return (int(rec["http_port"]), rec["msg"])
            return None

        self.http_port, self.start_line = h.wait_until(started, start_timeout,
                                                       desc="%s start-up line" % name)

    def alive(self):
        return self.proc.poll() is None

    def logs(self):
        out = []
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return out
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line.decode("utf-8", "replace")})
        return out

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=25):
        return "\n".join(self.log_text().splitlines()[-n:])

    def http_get(self, path, timeout=5):
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http_port, path),
                                        timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            return None, str(e)

    def wait_ready(self, timeout=60):
        def ok():
            if not self.alive():
                raise RuntimeError("%s exited with %s:\n%s" % (self.name, self.proc.returncode,
                                                               self.log_tail()))
            return self.http_get("/readyz")[0] == 200
        return h.wait_until(ok, timeout, desc="%s /readyz 200" % self.name)

    def terminate(self):
        res = h.stop_process(self.proc, timeout=self.budget_ms / 1000.0 + 15)
        self._log.close()
        return res


def merge(base, extra):
    """Deep-merges dict extra into a copy of base (lists and scalars replace)."""
    out = dict(base)
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def worker_config(sim, bootstrap, group, config=None):
    base = {
        "kafka": dict({"bootstrap.servers": bootstrap}, **KAFKA),
        "group_id": group,
        "http": {"address": "127.0.0.1", "port": 0},
        "log_level": "info",
        "shutdown": {"budget_ms": 5000},
        "azure": sim.azure_config(),
        "policy": {"dry_run": False},
        "contact": {"security_contact": "secops@contoso.com",
                    # long deadlines unless a scenario is about them: verdicts drive the runs
                    "policies": {s: {"deadline_seconds": 600, "on_timeout": "escalate"}
                                 for s in ("High", "Medium", "Low", "Informational")}},
        "vm": {"linux_scan_command": LINUX_SCAN, "windows_scan_command": WINDOWS_SCAN},
    }
    cfg = merge(base, config)
    problems = validate.errors("config", cfg)
    if problems:
        raise RuntimeError("the test's worker config is invalid: %s" % "; ".join(problems))
    return cfg


# ------------------------------------------------------------------------- one response

class Result:
    """Everything one scenario run produced."""

    def __init__(self, name):
        self.name = name
        self.alert_id = None
        self.subscription = None
        self.events = []          # outcome events about the alert, in arrival order (dicts)
        self.msgs = []            # every outcome message of the run (harness.Msg)
        self.before = None        # simulator state before the worker started
        self.after = None         # ... after the response ended
        self.log = []             # simulator request log of the run
        self.worker_log = ""
        self.config = None
        self.approved = []        # task ids sent in approvals
        self.verdict_sent = None
        self.timeline = {}        # name -> monotonic time
        self.finished = False     # a final event arrived
        self.error = None         # exception text if the run broke
        self.exit = None          # worker (exit code, ms, killed)

    # ---- events
    def of_type(self, *types):
        return [e for e in self.events if e["type"] in types]

    def first(self, type_):
        for e in self.events:
            if e["type"] == type_:
                return e
        return None

    def index(self, pred):
        for i, e in enumerate(self.events):
            if pred(e):
                return i
        return -1

    def task_events(self, kind=None, target=None, types=None):
        out = []
        for e in self.events:
            t = e["data"].get("task") if isinstance(e.get("data"), dict) else None
            if t is None:
                continue
            if kind is not None and t.get("kind") != kind:
                continue
            if target is not None and t.get("target", {}).get("id", "").lower() != target.lower():
                continue
            if types is not None and e["type"] not in types:
                continue
            out.append(e)
        return out

    def tasks(self):
        """{(kind, target id lower): {"proposed": event, "terminal": [events]}}."""
        out = {}
        for e in self.task_events():
            t = e["data"]["task"]
            key = (t["kind"], t["target"]["id"].lower())
            slot = out.setdefault(key, {"proposed": [], "terminal": [], "id": t["id"]})
            if e["type"] == "quench.task.proposed":
                slot["proposed"].append(e)
            elif e["type"] in TERMINAL:
                slot["terminal"].append(e)
        return out

    # ---- request log
    def writes(self):
        return writes(self.log)

    def summary(self):
        lines = []
        for e in self.events:
            d = e["data"]
            t = d.get("task") or {}
            what = "%s %s" % (t.get("kind", ""), t.get("target", {}).get("name") or
                              t.get("target", {}).get("id", "")) if t else ""
            extra = d.get("result") or d.get("reason") or \
                (d.get("error") or {}).get("message") or ""
            lines.append("%-28s %-60s %s" % (e["type"], what[:60], str(extra)[:110]))
        return "\n".join(lines)


def writes(log):
    return [e for e in log if e.get("service") in ("arm", "graph")
            and e.get("method") not in READ_METHODS]


def path_of(entry):
    return entry.get("decoded_path") or entry.get("path") or ""


def describe(entry):
    body = entry.get("body")
    keys = ""
    if isinstance(body, dict):
        keys = " {%s}" % ",".join(sorted(body))
    return "%s %s -> %s%s" % (entry.get("method"), path_of(entry), entry.get("status"), keys)


def write_signature(entry):
    """What a write is, for counting repeats: method, path and the body's shape (PATCH keys;
    for run command its commandId and whether it is the antimalware scan). Secrets in bodies
    (new passwords) never take part."""
    body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
    path = path_of(entry).lower()
    extra = ""
    if entry.get("method") == "PATCH":
        extra = ",".join(sorted(body))
    elif path.endswith("/runcommand"):
        script = "\n".join(body.get("script") or []) if isinstance(body.get("script"), list) \
            else str(body.get("script") or "")
        scan = LINUX_SCAN in script or WINDOWS_SCAN in script
        extra = "%s:%s" % (body.get("commandId"), "scan" if scan else "other")
    return (entry.get("method"), path, extra)


class Env:
    """One simulator for the whole test process; a fresh quench-devkafka and worker per run."""

    def __init__(self):
        check_binaries()
        self.tmp = h.make_tmpdir("qn-e2e-")
        self.sim = Sim(os.path.join(SCENARIOS, "basic.json"), os.path.join(self.tmp, "sim"))
        self.runs = 0

    def close(self):
        self.sim.stop()


def produce(bootstrap, topic, values):
    return h.produce(bootstrap, topic, [{"value": v} for v in values])


def alert_of(value):
    a = json.loads(value)
    sub = re.search(r"/subscriptions/([0-9a-fA-F-]{36})", a["AzureResourceId"]).group(1).lower()
    return a["SystemAlertId"], sub


def with_status(value, status):
    a = json.loads(value)
    a["Status"] = status
    return json.dumps(a, indent=2).encode()


def respond(env, name, scenario, alert, config=None, verdict="unexpected", approve=True,
            hook=None, timeout=90, settle=1.5, contact_timeout=30):
    """Runs one response end to end and returns its Result.

    scenario: a scenario file (loaded into the simulator first); alert: the Kafka value (bytes).
    verdict: "expected" | "unexpected" | None (sent once quench.contact.requested arrived, to
    the answerKey it names). approve: answer every task proposed in approve mode with an
    approvals verdict naming it. hook(run_ctx, result, final): called on every poll (final=False)
    and once after the final event (final=True) for extra deliveries; it may return a number of
    seconds to keep watching after the final event."""
    env.runs += 1
    res = Result(name)
    tmp = os.path.join(env.tmp, "%02d-%s" % (env.runs, re.sub(r"[^a-z0-9]+", "-", name.lower())))
    os.makedirs(tmp, exist_ok=True)
    res.alert_id, res.subscription = alert_of(alert)
    sim = env.sim
    kafka = tail = worker = None
    try:
        sim.reset(scenario)
        res.before = sim.state()
        os.makedirs(os.path.join(tmp, "kafka"), exist_ok=True)
        kafka = h.DevKafka(os.path.join(tmp, "kafka"))
        tail = h.Tail(kafka.bootstrap, OUTCOMES)
        res.config = worker_config(sim, kafka.bootstrap, "qn-e2e-%d" % env.runs, config)
        worker = Worker(res.config, tmp)
        worker.wait_ready()
        ctx = {"bootstrap": kafka.bootstrap, "worker": worker, "tail": tail, "sim": sim,
               "alert": alert, "state": {}}

        def refresh():
            res.msgs = tail.snapshot()
            evs = []
            for m in res.msgs:
                try:
                    ev = json.loads(m.value)
                except ValueError:
                    continue
                if isinstance(ev, dict) and ev.get("subject") == res.alert_id:
                    evs.append(ev)
            res.events = evs
            return evs

        res.timeline["alert"] = time.monotonic()
        produce(kafka.bootstrap, INPUT, [alert])

        def contacted():
            if not worker.alive():
                raise RuntimeError("worker exited (%s):\n%s" % (worker.proc.returncode,
                                                                worker.log_tail()))
            return res.first("quench.contact.requested") if refresh() else None

        contact = h.wait_until(contacted, contact_timeout, interval=0.1,
                               desc="quench.contact.requested")
        res.timeline["contact"] = time.monotonic()
        key = contact["data"].get("answerKey") or {}
        answer = {"alertId": key.get("alertId", res.alert_id),
                  "subscriptionId": key.get("subscriptionId", res.subscription),
                  "decidedBy": "owner@contoso.com"}
        if verdict is not None:
            v = dict(answer, verdict=verdict, comment="e2e %s" % name)
            validate.validate("verdict", v)
            produce(kafka.bootstrap, VERDICTS, [json.dumps(v).encode()])
            res.verdict_sent = v
            res.timeline["verdict"] = time.monotonic()

        def approvals():
            if not approve:
                return
            want = []
            for e in res.of_type("quench.task.proposed"):
                t = e["data"]["task"]
                if t.get("mode") == "approve" and t["id"] not in res.approved \
                        and t["id"] not in want:
                    want.append(t["id"])
            if want:
                v = dict(answer, approvals=want, comment="e2e approval")
                validate.validate("verdict", v)
                produce(kafka.bootstrap, VERDICTS, [json.dumps(v).encode()])
                res.approved += want
                res.timeline.setdefault("approval", time.monotonic())

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError("worker exited (%s):\n%s" % (worker.proc.returncode,
                                                                worker.log_tail()))
            refresh()
            approvals()
            if hook is not None:
                hook(ctx, res, False)
            if res.of_type(*FINAL):
                res.finished = True
                res.timeline["final"] = time.monotonic()
                break
            time.sleep(0.1)
        extra = 0.0
        if hook is not None and res.finished:
            extra = hook(ctx, res, True) or 0.0
        # Let anything that still wants to happen (a stray write, a duplicate) happen.
        end = time.monotonic() + settle + extra
        while time.monotonic() < end:
            refresh()
            time.sleep(0.1)
        refresh()
    except Exception as e:  # the checks report what is missing; keep going
        import traceback
        res.error = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=3))
        log("%s: run broke: %s" % (name, e))
    finally:
        try:
            res.after = sim.state()
            res.log = sim.requests()
        except Exception as e:
            res.error = (res.error or "") + "\nsimulator: %s" % e
        if worker is not None:
            res.exit = worker.terminate()
            res.worker_log = worker.log_text()
        if tail is not None:
            res.msgs = tail.snapshot()
            tail.close()
        if kafka is not None:
            kafka.stop()
    try:  # for inspection with QN_KEEP_TMP=1
        with open(os.path.join(tmp, "events.json"), "w") as f:
            json.dump(res.events, f, indent=1)
        with open(os.path.join(tmp, "requests.json"), "w") as f:
            json.dump(res.log, f, indent=1)
    except (OSError, TypeError):
        pass
    log("%s: %d events, %d simulator requests (%d writes)%s"
        % (name, len(res.events), len(res.log), len(res.writes()),
           "" if res.finished else ", NO final event"))
    return res


# ------------------------------------------------------------------------- state

KEYS = {"users": "id", "deleted_items": "id", "role_assignments": "id", "resources": "id",
        "resource_groups": "id", "alerts": "id", "locks": "id", "subscriptions": "subscriptionId",
        "groups": "id", "security_contacts": "id", "directory_role_assignments": "id",
        "apps": "client_id", "managed_identities": "client_id", "role_definitions": "id"}
# Collections the simulator appends to on its own for every write it serves.
LOGS = ("activity_log", "directory_audits")


def index(state, coll):
    key = KEYS[coll]
    return {str(o.get(key, "")).lower(): o for o in (state or {}).get(coll) or []}


def diff(before, after):
    """{collection: {"removed": {key}, "added": {key}, "changed": {key}}} (non-empty only)."""
    out = {}
    for coll in KEYS:
        b, a = index(before, coll), index(after, coll)
        d = {"removed": set(b) - set(a), "added": set(a) - set(b),
             "changed": {k for k in set(a) & set(b) if a[k] != b[k]}}
        if any(d.values()):
            out[coll] = d
    return out


def label(state_before, state_after, coll, key):
    o = index(state_before, coll).get(key) or index(state_after, coll).get(key) or {}
    return o.get("userPrincipalName") or o.get("name") or o.get("displayName") or key


def changed_fields(a, b, prefix=""):
    """Paths where two JSON values differ (for failure details)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += changed_fields(a.get(k), b.get(k), "%s.%s" % (prefix, k) if prefix else k)
        return out
    return [] if a == b else [prefix or "."]


def strings_in(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from strings_in(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings_in(v)


def new_secrets(before, after):
    """Passwords the response set, as the simulator recorded them (users' x-sim.password, VM
    local users' passwords, reimage adminPassword, VMAccess protectedSettings)."""
    out = set()
    bu, au = index(before, "users"), index(after, "users")
    for k, u in au.items():
        pw = (u.get("x-sim") or {}).get("password")
        if pw and pw != ((bu.get(k) or {}).get("x-sim") or {}).get("password"):
            out.add(pw)
    for r in (after or {}).get("resources") or []:
        xs = r.get("x-sim") or {}
        for u in (xs.get("localUsers") or {}).values():
            if isinstance(u, dict) and u.get("password"):
                out.add(u["password"])
        if xs.get("adminPassword"):
            out.add(xs["adminPassword"])
        ps = xs.get("protectedSettings")
        if isinstance(ps, dict):
            for k, v in ps.items():
                if "password" in k.lower() and isinstance(v, str):
                    out.add(v)
    return {s for s in out if isinstance(s, str) and len(s) >= 8}
