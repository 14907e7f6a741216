#!/usr/bin/python3
"""Kafka helpers for scripts/demo.sh (Debian's /usr/bin/python3 + python3-confluent-kafka).

  timeline.py produce  --bootstrap B --topic T FILE...
      Sends each FILE as exactly one Kafka message. A file holding one JSON document is sent
      with its line breaks removed, so a pretty-printed alert is not mistaken for
      newline-delimited records; anything else (NDJSON, deliberately broken input) is sent
      byte for byte.

  timeline.py timeline --bootstrap B --topic T [--timeout 60] [--quiet 3] [--min-events 1]
                       [--pid PID]
      Reads T from the beginning of every partition (no group offsets are committed) until at
      least --min-events events arrived and none arrived for --quiet seconds, or --timeout
      seconds passed, or the process --pid is gone (then one more quiet period is drained).
      Prints one line per CloudEvent, ordered by its time: type, subject (the last path
      segment of the alert id), then a short summary of data.
      Exits 0 if any event was read, 3 if none.
"""

import argparse
import json
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

# data fields worth a place in the one-line summary, in display order; nested objects such as
# data.task.kind are flattened to "kind".
SUMMARY_KEYS = (
    "state", "from", "to", "kind", "task", "mode", "target", "verdict", "policy", "reason",
    "code", "message", "error", "attempts", "deadline", "alertType", "topic", "partition",
    "offset",
)
SUMMARY_MAX = 140


def log(msg):
    print(f"timeline: {msg}", file=sys.stderr, flush=True)


def one_line(raw):
    """A JSON document with its line breaks removed: raw CR/LF can only be whitespace in valid
    JSON, so the bytes otherwise stay as they are (key order, duplicates, number spelling)."""
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw
    return raw.replace(b"\r", b"").replace(b"\n", b"").strip()


def cmd_produce(args):
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.topic()}: {err}")

    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    for path in args.files:
        with open(path, "rb") as f:
            value = one_line(f.read())
        producer.produce(args.topic, value=value, on_delivery=on_delivery)
        producer.poll(0)
    left = producer.flush(30)
    if left or errors:
        for e in errors:
            log(f"delivery failed: {e}")
        log(f"{left} message(s) undelivered")
        return 1
    return 0


def short_id(value):
    """The last path segment of an ARM id, or the value itself."""
    text = str(value)
    return text.rstrip("/").rsplit("/", 1)[-1] or text


def scalar(value):
    if isinstance(value, dict):
        for key in ("kind", "id", "name", "userPrincipalName", "upn", "resourceId"):
            if key in value and not isinstance(value[key], (dict, list)):
                return short_id(value[key])
        return None
    if isinstance(value, list):
        return f"[{len(value)}]"
    if isinstance(value, str) and value.startswith("/subscriptions/"):
        return short_id(value)
    return value


def summarize(data):
    if not isinstance(data, dict):
        return "" if data is None else str(data)[:SUMMARY_MAX]
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in ("task", "error", "dlq", "record"):
            for sub, subval in value.items():
                flat.setdefault(sub, subval)
        else:
            flat.setdefault(key, value)
    parts = []
    for key in SUMMARY_KEYS:
        if key in flat:
            shown = scalar(flat[key])
            if shown is not None and shown != "":
                parts.append(f"{key}={shown}")
    text = " ".join(parts)
    if len(text) > SUMMARY_MAX:
        text = text[: SUMMARY_MAX - 1] + "…"
    return text


def format_event(msg):
    raw = msg.value() or b""
    try:
        ev = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "", ("(not JSON)", f"p{msg.partition()}@{msg.offset()}", repr(raw[:60]))
    if not isinstance(ev, dict):
        return "", ("(not a CloudEvent)", f"p{msg.partition()}@{msg.offset()}", repr(raw[:60]))
    cols = (str(ev.get("type", "?")), short_id(ev.get("subject", "-")), summarize(ev.get("data")))
    return str(ev.get("time", "")), cols


