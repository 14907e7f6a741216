#!/usr/bin/python3
"""End-to-end tests of the response (issue 4): quench run + quench-devkafka + the Azure
simulator. Each scenario loads a tenant into the simulator, starts a fresh Kafka and worker,
produces a Defender alert, answers the owner contact the way a ticketing tool does (verdict and
approvals on quench.verdicts), and then asserts on three records of what happened:

  - the simulator's STATE before and after (GET /_admin/state): exactly the threat actor's
    footprint is removed or contained, and every familiar or protected object is untouched;
  - the simulator's REQUEST LOG: which writes were sent, and how often;
  - the OUTCOME EVENTS on quench.outcomes: schema-valid, and telling the whole story (evidence,
    API request ids, undo data).

Groups (run all, or name some on the command line; tests.cmake registers one ctest per group):
  users         users area: e2e-users.json + alerts/users.json
  subscriptions subscriptions area: e2e-subscription.json + arm-flat-runbook.json, started by
                the contact deadline (High: mitigate) instead of a verdict
  vms           VM area: e2e-vm.json + alerts/vm.json
  combined      basic.json + arm-flat-suspicious-ip.json in enforce mode; the same in observe
                mode (dry run) compared with it; and the same alert delivered three times with
                status updates, compared with it
  dismiss       a verdict of expected dismisses the alert and writes nothing else
  deadline      Medium deadline with policy escalate: quench.response.escalated, no writes
  cancel        the alert dismissed upstream while quench waits: cancelled, a late verdict
                changes nothing, no writes
  forged        an alert the Microsoft.Security API does not know: no write, escalation; and
                the real alert's id with swapped entities: nothing it does not name is touched
  kill_switch   policy.kill_switch: no writes
  scope         a subscription outside policy.allowed_subscriptions: no writes, scope reason
  caps          policy.caps.per_alert 2: two destructive writes, the rest skipped, escalation

Prints PASS/FAIL per check and "N passed, M failed"; exits 1 on any failure.
Environment: QN_BIN_DIR, QN_SOURCE_DIR (see tests/integration/harness.py), QN_KEEP_TMP=1,
QN_E2E_VERBOSE=1 (print every run's event list).
"""

import collections
import datetime
import json
import os
import re
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402
from e2e import h  # noqa: E402

C = h.Checks()
VERBOSE = os.environ.get("QN_E2E_VERBOSE") == "1"

# ------------------------------------------------------------------------- the tenant's ids

TENANT = "c5e8a3d1-2b4f-4a6c-8e9d-1f3a5b7c9d02"
PROD = "3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34"
OPS = "8c1d4e2f-7a3b-4f6e-b5d9-0e2c4a6b8d13"
MALLORY = "5b0e7f3a-9c2d-4e1b-a8f6-3d7c0e9b2a14"
BREAKGLASS = "b7eac91a-55aa-4c3e-9d1f-0a1b2c3d4e5f"
SVC_BACKUP = "d3adbeef-7f3c-4b1d-9e2a-5c6d7e8f9a01"
ADM_OPS = "ad0f7f3c-0b1e-4c2d-9e3f-4a5b6c7d8e90"
LENA = "1e4a0000-5555-4666-8777-888899990000"
SVC_DEPLOY = "e7d6c5b4-a3f2-4e1d-9c8b-7a6f5e4d3c2b"
CAROL = "ca201000-2222-4333-8444-555566667777"

RG_PROD = "/subscriptions/%s/resourceGroups/rg-prod" % PROD
RG_AUTO = "/subscriptions/%s/resourceGroups/rg-automation" % OPS
RA1 = "/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments/" \
      "7f3c0001-aaaa-4bbb-8ccc-000000000001" % PROD
RA2 = RG_PROD + "/providers/Microsoft.Authorization/roleAssignments/" \
                "7f3c0002-aaaa-4bbb-8ccc-000000000002"
RA3 = "/subscriptions/%s/providers/Microsoft.Authorization/roleAssignments/" \
      "7f3c0003-aaaa-4bbb-8ccc-000000000003" % OPS
VM_WEB = RG_PROD + "/providers/Microsoft.Compute/virtualMachines/vm-web-01"
VM_APP = RG_PROD + "/providers/Microsoft.Compute/virtualMachines/vm-app-02"
VM_MINER = RG_PROD + "/providers/Microsoft.Compute/virtualMachines/vm-miner-01"
ST_EXFIL = RG_PROD + "/providers/Microsoft.Storage/storageAccounts/stexfil7f3c"
ST_LOGS = RG_PROD + "/providers/Microsoft.Storage/storageAccounts/stprodlogs01"
DEPLOYMENT = RG_PROD + "/providers/Microsoft.Resources/deployments/miner-deploy"
ID_QUENCH = "/subscriptions/%s/resourceGroups/rg-quench/providers/" \
            "Microsoft.ManagedIdentity/userAssignedIdentities/id-quench" % PROD
AA_OPS = RG_AUTO + "/providers/Microsoft.Automation/automationAccounts/aa-ops"
RB_MAINT = AA_OPS + "/runbooks/rb-maint-7f3c"
RB_PATCH = AA_OPS + "/runbooks/Patch-Servers"
RB_ROTATE = AA_OPS + "/runbooks/Rotate-Keys"
RB_HOTFIX = AA_OPS + "/runbooks/Hotfix-Certs"
ST_DROP = RG_AUTO + "/providers/Microsoft.Storage/storageAccounts/stdrop7f3c"
RG_SECOPS = "/subscriptions/%s/resourceGroups/rg-secops" % OPS
ST_SECOPS = RG_SECOPS + "/providers/Microsoft.Storage/storageAccounts/stsecops01"
ST_SECDROP = RG_SECOPS + "/providers/Microsoft.Storage/storageAccounts/stsecdrop7f3c"
ST_LOCK = RG_AUTO + "/providers/Microsoft.Storage/storageAccounts/stlock7f3c"

BASIC = os.path.join(e2e.SCENARIOS, "basic.json")
E2E_USERS = os.path.join(e2e.SCENARIOS, "e2e-users.json")
E2E_SUBSCRIPTION = os.path.join(e2e.SCENARIOS, "e2e-subscription.json")
E2E_VM = os.path.join(e2e.SCENARIOS, "e2e-vm.json")
ALERT_SUSPICIOUS_IP = os.path.join(e2e.ALERT_FIXTURES, "arm-flat-suspicious-ip.json")
ALERT_RUNBOOK = os.path.join(e2e.ALERT_FIXTURES, "arm-flat-runbook.json")
ALERT_USERS = os.path.join(e2e.E2E_ALERTS, "users.json")
ALERT_VM = os.path.join(e2e.E2E_ALERTS, "vm.json")

PROTECTION = {"protected_principals": ["breakglass@contoso.com", BREAKGLASS],
              "protected_tags": ["quench=protected"]}

DESTRUCTIVE = ("delete_user", "remove_role_assignment", "remove_runbook", "delete_resource",
               "vm_reimage")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check(name, ok, detail=""):
    return C.check(name, ok, detail)


def fmt(items, n=12):
    items = list(items)
    text = "\n".join(str(i) for i in items[:n])
    if len(items) > n:
        text += "\n... %d more" % (len(items) - n)
    return text or "(none)"


def parse_time(text):
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits):]
        text = "%s.%s%s" % (head, (digits + "000000")[:6], tz)
    return datetime.datetime.fromisoformat(text)


# ------------------------------------------------------------------------- common checks

