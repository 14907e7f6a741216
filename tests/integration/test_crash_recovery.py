#!/usr/bin/python3
"""Crash recovery: quench is killed with SIGKILL in the middle of a stream of Resource Manager
alerts, restarted in the same consumer group, and must end with every alert fully answered:
contact.requested, every task.proposed and response.closed, with exactly the event ids
`quench plan` gives (duplicates of an id are allowed after a crash, a missing id is not). A
second phase stops the worker with SIGTERM mid-stream: it must exit 0 within its shutdown
budget, what it committed must be complete, and after a restart nothing is missing or repeated.

Phase 1 (kill -9), on its own quench-devkafka:
  * a backlog of BACKLOG alerts, then KILLS times: start the worker (same group), produce new
    alerts at RATE alerts/s in chunks of 5, and right after the first chunk produced once a
    response.closed of this wave had appeared, SIGKILL the worker. After the dead worker's last
    records settle, some but not all alerts of the wave must be closed (the kill came
    mid-stream), and the at-least-once invariant must hold: alerts below the committed input
    offsets have work records, work records below the committed work offsets have all events.
  * BACKLOG more alerts, a final restart, which must complete everything; the time from its
    spawn to the last missing event is restart_to_complete_ms. Then SIGTERM: exit 0, committed
    offsets = high watermarks.
Phase 2 (SIGTERM), on a fresh quench-devkafka: backlog, start, steady wave, SIGTERM at the same
point; exit 0 within the budget, the invariant, restart, completeness, and no repeated event.

Volumes stay well under the mock cluster's retention (about 5 MB per partition, oldest segments
dropped beyond it); the test checks that nothing was dropped.

Ends with `figures: alerts=N kills=K lost=L duplicate_events=D restart_to_complete_ms=T` and
"N passed, M failed". Environment: QN_IT_KILLS (default 3), QN_IT_BACKLOG (default 60),
QN_IT_RATE (alerts/s during a wave, default 60).
"""

import collections
import json
import os
import sys
import time
import traceback

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

INPUT = "defender.alerts"
WORK = "quench.work"
OUTCOMES = "quench.outcomes"
CLOSED = "quench.response.closed"
BUDGET_MS = 10000
KAFKA = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
KILLS = int(os.environ.get("QN_IT_KILLS", "3"))
BACKLOG = int(os.environ.get("QN_IT_BACKLOG", "60"))
RATE = int(os.environ.get("QN_IT_RATE", "40"))        # alerts per second while a wave runs
MIN_WAVE_S = 3.0        # a wave lasts at least this long: auto-commit (1 s) gets to run
CHUNK = 5
MAX_WAVE = 300
SUBSCRIPTIONS = 37
TEMPLATE = os.path.join(h.DATA_DIR, "alerts", "arm-flat-suspicious-ip.json")

C = h.Checks()


class Alerts:
    """Generated alerts and what `quench plan` expects for each."""

    def __init__(self, namespace):
        self.ns = namespace
        self.next = 0
        self.data = {}          # alert id -> bytes (made, maybe not produced)
        self.expected = {}      # alert id -> {event id: event}
        self.index = {}         # alert id -> sequence number
        self.coords = {}        # alert id -> (partition, offset), once produced
        self.order = []         # produced alert ids, in production order

    def make(self, n):
        """n new alerts (not produced yet) with their expected events."""
        out = []
        for _ in range(n):
            i = self.next
            self.next += 1
            aid = h.alert_id_for(self.ns, i)
            self.data[aid] = h.make_alert(TEMPLATE, aid, h.subscription_for(self.ns, i %
                                                                            SUBSCRIPTIONS))
            self.index[aid] = i
            out.append(aid)
        # NDJSON chunks well under ingest.max_record_bytes.
        for k in range(0, len(out), 100):
            chunk = out[k:k + 100]
            data = b"\n".join(json.dumps(json.loads(self.data[a])).encode() for a in chunk)
            res = h.quench_plan(data=data)
            for a in chunk:
                self.expected[a] = {}
            for e in res.events:
                self.expected[e["data"]["alertId"]][e["id"]] = e
            for a in chunk:
                types = collections.Counter(e["type"] for e in self.expected[a].values())
                if types["quench.contact.requested"] != 1 or types[CLOSED] != 1 or \
                        types["quench.task.proposed"] < 2:
                    raise RuntimeError("quench plan gave %s for %s" % (dict(types), a))
        return out

    def produce(self, prod, ids):
        recs = [{"value": self.data[a], "partition": self.index[a] % 4} for a in ids]
        for a, c in zip(ids, prod.send(INPUT, recs)):
            self.coords[a] = c
            self.order.append(a)

    def all_event_ids(self, ids=None):
        out = {}
        for a in (ids if ids is not None else self.order):
            for eid in self.expected[a]:
                out[eid] = a
        return out


