#!/usr/bin/python3
"""lint.role: the Azure RBAC actions quench can need are exactly the ones its role files grant.

The ARM operations are read from the C code of worker/ (worker/**/*.c), not from comments:

1. Every call that builds an Azure path is found: qn_azure_arm_path / qn_azure_graph_path, and
   every function of worker/ that forwards its own parameter into the suffix, api-version or
   method of one of those or of a sender (a "wrapper": arm_call, arm_target, arm_read, graph_call,
   ...), found to a fixed point. A call whose suffix is not a forwarded parameter is a *site*.
2. For each site the scanner reads, from the code: the method(s) it can send (the literal method
   argument, else the literals of the senders it reaches: qn_task_call, qn_azure_request's
   `.method`, a `method = "..."` variable), the id expression and the path suffix (literals,
   #defines, ternaries, and local buffers filled by snprintf / qn_buf_printf, resolved
   recursively), the api-version (literal or #define) and whether QN_HTTP_CALL_LRO is passed.
3. SITES below names the Azure operation(s) (operationIds of tests/azure-sim/operations.json, the
   reference table) each site performs. This is the only hand-written part: a site whose id is a
   runtime value (task->target_id) needs a human to say which object types it can be. The table
   must match the code exactly: a site in the code that is not in SITES fails, and a SITES entry
   that matches no site fails. Each operation is then checked against the site it is attached to:
   its method must be one the site sends, its path template must match the site's resolved
   id + suffix, its api-version must be the one the site sends (or one the file defines, when the
   site passes a run-time api-version), and a long-running operation must be sent with
   QN_HTTP_CALL_LRO.
4. Each operation's RBAC action is derived from its path template and method by ARM's rule
   ({namespace}/{type}[/{type}...]/read|write|delete, or /{verb}/action for a POST to a child
   verb); a by-id operation on an arbitrary resource type (Resources_GetById/DeleteById) needs
   "*/read" / "*/delete". Long-running operations add the action that polls their status
   (Microsoft.Compute/locations/operations/read for Compute).
5. Cross-checks that need no table: every mention of a request primitive or of a wrapper is a
   call the scanner read inside a function, or a declaration (a macro or a function pointer
   would hide calls); every function that sends an Azure request builds its path with a path
   builder (or forwards a target given to it, or follows a nextLink); every string literal of
   worker/ that looks like an ARM or Graph path fragment ("/providers/...", "/subscriptions/...",
   "/v1.0/...") is part of an operation template of its file, so a call built by hand is caught
   even if the site detection missed it.

Then: the concrete actions == docker/azure-role.json Actions, the wildcard actions (the generic
by-id delete of delete_resource) == docker/azure-role-delete-resource.json Actions, with their
safety NotActions; every action and every Graph operation used is named in
docker/graph-permissions.md. Any difference fails, in either direction.

Usage: test_role.py [--source DIR] [--role FILE] [--delete-role FILE] [--operations FILE]
                    [--permissions-doc FILE] [--report]
Exit status 0 when everything matches, 1 otherwise.
"""

import argparse
import json
import os
import re
import sys

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.environ.get("QN_SOURCE_DIR") or os.path.join(HERE, "..", ".."))

HTTP_METHODS = ("GET", "PUT", "PATCH", "POST", "DELETE", "HEAD")

