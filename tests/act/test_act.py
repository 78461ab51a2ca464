"""set / restore / verify through the journal: on a fake tree, on this host's own IRQs, in a namespace."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import fakehost
import pytest
from conftest import cli, real_linux, require
from netns import can_make_namespaces, irqtune_in, veth_pair

from irqtune.act.journal import Journal, JournalError


@pytest.fixture
def root(tmp_path):
    return fakehost.build(tmp_path / "host")


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


def affinity(root: Path, irq: int) -> str:
    return (root / "proc" / "irq" / str(irq) / "smp_affinity_list").read_text().strip()


def test_set_verify_restore_on_a_fake_tree(root, tmp_path):
    state = tmp_path / "state"
    code, out, _ = cli("set", "irq/100/affinity", "4-5", "--json", root=root, state=state)
    assert code == 0
    result = json.loads(out)["results"][0]
    assert (result["outcome"], result["before"], result["after"]) == ("applied", "0-7", "4-5")
    assert affinity(root, 100) == "4-5"
    journal = json.loads((state / "journal.json").read_text())
    assert journal["entries"]["irq/100/affinity"]["original"] == "0-7"
    assert cli("verify", root=root, state=state).exit_code == 0
    (root / "proc" / "irq" / "100" / "smp_affinity_list").write_text("0-3\n")  # irqbalance moved it
    code, out, _ = cli("verify", root=root, state=state)
    assert code == 5 and "drifted" in out and "irqtune wrote 4-5" in out
    code, out, _ = cli("restore", root=root, state=state)  # drifted: left alone (tests/act/test_safety_cli.py)
    assert code == 5 and affinity(root, 100) == "0-3"
    code, out, _ = cli("restore", "--force", root=root, state=state)
    assert code == 0 and "restored" in out
    assert affinity(root, 100) == "0-7"
    assert json.loads((state / "journal.json").read_text())["entries"] == {}


def test_second_change_keeps_the_first_original(root, tmp_path):
    state = tmp_path / "state"
    cli("set", "irq/101/affinity", "4", root=root, state=state)
    cli("set", "irq/101/affinity", "5", root=root, state=state)
    assert json.loads((state / "journal.json").read_text())["entries"]["irq/101/affinity"]["original"] == "0-7"
    cli("restore", root=root, state=state)
    assert affinity(root, 101) == "0-7"


def test_dry_run_writes_nothing(root, tmp_path):
    state = tmp_path / "state"
    before = tree_hash(root)
    code, out, _ = cli("set", "--dry-run", "irq/100/affinity", "4", root=root, state=state)
    assert code == 0 and "would change" in out
    assert tree_hash(root) == before and not state.exists()


def test_managed_irq_is_never_written(root, tmp_path):
    code, out, _ = cli("set", "irq/121/affinity", "3", root=root, state=tmp_path / "state")  # managed per fake debugfs
    assert code == 3 and "managed" in out and affinity(root, 121) == "0-7"


@pytest.mark.parametrize(
    ("knob", "value", "message"),
    [
        ("irq/100/affinty", "1", "unknown knob 'irq/100/affinty'"),
        ("irq/100/affinity", "0-99", "CPU 8-99 is not online"),
        ("irq/100/affinity", "6", "CPU 6 is isolated"),
        ("irq/100/affinity", "two", "expected a CPU list"),
        ("sysctl/net.core.netdev_budget", "0", "0 is outside 1..1048576"),
        ("sysctl/kernel.panic", "1", "unknown knob"),
        ("net/../../etc/threaded", "1", "unknown knob"),
        ("net/..%2f/threaded", "1", "not a network device name"),
    ],
)
def test_bad_input_is_one_clear_line(root, tmp_path, knob, value, message):
    before = tree_hash(root)
    code, _, err = cli("set", knob, value, root=root, state=tmp_path / "state")
    assert code == 1 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert tree_hash(root) == before


def test_isolated_cpus_need_an_explicit_yes(root, tmp_path):
    code, _, _ = cli("set", "--allow-isolated", "irq/100/affinity", "6", root=root, state=tmp_path / "state")
    assert code == 0 and affinity(root, 100) == "6"


def test_masks_and_missing_knobs(root, tmp_path):
    state = tmp_path / "state"
    (root / "proc" / "irq" / "default_smp_affinity").write_text("ff\n")
    code, out, _ = cli("set", "irq/default/affinity", "0-3", root=root, state=state)
    assert code == 0 and (root / "proc" / "irq" / "default_smp_affinity").read_text() == "f"
    assert cli("get", "irq/default/affinity", root=root, state=state).stdout.strip() == "0-3"
    code, out, _ = cli("set", "net/eth9/threaded", "1", root=root, state=state)
    assert code == 3 and "unsupported" in out


def test_journal_is_locked_and_stale_entries_are_dropped(root, tmp_path):
    state = tmp_path / "state"
    with Journal.open(str(state), "boot-1"):
        code, _, err = cli("set", "irq/100/affinity", "4", root=root, state=state)
        assert code == 1 and "another irqtune holds" in err
        with pytest.raises(JournalError):
            Journal.open(str(state), "boot-1", wait=False)
    with Journal.open(str(state), "an-earlier-boot") as journal:
        journal.record_intent("irq/102/affinity", "1", "5")
    code, out, _ = cli("restore", root=root, state=state)
    assert code == 0 and "stale" in out and affinity(root, 102) == "0-7"
    assert json.loads((state / "journal.json").read_text())["entries"] == {}


def test_crash_between_journal_and_write_restores_cleanly(root, tmp_path):
    """The journal is durable before the write: whatever point a crash hits, restore ends at the original."""
    state = tmp_path / "state"
    with Journal.open(str(state), "boot-1") as journal:
        journal.record_intent("irq/100/affinity", "0-7", "4")  # crash here: intent journaled, nothing written
    (root / "proc" / "irq" / "103" / "smp_affinity_list").write_text("5\n")
    with Journal.open(str(state), "boot-1") as journal:
        journal.record_intent("irq/103/affinity", "0-7", "5")  # crash here: written, not yet read back
    code, out, _ = cli("restore", root=root, state=state)
    assert code == 0, out
    assert affinity(root, 100) == "0-7" and affinity(root, 103) == "0-7"


def test_unreadable_journal_stops_every_write(root, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "journal.json").write_text("{not json")
    before = tree_hash(root)
    code, _, err = cli("set", "irq/100/affinity", "4", root=root, state=state)
    assert code == 1 and "unreadable journal" in err and tree_hash(root) == before


# -- this host ----------------------------------------------------------------------------------


def _irq_by_action(pattern: str) -> int | None:
    with open("/proc/interrupts") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key.strip().isdigit() and re.search(pattern, rest):
                return int(key)
    return None


def _root_needed() -> None:
    require(real_linux() and os.geteuid() == 0, "changing host IRQ affinity needs root on Linux")


@pytest.mark.root
def test_serial_port_irq_affinity_changes_and_restores(tmp_path):
    _root_needed()
    irq = _irq_by_action(r"\bttyS0\b")
    require(irq is not None, "no ttyS0 IRQ on this host")
    path = f"/proc/irq/{irq}/smp_affinity_list"
    with open(path) as f:
        original = f.read().strip()
    target = "0" if original != "0" else "1"
    try:
        code, out, _ = cli("set", f"irq/{irq}/affinity", target, "--json", root="/", state=tmp_path)
        assert code == 0, out
        assert json.loads(out)["results"][0]["outcome"] == "applied"
        with open(path) as f:
            assert f.read().strip() == target
        code, out, _ = cli("restore", root="/", state=tmp_path)
        assert code == 0 and "restored" in out
        with open(path) as f:
            assert f.read().strip() == original
    finally:
        with open(path, "w") as f:  # even on failure: the host gets its original back
            f.write(original)


@pytest.mark.root
def test_managed_virtio_blk_irq_is_reported_and_never_changed(tmp_path):
    _root_needed()
    irq = _irq_by_action(r"virtio\d+-req\.\d+")
    require(irq is not None, "no virtio-blk request IRQ on this host")
    with open(f"/proc/irq/{irq}/smp_affinity_list") as f:
        original = f.read().strip()
    code, out, _ = cli("set", f"irq/{irq}/affinity", "0", root="/", state=tmp_path)
    if code == 0:  # not managed on this kernel after all: put it back and say so
        cli("restore", root="/", state=tmp_path)
        pytest.fail(f"IRQ {irq} accepted an affinity write; expected a kernel-managed virtio-blk queue")
    assert code == 3 and "managed" in out
    with open(f"/proc/irq/{irq}/smp_affinity_list") as f:
        assert f.read().strip() == original
    code, out, _ = cli("status", "-i", "0", "--no-probe", "--json", root="/", state=tmp_path)
    entry = next(e for d in json.loads(out)["devices"] for e in d["irqs"] if e["irq"] == irq)
    assert (entry["managed"], entry["managed_source"]) == ("yes", "learned")
    assert json.loads((tmp_path / "journal.json").read_text())["entries"] == {}


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.netns
def test_napi_sysfs_knobs_in_a_namespace(tmp_path):
    require(can_make_namespaces() is None, f"{can_make_namespaces()}")
    with veth_pair() as pair:
        ns, dev = pair.receiver_ns, pair.receiver
        irqtune = irqtune_in(ns, tmp_path)

        originals = {k: irqtune("get", f"net/{dev}/{k}").stdout.strip() for k in
                     ("gro-flush-timeout", "napi-defer-hard-irqs", "threaded")}  # fmt: skip
        originals["rx-0/rps-cpus"] = irqtune("get", f"net/{dev}/rx-0/rps-cpus").stdout.strip()
        for knob, value in (("gro-flush-timeout", "20000"), ("napi-defer-hard-irqs", "2"), ("threaded", "1"),
                            ("rx-0/rps-cpus", "0")):  # fmt: skip
            result = irqtune("set", f"net/{dev}/{knob}", value)
            assert result.returncode == 0, result.stdout + result.stderr
            assert irqtune("get", f"net/{dev}/{knob}").stdout.strip() == value
        assert irqtune("verify").returncode == 0
        result = irqtune("restore")
        assert result.returncode == 0, result.stdout + result.stderr
        for knob, original in originals.items():
            assert irqtune("get", f"net/{dev}/{knob}").stdout.strip() == original


def test_busy_writes_are_retried_then_reported(root, tmp_path, monkeypatch):
    import errno

    from irqtune.act import engine
    from irqtune.act.journal import Journal
    from irqtune.act.knobs import make_knob
    from irqtune.host import Host

    monkeypatch.setattr(engine, "TRANSIENT_RETRIES", (0, 0))
    knob = make_knob(Host(str(root)), "irq/100/affinity")
    calls = []

    def busy_twice(value: str) -> None:
        calls.append(value)
        if len(calls) <= 2:
            raise OSError(errno.EBUSY, "Device or resource busy")
        (root / "proc" / "irq" / "100" / "smp_affinity_list").write_text(value + "\n")

    monkeypatch.setattr(knob, "write", busy_twice)
    with Journal.open(str(tmp_path / "s"), "boot-1") as journal:
        assert engine.change(knob, "3", journal, str(tmp_path / "s")).outcome == "applied"
        assert len(calls) == 3
        calls.clear()
        monkeypatch.setattr(knob, "write", lambda v: (_ for _ in ()).throw(OSError(errno.EAGAIN, "again")))
        result = engine.change(knob, "2", journal, str(tmp_path / "s"))
        assert result.outcome == "transient" and "try again" in result.message


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [("net/eth1/coalesce/rx-frames", "net/eth1/coalesce/rx-max-frames"),
     ("net/eth1/coalesce/adaptive-rx", "net/eth1/coalesce/use-adaptive-rx"),
     ("net/eth1/coalesce/tx-frames-irq", "net/eth1/coalesce/tx-max-frames-irq"),
     ("net/eth1/coalesce/sample-interval", "net/eth1/coalesce/rate-sample-interval"),
     ("net/eth1/coalesce/cqe-mode-rx", "net/eth1/coalesce/use-cqe-mode-rx"),
     ("net/eth1/coalesce/rx-usecs", "net/eth1/coalesce/rx-usecs")],
)  # fmt: skip
def test_ethtool_names_of_coalescing_fields_are_aliases_of_the_netlink_ones(typed: str, canonical: str) -> None:
    """`ethtool -C DEV rx-frames 64` habits carry over: the knob is the netlink attribute's (what the journal keeps)."""
    from irqtune.plan.knob_id import parse_knob_id

    assert parse_knob_id(typed).canonical == canonical