def steady_wave(alerts, prod, watch, worker, chunk=CHUNK, rate=RATE, max_alerts=MAX_WAVE,
                min_s=MIN_WAVE_S):
    """Produces new alerts in chunks at `rate` alerts/s while the worker runs, and returns right
    after the first chunk that was produced once a response.closed of this wave had appeared
    and at least min_s seconds passed. At max_alerts it stops producing and returns at the
    first response.closed of the wave. The caller stops the worker at once, in the middle of
    the wave."""
    pool = alerts.make(max_alerts)
    ids = []
    period = chunk / float(rate)
    due = start = time.monotonic()
    while len(ids) < max_alerts:
        if not worker.alive():
            raise RuntimeError("%s exited (%s):\n%s" % (worker.name, worker.proc.returncode,
                                                        worker.log_tail(10)))
        some_closed = watch.closed_among(ids) > 0 and time.monotonic() - start >= min_s
        batch = pool[len(ids):len(ids) + chunk]
        alerts.produce(prod, batch)
        ids += batch
        if some_closed:
            return ids
        due += period
        time.sleep(max(0.0, due - time.monotonic()))
    # A slow worker (a loaded machine): stop producing, wait for its first closed response.
    def closed():
        if not worker.alive():
            raise RuntimeError("%s exited (%s):\n%s" % (worker.name, worker.proc.returncode,
                                                        worker.log_tail(10)))
        return watch.closed_among(ids) > 0
    h.wait_until(closed, 120, interval=0.01, desc="a response.closed of the wave")
    return ids


class Watch:
    """Incremental view of quench.outcomes through a harness.Tail."""

    def __init__(self, bootstrap):
        self.tail = h.Tail(bootstrap, OUTCOMES)
        self.done = 0
        self.ids = collections.Counter()
        self.closed = set()

    def update(self):
        msgs = self.tail.snapshot()
        for m in msgs[self.done:]:
            ev = json.loads(m.value)
            self.ids[ev["id"]] += 1
            if ev["type"] == CLOSED:
                self.closed.add(ev["data"]["alertId"])
        self.done = len(msgs)
        return self

    def closed_among(self, ids):
        self.update()
        return sum(1 for a in ids if a in self.closed)

    def missing(self, expected_ids):
        self.update()
        return [e for e in expected_ids if self.ids[e] == 0]

    def settle(self, idle=1.5, timeout=60):
        """Waits until nothing new arrived for `idle` seconds."""
        state = {"n": -1, "t": time.monotonic()}

        def quiet():
            n = len(self.tail.snapshot())
            if n != state["n"]:
                state["n"], state["t"] = n, time.monotonic()
                return False
            return time.monotonic() - state["t"] >= idle
        h.wait_until(quiet, timeout, interval=0.1, desc="quench.outcomes to settle")
        return self.update()

    def close(self):
        self.tail.close()


def start_worker(dk, group, tmp, name):
    w = h.Worker(dk.bootstrap, group, tmp, kafka=KAFKA, budget_ms=BUDGET_MS, name=name)
    return w


