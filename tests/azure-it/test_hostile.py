#!/usr/bin/python3
"""Hostile resource ids never reach the wire.

quench-aztool `arm-id ID SUFFIX API_VERSION` builds the ARM path with qn_azure_arm_path (strict
qn_resid_parse, then percent-encoding) and GETs it. Every hostile id must be refused before any
request (exit 3, a "rejected" line, a clear message), and the simulator's request log must stay
empty: no ARM request and not even a token request. The ids come from tests/data/hostile/*.json
(AzureResourceId) plus '..', '%2F', '?', '#', whitespace, control bytes, backslashes, non-ASCII,
absolute URLs and over-long ids. Raw targets given to `get` and Graph ids given to `graph-id`
get the same treatment. Finally a valid id goes through (the control: one request).
"""

import glob
import json
import os
import sys

import azit

SUB = azit.SUB_PROD
VM = azit.VM_WEB
API = "2024-11-01"


def hostile_ids():
    ids = []
    for path in sorted(glob.glob(os.path.join(azit.DATA_DIR, "hostile", "bad-resource-id-*.json"))):
        with open(path) as f:
            ids.append(("hostile/" + os.path.basename(path), json.load(f)["AzureResourceId"]))
    more = [
        ("dot-dot segment", VM + "/.."),
        ("dot-dot in the middle", azit.RG_PROD + "/../../providers/Microsoft.Authorization/roleAssignments/x"),
        ("dot segment", azit.RG_PROD + "/./providers/Microsoft.Compute/virtualMachines/vm-web-01"),
        ("encoded slash", VM + "%2F..%2F..%2Fx"),
        ("encoded slash lower-case", VM + "%2f"),
        ("encoded dot-dot", azit.RG_PROD + "/providers/Microsoft.Compute/virtualMachines/%2e%2e"),
        ("percent", VM + "%41"),
        ("query", VM + "?api-version=2015-01-01"),
        ("query in the middle", azit.RG_PROD + "?x=1/providers/Microsoft.Compute/virtualMachines/vm"),
        ("fragment", VM + "#frag"),
        ("space", VM + " x"),
        ("tab", VM + "\tx"),
        ("newline", VM + "\n"),
        ("CRLF header injection", VM + "\r\nX-Injected: 1"),
        ("leading space", " " + VM),
        ("control byte 0x01", VM + "\x01"),
        ("escape 0x1b", VM + "\x1b[2J"),
        ("DEL 0x7f", VM + "\x7f"),
        ("backslash", VM + "\\..\\x"),
        ("non-ASCII", VM + "\u00e9"),
        ("fullwidth slash", VM + "\uff0f..\uff0fx"),
        ("empty segment", azit.RG_PROD + "//providers/Microsoft.Compute/virtualMachines/vm"),
        ("trailing slash", VM + "/"),
        ("not a GUID subscription", "/subscriptions/not-a-guid/resourceGroups/rg"),
        ("absolute URL", "https://evil.example" + VM),
        ("scheme-relative URL", "//evil.example" + VM),
        ("no leading slash", VM[1:]),
        ("empty", ""),
        ("over-long", VM + "/extensions/" + "a" * 1100),
        ("unbalanced type/name", azit.RG_PROD + "/providers/Microsoft.Compute/virtualMachines"),
    ]
    return ids + more


RAW_TARGETS = [
    ("dot-dot", "/subscriptions/%s/resourceGroups/rg-prod/../../x?api-version=2021-04-01" % SUB),
    ("encoded dot-dot", "/subscriptions/%s/%%2e%%2e/x?api-version=2021-04-01" % SUB),
    ("encoded slash", "/subscriptions/%s/resourceGroups/a%%2Fb?api-version=2021-04-01" % SUB),
    ("empty segment", "/subscriptions//resourceGroups?api-version=2021-04-01"),
    ("dot segment", "/subscriptions/%s/./resourceGroups?api-version=2021-04-01" % SUB),
    ("fragment", "/subscriptions/%s#x" % SUB),
    ("space", "/subscriptions/%s /x" % SUB),
    ("control byte", "/subscriptions/%s\x01" % SUB),
    ("backslash", "/subscriptions/%s\\x" % SUB),
    ("other origin", "https://evil.example/subscriptions/%s?api-version=2022-12-01" % SUB),
    ("scheme-relative", "//evil.example/subscriptions/%s" % SUB),
    ("bad escape", "/subscriptions/%s%%zz" % SUB),
]

