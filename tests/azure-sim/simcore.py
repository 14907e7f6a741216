"""Shared pieces of the Azure simulator: clock, ids, JSON, OData $filter, paging,
token buckets, fault rules, the request log, long-running operations and the
small amount of crypto (RSA signature verification, certificates) the identity
endpoint needs.  Standard library only; the openssl CLI is used for key material.
"""

import base64
import binascii
import copy
import datetime as _dt
import hashlib
import hmac
import json
import math
import os
import random
import re
import subprocess
import threading
import time
import urllib.parse
import uuid

# --------------------------------------------------------------------------- clock


class Clock:
    """Simulated time: real time plus an adjustable offset (POST /_admin/clock).

    wall() is used for timestamps and token expiry, mono() for durations (token
    buckets, LRO delays).  Advancing the clock moves both."""

    def __init__(self):
        self.offset = 0.0
        self.frozen = None  # (wall, mono) while frozen

    def wall(self):
        return (self.frozen[0] if self.frozen else time.time()) + self.offset

    def mono(self):
        return (self.frozen[1] if self.frozen else time.monotonic()) + self.offset

    def freeze(self, on):
        if on and not self.frozen:
            self.frozen = (time.time(), time.monotonic())
        elif not on and self.frozen:
            # keep simulated time continuous: what was frozen becomes an offset
            self.offset -= (time.time() - self.frozen[0])
            self.frozen = None


CLOCK = Clock()


def iso(ts=None, frac=7):
    """ISO-8601 UTC with 7 fractional digits and 'Z' (the ARM style)."""
    if ts is None:
        ts = CLOCK.wall()
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    base = d.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        micro = "%06d" % d.microsecond
        base += "." + (micro + "0" * frac)[:frac]
    return base + "Z"


def iso_offset(ts=None):
    """ISO-8601 with +00:00 (the style of Automation and async-operation bodies)."""
    if ts is None:
        ts = CLOCK.wall()
    d = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%07d" % (d.microsecond * 10) + "+00:00"


_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$", re.I)


def parse_ts(s):
    """Parse an ISO-8601 timestamp into epoch seconds; None if it is not one.

    Accepts 'Z', '+hh:mm', no zone (UTC), any number of fraction digits, and a
    space where '+' was (an unencoded '+' in a query string decodes to space)."""
    if not isinstance(s, str):
        return None
    s = s.strip()
    m = re.match(r"^(.*\d)\s(\d{2}:?\d{2})$", s)
    if m and "T" in s:
        s = m.group(1) + "+" + m.group(2)
    m = _TS_RE.match(s)
    if not m:
        return None
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    try:
        dt = _dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0),
                          tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    t = dt.timestamp()
    if frac:
        t += float("0." + frac)
    if tz and tz.upper() != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        t -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return t


def new_id():
    return str(uuid.uuid4())


# --------------------------------------------------------------------------- json


def jdump(obj, pretty=False):
    if pretty:
        return json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False).encode("utf-8")
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def strip_sim(obj):
    """Deep copy without the simulator-only 'x-sim' keys."""
    if isinstance(obj, dict):
        return {k: strip_sim(v) for k, v in obj.items() if k != "x-sim"}
    if isinstance(obj, list):
        return [strip_sim(v) for v in obj]
    return obj


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (returns the new value)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    if isinstance(s, str):
        s = s.encode()
    s = s.strip()
    return base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4))


# --------------------------------------------------------------------------- responses


class Response:
    """What a handler returns; the server adds the common headers."""

    __slots__ = ("status", "headers", "body", "reset", "fault", "operation")

    def __init__(self, status=200, body=None, headers=None, content_type=None):
        self.status = status
        self.headers = list(headers or [])
        self.reset = False
        self.fault = None
        self.operation = None
        if body is None:
            self.body = b""
        elif isinstance(body, (bytes, bytearray)):
            self.body = bytes(body)
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
        else:
            self.body = jdump(body)
            if content_type is None:
                content_type = "application/json; charset=utf-8"
        if content_type and self.body is not None:
            self.headers.append(("Content-Type", content_type))

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def set_header(self, name, value):
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))


