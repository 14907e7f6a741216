#!/usr/bin/python3
"""Helpers for the Azure client integration tests (tests/azure-it/test_*.py).

Each test script starts its own simulator (tests/azure-sim/azure_sim.py) on ephemeral
127.0.0.1 ports, runs quench-aztool against it and checks the tool's JSON lines and the
simulator's request log. Checks are counted; a script ends with "N passed, M failed" and
exits non-zero if anything failed.

Environment:
    QN_BIN_DIR      directory holding quench-aztool (default: $QN_SOURCE_DIR/build/bin)
    QN_AZTOOL       the tool itself (overrides QN_BIN_DIR; e.g. an ASan build)
    QN_SOURCE_DIR   repository root (default: two levels above this file)
    QN_KEEP_TMP=1   keep the simulator state directories (logs) for inspection
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SOURCE_DIR = os.path.abspath(os.environ.get("QN_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN_DIR = os.path.abspath(os.environ.get("QN_BIN_DIR") or os.path.join(SOURCE_DIR, "build", "bin"))
AZTOOL = os.environ.get("QN_AZTOOL") or os.path.join(BIN_DIR, "quench-aztool")
DATA_DIR = os.path.join(SOURCE_DIR, "tests", "data")
BASIC = os.path.join(DATA_DIR, "scenarios", "basic.json")
SIM_DIR = os.path.join(SOURCE_DIR, "tests", "azure-sim")
KEEP = os.environ.get("QN_KEEP_TMP") == "1"

sys.path.insert(0, SIM_DIR)
from client import SimProcess  # noqa: E402

# basic.json
SUB_PROD = "3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34"
SUB_OPS = "8c1d4e2f-7a3b-4f6e-b5d9-0e2c4a6b8d13"
RG_PROD = "/subscriptions/%s/resourceGroups/rg-prod" % SUB_PROD
VM_WEB = RG_PROD + "/providers/Microsoft.Compute/virtualMachines/vm-web-01"


def log(msg):
    print("  [%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Checks:
    """Counts checks; summary() prints "N passed, M failed" and returns the exit status."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.started = time.monotonic()
        print("== %s (tool: %s)" % (name, AZTOOL), flush=True)

    def check(self, what, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok   - %s" % what, flush=True)
        else:
            self.failed += 1
            print("FAIL - %s%s" % (what, (": " + str(detail)[:2000]) if detail != "" else ""), flush=True)
        return bool(cond)

    def summary(self):
        print("%s: %.1f s" % (self.name, time.monotonic() - self.started))
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


_sims = []


def _stop_all():
    for sim in _sims:
        try:
            sim.stop()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_stop_all)


def start_sim(scenario=BASIC, extra_args=None):
    """Starts a simulator in a fresh state directory; it is stopped at exit."""
    state = tempfile.mkdtemp(prefix="azit-sim-")
    sim = SimProcess(scenario, state_dir=state, extra_args=extra_args)
    sim.own_dir = not KEEP
    sim.start()
    _sims.append(sim)
    sim.ready_file = os.path.join(state, "ready.json")
    return sim


def secrets_of(ready):
    """Every secret the tool could leak: client secrets and federated tokens."""
    out = ["qn.sim~Not-The-Registered-Secret-000000"]
    for app in (ready.get("apps") or {}).values():
        if app.get("secret"):
            out.append(app["secret"])
        path = app.get("federated_token_file")
        if path and os.path.exists(path):
            with open(path) as f:
                out.append(f.read().strip())
    return out


class Run:
    def __init__(self, argv, rc, out, err, elapsed):
        self.argv = argv
        self.rc = rc
        self.stdout = out
        self.stderr = err
        self.elapsed = elapsed
        self.lines = []
        for line in out.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"event": "unparsed", "text": line})

    def events(self, name):
        return [x for x in self.lines if x.get("event") == name]

    def last(self, name):
        ev = self.events(name)
        return ev[-1] if ev else {}

    def __repr__(self):
        return "rc=%s stdout=%s stderr=%s" % (self.rc, self.stdout[-1500:], self.stderr[-1500:])


def tool_argv(sim, auth, args, opts=None):
    return [AZTOOL, "--ready", sim.ready_file, "--auth", auth] + list(opts or []) + list(args)


def run_tool(sim, auth, args, opts=None, timeout=90, env=None):
    argv = tool_argv(sim, auth, args, opts)
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       env=env, text=True, errors="replace")
    return Run(argv, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def no_leaks(checks, what, run, ready):
    text = run.stdout + run.stderr
    leaked = [s[:6] + "..." for s in secrets_of(ready) if s and s in text]
    checks.check("%s: no secret in the output" % what, not leaked, leaked)


def openssl_self_signed(directory, name):
    """A fresh RSA key and self-signed certificate nobody registered: (cert, key)."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                    "-days", "1", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def tmpdir():
    d = tempfile.mkdtemp(prefix="azit-")
    if not KEEP:
        atexit.register(shutil.rmtree, d, True)
    return d


def require_tool():
    if not os.access(AZTOOL, os.X_OK):
        print("quench-aztool not found at %s (build it, or set QN_BIN_DIR / QN_AZTOOL)" % AZTOOL)
        print("0 passed, 1 failed")
        sys.exit(1)
