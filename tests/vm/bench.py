"""The virtual-machine bench: boot Debian's LTS kernels under QEMU with real drivers and run the guest tests.

Each boot of the matrix (BOOTS) starts one QEMU guest through virtme-ng (`vng`): this machine's filesystem
is the guest's root (read-only, with overlays), so the guest runs this checkout and its venv as they are.
The guest has 4 vCPUs in 2 NUMA nodes, two e1000e NICs wired to each other on a QEMU hub (no traffic leaves
QEMU), a virtio-net NIC with RSS on a hub of its own and an NVMe controller with 4 I/O queue pairs, one of
them a poll queue (`nvme.poll_queues=1`). It runs `tests/vm/guest-run`, which runs the guest tests
(tests/vm/guest_*.py, marker `vm`) with pytest and writes a JUnit report, the measurements the tests recorded
and the guest's output into a shared directory. KVM is used where it works; otherwise QEMU's TCG emulates
the CPUs (slow: budget in `GUEST_TIMEOUT`).

Test scaffolding only (imported by tests/vm/test_vm_boot.py and scripts/vm-test), never by irqtune.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUEST_RUN = REPO / "tests" / "vm" / "guest-run"
GUEST_TIMEOUT = 900  # seconds for one boot, its tests and shutdown (TCG on 2 host CPUs)
NVME_IMAGE_BYTES = 256 << 20


@dataclass(frozen=True)
class Boot:
    """One guest of the matrix: which kernel series, its extra command line, and which guest tests it runs."""

    name: str
    series: str  # "6.1": /boot/vmlinuz-6.1.*; "6.12": /boot/vmlinuz-6.12.*
    append: str
    select: str  # pytest -m expression inside the guest

    def isolated(self) -> bool:
        return "isolcpus=" in self.append


BOOTS = (
    Boot("6.1", "6.1", "nvme.poll_queues=1", "vm and not isolated"),
    Boot("6.12-isolated", "6.12", "nvme.poll_queues=1 isolcpus=managed_irq,domain,3 nohz_full=3", "vm"),
)


def kernel_image(series: str) -> str | None:
    """The newest installed /boot/vmlinuz of a series (6.1 must not match 6.12), or None."""
    pattern = re.compile(rf"vmlinuz-{re.escape(series)}[.-]\d")
    found = [p for p in glob.glob("/boot/vmlinuz-*") if pattern.search(os.path.basename(p))]
    release = [p for p in found if os.path.isdir(f"/lib/modules/{os.path.basename(p)[len('vmlinuz-') :]}")]
    return max(release, key=_version_key) if release else None


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", os.path.basename(path)))


def vng_path() -> str | None:
    """virtme-ng's `vng`, beside this Python (the project's venv) or on PATH."""
    beside = Path(sys.executable).parent / "vng"
    return str(beside) if beside.exists() else shutil.which("vng")


def missing() -> str | None:
    """Why the bench cannot boot here, or None."""
    if sys.platform != "linux":
        return "the VM bench needs Linux"
    if os.geteuid() != 0:
        return "the VM bench needs root (it reads the kernels' modules and runs the guests' tests as root)"
    for tool, package in (("qemu-system-x86_64", "qemu-system-x86"), ("busybox", "busybox-static")):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian package {package}; scripts/vm-test installs it)"
    if vng_path() is None:
        return "virtme-ng not installed (pip install -e '.[vm]'; scripts/vm-test installs it)"
    for boot in BOOTS:
        if kernel_image(boot.series) is None:
            return f"no Linux {boot.series} kernel in /boot with its modules (scripts/vm-test installs it)"
    return None


def kvm_works(kernel: str) -> bool:
    """Whether QEMU can run this kernel with KVM: a short boot must print the kernel's banner. Nested KVM
    can exist and still fail (seen: an emulation failure in the kernel's decompressor)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nographic", "-no-reboot",
            "-kernel", kernel, "-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1 init=/nonexistent"]  # fmt: skip
    try:
        out = subprocess.run(argv, capture_output=True, timeout=20, check=False).stdout
    except subprocess.TimeoutExpired as err:
        out = err.stdout or b""
    return b"Linux version" in out


@dataclass
class GuestRun:
    """What one boot did: timings, the guest's test results and measurements, and its output."""

    boot: Boot
    kernel: str
    accel: str
    returncode: int | None  # the guest pytest's exit status; None if it never finished
    seconds: float
    boot_seconds: float | None  # from start to the guest script's first line
    tests: list[dict] = field(default_factory=list)  # {"name", "outcome", "seconds", "message"}
    measurements: dict = field(default_factory=dict)
    log: str = ""

    def failed(self) -> list[dict]:
        return [t for t in self.tests if t["outcome"] in ("failed", "error")]

    def skipped(self) -> list[dict]:
        return [t for t in self.tests if t["outcome"] == "skipped"]


