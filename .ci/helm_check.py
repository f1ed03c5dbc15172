"""Checks the Helm chart (run by .ci/helm.sh inside its venv): lint, schema, render, validate.

Two real Helm builds, both Helm's Go SDK behind a C ABI, no cluster needed:
- helm-sdkpy (Helm 4.3): `helm lint`. Its binding takes no values file and no --strict, and drops
  the messages' text, so each values file is linted as the chart's own values.yaml in a copy,
  and any warning fails, which is what --strict does.
- helm-python-sdk (Helm 4.2): `helm lint --strict` with the values file and readable messages,
  and offline rendering (`helm template`), which helm-sdkpy cannot do: its install and upgrade
  always go to a cluster and it has no dry run.
Every rendered manifest is then validated against the Kubernetes JSON schemas shipped by
kubernetes-validate, strictly (unknown fields fail), for the oldest Kubernetes the chart allows
and the newest the package knows. The ServiceMonitor is a CRD that package has no schema for;
its fields that matter (selector, port name) are checked against the Service below instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import helm_python
import helm_sdkpy
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

CHART = Path(sys.argv[1]).resolve()
ROOT = CHART.parent.parent
RELEASE, NAMESPACE = "tokend", "auth"
# The chart's kubeVersion floor (native gRPC probes are GA from 1.27) and the newest schemas.
KUBE_VERSIONS = ["1.27.0", "1.37.0"]
NO_SCHEMA = {("monitoring.coreos.com/v1", "ServiceMonitor")}
WARNING = 2  # Helm lint severities: 1 info, 2 warning, 3 error
# Settings the chart may set before the README's Configuration table lists them (none now).
PENDING_ENV: set[str] = set()
README_ENV = set(re.findall(r"`(TOKEND__[A-Z0-9_]+)`", (ROOT / "README.md").read_text()))
KEK = "xxKvtaE7mW2qVipgA7KylI7zYnSfsXsgS7Q3emR8Do4="

failures: list[str] = []


def expect(ok: bool, what: str) -> None:
    if not ok:
        failures.append(what)
        print(f"  FAIL {what}")


@contextlib.contextmanager
def helm_log():
    """Holds back what Helm writes to stderr (in lint mode, e.g. each `required` value the
    defaults lack, which is expected) and hands it over, to be shown only when a lint fails."""
    logged = [""]
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            yield logged
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            logged[0] = log.read().decode(errors="replace").strip()


def load_values(name: str | None) -> dict | None:
    return None if name is None else yaml.safe_load((CHART / "ci" / name).read_text())


def lint_python(values: dict | None) -> list[str]:
    """`helm lint --strict [-f values]`: the errors and warnings, as text."""
    with helm_log() as logged:
        report = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE)
    found = [f"{m['path']}: {m['error'].strip()}" for m in report["messages"] if m["severity"] >= WARNING]
    found += [e.strip() for e in report["errors"] if not any(e.strip() in f for f in found)]
    return found + ([f"Helm's log: {logged[0]}"] if found and logged[0] else [])


def lint_sdkpy(values: dict | None) -> list[str]:
    """helm-sdkpy's lint of the chart, or of a copy whose values.yaml is `values` over the
    defaults (coalesced by Helm itself); warnings count (--strict)."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = CHART
        if values is not None:
            chart = Path(tmp) / CHART.name
            shutil.copytree(CHART, chart)
            merged = helm_python.Chart.load(CHART).merge_values(values)
            (chart / "values.yaml").write_text(yaml.safe_dump(merged))
        with helm_log() as logged:
            report = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration(namespace=NAMESPACE)).run(str(chart)))
    found = [f"{m['Path']}: severity {m['Severity']} (helm-sdkpy gives no text)"
             for m in report["Messages"] if m["Severity"] >= WARNING]
    return found + ([f"Helm's log: {logged[0]}"] if found and logged[0] else [])


def render(values: dict | None) -> tuple[list[dict], str]:
    """`helm template`: the manifests (hooks included) and NOTES.txt."""
    out = helm_python.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    notes = out.pop(f"{CHART.name}/templates/NOTES.txt", "")
    docs = [d for text in out.values() for d in yaml.safe_load_all(text) if d]
    return docs, notes


def validate_k8s(docs: list[dict]) -> int:
    checked = 0
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if (doc["apiVersion"], doc["kind"]) in NO_SCHEMA:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                checked += 1
            except ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                expect(False, f"{name} against Kubernetes {version}: {path}: {e.message}")
            except SchemaNotFoundError:
                expect(False, f"{name}: no Kubernetes {version} schema for {doc['apiVersion']}")
    return checked


def one(docs: list[dict], kind: str, hook: bool | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind
            and (hook is None or hook == ("helm.sh/hook" in d["metadata"].get("annotations", {})))]


def secret_refs(container: dict) -> set[str]:
    return {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}