def wait_complete(watch, expected_ids, worker, timeout=180):
    def complete():
        if not worker.alive():
            raise RuntimeError("%s exited (%s):\n%s" % (worker.name, worker.proc.returncode,
                                                        worker.log_tail(10)))
        return not watch.missing(expected_ids)
    h.wait_until(complete, timeout, interval=0.05, desc="every expected outcome event")


def final_checks(dk, alerts, group, what):
    """Authoritative read of the topics; returns (missing events, duplicate events)."""
    expected = alerts.all_event_ids()
    gone = h.truncated(dk.bootstrap, (INPUT, WORK, OUTCOMES))
    C.check("%s: quench-devkafka kept every record (the test stays under the mock cluster's "
            "5 MB per partition)" % what, not gone, "low watermarks: %s" % gone)
    outcomes = h.consume_all(dk.bootstrap, OUTCOMES, idle=2.0, deadline=120)
    events = h.parse_events(outcomes)
    probs = h.schema_errors(outcomes)
    C.check("%s: every outcome event is valid against outcome.schema.json (%d events)"
            % (what, len(outcomes)), not probs, "\n".join(probs[:10]))
    ids = collections.Counter(ev["id"] for _, ev in events if ev)
    missing = [e for e in expected if ids[e] == 0]
    by_alert = collections.Counter(expected[e] for e in missing)
    C.check("%s: every alert has every expected event (%d alerts, %d events)"
            % (what, len(alerts.order), len(expected)), not missing,
            "%d events missing for %d alerts, e.g. %s" % (len(missing), len(by_alert),
                                                          list(by_alert.items())[:5]))
    unexpected = [i for i in ids if i not in expected]
    C.check("%s: no event with an unexpected id" % what, not unexpected, str(unexpected[:10]))
    dups = sum(n - 1 for n in ids.values() if n > 1)
    copies = collections.Counter(ids.values())
    h.log("%s: copies per event id: %s" % (what, dict(sorted(copies.items()))))
    first = {}
    differ = []
    for m, ev in events:
        if not ev:
            continue
        body = dict(ev, time=None)
        if ev["id"] in first and first[ev["id"]] != body:
            differ.append(ev["id"])
        first.setdefault(ev["id"], body)
        if (m.key or b"").decode() != ev["data"].get("alertId"):
            differ.append("%s keyed %r" % (ev["id"], m.key))
    C.check("%s: repeated events are identical but for time, and keyed by alert id" % what,
            not differ, str(differ[:10]))
    plan_diff = [eid for eid, a in expected.items()
                 if eid in first and first[eid] != dict(alerts.expected[a][eid], time=None)]
    C.check("%s: events equal quench plan's (but for time)" % what, not plan_diff,
            str(plan_diff[:10]))
    work = h.consume_all(dk.bootstrap, WORK, idle=1.0, deadline=120)
    per_alert = collections.Counter(h.header(m, "quench.alert-id") for m in work)
    lost = [a for a in alerts.order if per_alert[a] == 0]
    C.check("%s: every alert has a work record (%d records for %d alerts)"
            % (what, len(work), len(alerts.order)), not lost, "lost: %s" % lost[:10])
    extra = [a for a in per_alert if a not in alerts.data]
    C.check("%s: no work record for an unknown alert" % what, not extra, str(extra[:10]))
    return len(missing), dups, outcomes