class HttpError(Exception):
    """Raised by handlers; carries a finished Response."""

    def __init__(self, response):
        super().__init__(response.status)
        self.response = response


# --------------------------------------------------------------------------- OData $filter

class FilterError(ValueError):
    pass


_TOKEN_RE = re.compile(r"""
    \s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<lp>\() | (?P<rp>\)) | (?P<comma>,) | (?P<colon>:)
    | (?P<dt>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)
    | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_@$][A-Za-z0-9_./@$]*)
    )""", re.X)


def _tokenize(s):
    pos, out = 0, []
    s = s.strip()
    while pos < len(s):
        m = _TOKEN_RE.match(s, pos)
        if not m or m.end() == pos:
            raise FilterError("unexpected character at %d in filter" % pos)
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind == "str":
            val = val[1:-1].replace("''", "'")
        out.append((kind, val))
        while pos < len(s) and s[pos].isspace():
            pos += 1
    return out


class ODataFilter:
    """A small OData $filter evaluator: eq ne gt ge lt le, and or not, parentheses,
    startswith/endswith/contains/substringof, paths with '/', lambda any(x: ...),
    quoted strings, unquoted datetimes, GUIDs, numbers, true/false/null.
    Field access goes through `getter(obj, path)`."""

    def __init__(self, text, getter=None):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.getter = getter or default_getter
        self.ast = self._or()
        if self.i != len(self.toks):
            raise FilterError("unexpected token %r" % (self.toks[self.i][1],))

    # -- parser
    def _peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else (None, None)

    def _take(self):
        t = self._peek()
        self.i += 1
        return t

    def _kw(self, word):
        k, v = self._peek()
        if k == "ident" and v.lower() == word:
            self.i += 1
            return True
        return False

    def _or(self):
        node = self._and()
        while self._kw("or"):
            node = ("or", node, self._and())
        return node

    def _and(self):
        node = self._not()
        while self._kw("and"):
            node = ("and", node, self._not())
        return node

    def _not(self):
        if self._kw("not"):
            return ("not", self._not())
        return self._cmp()

    def _cmp(self):
        left = self._value()
        k, v = self._peek()
        if k == "ident" and v.lower() in ("eq", "ne", "gt", "ge", "lt", "le"):
            self.i += 1
            right = self._value()
            return ("cmp", v.lower(), left, right)
        return ("truthy", left)

    def _value(self):
        k, v = self._take()
        if k is None:
            raise FilterError("unexpected end of filter")
        if k == "lp":
            node = self._or()
            if self._take()[0] != "rp":
                raise FilterError("missing ')'")
            return ("group", node)
        if k == "str":
            return ("lit", v)
        if k == "dt":
            return ("lit", v)
        if k == "guid":
            return ("lit", v)
        if k == "num":
            return ("lit", float(v) if "." in v else int(v))
        if k == "ident":
            low = v.lower()
            if low == "true":
                return ("lit", True)
            if low == "false":
                return ("lit", False)
            if low == "null":
                return ("lit", None)
            if self._peek()[0] == "lp":
                # function call or lambda
                if low.endswith("/any") or low.endswith("/all"):
                    coll = v[:-4]
                    self.i += 1
                    var_k, var = self._take()
                    if var_k != "ident" or self._take()[0] != "colon":
                        raise FilterError("bad lambda")
                    body = self._or()
                    if self._take()[0] != "rp":
                        raise FilterError("missing ')' after lambda")
                    return ("lambda", low[-3:], coll, var, body)
                self.i += 1
                args = []
                if self._peek()[0] != "rp":
                    args.append(self._or_value())
                    while self._peek()[0] == "comma":
                        self.i += 1
                        args.append(self._or_value())
                if self._take()[0] != "rp":
                    raise FilterError("missing ')' after function arguments")
                return ("call", low, args)
            return ("path", v)
        raise FilterError("unexpected token %r" % (v,))

    def _or_value(self):
        return self._value()

    # -- evaluator
    def matches(self, obj):
        return bool(self._eval(self.ast, obj, {}))

    def _eval(self, node, obj, env):
        t = node[0]
        if t == "or":
            return self._eval(node[1], obj, env) or self._eval(node[2], obj, env)
        if t == "and":
            return self._eval(node[1], obj, env) and self._eval(node[2], obj, env)
        if t == "not":
            return not self._eval(node[1], obj, env)
        if t == "group":
            return self._eval(node[1], obj, env)
        if t == "truthy":
            return bool(self._val(node[1], obj, env))
        if t == "cmp":
            return compare(node[1], self._val(node[2], obj, env), self._val(node[3], obj, env))
        if t in ("lambda", "call"):
            return self._val(node, obj, env)
        raise FilterError("bad node")

    def _val(self, node, obj, env):
        t = node[0]
        if t == "lit":
            return node[1]
        if t == "group":
            return self._eval(node[1], obj, env)
        if t == "path":
            p = node[1]
            head, _, rest = p.partition("/")
            if head in env:
                base = env[head]
                return self.getter(base, rest) if rest else base
            return self.getter(obj, p)
        if t == "lambda":
            kind, coll, var, body = node[1], node[2], node[3], node[4]
            items = self._val(("path", coll), obj, env) or []
            if not isinstance(items, list):
                items = []
            res = [bool(self._eval(body, obj, dict(env, **{var: it}))) for it in items]
            return any(res) if kind == "any" else all(res)
        if t == "call":
            name, args = node[1], [self._val(a, obj, env) for a in node[2]]
            if name in ("startswith", "endswith", "contains") and len(args) == 2:
                a, b = args
                if not isinstance(a, str) or not isinstance(b, str):
                    return False
                a, b = a.lower(), b.lower()
                return a.startswith(b) if name == "startswith" else (
                    a.endswith(b) if name == "endswith" else b in a)
            if name == "substringof" and len(args) == 2:
                a, b = args
                return isinstance(a, str) and isinstance(b, str) and a.lower() in b.lower()
            if name == "tolower" and len(args) == 1:
                return args[0].lower() if isinstance(args[0], str) else args[0]
            if name == "toupper" and len(args) == 1:
                return args[0].upper() if isinstance(args[0], str) else args[0]
            raise FilterError("unsupported function %s" % name)
        return self._eval(node, obj, env)


