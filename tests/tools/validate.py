#!/usr/bin/python3
"""Validate quench JSON documents against the JSON Schemas in schemas/.

Command line:
    validate.py [--batch] [--quiet] SCHEMA_NAME [FILE ...|-]

SCHEMA_NAME is one of alert, outcome, verdict, config (schemas/<name>.schema.json).
Each FILE ("-" or no FILE: standard input) holds one JSON document or JSON lines (one
document per line); the format is detected. With --batch (meant for alert input), a
document may also be a JSON array or a {"records": [...]} batch, and only the records that
look like alerts are validated, as the worker's ingest does. Exit status: 0 all valid,
1 a document is invalid or unparsable, 2 usage or I/O error. Each problem is reported
as FILE[:LINE][ record N]: $.json.path: message.

Python use (add tests/tools to sys.path):
    from validate import validate_event, validate, errors, load_schema
    validate_event(obj_or_json_text)   # outcome event; raises InvalidDocument
    validate("verdict", obj)           # any schema; raises InvalidDocument
    errors("config", obj)              # list of "$.path: message" strings

Needs Debian's python3-jsonschema (4.x): run with /usr/bin/python3.
"""

import argparse
import datetime
import functools
import json
import os
import re
import sys

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_NAMES = ("alert", "outcome", "verdict", "config")
SCHEMA_DIR = os.environ.get("QN_SCHEMA_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas"))
MAX_REPORTED_ERRORS = 20

__all__ = ["SCHEMA_NAMES", "SCHEMA_DIR", "InvalidDocument", "ParseError", "load_schema",
           "validator", "errors", "validate", "validate_event", "parse_json",
           "parse_documents", "load_file", "looks_like_alert", "unwrap_batch"]


class InvalidDocument(ValueError):
    """A document does not satisfy its schema. .errors holds one line per problem."""

    def __init__(self, name, errs, where=None):
        self.schema = name
        self.errors = list(errs)
        self.where = where
        head = "%s: " % where if where else ""
        super().__init__("%sinvalid %s document:\n  %s" % (head, name, "\n  ".join(self.errors)))


class ParseError(ValueError):
    """Input that is not strict JSON. .line is 1-based when known."""

    def __init__(self, message, line=None):
        self.line = line
        super().__init__(message)


# ------------------------------------------------------------------------- schemas

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def _format_checker():
    checker = FormatChecker()

    # python3-jsonschema has no date-time checker unless rfc3339-validator is installed.
    @checker.checks("date-time", raises=ValueError)
    def _date_time(value):
        if not isinstance(value, str):
            return True
        if not _RFC3339.match(value):
            raise ValueError("not an RFC 3339 date-time")
        # fromisoformat checks the calendar; it keeps at most 6 fraction digits.
        text = re.sub(r"\.(\d{6})\d+", r".\1", value).replace("Z", "+00:00")
        datetime.datetime.fromisoformat(text)
        return True

    return checker


@functools.lru_cache(maxsize=None)
def load_schema(name):
    """The parsed schema dict of schemas/<name>.schema.json."""
    if name not in SCHEMA_NAMES:
        raise KeyError("unknown schema %r (one of: %s)" % (name, ", ".join(SCHEMA_NAMES)))
    path = os.path.join(SCHEMA_DIR, name + ".schema.json")
    with open(path, "rb") as f:
        return parse_json(f.read(), path)