def run_ok(p, res):
    """The run reached a final event; prints the story when asked or when it did not."""
    detail = ""
    if not res.finished or res.error:
        detail = "error: %s\nevents:\n%s\nworker log tail:\n%s" % (
            res.error, res.summary(), "\n".join(res.worker_log.splitlines()[-15:]))
    elif VERBOSE:
        print(res.summary())
    return check("%s: the response ran to a final event" % p, res.finished and not res.error,
                 detail)


def schema_problem_summary(problems):
    """Distinct schema errors with counts (indexes and values folded), plus one example each."""
    kinds = collections.OrderedDict()
    for text in problems:
        lines = text.splitlines()
        where = lines[0].split(":")[0] if lines else "?"
        for line in lines[1:] or ["(no detail)"]:
            line = line.strip()
            key = re.sub(r"\[\d+\]", "[N]", line)
            key = re.sub(r"'[^']*'", "'…'", key)
            slot = kinds.setdefault(key, [0, "%s %s" % (where, line)])
            slot[0] += 1
    return ["%3dx %s\n       e.g. %s" % (n, key, example[:300])
            for key, (n, example) in kinds.items()]


def check_schema(p, res):
    problems = h.schema_errors(res.msgs)
    check("%s: every outcome event is valid against outcome.schema.json (%d events, %d invalid)"
          % (p, len(res.msgs), len(problems)), res.msgs and not problems,
          fmt(schema_problem_summary(problems), 8))
    ids = collections.Counter(json.loads(m.value).get("id") for m in res.msgs)
    dups = [i for i, n in ids.items() if n > 1]
    check("%s: no outcome event id appears twice" % p, not dups, fmt(dups))


def check_exit(p, res):
    code = res.exit[0] if res.exit else None
    check("%s: the worker exits 0 on SIGTERM" % p, code == 0, "exit %r" % (res.exit,))


def check_no_secrets(p, res, extra=()):
    secrets = e2e.new_secrets(res.before, res.after) | {res_secret for res_secret in extra}
    texts = [m.value.decode("utf-8", "replace") for m in res.msgs] + [res.worker_log]
    leaked = sorted({"%s...(%d chars)" % (s[:3], len(s)) for s in secrets
                     for t in texts if s in t})
    check("%s: no secret (client secret, new passwords: %d known) in an event or the worker "
          "log" % (p, len(secrets)), not leaked, fmt(leaked))


def no_writes(p, res, what="no Azure write was sent"):
    w = res.writes()
    check("%s: %s (request log: %d requests, %d writes)" % (p, what, len(res.log), len(w)),
          not w, fmt(e2e.describe(x) for x in w))


def state_unchanged(p, res):
    d = e2e.diff(res.before, res.after)
    lines = ["%s %s: %s" % (coll, kind, ", ".join(e2e.label(res.before, res.after, coll, k)
                                                  for k in sorted(keys)))
             for coll, dd in d.items() for kind, keys in dd.items() if keys]
    check("%s: the simulator's state is unchanged" % p, res.after is not None and not d,
          fmt(lines))


def check_state(p, res, removed=None, added=None, changed=None, added_prefix=None):
    """Exactly these objects removed/added/changed (keys lower-cased ids); everything else
    deep-equal before and after. added_prefix: {collection: [id prefix]} of objects that may
    appear (e.g. a VMAccess extension under the VM)."""
    if res.after is None:
        check("%s: state: the simulator's state could be read" % p, False, res.error)
        return
    d = e2e.diff(res.before, res.after)
    want = {"removed": removed or {}, "added": added or {}, "changed": changed or {}}
    colls = set(d) | set(want["removed"]) | set(want["added"]) | set(want["changed"])
    for coll in sorted(colls):
        got = d.get(coll, {"removed": set(), "added": set(), "changed": set()})
        problems = []
        for kind in ("removed", "added", "changed"):
            exp = {k.lower() for k in want[kind].get(coll, [])}
            act = set(got[kind])
            if kind == "added":
                prefixes = [x.lower() for x in (added_prefix or {}).get(coll, [])]
                act = {k for k in act if not any(k.startswith(x) for x in prefixes)}
            for k in sorted(exp - act):
                problems.append("expected %s but not: %s" % (kind, e2e.label(res.before,
                                                                             res.after, coll, k)))
            for k in sorted(act - exp):
                what = e2e.label(res.before, res.after, coll, k)
                if kind == "changed":
                    b = e2e.index(res.before, coll)[k]
                    a = e2e.index(res.after, coll)[k]
                    what += " (fields: %s)" % ", ".join(e2e.changed_fields(b, a)[:8])
                problems.append("unexpectedly %s: %s" % (kind, what))
        exp_text = "; ".join("%s %d" % (kind, len(want[kind].get(coll, [])))
                             for kind in ("removed", "added", "changed")
                             if want[kind].get(coll))
        check("%s: state: %s %s" % (p, coll, ("exactly " + exp_text) if exp_text
                                    else "untouched"), not problems, fmt(problems))


def user(state, uid):
    return e2e.index(state, "users").get(uid.lower())


def resource(state, rid):
    return e2e.index(state, "resources").get(rid.lower())


def check_user_contained(p, res, uid, upn):
    b, a = user(res.before, uid), user(res.after, uid)
    if a is None:
        check("%s: %s still exists (contained, not deleted)" % (p, upn), False)
        return
    check("%s: %s disabled (accountEnabled false)" % (p, upn), a.get("accountEnabled") is False,
          "accountEnabled=%r" % a.get("accountEnabled"))
    check("%s: %s sessions revoked (signInSessionsValidFromDateTime moved)" % (p, upn),
          a.get("signInSessionsValidFromDateTime") != (b or {}).get(
              "signInSessionsValidFromDateTime"),
          "before %r after %r" % ((b or {}).get("signInSessionsValidFromDateTime"),
                                  a.get("signInSessionsValidFromDateTime")))
    check("%s: %s credentials reset (a new password was set)" % (p, upn),
          (a.get("x-sim") or {}).get("password") and
          (a.get("x-sim") or {}).get("password") != ((b or {}).get("x-sim") or {}).get("password"))


def check_user_deleted(p, res, uid, upn):
    check("%s: %s deleted (gone from users, recoverable in deletedItems)" % (p, upn),
          user(res.after, uid) is None and
          uid.lower() in e2e.index(res.after, "deleted_items"))


def writes_to(res, needle):
    needle = needle.lower()
    return [w for w in res.writes() if needle in e2e.path_of(w).lower()]


def untouched_principal(p, res, uid, upn, what):
    w = writes_to(res, uid) + writes_to(res, upn)
    b, a = user(res.before, uid), user(res.after, uid)
    check("%s: %s %s untouched (state equal, no write addressed it)" % (p, what, upn),
          b is not None and a == b and not w, fmt(e2e.describe(x) for x in w))


def untouched_resource(p, res, rid, what):
    w = writes_to(res, rid)
    b, a = resource(res.before, rid), resource(res.after, rid)
    check("%s: %s %s untouched (state equal, no write addressed it)"
          % (p, what, rid.rsplit("/", 1)[-1]), b is not None and a == b and not w,
          fmt(e2e.describe(x) for x in w))


def vm_writes(res, vm):
    vm = vm.lower()
    return [w for w in res.writes() if e2e.path_of(w).lower().startswith(vm + "/")
            or e2e.path_of(w).lower() == vm]


def is_scan(w, command):
    body = w.get("body") if isinstance(w.get("body"), dict) else {}
    script = body.get("script")
    text = "\n".join(script) if isinstance(script, list) else str(script or "")
    return e2e.path_of(w).lower().endswith("/runcommand") and command in text


