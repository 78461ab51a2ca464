"""The kubelet's CPU manager checkpoint and the pod list (measure/kubelet.py).

The checkpoint fixture is written by hand in the kubelet's documented format, version 2 of the checkpoint
(pkg/kubelet/cm/cpumanager/state/checkpoint.go, CPUManagerCheckpointV2: policyName, defaultCpuSet,
entries {POD_UID: {CONTAINER: CPUSET}}, checksum), one line as the kubelet's json.Marshal writes it. The pod list
is what `kubectl get pods -o json` prints (items[].metadata.{uid,name,namespace,annotations}, spec.nodeName).
"""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import REPO, require

from irqtune.host import Host
from irqtune.measure.kubelet import (
    ApiPods,
    FilePods,
    KubeError,
    held_cpus,
    parse_checkpoint,
    parse_pods,
    read_checkpoint,
)

KUBELET = REPO / "tests" / "fixtures" / "kubelet"
STATE = "/var/lib/kubelet/cpu_manager_state"
FORWARDER = "6f4c3b4e-8f1a-4c1e-9a55-0d6e2f7a9b10"


def _root(tmp_path: Path, state: str | None = None) -> Host:
    """A host root with the kubelet's checkpoint (the fixture, or `state`) and the pod list."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys").mkdir()
    kubelet = tmp_path / "var/lib/kubelet"
    kubelet.mkdir(parents=True)
    text = state if state is not None else (KUBELET / "cpu_manager_state").read_text()
    (kubelet / "cpu_manager_state").write_text(text)
    shutil.copy(KUBELET / "pods.json", kubelet / "pods.json")
    return Host(str(tmp_path))


def test_the_checkpoint_gives_each_containers_exclusive_cpus(tmp_path):
    state = read_checkpoint(_root(tmp_path))
    assert state.policy == "static" and state.default == frozenset({0, 1, 4, 5, 6, 7})
    assert {(a.pod_uid, a.container, a.cpus) for a in state.assignments} == {
        (FORWARDER, "dpdk", frozenset({2, 3})),
        ("0b1f9e2c-3d4a-4b5c-8d6e-7f8091a2b3c4", "db", frozenset({6})),
    }
    assert state.exclusive() == frozenset({2, 3, 6})


def test_only_pods_annotated_disable_hold_their_cpus(tmp_path):
    """packet-forwarder says "disable" (CRI-O's value): its CPUs are held; postgres-0 says "true", which CRI-O
    does not take as disable, and web has no annotation: neither holds any."""
    host = _root(tmp_path)
    held = held_cpus(read_checkpoint(host), FilePods(host, "/var/lib/kubelet/pods.json").pods())
    assert [(h.pod, h.container, h.cpus) for h in held] == [("telco/packet-forwarder", "dpdk", frozenset({2, 3}))]


def test_a_none_policy_checkpoint_holds_nothing(tmp_path):
    host = _root(tmp_path, '{"policyName":"none","defaultCpuSet":"","checksum":1353318690}')
    state = read_checkpoint(host)
    assert state.policy == "none" and state.exclusive() == frozenset()


@pytest.mark.parametrize(
    ("text", "where", "why"),
    [
        ('{"policyName":"static",\n"defaultCpuSet":"0-1",\n"entries": {', f"{STATE}:3:", "Expecting property name"),
        ('{"policyName":"static","defaultCpuSet":"0-1",\n"entries":{"u1":{"c":"2-x"}}}', f"{STATE}:2:", "entries.u1.c"),
        ('{"policyName":"static","defaultCpuSet":"0-1",\n"entries":{"u1":"2-3"}}', f"{STATE}:2:", "version 1"),
        ('{"policyName":"static","defaultCpuSet":"0-99999"}', f"{STATE}:1:", "defaultCpuSet"),
        ("[1, 2]", f"{STATE}:1:", "expected a JSON object"),
        ('{"policyName": 3}', f"{STATE}:1:", "policyName"),
    ],
)
def test_a_malformed_checkpoint_is_one_problem_with_its_line(tmp_path, text, where, why):
    with pytest.raises(KubeError) as err:
        read_checkpoint(_root(tmp_path, text))
    assert str(err.value).startswith(where) and why in str(err.value), str(err.value)


def test_a_missing_checkpoint_or_one_outside_the_root_is_a_problem(tmp_path):
    host = _root(tmp_path)
    with pytest.raises(KubeError, match="No such file"):
        read_checkpoint(host, "/var/lib/kubelet/nothing")
    (tmp_path / "var/lib/kubelet/link").symlink_to("/etc/hostname")
    with pytest.raises(KubeError, match="refused"):
        read_checkpoint(host, "/var/lib/kubelet/link")


def test_untrusted_names_are_shown_printable(tmp_path):
    """A container name with an escape sequence is kept for matching but never printed raw."""
    uid = "u-1"
    state = parse_checkpoint("s", json.dumps({"policyName": "static", "defaultCpuSet": "0", "entries":
                                              {uid: {"evil\x1b[2J": "1"}}}))  # fmt: skip
    pods = parse_pods("p", json.dumps({"items": [{"metadata": {"uid": uid, "namespace": "ns\n", "name": "x",
                                       "annotations": {"irq-load-balancing.crio.io": "disable"}}}]}))  # fmt: skip
    (held,) = held_cpus(state, pods)
    assert "\x1b" not in held.container and "\n" not in held.pod and held.cpus == frozenset({1})


def test_a_pod_list_that_is_none_is_a_problem():
    with pytest.raises(KubeError, match="expected a pod list"):
        parse_pods("pods.json", '{"kind": "Pod"}')
    assert parse_pods("pods.json", '{"items": [3, {"metadata": {"uid": 4}}]}') == []


# -- the API server -------------------------------------------------------------------
class _FakeApi(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        body = (KUBELET / "pods.json").read_bytes()
        self.send_response(200 if self.headers.get("Authorization") == "Bearer s3cret" else 403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _serve(tls: tuple[Path, Path] | None = None):
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeApi)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _account(tmp_path: Path, token: str = "s3cret\n") -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(token)
    return account


def test_the_api_client_asks_for_this_nodes_pods_with_the_token(tmp_path):
    _FakeApi.seen = []
    server = _serve()
    try:
        client = ApiPods("worker-1", f"http://127.0.0.1:{server.server_port}", str(_account(tmp_path)))
        pods = client.pods()
    finally:
        server.shutdown()
    assert [p.label for p in pods] == ["telco/packet-forwarder", "db/postgres-0", "default/web"]
    assert _FakeApi.seen == [("/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-1", "Bearer s3cret")]


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    require(openssl is not None, "openssl not installed")
    assert openssl is not None
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                    f"{name}.pem", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)  # fmt: skip
    return tmp_path / f"{name}.pem", tmp_path / f"{name}.key"


def test_the_api_client_checks_the_servers_certificate_against_the_ca(tmp_path):
    cert, key = _self_signed(tmp_path, "api")
    other, _ = _self_signed(tmp_path, "other")
    account = _account(tmp_path)
    shutil.copy(other, account / "ca.crt")
    server = _serve((cert, key))
    try:
        url = f"https://localhost:{server.server_port}"
        with pytest.raises(KubeError, match="CERTIFICATE_VERIFY_FAILED"):  # signed by another CA: refused
            ApiPods("worker-1", url, str(account)).pods()
        shutil.copy(cert, account / "ca.crt")
        assert len(ApiPods("worker-1", url, str(account)).pods()) == 3
    finally:
        server.shutdown()


def test_a_refusal_or_no_node_name_is_a_problem_not_a_traceback(tmp_path):
    server = _serve()
    try:
        client = ApiPods("worker-1", f"http://127.0.0.1:{server.server_port}", str(_account(tmp_path, "wrong")))
        with pytest.raises(KubeError, match="HTTP 403"):
            client.pods()
        with pytest.raises(KubeError, match="cannot ask the API server"):  # no token file
            ApiPods("worker-1", f"http://127.0.0.1:{server.server_port}", str(tmp_path / "none")).pods()
    finally:
        server.shutdown()
    with pytest.raises(KubeError, match="NODE_NAME"):
        ApiPods("", "http://127.0.0.1:1", str(tmp_path)).pods()