@functools.lru_cache(maxsize=None)
def validator(name):
    """A Draft 2020-12 validator for schemas/<name>.schema.json, with format checking."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_format_checker())


def json_path(parts):
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += "[%d]" % p
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", p):
            out += "." + p
        else:
            out += "[%s]" % json.dumps(p)
    return out


def _short(value, limit=80):
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _message(err):
    if len(err.message) <= 240:
        return err.message
    return "%s fails %s %s" % (_short(err.instance), err.validator, _short(err.validator_value, 120))


def _alert_branch(instance):
    """Which alert.schema.json anyOf branch a failing record was meant for: 0 flat, 1 REST."""
    if isinstance(instance, dict) and isinstance(instance.get("properties"), dict) \
            and "SystemAlertId" not in instance and "AlertType" not in instance:
        return 1
    return 0


def _flatten(err, name, depth=0):
    """Turn one jsonschema error into report lines, opening anyOf/oneOf."""
    path = json_path(err.absolute_path)
    if err.validator in ("anyOf", "oneOf") and err.context:
        if name == "alert" and not err.absolute_path:
            branch = _alert_branch(err.instance)
            shape = ("flat continuous-export alert", "Alerts REST API alert")[branch]
            sub = [e for e in err.context if e.schema_path and e.schema_path[0] == branch]
            lines = []
            for e in sorted(sub, key=lambda e: list(map(str, e.absolute_path))):
                lines.extend(_flatten(e, name, depth + 1))
            return ["%s (as %s)" % (line, shape) for line in lines] or [path + ": " + err.message]
        alts = {}
        for e in err.context:
            alts.setdefault(e.schema_path[0] if e.schema_path else 0, []).append(e)
        parts = ["(%d) %s" % (i + 1, "; ".join(
            "%s: %s" % (json_path(e.absolute_path), _message(e)) for e in alts[k]))
            for i, k in enumerate(sorted(alts))]
        return ["%s: not valid under any alternative of %s: %s" % (path, err.validator, " | ".join(parts))]
    return ["%s: %s" % (path, _message(err))]


def errors(name, obj):
    """Problems of obj against schema name, as '$.path: message' strings (empty if valid)."""
    errs = sorted(validator(name).iter_errors(obj),
                  key=lambda e: (list(map(str, e.absolute_path)), str(e.schema_path)))
    lines = []
    for e in errs:
        lines.extend(_flatten(e, name))
    if len(lines) > MAX_REPORTED_ERRORS:
        lines = lines[:MAX_REPORTED_ERRORS] + ["... %d more" % (len(lines) - MAX_REPORTED_ERRORS)]
    return lines


def validate(name, obj, where=None):
    """Raise InvalidDocument unless obj (a parsed document, or JSON text/bytes) is valid."""
    if isinstance(obj, (str, bytes, bytearray)):
        obj = parse_json(obj, where or "<text>")
    errs = errors(name, obj)
    if errs:
        raise InvalidDocument(name, errs, where)


def validate_event(obj, where=None):
    """Validate one outcome event (dict, or JSON text/bytes) against outcome.schema.json."""
    validate("outcome", obj, where)


# ------------------------------------------------------------------------- parsing

def _pairs(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate key %s" % json.dumps(k))
        out[k] = v
    return out


def _no_constant(name):
    raise ValueError("%s is not JSON" % name)


def parse_json(data, where="<input>"):
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParseError("not UTF-8: %s" % e)
    try:
        return json.loads(data, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ParseError("not JSON: %s" % e, e.lineno)
    except (ValueError, RecursionError) as e:
        raise ParseError("not JSON: %s" % e)


def parse_documents(data, where="<input>"):
    """[(line or None, document)]: one JSON document, or JSON lines (detected)."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParseError("not UTF-8: %s" % e)
    if not data.strip():
        raise ParseError("no JSON document (empty input)")
    try:
        return [(None, parse_json(data, where))]
    except ParseError as whole:
        lines = [(i + 1, ln) for i, ln in enumerate(data.split("\n")) if ln.strip()]
        if len(lines) < 2:
            raise
        docs = []
        for lineno, text in lines:
            try:
                docs.append((lineno, parse_json(text, where)))
            except ParseError as e:
                if not docs:          # first line is no document either: not JSON lines
                    raise whole
                raise ParseError(str(e).replace("line 1 ", ""), lineno)
        return docs


def load_file(path):
    """parse_documents() of a file ("-" is standard input)."""
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return parse_documents(data, path)


# ------------------------------------------------------------------------- batches

def _get_ci(obj, key):
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == key:
            return v
    return None


def looks_like_alert(obj):
    """True when ingest treats obj as an alert: SystemAlertId or AlertType at top level
    (any case), or properties.systemAlertId / properties.alertType (any case)."""
    if not isinstance(obj, dict):
        return False
    if _get_ci(obj, "systemalertid") is not None or _get_ci(obj, "alerttype") is not None:
        return True
    props = _get_ci(obj, "properties")
    return isinstance(props, dict) and (_get_ci(props, "systemalertid") is not None
                                        or _get_ci(props, "alerttype") is not None)


def unwrap_batch(doc):
    """[(index, record)]: a JSON array, a {"records": [...]} batch, or one record (index 0)."""
    if isinstance(doc, list):
        return list(enumerate(doc))
    if isinstance(doc, dict) and set(doc) == {"records"} and isinstance(doc["records"], list):
        return list(enumerate(doc["records"]))
    return [(0, doc)]


# ------------------------------------------------------------------------- CLI

def _where(path, line, index=None):
    out = path if line is None else "%s:%d" % (path, line)
    return out if index is None else "%s record %d" % (out, index)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="validate.py",
        description="Validate JSON documents or JSON lines against schemas/<SCHEMA_NAME>.schema.json.")
    ap.add_argument("schema", metavar="SCHEMA_NAME", choices=SCHEMA_NAMES,
                    help="one of: " + ", ".join(SCHEMA_NAMES))
    ap.add_argument("files", metavar="FILE", nargs="*", help='input files; "-" or none: stdin')
    ap.add_argument("--batch", action="store_true",
                    help="unwrap arrays and {\"records\": [...]} and validate only alert-like records")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing when all are valid")
    args = ap.parse_args(argv)

    try:
        validator(args.schema)
    except (OSError, ParseError, jsonschema.SchemaError) as e:
        print("validate.py: cannot load schema %s: %s" % (args.schema, e), file=sys.stderr)
        return 2

    bad = good = skipped = 0
    for path in args.files or ["-"]:
        try:
            docs = load_file(path)
        except OSError as e:
            print("validate.py: %s: %s" % (path, e), file=sys.stderr)
            return 2
        except ParseError as e:
            print("%s: %s" % (_where(path, e.line), e), file=sys.stderr)
            bad += 1
            continue
        for line, doc in docs:
            records = unwrap_batch(doc) if args.batch else [(None, doc)]
            for index, rec in records:
                if args.batch and not looks_like_alert(rec):
                    skipped += 1
                    continue
                where = _where(path, line, index if args.batch and len(records) > 1 else None)
                errs = errors(args.schema, rec)
                if errs:
                    bad += 1
                    for err in errs:
                        print("%s: %s" % (where, err), file=sys.stderr)
                else:
                    good += 1
    if bad:
        print("validate.py: %d invalid, %d valid (%s)" % (bad, good, args.schema), file=sys.stderr)
        return 1
    if not args.quiet:
        extra = ", %d non-alert records skipped" % skipped if args.batch else ""
        print("validate.py: %d valid %s document(s)%s" % (good, args.schema, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