def check_vm_contained(p, res, vm, command_id, scan_command):
    name = vm.rsplit("/", 1)[-1]
    ws = [w for w in vm_writes(res, vm) if w.get("status") and w["status"] < 300]
    scans = [w for w in ws if is_scan(w, scan_command)]
    check("%s: %s antimalware scan ran (request log: %s with '%s')"
          % (p, name, command_id, scan_command),
          len(scans) == 1 and all((w["body"] or {}).get("commandId") == command_id
                                  for w in scans),
          fmt(e2e.describe(w) for w in ws))
    resets = [w for w in ws if (e2e.path_of(w).lower().endswith("/runcommand")
                                and not is_scan(w, scan_command))
              or "/extensions/" in e2e.path_of(w).lower()]
    check("%s: %s local passwords reset (request log: run command or VMAccess extension)"
          % (p, name), resets, fmt(e2e.describe(w) for w in ws))
    reimages = [w for w in ws if e2e.path_of(w).lower().endswith("/reimage")]
    after = resource(res.after, vm) or {}
    check("%s: %s reimaged once (request log and x-sim.reimageCount)" % (p, name),
          len(reimages) == 1 and (after.get("x-sim") or {}).get("reimageCount") == 1,
          "reimage POSTs %d, reimageCount %r" % (len(reimages),
                                                 (after.get("x-sim") or {}).get("reimageCount")))
    if scans and reimages:
        check("%s: %s is reimaged after its scan and password reset" % (p, name),
              reimages[0]["seq"] > scans[-1]["seq"] and
              all(reimages[0]["seq"] > r["seq"] for r in resets))


def check_tasks(p, res, expected, optional=()):
    """expected: {(kind, target id): "succeeded" | ("skipped", reason substring)}.
    Write tasks other than these (and the optional ones) must not be planned."""
    tasks = res.tasks()
    exp = {(k, t.lower()): v for (k, t), v in expected.items()}
    opt = {(k, t.lower()) for (k, t) in optional}
    planned = {key for key in tasks if key[0] in e2e.WRITE_KINDS and tasks[key]["proposed"]}
    missing = sorted(set(exp) - planned)
    extra = sorted(planned - set(exp) - opt)
    check("%s: tasks: the planned write tasks are exactly the expected %d" % (p, len(exp)),
          not missing and not extra,
          "missing:\n%s\nunexpected:\n%s" % (fmt(missing), fmt(extra)))
    for key, want in sorted(exp.items()):
        slot = tasks.get(key, {"proposed": [], "terminal": []})
        terms = slot["terminal"]
        kind, target = key
        short = target.rsplit("/", 1)[-1]
        if isinstance(want, tuple):
            state, reason = want
        else:
            state, reason = want, None
        ok = len(terms) == 1 and terms[0]["type"] == "quench.task." + state
        got = [(t["type"], t["data"].get("result") or (t["data"].get("error") or {}).get(
            "message")) for t in terms]
        if ok and reason:
            text = (terms[0]["data"].get("result") or "").lower()
            ok = reason.lower() in text
        check("%s: task %s %s ended %s%s" % (p, kind, short, state,
                                             " (%s)" % reason if reason else ""),
              ok, "proposed %d, terminal events %s" % (len(slot["proposed"]), got))
    for key in opt:
        terms = tasks.get(key, {"terminal": []})["terminal"]
        if terms:
            check("%s: optional task %s %s did not fail" % (p, key[0], key[1].rsplit("/", 1)[-1]),
                  all(t["type"] != "quench.task.failed" for t in terms),
                  fmt((t["type"], (t["data"].get("error") or {}).get("message")) for t in terms))


def check_story(p, res, verdict=True, removals=True):
    """The outcome events tell the whole story."""
    ev = res.events
    i_contact = res.index(lambda e: e["type"] == "quench.contact.requested")
    i_verdict = res.index(lambda e: e["type"] == "quench.verdict.received")
    i_evidence = res.index(lambda e: e["type"] == "quench.task.proposed" and
                           e["data"]["task"]["kind"] == "collect_evidence")
    i_final = res.index(lambda e: e["type"] in e2e.FINAL)
    order = [i_contact] + ([i_verdict] if verdict else []) + [i_evidence, i_final]
    check("%s: events: contact.requested%s, collect_evidence proposed, then the final event, "
          "in that order" % (p, ", verdict.received" if verdict else ""),
          all(i >= 0 for i in order) and order == sorted(order) and i_final == len(ev) - 1,
          "indexes %s of %d\n%s" % (order, len(ev), res.summary()))
    contact = res.first("quench.contact.requested")
    if contact:
        d = contact["data"]
        check("%s: events: contact.requested names an owner candidate, answer key and deadline"
              % p, d.get("owner", {}).get("candidates") and d.get("answerKey") and
              d.get("deadline"), json.dumps(d.get("owner")))
    tasks = res.tasks()
    unproposed = [k for k, s in tasks.items() if s["terminal"] and not s["proposed"]
                  and k[0] != "resolve_owner"]
    check("%s: events: every task that ended was proposed first" % p, not unproposed,
          fmt(unproposed))
    twice = [(k, [t["type"] for t in s["terminal"]]) for k, s in tasks.items()
             if len(s["terminal"]) > 1]
    check("%s: events: no task ended twice" % p, not twice, fmt(twice))
    no_evidence = [(e["type"], e["data"]["task"]["kind"]) for e in res.task_events()
                   if not e["data"].get("evidence")]
    check("%s: events: every task event carries evidence" % p, not no_evidence,
          fmt(no_evidence))
    found = [e for e in res.task_events(types=("quench.task.proposed",))
             if e["data"]["task"]["kind"] in ("delete_user", "remove_role_assignment",
                                              "remove_runbook", "delete_resource")]
    weak = [(e["data"]["task"]["kind"], e["data"]["task"]["target"]["id"]) for e in found
            if not any(x.get("source") in ("activity_log", "directory_audit", "arm")
                       for x in e["data"]["evidence"])]
    if removals:
        check("%s: events: every removal is justified by activity-log, directory-audit or ARM "
              "evidence (%d removals)" % (p, len(found)), found and not weak, fmt(weak))
    else:
        check("%s: events: no removal is planned" % p, not found,
              fmt(e["data"]["task"]["kind"] for e in found))
    # API request ids
    log_ids = {x.get("request_id") for x in res.log if x.get("request_id")}
    by_id = {x.get("request_id"): x for x in res.log if x.get("request_id")}
    ok_writes = res.task_events(types=("quench.task.succeeded",))
    ok_writes = [e for e in ok_writes if e["data"]["task"]["kind"] in e2e.WRITE_KINDS]
    missing_ids = []
    unknown_ids = []
    no_write = []
    for e in ok_writes:
        reqs = e["data"].get("requests") or []
        t = e["data"]["task"]
        if any(r.get("status") and not r.get("requestId") for r in reqs):
            missing_ids.append((t["kind"], t["target"]["id"]))
        for r in reqs:
            if r.get("requestId") and r["requestId"] not in log_ids:
                unknown_ids.append((t["kind"], r["method"], r["url"], r["requestId"]))
        if not any(r.get("method") not in e2e.READ_METHODS for r in reqs):
            no_write.append((t["kind"], t["target"]["id"]))
    check("%s: events: every succeeded write task lists its API calls with request ids "
          "(%d tasks)" % (p, len(ok_writes)), ok_writes and not missing_ids and not no_write,
          "calls without requestId:\n%s\ntasks listing no write:\n%s"
          % (fmt(missing_ids), fmt(no_write)))
    check("%s: events: every request id in the events is in the simulator's request log" % p,
          not unknown_ids, fmt(unknown_ids))
    event_ids = set()
    for e in res.events:
        for r in e["data"].get("requests") or []:
            if r.get("requestId"):
                event_ids.add(r["requestId"])
    untold = [e2e.describe(w) for w in res.writes() if w.get("request_id") not in event_ids]
    check("%s: events: every write in the simulator's request log is reported in an event" % p,
          not untold, fmt(untold))
    # each write task's own requests show the write it promises
    wrong = []
    for e in ok_writes:
        t = e["data"]["task"]
        entries = [by_id[r["requestId"]] for r in e["data"].get("requests") or []
                   if r.get("requestId") in by_id]
        if not any(write_matches(t["kind"], t["target"]["id"], t["target"].get("name"), x)
                   for x in entries):
            wrong.append((t["kind"], t["target"]["id"], [e2e.describe(x) for x in entries
                                                         if x["method"] not in ("GET",)]))
    check("%s: events: each succeeded task's recorded calls include the write its kind "
          "promises (request log)" % p, ok_writes and not wrong, fmt(wrong))
    # undo data
    if removals:
        check_undo(p, res, ok_writes)
    final = res.of_type(*e2e.FINAL)
    if final and final[-1]["type"] in ("quench.response.closed", "quench.response.failed"):
        counts = final[-1]["data"].get("tasks") or {}
        got = collections.Counter(s["terminal"][-1]["type"] for s in tasks.values()
                                  if s["terminal"])
        want = {"succeeded": got["quench.task.succeeded"], "failed": got["quench.task.failed"],
                "skipped": got["quench.task.skipped"]}
        check("%s: events: the closing event's task counts match the task events" % p,
              all(counts.get(k) == v for k, v in want.items()),
              "closing %s, task events %s" % (counts, want))


