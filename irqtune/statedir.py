"""The state directory: what irqtune learned about this host and must remember.

Plain JSON, written atomically (temp file, fsync, rename). Today it holds the IRQs
whose affinity the kernel refused to change (kernel-managed), learned by the write
path and shown by read-only commands. Entries are tied to the boot they were learned
in (`/proc/sys/kernel/random/boot_id`) and to the IRQ's action names, because IRQ
numbers are reassigned across boots and driver reloads.
"""

from __future__ import annotations

import json
import os
import time

from .host import Host
from .parse.common import is_count

MANAGED_FILE = "managed-irqs.json"


def default_state_dir(host: Host) -> str:
    """/var/lib/irqtune under the host's root (the CLI's --state-dir / IRQTUNE_STATE_DIR win)."""
    return os.path.join(host.root, "var", "lib", "irqtune")


def boot_id(host: Host) -> str:
    return host.text("proc", "sys", "kernel", "random", "boot_id") or ""


def load_learned_managed(state_dir: str, current_boot: str) -> dict[int, dict]:
    """IRQ -> {"managed": bool, "actions": [...], "errno": str} learned in this boot."""
    try:
        with open(os.path.join(state_dir, MANAGED_FILE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):  # damaged: relearned by the next refused write
        return {}
    if not isinstance(data, dict) or data.get("boot_id") != current_boot or not current_boot:
        return {}
    irqs = data.get("irqs")
    if not isinstance(irqs, dict):
        return {}
    return {int(k): v for k, v in irqs.items() if _valid_entry(k, v)}


def _valid_entry(key: str, entry: object) -> bool:
    """A hand-edited or damaged file must not break read-only commands: keep only well-formed entries."""
    if not (isinstance(key, str) and is_count(key) and isinstance(entry, dict)):
        return False
    actions = entry.get("actions")
    return isinstance(actions, list) and all(isinstance(a, str) for a in actions)


def remember_managed(state_dir: str, current_boot: str, irq: int, actions: list[str], errno_name: str) -> None:
    """Record that the kernel refused an affinity write for `irq` (EIO before 6.12, EPERM since)."""
    known = load_learned_managed(state_dir, current_boot)
    known[irq] = {"managed": True, "actions": list(actions), "errno": errno_name, "learned_at": time.time()}
    data = {"boot_id": current_boot, "irqs": {str(k): v for k, v in sorted(known.items())}}
    write_json_atomically(os.path.join(state_dir, MANAGED_FILE), data)


def write_json_atomically(path: str, data: dict) -> None:
    """Temp file, fsync, rename, fsync the directory: after a crash the file is old or new, never torn."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