def default_getter(obj, path):
    cur = obj
    for part in path.split("/"):
        if isinstance(cur, dict):
            if part in cur:
                cur = cur[part]
            else:
                low = part.lower()
                found = None
                for k, v in cur.items():
                    if k.lower() == low:
                        found = v
                        break
                cur = found
        else:
            return None
    return cur


def compare(op, a, b):
    ta, tb = parse_ts(a) if isinstance(a, str) else None, parse_ts(b) if isinstance(b, str) else None
    if ta is not None and tb is not None and (len(a) >= 10 and len(b) >= 10):
        a, b = ta, tb
    elif isinstance(a, str) and isinstance(b, str):
        a, b = a.lower(), b.lower()
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if a is None or b is None:
        return False
    try:
        if op == "gt":
            return a > b
        if op == "ge":
            return a >= b
        if op == "lt":
            return a < b
        if op == "le":
            return a <= b
    except TypeError:
        return False
    return False


# --------------------------------------------------------------------------- paging


def encode_skiptoken(offset, extra=None):
    d = {"o": offset}
    if extra:
        d.update(extra)
    return b64url(json.dumps(d, separators=(",", ":")))


def decode_skiptoken(tok):
    try:
        d = json.loads(b64url_decode(tok))
        return int(d.get("o", 0)), d
    except (ValueError, binascii.Error, TypeError, AttributeError):
        return None, None


def build_next_link(base_url, path, query_pairs, token, token_param="$skiptoken"):
    """Absolute nextLink: the original query (minus any skip token) plus the new token."""
    pairs = [(k, v) for k, v in query_pairs if k.lower() not in ("$skiptoken", "$skip", "skiptoken")]
    pairs.append((token_param, token))
    q = "&".join("%s=%s" % (urllib.parse.quote(k, safe="$"),
                            urllib.parse.quote(v, safe="$'(),:@!*")) for k, v in pairs)
    return "%s%s?%s" % (base_url, urllib.parse.quote(path, safe="/$@!*'(),;=:-._~"), q)