def write_matches(kind, target, name, x):
    path = e2e.path_of(x).lower()
    method = x.get("method")
    body = x.get("body") if isinstance(x.get("body"), dict) else {}
    t = target.lower()
    st = x.get("status") or 0
    ok = 200 <= st < 300 or (method == "DELETE" and st == 404)
    names = {t} | ({name.lower()} if name else set())
    user_path = any(path.endswith("/users/" + n) for n in names)
    if not ok:
        return False
    if kind == "disable_user":
        return method == "PATCH" and user_path and body.get("accountEnabled") is False
    if kind == "reset_credentials":
        return method == "PATCH" and user_path and "passwordProfile" in body
    if kind == "revoke_sessions":
        return method == "POST" and any(path.endswith("/users/%s/revokesigninsessions" % n)
                                        for n in names)
    if kind == "delete_user":
        return method == "DELETE" and user_path
    if kind in ("remove_role_assignment", "remove_runbook", "delete_resource"):
        return method == "DELETE" and path == t
    if kind == "vm_reset_passwords":
        return (method == "POST" and path == t + "/runcommand") or \
            (method == "PUT" and path.startswith(t + "/extensions/"))
    if kind == "vm_antimalware_scan":
        return method == "POST" and path == t + "/runcommand" and (
            is_scan(x, e2e.LINUX_SCAN) or is_scan(x, e2e.WINDOWS_SCAN))
    if kind == "vm_reimage":
        return method == "POST" and path == t + "/reimage"
    if kind == "dismiss_alert":
        return method == "POST" and path.endswith("/alerts/%s/dismiss" % t)
    return False


def contains_string(obj, needle):
    needle = needle.lower()
    return any(needle in s.lower() for s in e2e.strings_in(obj))


def check_undo(p, res, ok_writes):
    problems = []
    checked = 0
    for e in ok_writes:
        t = e["data"]["task"]
        kind, target = t["kind"], t["target"]["id"]
        undo = e["data"].get("undo")
        detail = e["data"].get("detail")
        why = None
        if kind in ("revoke_sessions", "reset_credentials", "vm_reset_passwords",
                    "vm_antimalware_scan", "vm_reimage", "dismiss_alert"):
            continue  # not undoable (a new secret, a scan, a reimage)
        checked += 1
        if not isinstance(undo, dict) or not undo:
            why = "no undo data"
        elif kind == "disable_user":
            if not contains_string(undo, target) and "accountEnabled" not in json.dumps(undo):
                why = "undo names neither the user nor accountEnabled: %s" % json.dumps(undo)[:200]
        elif kind == "delete_user":
            if not (contains_string(undo, "restore") and contains_string(undo, target)):
                why = "no restore path for %s: %s" % (target, json.dumps(undo)[:200])
        elif kind == "remove_role_assignment":
            ra = e2e.index(res.before, "role_assignments").get(target.lower()) or {}
            props = ra.get("properties") or {}
            need = [props.get("principalId", "?"),
                    (props.get("roleDefinitionId") or "?").rsplit("/", 1)[-1],
                    props.get("scope", "?")]
            lacking = [n for n in need if not contains_string(undo, n)]
            if lacking:
                why = "the assignment body lacks %s: %s" % (lacking, json.dumps(undo)[:200])
        elif kind == "remove_runbook":
            rb = resource(res.before, target) or {}
            content = ((rb.get("x-sim") or {}).get("content") or "").strip().splitlines()
            line = max(content, key=len) if content else None
            if not contains_string(undo, rb.get("name", target)):
                why = "undo does not name the runbook: %s" % json.dumps(undo)[:200]
            elif line and not contains_string({"u": undo, "d": detail}, line):
                why = "the runbook's content is neither in undo nor in detail"
        elif kind == "delete_resource":
            r = resource(res.before, target)
            if r is not None and not (contains_string(undo, r.get("type", "?"))
                                      and contains_string(undo, r.get("location", "?"))):
                why = "undo lacks the resource's type/location: %s" % json.dumps(undo)[:200]
        if why:
            problems.append("%s %s: %s" % (kind, target.rsplit("/", 1)[-1], why))
    check("%s: events: undo data on every succeeded action that can be undone (%d actions)"
          % (p, checked), checked and not problems, fmt(problems))


def check_approvals(p, res, kinds):
    """approve-mode tasks ran only after the approval verdict named them."""
    approved = set(res.approved)
    asked = [e["data"]["task"] for e in res.of_type("quench.task.proposed")
             if e["data"]["task"]["mode"] == "approve"]
    ok = sorted({t["kind"] for t in asked}) == sorted(set(kinds)) and \
        all(t["id"] in approved for t in asked)
    check("%s: approve mode: %s proposed in approve mode and run after the approval verdict "
          "named their task ids" % (p, "/".join(sorted(set(kinds)))), ok,
          fmt((t["kind"], t["target"]["id"], t["id"] in approved) for t in asked))
    i_approved = res.index(lambda e: e["type"] == "quench.verdict.received" and
                           e["data"].get("approvals"))
    early = [e["data"]["task"]["kind"] for e in res.events[:max(i_approved, 0)]
             if e["type"] == "quench.task.succeeded" and e["data"]["task"]["mode"] == "approve"]
    check("%s: approve mode: no approve-mode task succeeded before the approval arrived" % p,
          i_approved >= 0 and not early, fmt(early))


def common(p, res, secrets=()):
    check_schema(p, res)
    check_no_secrets(p, res, secrets)
    check_exit(p, res)


# ------------------------------------------------------------------------- scenarios