def check_committed_complete(dk, group, alerts, watch, what):
    """The at-least-once invariant at a stop or crash point, once the dead worker's last
    records settled: every alert below the group's committed defender.alerts offsets has a work
    record, and every work record below the committed quench.work offsets has all its outcome
    events. Returns (alerts committed on input, work records committed)."""
    com_in = h.committed(dk.bootstrap, group, INPUT)
    below_in = [a for a in alerts.order
                if alerts.coords[a][1] < com_in.get(alerts.coords[a][0], -1)]
    work = h.consume_all(dk.bootstrap, WORK, idle=0.5, deadline=60)
    has_work = set(h.header(m, "quench.alert-id") for m in work)
    no_work = [a for a in below_in if a not in has_work]
    com_w = h.committed(dk.bootstrap, group, WORK)
    below_w = [m for m in work if m.offset < com_w.get(m.partition, -1)]
    incomplete = sorted(set(h.header(m, "quench.alert-id") for m in below_w
                            if watch.missing(list(alerts.expected.get(
                                h.header(m, "quench.alert-id"), {"?": None})))))
    C.check("%s: every alert below the committed input offsets has a work record (%d of %d "
            "committed)" % (what, len(below_in), len(alerts.order)), not no_work,
            "%d without, e.g. %s" % (len(no_work), no_work[:3]))
    C.check("%s: every work record below the committed work offsets has all its events (%d of "
            "%d committed)" % (what, len(below_w), len(work)), not incomplete,
            "%d incomplete, e.g. %s" % (len(incomplete), incomplete[:3]))
    return len(below_in), len(below_w)


def check_offsets(dk, group, what):
    for topic in (INPUT, WORK):
        com = h.committed(dk.bootstrap, group, topic)
        hw = h.high_watermarks(dk.bootstrap, topic)
        norm = {p: (o if o >= 0 else 0) for p, o in com.items()}
        C.check("%s: committed offsets of %s equal the high watermarks" % (what, topic),
                norm == hw, "committed %s\nhigh      %s" % (com, hw))


def terminate(w, what):
    rc, elapsed, killed = w.terminate()
    C.check("%s: SIGTERM: exit 0 within the shutdown budget (%d ms, budget %d ms)"
            % (what, elapsed, BUDGET_MS), rc == 0 and not killed and elapsed <= BUDGET_MS,
            "exit %s after %d ms%s\n%s" % (rc, elapsed, " (SIGKILLed)" if killed else "",
                                            w.log_tail(8)))
    C.check("%s: log says 'committed and left the consumer group'" % what,
            w.log_has("committed and left the consumer group"), w.log_tail(5))
    return rc, elapsed


# ------------------------------------------------------------------------- phase 1: kill -9

def phase_kill(fig):
    tmp = h.make_tmpdir("qn-it-crash-")
    group = "qn-it-crash"
    dk = h.DevKafka(os.path.join(tmp))
    prod = h.Prod(dk.bootstrap)
    watch = Watch(dk.bootstrap)
    alerts = Alerts("crash")
    w = None
    try:
        h.log("phase 1: devkafka at %s" % dk.bootstrap)
        backlog = alerts.make(BACKLOG)
        alerts.produce(prod, backlog)
        kills = mid_kills = 0
        committed_before = 0
        for k in range(1, KILLS + 1):
            w = start_worker(dk, group, tmp, "crash-%d" % k)
            w.wait_ready(timeout=90)
            ids = steady_wave(alerts, prod, watch, w)
            rc = w.kill9()
            kills += 1
            w = None
            at_kill = watch.closed_among(ids)
            watch.settle()
            after = watch.closed_among(ids)
            mid = 0 < after < len(ids)
            mid_kills += mid
            h.log("kill %d (exit %s): %d alerts produced in the wave, %d closed seen at the "
                  "kill, %d after settling" % (k, rc, len(ids), at_kill, after))
            C.check("phase 1 kill %d came mid-stream: %d of %d alerts of the wave closed"
                    % (k, after, len(ids)), mid)
            n_in, _ = check_committed_complete(dk, group, alerts, watch, "phase 1 kill %d" % k)
            C.check("phase 1 kill %d: the worker committed progress before it was killed "
                    "(auto-commit every 1 s; %d -> %d alerts committed)" % (k, committed_before,
                                                                          n_in),
                    n_in > committed_before)
            committed_before = n_in
        tail_alerts = alerts.make(BACKLOG)
        alerts.produce(prod, tail_alerts)   # waiting for the restarted worker
        t0 = h.now_ms()
        w = start_worker(dk, group, tmp, "crash-final")
        expected = alerts.all_event_ids()
        h.log("final restart: %d of %d events missing before it"
              % (len(watch.missing(expected)), len(expected)))
        try:
            wait_complete(watch, expected, w)
            restart_ms = h.now_ms() - t0
        except h.WaitTimeout as e:
            restart_ms = -1
            h.log(str(e))
        C.check("phase 1: after the last restart every expected event appeared (%d ms)"
                % restart_ms, restart_ms >= 0)
        missing, dups, _ = final_checks(dk, alerts, group, "phase 1")
        terminate(w, "phase 1")
        w = None
        check_offsets(dk, group, "phase 1")
        fig.update(alerts=fig["alerts"] + len(alerts.order), kills=kills,
                   lost=fig["lost"] + missing, duplicate_events=fig["duplicate_events"] + dups,
                   restart_to_complete_ms=restart_ms)
        h.log("phase 1: %d alerts, %d kills, %d duplicate events" % (len(alerts.order), kills,
                                                                      dups))
    finally:
        watch.close()
        prod.close()
        if w is not None:
            w.kill9()
        dk.stop()


