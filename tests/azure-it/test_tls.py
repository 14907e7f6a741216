#!/usr/bin/python3
"""A simulator whose certificate the client does not trust is refused.

The simulator's server certificate is signed by its own test CA. quench-aztool is pointed at a
different CA (a fresh one made with openssl) and at the system trust store: the token request
must fail with a clear "certificate verify failed" error, nothing may reach the simulator's HTTP
layer (its request log stays empty), and no secret may be sent. With managed identity (IMDS is
plain HTTP on purpose) the token works but the ARM call over TLS is refused the same way.
"""

import sys

import azit

PROBE = "/subscriptions?api-version=2022-12-01"


def main():
    azit.require_tool()
    ck = azit.Checks("azure TLS trust")
    sim = azit.start_sim()
    c = sim.client()
    d = azit.tmpdir()
    other_ca, _ = azit.openssl_self_signed(d, "quench-test-other-ca")

    for what, ca in [("a different CA", other_ca), ("the system trust store", "system")]:
        c.clear_requests()
        run = azit.run_tool(sim, "secret", ["token", "arm", "--probe", PROBE], opts=["--ca", ca], timeout=30)
        err = run.last("error")
        ck.check("%s: token refused (exit 2, AUTH) within 5 s" % what,
                 run.rc == 2 and err.get("code") == "AUTH" and run.elapsed < 5, run)
        ck.check("%s: clear message (certificate verify failed)" % what,
                 "certificate verify failed" in run.stderr.lower(), run.stderr)
        ck.check("%s: no token, no probe" % what, not run.events("token") and not run.events("probe"), run.lines)
        ck.check("%s: nothing reached the simulator (request log empty)" % what, c.requests() == [], c.requests())
        azit.no_leaks(ck, what, run, sim.ready)

    # IMDS (plain HTTP) still answers; the ARM call over TLS is refused.
    c.clear_requests()
    run = azit.run_tool(sim, "imds", ["token", "arm", "--probe", PROBE], opts=["--ca", other_ca], timeout=30)
    probe = run.last("probe")
    ck.check("managed identity, different CA: token from IMDS, ARM call refused (exit 2)",
             run.rc == 2 and len(run.events("token")) == 1 and probe.get("ok") is False and
             probe.get("code") == "AUTH" and "certificate verify failed" in probe.get("message", "").lower(), run)
    ck.check("managed identity, different CA: the log has the IMDS call only",
             [e["service"] for e in c.requests()] == ["imds"], c.requests())

    # The control: the simulator's own CA works.
    run = azit.run_tool(sim, "secret", ["token", "arm", "--probe", PROBE])
    ck.check("control: with the simulator's CA the token and the call work",
             run.rc == 0 and run.last("probe").get("status") == 200, run)
    return ck.summary()


if __name__ == "__main__":
    sys.exit(main())