# ----------------------------------------------------------------------------------------------
# The sites of worker/ and the operations they perform. One line per site:
#   file:function  METHODS  ID  SUFFIX  OPERATION[,OPERATION...]
# METHODS is the set the site can send ("|"-joined, sorted); ID is the id expression as written
# (spaces removed); SUFFIX is "-" for none, else the suffix with printf conversions as "{}".
# An operation whose reference path is a bare by-id parameter ("/{roleAssignmentId}") is written
# OPERATION=TEMPLATE, TEMPLATE being the shape of the ids the site accepts. "record:" marks a
# path that is only written into an event (undo data) and never sent.
SITES = r"""
# engine.c: the provenance read-back before any destructive write
engine.c:provenance_start_attempt GET suffix - Alerts_GetSubscriptionLevel,Alerts_GetResourceGroupLevel

# tasks/evidence.c: collect_evidence
tasks/evidence.c:collect_evidence_run GET sub /providers/microsoft.insights/eventtypes/management/values ActivityLogs_List
tasks/evidence.c:collect_evidence_run GET sub /providers/Microsoft.Authorization/roleAssignments RoleAssignments_ListForSubscription
tasks/evidence.c:collect_evidence_run GET sub /providers/Microsoft.Automation/automationAccounts AutomationAccount_List
tasks/evidence.c:collect_evidence_run GET sub /resources Resources_List
tasks/evidence.c:collect_evidence_run GET sub /providers/Microsoft.Security/alerts Alerts_List
tasks/evidence.c:on_item GET id /runbooks Runbook_ListByAutomationAccount
tasks/evidence.c:audits_read GET - /v1.0/auditLogs/directoryAudits directoryAudit_list

# tasks/owner.c: resolve_owner and dismiss_alert
tasks/owner.c:resolve_owner_run GET slot->scope /providers/Microsoft.Resources/tags/default Tags_GetAtScope
tasks/owner.c:roles_get GET run->role_scope /providers/Microsoft.Authorization/roleAssignments RoleAssignments_ListForScope
tasks/owner.c:contacts_get GET sub /providers/Microsoft.Security/securityContacts SecurityContacts_List
tasks/owner.c:lookup_users GET o->principal /v1.0/users user.get
tasks/owner.c:dismiss_step GET|POST run->alert_path - Alerts_GetSubscriptionLevel,Alerts_GetResourceGroupLevel
tasks/owner.c:dismiss_step GET|POST qn_buf_cstr(&id) /providers/Microsoft.Security/alerts Alerts_List
tasks/owner.c:dismiss_step GET|POST run->alert_path /dismiss Alerts_UpdateSubscriptionLevelStateToDismiss,Alerts_UpdateResourceGroupLevelStateToDismiss

# tasks/subscription.c: remove_role_assignment, remove_runbook, delete_resource (the target is
# one of the three kinds of id, checked by each run_* function before the first call)
tasks/subscription.c:run_remove_role_assignment GET task->target_id - RoleAssignments_GetById=/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}
tasks/subscription.c:run_remove_runbook GET task->target_id - Runbook_Get
tasks/subscription.c:run_delete_resource GET sub /providers/{} Providers_Get
tasks/subscription.c:on_provider GET task->target_id - Resources_GetById
tasks/subscription.c:check_next_scope GET op->scopes[op->scope_next] /providers/Microsoft.Resources/tags/default Tags_GetAtScope
tasks/subscription.c:check_locks GET task->target_id /providers/Microsoft.Authorization/locks ManagementLocks_ListByScope
tasks/subscription.c:on_locks GET task->target_id /content Runbook_GetContent
tasks/subscription.c:on_content GET task->target_id /draft/content RunbookDraft_GetContent
tasks/subscription.c:delete_target DELETE task->target_id - RoleAssignments_DeleteById=/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName},Runbook_Delete,Resources_DeleteById
tasks/subscription.c:verify GET task->target_id - RoleAssignments_GetById=/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName},Runbook_Get,Resources_GetById

# tasks/users.c: the user-account tasks on Graph
tasks/users.c:run_user_task GET task->target_id /v1.0/users user.get
tasks/users.c:verify GET op->object_id /v1.0/users user.get
tasks/users.c:reset_password PATCH id /v1.0/users user.update
tasks/users.c:act PATCH op->object_id /v1.0/users user.update
tasks/users.c:act POST op->object_id /v1.0/users/revokeSignInSessions user.revokeSignInSessions
tasks/users.c:act DELETE op->object_id /v1.0/users user.delete
tasks/users.c:set_disable_undo - id /v1.0/users record:user.update
tasks/users.c:set_delete_undo - id /v1.0/directory/deletedItems/restore record:directory.deletedItems.restore

# tasks/vm.c: the VM tasks
tasks/vm.c:get_vm GET job->task->target_id - VirtualMachines_Get
tasks/vm.c:get_tags GET scope_id /providers/Microsoft.Resources/tags/default Tags_GetAtScope
tasks/vm.c:send_write POST task->target_id /runCommand VirtualMachines_RunCommand
tasks/vm.c:send_write POST task->target_id /reimage VirtualMachines_Reimage
"""

# The action that polls a long-running operation of a provider (the status URL ARM returns,
# .../providers/{ns}/locations/{loc}/operations/{id}, is authorized on its own).
POLL_ACTIONS = {
    "microsoft.compute": "Microsoft.Compute/locations/operations/read",
}

# NotActions the wildcard delete role must keep (delete_resource never deletes these; the code
# refuses them too, the role makes sure).
DELETE_ROLE_NOT_ACTIONS = (
    "Microsoft.Authorization/*/Delete",
    "Microsoft.Resources/subscriptions/resourceGroups/delete",
)

# Namespaces as Azure spells them (paths may use any case).
CANONICAL_NAMESPACES = {
    "microsoft.insights": "Microsoft.Insights",
}


class Problems:
    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)


P = Problems()

# ---------------------------------------------------------------------------------------- C text


def strip_comments(src):
    """The source with comments blanked (newlines kept), string and char literals intact."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "/" and i + 1 < n and src[i + 1] == "/":
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c == "/" and i + 1 < n and src[i + 1] == "*":
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching(text, i, open_ch="(", close_ch=")"):
    """Index of the bracket closing the one at text[i], skipping string and char literals."""
    depth = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == open_ch:
            depth += 1
        elif c == close_ch:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced %s" % open_ch)


def split_top(text, sep=","):
    """Splits at top-level separators (outside brackets and literals)."""
    parts, depth, cur, i, n = [], 0, [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def split_ternary(expr):
    """(cond, a, b) if expr is a top-level ternary, else None."""
    depth, q, i, n = 0, -1, 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" else 1
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c == "?" and q < 0:
            q = i
        elif depth == 0 and c == ":" and q >= 0:
            return expr[:q].strip(), expr[q + 1:i].strip(), expr[i + 1:].strip()
        i += 1
    return None


STRING_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_]\w*))\s*')


class NotLiteral(Exception):
    pass


def unescape(s):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s)


def eval_string(expr, defines):
    """The value of a string expression made of literals and #defined names; NotLiteral else."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")") and matching(expr, 0) == len(expr) - 1:
        expr = expr[1:-1].strip()
    if not expr:
        raise NotLiteral(expr)
    pos, out = 0, []
    while pos < len(expr):
        m = STRING_TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise NotLiteral(expr)
        if m.group(1) is not None:
            out.append(unescape(m.group(1)))
        else:
            v = defines.get(m.group(2))
            if not isinstance(v, str):
                raise NotLiteral(expr)
            out.append(v)
        pos = m.end()
    return "".join(out)