GRAPH_IDS = [
    ("dot-dot id", "/v1.0/users", ".."),
    ("slash in id", "/v1.0/users", "a/../../groups"),
    ("backslash in id", "/v1.0/users", "a\\b"),
    ("control byte in id", "/v1.0/users", "a\x01b"),
    ("empty id", "/v1.0/users", ""),
    ("dot-dot base", "/v1.0/../beta/users", "x"),
    ("query in base", "/v1.0/users?$top=1", "x"),
]


def check_rejected(ck, what, run):
    rej = run.last("rejected")
    ck.check("%s: refused before sending (exit 3, rejected %s)" % (what, rej.get("code")),
             run.rc == 3 and rej.get("code") in ("PARSE", "INVALID") and "refused before sending" in run.stderr and
             not run.events("result"), run)


def main():
    azit.require_tool()
    ck = azit.Checks("azure hostile ids")
    sim = azit.start_sim()
    c = sim.client()
    c.clear_requests()

    for what, rid in hostile_ids():
        run = azit.run_tool(sim, "secret", ["arm-id", rid, "-", API], timeout=30)
        check_rejected(ck, "arm-id %s" % what, run)
    for what, suffix, api in [("dot-dot suffix", "/../x", API), ("query in suffix", "/x?y=1", API),
                              ("encoded suffix", "/x%2Fy", API), ("query in api-version", "-", API + "&x=y"),
                              ("empty api-version", "-", "")]:
        run = azit.run_tool(sim, "secret", ["arm-id", VM, suffix, api], timeout=30)
        check_rejected(ck, "arm-id %s" % what, run)
    for what, target in RAW_TARGETS:
        run = azit.run_tool(sim, "secret", ["get", target], timeout=30)
        check_rejected(ck, "get %s" % what, run)
    for what, base, gid in GRAPH_IDS:
        run = azit.run_tool(sim, "secret", ["graph-id", base, gid], timeout=30)
        check_rejected(ck, "graph-id %s" % what, run)

    log = c.requests()
    ck.check("the simulator saw no request at all (no ARM, Graph or token call)", log == [],
             [(e["service"], e["method"], e["path"]) for e in log])

    # The control: valid ids do reach the simulator, encoded, and nothing else does.
    run = azit.run_tool(sim, "secret", ["arm-id", VM, "-", API])
    ck.check("control: a valid VM id is fetched (200)", run.rc == 0 and run.last("result").get("status") == 200, run)
    run = azit.run_tool(sim, "secret", ["arm-id", VM, "/instanceView", API])
    ck.check("control: a valid id + literal suffix is fetched (200)",
             run.rc == 0 and run.last("result").get("status") == 200, run)
    run = azit.run_tool(sim, "secret", ["graph-id", "/v1.0/users", "mallory@contoso.com"])
    ck.check("control: a Graph id (UPN, '@' percent-encoded) is fetched (200)",
             run.rc == 0 and run.last("result").get("status") == 200 and
             "%40" in run.last("path").get("path", ""), run)
    arm = c.requests(service="arm")
    ck.check("control: exactly the two valid ARM GETs in the log",
             [e["decoded_path"] for e in arm] == [VM, VM + "/instanceView"], [e["decoded_path"] for e in arm])
    return ck.summary()


if __name__ == "__main__":
    sys.exit(main())
