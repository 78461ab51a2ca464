"""eBPF probes on tracepoints: how long interrupts take and who causes them.

Each probe is one file (`hardirq.py`, `softirq.py`, ...) holding its BPF C text
and the reader that turns its maps into plain values; `base.py` holds what they
share (log2 histograms, availability checks) and `runner.py` loads the ones asked
for through the system bcc, runs them for a window and detaches them.
"""

from .base import PROBE_NAMES

__all__ = ["PROBE_NAMES"]
