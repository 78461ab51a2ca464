"""The CPUs the agent keeps free of device IRQs for opted-in Kubernetes pods, as metrics.

Read from the file the agent keeps for `status` (statedir KUBE_FILE), so `irqtune export` beside the agent reports
them as the agent's own exporter does; no file (no agent watches a kubelet), no families:

    irqtune_kube_held_cpus                  how many CPUs the agent holds for pods
    irqtune_kube_held_cpu{cpu,pod,container}  1 for each of them, with the container holding it alone
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..measure.kubelet import Held
from .labels import label

if TYPE_CHECKING:
    from prometheus_client.core import Metric


def kube_families(held: list[Held] | None) -> Iterator[Metric]:
    """The two families; none where `held` is None (no agent watches a kubelet)."""
    from prometheus_client.core import GaugeMetricFamily

    if held is None:
        return
    cpus = {cpu: h for h in reversed(held) for cpu in h.cpus}  # a CPU two entries name: the first's
    yield GaugeMetricFamily("irqtune_kube_held_cpus", "CPUs the agent keeps free of device IRQs because an "
                            "opted-in Kubernetes pod's container holds them alone.", value=len(cpus))  # fmt: skip
    family = GaugeMetricFamily("irqtune_kube_held_cpu", "1 for each CPU the agent keeps free of device IRQs for "
                               "an opted-in pod, with the pod (namespace/name) and container.",
                               labels=["cpu", "pod", "container"])  # fmt: skip
    for cpu in sorted(cpus):
        family.add_metric([str(cpu), label(cpus[cpu].pod), label(cpus[cpu].container)], 1)
    yield family
