#!/usr/bin/python3
"""Helpers for quench's integration tests against quench-devkafka.

Everything here talks to 127.0.0.1 only and every wait is bounded. Processes started through
this module are killed when the test process exits (atexit, SIGTERM/SIGINT handlers, and
PR_SET_PDEATHSIG so that even a SIGKILL of the test takes them down).

Environment:
    QN_BIN_DIR      directory holding quench and quench-devkafka (default: $QN_SOURCE_DIR/build/bin)
    QN_SOURCE_DIR   repository root (default: two levels above this file)
    QN_KEEP_TMP=1   keep the temporary directories (logs, configs) for inspection

Needs Debian's /usr/bin/python3 (python3-confluent-kafka, python3-jsonschema) and kcat.
"""

import atexit
import collections
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING

SOURCE_DIR = os.path.abspath(os.environ.get("QN_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN_DIR = os.path.abspath(os.environ.get("QN_BIN_DIR") or os.path.join(SOURCE_DIR, "build", "bin"))
DATA_DIR = os.path.join(SOURCE_DIR, "tests", "data")
QUENCH = os.path.join(BIN_DIR, "quench")
DEVKAFKA = os.path.join(BIN_DIR, "quench-devkafka")
KCAT = shutil.which("kcat") or "/usr/bin/kcat"

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "tools"))
from validate import InvalidDocument, ParseError, validate_event  # noqa: E402

# Topics and partition counts quench-devkafka creates by default.
DEFAULT_TOPICS = {"defender.alerts": 4, "quench.verdicts": 4, "quench.work": 4,
                  "quench.state": 4, "quench.outcomes": 4, "quench.dlq": 1}


def now_ms():
    return int(time.monotonic() * 1000)


def log(msg):
    print("  [%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ------------------------------------------------------------------------- waiting

class WaitTimeout(AssertionError):
    pass


def wait_until(predicate, timeout, interval=0.1, desc="condition"):
    """Polls predicate() until it returns something truthy; returns that value.
    Raises WaitTimeout after timeout seconds. The poll interval grows up to `interval` s."""
    deadline = time.monotonic() + timeout
    delay = min(interval, 0.02)
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout("timed out after %.1f s waiting for %s" % (timeout, desc))
        time.sleep(min(delay, left))
        delay = min(delay * 2, interval)


# ------------------------------------------------------------------------- processes

_children = []          # Popen objects still to clean up
_tmpdirs = []
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl    # resolved before any fork
except (OSError, AttributeError):
    _prctl = None


def _set_pdeathsig():
    """preexec_fn: the child gets SIGKILL when the test process dies, however it dies.
    (Only a pre-resolved libc call runs between fork and exec.)"""
    if _prctl is not None:
        _prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _child_env():
    """The environment for quench: no QUENCH_* overrides from the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("QUENCH_")}


def spawn(argv, stdout, stderr, env=None):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                         env=env if env is not None else _child_env(),
                         preexec_fn=_set_pdeathsig, close_fds=True)
    _children.append(p)
    return p


def stop_process(p, timeout=15, sig=signal.SIGTERM):
    """Sends sig, waits up to timeout s, then SIGKILL. Returns (exit code, elapsed ms, killed)."""
    start = time.monotonic()
    killed = False
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = True
            p.kill()
            p.wait(timeout=30)
    elapsed = int((time.monotonic() - start) * 1000)
    if p in _children:
        _children.remove(p)
    return p.returncode, elapsed, killed


def kill9(p):
    if p.poll() is None:
        p.kill()
    p.wait(timeout=30)
    if p in _children:
        _children.remove(p)
    return p.returncode


def _cleanup():
    for p in list(_children):
        try:
            stop_process(p, timeout=5)
        except Exception:
            try:
                p.kill()
            except Exception:
                pass
    if os.environ.get("QN_KEEP_TMP") != "1":
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
    else:
        for d in _tmpdirs:
            print("kept %s" % d, file=sys.stderr)


atexit.register(_cleanup)


def _on_signal(signo, frame):
    raise SystemExit(128 + signo)


def install_signal_handlers():
    """Make SIGTERM/SIGINT (e.g. a ctest timeout) run the finally blocks and atexit."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def make_tmpdir(prefix="qn-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def check_binaries():
    missing = [p for p in (QUENCH, DEVKAFKA, KCAT) if not os.access(p, os.X_OK)]
    if missing:
        raise SystemExit("missing executables: %s (set QN_BIN_DIR)" % ", ".join(missing))


# ------------------------------------------------------------------------- devkafka

class DevKafka:
    """A quench-devkafka process. Use as a context manager or call stop()."""

    def __init__(self, tmpdir=None, brokers=1, topics=None, start_timeout=60):
        self.dir = tmpdir or make_tmpdir("qn-devkafka-")
        self.bootstrap_file = os.path.join(self.dir, "bootstrap")
        self.control_file = os.path.join(self.dir, "control")
        self.log_path = os.path.join(self.dir, "devkafka.log")
        argv = [DEVKAFKA, "--brokers", str(brokers), "--bootstrap-file", self.bootstrap_file,
                "--control-file", self.control_file]
        for name, parts in (topics or {}).items():
            argv += ["--topic", "%s:%d" % (name, parts)]
        self._log = open(self.log_path, "wb")
        self.proc = spawn(argv, subprocess.DEVNULL, self._log)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("quench-devkafka exited with %s: %s"
                                   % (self.proc.returncode, self.log_tail()))
            if os.path.exists(self.bootstrap_file):
                with open(self.bootstrap_file) as f:
                    text = f.read().strip()
                return text or None
            return None

        self.bootstrap = wait_until(ready, start_timeout, desc="quench-devkafka bootstrap file")
        self.wait_metadata(list((topics or DEFAULT_TOPICS).keys()), timeout=start_timeout)

    def wait_metadata(self, topics, timeout=30):
        """Waits until every topic has metadata with all partitions led."""
        c = admin_consumer(self.bootstrap)
        try:
            def ok():
                try:
                    md = c.list_topics(timeout=5)
                except KafkaException:
                    return False
                for t in topics:
                    tm = md.topics.get(t)
                    if tm is None or tm.error is not None or not tm.partitions:
                        return False
                    if any(p.leader < 0 for p in tm.partitions.values()):
                        return False
                return True
            wait_until(ok, timeout, desc="topic metadata for %s" % ", ".join(topics))
        finally:
            c.close()

    def control(self, *commands, timeout=10):
        """Applies control commands; returns when quench-devkafka has consumed the file."""
        tmp = self.control_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(commands) + "\n")
        os.rename(tmp, self.control_file)
        wait_until(lambda: not os.path.exists(self.control_file), timeout,
                   desc="quench-devkafka to apply %r" % (commands,))

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=15):
        rc = stop_process(self.proc, timeout=timeout)
        self._log.close()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ------------------------------------------------------------------------- worker

