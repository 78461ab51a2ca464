"""The probes' data as advice reads it: whichever JSON shape it came in, and the window's length."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


# -- probe data -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProbeView:
    """The probes' data, whichever JSON shape it came in, and the window's length when known."""

    sections: Mapping[str, dict]
    duration: float | None = None

    @classmethod
    def of(cls, probes: Mapping | None) -> ProbeView:
        """Accepts `irqtune probe --json`, its "probes" mapping, or name -> data; failed probes are dropped."""
        if not probes:
            return cls({})
        duration = probes.get("duration")
        inner = probes.get("probes", probes)
        sections = {}
        for name, entry in inner.items():
            if not isinstance(entry, Mapping):
                continue
            if "status" in entry and "data" in entry:
                if entry["status"] != "ok":
                    continue
                entry = entry["data"]
            sections[str(name)] = dict(entry)
        usable = isinstance(duration, int | float) and duration > 0
        return cls(sections, float(duration) if usable else None)

    def get(self, name: str) -> dict | None:
        return self.sections.get(name)

    def per_cpu_rate(self, counts: Mapping | None) -> dict[int, float]:
        """Counts in the window as rates; empty when the window's length is unknown."""
        if not counts or not self.duration:
            return {}
        return {int(cpu): float(n) / self.duration for cpu, n in counts.items()}
