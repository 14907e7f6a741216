#!/usr/bin/python3
"""A non-idempotent POST is never sent twice unless it surely did not land (http.h).

The call engine replays a POST only when it was refused before sending or drew a 429. Checked
with VM runCommand (a POST that starts a long-running operation) against the simulator:
  - 429 on the POST: retried, the command runs once;
  - 503 on the POST: not retried (it may have landed), one POST, HTTP_TRANSIENT;
  - the POST lands but the connection is reset before the answer (fault "when": "after"):
    not replayed, one POST in the log, HTTP_TRANSIENT for the caller to reconcile.
The first ARM call of the tool reuses the connection of its token request, as the worker's calls
do; that is what the last case exercises.
"""

import json
import sys

import azit

OPTS = ["--backoff-ms", "200", "--max-attempts", "4", "--lro-poll-ms", "200"]
RG = azit.RG_PROD + "/providers/Microsoft.Compute/virtualMachines/"


def run_command(sim, vm, command_id):
    body = json.dumps({"commandId": command_id, "script": ["id"]})
    return azit.run_tool(sim, "secret", ["lro", "POST", RG + vm + "/runCommand?api-version=2024-11-01", body],
                         opts=OPTS)


def posts_of(c, vm):
    return [e for e in c.requests(service="arm", method="POST") if ("/" + vm + "/") in e["decoded_path"]]


def main():
    azit.require_tool()
    ck = azit.Checks("azure POST replay")
    sim = azit.start_sim()
    c = sim.client()

    c.clear_requests()
    c.add_fault(service="arm", method="POST", path="/vm-app-02/runCommand$", action="throttle", retry_after=1,
                count=1)
    run = run_command(sim, "vm-app-02", "RunPowerShellScript")
    posts = posts_of(c, "vm-app-02")
    ck.check("429 on POST: retried and completed (2 POSTs, same client request id)",
             run.rc == 0 and run.last("result").get("lro_status") == "Succeeded" and
             [e["status"] for e in posts] == [429, 202] and len({e["client_request_id"] for e in posts}) == 1,
             (run, [(e["status"], e["client_request_id"]) for e in posts]))

    c.clear_faults()
    c.clear_requests()
    c.add_fault(service="arm", method="POST", path="/vm-miner-01/runCommand$", action="error", status=503,
                code="ServiceUnavailable", count=1)
    run = run_command(sim, "vm-miner-01", "RunShellScript")
    posts = posts_of(c, "vm-miner-01")
    ck.check("503 on POST: not retried (one POST), HTTP_TRANSIENT",
             run.rc == 2 and run.last("result").get("code") == "HTTP_TRANSIENT" and len(posts) == 1, (run, posts))

    c.clear_faults()
    c.clear_requests()
    c.add_fault(service="arm", method="POST", path="/vm-web-01/runCommand$", action="reset", when="after", count=1)
    run = run_command(sim, "vm-web-01", "RunShellScript")
    posts = posts_of(c, "vm-web-01")
    ck.check("POST landed, reply lost (reset): sent exactly once, not replayed", len(posts) == 1,
             [(e["status"], e.get("fault"), e["client_request_id"]) for e in posts])
    ck.check("POST landed, reply lost (reset): the call fails with HTTP_TRANSIENT after 1 attempt",
             run.rc == 2 and run.last("result").get("code") == "HTTP_TRANSIENT" and
             run.last("result").get("attempts") == 1, run)
    c.clear_faults()
    return ck.summary()


if __name__ == "__main__":
    sys.exit(main())