def check_contract(docs: list[dict], notes: str, v: dict) -> None:
    """What the chart promises, on the rendered manifests of one values file."""
    [dep] = one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    [c] = [c for c in pod["containers"] if c["name"] == "tokend"]
    env = {e["name"]: e for e in c["env"]}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    tls, metrics = v["tls"]["enabled"], v["metrics"]["enabled"]

    # hardening
    sc, psc = c["securityContext"], pod["securityContext"]
    expect(pod["automountServiceAccountToken"] is False, "pod mounts a service-account token")
    expect(sc.get("readOnlyRootFilesystem") is True, "root filesystem is writable")
    expect(sc.get("allowPrivilegeEscalation") is False, "privilege escalation allowed")
    expect(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities not all dropped")
    expect(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "may run as root")
    expect(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "no RuntimeDefault seccomp")
    for sa in one(docs, "ServiceAccount"):
        expect(sa.get("automountServiceAccountToken") is False, "ServiceAccount automounts its token")

    # probes: native gRPC health, readiness on Introspection; with TLS on the API port, on the
    # plaintext health-only port (server.health_addr), which the Service does not expose
    probe_port = ports["health"] if tls else ports["grpc"]
    if tls:
        expect(env["TOKEND__SERVER__HEALTH_ADDR"]["value"] == f"0.0.0.0:{ports['health']}",
               "server.health_addr is not the health port")
    else:
        expect("TOKEND__SERVER__HEALTH_ADDR" not in env and "health" not in ports, "a health port without TLS")
    expect(c["livenessProbe"].get("grpc") == {"port": probe_port}, "liveness is not gRPC health on ''")
    expect(c["readinessProbe"].get("grpc") == {"port": probe_port, "service": "tokend.v1.IntrospectionService"},
           "readiness is not gRPC health on tokend.v1.IntrospectionService")
    expect(env["TOKEND__SERVER__ADDR"]["value"] == f"0.0.0.0:{ports['grpc']}", "server.addr is not the grpc port")
    grace = int(env["TOKEND__SERVER__SHUTDOWN_GRACE_SECS"]["value"])
    expect(pod["terminationGracePeriodSeconds"] > grace, "terminationGracePeriodSeconds <= shutdown grace")

    # Service: h2c gRPC port, metrics port of its own
    [svc] = one(docs, "Service")
    sports = {p["name"]: p for p in svc["spec"]["ports"]}
    expect(sports["grpc"].get("appProtocol") == "grpc" and sports["grpc"]["targetPort"] == "grpc",
           "Service grpc port lacks appProtocol grpc")
    expect(svc["spec"]["selector"].items() <= pod_labels.items(), "Service selects no pod")
    expect(("metrics" in sports) == metrics == ("metrics" in ports), "metrics port on/off mismatch")
    if metrics:
        expect(env["TOKEND__METRICS__ADDR"]["value"].endswith(f":{ports['metrics']}"), "metrics.addr port")
        expect(ports["metrics"] != ports["grpc"], "metrics on the API port")
    for sm in one(docs, "ServiceMonitor"):
        expect(sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(),
               "ServiceMonitor does not select the Service")
        expect(all(e["port"] in sports for e in sm["spec"]["endpoints"]), "ServiceMonitor port not on the Service")

    # every tokend env var is a documented setting (or one being added now)
    for container in [c] + [j["spec"]["template"]["spec"]["containers"][0] for j in one(docs, "Job")]:
        for e in container["env"]:
            n = e["name"]
            expect(not n.startswith("TOKEND__") or n in README_ENV | PENDING_ENV, f"{n} is not in the README")

    # Secrets: pods read a release Secret (or existingSecret); the migrations hook reads one that
    # exists at hook time: existingSecret, or a hook Secret created before it for the same events
    existing = v["existingSecret"]
    plain = {s["metadata"]["name"] for s in one(docs, "Secret", hook=False)}
    hooks = {s["metadata"]["name"]: s["metadata"]["annotations"] for s in one(docs, "Secret", hook=True)}
    expect(secret_refs(c) == {existing or dep["metadata"]["name"]} and (not existing or not plain),
           f"pods read {secret_refs(c)}, chart Secrets {plain}")
    jobs = one(docs, "Job")
    expect(len(jobs) == int(v["migrations"]["enabled"]), "migrations Job on/off mismatch")
    expect(env["TOKEND__DATABASE__MIGRATE_ON_START"]["value"] == str(not jobs).lower(),
           "migrate_on_start must be on exactly when there is no migrations Job")
    for job in jobs:
        ann = job["metadata"]["annotations"]
        events = set(ann["helm.sh/hook"].split(","))
        expect(events == {"pre-install", "pre-upgrade"}, f"Job hook events {events}")
        jc = job["spec"]["template"]["spec"]["containers"][0]
        expect(jc["args"] == ["migrate"], "the Job does not run `tokend migrate`")
        for ref in secret_refs(jc):
            h = hooks.get(ref)
            expect(ref == existing or (h is not None and events <= set(h["helm.sh/hook"].split(","))
                                       and int(h["helm.sh/hook-weight"]) < int(ann["helm.sh/hook-weight"])),
                   f"the migrations Job reads Secret {ref}, which does not exist at hook time")

    # config: the TOML tokend gets is the values' config with federation.issuers merged in, and
    # it is passed with --config
    config = dict(v["config"])
    if v["federation"]["issuers"]:
        config["federation"] = {"issuers": v["federation"]["issuers"]}
    cms = one(docs, "ConfigMap")
    expect(bool(cms) == bool(config) == ("--config" in c["args"]), "config on/off mismatch")
    for cm in cms:
        expect(tomllib.loads(cm["data"]["tokend.toml"]) == config, "tokend.toml differs from values' config")
    # federation.clusterIssuer: the cluster CA and tokend's own token mounted where the
    # issuers' ca_file / token_file can name them, and the discovery role bound
    cluster = v["federation"]["clusterIssuer"]
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    expect(("cluster-identity" in mounts) == cluster["enabled"], "cluster-identity mount on/off mismatch")
    if cluster["enabled"]:
        expect(mounts["cluster-identity"] == "/var/run/secrets/tokend/cluster", "cluster-identity mount path")
    bindings = one(docs, "ClusterRoleBinding")
    expect(len(bindings) == int(cluster["enabled"] and cluster["discoveryBinding"]), "discovery binding on/off")
    for b in bindings:
        expect(b["roleRef"]["name"] == "system:service-account-issuer-discovery", "discovery binding role")

    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for d in one(docs, kind):
            sel = d["spec"].get("selector", d["spec"].get("podSelector"))["matchLabels"]
            expect(sel.items() <= pod_labels.items(), f"{kind} selects no tokend pod")
    for hpa in one(docs, "HorizontalPodAutoscaler"):
        expect(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "HPA targets another Deployment")
        expect("replicas" not in dep["spec"], "Deployment sets replicas under an HPA")
    expect("grpc.health.v1.Health/Check" in notes and "client create --tenant system" in notes,
           "NOTES.txt lacks the health check or the admin bootstrap")


def positive(name: str | None) -> None:
    label = name or "values.yaml (defaults)"
    print(f"-- {label}")
    values = load_values(name)
    for tool, found in (("helm-python-sdk lint --strict", lint_python(values)),
                        ("helm-sdkpy lint", lint_sdkpy(values))):
        for f in found:
            expect(False, f"{tool}: {f}")
    if name is None:
        return  # the defaults have no database URL or KEK: `helm install` must refuse them (below)
    docs, notes = render(values)
    checked = validate_k8s(docs)
    effective = helm_python.Chart.load(CHART).merge_values(values)
    check_contract(docs, notes, effective)
    kinds = sorted(f"{d['kind']}" for d in docs)
    print(f"  rendered {len(docs)} manifests ({', '.join(kinds)}); {checked} schema validations")


def negative(label: str, values: dict | None, needle: str) -> None:
    """Values that must be refused: by both lints (schema cases) or by the render."""
    print(f"-- must fail: {label}")
    if values is not None:
        found = lint_python(values)
        expect(any(needle in f for f in found), f"helm lint --strict accepted {label}: {found}")
        expect(any(f.startswith("values.yaml") for f in lint_sdkpy(values)), f"helm-sdkpy lint accepted {label}")
    try:
        render(values)
        expect(False, f"rendering accepted {label}")
    except helm_python.HelmError as e:
        expect(needle in str(e), f"rendering {label} failed, but not for the expected reason: {e}")


def main() -> int:
    started = time.monotonic()
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    app = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    expect(app == cargo, f"Chart.yaml appVersion {app} != Cargo.toml version {cargo}")
    print(f"Helm SDKs: helm-python-sdk {helm_python.helm_sdk_version()}, helm-sdkpy {helm_sdkpy.get_version()}")

    positive(None)
    for f in sorted((CHART / "ci").glob("*-values.yaml")):
        positive(f.name)

    base = {"database": {"url": "postgres://u:p@db:5432/tokend"}, "kek": KEK}
    negative("a typo'd top-level key (replicaCuont)", {**base, "replicaCuont": 3},
             "additional properties 'replicaCuont' not allowed")
    negative("a typo'd nested key (metrics.serviceMonitor.enabeld)",
             {**base, "metrics": {"serviceMonitor": {"enabeld": True}}}, "'enabeld' not allowed")
    negative("a KEK that is not base64 of 32 bytes", {**base, "kek": "hunter2"}, "/kek")
    negative("a SQLite database URL", {**base, "database": {"url": "sqlite:///data/tokend.db"}}, "/database/url")
    negative("TLS without a Secret", {**base, "tls": {"enabled": True}}, "/tls/secretName")
    negative("the defaults (no database URL, no KEK)", None, "database.url is required")

    print(f"\n{len(failures)} failed, in {time.monotonic() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
