#!/usr/bin/python3
"""End-to-end pipeline test: quench-devkafka + one `quench run`, a mixed input stream produced
with kcat, and every effect checked against `quench plan` (the offline oracle).

Stages
  A  the mixed stream: every file of tests/data/alerts and tests/data/hostile (README.md aside),
     a duplicate of an alert, a status update (Dismissed) after its alert, every verdict fixture
     (valid and bad-*), and a generated JSON array batch with one bad element among good ones
     (multi-line, UTF-8, tricky strings). Checks: outcome events per key (ids and content equal
     `quench plan`'s, rejected ones derived for their real coordinates), DLQ records (bytes, key,
     headers), work records (keys, headers, bytes), schema validity, no duplicate ids, /metrics,
     /healthz, /readyz.
  C1 SIGTERM: exit 0 within the shutdown budget, the leave-group log line, committed offsets of
     defender.alerts, quench.verdicts and quench.work equal their high watermarks.
  R  restart in the same group and feed one marker alert per input partition: nothing committed
     is read again (consumed counters, no repeated outcome event).
  B  oversized input: a 1.5 MiB alert and a 1.1 MiB batch of small alerts (reject too_big,
     original bytes in the DLQ), and a valid 1,030,000-byte alert (under the 1 MiB limit: must be
     forwarded and answered). The worker must stay up.
  C2 SIGTERM again: exit 0, offsets committed up to the high watermarks.

Prints PASS/FAIL per check and ends with "N passed, M failed"; exit status 1 on any failure.
"""

import collections
import glob
import hashlib
import json
import os
import sys
import time
import traceback

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

GROUP = "qn-it-pipeline"
BUDGET_MS = 10000
# Short session timeout: a restarted member does not wait 45 s for a dead one. (Harmless for
# the producer side, which ignores consumer properties.)
KAFKA = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
MAX_RECORD_BYTES = 1048576
INPUT = "defender.alerts"
VERDICTS = "quench.verdicts"
WORK = "quench.work"
OUTCOMES = "quench.outcomes"
DLQ = "quench.dlq"
ALERT_TYPES = ("quench.contact.requested", "quench.task.proposed", "quench.response.closed",
               "quench.response.cancelled")
REJECTED = "quench.record.rejected"

C = h.Checks()


# ------------------------------------------------------------------------- record splitting
# A Python mirror of ingest's envelope rules, used only to find each record's index and exact
# byte span inside a value (the oracle for DLQ and work bytes) and to classify skips. Its counts
# are cross-checked against `quench plan` for every value.

JSON_WS = " \t\r\n"
_dec = json.JSONDecoder()


def _skip_ws(t, i):
    while i < len(t) and t[i] in JSON_WS:
        i += 1
    return i


def _array_elements(t, i):
    out = []
    i = _skip_ws(t, i + 1)
    if t[i] == "]":
        return out
    while True:
        obj, end = _dec.raw_decode(t, i)
        out.append((obj, t[i:end]))
        i = _skip_ws(t, end)
        if t[i] == ",":
            i = _skip_ws(t, i + 1)
            continue
        return out


def _ci(obj, key):
    if not isinstance(obj, dict):
        return None
    for k, v in obj.items():
        if k.lower() == key.lower():
            return v
    return None


def _document(t, base):
    """Records of one JSON document: [(index, obj, span text, whole)]."""
    doc = json.loads(t)
    start = _skip_ws(t, 0)
    if isinstance(doc, list):
        els = _array_elements(t, start)
    elif isinstance(doc, dict) and len(doc) == 1 and isinstance(_ci(doc, "records"), list):
        i = _skip_ws(t, start + 1)
        _, i = _dec.raw_decode(t, i)          # the "records" key
        i = _skip_ws(t, _skip_ws(t, i) + 1)  # past ':'
        els = _array_elements(t, i)
    else:
        return [(base, doc, t.strip(JSON_WS), True)]
    return [(base + k, o, s, False) for k, (o, s) in enumerate(els)]


def split_value(data):
    """[(index, obj or None, span bytes, whole)]; whole: the record is the entire value, so the
    worker may report it with or without surrounding whitespace."""
    if len(data) > MAX_RECORD_BYTES:
        return [(0, None, data, True)]
    try:
        t = data.decode("utf-8")
    except UnicodeDecodeError:
        return [(0, None, data, True)]
    if not t.strip(JSON_WS):
        return [(0, None, data, True)]
    try:
        recs = _document(t, 0)
    except ValueError:
        recs = None
    if recs is None:
        lines = [ln.strip(JSON_WS) for ln in t.split("\n")]
        lines = [ln for ln in lines if ln]
        parsed_any = False
        out, idx = [], 0
        for ln in lines:
            try:
                r = [(i, o, s, False) for i, o, s, _ in _document(ln, idx)]
                parsed_any = parsed_any or ln[0] in "{["
            except ValueError:
                r = [(idx, None, ln, False)]
            out += r
            idx += len(r)
        if "\n" not in t or not parsed_any:
            return [(0, None, data, True)]
        recs = out
    return [(i, o, s.encode("utf-8"), w) for i, o, s, w in recs]


