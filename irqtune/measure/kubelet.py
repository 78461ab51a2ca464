"""The Kubernetes CPU manager: which CPUs the kubelet gave a pod's containers alone, and which pods opt out of IRQs.

The kubelet's static CPU manager policy gives a Guaranteed pod's integer-CPU containers exclusive CPUs and records
them in its checkpoint, /var/lib/kubelet/cpu_manager_state (pkg/kubelet/cm/cpumanager/state/checkpoint.go,
CPUManagerCheckpointV2): {"policyName", "defaultCpuSet", "entries": {POD_UID: {CONTAINER: CPUSET}}, "checksum"}.
A pod asks for its CPUs to be kept free of device interrupts with CRI-O's annotation
`irq-load-balancing.crio.io: "disable"`; the agent treats the exclusive CPUs of such pods as critical. The pods
come from a `PodSource`: a file of the pod list (`kubectl get pods -o json`, the kubelet's /pods) or the API
server through the pod's service account (`ApiPods`), asked only for this node's pods.

Every name in these files is untrusted: kept as given for matching, shown through `brief_text`. A malformed
file is one `Problem` (FILE:LINE: why), never a traceback.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..fileio import LIMITS, read_regular
from ..host import Host, PathEscape
from ..jsonfile import JsonError, key_line, loads
from ..parse.common import CpuListError, Problem, brief, brief_text, format_cpulist, parse_cpulist, printable
from ..statedir import KUBE_FILE, read_kube_held

if TYPE_CHECKING:
    import http.client

CHECKPOINT = "/var/lib/kubelet/cpu_manager_state"
ANNOTATION = "irq-load-balancing.crio.io"  # CRI-O's: "disable" keeps device IRQs off the pod's CPUs
OPT_IN = "disable"  # the only value CRI-O takes as opting out of IRQ load balancing
API_SERVER = "https://kubernetes.default.svc"
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
NODE_ENV = "NODE_NAME"  # set by the DaemonSet from the downward API (spec.nodeName)
TIMEOUT = 5.0  # seconds for one API request: a pass must not wait on a slow API server for long


class KubeError(Exception):
    """One piece of input that cannot be used, as a Problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class Assignment:
    """One container's exclusive CPUs, as the checkpoint records them."""

    pod_uid: str
    container: str
    cpus: frozenset[int]


@dataclass(frozen=True)
class CpuManagerState:
    policy: str
    default: frozenset[int]
    assignments: tuple[Assignment, ...] = ()

    def exclusive(self) -> frozenset[int]:
        """Every CPU some container holds alone: the union of the entries' sets."""
        return frozenset().union(*(a.cpus for a in self.assignments))


@dataclass(frozen=True)
class Pod:
    uid: str
    namespace: str
    name: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """namespace/name, printable (the names are the cluster's, not ours)."""
        return f"{brief_text(self.namespace)}/{brief_text(self.name)}"


@dataclass(frozen=True)
class Held:
    """One opted-in container's exclusive CPUs, held free of device IRQs."""

    pod: str  # namespace/name, printable
    uid: str
    container: str  # printable
    cpus: frozenset[int]

    def to_json(self) -> dict:
        return {"pod": self.pod, "uid": brief_text(self.uid), "container": self.container,
                "cpus": format_cpulist(sorted(self.cpus))}  # fmt: skip


