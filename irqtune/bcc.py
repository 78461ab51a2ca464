"""Find and load the system's bcc (iovisor) Python package, which is not on PyPI.

Debian/Ubuntu ship it as python3-bpfcc in /usr/lib/python3/dist-packages/bcc, Fedora
as python3-bcc under /usr/lib/python3.X/site-packages. It is pure Python over
libbcc.so, so any CPython 3 can load it by path. Only the `bcc` package is loaded,
not the whole system site-packages. `IRQTUNE_BCC_PATH` names another package dir.
Without bcc, irqtune measures from /proc counters only.
"""

from __future__ import annotations

import ctypes.util
import glob
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass
from types import ModuleType

CANDIDATES = (
    "/usr/lib/python3/dist-packages/bcc",
    *sorted(glob.glob("/usr/lib/python3*/site-packages/bcc")),
    *sorted(glob.glob("/usr/lib64/python3*/site-packages/bcc")),
)


@dataclass(frozen=True, slots=True)
class BccInfo:
    available: bool
    path: str | None
    reason: str  # why not available, or what was found

    def to_json(self) -> dict:
        return {"available": self.available, "path": self.path, "reason": self.reason}


def find_bcc() -> BccInfo:
    """Locate bcc without importing it (importing costs ~65 MB of RSS for LLVM)."""
    override = os.environ.get("IRQTUNE_BCC_PATH")
    candidates = (override,) if override else CANDIDATES
    path = next((c for c in candidates if c and os.path.isfile(os.path.join(c, "__init__.py"))), None)
    if path is None:
        where = override or "the system Python paths"
        return BccInfo(False, None, f"bcc Python package not found in {where} (install python3-bpfcc)")
    if ctypes.util.find_library("bcc") is None:
        return BccInfo(False, path, "libbcc.so not found (install libbpfcc)")
    return BccInfo(True, path, f"bcc found at {path}")


def load_bcc() -> ModuleType:
    """Import bcc by path. Raises ImportError with the reason when it cannot."""
    if "bcc" in sys.modules and hasattr(sys.modules["bcc"], "BPF"):
        return sys.modules["bcc"]
    info = find_bcc()
    if not info.available or info.path is None:
        raise ImportError(info.reason)
    spec = importlib.util.spec_from_file_location(
        "bcc", os.path.join(info.path, "__init__.py"), submodule_search_locations=[info.path]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load bcc from {info.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bcc"] = module
    try:
        with warnings.catch_warnings():  # bcc 0.26's own source has invalid escape sequences
            warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
            spec.loader.exec_module(module)
    except Exception as err:  # a broken install: report it, keep /proc measurement going
        del sys.modules["bcc"]
        raise ImportError(f"bcc at {info.path} failed to import: {err}") from err
    if not hasattr(module, "BPF"):
        del sys.modules["bcc"]
        raise ImportError(f"{info.path} is not iovisor bcc (no BPF class)")
    return module
