#!/usr/bin/python3
"""Retries of the call engine against faults injected with the simulator's admin API.

For each case a fault rule hits one ARM GET (ResourceGroups_Get of rg-prod) twice, then lets it
through; quench-aztool `get` must succeed, and the simulator's request log must show the failed
attempts and the final 200 all carrying the same x-ms-client-request-id:
  - 429 with Retry-After: 1 (the waits must honour it: >= 2 s for two of them)
  - 503 ServiceUnavailable
  - connection reset (RST, no response)
A 400 must not be retried: exactly one request in the log and a clear error.
"""

import sys

import azit

PATH_RE = "/resourceGroups/rg-prod$"
TARGET = azit.RG_PROD + "?api-version=2021-04-01"
OPTS = ["--backoff-ms", "200", "--max-attempts", "4"]


def attempts_in_log(c):
    return [e for e in c.requests(service="arm", method="GET") if e["decoded_path"].endswith("/resourceGroups/rg-prod")]


def recovering_case(ck, c, sim, what, rule, min_elapsed=0.0, engine_attempts=(3,)):
    c.clear_faults()
    c.clear_requests()
    c.add_fault(service="arm", method="GET", path=PATH_RE, count=2, **rule)
    run = azit.run_tool(sim, "secret", ["get", TARGET], opts=OPTS)
    res = run.last("result")
    log = attempts_in_log(c)
    ids = {e.get("client_request_id") for e in log}
    ck.check("%s: the call succeeded (exit 0, 200), engine attempts %s" % (what, "/".join(map(str, engine_attempts))),
             run.rc == 0 and res.get("ok") and res.get("status") == 200 and res.get("attempts") in engine_attempts,
             run)
    ck.check("%s: log shows 2 failed attempts then the 200" % what,
             len(log) == 3 and log[-1]["status"] == 200 and all(e.get("fault") for e in log[:2]),
             [(e["status"], e.get("reset"), e.get("fault")) for e in log])
    ck.check("%s: every attempt carried the same x-ms-client-request-id (%s)" % (what, res.get("client_request_id")),
             len(ids) == 1 and res.get("client_request_id") in ids, ids)
    if min_elapsed:
        ck.check("%s: Retry-After honoured (%.2f s >= %.1f s)" % (what, res.get("elapsed_ms", 0) / 1000, min_elapsed),
                 res.get("elapsed_ms", 0) >= min_elapsed * 1000, res)
    return log


def main():
    azit.require_tool()
    ck = azit.Checks("azure retries")
    sim = azit.start_sim()
    c = sim.client()

    log = recovering_case(ck, c, sim, "429 Retry-After", {"action": "throttle", "retry_after": 1}, min_elapsed=1.9)
    ck.check("429 Retry-After: the failed attempts were 429s", [e["status"] for e in log[:2]] == [429, 429], log)
    log = recovering_case(ck, c, sim, "503", {"action": "error", "status": 503, "code": "ServiceUnavailable"})
    ck.check("503: the failed attempts were 503s", [e["status"] for e in log[:2]] == [503, 503], log)
    # libcurl itself re-sends a request once, silently, when a REUSED connection dies before any
    # response byte (the first ARM call reuses the token request's connection): the engine then
    # counts 2 attempts for the 3 the simulator saw.
    log = recovering_case(ck, c, sim, "connection reset", {"action": "reset"}, engine_attempts=(2, 3))
    ck.check("connection reset: the failed attempts got no response",
             all(e.get("reset") and e.get("status") is None for e in log[:2]), log)

    # A 400 is permanent: one request, no retry.
    c.clear_faults()
    c.clear_requests()
    c.add_fault(service="arm", method="GET", path=PATH_RE, action="error", status=400, code="InvalidParameter",
                message="injected bad request")
    run = azit.run_tool(sim, "secret", ["get", TARGET], opts=OPTS)
    res = run.last("result")
    log = attempts_in_log(c)
    ck.check("400: the call failed (exit 2) after 1 attempt",
             run.rc == 2 and res.get("ok") is False and res.get("status") == 400 and res.get("attempts") == 1, run)
    ck.check("400: clear error (HTTP_PERMANENT, 400, InvalidParameter)",
             res.get("code") == "HTTP_PERMANENT" and "400" in run.stderr and "InvalidParameter" in run.stderr,
             run.stderr)
    ck.check("400: exactly one request in the log", len(log) == 1 and log[0]["status"] == 400, log)

    # Retries give up after max_attempts with the transient error (no endless loop).
    c.clear_faults()
    c.clear_requests()
    c.add_fault(service="arm", method="GET", path=PATH_RE, action="error", status=503, code="ServiceUnavailable")
    run = azit.run_tool(sim, "secret", ["get", TARGET], opts=["--backoff-ms", "100", "--max-attempts", "3"])
    log = attempts_in_log(c)
    ck.check("persistent 503: gives up after 3 attempts with HTTP_TRANSIENT",
             run.rc == 2 and run.last("result").get("code") == "HTTP_TRANSIENT" and len(log) == 3 and
             len({e["client_request_id"] for e in log}) == 1, (run, log))
    c.clear_faults()
    return ck.summary()


if __name__ == "__main__":
    sys.exit(main())
