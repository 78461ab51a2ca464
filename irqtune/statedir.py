"""The state directory: what irqtune learned about this host and must remember.

Plain JSON, written atomically (temp file, fsync, rename). It holds the IRQs
whose affinity the kernel refused to change (kernel-managed), learned by the write
path and shown by read-only commands. Entries are tied to the boot they were learned
in (`/proc/sys/kernel/random/boot_id`) and to the IRQ's action names, because IRQ
numbers are reassigned across boots and driver reloads. And it holds the agent's model of each
NIC's interrupt response (MODEL_FILE: the windows it measured and what was fitted to them,
model/identify.py), which `status` shows and a restarted agent starts from.

The directory is opened once without following a symlink (a state directory that is a link
would put the journal and the locks at its target: refused, issue 16.4), and every file in it
is opened relative to that fd, never through a link, and read only when it is a regular file
of bounded size (a FIFO cannot hang a read-only command).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time

from .fileio import check_regular, read_regular
from .host import Host
from .parse.common import is_count

MANAGED_FILE = "managed-irqs.json"
MODEL_FILE = "model.json"  # device -> {"prior", "model", "windows"}: the agent's (agent/propose.py)
KUBE_FILE = "kubernetes.json"  # the opted-in pods' exclusive CPUs the agent holds free of IRQs (agent/kube.py)
log = logging.getLogger(__name__)


class StateDirError(OSError):
    """The state directory cannot be used safely (a symlink, not a directory); the message says which."""


def default_state_dir(host: Host) -> str:
    """/var/lib/irqtune under the host's root (the CLI's --state-dir / IRQTUNE_STATE_DIR win)."""
    return os.path.join(host.root, "var", "lib", "irqtune")


def boot_id(host: Host) -> str:
    return host.text("proc", "sys", "kernel", "random", "boot_id") or ""


def open_state_dir(state_dir: str, create: bool = True) -> int:
    """An fd of the state directory (made first when `create`); StateDirError when it is a symlink."""
    path = state_dir.rstrip("/") or "/"  # a trailing slash would follow a link
    if create:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        if os.path.islink(path):
            why = "is a symlink: refused (the journal and locks would go to its target); give the directory itself"
            raise StateDirError(errno.ELOOP, f"state directory {path} {why}") from None
        raise StateDirError(err.errno, f"state directory {path} unusable: {err.strerror}") from None


def open_lock(state_dir: str, name: str) -> int:
    """A lock file's fd in the state directory (made when missing; a link or a non-regular file refused)."""
    dir_fd = open_state_dir(state_dir)
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        check_regular(fd, os.path.join(state_dir, name))
    except OSError:
        os.close(fd)
        raise
    return fd


def read_state_file(dir_fd: int, name: str, kind: str) -> bytes:
    """A file of the state directory: regular, not a link, within fileio.LIMITS[kind]."""
    return read_regular(name, kind, dir_fd=dir_fd, nofollow=True)


def load_learned_managed(state_dir: str, current_boot: str) -> dict[int, dict]:
    """IRQ -> {"managed": bool, "actions": [...], "errno": str} learned in this boot."""
    try:
        dir_fd = open_state_dir(state_dir, create=False)
    except StateDirError as err:
        if err.errno == errno.ELOOP:
            log.warning("%s", err.strerror)
        return {}
    try:
        data = json.loads(read_state_file(dir_fd, MANAGED_FILE, "managed-irqs"))
    except (OSError, ValueError, RecursionError):  # damaged: relearned by the next refused write
        return {}
    finally:
        os.close(dir_fd)
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
    dir_fd = open_state_dir(state_dir)
    try:
        write_json_atomically(dir_fd, MANAGED_FILE, data)
    finally:
        os.close(dir_fd)


def write_json_atomically(dir_fd: int, name: str, data: dict, durable: bool = True) -> None:
    """Temp file, fsync, rename, fsync the directory: after a crash the file is old or new, never torn.
    All relative to the state directory's fd, and the temp file made afresh (O_EXCL, no link followed).
    `durable` False: no fsync (a file written every pass whose loss costs little: the device models)."""
    tmp = f"{name}.tmp.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)  # a crashed run's, or something planted: never written through
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(tmp, flags, 0o644, dir_fd=dir_fd), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    if durable:
        os.fsync(dir_fd)


def read_device_models(state_dir: str) -> dict[str, dict]:
    """MODEL_FILE's devices (name -> {"prior", "model", "windows"}); empty where there is none. ValueError where
    the file is not ours or unsafe to read (the caller warns: a model is learned again in a few windows)."""
    path = os.path.join(state_dir, MODEL_FILE)
    try:
        dir_fd = open_state_dir(state_dir, create=False)
    except StateDirError as err:
        if err.errno == errno.ENOENT:
            return {}
        raise ValueError(err.strerror) from None
    try:
        data = json.loads(read_state_file(dir_fd, MODEL_FILE, "model"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as err:
        raise ValueError(f"{path}: not read: {err}") from None
    finally:
        os.close(dir_fd)
    devices = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devices, dict):
        raise ValueError(f"{path}: not a model file of irqtune (no devices table)")
    return {str(k): v for k, v in devices.items() if isinstance(v, dict)}


def read_kube_held(state_dir: str) -> dict | None:
    """KUBE_FILE ({"cpus", "containers": [{"pod", "uid", "container", "cpus"}]}), for `status`; None where the
    agent watches no kubelet (no file). ValueError where the file is not ours or unsafe to read."""
    path = os.path.join(state_dir, KUBE_FILE)
    try:
        dir_fd = open_state_dir(state_dir, create=False)
    except StateDirError as err:
        if err.errno == errno.ENOENT:
            return None
        raise ValueError(err.strerror) from None
    try:
        data = json.loads(read_state_file(dir_fd, KUBE_FILE, "model"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as err:
        raise ValueError(f"{path}: not read: {err}") from None
    finally:
        os.close(dir_fd)
    ok = isinstance(data, dict) and isinstance(data.get("cpus"), str) and isinstance(data.get("containers"), list)
    if not ok:
        raise ValueError(f"{path}: not a file of irqtune (no cpus and containers)")
    return data