def classify(obj):
    """('forward', alert id, status) | ('skip', reason) | ('reject', None) for a record that
    the worker did not reject."""
    from validate import looks_like_alert
    if looks_like_alert(obj):
        flat = _ci(obj, "SystemAlertId") is not None or _ci(obj, "AlertType") is not None
        body = obj if flat else _ci(obj, "properties")
        atype = _ci(body, "AlertType")
        if isinstance(atype, str) and not (atype.lower().startswith("arm_")
                                           or atype.lower().startswith("rm_")):
            return ("skip", "not_resource_manager")
        if _ci(body, "IsSnapshot") is True:
            return ("skip", "snapshot")
        status = str(_ci(body, "Status") or "").lower()
        status = status if status in ("dismissed", "resolved", "inprogress") else "active"
        return ("forward", _ci(body, "SystemAlertId"), status)
    dtype = str(_ci(obj, "$type") or "")
    rtype = str(_ci(obj, "type") or "")
    if "subassessment" in dtype.lower() or "/subassessments" in rtype.lower():
        return ("skip", "sub_assessment")
    if "regulatorycompliance" in rtype.lower():
        return ("skip", "compliance")
    if "securescore" in rtype.lower():
        return ("skip", "secure_score")
    if "microsoft.security/assessments" in rtype.lower() or \
            _ci(obj, "assessmentEventDataEnrichment") is not None:
        return ("skip", "assessment")
    return ("reject", None)


# ------------------------------------------------------------------------- the stream

class Value:
    def __init__(self, seq, topic, partition, key, data, label):
        self.seq, self.topic, self.partition, self.key = seq, topic, partition, key
        self.data, self.label = data, label
        self.offset = None      # known after reading the topic back
        self.bad_span = None    # for the generated batch: the bad element's exact bytes


def generated_batch(tmp):
    """[good, bad, good] as a multi-line JSON array with irregular whitespace; the bad element
    (a '/../' resource id) holds UTF-8 and JSON-looking characters inside strings."""
    tpl = os.path.join(h.DATA_DIR, "alerts", "arm-flat-runbook.json")
    sub = h.subscription_for("pipeline-batch", 0)
    good1 = h.make_alert(tpl, h.alert_id_for("pipeline-batch", 1), sub)
    good2 = h.make_alert(tpl, h.alert_id_for("pipeline-batch", 2), sub.upper())

    def spoil(obj):
        obj["AzureResourceId"] = "/subscriptions/%s/resourceGroups/rg-x/../providers/" \
                                 "Microsoft.Automation/automationAccounts/aa" % sub
        obj["Description"] = 'Überraschung ✓ "quoted" ], {"not": "a record"} \\ end'
    bad = json.dumps(json.loads(h.make_alert(tpl, h.alert_id_for("pipeline-batch", 3), sub,
                                             spoil)), ensure_ascii=False).encode("utf-8")
    data = b"[\n  " + good1 + b" ,\n\t" + bad + b"\n,  " + good2 + b"\n]\n"
    return data, bad


def build_stream(tmp):
    """The values of stage A in production order. Partition 0 starts with an alert, its
    duplicate and its Dismissed update, in that order (their relative order matters)."""
    alerts_dir = os.path.join(h.DATA_DIR, "alerts")
    first = [("alerts/arm-flat-suspicious-ip.json", "alert-ip"),
             ("demo/04-duplicate-of-01.json", "alert-ip-duplicate"),
             ("alerts/status-dismissed.json", "alert-ip-dismissed")]
    rest = sorted(os.path.relpath(p, h.DATA_DIR) for p in
                  glob.glob(os.path.join(alerts_dir, "*")) + glob.glob(
                      os.path.join(h.DATA_DIR, "hostile", "*"))
                  if os.path.basename(p) != "README.md")
    rest = [r for r in rest if r not in (first[0][0], first[2][0])]
    values = []
    seq = 0
    for rel, key in first:
        with open(os.path.join(h.DATA_DIR, rel), "rb") as f:
            values.append(Value(seq, INPUT, 0, key, f.read(), rel))
        seq += 1
    for i, rel in enumerate(rest):
        with open(os.path.join(h.DATA_DIR, rel), "rb") as f:
            data = f.read()
        key = None if rel.endswith("not-json.txt") else "key-%d" % seq
        values.append(Value(seq, INPUT, (i + 1) % 4, key, data, rel))
        seq += 1
    data, bad = generated_batch(tmp)
    v = Value(seq, INPUT, 2, "key-batch", data, "generated array batch")
    v.bad_span = bad
    values.append(v)
    seq += 1
    for i, path in enumerate(sorted(glob.glob(os.path.join(h.DATA_DIR, "verdicts", "*.json")))):
        with open(path, "rb") as f:
            values.append(Value(seq, VERDICTS, i % 4, "verdict-%d" % seq, f.read(),
                                os.path.relpath(path, h.DATA_DIR)))
        seq += 1
    return values


def produce_with_kcat(bootstrap, values, tmpdir):
    """One kcat run per value (its own key and a qt.seq header to find it again), in order."""
    for v in values:
        h.kcat_produce(bootstrap, v.topic, values=[v.data], partition=v.partition, key=v.key,
                       headers={"qt.seq": str(v.seq)}, tmpdir=tmpdir)


