"""Fleet deployment (deploy/): the Kubernetes manifests and the Ansible role.

Kubernetes: every kustomization (base, overlays, cluster) is rendered here in Python, for exactly the kustomize
features deploy/kubernetes uses (anything else is refused, never guessed), checked against `kubectl kustomize`
where kubectl exists, and validated offline against the Kubernetes OpenAPI schemas bundled in kubernetes-validate,
strict (unknown fields are errors). The PodMonitor and the PrometheusRule are Prometheus Operator CRDs those schemas
lack: each is checked, as strictly, against a schema written from the operator's CRD (the PrometheusRule's lives in
test_prometheus_rules.py). Then the rules no schema holds: node selection, configs, security context, references.

Ansible: site.yml passes --syntax-check; the role runs against this host in --check --diff mode (once per mode, in
one run) and the host is the same afterwards; its template renders configs irqtune's own loader accepts.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, require
from test_prometheus_rules import PROMETHEUSRULE, PROMETHEUSRULE_SCHEMA, RULES

from irqtune.config import load_config

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
ANSIBLE = DEPLOY / "ansible"
ROLE = ANSIBLE / "roles" / "irqtune"
KUSTOMIZATIONS = ["base", "overlays/observe", "overlays/latency", "cluster"]
OVERLAYS = {"observe": "observe", "latency": "tune"}  # overlay -> the mode its config and pod labels say
OLDEST_KUBERNETES = "1.29.0"  # and the newest schemas kubernetes-validate bundles


def _yaml():
    try:
        import yaml
    except ImportError:
        require(False, "PyYAML not installed (it comes with kubernetes-validate: pip install kubernetes-validate)")
    return yaml


def _kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError:
        require(False, "kubernetes-validate not installed (pip install kubernetes-validate)")
    return kubernetes_validate


# -- a kustomize renderer for the subset deploy/kubernetes uses ------------------------------------------------------

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "nameSuffix", "labels", "configMapGenerator",
                        "patches", "images"}  # fmt: skip
KINDS = {"Namespace", "ServiceAccount", "ConfigMap", "DaemonSet", "PodMonitor", "PrometheusRule", "ClusterRole",
         "ClusterRoleBinding"}  # fmt: skip
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}  # no namespace set on them
# Strategic merge: lists merged by key (as in the Kubernetes API's patchMergeKey); any other list is replaced.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name", "volumeMounts": "mountPath",
              "env": "name", "ports": "containerPort", "tolerations": None}  # fmt: skip


class Unsupported(AssertionError):
    """A kustomization uses something this renderer does not implement: extend it (and its kubectl check)."""


def kustomize(directory: Path) -> list[dict]:
    """Render a kustomization as `kustomize build` does: bases, generators, patches, then namespace, suffix, labels
    and images, and at the end the generated ConfigMaps' hash suffixes and every reference to them."""
    objects = _build(directory)
    names = {(o["kind"], o["__orig"]): o for o in objects}
    for o in objects:
        if o.pop("__generated", False):
            o["metadata"]["name"] += "-" + _configmap_hash(o)
    for o in objects:
        if o["kind"] == "DaemonSet":
            _fix_references(o["spec"]["template"]["spec"], names)
        elif o["kind"] == "ClusterRoleBinding":
            _fix_binding(o, names)
    for o in objects:
        del o["__orig"]
    return objects


