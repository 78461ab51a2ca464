"""Load the asked-for probes through the system bcc, run them for a window, read and detach.

The probes the kernel supports are compiled as one BPF module: one run of clang (bcc's
compile takes most of a probe command's time, a second or more per module), its time kept
apart (`compile_seconds`). Where that module fails to build or load, each probe is loaded
as its own module, so one that cannot load (a verifier refusal) is reported with its reason
while the others run. Detach is guaranteed by `ProbeSession.close()` (a context manager),
also on SIGTERM: the command turns SIGTERM into an exception that unwinds through it.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..bcc import find_bcc, load_bcc
from ..host import Host
from ..parse.common import CpuListError, parse_count, parse_cpulist
from ..parse.interrupts import parse_interrupts
from . import block, hardirq, ipi, napi, softirq, timer, tlb
from .base import C_COMMON, PROBE_NAMES, Histogram, ProbeSpec, map_names

log = logging.getLogger(__name__)

SPECS: dict[str, ProbeSpec] = {
    spec.name: spec for spec in (hardirq.SPEC, softirq.SPEC, ipi.SPEC, tlb.SPEC, napi.SPEC, timer.SPEC, block.SPEC)
}
assert tuple(SPECS) == PROBE_NAMES


class EbpfUnavailable(RuntimeError):
    """eBPF cannot run here at all (no bcc, not root, not the running kernel); the message says why."""


@dataclass(slots=True)
class ProbeResult:
    name: str
    status: str  # ok, unsupported, failed
    reason: str = ""
    data: dict = field(default_factory=dict)


def tracefs_dir(host: Host) -> str | None:
    for parts in (("kernel", "tracing"), ("kernel", "debug", "tracing")):
        if host.has(host.sys(), *parts, "events"):
            return host.sys(*parts)
    return None


def ebpf_unavailable_reason(
    host: Host, not_root_hint: str = "/proc counters need none: try irqtune status"
) -> str | None:
    """Why no probe can run on this host, or None when they can; `not_root_hint` tells a non-root user what next."""
    if host.root != "/":
        return f"eBPF probes measure the running kernel; --root must be / (it is {host.root})"
    info = find_bcc()
    if not info.available:
        return info.reason
    if os.geteuid() != 0:
        return f"eBPF probes need root (CAP_BPF and CAP_PERFMON); {not_root_hint}"
    if tracefs_dir(host) is None:
        return "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)"
    return None


def probe_context(host: Host) -> dict[str, Any]:
    """Sizes and names the C text and the readers need, read once from the host."""
    possible = host.text("sys", "devices", "system", "cpu", "possible") or "0"
    try:
        cpus = parse_cpulist(possible) or [0]
    except CpuListError:  # unreadable possible-CPU list: size the maps for this process's view instead
        cpus = list(range(os.cpu_count() or 1))
    max_cpus = max(cpus) + 1
    irq_dirs = [irq for irq in map(parse_count, host.entries(host.proc(), "irq")) if irq is not None]
    max_irq = 256
    while max_irq <= max(irq_dirs, default=0) + 64:
        max_irq *= 2
    tracing = tracefs_dir(host)
    x86_vectors = tracing is not None and all(
        host.has(tracing, "events", *tp.split(":", 1)) for tp in ipi.RECEIVE_TRACEPOINTS
    )
    shared = {}
    raw = host.text("proc", "interrupts")
    if raw:
        table = parse_interrupts(raw)
        shared = {row.irq: row.actions for row in table.rows.values() if row.irq is not None and len(row.actions) > 1}
    names, queues = {}, {}
    for disk in host.entries(host.sys(), "block"):
        dev = host.text("sys", "block", disk, "dev")
        if dev:
            names[dev] = disk
        for hctx in host.entries(host.sys(), "block", disk, "mq"):
            number = parse_count(hctx)
            try:
                for cpu in parse_cpulist(host.text("sys", "block", disk, "mq", hctx, "cpu_list") or ""):
                    if number is not None:
                        queues.setdefault(disk, {})[cpu] = number
            except CpuListError:
                continue
    return {
        "max_cpus": max_cpus, "cpu_words": (max_cpus + 63) // 64, "max_irq": max_irq, "x86_vectors": x86_vectors,
        "block_names": names, "block_queues": queues, "machine": platform.machine(), "shared_irqs": shared,
    }  # fmt: skip


class ProbeSession:
    """The loaded probes of one run. Use as a context manager: leaving it detaches everything."""

    def __init__(self, host: Host, names: tuple[str, ...] | list[str]) -> None:
        reason = ebpf_unavailable_reason(host)
        if reason:
            raise EbpfUnavailable(reason)
        self.bcc = load_bcc()
        self.ctx = probe_context(host)
        self.results: dict[str, ProbeResult] = {}
        self._loaded: dict[str, Any] = {}
        self.compile_seconds = 0.0  # building and loading the modules (clang, the verifier, attaching)
        tracing = tracefs_dir(host) or ""
        supported = []
        for name in names:
            why = SPECS[name].unsupported_reason(lambda tp: host.has(tracing, "events", *tp.split(":", 1)))
            if why:
                self.results[name] = ProbeResult(name, "unsupported", why)
            else:
                supported.append(name)
        try:
            if not (len(supported) > 1 and self._load_together(supported)):
                for name in supported:
                    self._load(name)
        except BaseException:  # SIGTERM or Ctrl-C while compiling: detach what is already attached
            self.close()
            raise

    def _load_together(self, names: list[str]) -> bool:
        """All of `names` in one module; False (nothing left loaded) where it does not build or load."""
        started = time.monotonic()
        try:
            bpf = self.bcc.BPF(text=combined_source([SPECS[n].source(self.ctx) for n in names]).encode())
        except Exception as err:  # one probe's failure: each is tried alone, to say which and run the rest
            self.compile_seconds += time.monotonic() - started
            log.info("the probes did not load as one module (%s); loading them one by one", _first_line(err))
            return False
        self.compile_seconds += time.monotonic() - started
        for name in names:
            self._loaded[name] = bpf
        for name in names:
            self._prepared(name, bpf)
        return True

    def _load(self, name: str) -> None:
        started = time.monotonic()
        try:
            bpf = self._loaded[name] = self.bcc.BPF(text=SPECS[name].source(self.ctx).encode())
        except Exception as err:  # bcc raises bare Exception for compile and attach failures
            self.results[name] = ProbeResult(name, "failed", _first_line(err))
            log.warning("probe %s failed to load: %s", name, err)
            return
        finally:
            self.compile_seconds += time.monotonic() - started
        self._prepared(name, bpf)

    def _prepared(self, name: str, bpf: Any) -> None:
        """Fill the maps user space owns; the probe is ok once that worked."""
        spec = SPECS[name]
        try:
            if spec.prepare:
                with _quiet_bcc():
                    spec.prepare(bpf, self.ctx)
        except Exception as err:
            self.results[name] = ProbeResult(name, "failed", _first_line(err))
            log.warning("probe %s failed to load: %s", name, err)
            return
        self.results[name] = ProbeResult(name, "ok")
        log.info("probe %s attached", name)

    def __enter__(self) -> ProbeSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def program_fds(self, name: str) -> list[int]:
        """File descriptors of a loaded probe's BPF programs (for kernel run-time statistics)."""
        bpf = self._loaded.get(name)
        if bpf is None:
            return []
        own = set(function_names(SPECS[name].source(self.ctx)))
        return [fn.fd for fn_name, fn in bpf.funcs.items() if _text(fn_name) in own]

    def reset(self) -> None:
        """Zero every map: counting starts now, not when the first probe finished compiling."""
        with _quiet_bcc():
            for name, bpf in self._loaded.items():
                for table in map_names(SPECS[name].source(self.ctx)):
                    bpf[table].clear()
                if SPECS[name].prepare:
                    SPECS[name].prepare(bpf, self.ctx)

    def read(self) -> dict[str, ProbeResult]:
        for name, bpf in self._loaded.items():
            try:
                with _quiet_bcc():
                    self.results[name].data = SPECS[name].read(bpf, self.ctx)
            except Exception as err:  # a reader bug must not lose the other probes' data
                self.results[name] = ProbeResult(name, "failed", f"reading maps: {err}")
        return self.results

    def close(self) -> None:
        done: set[int] = set()
        for name, bpf in list(self._loaded.items()):
            del self._loaded[name]
            if id(bpf) in done:  # a module several probes share is detached once
                continue
            done.add(id(bpf))
            try:
                bpf.cleanup()
            except Exception as err:
                log.warning("probe %s: detach failed: %s", name, err)