def scenario_users(env):
    p = "users"
    res = e2e.respond(env, p, E2E_USERS, read(ALERT_USERS),
                      config={"policy": {"protected_principals": ["breakglass@contoso.com"]}})
    run_ok(p, res)
    skip = ("skipped", "protected")
    check_tasks(p, res, {
        ("disable_user", MALLORY): "succeeded", ("revoke_sessions", MALLORY): "succeeded",
        ("reset_credentials", MALLORY): "succeeded",
        ("delete_user", SVC_BACKUP): "succeeded", ("delete_user", ADM_OPS): "succeeded",
        ("disable_user", BREAKGLASS): skip, ("revoke_sessions", BREAKGLASS): skip,
        ("reset_credentials", BREAKGLASS): skip})
    check_state(p, res, removed={"users": [SVC_BACKUP, ADM_OPS]},
                added={"deleted_items": [SVC_BACKUP, ADM_OPS]},
                changed={"users": [MALLORY]})
    check_user_contained(p, res, MALLORY, "mallory@contoso.com")
    check_user_deleted(p, res, SVC_BACKUP, "svc-backup-7f3c@contoso.com")
    check_user_deleted(p, res, ADM_OPS, "adm-ops-7f3c@contoso.com")
    untouched_principal(p, res, BREAKGLASS, "breakglass@contoso.com",
                        "protected break-glass account")
    untouched_principal(p, res, LENA, "lena.vermeer@contoso.com",
                        "look-alike (created by alice in the window)")
    w = [x for x in res.writes() if x.get("service") != "graph"]
    check("%s: only Microsoft Graph was written (no Resource Manager write)" % p, not w,
          fmt(e2e.describe(x) for x in w))
    check_story(p, res)
    common(p, res, [env.sim.secret])


def scenario_subscriptions(env):
    p = "subscriptions"
    deadline = 3
    res = e2e.respond(env, p, E2E_SUBSCRIPTION, read(ALERT_RUNBOOK), verdict=None, config={
        "policy": dict(PROTECTION, known_resources=[RB_HOTFIX], known_principals=[CAROL]),
        "contact": {"policies": {"High": {"deadline_seconds": deadline,
                                          "on_timeout": "mitigate"}}}})
    run_ok(p, res)
    check_tasks(p, res, {
        ("disable_user", SVC_DEPLOY): "succeeded", ("revoke_sessions", SVC_DEPLOY): "succeeded",
        ("reset_credentials", SVC_DEPLOY): "succeeded",
        ("remove_runbook", RB_MAINT): "succeeded",
        ("remove_role_assignment", RA3): "succeeded",
        ("delete_resource", ST_DROP): "succeeded",
        ("delete_resource", ST_SECDROP): ("skipped", "protected tag"),
        ("delete_resource", ST_LOCK): ("skipped", "resource lock")})
    check_state(p, res, removed={"role_assignments": [RA3], "resources": [RB_MAINT, ST_DROP]},
                changed={"users": [SVC_DEPLOY]})
    check_user_contained(p, res, SVC_DEPLOY, "svc-deploy@contoso.com")
    untouched_resource(p, res, ST_SECDROP, "protected footprint, approved yet (resource group "
                       "tag quench=protected)")
    untouched_resource(p, res, ST_SECOPS, "look-alike (familiar; svc-deploy only changed it)")
    untouched_resource(p, res, ST_LOCK, "locked footprint (CanNotDelete lock keep-7f3c)")
    lock_writes = [e2e.describe(w) for w in res.writes() if "/locks/" in e2e.path_of(w).lower()]
    check("%s: no lock was written or removed" % p, not lock_writes, fmt(lock_writes))
    for rb, what in ((RB_PATCH, "look-alike runbook"), (RB_ROTATE, "look-alike runbook"),
                     (RB_HOTFIX, "known runbook created in the window")):
        untouched_resource(p, res, rb, what)
    ra_carol = RG_AUTO + "/providers/Microsoft.Authorization/roleAssignments/" \
                         "33333333-0000-4000-8000-000000000001"
    check("%s: known principal's assignment made in the window untouched (carol Reader)" % p,
          ra_carol.lower() in e2e.index(res.after, "role_assignments") and
          not writes_to(res, ra_carol))
    prod = [e2e.describe(w) for w in res.writes() if PROD in e2e.path_of(w).lower()]
    check("%s: nothing in the other subscription (Contoso Production) was written" % p,
          not prod, fmt(prod))
    # the deadline, not a verdict, started the mitigation
    contact = res.first("quench.contact.requested")
    evidence = [e for e in res.of_type("quench.task.proposed")
                if e["data"]["task"]["kind"] == "collect_evidence"]
    verdicts = [e["data"] for e in res.of_type("quench.verdict.received")
                if e["data"].get("verdict")]
    ok = contact is not None and bool(evidence) and not verdicts
    detail = "contact %s, mitigation proposals %d, verdicts %s" % (
        contact is not None, len(evidence), verdicts)
    if ok:
        due = parse_time(contact["data"]["deadline"])
        started = parse_time(evidence[0]["time"])
        sent = parse_time(contact["time"])
        ok = started >= due - datetime.timedelta(milliseconds=300) and \
            abs((due - sent).total_seconds() - deadline) <= 1.0
        detail = "contact %s, deadline %s, mitigation %s" % (sent, due, started)
    check("%s: deadline: with no verdict, mitigation starts when the High deadline (%d s, "
          "policy mitigate) passes" % (p, deadline), ok, detail)
    final = res.of_type("quench.response.closed")
    check("%s: deadline: the response closes, saying it ran after the deadline" % p,
          final and "deadline" in final[-1]["data"].get("reason", ""),
          final[-1]["data"] if final else res.summary())
    check_approvals(p, res, ["delete_resource"])
    check_story(p, res, verdict=False)
    common(p, res, [env.sim.secret])


def scenario_vms(env):
    p = "vms"
    res = e2e.respond(env, p, E2E_VM, read(ALERT_VM), config={"policy": PROTECTION})
    run_ok(p, res)
    check_tasks(p, res, {("vm_reset_passwords", VM_APP): "succeeded",
                         ("vm_antimalware_scan", VM_APP): "succeeded",
                         ("vm_reimage", VM_APP): "succeeded"})
    check_state(p, res, changed={"resources": [VM_APP]},
                added_prefix={"resources": [VM_APP + "/extensions/"]})
    check_vm_contained(p, res, VM_APP, "RunPowerShellScript", e2e.WINDOWS_SCAN)
    untouched_resource(p, res, VM_WEB, "look-alike VM")
    g = [e2e.describe(x) for x in res.writes() if x.get("service") == "graph"]
    check("%s: no directory write (the alert names no account)" % p, not g, fmt(g))
    check_approvals(p, res, ["vm_reimage"])
    check_story(p, res, removals=False)
    common(p, res, [env.sim.secret])


COMBINED_TASKS = {
    ("disable_user", MALLORY): "succeeded", ("revoke_sessions", MALLORY): "succeeded",
    ("reset_credentials", MALLORY): "succeeded", ("delete_user", SVC_BACKUP): "succeeded",
    ("remove_role_assignment", RA1): "succeeded", ("remove_role_assignment", RA2): "succeeded",
    ("delete_resource", VM_MINER): "succeeded", ("delete_resource", ST_EXFIL): "succeeded",
    ("vm_reset_passwords", VM_WEB): "succeeded", ("vm_antimalware_scan", VM_WEB): "succeeded",
    ("vm_reimage", VM_WEB): "succeeded"}
# mallory's Microsoft.Resources/deployments/write: a deployment record, not in the resource list
COMBINED_OPTIONAL = {("delete_resource", DEPLOYMENT)}