class Worker:
    """A `quench run` process with its config file and a JSON-lines log on stderr."""

    _seq = 0

    def __init__(self, bootstrap, group_id, tmpdir=None, config=None, kafka=None, name=None,
                 budget_ms=10000, start_timeout=60):
        Worker._seq += 1
        self.name = name or "worker%d" % Worker._seq
        self.dir = tmpdir or make_tmpdir("qn-worker-")
        self.config_path = os.path.join(self.dir, self.name + ".json")
        self.log_path = os.path.join(self.dir, self.name + ".log")
        self.budget_ms = budget_ms
        cfg = {
            "kafka": dict({"bootstrap.servers": bootstrap}, **(kafka or {})),
            "group_id": group_id,
            "http": {"address": "127.0.0.1", "port": 0},
            "log_level": "info",
            "shutdown": {"budget_ms": budget_ms},
        }
        for k, v in (config or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        self.config = cfg
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self._log = open(self.log_path, "wb")
        self.started_ms = now_ms()
        self.proc = spawn([QUENCH, "run", "--config", self.config_path], subprocess.DEVNULL,
                          self._log)
        self.http_port = None

        def started():
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s during start-up:\n%s"
                                   % (self.name, self.proc.returncode, self.log_tail()))
            for rec in self.logs():
                if rec.get("msg") == "quench started (observe mode)" and "http_port" in rec:
                    return int(rec["http_port"])
            return None

        self.http_port = wait_until(started, start_timeout, desc="%s start-up line" % self.name)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def logs(self):
        """The parsed JSON log lines so far (non-JSON lines come back as {"raw": text})."""
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

    def log_has(self, msg):
        return any(r.get("msg") == msg for r in self.logs())

    def log_tail(self, n=25):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def errors_logged(self):
        return [r for r in self.logs() if r.get("level") == "error"]

    def http_get(self, path, timeout=5):
        """(status, body text); status None when the connection failed."""
        url = "http://127.0.0.1:%d%s" % (self.http_port, path)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            return None, str(e)

    def metrics(self):
        status, body = self.http_get("/metrics")
        if status != 200:
            raise RuntimeError("/metrics answered %s: %s" % (status, body[:200]))
        return parse_prometheus(body)

    def wait_ready(self, timeout=60):
        return wait_until(lambda: self.http_get("/readyz")[0] == 200, timeout,
                          desc="%s /readyz 200" % self.name)

    def terminate(self, timeout=None):
        """SIGTERM; waits up to timeout (default budget + 20 s) then SIGKILL.
        Returns (exit code, elapsed ms, killed)."""
        if timeout is None:
            timeout = self.budget_ms / 1000.0 + 20
        res = stop_process(self.proc, timeout=timeout)
        self._log.close()
        return res

    def kill9(self):
        rc = kill9(self.proc)
        self._log.close()
        return rc