def eval_alternatives(expr, defines):
    """[values] of a string expression, ternaries giving several; None stands for NULL."""
    expr = expr.strip()
    if expr == "NULL":
        return [None]
    t = split_ternary(expr)
    if t is not None:
        return eval_alternatives(t[1], defines) + eval_alternatives(t[2], defines)
    return [eval_string(expr, defines)]


CONVERSION = re.compile(r"%[-+ #0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|z|j|t)?[diouxXsc]")


class Function:
    def __init__(self, file, name, params, body, line, static, span):
        self.file = file
        self.span = span  # (start, end) offsets of the body in the file's text
        self.name = name
        self.params = params
        self.body = body
        self.line = line
        self.static = static
        self.calls = []
        # filled by analyse()
        self.path_roles = {}     # kind ("arm"/"graph") -> {role: param index}
        self.path_inner = {}     # kind -> {role: expr} of the builder call inside a wrapper
        self.method_role = None  # param index forwarded as the method of a sender
        self.sender_roles = None  # {role: param index} when it forwards to a sender
        self.fixed_methods = set()
        self.sends = False


class Call:
    def __init__(self, name, args, offset, line, at):
        self.name = name
        self.args = args
        self.offset = offset
        self.line = line
        self.at = at  # offset of the name in the file's text


KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "do", "else", "case"}


def parse_file(path, rel):
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    text = strip_comments(raw)
    # #defines (object-like), continuation lines joined
    defines = {}
    joined = re.sub(r"\\\n", " ", text)
    for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)(?!\()[ \t]+(.*)$", joined, re.M):
        defines[m.group(1)] = m.group(2).strip()
    resolved = {}
    for _ in range(5):
        for k, v in defines.items():
            try:
                resolved[k] = eval_string(v, resolved)
            except (NotLiteral, ValueError):
                pass
    lines = text.split("\n")
    functions = []
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln) + 1)
    i = 0
    while i < len(lines):
        if lines[i] == "{":
            j = i - 1
            sig = []
            while j >= 0 and lines[j].strip() and not lines[j].startswith("#") and \
                    not lines[j].rstrip().endswith((";", "}", "*/")):
                sig.insert(0, lines[j])
                j -= 1
            sig_text = " ".join(sig)
            end = i + 1
            while end < len(lines) and lines[end] != "}":
                end += 1
            m = re.search(r"(\w+)\s*\(", sig_text)
            if m and "=" not in sig_text[:m.start()]:
                po = sig_text.index("(", m.start())
                pc = matching(sig_text, po)
                params = []
                for p in split_top(sig_text[po + 1:pc]):
                    pm = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", p)
                    if pm and p.strip() != "void":
                        params.append(pm.group(1))
                body = "\n".join(lines[i:end + 1])
                body_start = offsets[i]
                fn = Function(rel, m.group(1), params, body, i + 1,
                              re.search(r"\bstatic\b", sig_text) is not None,
                              (body_start, body_start + len(body)))
                for cm in re.finditer(r"\b([A-Za-z_]\w*)\s*\(", body):
                    if cm.group(1) in KEYWORDS:
                        continue
                    po = cm.end() - 1
                    try:
                        pc = matching(body, po)
                    except ValueError:
                        continue
                    line = text.count("\n", 0, body_start + cm.start()) + 1
                    fn.calls.append(Call(cm.group(1), split_top(body[po + 1:pc]), cm.start(),
                                         line, body_start + cm.start()))
                functions.append(fn)
            i = end + 1
            continue
        i += 1
    # string literals outside #include lines, with their line numbers
    literals = []
    for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        if text[line_start:m.start()].lstrip().startswith("#include"):
            continue
        literals.append((unescape(m.group(1)), text.count("\n", 0, m.start()) + 1))
    return functions, resolved, literals, text


# --------------------------------------------------------------------------------------- analysis

PATH_BUILDERS = {
    "qn_azure_arm_path": ("arm", {"id": 1, "suffix": 3, "api": 4}),
    "qn_azure_graph_path": ("graph", {"base": 1, "id": 2, "suffix": 3}),
}


