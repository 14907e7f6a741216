#!/usr/bin/python3
"""The configuration reference of README.md, generated from schemas/config.schema.json.

usage: config_reference.py [--schema FILE]                  print the Markdown table
       config_reference.py [--schema FILE] --check README   exit 1 if README's section is stale
       config_reference.py [--schema FILE] --write README   rewrite README's section

The section is the text between the lines `<!-- config-reference:begin -->` and
`<!-- config-reference:end -->`. The table has one row per configurable key: leaves of nested
objects (`policy.caps.per_alert`), maps whose members are free (`kafka`, written
`kafka.<property>`) and arrays, with the type (enums, integer bounds, string lengths, array
items), the default (the key's own, else its parent object's) and the description. Each nested
object also gets a row of type `object` with its description, before its keys. `$ref` to
`#/$defs/...` (or `#/definitions/...`), `oneOf`/`anyOf`, `const` and type lists are understood,
so keys others add to the schema appear on the next --write without changes here.

Standard library only; exit status 0 ok, 1 stale or missing section, 2 usage or unreadable input.
"""

import argparse
import difflib
import json
import os
import re
import sys

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.normpath(os.path.join(HERE, "..", "..", "schemas", "config.schema.json"))

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"

NO_DEFAULT = object()


class SchemaWalker:
    def __init__(self, root):
        self.root = root

    def resolve(self, node, seen=None):
        """Follows local $ref chains; sibling keywords override the target's (2020-12 style)."""
        seen = seen or set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                break
            seen.add(ref)
            target = self.root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    target = None
                    break
                target = target[part]
            if not isinstance(target, dict):
                break
            merged = dict(target)
            merged.update({k: v for k, v in node.items() if k != "$ref"})
            if "$ref" in target:
                merged["$ref"] = target["$ref"]
            else:
                merged.pop("$ref", None)
            node = merged
        return node if isinstance(node, dict) else {}

    # ---- types ------------------------------------------------------------------------------

    def types_of(self, node):
        node = self.resolve(node)
        t = node.get("type")
        if isinstance(t, list):
            return list(t)
        if isinstance(t, str):
            return [t]
        if "enum" in node or "const" in node:
            values = node.get("enum", [node.get("const")])
            kinds = []
            for v in values:
                k = json_type(v)
                if k not in kinds:
                    kinds.append(k)
            return kinds
        if "properties" in node or "additionalProperties" in node:
            return ["object"]
        if "items" in node:
            return ["array"]
        return []

    def is_section(self, node):
        """An object whose keys are listed: its members get their own rows."""
        node = self.resolve(node)
        return "object" in self.types_of(node) and isinstance(node.get("properties"), dict) \
            and node["properties"] and self.types_of(node) == ["object"]

    def type_text(self, node, many=False):
        """The type in words; @p many for the members of an array or map ("strings")."""
        node = self.resolve(node)
        for key in ("oneOf", "anyOf"):
            if isinstance(node.get(key), list) and node[key]:
                alts = []
                for alt in node[key]:
                    text = self.type_text(alt, many)
                    if text not in alts:
                        alts.append(text)
                return " or ".join(alts)
        if "const" in node:
            return "constant " + code(json_text(node["const"]))
        if isinstance(node.get("enum"), list):
            values = [code(v if isinstance(v, str) else json_text(v)) for v in node["enum"]]
            return "one of " + ", ".join(values)
        kinds = self.types_of(node)
        if not kinds:
            return "any"
        parts = [self.one_type_text(node, k) for k in kinds]
        if many:
            parts = [plural(p) for p in parts]
        if len(parts) == 1:
            return parts[0]
        return ", ".join(parts[:-1]) + " or " + parts[-1]

    def one_type_text(self, node, kind):
        if kind in ("integer", "number"):
            return kind + bounds(node, "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
        if kind == "string":
            lo, hi = node.get("minLength"), node.get("maxLength")
            if lo is not None and hi is not None:
                return "string (%s to %s characters)" % (lo, hi)
            if hi is not None:
                return "string (at most %s characters)" % hi
            if lo is not None and lo > 0:
                return "string (at least %s character%s)" % (lo, "" if lo == 1 else "s")
            return "string"
        if kind == "array":
            items = node.get("items")
            text = "array"
            if isinstance(items, dict) and items:
                text = "array of " + self.type_text(items, many=True)
            extras = []
            if node.get("uniqueItems"):
                extras.append("unique")
            lo, hi = node.get("minItems"), node.get("maxItems")
            if lo is not None and hi is not None:
                extras.append("%s to %s items" % (lo, hi))
            elif lo is not None and lo > 0:
                extras.append("at least %s" % lo)
            elif hi is not None:
                extras.append("at most %s" % hi)
            return ", ".join([text] + extras)
        if kind == "object":
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) and not node.get("properties"):
                return "map of names to " + self.type_text(extra, many=True)
            return "object"
        return kind

    # ---- rows -------------------------------------------------------------------------------

    def rows(self, node, path="", parent_default=NO_DEFAULT, required=False):
        node = self.resolve(node)
        if path and not self.is_section(node):
            yield self.row(node, path, parent_default, required)
            items = self.resolve(node.get("items")) if "array" in self.types_of(node) else {}
            if items and self.is_section(items):
                yield from self.rows_of_section(items, path + "[]", NO_DEFAULT)
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) and self.is_section(extra):
                yield from self.rows_of_section(self.resolve(extra), path + ".<name>", NO_DEFAULT)
            return
        own = node.get("default", NO_DEFAULT)
        if own is NO_DEFAULT and isinstance(parent_default, dict):
            own = parent_default
        if path:
            # a heading row: what the section is for; its keys follow with their defaults
            description = " ".join(str(node.get("description", "")).split())
            yield (code(path), "object", "", description)
        yield from self.rows_of_section(node, path, own)

    def rows_of_section(self, node, path, default):
        req = node.get("required") if isinstance(node.get("required"), list) else []
        for name, child in node.get("properties", {}).items():
            child_default = default.get(name, NO_DEFAULT) if isinstance(default, dict) else NO_DEFAULT
            yield from self.rows(child, (path + "." if path else "") + name, child_default,
                                 name in req)
        extra = node.get("additionalProperties")
        if path and isinstance(extra, dict) and node.get("properties"):
            # listed keys plus free ones: the free ones get a row of their own
            yield self.row(extra, path + ".<name>", NO_DEFAULT, False)

    def row(self, node, path, parent_default, required):
        default = node.get("default", parent_default)
        if default is NO_DEFAULT:
            default_text = "required" if required else "none"
        else:
            default_text = code(json_text(default))
        key = path
        if self.types_of(node) == ["object"] and isinstance(node.get("additionalProperties"), dict) \
                and not node.get("properties"):
            key = path + ".<property>" if path in ("kafka", "kafka_secret_files") else path
        description = " ".join(str(node.get("description", "")).split())
        if node.get("deprecated"):
            description = ("Deprecated. " + description).strip()
        if required and "required" not in description.lower():
            description = (description + " Required.").strip()
        return (code(key), self.type_text(node), default_text, description)