def combined_state(p, res):
    check_state(p, res, removed={"users": [SVC_BACKUP], "role_assignments": [RA1, RA2],
                                 "resources": [VM_MINER, ST_EXFIL]},
                added={"deleted_items": [SVC_BACKUP]},
                changed={"users": [MALLORY], "resources": [VM_WEB]},
                added_prefix={"resources": [VM_WEB + "/extensions/"]})


def scenario_combined(env):
    p = "combined"
    res = e2e.respond(env, p, BASIC, read(ALERT_SUSPICIOUS_IP), config={"policy": PROTECTION})
    run_ok(p, res)
    check_tasks(p, res, COMBINED_TASKS, COMBINED_OPTIONAL)
    combined_state(p, res)
    check_user_contained(p, res, MALLORY, "mallory@contoso.com")
    check_user_deleted(p, res, SVC_BACKUP, "svc-backup-7f3c@contoso.com")
    check_vm_contained(p, res, VM_WEB, "RunShellScript", e2e.LINUX_SCAN)
    untouched_principal(p, res, BREAKGLASS, "breakglass@contoso.com",
                        "protected break-glass account")
    untouched_principal(p, res, "a11ce000-1111-4222-8333-444455556666", "alice@contoso.com",
                        "look-alike (subscription Owner)")
    untouched_resource(p, res, ID_QUENCH, "protected (tag quench=protected)")
    untouched_resource(p, res, ST_LOGS, "look-alike (locked; mallory's delete failed)")
    untouched_resource(p, res, VM_APP, "look-alike VM")
    check_approvals(p, res, ["delete_resource", "vm_reimage"])
    check_story(p, res)
    # "Review everything the user did in the activity log" and "the subscription's other
    # security alerts": the events carry both for the person who reads the ticket.
    disabled = res.task_events("disable_user", MALLORY, ("quench.task.succeeded",))
    activity = ((disabled[0]["data"].get("detail") or {}).get("activity") or []) \
        if disabled else []
    ops = {str((a.get("operationName") or {}).get("value") if isinstance(
        a.get("operationName"), dict) else a.get("operationName")) for a in activity}
    need = {"Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Compute/virtualMachines/runCommand/action",
            "Microsoft.Compute/virtualMachines/write", "Microsoft.Storage/storageAccounts/write"}
    check("%s: events: disable_user lists what mallory did in the alert window (detail.activity, "
          "%d events)" % (p, len(activity)), need <= ops, "missing %s" % sorted(need - ops))
    collected = res.task_events("collect_evidence", PROD, ("quench.task.succeeded",))
    text = json.dumps(collected[0]["data"].get("detail")) if collected else ""
    others = ["2516839000000000001_6b7c8d9e-0f1a-4b2c-8d3e-4f5a6b7c8d9e",  # ARM_UnusedAccount...
              "2516839200000000003_9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"]  # VM_EICAR (Active)
    check("%s: events: collect_evidence reports the subscription's other active alerts" % p,
          all(o in text for o in others), "missing %s" % [o for o in others if o not in text])
    common(p, res, [env.sim.secret])
    return res


def write_set(res):
    tasks = res.tasks()
    return {k for k, s in tasks.items() if k[0] in e2e.WRITE_KINDS and s["terminal"]
            and s["terminal"][-1]["type"] == "quench.task.succeeded"}


def scenario_observe(env, enforce):
    p = "observe"
    res = e2e.respond(env, p, BASIC, read(ALERT_SUSPICIOUS_IP),
                      config={"policy": dict(PROTECTION, dry_run=True)})
    run_ok(p, res)
    reads = [x for x in res.log if x.get("service") in ("arm", "graph")]
    not_get = [e2e.describe(x) for x in reads if x.get("method") != "GET"]
    check("%s: the request log has only GETs (%d ARM/Graph requests; the evidence was read)"
          % (p, len(reads)), reads and not not_get, fmt(not_get))
    state_unchanged(p, res)
    proposed = {(e["data"]["task"]["kind"], e["data"]["task"]["target"]["id"].lower())
                for e in res.of_type("quench.task.proposed")
                if e["data"]["task"]["kind"] in e2e.WRITE_KINDS}
    not_observe = [(e["data"]["task"]["kind"], e["data"]["task"]["mode"])
                   for e in res.of_type("quench.task.proposed")
                   if e["data"]["task"]["kind"] in e2e.WRITE_KINDS
                   and e["data"]["task"]["mode"] != "observe"]
    check("%s: every write task is proposed in mode observe" % p,
          proposed and not not_observe, fmt(not_observe))
    ran = [(k, s["terminal"][-1]["type"], s["terminal"][-1]["data"].get("result"))
           for k, s in res.tasks().items() if k[0] in e2e.WRITE_KINDS and s["terminal"]
           and not (s["terminal"][-1]["type"] == "quench.task.skipped"
                    and "observe" in (s["terminal"][-1]["data"].get("result") or ""))]
    check("%s: every write task ends skipped with the observe reason" % p,
          proposed and not ran, fmt(ran))
    done = write_set(enforce) if enforce is not None else set()
    check("%s: the proposed tasks (kind, target) are exactly what enforce mode did on the same "
          "scenario (%d proposed, %d succeeded in enforce)" % (p, len(proposed), len(done)),
          proposed and proposed == done,
          "proposed only in observe:\n%s\nsucceeded only in enforce:\n%s"
          % (fmt(sorted(proposed - done)), fmt(sorted(done - proposed))))
    common(p, res)


def scenario_duplicates(env, baseline):
    p = "duplicates"
    alert = read(ALERT_SUSPICIOUS_IP)
    sent = []

    def hook(ctx, res, final):
        st = ctx["state"]
        boot = ctx["bootstrap"]

        def deliver(tag, values):
            if tag not in st:
                st[tag] = True
                e2e.produce(boot, e2e.INPUT, values)
                sent.append((tag, len(values)))
        if res.first("quench.contact.requested"):
            # 2nd delivery, and the status moving on as Defender reports it
            deliver("after-contact", [alert, e2e.with_status(alert, "InProgress")])
        if any(e["type"] == "quench.task.succeeded" and
               e["data"]["task"]["kind"] in e2e.WRITE_KINDS for e in res.events):
            # 3rd delivery in the middle of the mitigation, and the status again
            deliver("mid-mitigation", [alert, e2e.with_status(alert, "InProgress"),
                                       e2e.with_status(alert, "Active")])
        if final:
            deliver("after-close", [e2e.with_status(alert, "InProgress"), alert])
            return 4.0  # watch for late writes
        return 0.0

    res = e2e.respond(env, p, BASIC, alert, config={"policy": PROTECTION}, hook=hook)
    run_ok(p, res)
    check("%s: the alert was delivered 3 times (plus status updates and a late repeat)" % p,
          [t for t, _ in sent] == ["after-contact", "mid-mitigation", "after-close"], sent)
    counts = collections.Counter(e2e.write_signature(w) for w in res.writes())
    repeated = sorted((n, sig) for sig, n in counts.items()
                      if n > 1 and not sig[1].endswith("/runcommand"))
    check("%s: each write happened once (request log, %d writes by (method, path, body shape))"
          % (p, len(res.writes())), res.writes() and not repeated, fmt(repeated))
    if baseline is not None:
        base = collections.Counter(e2e.write_signature(w) for w in baseline.writes())
        diff = sorted(set(base) | set(counts))
        delta = [(sig, base[sig], counts[sig]) for sig in diff if base[sig] != counts[sig]]
        check("%s: the writes are exactly those of the single delivery (combined run), run "
              "commands included" % p, base and not delta,
              "(signature, single, repeated)\n" + fmt(delta))
    tasks = res.tasks()
    twice = [(k, len(s["proposed"]), len(s["terminal"])) for k, s in tasks.items()
             if len(s["proposed"]) > 1 or len(s["terminal"]) > 1]
    check("%s: no task was proposed or ended twice" % p, tasks and not twice, fmt(twice))
    finals = res.of_type(*e2e.FINAL)
    check("%s: one final event" % p, len(finals) == 1, [e["type"] for e in finals])
    contacts = res.of_type("quench.contact.requested")
    check("%s: the owner was contacted once" % p, len(contacts) == 1, len(contacts))
    combined_state(p, res)
    check_schema(p, res)
    check_exit(p, res)


