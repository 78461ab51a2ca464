"""The systemd unit and the default config in systemd/: the unit verifies without a warning, its sandbox stays
at most 3.0 exposed without the lines the agent depends on, its commands are real irqtune commands, and
irqtune.toml loads. The notify protocol itself (READY, STATUS, WATCHDOG, SIGHUP, SIGTERM) is tested in
test_agent_run.py."""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, require

from irqtune.config import Config, CpuSets, DeviceRule, Exporter, Kubernetes, Limits, load_config

UNIT = REPO / "systemd" / "irqtune.service"
CONFIG = REPO / "systemd" / "irqtune.toml"
INSTALLED = "/opt/irqtune/bin/irqtune"  # where the docs and the Ansible role install the venv's entry point
MAX_EXPOSURE = 3.0


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order: keys repeat in units (SystemCallFilter=)."""
    entries, section, pending = [], "", ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def values(key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in unit_entries(UNIT.read_text()) if s == section and k == key]


def value(key: str, section: str = "Service") -> str | None:
    found = values(key, section)
    return found[-1] if found else None


def command(key: str) -> list[str]:
    """An Exec*= line as argv, its prefixes ("-", "@", "+", "!", ":") dropped."""
    (line,) = values(key)
    return shlex.split(line.lstrip("-@+!:"))


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    require(path is not None, "needs systemd-analyze (Debian: systemd)")
    return path


def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the unit, with the install prefix pointing at this venv's irqtune: verify checks
    that the executables exist, and warns (exit status still 0) on unknown keys and bad values, so any output
    fails."""
    analyze = systemd_analyze()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    irqtune = Path(sys.executable).with_name("irqtune")
    require(irqtune.exists(), f"needs the irqtune entry point next to {sys.executable} (pip install -e .)")
    (bin_dir / "irqtune").symlink_to(irqtune)
    text = UNIT.read_text()
    assert INSTALLED in text
    (tmp_path / UNIT.name).write_text(text.replace(INSTALLED, str(bin_dir / "irqtune")))
    result = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / UNIT.name)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def test_exposure_at_most_3() -> None:
    result = subprocess.run([systemd_analyze(), "security", "--offline=yes", str(UNIT)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    match = re.search(r"Overall exposure level for irqtune\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_sandbox_keeps_what_the_agent_needs() -> None:
    """The lines whose obvious "hardening" value would break the agent (systemd/README.md says why)."""
    off = ("no", "false", "0", None)
    assert value("ProtectKernelTunables") in off  # /proc/irq, /proc/sys, /sys read-only
    assert value("PrivateUsers") in off  # capabilities in a user namespace do not reach the host's netns
    assert value("PrivateNetwork") in off  # the NICs are in the host's network namespace
    assert value("ProcSubset") in ("all", None)  # /proc/interrupts, /proc/irq, /proc/net
    assert value("ProtectSystem") == "strict"  # read-only, but /proc, /sys, /dev stay writable
    for key in ("ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem"):
        assert not any(p.lstrip("-+").startswith(("/proc", "/sys")) for v in values(key) for p in v.split()), key
    assert "CAP_NET_ADMIN" in value("CapabilityBoundingSet").split()
    assert value("User") in (None, "root")  # /proc/irq/* and /proc/sys/* are root-owned files
    assert value("StateDirectory") == "irqtune" and value("ConfigurationDirectory") == "irqtune"
    assert value("Conflicts", "Unit") == "irqbalance.service"
    assert value("Type") == "notify" and value("NotifyAccess") == "main" and value("WatchdogSec")
    assert "localhost" in value("IPAddressAllow").split()  # the exporter listens on the loopback


def irqtune_accepts(argv: list[str]) -> subprocess.CompletedProcess:
    """Every option in argv exists: click parses them all before the eager --help prints and exits 0."""
    return subprocess.run([sys.executable, "-m", "irqtune", *argv, "--help"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("key", ["ExecStart", "ExecStopPost"])
def test_commands_are_real_irqtune_commands(key: str) -> None:
    argv = command(key)
    assert argv[0] == INSTALLED
    result = irqtune_accepts(argv[1:])
    assert result.returncode == 0, f"{key}: irqtune {shlex.join(argv[1:])}: {result.stderr}"


def test_commands_agree_with_each_other() -> None:
    """One state directory and one config file: the restore after a crash reads what the agent ran with."""
    start, stop = command("ExecStart"), command("ExecStopPost")
    assert start[1:4] == ["--state-dir", "/var/lib/irqtune", "run"]
    assert stop[1:4] == ["--state-dir", "/var/lib/irqtune", "restore"]
    assert start[start.index("--config") + 1] == "/etc/irqtune/irqtune.toml"
    assert stop[stop.index("--only-if-config") + 1] == "/etc/irqtune/irqtune.toml"
    assert values("ExecStopPost")[0].startswith("-")  # a failed restore must not turn a stop into a failure
    assert command("ExecReload") == ["/bin/kill", "-HUP", "$MAINPID"]  # SIGHUP: `run` re-reads its config
    (listen,) = [line for line in UNIT.read_text().splitlines() if line.startswith("#ExecStart=")]
    assert listen == f"#ExecStart={values('ExecStart')[0]} --listen 127.0.0.1:9731"


def test_default_config_loads_and_shows_the_defaults() -> None:
    config = load_config(str(CONFIG))
    assert config.mode == "observe"
    assert dataclasses.replace(config, path=Config().path) == Config()


def test_default_config_examples_load() -> None:
    """Uncommenting every example (a "#" right before a key, a table or a quoted key) gives a valid config."""
    text = CONFIG.read_text()
    examples = re.sub(r'(?m)^#(?=[a-z_\["])', "", text)
    config = load_config("irqtune.toml (examples)", examples)
    assert config.cpus.critical and config.bounds and config.pins
    assert any(rule.name for rule in config.devices) and any(rule.class_ for rule in config.devices)


def test_default_config_names_every_key() -> None:
    text = CONFIG.read_text()
    classes = (Config, CpuSets, Limits, Exporter, Kubernetes, DeviceRule)
    keys = [f.name for cls in classes for f in dataclasses.fields(cls)]
    tables = ("path", "cpus", "limits", "exporter", "kubernetes", "devices", "bounds", "locator", "pins")  # not keys
    keys = ["class" if k == "class_" else k for k in keys if k not in tables]
    missing = [k for k in keys if not re.search(rf"(?m)^#?{k} = ", text)]
    assert not missing, f"{CONFIG.name} does not show {missing}"
    for table in ("[cpus]", "[limits]", "[kubernetes]", "[bounds]", "[pin]", "[[device]]"):
        assert table in text


def test_unit_names_its_documentation_and_skips_containers() -> None:
    """As irqbalance's unit: `systemctl help irqtune` opens irqtune(1) (the page the wheel installs), and a container
    (whose IRQs are the host's) does not start it; one CPU does (moderation and NAPI are still the agent's)."""
    assert value("Documentation", "Unit") == "man:irqtune(1)"
    assert (REPO / "man" / "irqtune.1").is_file()
    assert value("ConditionVirtualization", "Unit") == "!container" and value("ConditionCPUs", "Unit") is None