def locate(bootstrap, values, topics):
    """Reads the input topics back and fills in each value's offset (via its qt.seq header)."""
    by_seq = {v.seq: v for v in values}
    for topic in topics:
        want = sum(1 for v in values if v.topic == topic)
        msgs = h.consume_all(bootstrap, topic, idle=0.5, deadline=60, min_count=want)
        for m in msgs:
            seq = h.header(m, "qt.seq")
            if seq is not None and int(seq) in by_seq:
                v = by_seq[int(seq)]
                C.check("input %s landed where it was sent" % v.label,
                        m.partition == v.partition and m.value == v.data and
                        (m.key or None) == (v.key.encode() if v.key else None),
                        "partition %d, %d bytes" % (m.partition, len(m.value or b"")))
                v.offset = m.offset
    missing = [v.label for v in values if v.offset is None and v.seq in by_seq]
    if missing:
        raise RuntimeError("values not found on their topics: %s" % missing)


# ------------------------------------------------------------------------- expectations

class Expect:
    def __init__(self):
        self.events = {}            # event id -> (key, plan event or None, extra)
        self.rejects = []           # dicts: label topic partition offset index reason message
        #                             key span whole alert_id
        self.work = []              # dicts: key kind alert_id source span whole
        self.skips = collections.Counter()
        self.dlq_reasons = collections.Counter()
        self.forwarded = 0
        self.consumed = collections.Counter()
        self.planned = 0
        self.cancelled = 0
        self.verdicts_recorded = 0


def expectations(values):
    """Runs `quench plan` per input value and derives every expected effect."""
    ex = Expect()
    seen = {}          # (alert id, status) -> partition of the first occurrence
    oracle_ok = True
    derive_ok = True
    for v in values:
        ex.consumed[v.topic] += 1
        recs = split_value(v.data)
        if v.topic == VERDICTS:
            name = os.path.basename(v.label)
            if name.startswith("bad-"):
                ex.rejects.append(dict(label=v.label, topic=v.topic, partition=v.partition,
                                       offset=v.offset, index=0, reason="invalid_verdict",
                                       message=None,
                                       key=v.key, span=recs[0][2], whole=True, alert_id=None))
                ex.dlq_reasons["invalid_verdict"] += 1
            else:
                obj = json.loads(v.data)
                ex.work.append(dict(label=v.label, key=obj["subscriptionId"].lower(),
                                    kind="verdict",
                                    alert_id=obj["alertId"],
                                    source="%s/%d/%d/0" % (v.topic, v.partition, v.offset),
                                    span=recs[0][2], whole=True))
                ex.forwarded += 1
                ex.verdicts_recorded += 1
            continue
        plan = h.quench_plan(data=v.data)
        plan_rejects = {idx: (reason, msg) for idx, reason, msg in plan.rejects}
        plan_rejected_events = {e["data"]["record"]["index"]: e for e in plan.events
                                if e["type"] == REJECTED}
        n_fwd = n_skip = n_rej = 0
        local_seen = set()
        by_index = {r[0]: r for r in recs}
        for idx, (reason, msg) in sorted(plan_rejects.items()):
            n_rej += 1
            rec = by_index.get(idx)
            span, whole = (rec[2], rec[3]) if rec else (v.data, True)
            if v.bad_span is not None:      # the generated batch: its bad element is known
                oracle_ok = oracle_ok and span == v.bad_span
                span, whole = v.bad_span, False
            pev = plan_rejected_events.get(idx)
            if pev is not None:
                ok = pev["id"] == h.rejected_event_id(INPUT, 0, 0, idx)
                derive_ok = derive_ok and ok
            ex.rejects.append(dict(label=v.label, topic=v.topic, partition=v.partition,
                                   offset=v.offset, index=idx, reason=reason, message=msg,
                                   key=v.key, span=span, whole=whole,
                                   alert_id=(pev or {}).get("data", {}).get("alertId")))
            ex.dlq_reasons[reason] += 1
        for idx, obj, span, whole in recs:
            if idx in plan_rejects:
                continue
            if obj is None:
                oracle_ok = False
                continue
            cls = classify(obj)
            if cls[0] == "skip":
                n_skip += 1
                ex.skips[cls[1]] += 1
                continue
            if cls[0] == "reject":
                oracle_ok = False
                continue
            _, alert_id, status = cls
            if (alert_id, status) in local_seen:
                n_skip += 1
                ex.skips["duplicate"] += 1
                continue
            local_seen.add((alert_id, status))
            n_fwd += 1
            if (alert_id, status) in seen:
                if seen[(alert_id, status)] != v.partition:
                    raise RuntimeError("test layout: duplicates of %s on different partitions"
                                       % alert_id)
                ex.skips["duplicate"] += 1
                continue
            seen[(alert_id, status)] = v.partition
            mine = [e for e in plan.events if e["type"] != REJECTED and
                    e["data"].get("alertId") == alert_id and
                    ((e["type"] == "quench.response.cancelled") == (status in ("dismissed",
                                                                               "resolved")))]
            if not mine:
                oracle_ok = False
                continue
            for e in mine:
                ex.events[e["id"]] = (alert_id, e)
            if status in ("dismissed", "resolved"):
                ex.cancelled += 1
            else:
                ex.planned += 1
            ex.forwarded += 1
            ex.work.append(dict(label=v.label, key=mine[0]["data"]["subscriptionId"].lower(),
                                kind="alert",
                                alert_id=alert_id,
                                source="%s/%d/%d/%d" % (v.topic, v.partition, v.offset, idx),
                                span=span, whole=whole))
        if (n_fwd, n_skip, n_rej) != (plan.counts["forwarded"], plan.counts["skipped"],
                                      plan.counts["rejected"]):
            oracle_ok = False
            print("  oracle mismatch for %s: python %s, plan %s" % (
                v.label, (n_fwd, n_skip, n_rej), plan.counts))
    for r in ex.rejects:
        eid = h.rejected_event_id(r["topic"], r["partition"], r["offset"], r["index"])
        ex.events[eid] = ("record:%s/%d/%d" % (r["topic"], r["partition"], r["offset"]), r)
    C.check("oracle: the test's record split agrees with quench plan's counts for every value",
            oracle_ok)
    C.check("oracle: rejected event ids derived in Python match quench plan's", derive_ok)
    return ex