def scenario_dismiss(env):
    p = "dismiss"
    alert = read(ALERT_SUSPICIOUS_IP)
    alert_id = json.loads(alert)["SystemAlertId"]
    res = e2e.respond(env, p, BASIC, alert, verdict="expected", config={"policy": PROTECTION})
    run_ok(p, res)
    rest_id = next((a["id"] for a in (res.before or {}).get("alerts", [])
                    if a["name"] == alert_id), "?")
    after = e2e.index(res.after, "alerts").get(rest_id.lower()) or {}
    check("%s: the alert's status is Dismissed in the simulator" % p,
          (after.get("properties") or {}).get("status") == "Dismissed",
          (after.get("properties") or {}).get("status"))
    w = res.writes()
    check("%s: the only write is the dismiss POST (request log)" % p,
          len(w) == 1 and w[0]["method"] == "POST" and
          e2e.path_of(w[0]).lower().endswith("/alerts/%s/dismiss" % alert_id.lower()),
          fmt(e2e.describe(x) for x in w))
    check_state(p, res, changed={"alerts": [rest_id]})
    kinds = sorted({e["data"]["task"]["kind"] for e in res.of_type("quench.task.proposed")}
                   - {"resolve_owner"})
    check("%s: only dismiss_alert is proposed after the contact (no evidence, no mitigation)" % p,
          kinds == ["dismiss_alert"], kinds)
    dismissed = res.first("quench.alert.dismissed")
    reqs = (dismissed or {}).get("data", {}).get("requests") or []
    ids = {x.get("request_id") for x in w}
    check("%s: quench.alert.dismissed carries the dismiss call's request id" % p,
          dismissed is not None and any(r.get("requestId") in ids for r in reqs), reqs)
    final = res.of_type(*e2e.FINAL)
    check("%s: the response closes" % p,
          final and final[-1]["type"] == "quench.response.closed",
          [e["type"] for e in final])
    verdict = res.first("quench.verdict.received")
    check("%s: quench.verdict.received records the verdict and who decided" % p,
          verdict and verdict["data"].get("verdict") == "expected" and
          verdict["data"].get("decidedBy") == "owner@contoso.com")
    common(p, res)


def scenario_deadline(env):
    p = "deadline"
    deadline = 2

    def hook(ctx, res, final):
        return 3.0 if final else 0.0  # nothing may happen after the escalation

    res = e2e.respond(env, p, BASIC, read(ALERT_SUSPICIOUS_IP), verdict=None, hook=hook,
                      config={"policy": PROTECTION, "contact": {"policies": {
                          "Medium": {"deadline_seconds": deadline, "on_timeout": "escalate"}}}})
    run_ok(p, res)
    esc = res.first("quench.response.escalated")
    contact = res.first("quench.contact.requested")
    ok = esc is not None and contact is not None
    detail = res.summary()
    if ok:
        gap = (parse_time(esc["time"]) - parse_time(contact["time"])).total_seconds()
        ok = gap >= deadline - 0.3 and "deadline" in esc["data"].get("reason", "")
        detail = "escalated %.2f s after the contact: %s" % (gap, esc["data"])
    check("%s: the Medium deadline (%d s, policy escalate) passing publishes "
          "quench.response.escalated" % (p, deadline), ok, detail)
    i_contact = res.index(lambda e: e["type"] == "quench.contact.requested")
    proposed = [e["data"]["task"]["kind"] for e in res.events[i_contact + 1:]
                if e["type"] == "quench.task.proposed"]
    check("%s: nothing is proposed after the contact (no evidence, no mitigation)" % p,
          i_contact >= 0 and not proposed, proposed)
    no_writes(p, res)
    state_unchanged(p, res)
    common(p, res)


def scenario_cancel(env):
    """The owner dismisses the alert in the portal while quench waits for the verdict: the
    status update cancels the response, and a late "unexpected" verdict changes nothing."""
    p = "cancel"
    alert = read(ALERT_SUSPICIOUS_IP)

    def hook(ctx, res, final):
        st = ctx["state"]
        if res.first("quench.contact.requested") and "dismissed" not in st:
            st["dismissed"] = True
            e2e.produce(ctx["bootstrap"], e2e.INPUT, [e2e.with_status(alert, "Dismissed")])
        if final and "late" not in st:
            st["late"] = True
            v = {"alertId": res.alert_id, "subscriptionId": res.subscription,
                 "verdict": "unexpected", "decidedBy": "ticket-bot", "comment": "late"}
            e2e.produce(ctx["bootstrap"], e2e.VERDICTS, [json.dumps(v).encode()])
            return 4.0
        return 0.0

    res = e2e.respond(env, p, BASIC, alert, verdict=None, hook=hook,
                      config={"policy": PROTECTION})
    run_ok(p, res)
    cancelled = res.of_type("quench.response.cancelled")
    check("%s: a status update to Dismissed cancels the response (quench.response.cancelled, "
          "status Dismissed)" % p,
          len(cancelled) == 1 and cancelled[0]["data"].get("status") == "Dismissed",
          res.summary())
    after = [e["type"] for e in res.events[res.index(
        lambda e: e["type"] == "quench.response.cancelled") + 1:]] if cancelled else []
    check("%s: the late verdict starts nothing (no task proposed after the cancellation)" % p,
          cancelled and "quench.task.proposed" not in after, after)
    no_writes(p, res)
    state_unchanged(p, res)
    common(p, res)


def scenario_forged(env):
    p = "forged"
    alert = read(ALERT_SUSPICIOUS_IP)
    real = json.loads(alert)["SystemAlertId"]
    forged_id = real[:-12] + "000000000000"
    alert = alert.replace(real.encode(), forged_id.encode())
    res = e2e.respond(env, p, BASIC, alert, config={"policy": PROTECTION})
    run_ok(p, res)
    check("%s: the owner was asked and answered unexpected (the forged record got that far)" % p,
          res.first("quench.contact.requested") and res.first("quench.verdict.received"),
          res.summary())
    lookups = [x for x in res.log if x.get("method") == "GET" and
               forged_id.lower() in e2e.path_of(x).lower() and "/alerts/" in e2e.path_of(x)]
    check("%s: provenance: the alert was read back from Microsoft.Security and not found" % p,
          lookups and all(x.get("status") == 404 for x in lookups),
          fmt(e2e.describe(x) for x in lookups))
    destructive = [e2e.describe(w) for w in res.writes()
                   if w["method"] == "DELETE" or e2e.path_of(w).lower().endswith("/reimage")]
    check("%s: no destructive write (delete, reimage)" % p, not destructive, fmt(destructive))
    no_writes(p, res, "no write at all (no disable, reset, revoke or run command either)")
    esc = res.of_type("quench.response.escalated")
    check("%s: the response escalates, naming provenance" % p,
          esc and ("Microsoft.Security" in esc[-1]["data"].get("reason", "") or
                   "provenance" in esc[-1]["data"].get("reason", "")),
          esc[-1]["data"] if esc else res.summary())
    done = [(e["data"]["task"]["kind"], e["data"]["task"]["target"].get("name"))
            for e in res.of_type("quench.task.succeeded")
            if e["data"]["task"]["kind"] in e2e.WRITE_KINDS]
    check("%s: no write task succeeded" % p, not done, fmt(done))
    state_unchanged(p, res)
    common(p, res)