class Program:
    def __init__(self, worker_dir):
        self.functions = []
        self.by_file = {}
        self.defines = {}
        self.literals = {}
        self.texts = {}
        for root, _, files in os.walk(worker_dir):
            for name in sorted(files):
                if not name.endswith(".c"):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, worker_dir)
                fns, defines, literals, text = parse_file(path, rel)
                self.texts[rel] = text
                self.functions += fns
                self.by_file[rel] = {f.name: f for f in fns}
                self.defines[rel] = defines
                self.literals[rel] = literals
        self.exported = {}
        for f in self.functions:
            if not f.static:
                self.exported.setdefault(f.name, []).append(f)

    def resolve(self, fn, name):
        local = self.by_file[fn.file].get(name)
        if local is not None:
            return local
        cands = self.exported.get(name, [])
        return cands[0] if len(cands) == 1 else None

    # ---- the parts of a function that send a request

    def request_init(self, fn, call):
        """{field: expr} of the designated initializer of qn_azure_request's request struct."""
        arg = call.args[1] if len(call.args) > 1 else ""
        m = re.match(r"&\s*(\w+)$", arg)
        if not m:
            return {}
        im = re.search(r"struct\s+qn_azure_request\s+%s\s*=\s*\{" % re.escape(m.group(1)),
                       fn.body)
        if not im:
            return {}
        ob = im.end() - 1
        inner = fn.body[ob + 1:matching(fn.body, ob, "{", "}")]
        out = {}
        for part in split_top(inner):
            pm = re.match(r"\.(\w+)\s*=\s*(.*)$", part, re.S)
            if pm:
                out[pm.group(1)] = pm.group(2).strip()
        return out

    def sender_args(self, fn, call):
        """{role: expr} if call sends a request (directly or through a sender wrapper)."""
        if call.name == "qn_azure_request":
            init = self.request_init(fn, call)
            return {"audience": init.get("audience", "?"), "method": init.get("method", "?"),
                    "target": init.get("target", "?"), "flags": init.get("flags", "0")}
        callee = self.resolve(fn, call.name)
        if callee is None or callee.sender_roles is None or callee is fn:
            return None
        out = {}
        for role, idx in callee.sender_roles.items():
            out[role] = call.args[idx] if idx < len(call.args) else "?"
        out["_callee"] = callee
        return out

    def path_args(self, fn, call):
        """(kind, {role: expr}, callee) if call builds an Azure path."""
        if call.name in PATH_BUILDERS:
            kind, roles = PATH_BUILDERS[call.name]
            return kind, {r: call.args[i] for r, i in roles.items() if i < len(call.args)}, None
        callee = self.resolve(fn, call.name)
        if callee is None or callee is fn or not callee.path_roles:
            return None
        kind, roles = next(iter(callee.path_roles.items()))
        out = {r: call.args[i] for r, i in roles.items() if i < len(call.args)}
        for r, expr in callee.path_inner.get(kind, {}).items():
            if r not in out:
                try:  # a literal the wrapper itself passes (graph_call's USERS_BASE)
                    out[r] = json.dumps(eval_string(expr, self.defines[callee.file]))
                except (NotLiteral, ValueError):
                    out[r] = expr
        return kind, out, callee

    def analyse(self):
        """Wrapper roles and fixed methods, to a fixed point."""
        changed = True
        rounds = 0
        while changed and rounds < 20:
            changed = False
            rounds += 1
            for fn in self.functions:
                for call in fn.calls:
                    pa = self.path_args(fn, call)
                    if pa is not None:
                        kind, roles, callee = pa
                        fwd = {}
                        for role in ("suffix", "api"):
                            expr = roles.get(role, "").strip()
                            if expr in fn.params:
                                fwd[role] = fn.params.index(expr)
                        if "suffix" in fwd and kind not in fn.path_roles:
                            full = {}
                            for role, expr in roles.items():
                                if expr.strip() in fn.params:
                                    full[role] = fn.params.index(expr.strip())
                            fn.path_roles[kind] = full
                            fn.path_inner[kind] = dict(roles)
                            changed = True
                    sa = self.sender_args(fn, call)
                    if sa is not None:
                        if not fn.sends:
                            fn.sends = True
                            changed = True
                        callee = sa.get("_callee")
                        fwd = {}
                        for role in ("audience", "method", "target", "flags"):
                            expr = sa.get(role, "").strip()
                            if expr in fn.params:
                                fwd[role] = fn.params.index(expr)
                        if "target" in fwd and fn.sender_roles is None:
                            fn.sender_roles = fwd
                            changed = True
                        if "method" in fwd and fn.method_role is None:
                            fn.method_role = fwd["method"]
                            changed = True
                        methods = self.method_values(fn, sa.get("method", ""))
                        if callee is not None and "method" not in (callee.sender_roles or {}):
                            methods |= callee.fixed_methods
                        if not methods <= fn.fixed_methods:
                            fn.fixed_methods |= methods
                            changed = True
                    callee = self.resolve(fn, call.name)
                    if callee is not None and callee is not fn and callee.fixed_methods and \
                            (callee.sender_roles or callee.path_roles) and \
                            "method" not in (callee.sender_roles or {}) and \
                            not callee.fixed_methods <= fn.fixed_methods:
                        fn.fixed_methods |= callee.fixed_methods
                        changed = True

    def method_values(self, fn, expr):
        """The HTTP methods an expression can be: literals, or a variable's literal values."""
        expr = expr.strip()
        try:
            vals = eval_alternatives(expr, self.defines[fn.file])
            return {v for v in vals if v in HTTP_METHODS}
        except (NotLiteral, ValueError):
            pass
        if re.fullmatch(r"\w+", expr) and expr not in fn.params:
            found = re.findall(r"\b%s\s*=\s*\"([A-Z]+)\"" % re.escape(expr), fn.body)
            return {v for v in found if v in HTTP_METHODS}
        return set()

    def lro(self, fn, call, callee):
        texts = [" ".join(call.args), fn.body]
        if callee is not None:
            texts.append(callee.body)
        return any("QN_HTTP_CALL_LRO" in t for t in texts)

    # ---- local buffers filled by snprintf / qn_buf_printf

    def patterns_of(self, fn, var, depth=0):
        """The shapes a local buffer can hold ({} for unknown parts), or None if not built here."""
        if depth > 4:
            return None
        out = []
        for call in fn.calls:
            fmt_idx, target = None, None
            if call.name == "snprintf" and len(call.args) >= 3:
                target, fmt_idx = call.args[0].strip(), 2
            elif call.name == "qn_buf_printf" and len(call.args) >= 2:
                target, fmt_idx = call.args[0].strip().lstrip("&").strip(), 1
            if target != var:
                continue
            try:
                fmt = eval_string(call.args[fmt_idx], self.defines[fn.file])
            except (NotLiteral, ValueError):
                out.append("{}")
                continue
            args = call.args[fmt_idx + 1:]
            pieces, last, k = [], 0, 0
            for m in CONVERSION.finditer(fmt):
                pieces.append(fmt[last:m.start()])
                sub = ["{}"]
                if m.group(0).endswith("s") and k < len(args):
                    a = args[k].strip()
                    if re.fullmatch(r"\w+", a) and a != var:
                        deeper = self.patterns_of(fn, a, depth + 1)
                        if deeper:
                            sub = deeper
                pieces.append(sub)
                last = m.end()
                k += 1
            pieces.append(fmt[last:])
            combos = [""]
            for p in pieces:
                if isinstance(p, list):
                    combos = [c + s for c in combos for s in p]
                else:
                    combos = [c + p for c in combos]
            out += combos
        return out or None

    def id_patterns(self, fn, expr):
        expr = expr.strip()
        m = re.fullmatch(r"qn_buf_cstr\(\s*&\s*(\w+)\s*\)", expr)
        var = m.group(1) if m else (expr if re.fullmatch(r"\w+", expr) else None)
        if var is not None and var not in fn.params:
            pats = self.patterns_of(fn, var)
            if pats:
                return pats
        return ["{%s}" % expr]


