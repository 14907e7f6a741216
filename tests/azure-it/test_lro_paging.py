#!/usr/bin/python3
"""Long-running operations and paging through the call engine, against the simulator.

  - VM runCommand: 202 + Azure-AsyncOperation, polled (InProgress, then Succeeded); the final
    body carries the command's output and the simulator records the command once.
  - generic resource delete (Resources_DeleteById): 202 + Location, polled until 204; the
    resource is gone from the simulator's state afterwards.
  - an ARM list (Resources_List) and a Graph list (users, @odata.nextLink) read whole over
    exactly 3 pages: the item count matches the simulator's state.
"""

import json
import math
import sys

import azit

STORAGE = azit.RG_PROD + "/providers/Microsoft.Storage/storageAccounts/stexfil7f3c"


def main():
    azit.require_tool()
    ck = azit.Checks("azure LRO and paging")
    sim = azit.start_sim()
    c = sim.client()
    opts = ["--lro-poll-ms", "200"]

    # ---- runCommand: Azure-AsyncOperation polling
    c.config({"lro": {"polls": 2}})
    c.clear_requests()
    body = json.dumps({"commandId": "RunShellScript", "script": ["id", "uptime"]})
    run = azit.run_tool(sim, "secret", ["lro", "POST", azit.VM_WEB + "/runCommand?api-version=2024-11-01", body],
                        opts=opts + ["--print-body"])
    res = run.last("result")
    out = (res.get("body") or {}).get("properties", {}).get("output", {})
    ck.check("runCommand: completed (exit 0), Azure-AsyncOperation status Succeeded",
             run.rc == 0 and res.get("ok") and res.get("status") == 200 and res.get("lro_status") == "Succeeded",
             run)
    ck.check("runCommand: the final status body carries the command output",
             isinstance(out, dict) and any("StdOut" in (v.get("code") or "") for v in out.get("value", [])), res)
    posts = c.requests(service="arm", method="POST")
    polls = [e for e in c.requests(service="arm", method="GET") if "/operations/" in e["decoded_path"]]
    ck.check("runCommand: one POST, then >= 2 polls of the Azure-AsyncOperation URL",
             len(posts) == 1 and posts[0]["status"] == 202 and len(polls) >= 2 and polls[-1]["status"] == 200,
             [(e["method"], e["decoded_path"][-60:], e["status"]) for e in posts + polls])
    ck.check("runCommand: engine attempts = POST + polls", res.get("attempts") == 1 + len(polls), res)
    vm = c.state("resources", azit.VM_WEB)
    cmds = vm.get("x-sim", {}).get("runCommands", [])
    ck.check("runCommand: the simulator ran the command once", len(cmds) == 1, cmds)

    # ---- generic delete by id: Location polling
    c.clear_requests()
    run = azit.run_tool(sim, "secret", ["lro", "DELETE", STORAGE + "?api-version=2023-05-01"], opts=opts)
    res = run.last("result")
    ck.check("generic delete: completed (exit 0, final 200/204)",
             run.rc == 0 and res.get("ok") and res.get("status") in (200, 204), run)
    dels = c.requests(service="arm", method="DELETE")
    polls = [e for e in c.requests(service="arm", method="GET") if "operationresults" in e["decoded_path"].lower()]
    ck.check("generic delete: one DELETE (202), then Location polls until done",
             len(dels) == 1 and dels[0]["status"] == 202 and len(polls) >= 1 and polls[-1]["status"] in (200, 204),
             [(e["method"], e["decoded_path"][-60:], e["status"]) for e in dels + polls])
    gone = [r for r in c.state("resources")["value"] if r["id"].lower() == STORAGE.lower()]
    ck.check("generic delete: the resource is gone from the simulator's state", gone == [], gone)

    # ---- an ARM list over exactly 3 pages
    sub_prefix = "/subscriptions/%s/" % azit.SUB_PROD
    in_state = [r for r in c.state("resources")["value"] if r["id"].lower().startswith(sub_prefix.lower())]
    n = len(in_state)
    page = max(1, math.ceil(n / 3))
    ck.check("ARM list: the subscription holds enough resources for 3 pages (%d, page size %d)" % (n, page),
             n > 2 * page and n >= 3, n)
    c.config({"page_size": page})
    c.clear_requests()
    run = azit.run_tool(sim, "secret", ["list", "/subscriptions/%s/resources?api-version=2021-04-01" % azit.SUB_PROD])
    res = run.last("result")
    ck.check("ARM list: read whole (exit 0): %s items == %d in state, 3 pages" % (res.get("items"), n),
             run.rc == 0 and res.get("items") == n and res.get("pages") == 3, run)
    gets = c.requests(service="arm", method="GET")
    ck.check("ARM list: 3 GETs, the 2nd and 3rd following nextLink ($skiptoken)",
             len(gets) == 3 and "$skiptoken" not in gets[0]["raw_query"] and
             all("skiptoken" in e["raw_query"] for e in gets[1:]) and all(e["status"] == 200 for e in gets),
             [e["raw_query"] for e in gets])
    ck.check("ARM list: a fresh x-ms-client-request-id for each page",
             len({e["client_request_id"] for e in gets}) == 3, gets)

    # ---- a Graph list over exactly 3 pages ($top, @odata.nextLink)
    users = c.state("users")["value"]
    top = max(1, math.ceil(len(users) / 3))
    c.clear_requests()
    run = azit.run_tool(sim, "secret", ["list", "/v1.0/users?$top=%d" % top], opts=["--graph"])
    res = run.last("result")
    ck.check("Graph list: read whole (exit 0): %s items == %d users in state, 3 pages" % (res.get("items"), len(users)),
             run.rc == 0 and res.get("items") == len(users) and res.get("pages") == 3 and len(users) > 2 * top, run)
    gets = c.requests(service="graph")
    ck.check("Graph list: 3 GETs in the log", len(gets) == 3 and all(e["status"] == 200 for e in gets),
             [e["raw_query"] for e in gets])
    return ck.summary()


if __name__ == "__main__":
    sys.exit(main())
