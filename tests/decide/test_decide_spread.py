"""The spread policy: one queue per core before SMT siblings, CPUs out of vector space skipped, and boot
parameters recommended for managed IRQs instead of writes."""

from __future__ import annotations

from test_decide_colocate import nic, world

from irqtune.decide.spread import VECTOR_BUDGET, spread_nic_queues
from irqtune.measure.inventory import IrqInfo
from irqtune.measure.snapshot import IrqAffinity


def targets(plan) -> dict[int, str]:
    return {c.irq: c.target for c in plan.changes}


def test_one_queue_per_core_before_siblings():
    inv, topo, rules = world(nic(queues=4))  # node 0: cores (0,1) and (2,3)
    assert targets(spread_nic_queues(inv, topo, rules)) == {100: "0", 101: "2", 102: "1", 103: "3"}


def test_a_cpu_out_of_vector_space_is_skipped():
    inv, topo, rules = world(nic(queues=2))
    for irq in range(1000, 1000 + VECTOR_BUDGET):  # CPU 2 already serves VECTOR_BUDGET IRQs
        inv.irqs[irq] = IrqInfo(irq, (f"x{irq}",), "PCI-MSIX", affinity=IrqAffinity(requested=[2], effective=[2]))
    plan = spread_nic_queues(inv, topo, rules)
    assert targets(plan) == {100: "0", 101: "1"}
    assert any("CPU 2" in n and "vector space" in n for n in plan.notes)


def test_managed_irqs_get_boot_parameters_not_writes():
    inv, topo, rules = world(nic(queues=2, managed=frozenset({101})), isolated=(3,))
    plan = spread_nic_queues(inv, topo, rules)
    assert 101 not in targets(plan)
    [note] = [n for n in plan.notes if n.startswith("IRQ 101")]
    assert "isolcpus=managed_irq,3" in note and "irqaffinity=0-2,4-7" in note