def test_set_by_device_glob_lists_each_irq_and_journals_each(root, tmp_path):
    """irq/ens1f0*/affinity names the NIC's four queue IRQs (action names ens1f0-TxRx-N): each listed before the
    write, each set and journaled on its own; other IRQs are left as they were."""
    state = tmp_path / "state"
    code, out, err = cli("set", "irq/ens1f0*/affinity", "4-5", root=root, state=state)
    assert code == 0, out + err
    for irq in (100, 101, 102, 103):
        assert f"irq/ens1f0*/affinity: IRQ {irq} (ens1f0-TxRx-{irq - 100}, device ens1f0)" in err
        assert affinity(root, irq) == "4-5"
    assert affinity(root, 120) == "0-7" and affinity(root, 38) == "0-7"
    entries = json.loads((state / "journal.json").read_text())["entries"]
    assert sorted(entries) == [f"irq/{irq}/affinity" for irq in (100, 101, 102, 103)]
    assert cli("restore", root=root, state=state).exit_code == 0 and affinity(root, 102) == "0-7"


def test_set_by_device_name_and_nvme_queue_glob(root, tmp_path):
    """A plain device name selects its IRQs through the inventory (eth0 is virtio2's: IRQs 37-39, on a fake tree);
    nvme0q* the NVMe queues, whose managed one (121) is refused while the others apply."""
    state = tmp_path / "state"
    code, _, err = cli("set", "irq/eth0/affinity", "2", "--dry-run", root=root, state=state)
    assert code == 0 and [f"IRQ {irq} " in err for irq in (37, 38, 39)] == [True] * 3 and "IRQ 100" not in err
    assert affinity(root, 38) == "0-7"  # a dry run
    code, out, err = cli("set", "irq/nvme0q*/affinity", "1", root=root, state=state)
    assert code == 3 and "IRQ 120 (nvme0q0" in err and "IRQ 122 (nvme0q2" in err
    assert affinity(root, 120) == "1" and affinity(root, 122) == "1" and affinity(root, 121) == "0-7"
    assert "managed" in out