def _build(directory: Path) -> list[dict]:
    yaml = _yaml()
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    if set(k) - KUSTOMIZATION_FIELDS:
        raise Unsupported(f"{directory}: kustomization fields {sorted(set(k) - KUSTOMIZATION_FIELDS)}")
    objects: list[dict] = []
    for resource in k.get("resources", []):
        path = directory / resource
        if path.is_dir():
            objects += _build(path)
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                if doc["kind"] not in KINDS:
                    raise Unsupported(f"{path}: kind {doc['kind']}")
                objects.append({**doc, "__orig": doc["metadata"]["name"]})
    for gen in k.get("configMapGenerator", []):
        if set(gen) - {"name", "files", "behavior"}:
            raise Unsupported(f"{directory}: configMapGenerator fields {sorted(set(gen))}")
        data = {Path(f).name: (directory / f).read_text() for f in gen["files"]}
        behavior = gen.get("behavior", "create")
        if behavior == "create":
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}
            objects.append({**cm, "__orig": gen["name"], "__generated": True})
        elif behavior == "replace":
            _find(objects, "ConfigMap", gen["name"])["data"] = data
        else:
            raise Unsupported(f"{directory}: configMapGenerator behavior {behavior}")
    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            raise Unsupported(f"{directory}: patch fields {sorted(patch)} (only path)")
        for doc in yaml.safe_load_all((directory / patch["path"]).read_text()):
            target = _find(objects, doc["kind"], doc["metadata"]["name"])
            objects[objects.index(target)] = _merge(target, doc)
    for o in objects:
        if "namespace" in k and o["kind"] not in CLUSTER_SCOPED:
            o["metadata"]["namespace"] = k["namespace"]
        if "nameSuffix" in k:
            if o["kind"] == "Namespace":
                raise Unsupported(f"{directory}: nameSuffix on a Namespace")
            o["metadata"]["name"] += k["nameSuffix"]
    for spec in k.get("labels", []):
        _labels(objects, spec, directory)
    for image in k.get("images", []):
        for o in objects:
            for c in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                if c["image"].split(":")[0] == image["name"]:
                    c["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return objects


def _find(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["__orig"] == name]
    assert len(found) == 1, f"no single {kind}/{name} to patch or replace"
    return found[0]


def _merge(base, patch, key: str = ""):
    """Strategic merge patch: maps merge (null deletes), keyed lists merge by key, other lists are replaced."""
    if isinstance(patch, dict) and "$patch" in patch:
        raise Unsupported(f"$patch directive at {key}")
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(out[k], v, k) if k in out else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and MERGE_KEYS.get(key):
        merge_key, out = MERGE_KEYS[key], copy.deepcopy(base)
        for item in patch:
            match = [i for i, b in enumerate(out) if b.get(merge_key) == item.get(merge_key)]
            if match:
                out[match[0]] = _merge(out[match[0]], item, key)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _labels(objects: list[dict], spec: dict, directory: Path) -> None:
    if set(spec) - {"pairs", "includeSelectors", "includeTemplates"}:
        raise Unsupported(f"{directory}: labels fields {sorted(spec)}")
    selectors, templates = spec.get("includeSelectors", False), spec.get("includeTemplates", False)
    for o in objects:
        o["metadata"].setdefault("labels", {}).update(spec["pairs"])
        if o["kind"] == "DaemonSet":
            if selectors:
                o["spec"]["selector"].setdefault("matchLabels", {}).update(spec["pairs"])
            if selectors or templates:
                o["spec"]["template"]["metadata"].setdefault("labels", {}).update(spec["pairs"])
        elif o["kind"] not in ("ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
            raise Unsupported(f"{directory}: labels on a {o['kind']} (its selector fields are not known here)")


def _configmap_hash(cm: dict) -> str:
    """kustomize's name suffix: sha256 of the ConfigMap's kind and data as Go's json.Marshal writes them (sorted
    keys, no spaces, <>& escaped; the name is empty when generated), first 10 hex digits with 0 1 3 a e replaced."""
    text = json.dumps({"data": cm["data"], "kind": "ConfigMap", "name": ""}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)  # fmt: skip
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(char, escaped)
    return hashlib.sha256(text.encode()).hexdigest()[:10].translate(str.maketrans("013ae", "ghkmt"))


def _fix_references(pod: dict, names: dict) -> None:
    """Point the pod's references at the renamed objects (kustomize's nameReference, for the fields used here)."""
    for c in pod["containers"] + pod.get("initContainers", []):
        if "envFrom" in c or any("configMapKeyRef" in e.get("valueFrom", {}) for e in c.get("env", [])):
            raise Unsupported("envFrom / configMapKeyRef references")
    for volume in pod.get("volumes", []):
        if "projected" in volume:
            raise Unsupported("projected volumes")
        ref = volume.get("configMap")
        if ref and ("ConfigMap", ref["name"]) in names:
            ref["name"] = names["ConfigMap", ref["name"]]["metadata"]["name"]
    account = pod.get("serviceAccountName")
    if account and ("ServiceAccount", account) in names:
        pod["serviceAccountName"] = names["ServiceAccount", account]["metadata"]["name"]


def _fix_binding(binding: dict, names: dict) -> None:
    """A binding's role and ServiceAccount subjects renamed with them (kustomize's nameReference); a subject's
    namespace is left as written (kustomize sets it only on subjects named "default")."""
    role = binding["roleRef"]
    if ("ClusterRole", role["name"]) in names:
        role["name"] = names["ClusterRole", role["name"]]["metadata"]["name"]
    for subject in binding.get("subjects", []):
        if subject["kind"] == "ServiceAccount" and ("ServiceAccount", subject["name"]) in names:
            subject["name"] = names["ServiceAccount", subject["name"]]["metadata"]["name"]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: kustomize(K8S / name) for name in KUSTOMIZATIONS}


def _one(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


# -- Kubernetes: schemas ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_python_rendering_is_what_kubectl_kustomize_renders(name):
    """The renderer above is checked against the real kustomize (kubectl's), so the schema checks below look at
    what a cluster would get."""
    kubectl = shutil.which("kubectl")
    require(kubectl is not None, "kubectl not installed (its kustomize is the reference for the renderer)")
    out = subprocess.run([kubectl, "kustomize", str(K8S / name)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    theirs = [doc for doc in _yaml().safe_load_all(out.stdout) if doc]

    def key(o):
        return o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]

    assert {key(o): o for o in kustomize(K8S / name)} == {key(o): o for o in theirs}


@pytest.mark.slow
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_object_validates_against_the_kubernetes_schemas(rendered, name):
    kv = _kubernetes_validate()
    versions = [OLDEST_KUBERNETES, kv.utils.latest_version()]
    checked = 0
    for obj in rendered[name]:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            with pytest.raises(kv.utils.SchemaNotFoundError):  # a CRD: the operator's schema instead
                kv.validate(obj, versions[-1], strict=True)
            import jsonschema  # kubernetes-validate's dependency

            assert obj["kind"] in CRD_SCHEMAS, f"{name}: no schema for {obj['kind']}"
            try:
                jsonschema.validate(obj, CRD_SCHEMAS[obj["kind"]])
            except jsonschema.ValidationError as err:
                where = ".".join(str(p) for p in err.path)
                pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} at {where}: {err.message} (CRD)")
            continue
        for version in versions:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as err:
                where = ".".join(str(p) for p in err.path)
                pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} at {where}: {err.message} ({version})")
        checked += 1
    assert checked >= 1


def test_strict_validation_refuses_a_misspelt_field(rendered):
    """--strict is what makes the check worth having: the API server would silently drop an unknown field."""
    kv = _kubernetes_validate()
    daemonset = copy.deepcopy(_one(rendered["overlays/latency"], "DaemonSet"))
    daemonset["spec"]["template"]["spec"]["hostNetwrk"] = True
    with pytest.raises(kv.ValidationError):
        kv.validate(daemonset, kv.utils.latest_version(), strict=True)
    kv.validate(daemonset, kv.utils.latest_version(), strict=False)


# PodMonitor (monitoring.coreos.com/v1), written from the Prometheus Operator's CRD (v0.91) for the fields used
# here. Stricter than the CRD: unknown fields are errors (the API server would prune them without a word) and
# label names follow Prometheus 2.x.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
RELABEL_ACTIONS = ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap", "LabelMap",
                   "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase", "uppercase",
                   "Uppercase", "keepequal", "KeepEqual", "dropequal", "DropEqual"]  # fmt: skip
RELABEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {"enum": RELABEL_ACTIONS},
        "modulus": {"type": "integer"},
        "regex": {"type": "string"},
        "replacement": {"type": "string"},
        "separator": {"type": "string"},
        "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": LABEL_NAME}},
        "targetLabel": {"type": "string", "pattern": LABEL_NAME},
    },
}
PODMONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
        },
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "matchExpressions": {"type": "array"},
                    },
                },
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "sampleLimit": {"type": "integer"},
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "portNumber": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"type": "string", "pattern": DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": DURATION},
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array", "items": RELABEL},
                            "metricRelabelings": {"type": "array", "items": RELABEL},
                        },
                    },
                },
            },
        },
    },
}

# Every Prometheus Operator kind deploy/kubernetes renders, with its schema (strict: unknown fields are errors).
CRD_SCHEMAS = {"PodMonitor": PODMONITOR_SCHEMA, "PrometheusRule": PROMETHEUSRULE_SCHEMA}


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", duration))


def test_the_podmonitor_fits_the_operators_schema_and_scrapes_every_overlays_pods(rendered):
    import jsonschema  # kubernetes-validate's dependency

    _kubernetes_validate()
    monitor = _one(rendered["cluster"], "PodMonitor")
    jsonschema.validate(monitor, PODMONITOR_SCHEMA)
    broken = copy.deepcopy(monitor)
    broken["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, PODMONITOR_SCHEMA)

    namespace = _one(rendered["cluster"], "Namespace")
    assert monitor["metadata"]["namespace"] == namespace["metadata"]["name"]
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert _seconds(endpoint["scrapeTimeout"]) <= _seconds(endpoint["interval"])  # else the operator refuses
    pod_labels: set[str] = set()
    for overlay in OVERLAYS:
        daemonset = _one(rendered[f"overlays/{overlay}"], "DaemonSet")
        assert daemonset["metadata"]["namespace"] == namespace["metadata"]["name"]
        pod = daemonset["spec"]["template"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports
        pod_labels.update(re.sub(r"[^a-zA-Z0-9_]", "_", k) for k in pod["metadata"]["labels"])
    for relabel in monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]:
        source = relabel["sourceLabels"][0]
        if source.startswith("__meta_kubernetes_pod_label_"):  # a pod label: some overlay must set it
            assert source.removeprefix("__meta_kubernetes_pod_label_") in pod_labels, source


def test_the_prometheusrule_is_the_rules_file_in_the_irqtune_namespace(rendered):
    """What `kubectl apply -k deploy/kubernetes/cluster` sends: the file as it is (kustomize adds nothing), whose
    groups are deploy/prometheus/irqtune.rules.yml's, in the namespace the agents run in; the operator's schema
    refuses a misspelt field (the API server would prune it without a word)."""
    import jsonschema  # kubernetes-validate's dependency

    yaml = _yaml()
    _kubernetes_validate()
    rule = _one(rendered["cluster"], "PrometheusRule")
    assert rule == yaml.safe_load(PROMETHEUSRULE.read_text())
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert rule["metadata"]["namespace"] == _one(rendered["cluster"], "Namespace")["metadata"]["name"]
    jsonschema.validate(rule, PROMETHEUSRULE_SCHEMA)
    broken = copy.deepcopy(rule)
    broken["spec"]["groups"][1]["rules"][0]["annotation"] = {"summary": "misspelt"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, PROMETHEUSRULE_SCHEMA)


# -- Kubernetes: what no schema says ---------------------------------------------------------------------------------


def _pod(objects: list[dict]) -> tuple[dict, dict, dict]:
    daemonset = _one(objects, "DaemonSet")
    pod = daemonset["spec"]["template"]
    return daemonset, pod, pod["spec"]["containers"][0]


@pytest.mark.parametrize("name", ["base", *[f"overlays/{o}" for o in OVERLAYS]])
def test_the_agent_pod_is_wired_up(rendered, name):
    objects = rendered[name]
    daemonset, pod, container = _pod(objects)
    spec = pod["spec"]
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert spec["hostNetwork"] and spec["hostPID"] and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["automountServiceAccountToken"] is True  # the token for this node's pods (the CPU manager)
    assert spec["terminationGracePeriodSeconds"] >= 30  # SIGTERM restores before the kubelet's SIGKILL
    # References resolve inside the rendering.
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("ServiceAccount", spec["serviceAccountName"]) in names
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= set(volumes)
    configmaps = [v["configMap"]["name"] for v in volumes.values() if "configMap" in v]
    assert configmaps and all(("ConfigMap", cm) in names for cm in configmaps)
    # Host mounts: read-only, but the state dir (the journal) which must outlive the pod.
    for mount in container["volumeMounts"]:
        host = volumes[mount["name"]].get("hostPath")
        if host:
            assert mount.get("readOnly", False) == (host["path"] != "/var/lib/irqtune"), mount
    state = next(m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/irqtune")
    assert volumes[state["name"]]["hostPath"]["path"] == "/var/lib/irqtune"
    # The command line: the state dir and config the mounts provide, the exporter on the node's own address.
    args = container["args"]
    assert args[:3] == ["--state-dir", "/var/lib/irqtune", "run"]
    assert args[args.index("--config") + 1] == "/etc/irqtune/irqtune.toml"
    config_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/irqtune")
    assert "configMap" in volumes[config_mount["name"]]
    assert args[args.index("--listen") + 1] == "$(HOST_IP):9731"
    env = {e["name"]: e for e in container["env"]}
    for var in re.findall(r"\$\((\w+)\)", " ".join(args)):
        assert var in env, f"$({var}) is not defined: Kubernetes would pass it literally"
    assert env["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    # With hostNetwork the container port is the node's: hostPort must equal it (the API refuses otherwise).
    ports = {p["name"]: p for p in container["ports"]}
    assert ports["metrics"]["containerPort"] == ports["metrics"]["hostPort"] == 9731
    assert container["readinessProbe"]["httpGet"]["port"] == "metrics"
    assert "cpu" not in container["resources"].get("limits", {})  # no CFS throttling in the middle of a pass
    # Security context.
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["runAsUser"] == 0
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == {"NET_ADMIN", "BPF", "PERFMON"}  # no SYS_ADMIN: not needed since 5.8
    # No privilege escalation (no_new_privs), except where the API requires it: privileged or CAP_SYS_ADMIN.
    assert sc["allowPrivilegeEscalation"] == (sc["privileged"] or "SYS_ADMIN" in sc["capabilities"]["add"])
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])  # bcc needs a writable /tmp
    # The Kubernetes CPU manager: the kubelet's directory read-only (the checkpoint is replaced by a rename: a mount
    # of the file would go stale), the node's name from the downward API for the API server's field selector.
    kubelet = next(m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/kubelet")
    assert kubelet["readOnly"] is True and volumes[kubelet["name"]]["hostPath"]["path"] == "/var/lib/kubelet"
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


@pytest.mark.parametrize("name", ["base", *[f"overlays/{o}" for o in OVERLAYS]])
def test_the_agent_may_read_pods_and_nothing_else(rendered, name):
    """The ServiceAccount is bound to a ClusterRole of pods get/list only (RBAC cannot restrict it to one node:
    the agent asks for its own node's pods), and the binding names the pod's account in its namespace."""
    objects = rendered[name]
    daemonset, pod, _ = _pod(objects)
    role, binding = _one(objects, "ClusterRole"), _one(objects, "ClusterRoleBinding")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}  # fmt: skip
    account = pod["spec"]["serviceAccountName"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account,
                                    "namespace": daemonset["metadata"]["namespace"]}]  # fmt: skip
    config = load_config("irqtune.toml", _one(objects, "ConfigMap")["data"]["irqtune.toml"])
    assert config.kubernetes.pods == "api" and config.kubernetes.cpu_manager_state.startswith("/var/lib/kubelet/")


