#!/usr/bin/python3
"""The four Azure identity methods against the simulator: each gets a token AND refreshes it.

The simulator issues 4-second tokens (--token-lifetime 4), so the client's cache refreshes at
half-life, every ~2 s. For each method quench-aztool runs `token arm --wait-refresh 2 --probe
PATH`: it prints a fingerprint line per distinct token and GETs PATH with each. Checked: three
distinct tokens, each one accepted by ARM (or Graph), and the simulator's log shows the token
requests of that method (grant, assertion shape, fresh jti per assertion, the re-read federated
token after a rotation, IMDS query). Then the failures: a wrong secret, an assertion signed with a
certificate the simulator does not know, and an unregistered federated token each end with a
clear AUTH error, one token request, and no ARM request.
"""

import base64
import json
import subprocess
import sys
import time

import azit

PROBE_ARM = "/subscriptions?api-version=2022-12-01"
PROBE_GRAPH = "/v1.0/users?$top=1"
REFRESHES = 2


def jwt_part(token, i):
    part = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def check_refreshing_run(ck, what, run, audience):
    tokens = run.events("token")
    probes = run.events("probe")
    ck.check("%s: exit 0" % what, run.rc == 0, run)
    ck.check("%s: %d tokens (one + %d refreshes)" % (what, REFRESHES + 1, REFRESHES),
             len(tokens) == REFRESHES + 1 and tokens[-1].get("refresh") == REFRESHES, tokens)
    fps = [x.get("fingerprint") for x in tokens]
    ck.check("%s: every token is new (distinct fingerprints)" % what,
             len(set(fps)) == len(fps) and all(f and f.startswith("sha256:") for f in fps), fps)
    ck.check("%s: audience %s, expiry ~4 s ahead" % (what, audience),
             all(x.get("audience") == audience and 0 < x.get("expires_in_ms", 0) <= 4500
                 for x in tokens), tokens)
    ck.check("%s: refreshes happened ahead of expiry (~2 s apart)" % what,
             all(1500 <= b["elapsed_ms"] - a["elapsed_ms"] <= 3800 for a, b in zip(tokens, tokens[1:])),
             [x.get("elapsed_ms") for x in tokens])
    ck.check("%s: the client sent exactly one token request per token" % what,
             tokens and tokens[-1].get("token_requests") == REFRESHES + 1 and
             tokens[-1].get("token_failures") == 0, tokens[-1:])
    ck.check("%s: each token was accepted by %s (probe 200)" % (what, audience),
             len(probes) == REFRESHES + 1 and all(p.get("ok") and p.get("status") == 200 for p in probes)
             and [p.get("fingerprint") for p in probes] == fps, probes)