def parse_prometheus(text):
    """{(name, frozenset(label items)): float} from Prometheus text format."""
    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            continue
        labels = frozenset(label_re.findall(m.group(2) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            pass
    return out


def metric(metrics, name, **labels):
    """A sample's value (0 when absent)."""
    return metrics.get((name, frozenset(labels.items())), 0.0)


def metric_family(metrics, name):
    """{frozenset(labels): value} of one family."""
    return {labels: v for (n, labels), v in metrics.items() if n == name}


# ------------------------------------------------------------------------- kafka clients

Msg = collections.namedtuple("Msg", "topic partition offset key value headers")


def _headers(raw):
    return [(k, v) for k, v in (raw or [])]


def header(msg, name):
    """The last value of header name as text, or None."""
    val = None
    for k, v in msg.headers:
        if k == name:
            val = v
    return None if val is None else val.decode("utf-8", "replace")


def admin_consumer(bootstrap, group="qn-it-admin"):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "socket.timeout.ms": 10000,
                     "log_level": 3})


def partitions_of(bootstrap, topic, timeout=10):
    c = admin_consumer(bootstrap)
    try:
        md = c.list_topics(topic, timeout=timeout)
        tm = md.topics[topic]
        if tm.error is not None:
            raise RuntimeError("topic %s: %s" % (topic, tm.error))
        return sorted(tm.partitions)
    finally:
        c.close()


def watermarks(bootstrap, topic, timeout=10):
    """{partition: (low, high)}."""
    c = admin_consumer(bootstrap)
    try:
        md = c.list_topics(topic, timeout=timeout)
        out = {}
        for p in sorted(md.topics[topic].partitions):
            out[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
        return out
    finally:
        c.close()


def high_watermarks(bootstrap, topic):
    return {p: hi for p, (lo, hi) in watermarks(bootstrap, topic).items()}


def truncated(bootstrap, topics):
    """{topic: {partition: low watermark}} for partitions whose oldest records are gone.
    librdkafka's mock cluster keeps at most about 5 MB per partition and drops the oldest
    segments beyond that; a test that exceeds it cannot check "nothing lost"."""
    out = {}
    for t in topics:
        lows = {p: lo for p, (lo, hi) in watermarks(bootstrap, t).items() if lo > 0}
        if lows:
            out[t] = lows
    return out


def committed(bootstrap, group, topic, timeout=10):
    """{partition: committed offset (negative: none)} of group for topic."""
    c = admin_consumer(bootstrap, group)
    try:
        parts = sorted(c.list_topics(topic, timeout=timeout).topics[topic].partitions)
        res = c.committed([TopicPartition(topic, p) for p in parts], timeout=timeout)
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


class Prod:
    """An idempotent producer (order within a partition is kept) that waits for every
    delivery of each send()."""

    def __init__(self, bootstrap, max_bytes=8 * 1024 * 1024):
        self.p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                           "message.max.bytes": max_bytes, "linger.ms": 1, "log_level": 3})

    def send(self, topic, records, timeout=60):
        """records: iterable of dicts {value, key=None, partition=None, headers=None}.
        Returns [(partition, offset)] in input order; raises unless all were delivered."""
        results = []
        errors = []

        def report(idx):
            def cb(err, msg):
                if err is not None:
                    errors.append((idx, err))
                else:
                    results[idx] = (msg.partition(), msg.offset())
            return cb

        for i, r in enumerate(records):
            results.append(None)
            kw = {"value": r["value"], "on_delivery": report(i)}
            if r.get("key") is not None:
                kw["key"] = r["key"]
            if r.get("partition") is not None:
                kw["partition"] = r["partition"]
            if r.get("headers"):
                kw["headers"] = list(r["headers"].items()) if isinstance(r["headers"], dict) \
                    else r["headers"]
            while True:
                try:
                    self.p.produce(topic, **kw)
                    break
                except BufferError:
                    self.p.poll(0.1)
            self.p.poll(0)
        left = self.p.flush(timeout)
        if left or errors or any(r is None for r in results):
            raise RuntimeError("produce to %s: %d undelivered, errors %s"
                               % (topic, left, errors[:5]))
        return results

    def close(self, timeout=10):
        self.p.flush(timeout)