def json_type(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def bounds(node, lo_key, hi_key, xlo_key, xhi_key):
    lo, hi = node.get(lo_key), node.get(hi_key)
    xlo, xhi = node.get(xlo_key), node.get(xhi_key)
    if lo is not None and hi is not None:
        return " in [%s, %s]" % (num(lo), num(hi))
    parts = []
    if lo is not None:
        parts.append("≥ " + num(lo))
    if xlo is not None:
        parts.append("> " + num(xlo))
    if hi is not None:
        parts.append("≤ " + num(hi))
    if xhi is not None:
        parts.append("< " + num(xhi))
    return (" " + ", ".join(parts)) if parts else ""


def num(v):
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def plural(text):
    """'string (at most 9 characters)' -> 'strings (at most 9 characters)', best effort."""
    for word in ("string", "integer", "number", "boolean", "object", "array"):
        if text.startswith(word) and not text.startswith(word + "s"):
            return word + "s" + text[len(word):]
    return text


def json_text(value):
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def code(text):
    """A Markdown code span that survives backticks; pipes are escaped for tables later."""
    text = str(text)
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return fence + pad + text + pad + fence


CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)


def cell(text):
    """A table cell: outside code spans, backslashes, '*' (emphasis) and '<' (HTML) are escaped;
    pipes end a cell even inside a code span (GitHub), so they are escaped everywhere."""
    out = []
    pos = 0
    for m in CODE_SPAN.finditer(text):
        out.append(plain(text[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(plain(text[pos:]))
    return "".join(out).replace("|", "\\|")


def plain(text):
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("<", "&lt;")


def generate(schema_path):
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    walker = SchemaWalker(schema)
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, type_text, default_text, description in walker.rows(schema):
        lines.append("| %s |" % " | ".join(cell(c) for c in (key, type_text, default_text,
                                                                description)))
    return "\n".join(lines) + "\n"


def split_readme(text):
    """@returns (head, body, tail) around the markers, or None when they are missing or twice."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        return None
    b = text.index(BEGIN) + len(BEGIN)
    e = text.index(END)
    if e < b:
        return None
    return text[:b], text[b:e], text[e:]


def section_text(table):
    return "\n" + table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--check", metavar="README")
    group.add_argument("--write", metavar="README")
    args = ap.parse_args(argv)
    try:
        table = generate(args.schema)
    except (OSError, ValueError) as e:
        print("config_reference: cannot read %s: %s" % (args.schema, e), file=sys.stderr)
        return 2
    target = args.check or args.write
    if target is None:
        sys.stdout.write(table)
        return 0
    try:
        with open(target, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print("config_reference: cannot read %s: %s" % (target, e), file=sys.stderr)
        return 2
    parts = split_readme(text)
    if parts is None:
        print("config_reference: %s needs exactly one '%s' line followed by one '%s' line"
              % (target, BEGIN, END), file=sys.stderr)
        return 1
    head, body, tail = parts
    wanted = section_text(table)
    if args.check:
        if body == wanted:
            print("config_reference: %s matches %s" % (target, os.path.relpath(args.schema)))
            return 0
        print("config_reference: the configuration reference in %s is stale; run\n"
              "  /usr/bin/python3 tests/tools/config_reference.py --write %s"
              % (target, target), file=sys.stderr)
        diff = difflib.unified_diff(body.splitlines(), wanted.splitlines(), "README (now)",
                                    "generated", lineterm="", n=0)
        for line in list(diff)[:80]:
            print(line, file=sys.stderr)
        return 1
    if body == wanted:
        return 0
    tmp = target + ".config-reference.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(head + wanted + tail)
    os.replace(tmp, target)
    print("config_reference: rewrote the configuration reference in %s" % target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