# -- the checkpoint ----------------------------------------------------------------
def parse_checkpoint(path: str, text: str) -> CpuManagerState:
    """The checkpoint's policy, shared pool and exclusive assignments; KubeError for anything else."""
    try:
        data = loads(path, text)
    except JsonError as err:
        raise KubeError(Problem(err.where, 0, err.what)) from None
    if not isinstance(data, dict):
        raise KubeError(Problem(path, 1, f"expected a JSON object (the CPU manager checkpoint), got {brief(data)}"))
    policy = data.get("policyName")
    if not isinstance(policy, str):
        raise KubeError(Problem(path, key_line(text, "policyName"), "policyName: expected a string"))
    default = _cpus(path, text, data.get("defaultCpuSet", ""), ("defaultCpuSet",))
    entries = data.get("entries") or {}
    if not isinstance(entries, dict):
        raise KubeError(Problem(path, key_line(text, "entries"), "entries: expected {POD_UID: {CONTAINER: CPUS}}"))
    assignments = []
    for uid, containers in entries.items():
        if not isinstance(containers, dict):
            why = "expected {CONTAINER: CPUS} (version 2 of the checkpoint; version 1 keyed CPUs by container ID)"
            raise KubeError(Problem(path, key_line(text, "entries", uid), f"entries.{brief_text(uid)}: {why}"))
        for container, cpus in containers.items():
            found = _cpus(path, text, cpus, ("entries", uid, container))
            assignments.append(Assignment(uid, container, found))
    return CpuManagerState(policy, default, tuple(assignments))


def _cpus(path: str, text: str, value: object, keys: tuple[str, ...]) -> frozenset[int]:
    where = ".".join(brief_text(k) for k in keys)
    if not isinstance(value, str):
        raise KubeError(
            Problem(path, key_line(text, *keys), f"{where}: expected a CPU list string, got {brief(value)}")
        )
    try:
        return frozenset(parse_cpulist(value))
    except CpuListError as err:
        raise KubeError(Problem(path, key_line(text, *keys), f"{where}: {err}")) from None


def read_checkpoint(host: Host, path: str = CHECKPOINT) -> CpuManagerState:
    """The checkpoint below the host's root; KubeError when missing, unreadable or malformed."""
    return parse_checkpoint(path, _read(host, path, "kubelet").decode("utf-8", "replace"))


def _read(host: Host, path: str, kind: str) -> bytes:
    try:
        return host.read_beneath_root(path, kind)
    except (OSError, PathEscape) as err:
        raise KubeError(Problem(path, 0, getattr(err, "strerror", None) or str(err))) from None


# -- pods --------------------------------------------------------------------------
class PodSource(Protocol):
    def pods(self) -> list[Pod]:
        """This node's pods; KubeError when they cannot be had."""
        ...


def parse_pods(where: str, text: str) -> list[Pod]:
    """A pod list (`kubectl get pods -o json`, the kubelet's /pods, the API's PodList): its items' uid, names and
    annotations. An item without a string uid is skipped; a document that is no pod list is a KubeError."""
    try:
        data = loads(where, text)
    except JsonError as err:
        raise KubeError(Problem(err.where, 0, err.what)) from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise KubeError(Problem(where, 1, 'expected a pod list: {"items": [...]}'))
    return [pod for pod in map(_pod, items) if pod is not None]


def _pod(item: object) -> Pod | None:
    meta = item.get("metadata") if isinstance(item, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("uid"), str):
        return None
    annotations = meta.get("annotations")
    annotations = {k: v for k, v in annotations.items() if isinstance(v, str)} if isinstance(annotations, dict) else {}
    return Pod(meta["uid"], _text(meta.get("namespace")), _text(meta.get("name")), annotations)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@dataclass
class FilePods:
    """The pod list in a file below the host's root (written by something that has it)."""

    host: Host
    path: str

    def pods(self) -> list[Pod]:
        return parse_pods(self.path, _read(self.host, self.path, "pods").decode("utf-8", "replace"))