def main():
    azit.require_tool()
    ck = azit.Checks("azure identity")
    sim = azit.start_sim(extra_args=["--token-lifetime", "4"])
    c = sim.client()
    ready = sim.ready
    app = c.worker_app
    mi = ready["managed_identities"][0]["client_id"]

    # ---- client secret
    c.clear_requests()
    run = azit.run_tool(sim, "secret", ["token", "arm", "--wait-refresh", str(REFRESHES), "--probe", PROBE_ARM])
    check_refreshing_run(ck, "secret", run, "arm")
    log = c.requests(service="token")
    ck.check("secret: simulator saw 3 client_secret grants for the app, all 200",
             len(log) == 3 and all(e.get("grant") == "client_secret" and e.get("client_id") == app and
                                   e.get("status") == 200 for e in log), log)
    arm = c.requests(service="arm")
    ck.check("secret: ARM probes ran as the app", len(arm) == 3 and all(
        e["principal"].get("appid") == app and e["status"] == 200 for e in arm), arm)
    azit.no_leaks(ck, "secret", run, ready)

    # ---- client certificate (JWT assertion)
    c.clear_requests()
    run = azit.run_tool(sim, "cert", ["token", "arm", "--wait-refresh", str(REFRESHES), "--probe", PROBE_ARM])
    check_refreshing_run(ck, "certificate", run, "arm")
    log = c.requests(service="token")
    assertions = [e.get("body", {}).get("client_assertion", "") for e in log]
    ok_shape = True
    jtis = []
    try:
        for a in assertions:
            h, claims = jwt_part(a, 0), jwt_part(a, 1)
            ok_shape = ok_shape and h.get("alg") == "RS256" and "x5t#S256" in h and \
                claims.get("iss") == app and claims.get("sub") == app and claims.get("aud") == ready["token_url"]
            jtis.append(claims.get("jti"))
    except Exception as e:  # noqa: BLE001
        ok_shape = False
        assertions.append(repr(e))
    ck.check("certificate: simulator saw 3 signed assertions (RS256, x5t#S256, iss=sub=app, aud=token URL), all 200",
             len(log) == 3 and ok_shape and all(e.get("grant") == "client_assertion" and e["status"] == 200
                                                for e in log), log)
    ck.check("certificate: a fresh jti in every assertion", len(set(jtis)) == 3 and None not in jtis, jtis)
    azit.no_leaks(ck, "certificate", run, ready)

    # ---- workload identity (federated token file), rotated while the tool runs
    c.clear_requests()
    fed_file = ready["apps"][app]["federated_token_file"]
    with open(fed_file) as f:
        old_fed = f.read().strip()
    argv = azit.tool_argv(sim, "workload", ["token", "arm", "--wait-refresh", str(REFRESHES), "--probe", PROBE_ARM])
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    rotated = None
    if '"event":"token"' in first:
        rotated = c.rotate_federated_token(app, keep_old=False)
    out, err = p.communicate(timeout=60)
    run = azit.Run(argv, p.returncode, first + out, err, time.monotonic() - t0)
    check_refreshing_run(ck, "workload", run, "arm")
    log = c.requests(service="token")
    used = [e.get("body", {}).get("client_assertion") for e in log]
    new_fed = (rotated or {}).get("token")
    ck.check("workload: the federated token was rotated after the first token", bool(new_fed) and new_fed != old_fed,
             rotated)
    ck.check("workload: first request sent the old file contents, the refreshes the rotated file's",
             len(used) == 3 and used[0] == old_fed and used[1] == new_fed and used[2] == new_fed and
             all(e["status"] == 200 for e in log), [(u or "")[:12] for u in used])
    azit.no_leaks(ck, "workload", run, ready)
    with open(fed_file) as f:
        ck.check("workload: no federated token in the output", f.read().strip() not in run.stdout + run.stderr)

    # ---- managed identity (IMDS)
    c.clear_requests()
    run = azit.run_tool(sim, "imds", ["token", "arm", "--wait-refresh", str(REFRESHES), "--probe", PROBE_ARM])
    check_refreshing_run(ck, "managed identity", run, "arm")
    log = c.requests(service="imds")
    ck.check("managed identity: simulator saw 3 IMDS GETs (api-version 2018-02-01, ARM resource, client_id)",
             len(log) == 3 and all(e["status"] == 200 and e["query"].get("api-version") == "2018-02-01" and
                                   e["query"].get("resource") == "https://management.azure.com/" and
                                   e["query"].get("client_id") == mi for e in log), log)
    ck.check("managed identity: no token-endpoint request", c.requests(service="token") == [])
    arm = c.requests(service="arm")
    ck.check("managed identity: ARM probes ran as the identity",
             len(arm) == 3 and all(e["principal"].get("appid") == mi for e in arm), arm)

    # ---- Graph audience (certificate), refreshed the same way
    c.clear_requests()
    run = azit.run_tool(sim, "cert", ["token", "graph", "--wait-refresh", str(REFRESHES), "--probe", PROBE_GRAPH])
    check_refreshing_run(ck, "certificate/graph", run, "graph")
    log = c.requests(service="token")
    ck.check("certificate/graph: 3 token requests with the Graph scope",
             len(log) == 3 and all(e["body"].get("scope") == "https://graph.microsoft.com/.default" for e in log), log)

    # ---- failures: clear errors, nothing else sent
    cases = [
        ("bad secret", "badsecret", [], ["AUTH", "invalid_client", "AADSTS7000215"]),
    ]
    d = azit.tmpdir()
    cert, key = azit.openssl_self_signed(d, "forged")
    cases.append(("forged assertion (unknown certificate)", "forged", ["--cert", cert, "--key", key],
                  ["AUTH", "invalid_client", "AADSTS700027"]))
    bogus = d + "/bogus-federated-token"
    with open(bogus, "w") as f:
        f.write("eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.not-registered\n")
    cases.append(("unregistered federated token", "workload", ["--token-file", bogus],
                  ["AUTH", "invalid_request", "AADSTS70021"]))
    for what, auth, opts, words in cases:
        c.clear_requests()
        run = azit.run_tool(sim, auth, ["token", "arm", "--probe", PROBE_ARM], opts=opts, timeout=30)
        err = run.last("error")
        ck.check("%s: exit 2 within 5 s" % what, run.rc == 2 and run.elapsed < 5, run)
        ck.check("%s: clear error (%s)" % (what, ", ".join(words)),
                 all(w in run.stderr for w in words) and err.get("code") == "AUTH" and
                 all(w in err.get("message", "") for w in words[1:]), run.stderr)
        ck.check("%s: no token printed" % what, run.events("token") == [], run.lines)
        log = c.requests()
        ck.check("%s: one token request (401/400), no ARM request" % what,
                 len(log) == 1 and log[0]["service"] == "token" and log[0]["status"] in (400, 401), log)
        azit.no_leaks(ck, what, run, ready)
    return ck.summary()


if __name__ == "__main__":
    sys.exit(main())