# --------------------------------------------------------------------------- token buckets


class TokenBucket:
    __slots__ = ("size", "rate", "level", "stamp")

    def __init__(self, size, rate):
        self.size = float(size)
        self.rate = float(rate)
        self.level = float(size)
        self.stamp = CLOCK.mono()

    def _refill(self):
        now = CLOCK.mono()
        if now > self.stamp:
            self.level = min(self.size, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def peek(self):
        self._refill()
        return self.level

    def take(self, n=1.0):
        """Take n tokens; returns (ok, remaining, retry_after_seconds)."""
        self._refill()
        if self.level >= n:
            self.level -= n
            return True, self.level, 0.0
        wait = (n - self.level) / self.rate if self.rate > 0 else 3600.0
        return False, self.level, wait


class RateLimiter:
    """ARM buckets per (scope, principal, class) plus a subscription-global bucket, and
    Graph buckets per app.  Sizes come from config['rate_limits']."""

    def __init__(self):
        self.buckets = {}

    def reset(self):
        self.buckets = {}

    def bucket(self, key, size, rate):
        b = self.buckets.get(key)
        if b is None or b.size != float(size) or b.rate != float(rate):
            b = TokenBucket(size, rate)
            self.buckets[key] = b
        return b

    def snapshot(self):
        out = []
        for key, b in self.buckets.items():
            out.append({"key": list(key), "size": b.size, "refill_per_second": b.rate,
                        "level": round(b.peek(), 3)})
        return out


# --------------------------------------------------------------------------- faults


class FaultRule:
    FIELDS = ("id", "service", "method", "path", "query", "principal", "probability", "count",
              "skip", "action", "latency_ms", "status", "code", "message", "body", "headers",
              "retry_after", "when", "lro", "fired", "seen", "description")

    def __init__(self, spec, rid):
        if not isinstance(spec, dict):
            raise ValueError("a fault rule must be a JSON object")
        unknown = set(spec) - set(self.FIELDS)
        if unknown:
            raise ValueError("unknown fault fields: %s" % ", ".join(sorted(unknown)))
        self.spec = dict(spec)
        self.id = str(spec.get("id") or rid)
        self.service = (spec.get("service") or "any").lower()
        self.method = spec.get("method")
        if isinstance(self.method, str):
            self.method = [self.method.upper()]
        elif isinstance(self.method, list):
            self.method = [m.upper() for m in self.method]
        self.path_re = re.compile(spec["path"], re.I) if spec.get("path") else None
        self.query_re = re.compile(spec["query"], re.I) if spec.get("query") else None
        self.principal = spec.get("principal")
        self.probability = float(spec.get("probability", 1.0))
        self.count = spec.get("count")
        self.skip = int(spec.get("skip", 0))
        self.action = (spec.get("action") or ("latency" if "latency_ms" in spec else "error")).lower()
        if self.action not in ("latency", "error", "reset", "lro", "throttle"):
            raise ValueError("fault action must be latency|error|reset|lro|throttle")
        self.latency = spec.get("latency_ms")
        self.when = (spec.get("when") or "before").lower()
        if self.when not in ("before", "after"):
            raise ValueError("fault 'when' must be before|after")
        self.seen = 0
        self.fired = 0
        if self.action == "lro" and not isinstance(spec.get("lro"), dict):
            raise ValueError("an lro fault needs an 'lro' object")
        if self.latency is not None:
            sample_latency(self.latency)  # validate

    def matches(self, ctx):
        if self.service != "any" and self.service != ctx.service:
            return False
        if self.method and ctx.method not in self.method:
            return False
        if self.path_re and not self.path_re.search(ctx.path):
            return False
        if self.query_re and not self.query_re.search(ctx.raw_query or ""):
            return False
        if self.principal and ctx.principal_ids().isdisjoint({self.principal.lower()}):
            return False
        return True

    def fire(self):
        """Called when matches() is true; decides whether the rule acts this time."""
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.count is not None and self.fired >= int(self.count):
            return False
        if self.probability < 1.0 and random.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def to_json(self):
        d = dict(self.spec)
        d["id"] = self.id
        d["seen"] = self.seen
        d["fired"] = self.fired
        return d


def sample_latency(spec):
    """Latency in seconds from a number (ms) or a distribution object."""
    if spec is None:
        return 0.0
    if isinstance(spec, (int, float)):
        return max(0.0, float(spec) / 1000.0)
    if not isinstance(spec, dict):
        raise ValueError("latency_ms must be a number or an object")
    dist = (spec.get("dist") or "fixed").lower()
    if dist == "fixed":
        ms = float(spec.get("ms", spec.get("value", 0)))
    elif dist == "uniform":
        ms = random.uniform(float(spec["min"]), float(spec["max"]))
    elif dist == "normal":
        ms = random.gauss(float(spec["mean"]), float(spec.get("stddev", 0)))
    elif dist == "exponential":
        ms = random.expovariate(1.0 / max(float(spec["mean"]), 1e-9))
    elif dist == "choice":
        ms = float(random.choice(spec["values"]))
    else:
        raise ValueError("unknown latency distribution %r" % dist)
    if "max" in spec and dist != "uniform":
        ms = min(ms, float(spec["max"]))
    return max(0.0, ms / 1000.0)


# --------------------------------------------------------------------------- request log


class RequestLog:
    def __init__(self, limit=100000):
        self.entries = []
        self.seq = 0
        self.limit = limit
        self.lock = threading.Lock()

    def add(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.entries.append(entry)
            if len(self.entries) > self.limit:
                del self.entries[: len(self.entries) - self.limit]
            return self.seq

    def clear(self):
        with self.lock:
            self.entries = []

    def query(self, params):
        def one(name):
            v = params.get(name)
            return v[0] if isinstance(v, list) else v

        with self.lock:
            items = list(self.entries)
        service, method = one("service"), one("method")
        path_re = re.compile(one("path"), re.I) if one("path") else None
        status, since = one("status"), one("since")
        principal, crid = one("principal"), one("client_request_id")
        op = one("operation")
        out = []
        for e in items:
            if service and e.get("service") != service.lower():
                continue
            if method and e.get("method") != method.upper():
                continue
            if path_re and not path_re.search(e.get("path", "")):
                continue
            if status:
                st = str(e.get("status"))
                if status.endswith("xx"):
                    if not st.startswith(status[0]):
                        continue
                elif st != status:
                    continue
            if since and e["seq"] <= int(since):
                continue
            if principal:
                p = e.get("principal") or {}
                if principal.lower() not in {str(x).lower() for x in p.values() if x}:
                    continue
            if crid and (e.get("client_request_id") or "").lower() != crid.lower():
                continue
            if op and (e.get("operation") or "").lower() != op.lower():
                continue
            out.append(e)
        limit = one("limit")
        if limit:
            out = out[-int(limit):]
        return out


# --------------------------------------------------------------------------- long-running operations


class LongRunningOp:
    def __init__(self, op_id, kind, subscription, namespace, location, polls, delay, retry_after,
                 outcome="Succeeded", error=None, on_done=None, result=None, result_status=200,
                 api_version=None, resource_id=None, on_fail=None):
        self.id = op_id
        self.kind = kind
        self.subscription = subscription
        self.namespace = namespace
        self.location = location
        self.polls_required = int(polls)
        self.delay = float(delay)
        self.retry_after = retry_after
        self.outcome = outcome
        self.error = error
        self.on_done = on_done
        self.on_fail = on_fail
        self.result = result
        self.result_status = result_status
        self.api_version = api_version
        self.resource_id = resource_id
        self.start_wall = CLOCK.wall()
        self.start_mono = CLOCK.mono()
        self.end_wall = None
        self.polls = 0
        self.status = "InProgress"

    def advance(self, count_poll=True):
        """Count a poll and complete the operation when its polls and delay are used up."""
        if self.status != "InProgress":
            return self.status
        if count_poll:
            self.polls += 1
        if self.polls > self.polls_required and CLOCK.mono() - self.start_mono >= self.delay:
            self.finish()
        return self.status

    def finish(self):
        if self.status != "InProgress":
            return
        self.end_wall = CLOCK.wall()
        if self.outcome == "Succeeded" and self.on_done:
            res = self.on_done()
            if res is not None:
                self.result = res
        elif self.outcome != "Succeeded" and self.on_fail:
            self.on_fail()
        self.status = self.outcome

    def status_body(self, path_id):
        body = {"startTime": iso_offset(self.start_wall), "status": self.status, "name": self.id}
        if path_id:
            body = {"id": path_id, **body}
        if self.status != "InProgress" and self.end_wall:
            body["endTime"] = iso_offset(self.end_wall)
        if self.status == "Succeeded" and isinstance(self.result, dict) and self.kind == "runCommand":
            body["properties"] = {"output": self.result}
        if self.status in ("Failed", "Canceled"):
            body["error"] = self.error or {"code": "InternalOperationError",
                                           "message": "The operation failed."}
        return body

    def to_json(self):
        return {"id": self.id, "kind": self.kind, "status": self.status, "polls": self.polls,
                "polls_required": self.polls_required, "delay_seconds": self.delay,
                "subscription": self.subscription, "namespace": self.namespace,
                "location": self.location, "resource_id": self.resource_id,
                "outcome": self.outcome, "startTime": iso(self.start_wall),
                "endTime": iso(self.end_wall) if self.end_wall else None}


# --------------------------------------------------------------------------- crypto

_SHA256_DIGESTINFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rsa_pkcs1v15_verify(n, e, message, signature):
    """RSASSA-PKCS1-v1_5 with SHA-256 (JWS RS256)."""
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(k, "big")
    t = _SHA256_DIGESTINFO + hashlib.sha256(message).digest()
    if k < len(t) + 11:
        return False
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(em, expected)


def _mgf1_sha256(seed, length):
    out, counter = b"", 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def rsa_pss_sha256_verify(n, e, message, signature, salt_len=32):
    """RSASSA-PSS with SHA-256 and MGF1-SHA-256 (JWS PS256; salt length = 32)."""
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    mod_bits = n.bit_length()
    em_bits = mod_bits - 1
    em_len = (em_bits + 7) // 8
    em = pow(s, e, n).to_bytes(k, "big")
    if len(em) > em_len:
        if em[0] != 0:
            return False
        em = em[len(em) - em_len:]
    h_len = 32
    m_hash = hashlib.sha256(message).digest()
    if em_len < h_len + salt_len + 2 or em[-1] != 0xBC:
        return False
    masked_db, h = em[: em_len - h_len - 1], em[em_len - h_len - 1: -1]
    zero_bits = 8 * em_len - em_bits
    if zero_bits and masked_db[0] >> (8 - zero_bits):
        return False
    db = bytes(a ^ b for a, b in zip(masked_db, _mgf1_sha256(h, em_len - h_len - 1)))
    if zero_bits:
        db = bytes([db[0] & (0xFF >> zero_bits)]) + db[1:]
    ps_len = em_len - h_len - salt_len - 2
    if db[:ps_len] != b"\x00" * ps_len or db[ps_len] != 0x01:
        return False
    salt = db[ps_len + 1:]
    h2 = hashlib.sha256(b"\x00" * 8 + m_hash + salt).digest()
    return hmac.compare_digest(h, h2)


_PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def pem_cert_der(pem):
    m = _PEM_CERT_RE.search(pem)
    if not m:
        raise ValueError("no PEM certificate found")
    return base64.b64decode("".join(m.group(1).split()))


def openssl(args, input_bytes=None, check=True):
    p = subprocess.run(["openssl"] + args, input=input_bytes, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args[:2]), p.stderr.decode(errors="replace")))
    return p.stdout


