"""Safe at 3 a.m. (issue 12), the act/CLI layer: restore leaves drift alone, unknown names and CPUs are refused,
`get` says what a value means, and JSON says whether anything was written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import fakehost
import pytest
from conftest import cli, real_linux, require

from irqtune.act import engine
from irqtune.act.journal import Journal
from irqtune.host import Host


@pytest.fixture
def root(tmp_path):
    return fakehost.build(tmp_path / "host")


def affinity(root: Path, irq: int) -> str:
    return (root / "proc" / "irq" / str(irq) / "smp_affinity_list").read_text().strip()


def entries(state: Path) -> dict:
    return json.loads((state / "journal.json").read_text())["entries"]


# -- point 2: restore leaves drifted knobs alone unless --force ---------------------------------------------------


@pytest.fixture
def drifted(root, tmp_path) -> Path:
    """irqtune set IRQs 100 and 101; then an operator moved 100 elsewhere."""
    state = tmp_path / "state"
    assert cli("set", "irq/100/affinity", "4-5", root=root, state=state).exit_code == 0
    assert cli("set", "irq/101/affinity", "4", root=root, state=state).exit_code == 0
    (root / "proc" / "irq" / "100" / "smp_affinity_list").write_text("0-3\n")
    return state


def test_restore_leaves_a_drifted_knob_alone_and_says_so(root, drifted):
    code, out, err = cli("restore", root=root, state=drifted)
    assert code == 5, out + err
    assert affinity(root, 100) == "0-3" and affinity(root, 101) == "0-7"
    line = next(line for line in out.splitlines() if line.startswith("irq/100/affinity"))
    assert "drifted-kept" in line and "wrote 4-5" in line and "found 0-3" in line and "->" not in line
    assert "--force" in err
    assert set(entries(drifted)) == {"irq/100/affinity"}  # kept for a later restore --force
    code, out, _ = cli("restore", "--force", root=root, state=drifted)
    assert code == 0 and "restored" in out
    assert affinity(root, 100) == "0-7" and entries(drifted) == {}


def test_restore_dry_run_and_json_show_the_same_decision(root, drifted):
    code, out, _ = cli("restore", "--dry-run", root=root, state=drifted)
    assert code == 5 and "irq/100/affinity: drifted-kept" in out and "irq/101/affinity: would change" in out
    code, out, _ = cli("restore", "--dry-run", "--json", root=root, state=drifted)
    assert code == 5
    document = json.loads(out)
    results = {r["knob"]: r for r in document["results"]}
    kept = results["irq/100/affinity"]
    assert (kept["outcome"], kept["written"], kept["before"], kept["target"]) == ("drifted-kept", "4-5", "0-3", "0-7")
    assert document["dry_run"] is True
    code, out, _ = cli("restore", "--dry-run", "--force", root=root, state=drifted)
    assert code == 0 and "irq/100/affinity: would change" in out
    assert affinity(root, 100) == "0-3" and affinity(root, 101) == "4"  # dry runs wrote nothing
    code, out, _ = cli("restore", "--json", root=root, state=drifted)
    assert code == 5 and json.loads(out)["dry_run"] is False


def test_the_agents_restore_leaves_drift_alone_by_default(root, drifted):
    """engine.restore as the agent's restore_on_exit calls it: no force, so an operator's change stands."""
    with Journal.open(str(drifted), "boot-1") as journal:
        outcomes = {r.knob: r.outcome for r in engine.restore(Host(str(root)), journal, str(drifted))}
    assert outcomes == {"irq/100/affinity": engine.DRIFTED_KEPT, "irq/101/affinity": engine.RESTORED}
    assert affinity(root, 100) == "0-3" and set(entries(drifted)) == {"irq/100/affinity"}


def test_restore_only_if_config_leaves_drift_alone(root, drifted, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("restore_on_exit = true\n")
    code, out, _ = cli("restore", "--only-if-config", str(config), root=root, state=drifted)
    assert code == 5 and "drifted-kept" in out and affinity(root, 100) == "0-3"


def test_a_knob_put_back_by_someone_else_is_restored_not_kept(root, drifted):
    (root / "proc" / "irq" / "100" / "smp_affinity_list").write_text("0-7\n")  # the original again
    code, out, _ = cli("restore", root=root, state=drifted)
    assert code == 0 and "already original" in out and entries(drifted) == {}


def test_restore_help_documents_force_and_drift():
    result = cli("restore", "--help")
    assert "--force" in result.output and "drifted" in result.output and "5  some knob drifted" in result.output


def test_a_change_interrupted_before_its_read_back_is_restored_not_kept(root, tmp_path):
    """SIGKILL between journaling and reading back: the value may be irqtune's own half-done write, not drift."""
    state = tmp_path / "state"
    with Journal.open(str(state), "boot-1") as journal:
        journal.record_intent("irq/100/affinity", "0-7", "4")
    (root / "proc" / "irq" / "100" / "smp_affinity_list").write_text("")  # a fake tree's truncated write
    code, out, _ = cli("restore", root=root, state=state)
    assert code == 0, out
    assert affinity(root, 100) == "0-7" and entries(state) == {}


