#!/usr/bin/python3
"""Lint quench's JSON Schemas and the fixtures in tests/data against them.

usage: check_schemas.py [--data DIR] [-v]

Checks:
  schemas    every schemas/*.schema.json is a valid Draft 2020-12 schema; every "default" in
             config.schema.json validates against its own subschema, and every config property
             has a description and a default; the task kinds agree between config and outcome.
  alerts     tests/data/alerts/*.json and *.jsonl, tests/data/demo/*.json: documents may be one
             record, JSON lines, a JSON array or {"records": [...]}; records that look like
             alerts must validate against alert.schema.json. A file with no alert must be one
             of NON_ALERT_FIXTURES. Non-JSON demo files (*.txt) must fail to parse.
  hostile    tests/data/hostile/*: see HOSTILE_SCHEMA_VALID, HOSTILE_EXPECT and
             tests/data/hostile/README.md.
  reference  Microsoft's Alerts REST API examples in ../shared/reference/azure (or
             $QN_REFERENCE_DIR) pass the alert schema; skipped when the directory is absent.
  verdicts   tests/data/verdicts/*.json against verdict.schema.json
  config     tests/data/config/*.json against config.schema.json
  outcomes   tests/data/outcomes/*.jsonl against outcome.schema.json (each line; event ids
             must be unique within a file)
Files named bad-* must FAIL: every document (every line, for JSON lines) must be invalid.
Prints one line per problem and ends with "N passed, M failed"; exit status 1 if M > 0.
"""

import argparse
import glob
import os
import sys

sys.dont_write_bytecode = True  # keep tests/tools free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import validate as V  # noqa: E402

from jsonschema import Draft202012Validator, SchemaError  # noqa: E402

DATA_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))

# Fixtures under alerts/ that hold only records ingest must skip (never reject).
NON_ALERT_FIXTURES = {"assessment.json", "sub-assessment.json", "secure-score.json", "compliance.json"}
# Hostile records the alert schema cannot catch: ingest enforces these limits.
HOSTILE_SCHEMA_VALID = {"deep.json", "ref-loop.json"}
# For the others: file name prefix -> text the schema's complaint must mention.
HOSTILE_EXPECT = {"no-alert-id": "SystemAlertId", "bad-resource-id": "AzureResourceId"}
# Microsoft's Alerts REST API examples (outside the repo; skipped when absent).
REFERENCE_DIR = os.environ.get("QN_REFERENCE_DIR") or os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "reference", "azure"))


class Tally:
    def __init__(self, verbose):
        self.passed = 0
        self.failed = 0
        self.verbose = verbose

    def ok(self, what):
        self.passed += 1
        if self.verbose:
            print("ok   %s" % what)

    def fail(self, what, detail=None):
        self.failed += 1
        print("FAIL %s" % what)
        for line in (detail or []):
            print("       %s" % line)


def rel(path):
    return os.path.relpath(path, os.path.join(DATA_DIR, "..", ".."))


def files(pattern):
    return sorted(glob.glob(os.path.join(DATA_DIR, pattern)))


# --------------------------------------------------------------------------- schemas

def _walk_defaults(schema, path, out):
    if isinstance(schema, dict):
        if "default" in schema:
            out.append((path, schema))
        for key in ("properties", "$defs", "patternProperties"):
            for name, sub in (schema.get(key) or {}).items():
                _walk_defaults(sub, path + [name], out)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                _walk_defaults(schema[key], path + [key], out)