# ------------------------------------------------------------------------- checks

def check_outcomes(ex, outcomes, what="stage A"):
    events = h.parse_events(outcomes)
    probs = h.schema_errors(outcomes)
    C.check("%s: every outcome event is valid against outcome.schema.json (%d events)"
            % (what, len(outcomes)), not probs, "\n".join(probs[:10]))
    ids = collections.Counter(ev["id"] for _, ev in events if ev)
    dups = {i: n for i, n in ids.items() if n > 1}
    C.check("%s: no duplicate event ids" % what, not dups, "duplicated: %s" % list(dups)[:10])

    # Per key: the multiset of (type, id) must equal the expectation.
    got = collections.defaultdict(collections.Counter)
    for m, ev in events:
        if ev:
            got[(m.key or b"").decode()][(ev["type"], ev["id"])] += 1
    want = collections.defaultdict(collections.Counter)
    for eid, (key, src) in ex.events.items():
        etype = src["type"] if isinstance(src, dict) and "specversion" in src else REJECTED
        want[key][(etype, eid)] += 1
    labels = {}
    for r in ex.rejects:
        labels["record:%s/%d/%d" % (r["topic"], r["partition"], r["offset"])] = r["label"]
    for wk in ex.work:
        labels.setdefault(wk["alert_id"], wk["label"])
    bad_keys = []
    for key in sorted(set(got) | set(want)):
        if got[key] != want[key]:
            missing = want[key] - got[key]
            extra = got[key] - want[key]
            bad_keys.append("%s (%s): missing %s extra %s" % (
                key, labels.get(key, "?"), sorted(missing.elements()), sorted(extra.elements())))
    C.check("%s: outcome events per key equal the expectation (%d keys, %d events)"
            % (what, len(want), sum(sum(c.values()) for c in want.values())), not bad_keys,
            "\n".join(bad_keys[:15]))
    types_got = collections.defaultdict(collections.Counter)
    types_want = collections.defaultdict(collections.Counter)
    for key, c in got.items():
        for (t, _), n in c.items():
            types_got[key][t] += n
    for key, c in want.items():
        for (t, _), n in c.items():
            types_want[key][t] += n
    C.check("%s: multiset of event types per alert id / record" % what,
            dict(types_got) == dict(types_want),
            "\n".join("%s: got %s want %s" % (k, dict(types_got.get(k, {})),
                                                 dict(types_want.get(k, {})))
                      for k in sorted(set(types_got) | set(types_want))
                      if types_got.get(k) != types_want.get(k)))

    # Alert events: identical to quench plan's except "time".
    diff = []
    by_id = {ev["id"]: (m, ev) for m, ev in events if ev}
    for eid, (key, src) in ex.events.items():
        if eid not in by_id or not (isinstance(src, dict) and "specversion" in src):
            continue
        m, ev = by_id[eid]
        a = dict(ev, time=None)
        b = dict(src, time=None)
        if a != b:
            diff.append("%s %s" % (src["type"], eid))
        if (m.key or b"").decode() != ev.get("subject") or ev.get("subject") != key:
            diff.append("%s: key %r subject %r" % (eid, m.key, ev.get("subject")))
    C.check("%s: alert events equal quench plan's output (but for time), keyed by alert id"
            % what, not diff, "\n".join(diff[:10]))

    # Rejected events: data points at the record and the DLQ.
    bad = []
    for r in ex.rejects:
        eid = h.rejected_event_id(r["topic"], r["partition"], r["offset"], r["index"])
        if eid not in by_id:
            continue
        m, ev = by_id[eid]
        d = ev.get("data", {})
        subject = "record:%s/%d/%d" % (r["topic"], r["partition"], r["offset"])
        want_rec = {"topic": r["topic"], "partition": r["partition"], "offset": r["offset"],
                    "index": r["index"]}
        problems = []
        if ev.get("subject") != subject or (m.key or b"").decode() != subject:
            problems.append("subject %r key %r" % (ev.get("subject"), m.key))
        if d.get("reason") != r["reason"]:
            problems.append("reason %r" % d.get("reason"))
        if r["message"] is not None and d.get("message") != r["message"]:
            problems.append("message %r want %r" % (d.get("message"), r["message"]))
        if not d.get("message"):
            problems.append("empty message")
        if d.get("record") != want_rec:
            problems.append("record %r" % d.get("record"))
        if (d.get("dlq") or {}).get("topic") != DLQ:
            problems.append("dlq %r" % d.get("dlq"))
        if d.get("alertId") != r["alert_id"]:
            problems.append("alertId %r want %r" % (d.get("alertId"), r["alert_id"]))
        if problems:
            bad.append("%s index %d: %s" % (subject, r["index"], "; ".join(problems)))
        r["event_message"] = d.get("message")
    C.check("%s: quench.record.rejected events point at the record, reason and DLQ" % what,
            not bad, "\n".join(bad[:10]))


