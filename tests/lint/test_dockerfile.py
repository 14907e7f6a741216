#!/usr/bin/python3
"""Static checks of docker/Dockerfile, its .dockerignore and docker/compose.yaml.

No Docker engine runs where quench is developed and tested, so nothing here builds or runs an
image. Instead this parses the files and checks what review would otherwise have to catch:

Dockerfile
  every FROM pinned by @sha256 (64 hex digits), with a tag and never :latest; every FROM of one
  image uses the same digest; the final stage has a numeric non-root USER, an exec-form (JSON)
  ENTRYPOINT and CMD, EXPOSE 9464, OCI labels whose base.name/base.digest match its FROM, and no
  RUN, package manager or shell when it is distroless; no ADD of a URL, no HEALTHCHECK; ARG
  SOURCE_DATE_EPOCH; hadolint-style rules (DL3002 DL3003 DL3004 DL3005 DL3007 DL3009 DL3014
  DL3015 DL3020 DL3021 DL3022 DL3023 DL3024 DL3025 DL3027 DL3029 DL3061 DL4006) and `sh -n`
  / `bash -n` on every RUN.
Dockerfile.dockerignore
  Docker's matching rules, applied to the work tree: the sources the build needs are in the
  context, build trees and .git are not.
compose.yaml
  every image pinned by digest, none latest (a service that is built may carry a local tag);
  bind mounts, secrets and the build context exist; depends_on and network_mode name services;
  kafka-init creates every topic in docker/compose/config.json, quench.work and quench.state with
  equal partition counts and quench.state compacted; the config is valid (schema, and `quench
  check-config` when QN_BIN_DIR has the binary) and points at the services as they are declared;
  the owner's verdict is valid and names the first demo alert; `sh -n` on every shell snippet.

PyYAML (Debian's python3-yaml) is used when installed; otherwise a small parser for the YAML
subset compose.yaml uses. When PyYAML is there, the two must agree, so the fallback stays true.
jsonschema (python3-jsonschema) is optional too: without it the schema checks are skipped.

usage: test_dockerfile.py [--dockerfile F] [--dockerignore F] [--compose F] [--list-context]
Prints PASS/FAIL (and SKIP) lines and "N passed, M failed"; exits 1 if anything failed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

DIGEST_RE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._/:-]*?)(?::(?P<tag>[\w][\w.-]{0,127}))?"
                       r"@sha256:(?P<digest>[0-9a-f]{64})$")
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
                "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
                "HEALTHCHECK", "SHELL"}
PACKAGE_MANAGERS = re.compile(
    r"\b(apt-get|apt|aptitude|dpkg|apk|dnf|yum|microdnf|zypper|pip3?|npm)\b")
SHELL_BINARIES = re.compile(r"(^|/)(sh|bash|dash|ash|busybox|toybox)$")
REQUIRED_LABELS = ("org.opencontainers.image.title", "org.opencontainers.image.description",
                   "org.opencontainers.image.version", "org.opencontainers.image.revision",
                   "org.opencontainers.image.source", "org.opencontainers.image.base.name",
                   "org.opencontainers.image.base.digest")
HEALTH_PORT = "9464"
ENTRYPOINT = ["/usr/local/bin/quench"]
CMD = ["run", "--config", "/etc/quench/config.json"]


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS %s" % name)
        else:
            self.failed += 1
            print("FAIL %s%s" % (name, (": " + detail) if detail else ""))
        return ok

    def skip(self, name, why):
        print("SKIP %s: %s" % (name, why))


# ------------------------------------------------------------------------------ Dockerfile parsing

class Instruction:
    def __init__(self, line, keyword, args, flags):
        self.line = line          # 1-based line of the keyword
        self.keyword = keyword    # as written
        self.kw = keyword.upper()
        self.args = args          # the rest, continuation lines joined with a space
        self.flags = flags        # {"from": "build", ...} for --flag=value before the arguments
        self.heredocs = []

    def __repr__(self):
        return "line %d: %s" % (self.line, self.kw)


def parse_dockerfile(text):
    """Instructions of a Dockerfile: comments and blank lines dropped, backslash continuations
    joined (comment lines inside a continuation are skipped, as BuildKit does), heredocs
    (<<EOF, <<-EOF, <<"EOF") kept with their instruction. The escape directive is honoured."""
    lines = text.split("\n")
    escape = "\\"
    for line in lines:  # parser directives: only at the very top, before anything else
        m = re.match(r"^#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", line)
        if not m:
            break
        if m.group(1).lower() == "escape":
            escape = m.group(2)
    out = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts = []
        cur = raw
        while True:
            body = cur.rstrip()
            if body.endswith(escape):
                parts.append(body[:-len(escape)])
                i += 1
                while i < len(lines) and (lines[i].strip().startswith("#") or not lines[i].strip()):
                    i += 1
                if i >= len(lines):
                    break
                cur = lines[i]
                continue
            parts.append(body)
            i += 1
            break
        joined = " ".join(p.strip() for p in parts if p.strip())
        m = re.match(r"^(\S+)\s*(.*)$", joined)
        keyword, rest = m.group(1), m.group(2)
        flags = {}
        while True:
            fm = re.match(r"^--([a-z-]+)(?:=(\S*))?\s*(.*)$", rest)
            if not fm or keyword.upper() not in ("FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"):
                break
            flags[fm.group(1)] = fm.group(2) if fm.group(2) is not None else ""
            rest = fm.group(3)
        ins = Instruction(start + 1, keyword, rest, flags)
        if ins.kw in ("RUN", "COPY", "ADD"):
            heredoc = r"(?<!<)<<(?!<)(-?)\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?"
            for hm in re.finditer(heredoc, rest):
                strip_tabs, word = hm.group(1) == "-", hm.group(2)
                body = []
                while i < len(lines):
                    line = lines[i]
                    i += 1
                    if (line.lstrip("\t") if strip_tabs else line) == word:
                        break
                    body.append(line)
                ins.heredocs.append((word, "\n".join(body)))
        out.append(ins)
    return out


class Stage:
    def __init__(self, index, from_ins, image, name):
        self.index = index
        self.from_ins = from_ins
        self.image = image        # as written (after global ARG substitution)
        self.name = name          # AS name or None
        self.parent = None        # Stage, when FROM names an earlier stage
        self.body = []

    @property
    def label(self):
        return self.name or "#%d" % self.index


def substitute(value, args):
    def rep(m):
        key = m.group(1) or m.group(2)
        return args.get(key, m.group(0))
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", rep, value)


def arg_defaults(ins):
    """ARG NAME[=default] [NAME2[=default2] ...] -> {name: default or None}."""
    out = {}
    for tok in split_words(ins.args):
        name, eq, val = tok.partition("=")
        out[name] = val if eq else None
    return out


def split_words(s):
    """Shell-like split that keeps quoted strings together and strips one level of quotes."""
    words, cur, quote, had = [], [], None, False
    i = 0
    while i < len(s):
        c = s[i]
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"' and i + 1 < len(s):
                i += 1
                cur.append(s[i])
            else:
                cur.append(c)
        elif c in "\"'":
            quote, had = c, True
        elif c.isspace():
            if cur or had:
                words.append("".join(cur))
            cur, had = [], False
        elif c == "\\" and i + 1 < len(s):
            i += 1
            cur.append(s[i])
        else:
            cur.append(c)
        i += 1
    if cur or had:
        words.append("".join(cur))
    return words


def parse_labels(args):
    out = {}
    for word in split_words(args):
        k, eq, v = word.partition("=")
        if eq:
            out[k] = v
    return out


def build_stages(instructions):
    global_args, stages, by_name = {}, [], {}
    for ins in instructions:
        if ins.kw == "FROM":
            words = ins.args.split()
            image = substitute(words[0], {k: v for k, v in global_args.items() if v is not None})
            name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
            st = Stage(len(stages), ins, image, name)
            if image.lower() in by_name:
                st.parent = by_name[image.lower()]
            stages.append(st)
            if name:
                by_name.setdefault(name, st)
        elif not stages:
            if ins.kw == "ARG":
                global_args.update(arg_defaults(ins))
        else:
            stages[-1].body.append(ins)
    return global_args, stages


def json_form(args):
    try:
        v = json.loads(args)
    except ValueError:
        return None
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    return None


def stage_shell(stage):
    """The SHELL in force for RUNs at the end of the stage chain (inherited from a parent stage)."""
    shell = None
    chain = []
    s = stage
    while s is not None:
        chain.append(s)
        s = s.parent
    for s in reversed(chain):
        for ins in s.body:
            if ins.kw == "SHELL":
                shell = json_form(ins.args)
    return shell


def run_scripts(ins):
    """The shell text(s) of a RUN: the heredoc bodies, or the command line (shell form)."""
    if ins.heredocs:
        return [body for _, body in ins.heredocs]
    if json_form(ins.args) is not None:
        return []
    return [ins.args]


def shell_commands(script):
    """The simple commands of a shell line, roughly: split on ; && || | and newlines."""
    return [c.strip() for c in re.split(r"&&|\|\||;|\||\n", script) if c.strip()]


def check_dockerfile(rep, path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        rep.check("dockerfile.read", False, str(e))
        return None
    instructions = parse_dockerfile(text)
    unknown = [i for i in instructions if i.kw not in INSTRUCTIONS]
    rep.check("dockerfile.instructions-known", not unknown,
              ", ".join("%r (line %d)" % (i.keyword, i.line) for i in unknown))
    lower = [i for i in instructions if i.keyword != i.kw]
    rep.check("dockerfile.instructions-uppercase", not lower,
              ", ".join("%s (line %d)" % (i.keyword, i.line) for i in lower))
    first = instructions[0].kw if instructions else None
    rep.check("DL3061 starts with FROM or ARG", first in ("FROM", "ARG"), "first is %s" % first)

    global_args, stages = build_stages(instructions)
    if not rep.check("dockerfile.has-stages", bool(stages), "no FROM"):
        return None
    final = stages[-1]

    # --- FROM: pinned, tagged, not latest, consistent
    bad, untagged, latest, digests = [], [], [], {}
    for st in stages:
        if st.parent is not None or st.image == "scratch":
            continue
        img = st.image
        if "$" in img:
            bad.append("%s (line %d): unresolved variable" % (img, st.from_ins.line))
            continue
        m = DIGEST_RE.match(img)
        if not m:
            bad.append("%s (line %d)" % (img, st.from_ins.line))
            continue
        if not m.group("tag"):
            untagged.append("%s (line %d)" % (img, st.from_ins.line))
        elif m.group("tag") == "latest":
            latest.append("%s (line %d)" % (img, st.from_ins.line))
        digests.setdefault(m.group("name"), set()).add(m.group("digest"))
    rep.check("from.pinned-by-sha256", not bad, "; ".join(bad))
    rep.check("from.tagged", not untagged, "name a tag too, for readers: " + "; ".join(untagged))
    rep.check("DL3007 from.no-latest", not latest and not re.search(r":latest\b", text),
              "; ".join(latest) or ":latest appears")
    split = {k: sorted(v) for k, v in digests.items() if len(v) > 1}
    rep.check("from.same-image-same-digest", not split, json.dumps(split))
    plat = [st for st in stages if "platform" in st.from_ins.flags
            and "$" not in st.from_ins.flags["platform"]]
    rep.check("DL3029 from.no-fixed-platform", not plat,
              ", ".join("line %d" % st.from_ins.line for st in plat))
    names = [st.name for st in stages if st.name]
    rep.check("DL3024 stage-names-unique", len(names) == len(set(names)), ", ".join(names))

    # --- every stage
    add_url, add_local, health, copy_from, copy_dest, json_errors, users_root = (
        [] for _ in range(7))
    apt_lists, apt_yes, apt_norec, apt_plain, sudo, cd, upgrade, pipefail, syntax = (
        [] for _ in range(9))
    stage_by_name = {st.name: st for st in stages if st.name}
    for st in stages:
        workdir = st.parent is not None and any(i.kw == "WORKDIR" for i in st.parent.body)
        for ins in st.body:
            where = "line %d" % ins.line
            if ins.kw == "ADD":
                if re.search(r"(^|\s)(https?|ftp|git)://|(^|\s)git@", ins.args):
                    add_url.append(where)
                elif not re.search(r"\.(tar(\.\w+)?|tgz|txz|tbz2?)(\s|$)", ins.args):
                    add_local.append(where)
            if ins.kw == "HEALTHCHECK":
                health.append(where)
            if ins.kw in ("CMD", "ENTRYPOINT") and json_form(ins.args) is None:
                json_errors.append("%s %s" % (ins.kw, where))
            if ins.kw == "WORKDIR":
                workdir = True
                if not substitute(ins.args.strip(), {}).startswith(("/", "$")):
                    copy_dest.append("WORKDIR %s is relative (DL3000)" % where)
            if ins.kw == "USER" and ins.args.strip().split(":")[0] in ("0", "root"):
                users_root.append("%s in stage %s" % (where, st.label))
            if ins.kw == "COPY":
                src = ins.flags.get("from")
                if src is not None:
                    target = stage_by_name.get(src.lower())
                    if target is st:
                        copy_from.append("%s copies from its own stage (DL3023)" % where)
                    elif target is None and not src.isdigit() and not DIGEST_RE.match(src):
                        copy_from.append("%s --from=%s is no earlier stage and not pinned (DL3022)"
                                         % (where, src))
                    elif target is not None and target.index > st.index:
                        copy_from.append("%s --from=%s is a later stage" % (where, src))
                words = json_form(ins.args) or split_words(ins.args)
                if len(words) > 2 and not words[-1].endswith("/"):
                    copy_dest.append("%s: several sources need a destination ending in / (DL3021)"
                                     % where)
                if words and not words[-1].startswith(("/", "$")) and not workdir:
                    copy_dest.append("%s: relative destination without WORKDIR (DL3045)" % where)
            if ins.kw != "RUN":
                continue
            for script in run_scripts(ins):
                cmds = shell_commands(script)
                if re.search(r"\bapt-get\s+update\b", script) and \
                        not re.search(r"rm\s+-r?f?r?\s+/var/lib/apt/lists/?\*?", script):
                    apt_lists.append(where)
                for c in cmds:
                    if re.match(r"^(\S*/)?apt-get\s.*\binstall\b", c):
                        if not re.search(r"(\s-y\b|\s--yes\b|\s--assume-yes\b|\s-\w*y)", c):
                            apt_yes.append(where)
                        if "--no-install-recommends" not in c:
                            apt_norec.append(where)
                    if re.match(r"^apt\s", c):
                        apt_plain.append(where)
                    if re.match(r"^sudo\b", c):
                        sudo.append(where)
                    if re.match(r"^cd\s", c):
                        cd.append(where)
                    if re.match(r"^(apt-get|apt)\s+(-\S+\s+)*(dist-)?upgrade\b", c):
                        upgrade.append(where)
                shell = stage_shell_at(st, ins)
                if "|" in script.replace("||", "") and not (shell and "pipefail" in shell):
                    pipefail.append(where)
                interp = "bash" if shell and shell[0].endswith("bash") else "sh"
                err = shell_syntax(interp, script)
                if err:
                    syntax.append("%s (%s -n): %s" % (where, interp, err))
    rep.check("no ADD of a URL", not add_url, ", ".join(add_url))
    rep.check("DL3020 COPY, not ADD, for files", not add_local, ", ".join(add_local))
    rep.check("no HEALTHCHECK (Kubernetes probes /healthz, /readyz)", not health, ", ".join(health))
    rep.check("DL3025 CMD/ENTRYPOINT in exec form", not json_errors, ", ".join(json_errors))
    rep.check("DL3022/DL3023 COPY --from names an earlier stage", not copy_from,
              "; ".join(copy_from))
    rep.check("DL3000/DL3021/DL3045 destinations", not copy_dest, "; ".join(copy_dest))
    rep.check("DL3002 no USER root", not users_root, ", ".join(users_root))
    rep.check("DL3009 apt lists removed in the RUN that fetched them", not apt_lists,
              ", ".join(apt_lists))
    rep.check("DL3014 apt-get install -y", not apt_yes, ", ".join(apt_yes))
    rep.check("DL3015 apt-get install --no-install-recommends", not apt_norec, ", ".join(apt_norec))
    rep.check("DL3027 apt-get, not apt", not apt_plain, ", ".join(apt_plain))
    rep.check("DL3004 no sudo", not sudo, ", ".join(sudo))
    rep.check("DL3003 WORKDIR, not cd", not cd, ", ".join(cd))
    rep.check("DL3005 no apt-get upgrade", not upgrade, ", ".join(upgrade))
    rep.check("DL4006 pipes run with SHELL -o pipefail", not pipefail, ", ".join(pipefail))
    rep.check("RUN scripts parse (sh -n / bash -n)", not syntax, "; ".join(syntax))

    sde = any(i.kw == "ARG" and "SOURCE_DATE_EPOCH" in arg_defaults(i)
              for st in stages for i in st.body) or "SOURCE_DATE_EPOCH" in global_args
    rep.check("ARG SOURCE_DATE_EPOCH (reproducible builds)", sde)

    # --- the final stage: what the image is
    users = [i for i in final.body if i.kw == "USER"]
    user = users[-1].args.strip() if users else ""
    um = re.match(r"^(\d+)(?::(\d+))?$", user)
    rep.check("final.user-numeric-non-root", bool(um) and int(um.group(1)) != 0,
              "final stage %s has USER %r" % (final.label, user or None))
    rep.check("final.group-numeric-non-root", bool(um) and um.group(2) is not None
              and int(um.group(2)) != 0, "USER %r: give a numeric non-zero gid" % user)
    eps = [i for i in final.body if i.kw == "ENTRYPOINT"]
    ep = json_form(eps[-1].args) if eps else None
    rep.check("final.entrypoint-exec-form", ep == ENTRYPOINT, "ENTRYPOINT %s, want %s"
              % (eps[-1].args if eps else None, json.dumps(ENTRYPOINT)))
    cmds = [i for i in final.body if i.kw == "CMD"]
    cmd = json_form(cmds[-1].args) if cmds else None
    rep.check("final.cmd-exec-form", cmd == CMD, "CMD %s, want %s"
              % (cmds[-1].args if cmds else None, json.dumps(CMD)))
    exposed = [p.split("/")[0] for i in final.body if i.kw == "EXPOSE" for p in i.args.split()]
    rep.check("final.expose-%s" % HEALTH_PORT, HEALTH_PORT in exposed, "EXPOSE %s" % exposed)
    labels = {}
    for i in final.body:
        if i.kw == "LABEL":
            labels.update(parse_labels(i.args))
    missing = [k for k in REQUIRED_LABELS if k not in labels]
    rep.check("final.oci-labels", not missing, "missing " + ", ".join(missing))
    fm = DIGEST_RE.match(final.image)
    if fm:
        want_name = fm.group("name") + (":" + fm.group("tag") if fm.group("tag") else "")
        ok = (labels.get("org.opencontainers.image.base.name") == want_name
              and labels.get("org.opencontainers.image.base.digest")
              == "sha256:" + fm.group("digest"))
        rep.check("final.base-labels-match-from", ok, "base.name=%r base.digest=%r, FROM %s"
                  % (labels.get("org.opencontainers.image.base.name"),
                     labels.get("org.opencontainers.image.base.digest"), final.image))
    distroless = "distroless" in final.image or (final.parent is not None)
    runs = [i for i in final.body if i.kw == "RUN"]
    if "distroless" in final.image:
        rep.check("final.distroless-has-no-RUN", not runs,
                  ", ".join("line %d" % i.line for i in runs))
    pm = [i for i in runs for s in run_scripts(i) if PACKAGE_MANAGERS.search(s)]
    rep.check("final.no-package-manager-use", not pm, ", ".join("line %d" % i.line for i in pm))
    shells = []
    for i in final.body:
        if i.kw in ("COPY", "ADD"):
            for w in split_words(i.args):
                if SHELL_BINARIES.search(w.rstrip("/")):
                    shells.append("line %d: %s" % (i.line, w))
    rep.check("final.no-shell-copied-in", not shells, "; ".join(shells))
    shell_ins = [i for i in final.body if i.kw == "SHELL"]
    rep.check("final.no-SHELL", not shell_ins or not distroless,
              ", ".join("line %d" % i.line for i in shell_ins))

    # --- other stages that can be run (ENTRYPOINT set) must not run as root either
    for st in stages[:-1]:
        if any(i.kw == "ENTRYPOINT" for i in st.body):
            u = [i.args.strip() for i in st.body if i.kw == "USER"]
            m = re.match(r"^(\d+)(?::\d+)?$", u[-1]) if u else None
            rep.check("stage %s.user-numeric-non-root" % st.label,
                      bool(m) and int(m.group(1)) != 0, "USER %r" % (u[-1] if u else None))
    return {"stages": stages, "final": final, "text": text}


def stage_shell_at(stage, ins):
    """SHELL in force at instruction ins: the parent chain's, then this stage's up to ins."""
    shell = stage_shell(stage.parent) if stage.parent is not None else None
    for i in stage.body:
        if i is ins:
            break
        if i.kw == "SHELL":
            shell = json_form(i.args)
    return shell


def shell_syntax(interp, script):
    exe = shutil.which(interp) or ("/bin/" + interp)
    if not os.path.exists(exe):
        return None
    try:
        p = subprocess.run([exe, "-n", "-c", script], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return p.stderr.decode("utf-8", "replace").strip() if p.returncode else None


# ------------------------------------------------------------------------------ .dockerignore

def read_dockerignore(path):
    pats = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            if neg:
                line = line[1:].strip()
            line = os.path.normpath(line).lstrip("/")
            if line in (".", ""):
                continue
            pats.append((neg, ignore_regex(line), line))
    return pats


def ignore_regex(pattern):
    """Go filepath.Match plus '**' as moby/patternmatcher has it, anchored at the context root."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                cls = pattern[i + 1:j]
                if cls.startswith("^"):
                    cls = "^" + cls[1:]
                elif cls.startswith("!"):
                    cls = "^" + cls[1:]
                out.append("[" + cls.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def ignored(rel, pats):
    """True if the context path rel (a/b/c) is excluded: the last pattern matching it or one of
    its parent directories decides; '!' patterns re-include."""
    parents = []
    parts = rel.split("/")
    for k in range(1, len(parts)):
        parents.append("/".join(parts[:k]))
    excluded = False
    for neg, rx, _ in pats:
        if rx.match(rel) or any(rx.match(p) for p in parents):
            excluded = not neg
    return excluded


def context_files(root, pats):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        reld = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            rel = name if reld == "." else reld.replace(os.sep, "/") + "/" + name
            if not ignored(rel, pats):
                out.append(rel)
    return out


def check_dockerignore(rep, path, df):
    if not rep.check("dockerignore.exists", os.path.isfile(path), path):
        return
    pats = read_dockerignore(path)
    must_exclude = [".git/HEAD", "build/CMakeCache.txt", "build-release/bin/quench",
                    "build-asan/x.o", "tests/azure-sim/__pycache__/x.pyc", "Testing/Temporary/x"]
    wrong = [p for p in must_exclude if not ignored(p, pats)]
    rep.check("dockerignore.excludes-build-trees-and-git", not wrong,
              "in context: " + ", ".join(wrong))
    must_include = ["CMakeLists.txt", "CMakePresets.json", "common/CMakeLists.txt",
                    "worker/CMakeLists.txt", "worker/main.c", "tests/CMakeLists.txt",
                    "bench/CMakeLists.txt"]
    lost = [p for p in must_include if ignored(p, pats)]
    rep.check("dockerignore.keeps-what-the-build-needs", not lost, "excluded: " + ", ".join(lost))
    # every source file CMake may compile or read, as it is in the work tree now
    lost = []
    for top in ("common", "worker", "tests", "bench"):
        for dirpath, _, filenames in os.walk(os.path.join(ROOT, top)):
            if "__pycache__" in dirpath:
                continue
            for name in filenames:
                if re.search(r"\.(c|h|cmake|txt|json)$|^CMakeLists\.txt$", name):
                    rel = os.path.relpath(os.path.join(dirpath, name), ROOT).replace(os.sep, "/")
                    if ignored(rel, pats):
                        lost.append(rel)
    rep.check("dockerignore.keeps-every-source-file", not lost,
              "%d excluded, e.g. %s" % (len(lost), ", ".join(lost[:5])))
    if df:
        srcs = []
        for st in df["stages"]:
            for ins in st.body:
                if ins.kw in ("COPY", "ADD") and "from" not in ins.flags:
                    words = json_form(ins.args) or split_words(ins.args)
                    srcs.extend(w for w in words[:-1] if w not in (".", "./"))
        lost = [s for s in srcs if ignored(s.strip("/"), pats)
                or not os.path.exists(os.path.join(ROOT, s))]
        rep.check("dockerignore.copy-sources-in-context", not lost, ", ".join(lost))


# ------------------------------------------------------------------------------ YAML

class YamlSubsetError(Exception):
    pass


def _strip_comment(line):
    out, quote = [], None
    for k, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'" and (k == 0 or line[k - 1] in " \t:[{,-"):
            quote = c
        elif c == "#" and (k == 0 or line[k - 1] in " \t"):
            break
        out.append(c)
    return "".join(out).rstrip()


def _scalar(s):
    s = s.strip()
    if not s:
        return None
    if s[0] == "'" and s[-1] == "'" and len(s) >= 2:
        return s[1:-1].replace("''", "'")
    if s[0] == '"' and s[-1] == '"' and len(s) >= 2:
        esc = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/", "0": "\0"}
        out, i, body = [], 0, s[1:-1]
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                i += 1
                if body[i] not in esc:
                    raise YamlSubsetError("escape \\%s" % body[i])
                out.append(esc[body[i]])
            else:
                out.append(body[i])
            i += 1
        return "".join(out)
    if s[0] in "[{":
        return _flow(s)
    if s[0] in "&*!|>%@`":
        raise YamlSubsetError("unsupported scalar %r" % s)
    return s


def _flow(s):
    if s[0] == "{":
        if s.strip() == "{}":
            return {}
        raise YamlSubsetError("flow mapping %r" % s)
    if not s.endswith("]"):
        raise YamlSubsetError("flow sequence %r" % s)
    inner, items, cur, quote = s[1:-1], [], [], None
    for c in inner:
        if quote:
            cur.append(c)
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
            cur.append(c)
        elif c == ",":
            items.append("".join(cur))
            cur = []
        elif c in "[]{}":
            raise YamlSubsetError("nested flow %r" % s)
        else:
            cur.append(c)
    if "".join(cur).strip():
        items.append("".join(cur))
    return [_scalar(x) for x in items]


def yaml_subset_load(text):
    """Block mappings and sequences, plain/quoted scalars, flow sequences of scalars, and | |- >
    >- block scalars: the YAML compose.yaml is written in. Raises YamlSubsetError otherwise."""
    raw = text.split("\n")
    lines = []  # (indent, content, raw index)
    for k, line in enumerate(raw):
        if "\t" in line[:len(line) - len(line.lstrip())]:
            raise YamlSubsetError("tab indentation, line %d" % (k + 1))
        lines.append(line)
    pos = [0]

    def next_content(i):
        while i < len(lines):
            c = _strip_comment(lines[i])
            if c.strip() and c.strip() != "---":
                return i, len(c) - len(c.lstrip()), c.strip()
            i += 1
        return i, -1, None

    def block_scalar(indicator, parent_indent):
        style, chomp = indicator[0], indicator[1:]
        if chomp not in ("", "-", "+"):
            raise YamlSubsetError("block indicator %r" % indicator)
        body, i, ind = [], pos[0], None
        while i < len(lines):
            line = lines[i]
            if line.strip():
                lead = len(line) - len(line.lstrip(" "))
                if lead <= parent_indent:
                    break
                if ind is None:
                    ind = lead
                if lead < ind:
                    break
                body.append(line[ind:])
            else:
                body.append("")
            i += 1
        pos[0] = i
        while body and body[-1] == "":
            body.pop()
        if style == "|":
            val = "\n".join(body)
        else:
            paras, cur = [], []
            for b in body:
                if b == "":
                    paras.append(" ".join(cur))
                    cur = []
                elif b.startswith((" ", "\t")):
                    raise YamlSubsetError("more-indented line in a folded scalar")
                else:
                    cur.append(b)
            paras.append(" ".join(cur))
            val = "\n".join(paras)
        return val if chomp == "-" or not body else val + "\n"

    def value_after(rest, indent):
        rest = rest.strip()
        if rest in ("|", "|-", "|+", ">", ">-", ">+"):
            return block_scalar(rest, indent)
        if rest:
            return _scalar(rest)
        i, ind, _ = next_content(pos[0])
        if ind > indent or (ind == indent and _ is not None and _.startswith("- ")):
            return parse(ind)
        return None

    def parse(indent):
        i, ind, content = next_content(pos[0])
        if content is None or ind != indent:
            return None
        if content.startswith("- ") or content == "-":
            seq = []
            while True:
                i, ind, content = next_content(pos[0])
                if content is None or ind != indent or \
                        not (content.startswith("- ") or content == "-"):
                    break
                pos[0] = i + 1
                item = content[1:].strip()
                if re.match(r"^[^\s\"'\[{][^:]*:(\s|$)", item):
                    raise YamlSubsetError("mapping inside a sequence, line %d" % (i + 1))
                seq.append(value_after(item, indent))
            return seq
        mapping = {}
        while True:
            i, ind, content = next_content(pos[0])
            if content is None or ind < indent:
                break
            if ind > indent:
                raise YamlSubsetError("unexpected indentation, line %d" % (i + 1))
            if content.startswith("- "):
                break
            m = re.match(r"^(\"[^\"]*\"|'[^']*'|[^\s:][^:]*?)\s*:(?:\s+(.*))?$", content)
            if not m:
                raise YamlSubsetError("cannot parse line %d: %r" % (i + 1, content))
            key = _scalar(m.group(1))
            if key in mapping:
                raise YamlSubsetError("duplicate key %r, line %d" % (key, i + 1))
            pos[0] = i + 1
            mapping[key] = value_after(m.group(2) or "", indent)
        return mapping

    i, ind, _ = next_content(0)
    pos[0] = 0
    doc = parse(ind if ind >= 0 else 0)
    i, ind, content = next_content(pos[0])
    if content is not None:
        raise YamlSubsetError("trailing content, line %d" % (i + 1))
    return doc


def normalize(v):
    """Every scalar as the string compose would see: booleans as true/false, numbers as text."""
    if isinstance(v, dict):
        return {str(k): normalize(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normalize(x) for x in v]
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return None
    return str(v)


def load_compose(rep, path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    sub_err, sub = None, None
    try:
        sub = yaml_subset_load(text)
    except YamlSubsetError as e:
        sub_err = str(e)
    try:
        import yaml  # Debian: python3-yaml
    except ImportError:
        yaml = None
    if yaml is None:
        rep.skip("compose.yaml-parsers-agree", "PyYAML not installed; using the subset parser")
        rep.check("compose.parses", sub is not None, sub_err or "")
        return sub, text
    try:
        doc = normalize(yaml.safe_load(text))
    except yaml.YAMLError as e:
        rep.check("compose.parses", False, str(e))
        return None, text
    rep.check("compose.parses", isinstance(doc, dict), "not a mapping")
    rep.check("compose.yaml-parsers-agree", sub == doc,
              sub_err or "the subset parser reads the file differently; keep compose.yaml "
              "within the subset (see yaml_subset_load)")
    return doc, text


# ------------------------------------------------------------------------------ compose

def compose_shell_snippets(svc):
    """The shell scripts a service runs through `sh -c` (entrypoint [sh, -c] + command)."""
    ep, cmd = svc.get("entrypoint"), svc.get("command")
    if isinstance(ep, list) and len(ep) >= 2 and re.search(r"(^|/)(ba)?sh$", ep[0] or "") \
            and ep[-1] == "-c":
        scripts = cmd if isinstance(cmd, list) else [cmd]
        return [s for s in scripts[:1] if s]
    if isinstance(cmd, list) and len(cmd) >= 3 and re.search(r"(^|/)(ba)?sh$", cmd[0] or "") \
            and cmd[1] == "-c":
        return [cmd[2]]
    return []


def interpolate(s):
    """Compose's own interpolation on a value: $$ is a literal $. ${VAR} would come from the
    environment; this file uses none, which compose.no-interpolation checks."""
    return s.replace("$$", "$")


def check_compose(rep, path, dockerfile_path):
    if not rep.check("compose.exists", os.path.isfile(path), path):
        return
    doc, text = load_compose(rep, path)
    if not isinstance(doc, dict):
        return
    base = os.path.dirname(os.path.abspath(path))
    services = doc.get("services") or {}
    rep.check("compose.has-services", isinstance(services, dict) and bool(services))
    rep.check("compose.no-obsolete-version-key", "version" not in doc)
    stray = re.findall(r"(?<!\$)\$(?!\$)\{?[A-Za-z_]", text.replace("$$", ""))
    rep.check("compose.no-interpolation", not stray,
              "a lone $ is interpolated by compose; write $$ in scripts")

    unpinned, latest, built = [], [], []
    for name, svc in services.items():
        img = svc.get("image")
        if svc.get("build") is not None:
            built.append(name)
            if img and (img.endswith(":latest") or ":" not in img.rsplit("/", 1)[-1]):
                latest.append("%s: %s (built images need an explicit tag)" % (name, img))
            continue
        if not img:
            unpinned.append("%s: no image" % name)
            continue
        m = DIGEST_RE.match(img)
        if not m:
            unpinned.append("%s: %s" % (name, img))
        elif not m.group("tag") or m.group("tag") == "latest":
            latest.append("%s: %s" % (name, img))
    rep.check("compose.images-pinned-by-sha256", not unpinned, "; ".join(unpinned))
    rep.check("compose.no-latest-or-untagged", not latest and not re.search(r":latest\b", text),
              "; ".join(latest) or ":latest appears")
    digests = {}
    for name, svc in services.items():
        m = DIGEST_RE.match(svc.get("image") or "")
        if m:
            digests.setdefault(m.group("name"), set()).add(m.group("digest"))
    split = {k: sorted(v) for k, v in digests.items() if len(v) > 1}
    rep.check("compose.same-image-same-digest", not split, json.dumps(split))

    # builds point at the Dockerfile that the lint checks
    bad = []
    for name in built:
        b = services[name]["build"]
        ctx = os.path.normpath(os.path.join(
            base, b if isinstance(b, str) else b.get("context", ".")))
        dfile = os.path.normpath(os.path.join(ctx, "Dockerfile" if isinstance(b, str)
                                              else b.get("dockerfile", "Dockerfile")))
        if not os.path.isdir(ctx) or not os.path.isfile(dfile):
            bad.append("%s: context %s, dockerfile %s" % (name, ctx, dfile))
        elif os.path.abspath(dfile) != os.path.abspath(dockerfile_path):
            bad.append("%s builds %s, not %s" % (name, dfile, dockerfile_path))
    rep.check("compose.build-uses-docker/Dockerfile", not bad and bool(built), "; ".join(bad))

    # references between services, mounts and secrets
    refs = []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep, spec in (deps.items() if isinstance(deps, dict) else [(d, None) for d in deps]):
            if dep not in services:
                refs.append("%s depends on unknown %s" % (name, dep))
            cond = (spec or {}).get("condition") if isinstance(spec, dict) else None
            if cond == "service_completed_successfully" and \
                    (services.get(dep) or {}).get("restart", "no") != "no":
                refs.append("%s waits for %s to complete, which restarts" % (name, dep))
            if cond == "service_healthy" and not (services.get(dep) or {}).get("healthcheck"):
                refs.append("%s waits for %s to be healthy, which has no healthcheck" % (name, dep))
        nm = svc.get("network_mode") or ""
        if nm.startswith("service:"):
            if nm[8:] not in services:
                refs.append("%s: network_mode names unknown %s" % (name, nm[8:]))
            if svc.get("ports") or svc.get("networks") or svc.get("hostname"):
                refs.append("%s: ports/networks/hostname do not go with network_mode service:"
                            % name)
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0]
            if src.startswith((".", "/")):
                if not os.path.exists(os.path.normpath(os.path.join(base, src))):
                    refs.append("%s: bind source %s does not exist" % (name, src))
            elif src not in (doc.get("volumes") or {}):
                refs.append("%s: volume %s is not declared" % (name, src))
        for sec in svc.get("secrets") or []:
            if sec not in (doc.get("secrets") or {}):
                refs.append("%s: secret %s is not declared" % (name, sec))
    for sname, sec in (doc.get("secrets") or {}).items():
        if not os.path.isfile(os.path.normpath(os.path.join(base, (sec or {}).get("file", "")))):
            refs.append("secret %s: file missing" % sname)
    rep.check("compose.references-resolve", not refs, "; ".join(refs))

    # shell snippets
    errs = []
    for name, svc in services.items():
        for script in compose_shell_snippets(svc):
            err = shell_syntax("sh", interpolate(script))
            if err:
                errs.append("%s: %s" % (name, err))
    rep.check("compose.scripts-parse (sh -n)", not errs, "; ".join(errs))

    # quench runs hardened
    q = services.get("quench") or {}
    hard = []
    if q.get("read_only") != "true":
        hard.append("read_only: true")
    if "ALL" not in (q.get("cap_drop") or []):
        hard.append("cap_drop: [ALL]")
    if q.get("privileged") == "true":
        hard.append("not privileged")
    if (q.get("user") or "65532").split(":")[0] in ("0", "root"):
        hard.append("a non-root user")
    if not any("no-new-privileges" in (s or "") for s in q.get("security_opt") or []):
        hard.append("security_opt no-new-privileges")
    rep.check("compose.quench-hardened", not hard, "want " + ", ".join(hard))

    check_compose_topics_and_config(rep, doc, services, base)


def check_compose_topics_and_config(rep, doc, services, base):
    init = services.get("kafka-init") or {}
    script = interpolate("\n".join(compose_shell_snippets(init)))
    topics = {}
    for m in re.finditer(r"^\s*create\s+(\S+)(.*)$", script, re.M):
        pm = re.search(r"--partitions\s+(\d+)", m.group(2))
        topics[m.group(1)] = {"partitions": int(pm.group(1)) if pm else None,
                              "configs": re.findall(r"--config\s+(\S+)", m.group(2))}
    cfg_path = os.path.join(base, "compose", "config.json")
    try:
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        rep.check("compose.config-json-parses", True)
    except (OSError, ValueError) as e:
        rep.check("compose.config-json-parses", False, str(e))
        return
    names = dict(input="defender.alerts", verdicts="quench.verdicts", work="quench.work",
                 state="quench.state", outcomes="quench.outcomes", dlq="quench.dlq")
    names.update(cfg.get("topics") or {})
    missing = [t for t in names.values() if t not in topics]
    rep.check("compose.kafka-init-creates-every-topic", not missing,
              "missing " + ", ".join(missing))
    w, s = topics.get(names["work"], {}), topics.get(names["state"], {})
    rep.check("compose.work-and-state-same-partitions",
              w.get("partitions") is not None and w.get("partitions") == s.get("partitions"),
              "work %s, state %s" % (w.get("partitions"), s.get("partitions")))
    rep.check("compose.state-compacted", "cleanup.policy=compact" in (s.get("configs") or []))
    kafka = services.get("kafka") or {}
    env = kafka.get("environment") or {}
    rep.check("compose.kafka-kraft-single-node",
              env.get("KAFKA_PROCESS_ROLES") in ("broker,controller", "controller,broker")
              and bool(env.get("KAFKA_CONTROLLER_QUORUM_VOTERS")) and bool(env.get("CLUSTER_ID")),
              "KAFKA_PROCESS_ROLES, KAFKA_CONTROLLER_QUORUM_VOTERS and CLUSTER_ID")
    boot = (cfg.get("kafka") or {}).get("bootstrap.servers", "")
    adv = env.get("KAFKA_ADVERTISED_LISTENERS", "")
    rep.check("compose.config-bootstrap-is-advertised", bool(boot) and all(
        re.search(r"://%s(,|$)" % re.escape(b.strip()), adv) for b in boot.split(",")),
        "bootstrap.servers %r, advertised %r" % (boot, adv))

    # Azure: the simulator as declared
    az = cfg.get("azure") or {}
    sim = services.get("azure-sim") or {}
    sim_cmd = " ".join(compose_shell_snippets(sim)) or " ".join(sim.get("command") or [])
    pm = re.search(r"--port\s+(\d+)", sim_cmd)
    port = pm.group(1) if pm else None
    eps = az.get("endpoints") or {}
    wrong = [k for k in ("authority", "arm", "graph")
             if eps.get(k) != "https://127.0.0.1:%s" % port]
    q = services.get("quench") or {}
    rep.check("compose.config-azure-endpoints-are-the-simulator",
              bool(port) and not wrong and q.get("network_mode") == "service:azure-sim",
              "sim --port %s; endpoints %s; quench network_mode %s"
              % (port, ", ".join(wrong) or "ok", q.get("network_mode")))
    sm = re.search(r"--state-dir\s+(\S+)", sim_cmd)
    state_dir = sm.group(1) if sm else None
    mounts = [v.split(":") for v in q.get("volumes") or []]
    ca_ok = bool(state_dir) and az.get("ca_file", "").startswith(state_dir.rstrip("/") + "/") \
        and any(len(m) >= 2 and m[1].rstrip("/") == state_dir.rstrip("/") for m in mounts)
    rep.check("compose.config-ca-file-is-mounted", ca_ok,
              "ca_file %r, sim state dir %r, quench mounts %r"
              % (az.get("ca_file"), state_dir, mounts))
    secret_file = az.get("client_secret_file", "")
    prefix = "/run/secrets/"
    sec_name = secret_file[len(prefix):] if secret_file.startswith(prefix) else None
    ok = sec_name in (q.get("secrets") or [])
    detail = "client_secret_file %r" % secret_file
    if ok:
        with open(os.path.join(base, doc["secrets"][sec_name]["file"]), encoding="utf-8") as f:
            secret = f.read().rstrip("\n")
        scen = re.search(r"--scenario\s+(\S+)", sim_cmd)
        secrets = []
        if scen:
            try:
                with open(os.path.join(ROOT, scen.group(1)), encoding="utf-8") as f:
                    sdoc = json.load(f)
                secrets = [s for a in sdoc.get("apps", [])
                           if a.get("client_id") == az.get("client_id")
                           for s in a.get("secrets", [])]
                tenant = (sdoc.get("tenant") or {}).get("id")
                ok = secret in secrets and az.get("tenant_id") == tenant
                detail = "the secret, client_id and tenant_id must be the scenario's"
            except (OSError, ValueError) as e:
                ok, detail = False, str(e)
        else:
            ok, detail = False, "no --scenario in the azure-sim command"
    rep.check("compose.config-credential-matches-the-scenario", ok, detail)
    http_port = str((cfg.get("http") or {}).get("port", 9464))
    ports = [p.split(":")[-1].split("/")[0] for p in sim.get("ports") or []]
    rep.check("compose.quench-port-published-on-azure-sim", http_port in ports,
              "http.port %s, azure-sim ports %s" % (http_port, ports))

    schema_checks(rep, cfg_path, base)
    quench_check_config(rep, cfg_path)
    check_owner(rep, services, base)


def schema_checks(rep, cfg_path, base):
    try:
        from jsonschema import Draft202012Validator
    except ImportError:
        rep.skip("compose.config-schema", "python3-jsonschema not installed")
        rep.skip("compose.verdict-schema", "python3-jsonschema not installed")
        return
    pairs = [("compose.config-schema", cfg_path, "config.schema.json")]
    for v in sorted(os.listdir(os.path.join(base, "compose"))):
        if v.startswith("verdict") and v.endswith(".json"):
            pairs.append(("compose.verdict-schema %s" % v, os.path.join(base, "compose", v),
                          "verdict.schema.json"))
    for name, doc_path, schema in pairs:
        with open(os.path.join(ROOT, "schemas", schema), encoding="utf-8") as f:
            validator = Draft202012Validator(json.load(f))
        with open(doc_path, encoding="utf-8") as f:
            errs = sorted(validator.iter_errors(json.load(f)), key=lambda e: list(e.path))
        rep.check(name, not errs, "; ".join("%s: %s" % ("/".join(map(str, e.path)), e.message)
                                           for e in errs[:3]))


def quench_check_config(rep, cfg_path):
    exe = os.path.join(os.environ.get("QN_BIN_DIR", os.path.join(ROOT, "build", "bin")), "quench")
    if not os.access(exe, os.X_OK):
        rep.skip("compose.config-check-config", "%s not built" % exe)
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUENCH_")}
    p = subprocess.run([exe, "check-config", cfg_path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=30)
    rep.check("compose.config-check-config", p.returncode == 0,
              "exit %d: %s" % (p.returncode, p.stderr.decode("utf-8", "replace").strip()[-300:]))


def check_owner(rep, services, base):
    owner = services.get("owner") or {}
    script = interpolate("\n".join(compose_shell_snippets(owner)))
    am = re.search(r"alert=(\S+)", script)
    demo_dir = os.path.join(ROOT, "tests", "data", "demo")
    try:
        first = sorted(f for f in os.listdir(demo_dir) if f.endswith(".json"))[0]
        with open(os.path.join(demo_dir, first), encoding="utf-8") as f:
            alert = json.loads(f.read())
        alert_id = (alert.get("SystemAlertId")
                    or (alert.get("properties") or {}).get("systemAlertId"))
        sub = (alert.get("AzureResourceId") or "").split("/")[2].lower()
    except (OSError, ValueError, IndexError) as e:
        rep.check("compose.owner-answers-the-first-demo-alert", False, str(e))
        return
    sources = [v.split(":")[0] for v in owner.get("volumes") or []]
    vm = next((re.match(r".*verdict.*\.json$", v) for v in sources
               if re.match(r".*verdict.*\.json$", v)), None)
    ok, detail = False, "no verdict file mounted"
    if vm:
        with open(os.path.normpath(os.path.join(base, vm.group(0))), encoding="utf-8") as f:
            verdict = json.load(f)
        ok = (am and am.group(1) == alert_id and verdict.get("alertId") == alert_id
              and verdict.get("subscriptionId", "").lower() == sub)
        detail = "demo %s: alert %s, subscription %s; owner script %s; verdict %s/%s" % (
            first, alert_id, sub, am.group(1) if am else None, verdict.get("alertId"),
            verdict.get("subscriptionId"))
    rep.check("compose.owner-answers-the-first-demo-alert", bool(ok), detail)


# ------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dockerfile", default=os.path.join(ROOT, "docker", "Dockerfile"))
    ap.add_argument("--dockerignore", help="default: <dockerfile>.dockerignore")
    ap.add_argument("--compose", default=os.path.join(ROOT, "docker", "compose.yaml"))
    ap.add_argument("--list-context", action="store_true",
                    help="print the files the build context would hold, and exit")
    args = ap.parse_args()
    ignore = args.dockerignore or args.dockerfile + ".dockerignore"
    if args.list_context:
        for rel in context_files(ROOT, read_dockerignore(ignore)):
            print(rel)
        return 0
    rep = Report()
    df = check_dockerfile(rep, args.dockerfile)
    check_dockerignore(rep, ignore, df)
    check_compose(rep, args.compose, args.dockerfile)
    print("%d passed, %d failed" % (rep.passed, rep.failed))
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
