"""Advice: NVMe interrupts versus polling, and what disturbs isolated CPUs (who, and what to do).

Pure functions of what was measured: `findings.Measurements` (topology, inventory,
/proc rates), optionally the eBPF probe results (`irqtune probe --json`: the whole
document, its "probes" mapping, or a mapping of probe name to its data) and the
NVMe report (`measure/nvme.py`). Nothing here reads or changes the host: every rule
answers with `findings.Finding`s whose message carries the advice. Entry point:
`advise()`; `supersede()` merges the result into `findings.find_all()`'s.

The rules live in `nvme.py` (polling, managed placement) and `isolation.py` (TLB shootdowns, IPIs and
the tick on isolated CPUs); their docstrings say what each reports and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...findings import SEVERITY_ORDER, Finding, Measurements, Thresholds
from ...measure.nvme import NvmeReport
from .isolation import TLB_ON_ISOLATED_PER_S, advise_isolation
from .nvme import (
    CSTATE_EXIT_S,
    IRQ_HANDLER_S,
    POLL_NOT_WORTH_MAX_SHARE,
    POLL_PAYS_MIN_SHARE,
    WAKE_S,
    PollVerdict,
    advise_nvme,
    advise_nvme_placement,
    break_even_completion_s,
    judge_polling,
)
from .probes import ProbeView

__all__ = [
    "CSTATE_EXIT_S",
    "IRQ_HANDLER_S",
    "POLL_NOT_WORTH_MAX_SHARE",
    "POLL_PAYS_MIN_SHARE",
    "TLB_ON_ISOLATED_PER_S",
    "WAKE_S",
    "PollVerdict",
    "ProbeView",
    "advise",
    "break_even_completion_s",
    "judge_polling",
    "supersede",
]


# -- entry points ---------------------------------------------------------------------------------------------------


def advise(
    m: Measurements,
    probes: Mapping | None = None,
    nvme: NvmeReport | None = None,
    *,
    cpu_idle: Mapping[int, float] | None = None,
    thresholds: Thresholds | None = None,
    prices: Mapping[str, float] | None = None,
) -> list[Finding]:
    """Every advice rule of the module docstring; `cpu_idle` (CPU -> idle share 0..1) enables NAND polling
    on CPUs that are idle anyway; `prices` (NVMe controller -> its goal's price of a core, µs, where the
    operator set a goal) weighs a spinning poller's CPU. Sorted by severity like `findings.find_all`."""
    t = thresholds or Thresholds()
    view = ProbeView.of(probes)
    found = [
        *advise_nvme(m, view, nvme, cpu_idle, t, prices),
        *advise_nvme_placement(m, t, nvme),
        *advise_isolation(m, view, t),
    ]
    return sorted(found, key=lambda f: SEVERITY_ORDER.get(f.severity, 3))


def supersede(findings: Iterable[Finding], advice: Iterable[Finding]) -> list[Finding]:
    """`findings` plus `advice`, dropping a finding that advice repeats with its source (same code and place)."""
    advice = list(advice)
    covered = {(f.code, f.irq, f.device, f.cpu) for f in advice}
    kept = [f for f in findings if (f.code, f.irq, f.device, f.cpu) not in covered]
    return sorted([*kept, *advice], key=lambda f: SEVERITY_ORDER.get(f.severity, 3))