def qemu_devices(out: Path) -> list[str]:
    """Two e1000e on hub 0, wired to each other inside QEMU; a virtio-net with RSS (rss=on: QEMU computes the
    hash itself, the guest driver has an indirection table and key to set) alone on hub 1; and an NVMe controller
    with 4 I/O queue pairs. QEMU 7.2's virtio-net takes its queue pairs from its backend, and a hubport has one."""
    image = out / "nvme.img"
    with open(image, "wb") as f:
        f.truncate(NVME_IMAGE_BYTES)
    return ["-netdev", "hubport,id=h1,hubid=0", "-device", "e1000e,netdev=h1,mac=52:54:00:12:34:01",
            "-netdev", "hubport,id=h2,hubid=0", "-device", "e1000e,netdev=h2,mac=52:54:00:12:34:02",
            "-netdev", "hubport,id=h3,hubid=1",
            "-device", "virtio-net-pci,netdev=h3,mac=52:54:00:12:34:03,mq=on,vectors=10,rss=on",
            "-drive", f"file={image},if=none,id=nv0,format=raw",
            "-device", "nvme,serial=irqtune0,drive=nv0,max_ioqpairs=4"]  # fmt: skip


def vng_argv(boot: Boot, kernel: str, out: Path, kvm: bool, env: dict[str, str]) -> list[str]:
    exports = " ".join(f"{k}={v}" for k, v in sorted(env.items()))
    argv = [vng_path() or "vng", "-r", kernel, "--cpus", "4", "--memory", "2G",
            "--numa=1G,cpus=0-1", "--numa=1G,cpus=2-3", f"--rwdir={out}", f"--cwd={REPO}",
            f"--append={boot.append}", f"--qemu-opts={' '.join(qemu_devices(out))}",
            f"--exec=env {exports} {GUEST_RUN}"]  # fmt: skip
    return argv if kvm else [*argv[:1], "--disable-kvm", *argv[1:]]


def run(boot: Boot, out: Path, timeout: float = GUEST_TIMEOUT, extra: tuple[str, ...] = ()) -> GuestRun:
    """Boot `boot` with its guest tests; `out` is shared with the guest (read-write)."""
    kernel = kernel_image(boot.series)
    if kernel is None:
        raise RuntimeError(f"no Linux {boot.series} kernel installed")
    out.mkdir(parents=True, exist_ok=True)
    kvm = kvm_works(kernel)
    env = {"IRQTUNE_VM_OUT": str(out), "IRQTUNE_VM_SELECT": f"'{boot.select}'", "IRQTUNE_VM_BOOT": boot.name,
           "CI": os.environ.get("CI", ""), "IRQTUNE_VM_PYTEST_ARGS": f"'{' '.join(extra)}'"}  # fmt: skip
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"  # vng finds virtme-run here
    started = time.monotonic()
    try:
        proc = subprocess.run(vng_argv(boot, kernel, out, kvm, env), capture_output=True, text=True, errors="replace",
                              timeout=timeout, env={**os.environ, "PATH": path}, check=False)  # fmt: skip
        console = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        console = f"(timed out after {timeout:g} s)\n" + _text(err.stdout) + _text(err.stderr)
    seconds = time.monotonic() - started
    result = GuestRun(boot, kernel, "kvm" if kvm else "tcg", _read_rc(out), seconds, _boot_seconds(out, started))
    result.tests = junit_tests(out / "junit.xml")
    measured = out / "measurements.json"
    if measured.exists():
        result.measurements = json.loads(measured.read_text())
    guest_log = out / "guest.log"
    result.log = (guest_log.read_text(errors="replace") if guest_log.exists() else "") + "\n--- console ---\n" + console
    kernel_log = out / "dmesg.log"
    if result.returncode is None and kernel_log.exists():  # the guest died or hung: what its kernel said last
        result.log += "\n--- guest kernel log (last 60 lines) ---\n"
        result.log += "\n".join(kernel_log.read_text(errors="replace").splitlines()[-60:])
    return result


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _read_rc(out: Path) -> int | None:
    try:
        return int((out / "rc").read_text().strip())
    except (OSError, ValueError):
        return None


def _boot_seconds(out: Path, started_monotonic: float) -> float | None:
    """Seconds from the boot's start to the guest script's first line (it writes the host-comparable
    wall time in `started`)."""
    try:
        guest_start = float((out / "started").read_text().strip())
    except (OSError, ValueError):
        return None
    host_start = time.time() - (time.monotonic() - started_monotonic)
    return max(0.0, guest_start - host_start)


def junit_tests(path: Path) -> list[dict]:
    """Each test case of a JUnit XML report: name, outcome, seconds and the failure's message."""
    if not path.exists():
        return []
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (node.get("message") or "") + "\n" + (node.text or "")
                break
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        out.append({"name": name, "outcome": outcome, "seconds": float(case.get("time", 0)), "message": message})
    return out
