#!/usr/bin/python3
"""Integration tests of two command-line tools around the worker.

Default: `quench replay-dlq` against quench-devkafka.
  1  `quench run` (ingest.max_record_bytes 16384) gets bad records: two that are not JSON, one
     with no alert id, one with a bad resource id, one 20,000-byte value (too_big: its DLQ copy is
     truncated) on defender.alerts, and a bad verdict on quench.verdicts. The DLQ fills; the worker
     is stopped (SIGTERM, exit 0). Three DLQ-shaped records are then produced straight to
     quench.dlq: one whose original topic is neither input nor verdicts, one with
     quench.attempt=3, one with no key, no attempt and an original partition that does not exist.
  2  --dry-run: the summary counts every class and nothing is produced.
  3  --reason not_json --reason invalid_verdict: exactly those records come back, on their
     original topic (and partition, when it exists), with the DLQ record's key and value and the
     quench.replay.* headers; the summary counts the others as not selected / other topic.
  4  --reason too_big: the truncated record is counted and not sent.
  5  --max 2: the first two eligible records only.
  6  usage and configuration errors exit 1 and 78.

--check-config: `quench check-config` (no Kafka needed).
  A valid config with a SASL password in a kafka_secret_files file and a QUENCH_* override prints
  the effective config (JSON, the override applied, the password "[redacted]") and the secret
  appears nowhere in stdout or stderr. Bad configs (unknown key, out of range, inline secret,
  secret from the environment, missing secret file, bad JSON, and every
  tests/data/config/bad-*.json) exit 78 with a message naming the key, never echoing a secret.

Prints PASS/FAIL per check and ends with "N passed, M failed"; exit status 1 on any failure.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

INPUT = "defender.alerts"
VERDICTS = "quench.verdicts"
DLQ = "quench.dlq"
GROUP = "qn-it-replay"
MAX_RECORD_BYTES = 16384
HOSTILE = os.path.join(h.DATA_DIR, "hostile")

C = h.Checks()


# ------------------------------------------------------------------------------------ helpers

def run_quench(args, env_extra=None, timeout=180):
    env = h._child_env()
    env.update(env_extra or {})
    r = subprocess.run([h.QUENCH] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env,
                       preexec_fn=h._set_pdeathsig)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def parse_counts(text):
    out = {}
    if text.split() == ["none"]:
        return out
    for item in text.split():
        name, _, n = item.rpartition("=")
        out[name] = int(n)
    return out


def parse_summary(stdout):
    """The replay-dlq summary as a dict, or None when a line is missing."""
    s = {}
    m = re.search(r"^replay-dlq: read (\d+) record\(s\) from (\S+) .*?(; stopped at --max)?$",
                  stdout, re.M)
    if not m:
        return None
    s["read"], s["dlq"], s["max_reached"] = int(m.group(1)), m.group(2), bool(m.group(3))
    m = re.search(r"^replay-dlq: (replayed|would replay) (\d+):(.*)$", stdout, re.M)
    if not m:
        return None
    s["dry_run"], s["replayed"], s["by_topic"] = (m.group(1) == "would replay", int(m.group(2)),
                                                   parse_counts(m.group(3)))
    m = re.search(r"^replay-dlq: (?:replayed|would replay) by reason:(.*)$", stdout, re.M)
    s["by_reason"] = parse_counts(m.group(1)) if m else None
    for key, rx in (("not_selected", r"skipped (\d+) not selected by --reason:(.*)"),
                    ("truncated", r"skipped (\d+) truncated \([^)]*\):(.*)"),
                    ("foreign", r"skipped (\d+) whose original topic is neither \S+ nor \S+:(.*)")):
        m = re.search(r"^replay-dlq: %s$" % rx, stdout, re.M)
        if not m:
            return None
        s[key] = (int(m.group(1)), parse_counts(m.group(2)))
    return s


def partitions_of(bootstrap):
    return {t: len(h.partitions_of(bootstrap, t)) for t in (INPUT, VERDICTS)}


def expected_replays(dlq, reasons, partitions, max_n=None):
    """The records a replay must send, in DLQ order, and the summary it must print."""
    out = []
    summary = {"read": 0, "by_topic": {}, "by_reason": {}, "not_selected": {}, "truncated": {},
               "foreign": {}}

    def bump(d, k):
        d[k] = d.get(k, 0) + 1

    for m in sorted(dlq, key=lambda m: (m.partition, m.offset)):
        if max_n is not None and len(out) >= max_n:
            break
        summary["read"] += 1
        code = h.header(m, "quench.reason.code") or "(none)"
        topic = h.header(m, "quench.original.topic")
        if reasons and code not in reasons:
            bump(summary["not_selected"], code)
            continue
        if h.header(m, "quench.truncated") == "true":
            bump(summary["truncated"], code)
            continue
        if topic not in (INPUT, VERDICTS):
            bump(summary["foreign"], topic or "(none)")
            continue
        try:
            attempt = int(h.header(m, "quench.attempt"))
            attempt = attempt if attempt >= 1 else 1
        except (TypeError, ValueError):
            attempt = 1
        part_text = h.header(m, "quench.original.partition")
        off_text = h.header(m, "quench.original.offset")
        headers = [("quench.replay.attempt", str(attempt + 1)),
                   ("quench.replay.source", "%s/%d/%d" % (DLQ, m.partition, m.offset)),
                   ("quench.replay.reason", code)]
        if part_text is not None and off_text is not None:
            headers.append(("quench.replay.original", "%s/%s/%s" % (topic, part_text, off_text)))
        try:
            part = int(part_text)
            part = part if 0 <= part < partitions[topic] else None
        except (TypeError, ValueError):
            part = None
        out.append(dict(topic=topic, partition=part, key=m.key, value=m.value, headers=headers,
                        source=m.offset))
        bump(summary["by_topic"], topic)
        bump(summary["by_reason"], code)
    return out, summary


def text_headers(msg):
    return [(k, None if v is None else v.decode("utf-8", "replace")) for k, v in msg.headers]


def new_records(bootstrap, highs):
    """Records on the input and verdict topics beyond the high watermarks in highs."""
    out = []
    for topic in (INPUT, VERDICTS):
        for m in h.consume_all(bootstrap, topic, idle=0.5, deadline=30):
            if m.offset >= highs[topic].get(m.partition, 0):
                out.append(m)
    return out


def snapshot(bootstrap):
    return {t: h.high_watermarks(bootstrap, t) for t in (INPUT, VERDICTS)}


def check_replay(what, bootstrap, highs, want):
    """The records sent since highs must be exactly want (topic, key, value, headers, partition),
    each partition in DLQ order."""
    got = new_records(bootstrap, highs)
    C.equal("%s: number of records re-sent" % what, len(got), len(want))
    unmatched = list(got)
    problems = []
    for w in want:
        hit = None
        for g in unmatched:
            if g.topic == w["topic"] and g.key == w["key"] and g.value == w["value"] and \
                    text_headers(g) == w["headers"]:
                hit = g
                break
        if hit is None:
            problems.append("not re-sent (or wrong headers): %s key=%r source offset %d; want "
                            "headers %r" % (w["topic"], w["key"], w["source"], w["headers"]))
            continue
        unmatched.remove(hit)
        if w["partition"] is not None and hit.partition != w["partition"]:
            problems.append("%s key=%r went to partition %d, not its original %d"
                            % (w["topic"], w["key"], hit.partition, w["partition"]))
        w["got"] = hit
    for g in unmatched:
        problems.append("unexpected record %s/%d/%d key=%r headers=%r"
                        % (g.topic, g.partition, g.offset, g.key, text_headers(g)))
    C.check("%s: exactly the selected records, with their keys, values and quench.replay.* "
            "headers, on their original topic and partition" % what, not problems,
            "\n".join(problems))
    order_ok = True
    last = {}
    for w in want:
        g = w.get("got")
        if g is None:
            continue
        k = (g.topic, g.partition)
        if k in last and last[k][0] > g.offset:
            order_ok = False
        last[k] = (g.offset, w["source"])
    C.check("%s: each partition keeps the DLQ order" % what, order_ok)


def check_summary(what, stdout, want, dry_run, replayed, max_reached=False):
    s = parse_summary(stdout)
    if not C.check("%s: the summary is printed" % what, s is not None, stdout):
        return
    C.equal("%s: summary replayed count" % what, s["replayed"], replayed)
    C.equal("%s: summary says %s" % (what, "would replay" if dry_run else "replayed"),
            s["dry_run"], dry_run)
    if not max_reached:
        C.equal("%s: summary read count" % what, s["read"], want["read"])
    C.equal("%s: summary by topic" % what, s["by_topic"], want["by_topic"])
    C.equal("%s: summary by reason" % what, s["by_reason"], want["by_reason"])
    C.equal("%s: summary not selected" % what, s["not_selected"],
            (sum(want["not_selected"].values()), want["not_selected"]))
    C.equal("%s: summary truncated" % what, s["truncated"],
            (sum(want["truncated"].values()), want["truncated"]))
    C.equal("%s: summary other original topic" % what, s["foreign"],
            (sum(want["foreign"].values()), want["foreign"]))
    C.equal("%s: summary stopped at --max" % what, s["max_reached"], max_reached)


# ------------------------------------------------------------------------------ replay-dlq

def fill_dlq(dk, tmp):
    """Runs the worker over bad records and adds DLQ-shaped records. Returns (config, dlq)."""
    w = h.Worker(dk.bootstrap, GROUP, tmp, name="worker",
                 config={"ingest": {"max_record_bytes": MAX_RECORD_BYTES}})
    try:
        w.wait_ready(timeout=60)
        with open(os.path.join(HOSTILE, "not-json.txt"), "rb") as f:
            not_json = f.read()
        with open(os.path.join(HOSTILE, "no-alert-id.json"), "rb") as f:
            no_id = f.read()
        with open(os.path.join(HOSTILE, "bad-resource-id-dotdot.json"), "rb") as f:
            bad_rid = f.read()
        with open(os.path.join(h.DATA_DIR, "verdicts", "bad-verdict-value.json"), "rb") as f:
            bad_verdict = f.read()
        big = b"x" * 20000
        records = [
            dict(value=not_json, key=b"sub-not-json-1", partition=1),
            dict(value=b"{\"SystemAlertId\": \"truncated", key=b"sub-not-json-2", partition=3),
            dict(value=no_id, key=b"sub-no-id", partition=2),
            dict(value=bad_rid, key=b"sub-bad-rid", partition=0),
            dict(value=big, key=b"sub-big", partition=2),
        ]
        want_reasons = []
        for r in records:
            if len(r["value"]) > MAX_RECORD_BYTES:
                want_reasons.append("too_big")
            else:
                plan = h.quench_plan(data=r["value"])
                want_reasons.append(plan.rejects[0][1] if plan.rejects else None)
        h.Prod(dk.bootstrap).send(INPUT, records)
        h.Prod(dk.bootstrap).send(VERDICTS, [dict(value=bad_verdict, key=b"sub-verdict",
                                                  partition=1)])
        want_reasons.append("invalid_verdict")
        dlq = h.consume_all(dk.bootstrap, DLQ, idle=0.5, deadline=60, min_count=6)
        got_reasons = sorted(h.header(m, "quench.reason.code") or "" for m in dlq)
        C.equal("the worker dead-lettered the six bad records", got_reasons,
                sorted(r or "" for r in want_reasons))
        trunc = [m for m in dlq if h.header(m, "quench.truncated") == "true"]
        C.check("the 20,000-byte record's DLQ copy is truncated",
                len(trunc) == 1 and len(trunc[0].value) < len(big),
                [(h.header(m, "quench.reason.code"), len(m.value)) for m in trunc])
    finally:
        rc, elapsed, killed = w.terminate()
    C.check("the worker exits 0 on SIGTERM", rc == 0 and not killed,
            "rc %s killed %s\n%s" % (rc, killed, w.log_tail(10)))
    # DLQ-shaped records written straight to the DLQ
    direct = [
        dict(value=b"{\"elsewhere\": true}", key=b"sub-foreign",
             headers=[("quench.original.topic", "some.other.topic"),
                      ("quench.original.partition", "0"), ("quench.original.offset", "5"),
                      ("quench.reason.code", "not_json"), ("quench.attempt", "1")]),
        dict(value=b"third time", key=b"sub-attempt-3",
             headers=[("quench.original.topic", INPUT), ("quench.original.partition", "0"),
                      ("quench.original.offset", "99"), ("quench.reason.code", "not_json"),
                      ("quench.reason.message", "not JSON"), ("quench.attempt", "3")]),
        dict(value=b"no key, no attempt",
             headers=[("quench.original.topic", INPUT), ("quench.original.partition", "7"),
                      ("quench.original.offset", "1"), ("quench.reason.code", "not_json")]),
    ]
    h.Prod(dk.bootstrap).send(DLQ, direct)
    dlq = h.consume_all(dk.bootstrap, DLQ, idle=0.5, deadline=60, min_count=9)
    C.equal("the DLQ holds nine records", len(dlq), 9)
    return w.config_path, dlq


def replay_tests(tmp):
    dk = h.DevKafka(tmp)
    try:
        h.log("devkafka at %s" % dk.bootstrap)
        config, dlq = fill_dlq(dk, tmp)
        parts = partitions_of(dk.bootstrap)

        # 2 dry run: every reason
        highs = snapshot(dk.bootstrap)
        want, summary = expected_replays(dlq, [], parts)
        rc, out, err = run_quench(["replay-dlq", "--config", config, "--dry-run"])
        C.equal("dry run: exit status", rc, 0)
        check_summary("dry run", out, summary, True, len(want))
        C.equal("dry run: nothing produced", snapshot(dk.bootstrap), highs)
        C.check("dry run: the expectation covers every class",
                summary["truncated"] and summary["foreign"] and len(want) == 7, summary)

        # 3 two reasons
        highs = snapshot(dk.bootstrap)
        reasons = ["not_json", "invalid_verdict"]
        want, summary = expected_replays(dlq, reasons, parts)
        args = ["replay-dlq", "--config", config]
        for r in reasons:
            args += ["--reason", r]
        rc, out, err = run_quench(args)
        C.check("--reason not_json --reason invalid_verdict: exit status 0", rc == 0,
                "rc %d\n%s\n%s" % (rc, out, err[-2000:]))
        check_summary("--reason not_json --reason invalid_verdict", out, summary, False,
                      len(want))
        C.check("--reason: both topics get records back",
                {w["topic"] for w in want} == {INPUT, VERDICTS}, want)
        check_replay("--reason not_json --reason invalid_verdict", dk.bootstrap, highs, want)
        C.check("--reason: the record dead-lettered three times comes back as attempt 4",
                any(w["key"] == b"sub-attempt-3" and
                    ("quench.replay.attempt", "4") in w["headers"] for w in want), want)

        # 4 the truncated record is never sent
        highs = snapshot(dk.bootstrap)
        want, summary = expected_replays(dlq, ["too_big"], parts)
        rc, out, err = run_quench(["replay-dlq", "--config", config, "--reason", "too_big"])
        C.equal("--reason too_big: exit status", rc, 0)
        check_summary("--reason too_big", out, summary, False, 0)
        C.equal("--reason too_big: the truncated record is counted", summary["truncated"],
                {"too_big": 1})
        C.equal("--reason too_big: nothing produced", snapshot(dk.bootstrap), highs)

        # 5 --max
        highs = snapshot(dk.bootstrap)
        want, summary = expected_replays(dlq, [], parts, max_n=2)
        rc, out, err = run_quench(["replay-dlq", "--config=" + config, "--max", "2"])
        C.equal("--max 2: exit status", rc, 0)
        check_summary("--max 2", out, summary, False, 2, max_reached=True)
        check_replay("--max 2", dk.bootstrap, highs, want)

        # 6 usage and configuration errors
        for args, why in ((["--max", "0"], "--max 0"), ([], "no --config"),
                          (["--bogus"], "an unknown option"), (["--reason"], "a missing value"),
                          (["--reason", "Not A Code"], "a malformed reason")):
            full = ["replay-dlq"] + (["--config", config] if why != "no --config" else []) + args
            rc, out, err = run_quench(full)
            C.check("usage error (%s) exits 1 with a message" % why,
                    rc == 1 and "quench replay-dlq:" in err, "rc %d: %s" % (rc, err[-400:]))
        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            json.dump({"kafka": {"bootstrap.servers": dk.bootstrap},
                       "topics": {"dql": "quench.dlq"}}, f)
        rc, out, err = run_quench(["replay-dlq", "--config", bad])
        C.check("a bad config exits 78 naming the key",
                rc == 78 and "topics.dql" in err, "rc %d: %s" % (rc, err[-400:]))
        highs = snapshot(dk.bootstrap)
        rc, out, err = run_quench(["replay-dlq", "--config", config, "--dry-run", "--reason",
                                   "no_such_reason"])
        s = parse_summary(out)
        C.check("an unknown --reason replays nothing and counts everything as not selected",
                rc == 0 and s is not None and s["replayed"] == 0 and
                s["not_selected"][0] == len(dlq), out)
    finally:
        dk.stop()


# ---------------------------------------------------------------------------- check-config

SECRET = "Q-it-s3cret-%d-Zx" % os.getpid()


def check_config_tests(tmp):
    secret_file = os.path.join(tmp, "eventhubs-password")
    with open(secret_file, "w") as f:
        f.write(SECRET + "\n")
    os.chmod(secret_file, 0o600)
    good = os.path.join(tmp, "good.json")
    with open(good, "w") as f:
        json.dump({
            "group_id": "quench-it",
            "kafka": {"bootstrap.servers": "127.0.0.1:9093", "security.protocol": "SASL_SSL",
                      "sasl.mechanism": "PLAIN", "sasl.username": "$ConnectionString"},
            "kafka_secret_files": {"sasl.password": secret_file},
            "topics": {"dlq": "quench.dlq.it"},
        }, f)
    rc, out, err = run_quench(["check-config", good], env_extra={"QUENCH_HTTP_PORT": "9555"})
    C.equal("check-config: a valid config exits 0", rc, 0)
    try:
        eff = json.loads(out)
    except ValueError as e:
        eff = None
        C.error("check-config: the output is JSON", e)
    if eff is not None:
        kafka = eff.get("kafka", {})
        C.equal("check-config: the password from kafka_secret_files is redacted",
                kafka.get("sasl.password"), "[redacted]")
        C.equal("check-config: plain kafka properties are shown", kafka.get("sasl.username"),
                "$ConnectionString")
        C.equal("check-config: file values are applied", (eff.get("group_id"),
                                                          eff.get("topics", {}).get("dlq")),
                ("quench-it", "quench.dlq.it"))
        C.equal("check-config: QUENCH_* overrides are applied", eff.get("http", {}).get("port"),
                9555)
        C.check("check-config: defaults are filled in", eff.get("policy", {}).get("dry_run")
                is True and eff.get("topics", {}).get("input") == INPUT, eff.get("policy"))
    C.check("check-config: the secret appears in neither stdout nor stderr",
            SECRET not in out and SECRET not in err)

    def bad_case(name, cfg, key, env_extra=None, raw=None, secret=None):
        path = os.path.join(tmp, "bad-%s.json" % name)
        with open(path, "w") as f:
            f.write(raw if raw is not None else json.dumps(cfg))
        rc, out, err = run_quench(["check-config", path], env_extra=env_extra)
        C.check("check-config: %s exits 78 naming %r" % (name, key),
                rc == 78 and key in err and out == "", "rc %d\nstdout %r\nstderr %s"
                % (rc, out[:200], err[-600:]))
        if secret is not None:
            C.check("check-config: %s does not echo the secret" % name,
                    secret not in out and secret not in err)

    base = {"kafka": {"bootstrap.servers": "127.0.0.1:9093"}}
    bad_case("an unknown key", dict(base, topics={"inptu": "x"}), "topics.inptu")
    bad_case("a value out of range", dict(base, http={"port": 70000}), "http.port")
    bad_case("a wrong type", dict(base, policy={"dry_run": "yes"}), "policy.dry_run")
    bad_case("an inline secret", {"kafka": {"bootstrap.servers": "127.0.0.1:9093",
                                            "sasl.password": SECRET + "-inline"}},
             "kafka.sasl.password", secret=SECRET + "-inline")
    bad_case("a secret from the environment", base, "kafka.sasl.password",
             env_extra={"QUENCH_KAFKA_SASL_PASSWORD": SECRET + "-env"},
             secret=SECRET + "-env")
    bad_case("a missing secret file", dict(base, kafka_secret_files={
        "sasl.password": os.path.join(tmp, "no-such-file")}), "kafka_secret_files.sasl.password")
    bad_case("a bad mode", dict(base, policy={"modes": {"vm_reimage": "sometimes"}}),
             "policy.modes")
    path = os.path.join(tmp, "bad-json.json")
    with open(path, "w") as f:
        f.write('{"kafka": {"bootstrap.servers": "x:1"},')
    rc, out, err = run_quench(["check-config", path])
    C.check("check-config: malformed JSON exits 78", rc == 78 and out == "",
            "rc %d %s" % (rc, err[-300:]))

    # the repository's bad-config fixtures, their secret file pointed at a real one
    fixtures = sorted(f for f in os.listdir(os.path.join(h.DATA_DIR, "config"))
                      if f.startswith("bad-") and f.endswith(".json"))
    for name in fixtures:
        with open(os.path.join(h.DATA_DIR, "config", name)) as f:
            cfg = json.load(f)
        inline = [v for k, v in (cfg.get("kafka") or {}).items()
                  if "password" in k or "secret" in k]
        if isinstance(cfg.get("kafka_secret_files"), dict):
            cfg["kafka_secret_files"] = {k: secret_file for k in cfg["kafka_secret_files"]}
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            json.dump(cfg, f)
        rc, out, err = run_quench(["check-config", path])
        named = re.search(r"config key '[^']+'", err) is not None
        leaked = SECRET in out + err or any(isinstance(v, str) and v in out + err
                                            for v in inline)
        C.check("check-config: tests/data/config/%s exits 78 naming the key, no secret shown"
                % name, rc == 78 and named and not leaked and out == "",
                "rc %d named %s leaked %s: %s" % (rc, named, leaked, err[-300:]))


# ------------------------------------------------------------------------------------ main

def main():
    h.install_signal_handlers()
    t0 = time.monotonic()
    tmp = h.make_tmpdir("qn-it-replay-")
    check_config = "--check-config" in sys.argv[1:]
    try:
        if check_config:
            if not os.access(h.QUENCH, os.X_OK):
                raise SystemExit("missing executable %s (set QN_BIN_DIR)" % h.QUENCH)
            check_config_tests(tmp)
        else:
            h.check_binaries()
            replay_tests(tmp)
    except Exception as e:  # a broken step is a failure, never a crash without a summary
        traceback.print_exc()
        C.error("test ran to completion", e)
    h.log("total %.1f s" % (time.monotonic() - t0))
    if os.environ.get("QN_KEEP_TMP") != "1":
        shutil.rmtree(tmp, ignore_errors=True)
    return C.summary()


if __name__ == "__main__":
    sys.exit(main())