# ------------------------------------------------------------------------- phase 2: SIGTERM

def phase_sigterm(fig):
    tmp = h.make_tmpdir("qn-it-term-")
    group = "qn-it-term"
    dk = h.DevKafka(os.path.join(tmp))
    prod = h.Prod(dk.bootstrap)
    watch = Watch(dk.bootstrap)
    alerts = Alerts("term")
    w = None
    try:
        h.log("phase 2: devkafka at %s" % dk.bootstrap)
        alerts.produce(prod, alerts.make(BACKLOG))
        w = start_worker(dk, group, tmp, "term-1")
        w.wait_ready(timeout=90)
        ids = steady_wave(alerts, prod, watch, w)
        rc, elapsed = terminate(w, "phase 2 stop")
        w = None
        watch.settle()
        after = watch.closed_among(ids)
        h.log("SIGTERM: exit %s after %d ms; %d of %d alerts of the wave closed"
              % (rc, elapsed, after, len(ids)))
        C.check("phase 2: the SIGTERM came mid-stream: %d of %d alerts of the wave closed"
                % (after, len(ids)), 0 < after < len(ids))
        check_committed_complete(dk, group, alerts, watch, "phase 2 stop")
        alerts.produce(prod, alerts.make(BACKLOG))
        w = start_worker(dk, group, tmp, "term-final")
        try:
            wait_complete(watch, alerts.all_event_ids(), w)
        except h.WaitTimeout as e:
            h.log(str(e))
        missing, dups, _ = final_checks(dk, alerts, group, "phase 2")
        C.equal("phase 2: no repeated event after a graceful stop and restart", dups, 0)
        terminate(w, "phase 2 final")
        w = None
        check_offsets(dk, group, "phase 2")
        fig.update(alerts=fig["alerts"] + len(alerts.order), lost=fig["lost"] + missing,
                   duplicate_events=fig["duplicate_events"] + dups)
    finally:
        watch.close()
        prod.close()
        if w is not None:
            w.kill9()
        dk.stop()


def main():
    h.install_signal_handlers()
    h.check_binaries()
    t0 = time.monotonic()
    fig = {"alerts": 0, "kills": 0, "lost": 0, "duplicate_events": 0,
           "restart_to_complete_ms": -1}
    for name, phase in (("phase 1 (kill -9)", phase_kill), ("phase 2 (SIGTERM)", phase_sigterm)):
        t = time.monotonic()
        try:
            phase(fig)
        except Exception as e:
            traceback.print_exc()
            C.error("%s ran to completion" % name, e)
        h.log("%s took %.1f s" % (name, time.monotonic() - t))
    C.check("at least 200 distinct alerts went through the crashes", fig["alerts"] >= 200,
            str(fig["alerts"]))
    h.log("total %.1f s" % (time.monotonic() - t0))
    print("figures: alerts=%d kills=%d lost=%d duplicate_events=%d restart_to_complete_ms=%d"
          % (fig["alerts"], fig["kills"], fig["lost"], fig["duplicate_events"],
             fig["restart_to_complete_ms"]), flush=True)
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