def produce(bootstrap, topic, records, timeout=60):
    """One-shot Prod(bootstrap).send(topic, records)."""
    p = Prod(bootstrap)
    try:
        return p.send(topic, records, timeout)
    finally:
        p.close()


_value_seq = __import__("itertools").count()


def kcat_produce(bootstrap, topic, values=None, files=None, partition=None, key=None,
                 headers=None, timeout=60, tmpdir=None):
    """Produces with kcat, one message per file (files) or per bytes value (values, written to
    temporary files). All go to one partition in order when partition is given. kcat exits
    non-zero when a message was not delivered; that raises."""
    paths = list(files or [])
    if values:
        d = tmpdir or make_tmpdir("qn-kcat-")
        for i, v in enumerate(values):
            path = os.path.join(d, "value-%d-%d.bin" % (next(_value_seq), i))
            with open(path, "wb") as f:
                f.write(v)
            paths.append(path)
    argv = [KCAT, "-b", bootstrap, "-P", "-t", topic, "-X", "message.max.bytes=%d" % (8 << 20),
            "-X", "enable.idempotence=true", "-X", "log_level=3"]
    if partition is not None:
        argv += ["-p", str(partition)]
    if key is not None:
        argv += ["-k", key]
    for k, v in (headers or {}).items():
        argv += ["-H", "%s=%s" % (k, v)]
    argv += paths
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, preexec_fn=_set_pdeathsig)
    if r.returncode != 0:
        raise RuntimeError("kcat exited %d: %s"
                           % (r.returncode, r.stderr.decode("utf-8", "replace")))
    return len(paths)