class Site:
    def __init__(self, fn, call, kind, methods, id_expr, ids, suffix, api, lro, record):
        self.fn = fn
        self.call = call
        self.kind = kind
        self.methods = methods
        self.id_expr = id_expr
        self.ids = ids
        self.suffix = suffix      # text for the key ("-" or the suffix with {} conversions)
        self.suffix_value = suffix
        self.api = api            # ("literal", value) or ("expr", text) or None
        self.lro = lro
        self.record = record

    def key(self):
        return "%s:%s %s %s %s" % (self.fn.file, self.fn.name,
                                   "|".join(sorted(self.methods)) or "-",
                                   re.sub(r"\s+", "", self.id_expr), self.suffix)

    def where(self):
        return "worker/%s:%d (%s)" % (self.fn.file, self.call.line, self.fn.name)


def unattributed(prog):
    """Mentions of the request primitives and of the wrappers found that are not a call the
    scanner read inside a function, nor a declaration: a macro, a function pointer, a function
    the parser did not see. Each would hide calls from the scan."""
    names = {"qn_task_call", "qn_azure_request"} | set(PATH_BUILDERS)
    for fn in prog.functions:
        if fn.path_roles or fn.sender_roles is not None or fn.method_role is not None:
            names.add(fn.name)
    out = []
    for rel, text in sorted(prog.texts.items()):
        blank = re.sub(r'"(?:[^"\\\n]|\\.)*"', lambda m: " " * len(m.group(0)), text)
        fns = [f for f in prog.functions if f.file == rel]
        calls = {c.at for f in fns for c in f.calls}
        for m in re.finditer(r"(?<!struct )\b(%s)\b" % "|".join(sorted(map(re.escape, names))),
                             blank):
            name = m.group(1)
            if name not in PATH_BUILDERS and name not in ("qn_task_call", "qn_azure_request"):
                target = prog.by_file[rel].get(name) or (prog.exported.get(name) or [None])[0]
                if target is None or not (target.path_roles or target.sender_roles is not None or
                                          target.method_role is not None):
                    continue  # a different function of the same name in another file
            inside = any(f.span[0] <= m.start() < f.span[1] for f in fns)
            if inside and m.start() in calls:
                continue
            line_start = blank.rfind("\n", 0, m.start()) + 1
            line_end = blank.find("\n", m.start())
            line = blank[line_start:line_end if line_end >= 0 else len(blank)]
            declaration = re.match(r"^\s*(?:[A-Za-z_]\w*\s+|\*\s*)*\**%s\s*\(" % re.escape(name),
                                   line) is not None and not line.lstrip().startswith("#")
            if not inside and declaration:
                continue
            out.append("worker/%s:%d: %s is used in a way the scan cannot follow (%s): call it "
                       "directly inside a function" % (rel, text.count("\n", 0, m.start()) + 1,
                                                       name, line.strip()[:80]))
    return out