class Certificate:
    """A registered client certificate: DER thumbprints and the RSA public key,
    the latter read with `openssl x509 -modulus` and `-text` at registration time."""

    def __init__(self, pem):
        if isinstance(pem, bytes):
            pem = pem.decode()
        self.pem = pem
        self.der = pem_cert_der(pem)
        self.x5t_s256 = b64url(hashlib.sha256(self.der).digest())
        self.x5t = b64url(hashlib.sha1(self.der).digest())
        self.thumbprint_hex = hashlib.sha1(self.der).hexdigest().upper()
        out = openssl(["x509", "-noout", "-modulus"], pem.encode()).decode()
        m = re.search(r"Modulus=([0-9A-Fa-f]+)", out)
        if not m:
            raise ValueError("certificate has no RSA modulus (only RSA keys are supported)")
        self.n = int(m.group(1), 16)
        text = openssl(["x509", "-noout", "-text"], pem.encode()).decode()
        m = re.search(r"Exponent:\s*(\d+)", text)
        self.e = int(m.group(1)) if m else 65537
        dates = openssl(["x509", "-noout", "-startdate", "-enddate"], pem.encode()).decode()
        self.not_before = self.not_after = None
        for line in dates.splitlines():
            k, _, v = line.partition("=")
            try:
                t = _dt.datetime.strptime(v.strip(), "%b %d %H:%M:%S %Y %Z").replace(
                    tzinfo=_dt.timezone.utc).timestamp()
            except ValueError:
                continue
            if k == "notBefore":
                self.not_before = t
            elif k == "notAfter":
                self.not_after = t

    def verify(self, alg, signing_input, signature):
        if alg == "RS256":
            return rsa_pkcs1v15_verify(self.n, self.e, signing_input, signature)
        if alg == "PS256":
            return rsa_pss_sha256_verify(self.n, self.e, signing_input, signature)
        return False