def check_dlq(ex, dlq, values, what="stage A"):
    data_of = {(v.topic, v.partition, v.offset): v.data for v in values}
    C.equal("%s: one DLQ record per rejected record" % what, len(dlq), len(ex.rejects))
    index = {}
    for m in dlq:
        k = (h.header(m, "quench.original.topic"), h.header(m, "quench.original.partition"),
             h.header(m, "quench.original.offset"), h.header(m, "quench.record.index"))
        index.setdefault(k, []).append(m)
    problems = []
    for r in ex.rejects:
        k = (r["topic"], str(r["partition"]), str(r["offset"]), str(r["index"]))
        ms = index.get(k, [])
        where = "%s/%d/%d#%d (%s, %s)" % (r["topic"], r["partition"], r["offset"], r["index"],
                                           r["label"], r["reason"])
        if len(ms) != 1:
            problems.append("%s: %d DLQ records" % (where, len(ms)))
            continue
        m = ms[0]
        whole = data_of.get((r["topic"], r["partition"], r["offset"]))
        if not (m.value == r["span"] or (r["whole"] and m.value == whole)):
            problems.append("%s: value is %d bytes %r..., want the record's %d bytes %r..."
                            % (where, len(m.value or b""), (m.value or b"")[:60],
                               len(r["span"]), r["span"][:60]))
        want_key = r["key"].encode() if r["key"] is not None else None
        if (m.key if m.key else None) != want_key:
            problems.append("%s: key %r want %r" % (where, m.key, want_key))
        if h.header(m, "quench.reason.code") != r["reason"]:
            problems.append("%s: reason.code %r" % (where, h.header(m, "quench.reason.code")))
        msg = h.header(m, "quench.reason.message")
        if not msg or (r["message"] is not None and msg != r["message"]) or \
                (r.get("event_message") is not None and msg != r["event_message"]):
            problems.append("%s: reason.message %r" % (where, msg))
        if h.header(m, "quench.attempt") != "1":
            problems.append("%s: attempt %r" % (where, h.header(m, "quench.attempt")))
    C.check("%s: DLQ records keep the original bytes, key and reason/origin headers" % what,
            not problems, "\n".join(problems[:15]))


def check_work(ex, work, values, what="stage A"):
    C.equal("%s: work records: count" % what, len(work), len(ex.work))
    label = {"%s/%d/%d" % (v.topic, v.partition, v.offset): v.label for v in values}

    def named(entries):
        return ["%s (%s)" % (e, label.get(e[3].rsplit("/", 1)[0], "?")) for e in entries]
    got = collections.Counter((m.key.decode() if m.key else None, h.header(m, "quench.kind"),
                               h.header(m, "quench.alert-id"), h.header(m, "quench.source"))
                              for m in work)
    want = collections.Counter((w["key"], w["kind"], w["alert_id"], w["source"])
                               for w in ex.work)
    C.check("%s: work records: keys (lowercase subscription ids), kind, alert-id, source" % what,
            got == want, "missing %s\nextra %s" % (named(sorted((want - got).elements())),
                                                    named(sorted((got - want).elements()))))
    by_source = {h.header(m, "quench.source"): m for m in work}
    bad = []
    for w in ex.work:
        m = by_source.get(w["source"])
        if m is None:
            continue
        if not (m.value == w["span"] or
                (w["whole"] and m.value.strip(b" \t\r\n") == w["span"].strip(b" \t\r\n"))):
            bad.append("%s: %d bytes, want %d" % (w["source"], len(m.value), len(w["span"])))
    C.check("%s: work record values are the records' original bytes" % what, not bad,
            "\n".join(bad[:10]))