def check_schemas(t):
    for name in V.SCHEMA_NAMES:
        try:
            schema = V.load_schema(name)
            Draft202012Validator.check_schema(schema)
            if not str(schema.get("$id", "")).endswith("/%s.schema.json" % name):
                raise SchemaError("$id does not end with /%s.schema.json" % name)
            V.validator(name)
            t.ok("schema %s" % name)
        except (OSError, V.ParseError, SchemaError) as e:
            t.fail("schema %s" % name, [str(e).splitlines()[0]])

    # config: every property documented, every default valid against its own subschema.
    try:
        config = V.load_schema("config")
    except (OSError, V.ParseError):
        return
    problems = []

    def props(schema, path):
        for pname, sub in (schema.get("properties") or {}).items():
            where = ".".join(path + [pname])
            if "description" not in sub:
                problems.append("config %s has no description" % where)
            if "default" not in sub:
                problems.append("config %s has no default" % where)
            props(sub, path + [pname])
    props(config, [])
    found = []
    _walk_defaults(config, [], found)
    for path, sub in found:
        sub_schema = {k: v for k, v in sub.items() if k != "default"}
        errs = sorted(Draft202012Validator(sub_schema).iter_errors(sub["default"]), key=str)
        if errs:
            problems.append("config default of %s: %s" % (".".join(path) or "$", errs[0].message))
    # The root's implied default ({}), i.e. an empty file, must be a valid configuration too.
    if V.errors("config", {}):
        problems.append("an empty config object is not valid")
    if problems:
        t.fail("config schema descriptions and defaults", problems)
    else:
        t.ok("config schema: %d defaults valid, every property documented" % len(found))

    try:
        kinds_cfg = sorted(config["properties"]["policy"]["properties"]["modes"]["properties"])
        kinds_out = sorted(V.load_schema("outcome")["$defs"]["task"]["properties"]["kind"]["enum"])
        if kinds_cfg == kinds_out:
            t.ok("task kinds agree (config policy.modes, outcome task.kind): %d" % len(kinds_cfg))
        else:
            t.fail("task kinds differ between config and outcome",
                   ["config only: %s" % sorted(set(kinds_cfg) - set(kinds_out)),
                    "outcome only: %s" % sorted(set(kinds_out) - set(kinds_cfg))])
    except (KeyError, OSError, V.ParseError) as e:
        t.fail("task kinds agree", ["missing %s" % e])


# --------------------------------------------------------------------------- fixtures

def _docs(path, t):
    try:
        return V.load_file(path)
    except V.ParseError as e:
        t.fail(rel(path), ["%s%s" % ("line %d: " % e.line if e.line else "", e)])
    except OSError as e:
        t.fail(rel(path), [str(e)])
    return None


def _where(path, line, index=None):
    out = rel(path) if line is None else "%s:%d" % (rel(path), line)
    return out if index is None else "%s record %d" % (out, index)


def check_alert_files(t, paths, section):
    alerts = skipped = 0
    for path in paths:
        base = os.path.basename(path)
        if not base.endswith((".json", ".jsonl")):
            try:
                V.load_file(path)
                t.fail(rel(path), ["non-JSON fixture parses as JSON"])
            except V.ParseError:
                t.ok("%s is not JSON, as intended" % rel(path))
            continue
        docs = _docs(path, t)
        if docs is None:
            continue
        found = 0
        for line, doc in docs:
            records = V.unwrap_batch(doc)
            for index, rec in records:
                if not V.looks_like_alert(rec):
                    skipped += 1
                    continue
                found += 1
                where = _where(path, line, index if len(records) > 1 else None)
                errs = V.errors("alert", rec)
                if errs:
                    t.fail(where, errs)
                else:
                    t.ok(where)
        alerts += found
        if found == 0 and base not in NON_ALERT_FIXTURES:
            t.fail(rel(path), ["no alert record found (add the file to NON_ALERT_FIXTURES "
                               "in check_schemas.py if that is intended)"])
        elif found and base in NON_ALERT_FIXTURES:
            t.fail(rel(path), ["listed as a non-alert fixture but holds %d alert(s)" % found])
        elif found == 0:
            t.ok("%s holds no alert, as intended" % rel(path))
    print("%s: %d files, %d alert records, %d non-alert records skipped"
          % (section, len(paths), alerts, skipped))