_DEFINE = re.compile(r"#define (\w+)")
_PROBE_FN = re.compile(r"\b(RAW_TRACEPOINT_PROBE|TRACEPOINT_PROBE)\(\s*(\w+)\s*(?:,\s*(\w+)\s*)?\)")


def combined_source(sources: list[str]) -> str:
    """Several probes' C text as one module: the shared helpers (C_COMMON) once, each `#define` once (the
    probes derive them from the same context, so equal names carry equal values). Map, struct and function
    names are the probes' own (each prefixes its maps; no two attach to one tracepoint)."""
    head: dict[str, str] = {}
    bodies = []
    common = any(C_COMMON in text for text in sources)
    for text in sources:
        lines, depth = [], 0
        for line in text.replace(C_COMMON, "").splitlines():
            match = _DEFINE.match(line)
            depth += line.startswith("#if") - line.startswith("#endif")
            if match and not depth and not line.endswith("\\"):  # a define inside #if stays where it is
                head.setdefault(match.group(1), line)
            else:
                lines.append(line)
        bodies.append("\n".join(lines))
    return "\n".join([*head.values(), *([C_COMMON] if common else []), *bodies]) + "\n"


def function_names(source: str) -> list[str]:
    """The BPF functions bcc makes of a probe's tracepoint macros (`raw_tracepoint__EVENT`,
    `tracepoint__CATEGORY__EVENT`)."""
    names = []
    for kind, first, second in _PROBE_FN.findall(source):
        names.append(f"raw_tracepoint__{first}" if kind == "RAW_TRACEPOINT_PROBE" else f"tracepoint__{first}__{second}")
    return names


def _text(name: str | bytes) -> str:
    return name.decode() if isinstance(name, bytes) else name


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else repr(err)


@contextmanager
def _quiet_bcc() -> Iterator[None]:
    """bcc 0.26 warns (DeprecationWarning) whenever a map is named with str rather than bytes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="bcc")
        yield


def jsonable(value: Any) -> Any:
    """Probe data as JSON: histograms in seconds, integer keys as strings."""
    if isinstance(value, Histogram):
        return value.to_json()
    if isinstance(value, ProbeResult):
        return {"status": value.status, "reason": value.reason, "data": jsonable(value.data)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
