#!/usr/bin/env python3
"""Policy checks on k8s/*.yaml that a schema cannot express.

Run by tests/k8s/validate.sh (python3 + PyYAML). Prints one `PASS <check>` or
`FAIL <check>: <why>` line per check and exits 1 if any failed. As a side effect it writes the
`args` of every container running the scrapefarm image to target/k8s-scrapefarm-args.json (a
JSON list of argument lists), so a Rust test can feed each one to the clap parser.

    python3 tests/k8s/check_manifests.py [--repo DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

SECRET_NAME = "scrapefarm-credentials"
# The workers' least-privilege database role (`scrapefarm db grant-worker`); the owner's
# DATABASE_URL in SECRET_NAME is for the migration Job only.
WORKER_SECRET_NAME = "scrapefarm-worker-credentials"
# Localhost seccomp profile that lets Chromium's sandbox create user namespaces.
CHROMIUM_SECCOMP = "profiles/scrapefarm-chromium.json"
CHROMIUM_SECCOMP_FILE = "seccomp/scrapefarm-chromium.json"
WORKER_JOB = "scrapefarm-worker"
COMPLETION_INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
APP_COMPONENTS = {"worker", "migrate", "enqueue", "serve"}
SERVE_DEPLOYMENT = "scrapefarm-serve"
SERVE_PORT = 8080
WORKER_METRICS_PORT = 9464
# Where each app component may be reached from: nowhere, except Prometheus on the workers'
# metrics port and any client on the service's port (which also serves /metrics).
INGRESS_PORTS = {"worker": {WORKER_METRICS_PORT}, "serve": {SERVE_PORT}}
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"


class Checks:
    """Collects PASS/FAIL lines; `failed` decides the exit code."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, why: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {why}")
        return ok


class Workload:
    """A manifest that carries a pod template, with where it came from."""

    def __init__(self, file: str, doc: dict, template: dict) -> None:
        self.file = file
        self.doc = doc
        self.kind = doc["kind"]
        self.name = doc["metadata"]["name"]
        self.labels = (template.get("metadata") or {}).get("labels") or {}
        self.pod = template.get("spec") or {}

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    def containers(self) -> list[dict]:
        pod = self.pod
        return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])

    def volumes(self) -> dict[str, dict]:
        return {v["name"]: v for v in self.pod.get("volumes") or []}