@dataclass
class ApiPods:
    """This node's pods from the API server, with the pod's service account (RBAC: pods get/list; a field
    selector asks for this node's only, as RBAC cannot restrict a ClusterRole to one node)."""

    node: str
    server: str = API_SERVER
    account: str = SERVICE_ACCOUNT
    timeout: float = TIMEOUT

    def pods(self) -> list[Pod]:
        import http.client  # the API client's modules (ssl: 3 MB resident) only where pods = "api"
        import ssl

        where = f"{self.server}/api/v1/pods"
        if not self.node:
            raise KubeError(Problem(where, 0, f"no node name: set {NODE_ENV} from the downward API (spec.nodeName)"))
        try:
            status, body = self._get(_pods_path(self.node))
        except (OSError, http.client.HTTPException, ssl.SSLError, ValueError) as err:
            raise KubeError(Problem(where, 0, f"cannot ask the API server: {brief_text(str(err))}")) from None
        if status != 200:
            raise KubeError(Problem(where, 0, f"the API server answered HTTP {status}: {brief_text(body[:200])}"))
        return parse_pods(where, body)

    def _get(self, path: str) -> tuple[int, str]:
        import http.client
        import ssl

        url = urllib.parse.urlsplit(self.server)
        token = read_regular(os.path.join(self.account, "token"), "serviceaccount").decode("ascii").strip()
        if url.scheme == "https":
            context = ssl.create_default_context(cafile=os.path.join(self.account, "ca.crt"))
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname or "", url.port, timeout=self.timeout, context=context
            )
        elif url.scheme == "http":  # a local test server; never the token over a network in clear
            conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=self.timeout)
        else:
            raise ValueError(f"expected an https:// server, got {brief_text(self.server)}")
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
            response = conn.getresponse()
            return response.status, _body(response)
        finally:
            conn.close()


def _body(response: http.client.HTTPResponse) -> str:
    raw = response.read(LIMITS["pods"] + 1)
    if len(raw) > LIMITS["pods"]:
        raise ValueError(f"an answer larger than {LIMITS['pods']} bytes, the pods limit")
    return raw.decode("utf-8", "replace")


def _pods_path(node: str) -> str:
    return "/api/v1/pods?" + urllib.parse.urlencode({"fieldSelector": f"spec.nodeName={node}"})


def pod_source(host: Host, spec: str, environ: Mapping[str, str] | None = None) -> PodSource | None:
    """The config's `pods`: "api" (NODE_NAME from the environment), "file:PATH", or "" (off: None)."""
    if spec == "api":
        return ApiPods((os.environ if environ is None else environ).get(NODE_ENV, ""))
    if spec.startswith("file:"):
        return FilePods(host, spec[len("file:") :])
    return None


# -- both --------------------------------------------------------------------------
def held_cpus(state: CpuManagerState, pods: list[Pod], annotation: str = ANNOTATION) -> list[Held]:
    """The exclusive CPUs of opted-in pods' containers (annotation == "disable"), in checkpoint order; pods
    that did not opt in, and entries of pods not in the list, are left out."""
    opted = {pod.uid: pod for pod in pods if pod.annotations.get(annotation) == OPT_IN}
    return [Held(opted[a.pod_uid].label, a.pod_uid, brief_text(a.container), a.cpus)
            for a in state.assignments if a.pod_uid in opted and a.cpus]  # fmt: skip


def saved_held(state_dir: str) -> list[Held] | None:
    """The containers an agent last held CPUs for, from the file it keeps for `status` (statedir KUBE_FILE): for a
    one-shot command and the exporter, which watch no kubelet themselves. None where no agent watches one (no
    file); ValueError where the file is not irqtune's."""
    data = read_kube_held(state_dir)
    if data is None:
        return None
    path, out = os.path.join(state_dir, KUBE_FILE), []
    for entry in data["containers"]:
        fields = ("pod", "uid", "container", "cpus")
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in fields)):
            raise ValueError(f"{path}: a container without pod, uid, container and cpus: {brief(entry)}")
        try:
            cpus = frozenset(parse_cpulist(entry["cpus"]))
        except CpuListError as err:
            raise ValueError(f"{path}: {entry['pod']}: {err}") from None
        out.append(Held(printable(entry["pod"]), entry["uid"], printable(entry["container"]), cpus))  # as saved: shown
    return out