def generate_ca(state_dir):
    """Test CA + server certificate for 127.0.0.1/localhost (reused if present)."""
    ca_key = os.path.join(state_dir, "ca.key")
    ca_pem = os.path.join(state_dir, "ca.pem")
    srv_key = os.path.join(state_dir, "server.key")
    srv_pem = os.path.join(state_dir, "server.pem")
    if all(os.path.exists(p) for p in (ca_key, ca_pem, srv_key, srv_pem)):
        return ca_pem, srv_pem, srv_key
    cnf = os.path.join(state_dir, "ca.cnf")
    with open(cnf, "w") as f:
        f.write("[req]\ndistinguished_name=dn\nprompt=no\nx509_extensions=v3\n"
                "[dn]\nCN=quench azure-sim test CA\n"
                "[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\n")
    openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
             "-keyout", ca_key, "-out", ca_pem, "-config", cnf])
    csr = os.path.join(state_dir, "server.csr")
    openssl(["req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", srv_key, "-out", csr,
             "-subj", "/CN=localhost"])
    ext = os.path.join(state_dir, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    openssl(["x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
             "-out", srv_pem, "-days", "30", "-sha256", "-extfile", ext])
    for p in (ca_key, srv_key):
        os.chmod(p, 0o600)
    return ca_pem, srv_pem, srv_key


def generate_client_cert(state_dir, name):
    """Self-signed client certificate + key for an app registration (reused if present)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    key = os.path.join(state_dir, "client-%s.key" % safe)
    pem = os.path.join(state_dir, "client-%s.pem" % safe)
    if not (os.path.exists(key) and os.path.exists(pem)):
        openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
                 "-keyout", key, "-out", pem, "-subj", "/CN=%s" % safe[:60]])
        os.chmod(key, 0o600)
    return pem, key


def sign_jwt_openssl(header, claims, key_file, alg="RS256"):
    """Sign a JWT with the openssl CLI (used by tests and client.py, not by the server)."""
    signing_input = (b64url(json.dumps(header, separators=(",", ":"))) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")))).encode()
    args = ["dgst", "-sha256", "-sign", key_file]
    if alg == "PS256":
        args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]
    sig = openssl(args, signing_input)
    return signing_input.decode() + "." + b64url(sig)


def ceil_seconds(x):
    return max(1, int(math.ceil(x - 1e-9)))