def expected_metrics(ex, n_values_by_topic):
    want = {}
    want[("quench_ingest_records_total", (("result", "forwarded"),))] = ex.forwarded
    want[("quench_ingest_records_total", (("result", "skipped"),))] = sum(ex.skips.values())
    want[("quench_ingest_records_total", (("result", "rejected"),))] = len(ex.rejects)
    for reason in ("assessment", "sub_assessment", "secure_score", "compliance", "snapshot",
                   "not_resource_manager", "duplicate"):
        want[("quench_ingest_skipped_total", (("reason", reason),))] = ex.skips.get(reason, 0)
    for reason in ("not_json", "no_alert_id", "invalid_resource_id", "too_big", "too_deep",
                   "invalid_alert", "invalid_verdict", "invalid_envelope"):
        want[("quench_dlq_records_total", (("reason", reason),))] = ex.dlq_reasons.get(reason, 0)
    types = collections.Counter(
        (src["type"] if isinstance(src, dict) and "specversion" in src else REJECTED)
        for _, src in ex.events.values())
    for t in ALERT_TYPES + (REJECTED,):
        want[("quench_outcome_events_total", (("type", t),))] = types.get(t, 0)
    for topic, n in n_values_by_topic.items():
        want[("quench_kafka_consumed_total", (("topic", topic),))] = n
    want[("quench_work_records_total", (("kind", "alert"), ("result", "planned")))] = ex.planned
    want[("quench_work_records_total", (("kind", "alert"), ("result", "cancelled")))] = \
        ex.cancelled
    want[("quench_work_records_total", (("kind", "verdict"), ("result", "recorded")))] = \
        ex.verdicts_recorded
    return want


def metrics_diff(metrics, want):
    out = []
    for (name, labels), v in sorted(want.items()):
        got = h.metric(metrics, name, **dict(labels))
        if got != v:
            out.append("%s{%s}: got %g want %g" % (
                name, ",".join('%s="%s"' % kv for kv in labels), got, v))
    return out


def check_metrics(w, want, what="stage A"):
    last = [None]

    def settled():
        last[0] = metrics_diff(w.metrics(), want)
        return not last[0]
    try:
        h.wait_until(settled, 20, desc="metrics to settle")
    except h.WaitTimeout:
        pass
    C.check("%s: /metrics counters agree with what was sent (%d samples)" % (what, len(want)),
            not last[0], "\n".join(last[0] or []))


def check_offsets(bootstrap, topics, what):
    for topic in topics:
        com = h.committed(bootstrap, GROUP, topic)
        hw = h.high_watermarks(bootstrap, topic)
        norm = {p: (o if o >= 0 else 0) for p, o in com.items()}
        C.check("%s: committed offsets of %s equal the high watermarks" % (what, topic),
                norm == hw, "committed %s\nhigh      %s" % (com, hw))


def terminate_and_check(w, bootstrap, what):
    rc, elapsed, killed = w.terminate()
    C.check("%s: SIGTERM: exit code 0 within the shutdown budget (%d ms, budget %d ms)"
            % (what, elapsed, BUDGET_MS),
            rc == 0 and not killed and elapsed <= BUDGET_MS,
            "exit %s after %d ms%s\n%s" % (rc, elapsed, " (SIGKILLed)" if killed else "",
                                            w.log_tail(8)))
    C.check("%s: log says 'committed and left the consumer group'" % what,
            w.log_has("committed and left the consumer group"), w.log_tail(5))
    check_offsets(bootstrap, (INPUT, VERDICTS, WORK), what)


# ------------------------------------------------------------------------- stages

def wait_counts(tails, want, timeout, worker=None, settle=8.0):
    """Waits until every tail has at least its wanted count; gives up earlier when the counts
    stopped moving for `settle` seconds or the worker exited (the checks then report)."""
    state = {"last": None, "since": time.monotonic()}

    def done():
        have = {t: tails[t].count(lambda m: True) for t in want}
        if all(have[t] >= n for t, n in want.items()):
            return True
        if worker is not None and not worker.alive():
            raise h.WaitTimeout("the worker exited (%s) with %s of %s" % (
                worker.proc.returncode, have, want))
        if have != state["last"]:
            state["last"], state["since"] = have, time.monotonic()
        elif time.monotonic() - state["since"] >= settle:
            raise h.WaitTimeout("no progress for %.0f s: %s of %s" % (settle, have, want))
        return False
    try:
        h.wait_until(done, timeout, desc="effects on %s" % ", ".join(want))
    except h.WaitTimeout as e:
        h.log("stopped waiting: %s" % e)


def stage_a(dk, w, tmp, tails):
    values = build_stream(tmp)
    t0 = time.monotonic()
    produce_with_kcat(dk.bootstrap, values, tmp)
    h.log("produced %d values with kcat in %.1f s" % (len(values), time.monotonic() - t0))
    locate(dk.bootstrap, values, (INPUT, VERDICTS))
    ex = expectations(values)
    h.log("expecting %d outcome events, %d DLQ records, %d work records"
          % (len(ex.events), len(ex.rejects), len(ex.work)))
    h.log("expecting skips %s, rejects %s" % (dict(ex.skips), dict(ex.dlq_reasons)))
    wait_counts(tails, {OUTCOMES: len(ex.events), DLQ: len(ex.rejects), WORK: len(ex.work)}, 120,
                worker=w)
    h.log("effects observed %.1f s after the first produce" % (time.monotonic() - t0))
    outcomes = h.consume_all(dk.bootstrap, OUTCOMES, idle=2.0)
    dlq = h.consume_all(dk.bootstrap, DLQ, idle=0.5)
    work = h.consume_all(dk.bootstrap, WORK, idle=0.5)
    check_outcomes(ex, outcomes)
    check_dlq(ex, dlq, values)
    check_work(ex, work, values)
    n_by_topic = collections.Counter(v.topic for v in values)
    n_by_topic[WORK] = len(ex.work)
    check_metrics(w, expected_metrics(ex, n_by_topic))
    status, body = w.http_get("/healthz")
    C.check("/healthz answers 200", status == 200, "%s %s" % (status, body[:200]))
    status, body = w.http_get("/readyz")
    C.check("/readyz answers 200", status == 200, "%s %s" % (status, body[:200]))
    C.check("stage A: the worker logged no error", not w.errors_logged(),
            "\n".join(json.dumps(r) for r in w.errors_logged()[:5]))
    return values, ex, len(outcomes)