# -- point 3: unknown devices and CPUs are errors -------------------------------------------------------------------


def tree_hash(root: Path) -> str:
    return "".join(p.read_text() for p in sorted(root.rglob("smp_affinity_list")))


@pytest.mark.parametrize("command", [("plan",), ("apply",), ("apply", "--yes")])
def test_an_unknown_excluded_device_is_a_usage_error_naming_what_exists(root, tmp_path, command):
    before = tree_hash(root)
    code, out, err = cli(*command, "--exclude", "ens1f0", "--exclude", "eht0", root=root, state=tmp_path / "s")
    assert code == 2, out + err
    assert "no device 'eht0'" in err and "did you mean eth0?" in err and "ens1f0" in err and "Traceback" not in err
    assert tree_hash(root) == before and not out


@pytest.mark.parametrize("cpus", ["16", "3,16-17"])
def test_a_banned_cpu_this_host_lacks_is_a_usage_error(root, tmp_path, cpus):
    code, _, err = cli("plan", "--ban-cpus", cpus, root=root, state=tmp_path / "s")
    assert code == 2 and "--ban-cpus" in err and "does not exist on this host (possible CPUs: 0-15)" in err


def test_known_names_beyond_the_nics_are_accepted(root, tmp_path):
    """A virtio function, a block device, an interface without IRQs, a PCI address; an offline but possible CPU."""
    args = [a for name in ("virtio1", "vda", "lo", "0000:01:00.0", "nvme0") for a in ("--exclude", name)]
    code, out, err = cli("plan", *args, "--ban-cpus", "15", "--json", root=root, state=tmp_path / "s")
    assert code == 0, err
    assert not any(c["device"] == "nvme0" for c in json.loads(out)["changes"])


BAD_CONFIG = """mode = "observe"
interval = 0.5
[cpus]
critical = "6-7"
banned = "3,16"
irq_sink = "0"
housekeeping = "0-5,20"
[[device]]
name = "eht0"
cpus = "1"
[[device]]
class = "nic"
[[device]]
name = "ens1f0"
cpus = "4-5,99"
[[device]]
name = "virtio2"
manage = false
"""


def test_check_host_names_every_unknown_device_and_cpu_with_its_line(root):
    from irqtune.config import check_host, load_config
    from irqtune.measure.known import known_names

    problems = check_host(load_config("c.toml", BAD_CONFIG), known_names(Host(str(root))))
    assert [p.split(" ", 1)[0] for p in problems] == ["c.toml:5:", "c.toml:7:", "c.toml:9:", "c.toml:15:"]
    assert problems[0].startswith("c.toml:5: cpus.banned: CPU 16 does not exist")
    assert problems[1] == "c.toml:7: cpus.housekeeping: CPU 20 does not exist on this host (possible CPUs: 0-15)"
    assert problems[2].startswith("c.toml:9: device[0].name: no device 'eht0' on this host (did you mean eth0?")
    assert problems[3].startswith("c.toml:15: device[2].cpus: CPU 99 does not exist")
    good = BAD_CONFIG.replace(',16"', '"').replace(",20", "").replace("eht0", "eth0").replace(",99", "")
    assert check_host(load_config("c.toml", good), known_names(Host(str(root)))) == []