def load_manifests(k8s: Path) -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(k8s.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def pod_template(doc: dict) -> dict | None:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "ScaledJob":
        return (spec.get("jobTargetRef") or {}).get("template")
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    if kind in {"Job", "StatefulSet", "Deployment", "DaemonSet", "ReplicaSet"}:
        return spec.get("template")
    if kind == "Pod":
        return doc
    return None


def is_scrapefarm_image(image: str) -> bool:
    repository = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return repository.split(":", 1)[0] == "scrapefarm"


def effective(pod: dict, container: dict, key: str):
    """A securityContext field as the kubelet sees it: the container's, else the pod's."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod.get("securityContext") or {}).get(key)


def check_kustomization(c: Checks, k8s: Path) -> None:
    path = k8s / "kustomization.yaml"
    try:
        kust = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        c.check("kustomization.yaml parses", False, str(err))
        return
    c.check("kustomization.yaml parses", isinstance(kust, dict) and kust.get("kind") == "Kustomization",
            "not a Kustomization")
    listed = list((kust or {}).get("resources") or [])
    missing = [r for r in listed if not (k8s / r).is_file()]
    c.check("kustomization resources all exist", not missing, f"missing: {missing}")
    on_disk = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml"}
    unlisted = sorted(on_disk - set(listed))
    c.check("every k8s/*.yaml is listed in kustomization", not unlisted, f"unlisted: {unlisted}")
    c.check("kustomization namespace is scrapefarm", (kust or {}).get("namespace") == "scrapefarm",
            f"namespace: {(kust or {}).get('namespace')!r}")


def check_worker_job(c: Checks, workloads: list[Workload], config: dict) -> None:
    found = [w for w in workloads if w.kind == "Job" and w.name == WORKER_JOB]
    if not c.check("worker Job exists", len(found) == 1, f"{len(found)} Jobs named {WORKER_JOB}"):
        return
    w = found[0]
    spec = w.doc["spec"]
    c.check("worker Job is Indexed", spec.get("completionMode") == "Indexed",
            f"completionMode: {spec.get('completionMode')!r}")
    c.check("worker Job parallelism 16", spec.get("parallelism") == 16, f"{spec.get('parallelism')!r}")
    c.check("worker Job completions 16", spec.get("completions") == 16, f"{spec.get('completions')!r}")
    if "backoffLimitPerIndex" in spec or "podFailurePolicy" in spec:
        c.check("worker restartPolicy Never (backoffLimitPerIndex/podFailurePolicy)",
                w.pod.get("restartPolicy") == "Never", f"{w.pod.get('restartPolicy')!r}")
    main = [k for k in w.pod.get("containers") or [] if is_scrapefarm_image(k.get("image", ""))]
    if not c.check("worker runs the scrapefarm image", len(main) == 1, f"{len(main)} such containers"):
        return
    worker = main[0]
    env = {e["name"]: e for e in worker.get("env") or []}
    field = (((env.get("JOB_COMPLETION_INDEX") or {}).get("valueFrom") or {}).get("fieldRef") or {})
    c.check("worker JOB_COMPLETION_INDEX from the completion-index annotation",
            field.get("fieldPath") == COMPLETION_INDEX_FIELD, f"fieldRef: {field!r}")
    args = worker.get("args") or []
    c.check("worker args start with `worker`", args[:1] == ["worker"], f"args: {args}")
    for flag, setting in (("--concurrency", "SCRAPEFARM_CONCURRENCY"),
                          ("--exit-when-idle", "SCRAPEFARM_EXIT_WHEN_IDLE_SECS")):
        value = args[args.index(flag) + 1] if flag in args[:-1] else None
        c.check(f"worker {flag} agrees with {setting}", value is not None and value == config.get(setting),
                f"args say {value!r}, ConfigMap says {config.get(setting)!r}")
    probe = ((worker.get("readinessProbe") or {}).get("exec") or {}).get("command")
    c.check("worker readinessProbe runs `scrapefarm health`", probe == ["scrapefarm", "health"], f"{probe!r}")
    live = ((worker.get("livenessProbe") or {}).get("exec") or {}).get("command")
    c.check("worker livenessProbe runs `scrapefarm health` (pipeline progress)", live == ["scrapefarm", "health"], f"{live!r}")
    mounts = {m["mountPath"]: m["name"] for m in worker.get("volumeMounts") or []}
    volumes = w.volumes()
    for path, claim in (("/app/profiles", "scrapefarm-profiles"), ("/app/snapshots", "scrapefarm-snapshots")):
        got = (volumes.get(mounts.get(path, "")) or {}).get("persistentVolumeClaim", {}).get("claimName")
        c.check(f"worker mounts PVC {claim} at {path}", got == claim, f"mounted: {got!r}")
    c.check("worker profile mount matches SCRAPEFARM_PROFILE_DIR",
            config.get("SCRAPEFARM_PROFILE_DIR", "/app/profiles") in mounts,
            f"SCRAPEFARM_PROFILE_DIR={config.get('SCRAPEFARM_PROFILE_DIR')!r}")
    c.check("worker mounts /dev/shm", "/dev/shm" in mounts, "no /dev/shm mount")
    c.check("worker terminationGracePeriodSeconds > 30",
            (w.pod.get("terminationGracePeriodSeconds") or 30) > 30,
            f"{w.pod.get('terminationGracePeriodSeconds')!r} (default 30)")


def flag_value(args: list, flag: str):
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def scraped_on(c: Checks, w: Workload, port: int) -> None:
    """Prometheus scrape annotations on the pod template."""
    notes = ((w.doc["spec"].get("template") or (w.doc["spec"].get("jobTargetRef") or {}).get("template")
              or {}).get("metadata") or {}).get("annotations") or {}
    want = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}
    got = {k: notes.get(k) for k in want}
    c.check(f"{w.ref} pods carry Prometheus scrape annotations for port {port}", got == want, f"{got}")


def check_worker_metrics(c: Checks, w: Workload) -> None:
    """Every worker (the Indexed Job, the KEDA ScaledJob) serves /metrics where it is scraped."""
    main = [k for k in w.pod.get("containers") or [] if is_scrapefarm_image(k.get("image", ""))]
    for k in main:
        bind = flag_value([str(a) for a in k.get("args") or []], "--metrics-bind")
        c.check(f"{w.ref} worker serves /metrics on 0.0.0.0:{WORKER_METRICS_PORT}",
                bind == f"0.0.0.0:{WORKER_METRICS_PORT}", f"--metrics-bind {bind!r}")
        ports = {p.get("containerPort") for p in k.get("ports") or []}
        c.check(f"{w.ref} declares the metrics port", WORKER_METRICS_PORT in ports, f"ports {ports}")
    scraped_on(c, w, WORKER_METRICS_PORT)


def check_serve(c: Checks, workloads: list[Workload], docs: list[tuple[str, dict]]) -> None:
    """The service: one Deployment running `serve` on 0.0.0.0:8080 with HTTP probes, scraped,
    behind a Service on the same port."""
    found = [w for w in workloads if w.kind == "Deployment" and w.name == SERVE_DEPLOYMENT]
    if not c.check("serve Deployment exists", len(found) == 1, f"{len(found)} named {SERVE_DEPLOYMENT}"):
        return
    w = found[0]
    main = [k for k in w.pod.get("containers") or [] if is_scrapefarm_image(k.get("image", ""))]
    if not c.check("serve runs the scrapefarm image", len(main) == 1, f"{len(main)} such containers"):
        return
    k = main[0]
    args = [str(a) for a in k.get("args") or []]
    c.check("serve args are `serve --bind 0.0.0.0:8080`", args[:1] == ["serve"]
            and flag_value(args, "--bind") == f"0.0.0.0:{SERVE_PORT}", f"args: {args}")
    ports = {p.get("name"): p.get("containerPort") for p in k.get("ports") or []}
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        get = (k.get(probe) or {}).get("httpGet") or {}
        port = get.get("port")
        c.check(f"serve {probe} is GET {path} on {SERVE_PORT}",
                get.get("path") == path and (port == SERVE_PORT or ports.get(port) == SERVE_PORT),
                f"httpGet: {get}")
    scraped_on(c, w, SERVE_PORT)
    selector = w.doc["spec"].get("selector", {}).get("matchLabels") or {}
    c.check("serve Deployment selector matches its pods",
            bool(selector) and all(w.labels.get(a) == b for a, b in selector.items()), f"{selector}")
    services = [d for _, d in docs if d.get("kind") == "Service"
                and all(w.labels.get(a) == b for a, b in ((d.get("spec") or {}).get("selector") or {"": None}).items())]
    targets = [p.get("targetPort") for s in services for p in s["spec"].get("ports") or []]
    c.check(f"a Service routes to the serve pods' port {SERVE_PORT}",
            any(t == SERVE_PORT or ports.get(t) == SERVE_PORT for t in targets),
            f"services {[s['metadata']['name'] for s in services]}, targetPorts {targets}")


def check_keda(c: Checks, k8s: Path, config: dict) -> list[Workload]:
    """The KEDA ScaledJob: an alternative kept out of the default kustomization, scaling on the
    queue the workers consume, with the worker Job's settings."""
    kust = yaml.safe_load((k8s / "kustomization.yaml").read_text()) or {}
    workloads = []
    for path in sorted((k8s / "keda").glob("*.yaml")):
        rel = f"keda/{path.name}"
        c.check(f"{rel} is not a default kustomization resource", rel not in (kust.get("resources") or []),
                "listed in kustomization.yaml")
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "ScaledJob":
                continue
            w = Workload(rel, doc, pod_template(doc) or {})
            workloads.append(w)
            triggers = doc["spec"].get("triggers") or []
            queues = [(t.get("metadata") or {}).get("queueName") for t in triggers if t.get("type") == "rabbitmq"]
            c.check(f"{w.ref} scales on the work queue {config.get('SCRAPEFARM_QUEUE')}",
                    bool(queues) and all(q == config.get("SCRAPEFARM_QUEUE") for q in queues), f"{queues}")
            env = {e["name"] for k in w.containers() for e in k.get("env") or []}
            hosts = [(t.get("metadata") or {}).get("hostFromEnv") for t in triggers]
            c.check(f"{w.ref} trigger reads the broker URL from the worker's env",
                    all(h in env for h in hosts), f"hostFromEnv {hosts}, env {sorted(env)}")
            for k in w.containers():
                args = [str(a) for a in k.get("args") or []]
                for flag, setting in (("--concurrency", "SCRAPEFARM_CONCURRENCY"),
                                      ("--exit-when-idle", "SCRAPEFARM_EXIT_WHEN_IDLE_SECS")):
                    c.check(f"{w.ref} {flag} agrees with {setting}", flag_value(args, flag) == config.get(setting),
                            f"args say {flag_value(args, flag)!r}")
    c.check("the KEDA ScaledJob exists", bool(workloads), "no ScaledJob in k8s/keda/")
    return workloads


def check_pod_security(c: Checks, w: Workload) -> None:
    for k in w.containers():
        where = f"{w.ref} container {k['name']}"
        user, non_root = effective(w.pod, k, "runAsUser"), effective(w.pod, k, "runAsNonRoot")
        c.check(f"{where} runs non-root",
                user != 0 and (non_root is True or (user is not None and user != 0)),
                f"runAsUser={user!r} runAsNonRoot={non_root!r}")
        limits = (k.get("resources") or {}).get("limits") or {}
        c.check(f"{where} has cpu and memory limits", "cpu" in limits and "memory" in limits,
                f"limits: {limits!r}")
        sc = k.get("securityContext") or {}
        seccomp = effective(w.pod, k, "seccompProfile") or {}
        confined = seccomp.get("type") == "RuntimeDefault" or (
            seccomp.get("type") == "Localhost" and seccomp.get("localhostProfile") == CHROMIUM_SECCOMP)
        c.check(f"{where} is restricted (no privilege escalation, drops ALL, RuntimeDefault or the "
                "Chromium seccomp profile)",
                sc.get("allowPrivilegeEscalation") is False
                and "ALL" in ((sc.get("capabilities") or {}).get("drop") or []) and confined,
                f"securityContext: {sc!r}, seccomp: {seccomp!r}")
        image = k.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        c.check(f"{where} image has a pinned tag", "@" in image or (tag and tag != "latest"), image)


def check_pod_details(c: Checks, w: Workload, config: dict) -> None:
    c.check(f"{w.ref} pod labels name+component",
            w.labels.get(NAME_LABEL) == "scrapefarm" and bool(w.labels.get(COMPONENT_LABEL)),
            f"labels: {w.labels!r}")
    volumes = w.volumes()
    for k in w.containers():
        for m in k.get("volumeMounts") or []:
            if m["mountPath"] != "/dev/shm":
                continue
            empty = (volumes.get(m["name"]) or {}).get("emptyDir")
            c.check(f"{w.ref} /dev/shm is a Memory emptyDir with a sizeLimit",
                    isinstance(empty, dict) and empty.get("medium") == "Memory" and "sizeLimit" in empty,
                    f"volume {m['name']}: {volumes.get(m['name'])!r}")
    if not any(is_scrapefarm_image(k.get("image", "")) for k in w.containers()):
        return
    deadline = int(config.get("SCRAPEFARM_SHUTDOWN_DEADLINE_SECS", "30"))
    grace = w.pod.get("terminationGracePeriodSeconds") or 30
    c.check(f"{w.ref} terminationGracePeriodSeconds > shutdown deadline {deadline}", grace > deadline,
            f"terminationGracePeriodSeconds={grace}")
    for k in w.containers():
        if (k.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            paths = {m["mountPath"] for m in k.get("volumeMounts") or []}
            c.check(f"{w.ref} container {k['name']} has a writable /tmp (read-only root)", "/tmp" in paths,
                    f"mounts: {sorted(paths)}")


def check_references(c: Checks, w: Workload, secret_keys: dict[str, set[str]], configmaps: set[str],
                     claims: set[str]) -> None:
    secret_refs: list[tuple[str, str | None]] = []
    config_refs: list[str] = []
    for k in w.containers():
        for e in k.get("env") or []:
            source = e.get("valueFrom") or {}
            if "secretKeyRef" in source:
                secret_refs.append((source["secretKeyRef"].get("name"), source["secretKeyRef"].get("key")))
            if "configMapKeyRef" in source:
                config_refs.append(source["configMapKeyRef"].get("name"))
        for e in k.get("envFrom") or []:
            if "secretRef" in e:
                secret_refs.append((e["secretRef"].get("name"), None))
            if "configMapRef" in e:
                config_refs.append(e["configMapRef"].get("name"))
    pvc_templates = {t["metadata"]["name"] for t in w.doc["spec"].get("volumeClaimTemplates") or []}
    for v in w.volumes().values():
        if "secret" in v:
            secret_refs.append((v["secret"].get("secretName"), None))
        if "configMap" in v:
            config_refs.append(v["configMap"].get("name"))
        if "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"].get("claimName")
            c.check(f"{w.ref} PVC {claim} is defined", claim in claims, f"known: {sorted(claims)}")
    for name, key in secret_refs:
        what = f"{name}/{key}" if key else f"{name} (envFrom/volume)"
        c.check(f"{w.ref} secret ref {what}",
                name in secret_keys and (key is None or key in secret_keys[name]),
                f"must name a Secret of secret.template.yaml and one of its keys: {secret_keys}")
    for name in config_refs:
        c.check(f"{w.ref} ConfigMap {name} is defined", name in configmaps, f"known: {sorted(configmaps)}")
    for k in w.containers():
        mounts = {m["name"] for m in k.get("volumeMounts") or []}
        unknown = sorted(mounts - set(w.volumes()) - pvc_templates)
        c.check(f"{w.ref} container {k['name']} mounts only declared volumes", not unknown, f"{unknown}")


def check_secret_template(c: Checks, docs: list[tuple[str, dict]]) -> dict[str, set[str]]:
    secrets = [(f, d) for f, d in docs if d.get("kind") == "Secret"]
    names = [(f, d["metadata"]["name"]) for f, d in secrets]
    want_names = [("secret.template.yaml", SECRET_NAME), ("secret.template.yaml", WORKER_SECRET_NAME)]
    ok = c.check(f"the Secrets are {SECRET_NAME} and {WORKER_SECRET_NAME}, in secret.template.yaml",
                 names == want_names, f"found: {names}")
    if not ok:
        return {}
    keys = {d["metadata"]["name"]: set(d.get("stringData") or {}) for _, d in secrets}
    want = {
        SECRET_NAME: {"DATABASE_URL", "AMQP_URL", "POSTGRES_PASSWORD", "RABBITMQ_DEFAULT_USER",
                      "RABBITMQ_DEFAULT_PASS"},
        WORKER_SECRET_NAME: {"DATABASE_URL", "SCRAPEFARM_WORKER_DB_PASSWORD"},
    }
    for name, wanted in want.items():
        c.check(f"secret template {name} has all credential keys", wanted <= keys[name],
                f"missing: {sorted(wanted - keys[name])}")
    for _, d in secrets:
        data = d.get("stringData") or {}
        real = sorted(k for k, v in data.items() if k != "RABBITMQ_DEFAULT_USER" and "CHANGE_ME" not in str(v))
        c.check(f"secret template {d['metadata']['name']} holds placeholders only (CHANGE_ME)", not real,
                f"non-placeholder keys: {real}")
    return keys


def runs_browser(w: Workload) -> bool:
    """Pods that launch Chromium (they mount /dev/shm for it)."""
    return any(m.get("mountPath") == "/dev/shm" for k in w.containers() for m in k.get("volumeMounts") or [])


def check_least_privilege(c: Checks, w: Workload) -> None:
    """Browser pods: Chromium's sandbox may create user namespaces, and the database role is the
    worker's; only the migration Job and the service (which creates watches and holds their
    webhook secrets, refused to the worker role) connect as the owner."""
    for k in w.containers():
        if not is_scrapefarm_image(k.get("image", "")):
            continue
        where = f"{w.ref} container {k['name']}"
        db = next((((e.get("valueFrom") or {}).get("secretKeyRef") or {}) for e in k.get("env") or []
                   if e.get("name") == "DATABASE_URL"), {})
        if w.labels.get(COMPONENT_LABEL) == "migrate":
            continue
        if w.labels.get(COMPONENT_LABEL) == "serve":
            c.check(f"{where} connects as the owner (watch secrets)", db.get("name") == SECRET_NAME,
                    f"DATABASE_URL from {db!r}")
        else:
            c.check(f"{where} connects as the worker role", db.get("name") == WORKER_SECRET_NAME,
                    f"DATABASE_URL from {db!r}")
        if runs_browser(w):
            seccomp = effective(w.pod, k, "seccompProfile") or {}
            c.check(f"{where} runs Chromium under the sandbox-friendly seccomp profile",
                    seccomp == {"type": "Localhost", "localhostProfile": CHROMIUM_SECCOMP}, f"{seccomp!r}")
            c.check(f"{where} runs Chromium without privilege escalation",
                    (k.get("securityContext") or {}).get("allowPrivilegeEscalation") is False,
                    f"{k.get('securityContext')!r}")


def check_chromium_seccomp(c: Checks, k8s: Path) -> None:
    """The Localhost profile lets Chromium's sandbox make its namespaces, and denies the rest."""
    path = k8s / CHROMIUM_SECCOMP_FILE
    try:
        profile = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        c.check(f"{CHROMIUM_SECCOMP_FILE} is a JSON seccomp profile", False, str(err))
        return
    denied = {n for rule in profile.get("syscalls") or [] if rule.get("action") != "SCMP_ACT_ALLOW"
              for n in rule.get("names") or []}
    needed = {"clone", "clone3", "unshare", "setns", "chroot", "seccomp", "prctl"}
    c.check(f"{CHROMIUM_SECCOMP_FILE} allows what Chromium's sandbox needs",
            profile.get("defaultAction") == "SCMP_ACT_ALLOW" and not (needed & denied),
            f"defaultAction {profile.get('defaultAction')!r}, denied: {sorted(needed & denied)}")
    c.check(f"{CHROMIUM_SECCOMP_FILE} denies kernel-level calls",
            {"kexec_load", "init_module", "bpf", "mount"} <= denied,
            f"denied: {sorted(denied)}")


def check_distinct_profiles(c: Checks, workloads: list[Workload]) -> None:
    """The enqueue Job and CronJob render with their own profiles, never a worker's."""
    profiles = []
    for w in workloads:
        for k in w.containers():
            args = [str(a) for a in k.get("args") or []]
            if args[:1] == ["enqueue"] and "--query" in args:
                value = args[args.index("--profile") + 1] if "--profile" in args[:-1] else "enqueue"
                profiles.append((w.ref, value))
    names = [p for _, p in profiles]
    c.check("enqueuers render with distinct profiles, none a worker's",
            len(set(names)) == len(names) and not any(n.startswith("worker-") for n in names),
            f"{profiles}")


def check_network_policies(c: Checks, docs: list[tuple[str, dict]], workloads: list[Workload]) -> None:
    policies = [d for _, d in docs if d.get("kind") == "NetworkPolicy"]

    def selects(policy: dict, labels: dict) -> bool:
        selector = policy["spec"].get("podSelector") or {}
        if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
            return False
        for expr in selector.get("matchExpressions") or []:
            value, op = labels.get(expr["key"]), expr["operator"]
            if (op == "In" and value not in expr.get("values", [])) or \
               (op == "NotIn" and value in expr.get("values", [])) or \
               (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
                return False
        return True

    def admits(policy: dict, labels: dict) -> bool:
        """Whether an ingress rule of `policy` admits pods labelled `labels` of its namespace."""
        return any(selects({"spec": {"podSelector": peer["podSelector"]}}, labels)
                   for rule in policy["spec"].get("ingress") or [] for peer in rule.get("from") or []
                   if "podSelector" in peer and "namespaceSelector" not in peer)

    for w in workloads:
        component = w.labels.get(COMPONENT_LABEL)
        chosen = [p for p in policies if selects(p, w.labels)]
        if component in APP_COMPONENTS:
            for server in ("postgres", "rabbitmq"):
                guards = [p for p in policies if selects(p, {NAME_LABEL: "scrapefarm", COMPONENT_LABEL: server})]
                c.check(f"{w.ref} may reach {server} through its NetworkPolicy",
                        bool(guards) and any(admits(p, w.labels) for p in guards),
                        f"no ingress rule of {[p['metadata']['name'] for p in guards]} admits {w.labels}")
            egress = [p for p in chosen if "Egress" in (p["spec"].get("policyTypes") or [])]
            blocks = [peer["ipBlock"] for p in egress for rule in p["spec"].get("egress") or []
                      for peer in rule.get("to") or [] if "ipBlock" in peer]
            c.check(f"{w.ref} egress is restricted, internet without private ranges",
                    bool(egress) and bool(blocks) and all(PRIVATE_RANGES <= set(b.get("except") or [])
                                                          for b in blocks),
                    f"egress policies: {[p['metadata']['name'] for p in egress]}, ipBlocks: {blocks}")
            allowed = INGRESS_PORTS.get(component, set())
            rules = [rule for p in chosen for rule in p["spec"].get("ingress") or []]
            opened = {port.get("port") for rule in rules for port in rule.get("ports") or []}
            c.check(f"{w.ref} accepts ingress only on {sorted(allowed) or 'no port'}",
                    any("Ingress" in (p["spec"].get("policyTypes") or []) for p in chosen)
                    and all(rule.get("ports") for rule in rules) and opened <= allowed,
                    f"ingress rules {rules}")
            if component == "worker":
                c.check(f"{w.ref} metrics port open to chosen sources only",
                        all(rule.get("from") for rule in rules), f"ingress rules {rules}")
            if allowed:
                c.check(f"{w.ref} reachable on {sorted(allowed)}", opened == allowed, f"opened {opened}")
        elif component in {"postgres", "rabbitmq"}:
            ingress = [p for p in chosen if "Ingress" in (p["spec"].get("policyTypes") or [])]
            c.check(f"{w.ref} ingress limited by a NetworkPolicy", bool(ingress)
                    and all(rule.get("from") for p in ingress for rule in p["spec"].get("ingress") or []),
                    "no ingress policy, or a rule open to all sources")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    repo = parser.parse_args().repo.resolve()
    k8s = repo / "k8s"
    c = Checks()

    check_kustomization(c, k8s)
    docs = load_manifests(k8s)
    workloads = [Workload(f, d, t) for f, d in docs if (t := pod_template(d)) is not None]
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for _, d in docs if d.get("kind") == "ConfigMap"}
    config = configmaps.get("scrapefarm-config", {})
    c.check("ConfigMap scrapefarm-config exists", "scrapefarm-config" in configmaps, "missing")
    claims = {d["metadata"]["name"] for _, d in docs if d.get("kind") == "PersistentVolumeClaim"}
    secret_keys = check_secret_template(c, docs)

    for f, d in docs:
        labels = (d.get("metadata") or {}).get("labels") or {}
        c.check(f"{d['kind']}/{d['metadata']['name']} ({f}) labelled {NAME_LABEL}=scrapefarm",
                labels.get(NAME_LABEL) == "scrapefarm", f"labels: {labels!r}")

    check_worker_job(c, workloads, config)
    check_serve(c, workloads, docs)
    workloads += check_keda(c, k8s, config)
    for w in workloads:
        if w.labels.get(COMPONENT_LABEL) == "worker":
            check_worker_metrics(c, w)
        check_pod_security(c, w)
        check_pod_details(c, w, config)
        check_references(c, w, secret_keys, set(configmaps), claims)
        check_least_privilege(c, w)
    check_chromium_seccomp(c, k8s)
    check_distinct_profiles(c, workloads)
    check_network_policies(c, docs, workloads)

    all_args = []
    for w in workloads:
        for k in w.containers():
            if is_scrapefarm_image(k.get("image", "")):
                args = [str(a) for a in k.get("args") or []]
                if args not in all_args:
                    all_args.append(args)
    c.check("found scrapefarm containers to dump args of", bool(all_args), "no container runs scrapefarm")
    out = repo / "target" / "k8s-scrapefarm-args.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(all_args, indent=2) + "\n")
    print(f"wrote {out.relative_to(repo)} ({len(all_args)} argument lists)")

    print(f"check_manifests.py: {c.passed} checks ok, {c.failed} failing")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