def stage_restart(dk, tmp, tails, outcomes_before):
    """Restart in the same group; one fresh marker alert per input partition."""
    w = h.Worker(dk.bootstrap, GROUP, tmp, kafka=KAFKA, budget_ms=BUDGET_MS, name="restarted")
    status, _ = w.http_get("/readyz")
    h.log("restarted worker; /readyz right after start-up: %s" % status)
    w.wait_ready(timeout=60)
    tpl = os.path.join(h.DATA_DIR, "alerts", "arm-flat-suspicious-ip.json")
    markers = [h.make_alert(tpl, h.alert_id_for("pipeline-marker", p),
                            h.subscription_for("pipeline-marker", p)) for p in range(4)]
    for p, data in enumerate(markers):
        h.kcat_produce(dk.bootstrap, INPUT, values=[data], partition=p, key="marker-%d" % p,
                       tmpdir=tmp)
    want_ids = {}
    for data in markers:
        for e in h.quench_plan(data=data).events:
            want_ids[e["id"]] = e
    wait_counts(tails, {OUTCOMES: outcomes_before + len(want_ids)}, 60, worker=w)
    outcomes = h.consume_all(dk.bootstrap, OUTCOMES, idle=2.0)
    ids = collections.Counter(json.loads(m.value)["id"] for m in outcomes)
    C.check("restart: the marker alerts got all their events",
            all(ids[i] == 1 for i in want_ids), "missing %s" % [i for i in want_ids
                                                                if ids[i] == 0])
    C.equal("restart: nothing committed was processed again (outcome count)",
            len(outcomes), outcomes_before + len(want_ids))
    m = w.metrics()
    got = {t: h.metric(m, "quench_kafka_consumed_total", topic=t) for t in (INPUT, VERDICTS, WORK)}
    C.equal("restart: the restarted worker consumed only the markers", got,
            {INPUT: 4.0, VERDICTS: 0.0, WORK: 4.0})
    return w, len(outcomes)