def consume_all(bootstrap, topic, idle=2.0, deadline=60, min_count=0, until=None):
    """Reads topic from the beginning of every partition without a consumer group.
    Stops once every partition reached the high watermark seen at the start (and min_count
    messages were read, and until(msgs) is true if given) and then nothing new arrived for
    `idle` seconds; or at `deadline` seconds. Returns [Msg] ordered by (partition, offset)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "qn-it-reader-%d" % os.getpid(),
                  "enable.auto.commit": False, "enable.partition.eof": False,
                  "fetch.message.max.bytes": 8 << 20, "receive.message.max.bytes": 64 << 20,
                  "auto.offset.reset": "earliest", "log_level": 3})
    msgs = []
    try:
        md = c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        pos = {p: 0 for p in parts}
        end = time.monotonic() + deadline
        last_new = time.monotonic()
        while time.monotonic() < end:
            batch = c.consume(500, timeout=0.2)
            for m in batch:
                if m.error():
                    continue
                msgs.append(Msg(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                                _headers(m.headers())))
                pos[m.partition()] = m.offset() + 1
            if batch:
                last_new = time.monotonic()
                continue
            caught_up = all(pos[p] >= highs[p] for p in parts)
            enough = len(msgs) >= min_count and (until is None or until(msgs))
            if caught_up and enough and time.monotonic() - last_new >= idle:
                break
    finally:
        c.close()
    msgs.sort(key=lambda m: (m.partition, m.offset))
    return msgs


class Tail:
    """Follows a topic from the beginning in a background thread; .msgs grows."""

    def __init__(self, bootstrap, topic):
        self.msgs = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.c = Consumer({"bootstrap.servers": bootstrap,
                           "group.id": "qn-it-tail-%d-%s" % (os.getpid(), topic),
                           "enable.auto.commit": False, "auto.offset.reset": "earliest",
                           "fetch.message.max.bytes": 8 << 20,
                           "receive.message.max.bytes": 64 << 20, "log_level": 3})
        parts = sorted(self.c.list_topics(topic, timeout=10).topics[topic].partitions)
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self._stop.is_set():
            batch = self.c.consume(500, timeout=0.1)
            ok = [Msg(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                      _headers(m.headers())) for m in batch if not m.error()]
            if ok:
                with self.lock:
                    self.msgs.extend(ok)

    def snapshot(self):
        with self.lock:
            return list(self.msgs)

    def count(self, pred):
        with self.lock:
            return sum(1 for m in self.msgs if pred(m))

    def close(self):
        self._stop.set()
        self.t.join(timeout=10)
        self.c.close()


# ------------------------------------------------------------------------- outcomes

def parse_events(msgs):
    """[(msg, event dict or None)] for outcome messages."""
    out = []
    for m in msgs:
        try:
            out.append((m, json.loads(m.value)))
        except (TypeError, ValueError):
            out.append((m, None))
    return out


def schema_errors(msgs):
    """Validates every outcome message against outcome.schema.json and the Kafka contract
    (headers ce_type/ce_id equal type/id). Returns a list of problem strings."""
    problems = []
    for m in msgs:
        where = "%s/%d/%d" % (m.topic, m.partition, m.offset)
        try:
            validate_event(m.value, where)
        except (InvalidDocument, ParseError) as e:
            problems.append(str(e))
            continue
        ev = json.loads(m.value)
        if header(m, "ce_type") != ev["type"] or header(m, "ce_id") != ev["id"]:
            problems.append("%s: headers ce_type=%r ce_id=%r do not match the event %r/%r"
                            % (where, header(m, "ce_type"), header(m, "ce_id"), ev["type"],
                               ev["id"]))
    return problems


def derive_id(*parts):
    """quench's deterministic id: hex of the first 16 bytes of SHA-256 over the parts joined by
    0x1f (common/src/crypto.c qn_derive_id). Tests check it against `quench plan` first."""
    return hashlib.sha256(b"\x1f".join(p.encode() for p in parts)).hexdigest()[:32]


def rejected_event_id(topic, partition, offset, index):
    return derive_id("quench.record.rejected", "record:%s/%d/%d" % (topic, partition, offset),
                     str(index))


PlanResult = collections.namedtuple("PlanResult", "events counts rejects stderr")


def quench_plan(path=None, data=None, timeout=60):
    """Runs `quench plan` on a file or bytes. Returns PlanResult(events [dict], counts
    {records, forwarded, skipped, rejected, events}, rejects [(index, reason, message)], stderr)."""
    argv = [QUENCH, "plan", path if path is not None else "-"]
    r = subprocess.run(argv, input=data if path is None else None, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=_child_env(),
                       preexec_fn=_set_pdeathsig)
    err = r.stderr.decode("utf-8", "replace")
    if r.returncode != 0:
        raise RuntimeError("quench plan %s exited %d: %s" % (path, r.returncode, err))
    events = [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]
    m = re.search(r"quench plan: (\d+) records: (\d+) forwarded, (\d+) skipped, (\d+) rejected; "
                  r"(\d+) events", err)
    if not m:
        raise RuntimeError("quench plan %s: no summary line in %r" % (path, err))
    counts = dict(zip(("records", "forwarded", "skipped", "rejected", "events"),
                      map(int, m.groups())))
    rejects = [(int(a), b, c) for a, b, c in
               re.findall(r"quench plan: record (\d+) rejected \(([a-z_]+)\): (.*)", err)]
    return PlanResult(events, counts, rejects, err)


# ------------------------------------------------------------------------- reporting

class Checks:
    """PASS/FAIL bookkeeping: check(name, ok, detail)."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS %s" % name, flush=True)
        else:
            self.failed += 1
            self.failures.append(name)
            text = ("\n       " + str(detail).replace("\n", "\n       ")) if detail else ""
            print("FAIL %s%s" % (name, text), flush=True)
        return bool(ok)

    def equal(self, name, got, want):
        return self.check(name, got == want, "got  %r\nwant %r" % (got, want))

    def error(self, name, exc):
        self.check(name, False, "%s: %s" % (type(exc).__name__, exc))

    def summary(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        if self.failures:
            print("failed: %s" % ", ".join(self.failures), flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


# ------------------------------------------------------------------------- data

def make_alert(template_path, alert_id, subscription, edit=None):
    """An alert made from a flat fixture: its SystemAlertId and its subscription GUID (every
    occurrence, any case) replaced. edit(obj) may change the parsed alert further.
    Returns the JSON text as bytes (pretty-printed like the fixtures)."""
    with open(template_path, encoding="utf-8") as f:
        text = f.read()
    obj = json.loads(text)
    old_id = obj["SystemAlertId"]
    m = re.search(r"/subscriptions/([0-9a-fA-F-]{36})", obj["AzureResourceId"])
    text = text.replace(old_id, alert_id)
    if m:
        text = re.sub(re.escape(m.group(1)), subscription, text, flags=re.IGNORECASE)
    obj = json.loads(text)
    if edit is not None:
        edit(obj)
    return json.dumps(obj, indent=2, ensure_ascii=False).encode("utf-8")


def alert_id_for(namespace, n):
    """A SystemAlertId shaped like Defender's: digits, underscore, GUID."""
    import uuid
    guid = uuid.uuid5(uuid.NAMESPACE_URL, "quench-it/%s/%d" % (namespace, n))
    return "25168%014d_%s" % (n, guid)


def subscription_for(namespace, n):
    import uuid
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "quench-it-sub/%s/%d" % (namespace, n)))