def find_sites(prog):
    sites = []
    for fn in prog.functions:
        local_methods = set()
        for call in fn.calls:
            sa = prog.sender_args(fn, call)
            if sa is not None:
                local_methods |= prog.method_values(fn, sa.get("method", ""))
                callee = sa.get("_callee")
                if callee is not None and "method" not in (callee.sender_roles or {}):
                    local_methods |= callee.fixed_methods
        for call in fn.calls:
            pa = prog.path_args(fn, call)
            if pa is None:
                continue
            kind, roles, callee = pa
            suffix_expr = roles.get("suffix", "NULL").strip()
            if suffix_expr in fn.params and kind in fn.path_roles:
                continue  # inside a wrapper: its callers are the sites
            defines = prog.defines[fn.file]
            # suffix alternatives
            try:
                suffixes = eval_alternatives(suffix_expr, defines)
            except (NotLiteral, ValueError):
                pats = prog.id_patterns(fn, suffix_expr)
                suffixes = pats
            base = ""
            if kind == "graph":
                try:
                    base = eval_string(roles.get("base", '""'), defines)
                except (NotLiteral, ValueError):
                    base = "{%s}" % roles.get("base", "?")
            # methods
            methods = set()
            if callee is not None and callee.method_role is not None:
                methods = prog.method_values(fn, call.args[callee.method_role])
            elif callee is not None and callee.fixed_methods:
                methods = set(callee.fixed_methods)
            else:
                methods = set(local_methods)
            record = not methods and not fn.sends and (callee is None or not callee.sends)
            id_expr = roles.get("id", "NULL").strip()
            ids = [""] if id_expr == "NULL" else prog.id_patterns(fn, id_expr)
            api = None
            if kind == "arm":
                api_expr = roles.get("api", "").strip()
                try:
                    api = ("literal", eval_string(api_expr, defines))
                except (NotLiteral, ValueError):
                    api = ("expr", api_expr)
            for sfx in suffixes:
                text = "-" if sfx is None else CONVERSION.sub("{}", sfx)
                if kind == "graph":
                    text = base + ("" if sfx is None else CONVERSION.sub("{}", sfx))
                s = Site(fn, call, kind, methods, "-" if id_expr == "NULL" else id_expr,
                         ids, text, api, prog.lro(fn, call, callee), record)
                s.suffix_value = "" if sfx is None else CONVERSION.sub("{}", sfx)
                s.base = base
                sites.append(s)
    return sites


# ------------------------------------------------------------------------------- templates, actions

def template_regex(pattern):
    """A site's resolved path (with {...} placeholders) as a regex over reference templates."""
    parts = re.split(r"\{[^}]*\}", pattern)
    return "(?i)" + ".+".join(re.escape(p) for p in parts)


def is_param(seg):
    return seg.startswith("{") and seg.endswith("}")


def canonical_namespace(ns):
    return CANONICAL_NAMESPACES.get(ns.lower(), ns)


def derive_action(method, template):
    """ARM's authorization action for method on a path template."""
    segs = [s for s in template.split("/") if s]
    if len(segs) == 1 and is_param(segs[0]):
        # a by-id operation on any resource type
        return "*/read" if method == "GET" else "*/delete" if method == "DELETE" else "*/write"
    idx = None
    for i, s in enumerate(segs):
        if s.lower() == "providers" and i + 1 < len(segs) and not is_param(segs[i + 1]):
            idx = i
    if idx is None:
        ns, rest = "Microsoft.Resources", segs
        if rest and is_param(rest[0]):
            rest = rest[1:]
    else:
        ns, rest = canonical_namespace(segs[idx + 1]), segs[idx + 2:]
    types, verb, i = [], None, 0
    while i < len(rest):
        t = rest[i]
        if is_param(t):
            raise ValueError("a type segment is a parameter in %s" % template)
        if i + 1 < len(rest):
            types.append(t)
            i += 2
        else:
            if method == "POST" and types:
                verb = t
            else:
                types.append(t)
            i += 1
    if not types:
        raise ValueError("no resource type in %s" % template)
    base = "%s/%s" % (ns, "/".join(types))
    if verb is not None:
        return "%s/%s/action" % (base, verb)
    if method == "POST":
        return base + "/action"
    return base + {"GET": "/read", "HEAD": "/read", "DELETE": "/delete"}.get(method, "/write")


def parse_sites_table(text):
    table = {}
    for n, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 5:
            P.add("SITES line %d: expected 5 fields, got %r" % (n, line))
            continue
        where, methods, id_expr, suffix, ops = parts
        key = "%s %s %s %s" % (where, methods, id_expr, suffix)
        entries = []
        for op in ops.split(","):
            record = op.startswith("record:")
            op = op[len("record:"):] if record else op
            name, _, tmpl = op.partition("=")
            entries.append((name, tmpl or None, record))
        if key in table:
            P.add("SITES line %d: duplicate entry %s" % (n, key))
        table[key] = entries
    return table


# ------------------------------------------------------------------------------------------- main