def stage_b(dk, w, tmp, tails, outcomes_before, dlq_before):
    tpl = os.path.join(h.DATA_DIR, "alerts", "arm-flat-runbook.json")
    sub = h.subscription_for("pipeline-big", 0)

    def describe(n):
        def edit(obj):
            obj["Description"] = "x" * n
        return edit
    big = h.make_alert(tpl, h.alert_id_for("pipeline-big", 1), sub, describe(1536 * 1024))
    small = []
    while sum(len(x) + 1 for x in small) <= 1100 * 1024:
        small.append(json.dumps(json.loads(h.make_alert(
            tpl, h.alert_id_for("pipeline-big", 100 + len(small)), sub))).encode())
    batch = b"[" + b",".join(small) + b"]"
    def pad(n):
        def edit(obj):     # free-form ExtendedProperties: the decoder's field limits allow it
            obj["ExtendedProperties"]["Padding"] = "p" * n
        return edit
    near = h.make_alert(tpl, h.alert_id_for("pipeline-big", 2), sub, pad(0))
    near = h.make_alert(tpl, h.alert_id_for("pipeline-big", 2), sub,
                        pad(1030000 - len(near)))
    C.check("stage B: fixture sizes (big %d > limit, batch of %d records %d > limit, near %d "
            "in (1000000, limit])" % (len(big), len(small), len(batch), len(near)),
            len(big) > MAX_RECORD_BYTES and len(batch) > MAX_RECORD_BYTES and
            1000000 < len(near) <= MAX_RECORD_BYTES and max(map(len, small)) < 8192)
    before = h.high_watermarks(dk.bootstrap, INPUT)
    h.kcat_produce(dk.bootstrap, INPUT, values=[big], partition=1, key="big", tmpdir=tmp)
    h.kcat_produce(dk.bootstrap, INPUT, values=[batch], partition=2, key="big-batch", tmpdir=tmp)
    h.kcat_produce(dk.bootstrap, INPUT, values=[near], partition=3, key="near-limit", tmpdir=tmp)
    coords = [(1, before[1], big, "big"), (2, before[2], batch, "big-batch")]
    near_plan = h.quench_plan(data=near)
    near_events = {e["id"]: e for e in near_plan.events}
    C.check("oracle: quench plan forwards the near-limit alert and answers it (%d events)"
            % len(near_events), near_plan.counts["forwarded"] == 1 and
            near_plan.counts["rejected"] == 0 and len(near_events) >= 3, near_plan.stderr)
    wait_counts(tails, {DLQ: dlq_before + 2,
                        OUTCOMES: outcomes_before + 2 + len(near_events)}, 60, worker=w)
    outcomes = h.consume_all(dk.bootstrap, OUTCOMES, idle=1.0)
    dlq = h.consume_all(dk.bootstrap, DLQ, idle=1.0)[dlq_before:]
    by_id = {}
    for m in outcomes:
        by_id.setdefault(json.loads(m.value)["id"], []).append(m)
    for p, off, data, key in coords:
        eid = h.rejected_event_id(INPUT, p, off, 0)
        evs = by_id.get(eid, [])
        ok = len(evs) == 1 and json.loads(evs[0].value)["data"].get("reason") == "too_big"
        C.check("stage B: %s (%d bytes): one quench.record.rejected too_big event"
                % (key, len(data)),
                ok, "events: %r\nworker log:\n%s" % ([e.value[:200] for e in evs], w.log_tail(6)))
        ms = [m for m in dlq if h.header(m, "quench.original.partition") == str(p) and
              h.header(m, "quench.original.offset") == str(off)]
        # Larger than ingest.max_record_bytes: the DLQ copy is bounded (a broker limited to that
        # size could not take the whole record); it keeps a prefix of the original bytes and
        # says how to find and check the original, which stays at its offset in the input.
        copy_max = 1048576 - 8192
        ok = len(ms) == 1 and ms[0].key == key.encode() and \
            h.header(ms[0], "quench.reason.code") == "too_big" and \
            h.header(ms[0], "quench.record.index") == "0" and \
            h.header(ms[0], "quench.original.topic") == INPUT and \
            ms[0].value == data[:copy_max] and \
            h.header(ms[0], "quench.truncated") == "true" and \
            h.header(ms[0], "quench.original.size") == str(len(data)) and \
            h.header(ms[0], "quench.original.sha256") == hashlib.sha256(data).hexdigest()
        C.check("stage B: %s: DLQ record with the first %d of the original %d bytes, the key, "
                "too_big headers, and the original's size and SHA-256"
                % (key, copy_max, len(data)), ok,
                "%d DLQ records for it; value %s bytes" %
                (len(ms), len(ms[0].value) if ms else "-"))
    missing = [i for i in near_events if i not in by_id]
    C.check("stage B: the valid 1,030,000-byte alert (under the 1 MiB limit) was forwarded and "
            "answered", not missing, "missing %d of %d events" % (len(missing), len(near_events)))
    probs = h.schema_errors(outcomes)
    C.check("stage B: every outcome event is valid", not probs, "\n".join(probs[:5]))
    alive = w.alive()
    C.check("stage B: the worker is still running after oversized input", alive,
            "exit code %s\n%s" % (w.proc.returncode, w.log_tail(6)))
    if alive:
        m = w.metrics()
        C.equal("stage B: quench_dlq_records_total{reason=\"too_big\"}",
                h.metric(m, "quench_dlq_records_total", reason="too_big"), 2.0)
        status, _ = w.http_get("/readyz")
        C.check("stage B: /readyz still 200", status == 200, str(status))
    errs = w.errors_logged()
    C.check("stage B: the worker logged no error", not errs,
            "\n".join(json.dumps(r) for r in errs[:5]))


def main():
    h.install_signal_handlers()
    h.check_binaries()
    t_start = time.monotonic()
    tmp = h.make_tmpdir("qn-it-pipeline-")
    tails = {}
    dk = w = None
    try:
        dk = h.DevKafka(os.path.join(tmp))
        h.log("devkafka at %s" % dk.bootstrap)
        w = h.Worker(dk.bootstrap, GROUP, tmp, kafka=KAFKA, budget_ms=BUDGET_MS, name="worker")
        status, body = w.http_get("/readyz")
        assigned = any(r.get("msg") == "partition assigned" for r in w.logs())
        C.check("/readyz before the first assignment answers 503 with a reason",
                assigned or (status == 503 and body.strip() != ""),
                "status %s body %r" % (status, body[:200]))
        status, body = w.http_get("/healthz")
        C.check("/healthz answers 200 from the start", status == 200, "%s %r" % (status, body))
        w.wait_ready(timeout=60)
        h.log("worker ready (http port %d)" % w.http_port)
        for t in (OUTCOMES, DLQ, WORK):
            tails[t] = h.Tail(dk.bootstrap, t)

        t0 = time.monotonic()
        values, ex, n_out = stage_a(dk, w, tmp, tails)
        h.log("stage A took %.1f s" % (time.monotonic() - t0))

        terminate_and_check(w, dk.bootstrap, "stage C1")
        w = None

        w, n_out = stage_restart(dk, tmp, tails, n_out)
        n_dlq = len(h.consume_all(dk.bootstrap, DLQ, idle=0.5))

        t0 = time.monotonic()
        stage_b(dk, w, tmp, tails, n_out, n_dlq)
        h.log("stage B took %.1f s" % (time.monotonic() - t0))

        terminate_and_check(w, dk.bootstrap, "stage C2")
        w = None
    except Exception as e:   # a broken step is a failure, never a crash without a summary
        traceback.print_exc()
        C.error("test ran to completion", e)
        if w is not None:
            print("worker log tail:\n" + w.log_tail(15))
    finally:
        for t in tails.values():
            t.close()
        if w is not None:
            w.terminate()
        if dk is not None:
            dk.stop()
    h.log("total %.1f s" % (time.monotonic() - t_start))
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