def scenario_forged_entities(env):
    """A record with the real alert's id, type and CompromisedEntity, but entities swapped for
    others (alice, the subscription Owner, and the look-alike VM vm-app-02). The read-back finds
    the alert, so only a provenance check of the entities the plan acts on (or acting on the
    read-back alert's entities) can stop it. Removing the real footprint (found from creation
    times) is not held against it."""
    p = "forged-entities"
    alert = json.loads(read(ALERT_SUSPICIOUS_IP))
    alice = "a11ce000-1111-4222-8333-444455556666"
    for ent in alert["Entities"]:
        if ent.get("Type") == "account":
            ent.update({"Name": "alice", "AadUserId": alice})
        if ent.get("Type") == "host":
            ent.update({"HostName": "vm-app-02", "AzureID": VM_APP, "OSFamily": "Windows"})
        if ent.get("Type") == "azure-resource":
            ent.update({"ResourceId": VM_APP, "ResourceName": "vm-app-02"})
    alert["ExtendedProperties"]["Client principal name"] = "alice@contoso.com"
    res = e2e.respond(env, p, BASIC, json.dumps(alert, indent=2).encode(),
                      config={"policy": PROTECTION})
    run_ok(p, res)
    touched = [e2e.describe(w) for w in res.writes()
               if alice in e2e.path_of(w).lower() or "alice@" in e2e.path_of(w).lower()
               or e2e.path_of(w).lower().startswith(VM_APP.lower())]
    check("%s: nothing the real alert does not name is written (alice, vm-app-02)" % p,
          not touched, fmt(touched))
    untouched_principal(p, res, alice, "alice@contoso.com", "familiar Owner named only by the "
                        "forged record:")
    untouched_resource(p, res, VM_APP, "VM named only by the forged record:")
    esc = res.of_type("quench.response.escalated")
    reason = esc[-1]["data"].get("reason", "") if esc else ""
    check("%s: the response escalates, and its reason is the unconfirmed targets (not a cap)" % p,
          esc and "cap" not in reason and ("alice" in reason or "vm-app-02" in reason),
          "escalated: %r\ncaps: policy.caps default (per_alert 25); destructive writes in the "
          "log: %d" % (reason, len([w for w in res.writes() if w["method"] == "DELETE"])))
    check_schema(p, res)


def scenario_caps(env):
    """policy.caps.per_alert = 2 on the combined scenario: two destructive writes, then the
    remaining destructive tasks are skipped and the response escalates."""
    p = "caps"
    res = e2e.respond(env, p, BASIC, read(ALERT_SUSPICIOUS_IP),
                      config={"policy": dict(PROTECTION, caps={"per_alert": 2})})
    run_ok(p, res)
    destructive = [w for w in res.writes() if w.get("status") and w["status"] < 300 and
                   (w["method"] == "DELETE" or e2e.path_of(w).lower().endswith("/reimage"))]
    check("%s: exactly 2 destructive writes (request log)" % p, len(destructive) == 2,
          fmt(e2e.describe(w) for w in destructive))
    capped = [e for e in res.of_type("quench.task.skipped")
              if "cap reached" in (e["data"].get("result") or "")]
    planned = [k for k in res.tasks() if k[0] in DESTRUCTIVE]
    check("%s: the other destructive tasks are skipped with the cap reason (%d of %d)"
          % (p, len(capped), len(planned)),
          planned and len(capped) == len(planned) - 2,
          fmt((e["data"]["task"]["kind"], e["data"].get("result")) for e in capped))
    esc = res.of_type("quench.response.escalated")
    check("%s: the response escalates, naming the cap" % p,
          esc and "cap" in esc[-1]["data"].get("reason", ""), res.summary())
    check_user_contained(p, res, MALLORY, "mallory@contoso.com")
    check_schema(p, res)


def scenario_kill_switch(env):
    p = "kill_switch"
    res = e2e.respond(env, p, BASIC, read(ALERT_SUSPICIOUS_IP),
                      config={"policy": dict(PROTECTION, kill_switch=True)})
    run_ok(p, res)
    gated(p, res, "kill switch")
    no_writes(p, res)
    state_unchanged(p, res)
    common(p, res)


def scenario_scope(env):
    p = "scope"
    res = e2e.respond(env, p, BASIC, read(ALERT_SUSPICIOUS_IP),
                      config={"policy": dict(PROTECTION, allowed_subscriptions=[OPS])})
    run_ok(p, res)
    gated(p, res, "out of scope")
    no_writes(p, res)
    state_unchanged(p, res)
    common(p, res)


def gated(p, res, reason):
    tasks = res.tasks()
    writes_planned = {k: s for k, s in tasks.items() if k[0] in e2e.WRITE_KINDS}
    wrong = [(k[0], k[1].rsplit("/", 1)[-1],
              [(t["type"], t["data"].get("result") or (t["data"].get("error") or {}).get(
                  "message")) for t in s["terminal"]])
             for k, s in writes_planned.items()
             if len(s["terminal"]) != 1 or s["terminal"][0]["type"] != "quench.task.skipped"
             or reason not in (s["terminal"][0]["data"].get("result") or "")]
    missing = sorted(set((k, t.lower()) for k, t in COMBINED_TASKS) - set(writes_planned))
    check("%s: the full plan is proposed (%d write tasks)" % (p, len(writes_planned)),
          writes_planned and not missing, "missing:\n" + fmt(missing))
    check("%s: every write task ends skipped with the reason '%s'" % (p, reason),
          writes_planned and not wrong, fmt(wrong))


# ------------------------------------------------------------------------- main

GROUPS = ("users", "subscriptions", "vms", "combined", "dismiss", "deadline", "cancel",
          "forged", "kill_switch", "scope", "caps")


def run_group(env, name):
    if name == "users":
        scenario_users(env)
    elif name == "subscriptions":
        scenario_subscriptions(env)
    elif name == "vms":
        scenario_vms(env)
    elif name == "combined":
        base = scenario_combined(env)
        scenario_observe(env, base)
        scenario_duplicates(env, base)
    elif name == "dismiss":
        scenario_dismiss(env)
    elif name == "deadline":
        scenario_deadline(env)
    elif name == "cancel":
        scenario_cancel(env)
    elif name == "forged":
        scenario_forged(env)
        scenario_forged_entities(env)
    elif name == "caps":
        scenario_caps(env)
    elif name == "kill_switch":
        scenario_kill_switch(env)
    elif name == "scope":
        scenario_scope(env)
    else:
        raise SystemExit("unknown group %r (one of %s)" % (name, ", ".join(GROUPS)))


def main():
    h.install_signal_handlers()
    names = sys.argv[1:] or list(GROUPS)
    for n in names:
        if n not in GROUPS:
            raise SystemExit("unknown group %r (one of %s)" % (n, ", ".join(GROUPS)))
    start = time.monotonic()
    env = None
    try:
        env = e2e.Env()
        for n in names:
            t = time.monotonic()
            h.log("group %s" % n)
            try:
                run_group(env, n)
            except Exception as e:
                C.check("%s: the test itself ran" % n, False,
                        "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
            h.log("group %s took %.1f s" % (n, time.monotonic() - t))
    finally:
        if env is not None:
            env.close()
    h.log("total %.1f s" % (time.monotonic() - start))
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