def test_a_selector_that_matches_nothing_names_what_it_could_match(root, tmp_path):
    code, _, err = cli("set", "irq/eht0*/affinity", "2", root=root, state=tmp_path / "state")
    assert code == 1 and "no IRQ matches eht0*" in err
    assert "ens1f0" in err and "nvme0" in err and "eth0" in err
    assert all(affinity(root, irq) == "0-7" for irq in (37, 38, 39, 100))


def test_vm_reserve_sysctls_are_journaled_knobs(root, tmp_path):
    """vm.min_free_kbytes / vm.watermark_scale_factor: set, journaled with their original, restored, bounded."""
    state = tmp_path / "state"
    vm = root / "proc" / "sys" / "vm"
    vm.mkdir(parents=True, exist_ok=True)
    (vm / "min_free_kbytes").write_text("67584\n")
    (vm / "watermark_scale_factor").write_text("10\n")
    assert cli("set", "sysctl/vm.min_free_kbytes", "135168", root=root, state=state).exit_code == 0
    assert (vm / "min_free_kbytes").read_text().strip() == "135168"
    entries = json.loads((state / "journal.json").read_text())["entries"]
    assert entries["sysctl/vm.min_free_kbytes"]["original"] == "67584"
    code, _, err = cli("set", "sysctl/vm.watermark_scale_factor", "5000", root=root, state=state)
    assert code == 1 and "outside 1..1000" in err and (vm / "watermark_scale_factor").read_text().strip() == "10"
    cli("restore", root=root, state=state)
    assert (vm / "min_free_kbytes").read_text().strip() == "67584"
    assert cli("set", "sysctl/vm.swappiness", "1", root=root, state=state).exit_code == 1