def load_role(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            role = json.load(f)
    except (OSError, ValueError) as e:
        P.add("%s %s: cannot read: %s" % (what, path, e))
        return None
    for key, typ in (("Name", str), ("IsCustom", bool), ("Description", str), ("Actions", list),
                     ("NotActions", list), ("DataActions", list), ("NotDataActions", list),
                     ("AssignableScopes", list)):
        if not isinstance(role.get(key), typ):
            P.add("%s %s: %r must be a %s" % (what, path, key, typ.__name__))
    if role.get("IsCustom") is not True:
        P.add("%s: IsCustom must be true" % what)
    if not role.get("AssignableScopes"):
        P.add("%s: AssignableScopes is empty" % what)
    if role.get("DataActions") or role.get("NotDataActions"):
        P.add("%s: quench uses no data-plane action; DataActions/NotDataActions must be empty"
              % what)
    acts = role.get("Actions") or []
    seen = set()
    for a in acts:
        if a.lower() in seen:
            P.add("%s: action %s is listed twice" % (what, a))
        seen.add(a.lower())
    return role


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default=SOURCE_DIR)
    ap.add_argument("--role")
    ap.add_argument("--delete-role")
    ap.add_argument("--operations")
    ap.add_argument("--permissions-doc")
    ap.add_argument("--report", action="store_true", help="print every action with its sites")
    args = ap.parse_args()
    src = os.path.abspath(args.source)
    role_path = args.role or os.path.join(src, "docker", "azure-role.json")
    delete_path = args.delete_role or os.path.join(src, "docker",
                                                   "azure-role-delete-resource.json")
    ops_path = args.operations or os.path.join(src, "tests", "azure-sim", "operations.json")
    doc_path = args.permissions_doc or os.path.join(src, "docker", "graph-permissions.md")

    with open(ops_path, encoding="utf-8") as f:
        operations = {o["operationId"]: o for o in json.load(f)["operations"]}

    prog = Program(os.path.join(src, "worker"))
    prog.analyse()
    sites = find_sites(prog)
    table = parse_sites_table(SITES)

    for p in unattributed(prog):
        P.add(p)

    # ---- every sender builds its path (or forwards one, or follows a nextLink)
    for fn in prog.functions:
        if fn.name == "qn_task_call":
            continue
        for call in fn.calls:
            sa = prog.sender_args(fn, call)
            if sa is None:
                continue
            target = sa.get("target", "").strip()
            if target in fn.params:
                continue
            builds = any(prog.path_args(fn, c) is not None for c in fn.calls)
            m = re.fullmatch(r"\w+", target)
            follows_next = m is not None and re.search(
                r"\b%s\s*=\s*next_link\s*\(" % re.escape(target), fn.body) is not None
            if not builds and not follows_next:
                P.add("worker/%s:%d (%s): %s sends a request whose path is not built with "
                      "qn_azure_arm_path / qn_azure_graph_path here: the role cannot be derived"
                      % (fn.file, call.line, fn.name, call.name))

    # ---- sites <-> SITES
    by_key = {}
    for s in sites:
        by_key.setdefault(s.key(), []).append(s)
    for key in sorted(set(by_key) - set(table)):
        s = by_key[key][0]
        P.add("%s: an Azure call site that SITES does not know: %r (say which operation it is)"
              % (s.where(), key))
    for key in sorted(set(table) - set(by_key)):
        P.add("SITES entry %r matches no call site in worker/ (stale?)" % key)

    actions = {}       # action -> set of where strings
    graph_ops = {}     # graph operationId -> set of where strings
    templates_by_file = {}
    for key, entries in table.items():
        for s in by_key.get(key, []):
            for name, tmpl, record in entries:
                op = operations.get(name)
                if op is None:
                    P.add("%s: %s is not an operation of %s" % (s.where(), name, ops_path))
                    continue
                service = "graph" if op["service"] == "graph" else "arm"
                if service != s.kind:
                    P.add("%s: %s is a %s operation but the site builds a %s path"
                          % (s.where(), name, op["service"], s.kind))
                    continue
                ref_path = op["path"] if service == "arm" else "/" + op["api_version"] + op["path"]
                effective = ref_path
                if tmpl is not None:
                    if not re.fullmatch(r"/\{[^}/]+\}", op["path"]):
                        P.add("%s: %s=TEMPLATE is only for by-id operations" % (s.where(), name))
                    effective = tmpl
                templates_by_file.setdefault(s.fn.file, set()).update({effective, ref_path})
                if record:
                    if s.methods or not s.record:
                        P.add("%s: %s is marked record: but the site sends %s"
                              % (s.where(), name, "|".join(sorted(s.methods)) or "a request"))
                    continue
                if s.record:
                    P.add("%s: the site sends nothing, yet %s is listed as a call" % (s.where(),
                                                                                      name))
                    continue
                if op["method"] not in s.methods:
                    P.add("%s: %s is %s but the site sends %s" % (
                        s.where(), name, op["method"], "|".join(sorted(s.methods)) or "nothing"))
                # id + suffix must match the template
                if service == "arm":
                    shapes = [i + s.suffix_value for i in s.ids]
                else:
                    shapes = [s.base + ("/{%s}" % s.id_expr if s.id_expr != "-" else "") +
                              s.suffix_value]
                if not any(re.fullmatch(template_regex(sh), effective) for sh in shapes):
                    P.add("%s: the path the code builds (%s) does not fit %s %s" % (
                        s.where(), " or ".join(shapes), name, effective))
                if service == "graph":
                    graph_ops.setdefault(name, set()).add(s.where())
                    continue
                # api-version
                want = op.get("api_version")
                if s.api is not None and s.api[0] == "literal":
                    if want is not None and s.api[1] != want:
                        P.add("%s: %s takes api-version %s, the code sends %s"
                              % (s.where(), name, want, s.api[1]))
                    if want is None:
                        P.add("%s: %s takes the target provider's api-version, the code sends "
                              "the fixed %s" % (s.where(), name, s.api[1]))
                elif want is not None and want not in prog.defines[s.fn.file].values():
                    P.add("%s: %s takes api-version %s, which %s never defines"
                          % (s.where(), name, want, s.fn.file))
                if op.get("long_running") and not s.lro:
                    P.add("%s: %s is long-running but the code does not pass QN_HTTP_CALL_LRO"
                          % (s.where(), name))
                try:
                    act = derive_action(op["method"], effective)
                except ValueError as e:
                    P.add("%s: %s: %s" % (s.where(), name, e))
                    continue
                actions.setdefault(act, set()).add("%s %s" % (s.where(), name))
                if op.get("long_running") and s.lro:
                    if act.startswith("*"):
                        poll = "*/read"
                    else:
                        poll = POLL_ACTIONS.get(act.split("/")[0].lower())
                    if poll is None:
                        P.add("%s: %s is long-running and POLL_ACTIONS has no status action for "
                              "its provider" % (s.where(), name))
                    else:
                        actions.setdefault(poll, set()).add(
                            "%s %s (polling its status)" % (s.where(), name))
    # every method a function sends must be accounted for by some operation of its sites
    fn_methods = {}
    fn_ops_methods = {}
    for s in sites:
        k = (s.fn.file, s.fn.name)
        fn_methods.setdefault(k, set()).update(s.methods)
        for name, _, record in table.get(s.key(), []):
            op = operations.get(name)
            if op is not None and not record:
                fn_ops_methods.setdefault(k, set()).add(op["method"])
    for k, methods in sorted(fn_methods.items()):
        missing = methods - fn_ops_methods.get(k, set())
        if missing:
            P.add("worker/%s (%s) sends %s, which none of its listed operations is"
                  % (k[0], k[1], "|".join(sorted(missing))))

    # ---- every path-like literal belongs to an operation template of its file
    all_templates = set().union(*templates_by_file.values()) if templates_by_file else set()
    calling_files = {s.fn.file for s in sites} | {fn.file for fn in prog.functions if fn.sends}
    for rel, lits in sorted(prog.literals.items()):
        calls = rel in calling_files
        # a file that calls Azure: each fragment belongs to one of its operations; any other
        # file: a provider path ("/providers/Microsoft.X...") belongs to some operation quench
        # calls (a target id the planner writes, say)
        tmpls = templates_by_file.get(rel, set()) if calls else all_templates
        for value, line in lits:
            v = value.rstrip("/")
            if calls:
                if not (re.search(r"/providers/", v, re.I) or
                        re.match(r"/(subscriptions|v1\.0)/", v, re.I)):
                    continue
            elif not re.search(r"/providers/[A-Za-z0-9]+\.[A-Za-z]", v, re.I):
                continue
            shape = CONVERSION.sub("{}", v)
            rx = template_regex(shape)[4:]
            if not any(re.search("(?i)" + rx, t) for t in tmpls):
                P.add("worker/%s:%d: the path fragment %r is part of no Azure operation this file "
                      "is known to call" % (rel, line, value))

    # ---- roles
    concrete = {a for a in actions if not a.startswith("*")}
    wildcard = {a for a in actions if a.startswith("*")}
    role = load_role(role_path, "role")
    delete_role = load_role(delete_path, "delete role")

    def compare(want, role, path, what):
        if role is None:
            return
        have = {a.lower(): a for a in role.get("Actions") or []}
        want_l = {a.lower(): a for a in want}
        for a in sorted(set(want_l) - set(have)):
            P.add("%s %s lacks %s, which the code needs: %s" % (
                what, path, want_l[a], "; ".join(sorted(actions[want_l[a]]))))
        for a in sorted(set(have) - set(want_l)):
            P.add("%s %s grants %s, which no call in worker/ needs" % (what, path, have[a]))

    compare(concrete, role, role_path, "role")
    if role is not None and role.get("NotActions"):
        P.add("role %s: NotActions must be empty (Actions are exact)" % role_path)
    compare(wildcard, delete_role, delete_path, "delete role")
    if delete_role is not None:
        nots = {a.lower() for a in delete_role.get("NotActions") or []}
        for a in DELETE_ROLE_NOT_ACTIONS:
            if a.lower() not in nots:
                P.add("delete role %s: NotActions must keep %s" % (delete_path, a))

    # ---- the permissions document names every action and Graph operation
    try:
        with open(doc_path, encoding="utf-8") as f:
            doc = f.read().lower()
    except OSError as e:
        P.add("cannot read %s: %s" % (doc_path, e))
        doc = None
    if doc is not None:
        for a in sorted(actions):
            if "`%s`" % a.lower() not in doc:
                P.add("%s does not name the action `%s`" % (doc_path, a))
        for g in sorted(graph_ops):
            if "`%s`" % g.lower() not in doc:
                P.add("%s does not name the Graph operation `%s`" % (doc_path, g))

    if args.report or P.items:
        print("ARM actions derived from worker/ (%d sites):" % len(sites))
        for a in sorted(actions, key=str.lower):
            print("  %s" % a)
            for w in sorted(actions[a]):
                print("      %s" % w)
        print("Graph operations:")
        for g in sorted(graph_ops):
            print("  %s" % g)
            for w in sorted(graph_ops[g]):
                print("      %s" % w)
    if P.items:
        for p in P.items:
            print("FAIL %s" % p)
        print("%d problem(s)" % len(P.items))
        return 1
    print("PASS %d call sites, %d actions in %s, %d in %s, %d Graph operations"
          % (len(sites), len(concrete), os.path.relpath(role_path, src), len(wildcard),
             os.path.relpath(delete_path, src), len(graph_ops)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