def check_hostile(t):
    paths = [p for p in files("hostile/*") if not p.endswith(".md")]
    for path in paths:
        base = os.path.basename(path)
        try:
            docs = V.load_file(path)
        except V.ParseError as e:
            if base.endswith(".json"):
                t.fail(rel(path), ["not JSON: %s" % e])
            else:
                t.ok("%s is not JSON, as intended" % rel(path))
            continue
        if not base.endswith(".json"):
            t.fail(rel(path), ["meant to be non-JSON but parses"])
            continue
        records = [(line, i, r) for line, d in docs for i, r in V.unwrap_batch(d)]
        errs = [e for _, _, r in records for e in V.errors("alert", r)]
        if base in HOSTILE_SCHEMA_VALID:
            if errs:
                t.fail(rel(path), ["expected schema-valid (ingest enforces this case)"] + errs)
            else:
                t.ok("%s is schema-valid; ingest must reject or defuse it" % rel(path))
        elif not errs:
            t.fail(rel(path), ["hostile record passes the alert schema"])
        else:
            want = [v for k, v in HOSTILE_EXPECT.items() if base.startswith(k)]
            if want and not any(want[0] in e for e in errs):
                t.fail(rel(path), ["rejected, but not for %s" % want[0]] + errs)
            else:
                t.ok("%s is rejected by the alert schema: %s" % (rel(path), errs[0]))
    print("hostile: %d files" % len(paths))


def check_reference(t):
    """Microsoft's own Alerts REST API examples must pass the alert schema."""
    n = 0
    for name, pick in (("security-alerts-get.json", lambda b: [b]),
                       ("security-alerts-list-subscription.json", lambda b: b["value"])):
        path = os.path.join(REFERENCE_DIR, name)
        if not os.path.exists(path):
            continue
        try:
            body = V.load_file(path)[0][1]["responses"]["200"]["body"]
            for i, alert in enumerate(pick(body)):
                n += 1
                errs = V.errors("alert", alert)
                if errs:
                    t.fail("%s alert %d" % (path, i), errs)
                else:
                    t.ok("%s alert %d" % (path, i))
        except (V.ParseError, KeyError, TypeError, IndexError) as e:
            t.fail(path, ["unexpected example layout: %s" % e])
    print("reference: %d Microsoft example alerts%s"
          % (n, "" if n else " (reference directory not found, skipped)"))


def check_plain(t, name, pattern, section):
    paths = files(pattern)
    good = bad = 0
    for path in paths:
        expect_bad = os.path.basename(path).startswith("bad-")
        docs = _docs(path, t)
        if docs is None:
            continue
        ids = {}
        for line, doc in docs:
            where = _where(path, line)
            errs = V.errors(name, doc)
            if expect_bad:
                bad += 1
                if errs:
                    t.ok("%s invalid as intended: %s" % (where, errs[0]))
                else:
                    t.fail(where, ["expected to FAIL %s validation but is valid" % name])
                continue
            good += 1
            if errs:
                t.fail(where, errs)
            else:
                t.ok(where)
            if name == "outcome" and isinstance(doc, dict) and "id" in doc:
                if doc["id"] in ids:
                    t.fail(where, ["event id %s repeats line %s" % (doc["id"], ids[doc["id"]])])
                ids[doc["id"]] = line
    print("%s: %d files, %d valid documents, %d bad-* documents" % (section, len(paths), good, bad))


def main(argv=None):
    global DATA_DIR
    ap = argparse.ArgumentParser(prog="check_schemas.py",
                                 description="Lint schemas/ and validate tests/data fixtures.")
    ap.add_argument("--data", default=DATA_DIR, help="fixture directory (default: tests/data)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every passing check")
    args = ap.parse_args(argv)
    DATA_DIR = os.path.abspath(args.data)

    t = Tally(args.verbose)
    before = t.passed
    check_schemas(t)
    print("schemas: %d checks passed" % (t.passed - before))
    check_alert_files(t, files("alerts/*.json") + files("alerts/*.jsonl"), "alerts")
    check_alert_files(t, files("demo/*"), "demo")
    check_hostile(t)
    check_reference(t)
    check_plain(t, "verdict", "verdicts/*.json", "verdicts")
    check_plain(t, "config", "config/*.json", "config")
    check_plain(t, "outcome", "outcomes/*.jsonl", "outcomes")
    print("%d passed, %d failed" % (t.passed, t.failed))
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