def test_run_refuses_a_config_naming_what_this_host_lacks(root, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(BAD_CONFIG)
    code, out, err = cli("run", "--config", str(config), "--passes", "1", root=root, state=tmp_path / "s")
    assert code == 1 and not out
    assert "c.toml:9: device[0].name: no device 'eht0'" in err and "c.toml:5: cpus.banned: CPU 16" in err


@pytest.mark.slow
def test_sighup_with_an_unknown_device_keeps_the_running_config(root, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('interval = 0.5\n[[device]]\nname = "ens1f0"\n')
    exe = [sys.executable, "-m", "irqtune", "--root", str(root), "--state-dir", str(tmp_path / "s")]
    agent = subprocess.Popen([*exe, "run", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    passes = []
    try:
        for line in agent.stdout:
            if line.startswith("pass "):
                passes.append(line)
            if len(passes) == 2:
                config.write_text('mode = "tune"\ninterval = 0.5\n[[device]]\nname = "ens1f1"\n')
                agent.send_signal(signal.SIGHUP)
            if len(passes) == 5:
                break
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=20)
    finally:
        agent.kill()
    assert agent.returncode == 0, err
    assert "reload refused, keeping the running config" in err and "device[0].name: no device 'ens1f1'" in err
    assert all("(observe)" in line for line in passes)
    assert not (tmp_path / "s" / "journal.json").exists()


# -- point 6: get says what a value means, and agrees with set on unsupported ---------------------------------------


def queue_file(root: Path, queue: str, name: str, text: str) -> Path:
    path = root / "sys" / "devices" / "pci0000:00" / "0000:81:00.0" / "net" / "ens1f0" / "queues" / queue / name
    fakehost.write(path, text)
    return path


def test_an_empty_rps_mask_reads_as_none_with_the_files_text(root, tmp_path):
    queue_file(root, "rx-0", "rps_cpus", "00000000\n")
    code, out, _ = cli("get", "net/ens1f0/rx-0/rps-cpus", root=root, state=tmp_path / "s")
    assert code == 0 and out == "none (the file holds 00000000)\n"
    code, out, _ = cli("get", "net/ens1f0/rx-0/rps-cpus", "--json", root=root, state=tmp_path / "s")
    assert code == 0 and json.loads(out) == {"knob": "net/ens1f0/rx-0/rps-cpus", "value": "", "raw": "00000000"}
    queue_file(root, "rx-0", "rps_cpus", "30\n")
    assert cli("get", "net/ens1f0/rx-0/rps-cpus", root=root, state=tmp_path / "s").stdout == "4-5\n"


def test_an_xps_read_answered_with_enoent_says_the_queue_has_no_map(root, tmp_path, monkeypatch):
    path = queue_file(root, "tx-0", "xps_cpus", "")
    real_read = Host.read_at

    def enoent_for_xps(self, tree: str, *parts: str | int) -> bytes:  # what a single-queue device's xps_cpus answers
        if parts[-2:] == ("tx-0", "xps_cpus"):
            raise FileNotFoundError(2, "No such file or directory")
        return real_read(self, tree, *parts)

    monkeypatch.setattr(Host, "read_at", enoent_for_xps)
    code, out, err = cli("get", "net/ens1f0/tx-0/xps-cpus", root=root, state=tmp_path / "s")
    assert code == 3 and not out and "this queue has no XPS map" in err and "does not exist" not in err
    path.unlink()
    code, _, err = cli("get", "net/ens1f0/tx-0/xps-cpus", root=root, state=tmp_path / "s")
    assert code == 3 and "queues/tx-0/xps_cpus does not exist here" in err


def test_get_and_set_agree_on_unsupported_coalescing(root, tmp_path):
    code, out, err = cli("get", "net/ens1f0/coalesce/rx-usecs", root=root, state=tmp_path / "s")
    assert code == 3 and "netlink knobs act on the running kernel" in err and "Traceback" not in err
    code, out, _ = cli("get", "net/ens1f0/coalesce/rx-usecs", "--json", root=root, state=tmp_path / "s")
    assert code == 3 and json.loads(out)["outcome"] == "unsupported"
    code, out, _ = cli("set", "net/ens1f0/coalesce/rx-usecs", "8", root=root, state=tmp_path / "s")
    assert code == 3 and "unsupported" in out
    assert (
        cli("get", "irq/100/affinty", root=root, state=tmp_path / "s").exit_code == 1
    )  # not a knob at all: still an error


def test_this_hosts_eth0_reads_as_users_understand(tmp_path):
    """Read only: eth0's rx-0 RPS mask (0 unless someone set it) and its tx-0 XPS map (none on single-queue)."""
    queues = Path("/sys/class/net/eth0/queues")
    require(real_linux() and (queues / "rx-0" / "rps_cpus").exists(), "no eth0 with RPS on this host")
    code, out, _ = cli("get", "net/eth0/rx-0/rps-cpus", root="/", state=tmp_path)
    raw = (queues / "rx-0" / "rps_cpus").read_text().strip()
    assert code == 0 and out.strip() != ""
    if raw.strip("0,") == "":
        assert out == f"none (the file holds {raw})\n"
    tx_queues = [q for q in queues.iterdir() if q.name.startswith("tx-")]
    if len(tx_queues) == 1:  # a single-queue device: the kernel answers ENOENT for xps_cpus
        code, out, err = cli("get", "net/eth0/tx-0/xps-cpus", root="/", state=tmp_path)
        assert code == 3 and "this queue has no XPS map" in err


def test_this_hosts_loopback_has_no_coalescing_for_get_or_set(tmp_path):
    require(real_linux(), "netlink needs Linux")
    code, _, err = cli("get", "net/lo/coalesce/rx-usecs", root="/", state=tmp_path)
    assert code == 3 and "Operation not supported" in err
    code, out, _ = cli(
        "set", "--dry-run", "net/lo/coalesce/rx-usecs", "8", root="/", state=tmp_path
    )  # dry run: no write
    assert code == 3 and "unsupported" in out


def test_get_and_set_help_document_exit_status_3():
    get_help = cli("get", "--help").output
    set_help = cli("set", "--help").output
    assert "3  unsupported here" in get_help and "set exits 3 for the same" in get_help
    assert "get exits 3 for it too" in set_help


# -- point 11 (first half): JSON says whether anything was written --------------------------------------------------


def test_json_says_whether_it_was_a_dry_run(root, tmp_path):
    state = tmp_path / "s"
    before = tree_hash(root)
    code, out, _ = cli("plan", "--json", root=root, state=state)
    assert code == 0 and json.loads(out)["dry_run"] is True
    saved = tmp_path / "plan.json"
    saved.write_text(out)
    code, out, _ = cli("apply", "--json", root=root, state=state)
    assert code == 0 and json.loads(out)["dry_run"] is True and json.loads(out)["changes"]
    code, out, _ = cli("set", "--dry-run", "--json", "irq/100/affinity", "4", root=root, state=state)
    assert code == 0 and json.loads(out)["dry_run"] is True
    assert tree_hash(root) == before
    code, out, err = cli("apply", "--yes", "--json", "--plan", str(saved), root=root, state=state)  # the key loads back
    assert code == 0, err
    document = json.loads(out)
    assert document["dry_run"] is False and all(r["outcome"] == "applied" for r in document["results"])
    assert tree_hash(root) != before
    code, out, _ = cli("set", "--json", "irq/100/affinity", "5", root=root, state=state)
    assert code == 0 and json.loads(out)["dry_run"] is False
