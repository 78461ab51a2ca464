"""What no change may touch, decided in one place for the agent's passes and the one-shot `plan` and `apply`.

The config's banned and critical CPUs, every CPU outside [cpus] housekeeping and the exclusive CPUs of opted-in
pods (agent/kube.py) take no device IRQ (a device's own configured cpus excepted); devices with manage = false are
left alone; a knob the config's [pin] holds is the operator's (agent/pins.py). A one-shot command that ignored any
of these could move IRQs onto a guaranteed pod's CPUs, or undo a pin the agent holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config import Config
from ..host import Host
from ..measure.kubelet import saved_held
from ..measure.reading import Reading
from ..parse.common import Problem
from ..statedir import KUBE_FILE
from .kube import KubeWatch
from .pins import Pinner


def rule_args(config: Config, online: Iterable[int], held: frozenset[int]) -> dict:
    """Placement rules from the config (decide/placement.py placement_rules' arguments): banned and critical CPUs,
    the pods' `held` CPUs and, with [cpus] housekeeping, every online CPU outside it take no IRQ (a device's own
    configured cpus excepted); unmanaged devices are left alone."""
    unmanaged = frozenset(rule.name for rule in config.devices if rule.name and not rule.manage)
    banned = config.cpus.cpus("banned") | config.cpus.cpus("critical") | held
    housekeeping = config.cpus.cpus("housekeeping")
    if housekeeping:
        banned |= {cpu for cpu in online if cpu not in housekeeping}
    return {"banned": frozenset(banned), "exclude": unmanaged, "device_cpus": config.device_cpus()}


def net_devices(reading: Reading) -> list[str]:
    """The network devices a [pin] glob may match: the NICs found and every interface /proc/net/dev lists."""
    names = [d.name for d in reading.inventory.devices if d.kind == "nic"]
    netdev = reading.snapshot.netdev.devices if reading.snapshot.netdev else {}
    return sorted({*names, *(name for name in netdev if name != "lo")})


@dataclass
class OneShot:
    """What a one-shot `plan` or `apply` honours, read once: the pods' held CPUs, the pins, and what went wrong."""

    config: Config
    kube: KubeWatch
    pinner: Pinner
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rule_args(self, online: Iterable[int]) -> dict:
        return rule_args(self.config, online, self.kube.cpus)


def one_shot(host: Host, config: Config, state_dir: str, reading: Reading) -> OneShot:
    """The kubelet asked once, as a pass of the agent asks it, starting from the CPUs the agent last held (its
    state file): where the config names no pod source or the kubelet cannot be read, those stay held, as the agent
    keeps them through a read error. The pins expanded over this host's network devices."""
    kube, problems, notes = KubeWatch(host, config.kubernetes), [], []
    try:
        kube.held = saved_held(state_dir) or []
    except ValueError as err:
        problems.append(Problem(os.path.join(state_dir, KUBE_FILE), 0, str(err).split(": ", 1)[-1]))
    _, unread = kube.poll()
    problems += unread
    if kube.held and (kube.source is None or unread):
        notes.append(f"the pods' CPUs as the agent last held them ({os.path.join(state_dir, KUBE_FILE)})")
    if kube.cpus:
        notes.insert(0, f"device IRQs kept off the CPUs opted-in pods hold alone: {kube.whose(kube.cpus)}")
    pinner = Pinner(host, state_dir)
    pinner.config = config
    pinner.expand(net_devices(reading))
    return OneShot(config, kube, pinner, problems, notes)