def process_gone(pid):
    """True when pid no longer runs (a zombie counts as gone: its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except (OSError, IndexError):
        return True


def assign_all(consumer, topic, deadline):
    while time.monotonic() < deadline:
        md = consumer.list_topics(topic, timeout=5)
        meta = md.topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
            consumer.assign(parts)
            return len(parts)
        time.sleep(0.5)
    return 0


def cmd_timeline(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"quench-demo-timeline-{os.getpid()}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    start = time.monotonic()
    deadline = start + args.timeout
    if assign_all(consumer, args.topic, deadline) == 0:
        log(f"topic {args.topic} not found")
        consumer.close()
        return 3

    events = []
    last_growth = time.monotonic()
    gone_at = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            log(f"stopped waiting after {args.timeout:g} s")
            break
        quiet_for = now - last_growth
        if len(events) >= args.min_events and quiet_for >= args.quiet:
            break
        if args.pid and gone_at is None and process_gone(args.pid):
            log(f"process {args.pid} is gone; draining what it published")
            gone_at = now
        if gone_at is not None and now - gone_at >= args.quiet and quiet_for >= args.quiet:
            break
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log(f"consume error: {msg.error()}")
            continue
        events.append((format_event(msg), msg.partition(), msg.offset()))
        last_growth = time.monotonic()
        if len(events) % 10 == 0:
            log(f"{len(events)} event(s) so far")
    consumer.close()

    events.sort(key=lambda e: (e[0][0], e[1], e[2]))
    widths = [max((len(e[0][1][i]) for e in events), default=0) for i in (0, 1)]
    for (_, (kind, subject, summary)), _, _ in events:
        print(f"{kind:<{widths[0]}}  {subject:<{widths[1]}}  {summary}".rstrip())
    sys.stdout.flush()
    log(f"{len(events)} event(s) from {args.topic}")
    return 0 if events else 3


def cmd_verdict(args):
    """Waits for the contact request of the alert in args.alert, then answers it as the owner."""
    with open(args.alert, encoding="utf-8") as f:
        alert = json.load(f)
    alert_id = alert.get("SystemAlertId") or alert.get("properties", {}).get("systemAlertId")
    resource = alert.get("AzureResourceId") or ""
    subscription = resource.split("/")[2].lower() if resource.count("/") >= 2 else ""
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"quench-demo-owner-{os.getpid()}",
        "enable.auto.commit": False,
    })
    deadline = time.monotonic() + args.timeout
    if assign_all(consumer, args.outcomes, deadline) == 0:
        log(f"topic {args.outcomes} not found")
        consumer.close()
        return 3
    owner = None
    while owner is None and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        try:
            ev = json.loads(msg.value())
        except ValueError:
            continue
        if ev.get("type") == "quench.contact.requested" and ev.get("subject") == alert_id:
            owner = ev.get("data", {}).get("owner", {})
    consumer.close()
    if owner is None:
        log(f"no contact request for {alert_id} within {args.timeout:g} s")
        return 3
    asked = [c.get("address") for c in owner.get("candidates", []) if c.get("address")]
    print(f"owner contacted ({', '.join(asked) or 'no address found'}); "
          f"answering '{args.verdict}' as {args.decided_by}")
    verdict = {"alertId": alert_id, "subscriptionId": subscription, "verdict": args.verdict,
               "decidedBy": args.decided_by, "comment": "sent by scripts/demo.sh"}
    producer = Producer({"bootstrap.servers": args.bootstrap})
    producer.produce(args.verdicts, json.dumps(verdict).encode())
    producer.flush(10)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce", help="send each file as one message")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("files", nargs="+")
    v = sub.add_parser("verdict", help="answer an alert's contact request as its owner")
    v.add_argument("--bootstrap", required=True)
    v.add_argument("--outcomes", default="quench.outcomes")
    v.add_argument("--verdicts", default="quench.verdicts")
    v.add_argument("--alert", required=True, help="the alert file that was sent")
    v.add_argument("--verdict", choices=["expected", "unexpected"], default="unexpected")
    v.add_argument("--decided-by", default="owner@contoso.com")
    v.add_argument("--timeout", type=float, default=60.0)
    t = sub.add_parser("timeline", help="read CloudEvents and print a timeline")
    t.add_argument("--bootstrap", required=True)
    t.add_argument("--topic", required=True)
    t.add_argument("--timeout", type=float, default=60.0)
    t.add_argument("--quiet", type=float, default=3.0)
    t.add_argument("--min-events", type=int, default=1)
    t.add_argument("--pid", type=int, default=0)
    args = parser.parse_args()
    commands = {"produce": cmd_produce, "verdict": cmd_verdict, "timeline": cmd_timeline}
    return commands[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