def test_observe_and_pool_overlays_split_the_nodes_and_agree_with_their_configs(rendered):
    daemonsets = {}
    for overlay, mode in OVERLAYS.items():
        objects = rendered[f"overlays/{overlay}"]
        daemonset, pod, container = _pod(objects)
        daemonsets[overlay] = daemonset
        configmap = _one(objects, "ConfigMap")
        config = load_config(f"{overlay}/irqtune.toml", configmap["data"]["irqtune.toml"])
        assert config.mode == mode == pod["metadata"]["labels"]["irqtune.io/mode"]
        assert config.restore_on_exit  # SIGTERM (node unlabelled, pod deleted, rollout) puts every knob back
        # Only tune pods are privileged: they write /proc/irq, /proc/sys and /sys, which the runtime mounts
        # read-only in every unprivileged container. Observe pods write nothing.
        assert container["securityContext"]["privileged"] is (mode == "tune")
        assert (container["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault") or mode == "tune"
    base_toml = _one(rendered["base"], "ConfigMap")["data"]["irqtune.toml"]
    assert base_toml == _one(rendered["overlays/observe"], "ConfigMap")["data"]["irqtune.toml"]
    assert load_config("base.toml", base_toml).mode == "observe"

    # Disjoint nodes: observe runs where no pool claimed the node, a pool where its label says so.
    observe = daemonsets["observe"]["spec"]["template"]["spec"]
    terms = observe["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "irqtune.io/pool", "operator": "DoesNotExist"}]}]
    assert "nodeSelector" not in observe
    latency = daemonsets["latency"]["spec"]["template"]
    assert latency["spec"]["nodeSelector"] == {"irqtune.io/pool": "latency"}
    assert latency["metadata"]["labels"]["irqtune.io/pool"] == "latency"
    # Two DaemonSets never share a name, a selector or a ConfigMap.
    assert daemonsets["observe"]["metadata"]["name"] != daemonsets["latency"]["metadata"]["name"]
    selectors = [d["spec"]["selector"]["matchLabels"] for d in daemonsets.values()]
    assert selectors[0] != selectors[1] and not selectors[0].items() <= selectors[1].items()
    # The tune rollout goes node by node and waits on each.
    assert daemonsets["latency"]["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
    assert daemonsets["latency"]["spec"]["minReadySeconds"] >= 60


def test_the_namespace_admits_the_agent_and_nothing_deletes_it_with_an_overlay(rendered):
    namespace = _one(rendered["cluster"], "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    for overlay in OVERLAYS:
        assert not [o for o in rendered[f"overlays/{overlay}"] if o["kind"] == "Namespace"]


# -- Ansible ---------------------------------------------------------------------------------------------------------


def _ansible(tmp_path: Path) -> dict[str, str]:
    require(bool(shutil.which("ansible-playbook")), "ansible-playbook not installed (apt: ansible-core)")
    env = dict(os.environ)
    home = tmp_path / "ansible-home"
    env.update(ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"), ANSIBLE_HOME=str(home),
               ANSIBLE_LOCAL_TEMP=str(home / "tmp"), ANSIBLE_REMOTE_TEMP=str(home / "remote-tmp"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")  # fmt: skip
    return env


def _systemd_src(tmp_path: Path) -> Path:
    """The repository's systemd/ when it has the unit; else a stand-in with the same ExecStart."""
    if (REPO / "systemd" / "irqtune.service").exists():
        return REPO / "systemd"
    src = tmp_path / "systemd"
    src.mkdir()
    shutil.copy(REPO / "systemd" / "irqtune.tmpfiles.conf", src)
    (src / "irqtune.service").write_text(
        "[Service]\nType=notify\nExecStart=/opt/irqtune/bin/irqtune --state-dir /var/lib/irqtune run "
        "--config /etc/irqtune/irqtune.toml\n"
    )
    return src


@pytest.mark.slow
def test_the_playbook_passes_the_syntax_check(tmp_path):
    env = _ansible(tmp_path)
    out = subprocess.run(["ansible-playbook", "-i", str(ANSIBLE / "inventory" / "example" / "hosts.yml"),
                          "--syntax-check", str(ANSIBLE / "site.yml")], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    graph = subprocess.run(["ansible-inventory", "-i", str(ANSIBLE / "inventory" / "example" / "hosts.yml"),
                            "--list"], capture_output=True, text=True, env=env, timeout=120, check=True)  # fmt: skip
    groups = json.loads(graph.stdout)
    assert set(groups["irqtune"]["children"]) == {"pool_general", "pool_latency"}
    hostvars = groups["_meta"]["hostvars"]
    assert all(hostvars[h]["irqtune_mode"] == "observe" for h in hostvars)  # the example starts in observe


# What the role may install or write on a host: identical before and after a --check run.
WATCHED = ["/opt/irqtune", "/etc/irqtune", "/var/lib/irqtune", "/var/cache/irqtune", "/etc/tmpfiles.d/irqtune.conf",
           "/etc/systemd/system/irqtune.service", "/etc/systemd/system/irqtune.service.d"]  # fmt: skip


def _host_state() -> dict[str, object]:
    state: dict[str, object] = {}
    for name in WATCHED:
        path = Path(name)
        if path.is_dir():
            state[name] = sorted(str(p.relative_to(path)) for p in path.rglob("*"))
        elif path.exists():
            state[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[name] = None
    packages = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Status} ${Version}\n"], capture_output=True,
                              text=True)  # fmt: skip
    state["dpkg"] = packages.stdout
    return state


PACKAGES_TASK = "Install the system packages (bcc, kernel headers, venv, iproute2, ethtool)"
# ansible-core has no JSON stdout callback (community.general has): this one prints every task result as JSON.
RESULTS_CALLBACK = """
import json
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "irqtune_results"

    def __init__(self):
        super().__init__()
        self.play, self.results = "", []

    def v2_playbook_on_play_start(self, play):
        self.play = play.get_name()

    def _add(self, result, status):
        self.results.append({"play": self.play, "task": result._task.name, "host": result._host.get_name(),
                             "status": status, "result": result._result})

    def v2_runner_on_ok(self, result):
        self._add(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._add(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._add(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._add(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in stats.processed}
        print(json.dumps({"results": self.results, "stats": summary}, default=str))
"""


@pytest.mark.slow
@pytest.mark.root
def test_the_role_applies_to_this_host_in_check_mode_and_changes_nothing(tmp_path):
    """One --check --diff run of site.yml with this host twice (local connections): once in observe, once in tune,
    so both plays run, the serial one included. Check mode only: nothing installed, written, enabled or started."""
    env = _ansible(tmp_path)
    require(shutil.which("dpkg-query") is not None and Path("/usr/bin/python3").exists(), "needs a Debian host")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import apt"], capture_output=True)
    require(probe.returncode == 0, "the apt module's --check needs python3-apt (apt-get install python3-apt)")
    inventory = tmp_path / "hosts.ini"
    local = "ansible_connection=local ansible_python_interpreter=/usr/bin/python3"
    inventory.write_text(f"[irqtune]\nobserver {local} irqtune_mode=observe\ntuner {local} irqtune_mode=tune\n")
    (tmp_path / "callbacks").mkdir()
    (tmp_path / "callbacks" / "irqtune_results.py").write_text(RESULTS_CALLBACK)
    env.update(ANSIBLE_CALLBACK_PLUGINS=str(tmp_path / "callbacks"), ANSIBLE_STDOUT_CALLBACK="irqtune_results")
    before = _host_state()
    out = subprocess.run(["ansible-playbook", "-i", str(inventory), str(ANSIBLE / "site.yml"), "--check", "--diff",
                          "-e", "ansible_become=false", "-e", f"irqtune_systemd_src={_systemd_src(tmp_path)}",
                          "-e", "irqtune_listen=192.0.2.1:9731", "-e", '{"irqtune_metrics_allow": ["192.0.2.10"]}'],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert _host_state() == before, "a --check run changed the host"
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(s["failures"] == 0 and s["unreachable"] == 0 for s in report["stats"].values()), report["stats"]
    assert set(report["stats"]) == {"observer", "tuner"}

    for play, host in (("Observe", "observer"), ("Tune", "tuner")):  # each host in its mode's play only
        assert {r["host"] for r in report["results"] if r["play"].startswith(play)} == {host}

    def result(task: str, host: str) -> dict:
        found = [r for r in report["results"] if r["task"] == task and r["host"] == host]
        assert len(found) == 1, f"{task} on {host}: {len(found)} results"
        return found[0]

    for host, mode in (("observer", "observe"), ("tuner", "tune")):
        assert result(PACKAGES_TASK, host)["status"] == "ok"  # in --check: apt says what it would install
        assert result("Create the venv and install irqtune in it", host)["status"] == "ok"
        config = result("Install the configuration", host)["result"]["diff"][0]["after"]
        assert load_config("rendered.toml", config).mode == mode
        dropin = result("Set the exporter's address (drop-in)", host)["result"]["diff"][0]["after"]
        assert "--listen 192.0.2.1:9731" in dropin and "IPAddressAllow=192.0.2.10" in dropin
        if not Path("/run/systemd/system").is_dir():  # no systemd as PID 1 here: the service is left alone
            assert result("Enable and start irqtune", host)["status"] == "skipped"
    assert result("No change was rolled back", "tuner")["status"] == "skipped"  # in --check mode: nothing ran
    # irqtune is on no index: by default the wheel of this checkout is built once on the controller and installed
    built = [r for r in report["results"] if r["task"] == "Find the wheel built" and r["status"] == "ok"]
    assert len(built) == 2 and all(len(r["result"]["files"]) == 1 for r in built), built  # once per play
    wheels = {os.path.basename(r["result"]["files"][0]["path"]) for r in built}
    assert len(wheels) == 1 and next(iter(wheels)).startswith("irqtune-") and next(iter(wheels)).endswith(".whl")
    copies = [r for r in report["results"] if r["task"] == "Copy the wheel from the controller"]
    assert len(copies) == 2 and all(r["status"] != "skipped" for r in copies), copies
    assert {r["result"]["invocation"]["dest"] for r in copies} == {f"/var/cache/irqtune/{w}" for w in wheels}, copies


@pytest.mark.slow
def test_the_template_renders_configs_irqtune_accepts(tmp_path):
    """The example inventory's pools, each through the role's templates (written under tmp_path only), and loaded
    by irqtune's own config loader; the listen drop-in repeats the unit's command line and adds --listen."""
    yaml, env = _yaml(), _ansible(tmp_path)
    layers = [ROLE / "defaults" / "main.yml", ANSIBLE / "inventory" / "example" / "group_vars" / "irqtune.yml"]
    pools = {"general": ("pool_general", {}), "latency": ("pool_latency", {}),
             "latency_tune": ("pool_latency", {"irqtune_mode": "tune"})}  # fmt: skip
    hosts = {}
    for host, (group, extra) in pools.items():
        variables: dict = {}
        for layer in [*layers, ANSIBLE / "inventory" / "example" / "group_vars" / f"{group}.yml"]:
            variables.update(yaml.safe_load(layer.read_text()) or {})  # later groups win, as in Ansible
        hosts[host] = {**variables, **extra, **yaml.safe_load((ROLE / "vars" / "main.yml").read_text()),
                       "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
                       "irqtune_listen": "192.0.2.10:9731"}  # fmt: skip
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"hosts": hosts}}))
    templates = ROLE / "templates"
    (tmp_path / "render.yml").write_text(json.dumps([{
        "hosts": "all", "gather_facts": False,
        "tasks": [
            {"ansible.builtin.template": {"src": str(templates / "irqtune.toml.j2"),
                                          "dest": str(tmp_path / "{{ inventory_hostname }}.toml")}},
            {"ansible.builtin.template": {"src": str(templates / "listen.conf.j2"),
                                          "dest": str(tmp_path / "{{ inventory_hostname }}.conf")}},
        ],
    }]))  # fmt: skip
    out = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "render.yml")],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]

    configs = {host: load_config(str(tmp_path / f"{host}.toml")) for host in pools}
    assert (configs["general"].mode, configs["general"].goal) == ("observe", "balanced")
    assert (configs["latency"].mode, configs["latency"].goal) == ("observe", "latency")
    assert configs["latency_tune"].mode == "tune" and configs["latency_tune"].restore_on_exit
    assert configs["latency_tune"].bounds == {"net/*/coalesce/rx-usecs": (0, 64)}
    assert configs["latency_tune"].limits.max_changes == 4

    unit = (_systemd_src(tmp_path) / "irqtune.service").read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.M).group(1).strip()
    dropin = (tmp_path / "latency_tune.conf").read_text()
    assert re.findall(r"^ExecStart=(.*)$", dropin, re.M) == ["", f"{exec_start} --listen 192.0.2.10:9731"]


def test_the_role_uses_the_units_paths():
    """The role's fixed paths are the ones systemd/irqtune.service runs with."""
    unit = REPO / "systemd" / "irqtune.service"
    require(unit.exists(), "systemd/irqtune.service not written yet")
    yaml = _yaml()
    paths = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    exec_start = re.search(r"^ExecStart=(.+)$", unit.read_text(), re.M).group(1).split()
    assert exec_start[0] == f"{paths['irqtune_prefix']}/bin/irqtune"
    assert exec_start[exec_start.index("--state-dir") + 1] == paths["irqtune_state_dir"]
    assert exec_start[exec_start.index("--config") + 1] == f"{paths['irqtune_config_dir']}/irqtune.toml"
    assert "run" in exec_start
