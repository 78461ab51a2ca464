"""The rooted host layer: paths stay inside <root>/proc and <root>/sys; odd files never hang or crash."""

from __future__ import annotations

import os

import pytest

from irqtune.host import Host, PathEscape


@pytest.fixture
def root(tmp_path):
    (tmp_path / "proc" / "irq" / "41").mkdir(parents=True)
    (tmp_path / "proc" / "irq" / "41" / "smp_affinity_list").write_text("0-3\n")
    (tmp_path / "sys" / "class" / "net").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "secret").write_text("no")
    return tmp_path


def test_reads_below_root(root):
    host = Host(str(root))
    path = host.proc("irq", 41, "smp_affinity_list")
    assert path == str(root / "proc" / "irq" / "41" / "smp_affinity_list")
    assert host.text("proc", "irq", 41, "smp_affinity_list") == "0-3"
    assert host.read(path) == "0-3\n"
    assert host.display(path) == "/proc/irq/41/smp_affinity_list"
    assert host.entries(host.proc(), "irq") == ["41"]
    assert host.has(host.proc(), "irq", "41") and not host.has(host.proc(), "irq", "42")


@pytest.mark.parametrize("part", ["..", ".", "", "../../etc", "a/b", "x\0y"])
def test_untrusted_parts_are_refused(root, part):
    host = Host(str(root))
    with pytest.raises(PathEscape):
        host.sys("class", "net", part)
    assert host.text("sys", "class", "net", part) is None
    assert host.refused, "a refusal is recorded for the report"


def test_symlink_out_of_the_tree_is_refused(root):
    os.symlink(str(root / "etc"), root / "sys" / "class" / "net" / "evil")
    host = Host(str(root))
    with pytest.raises(PathEscape):
        host.sys("class", "net", "evil", "secret")
    assert host.text("sys", "class", "net", "evil", "secret") is None
    assert host.entries(host.sys(), "class", "net", "evil") == []
    with pytest.raises(PathEscape):
        host.read(str(root / "sys" / "class" / "net" / "evil" / "secret"))  # strict reads re-check


def test_symlink_inside_the_tree_resolves(root):
    (root / "sys" / "devices" / "pci0" / "nic").mkdir(parents=True)
    os.symlink("../../devices/pci0/nic", root / "sys" / "class" / "net" / "eth9")
    host = Host(str(root))
    assert host.sys("class", "net", "eth9") == str(root / "sys" / "devices" / "pci0" / "nic")
    assert host.parent(host.sys("class", "net", "eth9")) == str(root / "sys" / "devices" / "pci0")


def test_only_proc_and_sys_trees(root):
    with pytest.raises(PathEscape):
        Host(str(root)).path("etc", "secret")


def test_missing_files_read_as_none(root):
    host = Host(str(root))
    assert host.text("proc", "irq", 99, "node") is None
    assert host.entries(host.sys(), "nope") == []
    assert host.refused == []


def test_fifo_is_not_read(root):
    os.mkfifo(root / "proc" / "interrupts")
    host = Host(str(root))
    with pytest.raises(OSError, match="not a regular file"):
        host.read_bytes(host.proc("interrupts"))
    assert host.text("proc", "interrupts") is None
