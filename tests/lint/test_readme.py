#!/usr/bin/python3
"""lint.readme: README.md stays true to the code it documents.

Checks:
  quick-start      the README's first fenced code block is under "## Quick start", the first
                   section, and its first two commands are scripts/demo.sh and scripts/test.sh
                   (both exist and are executable)
  config-reference the section between <!-- config-reference:begin --> and
                   <!-- config-reference:end --> is what tests/tools/config_reference.py generates
                   from schemas/config.schema.json (fix: config_reference.py --write README.md)
  metrics          every metric name the code registers (string literals "quench_[a-z_]+" in
                   worker/*.c, worker/tasks/*.c and common/src/*.c) appears in the README's
                   "Metrics" section, and the section names no quench_* metric the code lacks
  task-kinds       every task kind of policy.modes in the config schema has a row in the
                   permissions table ("Azure permissions by task kind")
  links            every relative Markdown link points at a file or directory that exists, and
                   every #anchor at a heading of the README

Usage: test_readme.py [--source DIR] [--readme FILE]
Prints PASS/FAIL per check and "N passed, M failed"; exit status 1 if anything failed.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.environ.get("QN_SOURCE_DIR") or os.path.join(HERE, "..", ".."))

METRIC_LITERAL = re.compile(r'"(quench_[a-z_]+)"')
METRIC_WORD = re.compile(r"(?<![A-Za-z0-9_])(quench_[a-z_]+[a-z])(?![A-Za-z0-9_])")
FENCE = re.compile(r"^(```|~~~)")


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, problems):
        if problems:
            self.failed += 1
            print("FAIL %s" % name)
            for p in problems:
                print("     %s" % p)
        else:
            self.passed += 1
            print("PASS %s" % name)


def sections(text):
    """@returns [(level, title, body)] for every ATX heading outside code blocks."""
    out = []
    level, title, body = 0, "", []
    in_code = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
        m = None if in_code else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            out.append((level, title, "\n".join(body)))
            level, title, body = len(m.group(1)), m.group(2), []
        else:
            body.append(line)
    out.append((level, title, "\n".join(body)))
    return out


def section_body(text, predicate):
    """The text of the first level-2 section whose title matches, up to the next level-2 one."""
    parts = sections(text)
    for i, (level, title, body) in enumerate(parts):
        if level == 2 and predicate(title):
            chunks = [body]
            for level2, title2, body2 in parts[i + 1:]:
                if level2 <= 2:
                    break
                chunks.append("#" * level2 + " " + title2 + "\n" + body2)
            return "\n".join(chunks)
    return None


def anchor(title):
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to '-'."""
    t = re.sub(r"`", "", title.strip().lower())
    t = re.sub(r"[^\w\- ]", "", t)
    return t.replace(" ", "-")


# ---- checks ---------------------------------------------------------------------------------


def check_quick_start(text, source):
    problems = []
    parts = [p for p in sections(text) if p[0] == 2]
    if not parts or parts[0][1].strip().lower() != "quick start":
        problems.append("the first '## ' section must be 'Quick start', not %r"
                        % (parts[0][1] if parts else None))
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if FENCE.match(l)), None)
    if start is None:
        return problems + ["the README has no fenced code block"]
    heading = next((l for l in reversed(lines[:start]) if l.startswith("## ")), None)
    if heading is None or heading[3:].strip().lower() != "quick start":
        problems.append("the first code block is not under '## Quick start' (it is under %r)"
                        % heading)
    commands = []
    for line in lines[start + 1:]:
        if FENCE.match(line):
            break
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and comment continuation lines
        commands.append(stripped.split()[0])
    want = ["scripts/demo.sh", "scripts/test.sh"]
    if commands[:2] != want:
        problems.append("the first commands are %s, not %s" % (commands[:2], want))
    for script in want:
        path = os.path.join(source, script)
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            problems.append("%s is missing or not executable" % script)
    return problems


def check_config_reference(readme, source):
    tool = os.path.join(source, "tests", "tools", "config_reference.py")
    schema = os.path.join(source, "schemas", "config.schema.json")
    proc = subprocess.run([sys.executable, tool, "--schema", schema, "--check", readme],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return []
    out = (proc.stderr + proc.stdout).strip().splitlines()
    return out[:40] + (["... (%d more lines)" % (len(out) - 40)] if len(out) > 40 else [])


def code_metrics(source):
    files = []
    for pattern in ("worker/*.c", "worker/tasks/*.c", "common/src/*.c"):
        files += sorted(glob.glob(os.path.join(source, pattern)))
    found = {}
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for name in METRIC_LITERAL.findall(f.read()):
                found.setdefault(name, os.path.relpath(path, source))
    return found


def check_metrics(text, source):
    body = section_body(text, lambda t: "metrics" in t.lower())
    if body is None:
        return ["no '## ' section with 'Metrics' in its title"]
    registered = code_metrics(source)
    if not registered:
        return ["found no \"quench_...\" string literal in worker/ or common/src/"]
    documented = set(METRIC_WORD.findall(body))
    problems = []
    for name in sorted(registered):
        if name not in documented:
            problems.append("%s (registered in %s) is not in the Metrics section"
                            % (name, registered[name]))
    for name in sorted(documented - set(registered)):
        problems.append("the Metrics section names %s, which the code does not register" % name)
    return problems


def check_task_kinds(text, source):
    with open(os.path.join(source, "schemas", "config.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    try:
        kinds = list(schema["properties"]["policy"]["properties"]["modes"]["properties"])
    except KeyError:
        return ["schemas/config.schema.json has no policy.modes properties"]
    body = section_body(text, lambda t: "permission" in t.lower())
    if body is None:
        return ["no '## ' section with 'permission' in its title"]
    rows = [l for l in body.splitlines() if l.lstrip().startswith("|")]
    first_cells = " ".join(l.split("|")[1] for l in rows if l.count("|") >= 2)
    return ["task kind %s has no row in the permissions table" % k
            for k in kinds if "`%s`" % k not in first_cells]


def check_links(text, source, readme):
    base = os.path.dirname(os.path.abspath(readme))
    anchors = {anchor(title) for level, title, _ in sections(text) if level > 0}
    problems = []
    stripped = re.sub(r"(?ms)^(```|~~~).*?^\1", "", text)  # no links inside code blocks
    stripped = re.sub(r"`[^`\n]*`", "", stripped)
    for target in re.findall(r"\]\(([^)\s]+)\)", stripped):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        path, _, frag = target.partition("#")
        problem = None
        if path:
            if not os.path.exists(os.path.join(base, path)):
                problem = "link to %s: no such file" % target
        elif frag and frag not in anchors:
            problem = "link to #%s: no such heading" % frag
        if problem and problem not in problems:
            problems.append(problem)
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default=SOURCE_DIR)
    ap.add_argument("--readme")
    args = ap.parse_args()
    source = os.path.abspath(args.source)
    readme = args.readme or os.path.join(source, "README.md")
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    rep = Report()
    rep.check("quick-start", check_quick_start(text, source))
    rep.check("config-reference", check_config_reference(readme, source))
    rep.check("metrics", check_metrics(text, source))
    rep.check("task-kinds", check_task_kinds(text, source))
    rep.check("links", check_links(text, source, readme))
    print("%d passed, %d failed" % (rep.passed, rep.failed))
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
