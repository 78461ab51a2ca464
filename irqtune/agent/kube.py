"""The agent's view of the Kubernetes CPU manager: each pass, the exclusive CPUs of opted-in pods (measure/kubelet.py)
become critical CPUs. A pod that starts adds its CPUs (the placement is recomputed: device IRQs move off them, the
normal journaled moves), one that ends gives them back (recomputed again: the spread may use them). When the
checkpoint or the pod list cannot be read, the CPUs held last stay held (a transient error must not put IRQs
onto a running pod's CPUs) and the problem is logged once, not every pass. The pods are asked for again only
when the checkpoint's pods change (one starts or ends with exclusive CPUs): a node's agents do not list pods
every pass, and CRI-O too reads the annotation only when the container is created.
"""

from __future__ import annotations

import contextlib
import logging
import os

from ..config import Kubernetes
from ..host import Host
from ..measure.kubelet import Held, KubeError, Pod, PodSource, held_cpus, pod_source, read_checkpoint
from ..parse.common import Problem, format_cpulist
from ..statedir import KUBE_FILE, open_state_dir, write_json_atomically

log = logging.getLogger("irqtune.agent")


class KubeWatch:
    """The kubelet's exclusive CPUs of opted-in pods, polled once a pass."""

    def __init__(self, host: Host, config: Kubernetes, source: PodSource | None = None) -> None:
        self.host, self.config = host, config
        self.source = source if source is not None else pod_source(host, config.pods)
        self.held: list[Held] = []
        self.pods: list[Pod] = []  # the last pod list, asked for when the checkpoint's pods were `asked_for`
        self.asked_for: frozenset[str] | None = None
        self.warned: str | None = None  # the last problem logged (logged again only when it changes)
        self.saved: dict | None = None  # what KUBE_FILE holds (written again only when it changes)

    @property
    def cpus(self) -> frozenset[int]:
        return frozenset().union(*(h.cpus for h in self.held))

    def poll(self) -> tuple[bool, list[Problem]]:
        """(whether the held CPUs changed, this pass's problems); logs which pod's container caused a change."""
        if self.source is None:
            return False, []
        try:
            state = read_checkpoint(self.host, self.config.cpu_manager_state)
            uids = frozenset(a.pod_uid for a in state.assignments)
            if uids != self.asked_for:
                self.pods, self.asked_for = self.source.pods(), uids
            now = held_cpus(state, self.pods, self.config.annotation)
        except KubeError as err:
            if str(err) != self.warned:
                log.warning("kubernetes: %s; the CPUs held so far stay held (%s)", err, self._held_text())
                self.warned = str(err)
            return False, [err.problem]
        self.warned = None
        before = self.cpus
        for held in now:
            if held not in self.held:
                log.info("kubernetes: pod %s container %s holds CPUs %s alone: device IRQs kept off them",
                         held.pod, held.container, format_cpulist(sorted(held.cpus)))  # fmt: skip
        for held in self.held:
            if held not in now:
                log.info("kubernetes: pod %s container %s no longer holds CPUs %s: given back to the placement",
                         held.pod, held.container, format_cpulist(sorted(held.cpus)))  # fmt: skip
        self.held = now
        return self.cpus != before, []

    def whose(self, cpus: frozenset[int]) -> str:
        """Which held containers these CPUs are ("kubernetes pod NS/NAME container C holds 2-3"), for a move's
        reason; "" where none is."""
        return "; ".join(f"kubernetes pod {h.pod} container {h.container} holds {format_cpulist(sorted(h.cpus))}"
                         for h in self.held if h.cpus & cpus)  # fmt: skip

    def _held_text(self) -> str:
        return format_cpulist(sorted(self.cpus)) or "none"

    def to_json(self) -> dict:
        return {"cpus": format_cpulist(sorted(self.cpus)), "containers": [h.to_json() for h in self.held]}

    def save(self, state_dir: str) -> None:
        """The held CPUs to KUBE_FILE for `irqtune status`, when they changed; with no pod source, a file an
        earlier run left is removed (status would show pods no agent holds). A state directory that cannot be
        written (observe mode as a user) is warned of once."""
        data = self.to_json() if self.source is not None else {}
        if data == self.saved:
            return
        try:
            dir_fd = open_state_dir(state_dir, create=bool(data))
            try:
                if data:
                    write_json_atomically(dir_fd, KUBE_FILE, data, durable=False)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(KUBE_FILE, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as err:
            if data and self.saved is None:
                log.warning("%s: the pods' held CPUs were not saved: %s", os.path.join(state_dir, KUBE_FILE), err)
        self.saved = data
