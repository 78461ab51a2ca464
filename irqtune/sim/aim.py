"""Intel's legacy adaptive ITR (igb), ported decision for decision, as a baseline policy.

After every interrupt igb re-judges a latency class from that interrupt's packets and bytes and maps the class
to a fixed EITR interval: 14, 49 or 245 µs (≈ 70k, 20k, 4k interrupts/s). EITR is a minimum gap between
interrupts (a throttle), not a window opened by the first packet. Source: torvalds/linux
drivers/net/ethernet/intel/igb/igb_main.c (igb_update_itr, igb_set_itr, igb_write_itr, igb_alloc_q_vector,
igb_ring_irq_enable) and igb.h. Scope as in the kernel: igb_set_itr runs only "if ((adapter->num_q_vectors == 1)
&& !adapter->vf_data)"; multi-vector adapters use igb_update_ring_itr (frame size only), not ported. RX only:
the TX ring container stays at lowest_latency (0), which "max(q_vector->rx.itr, q_vector->tx.itr)" never picks.
"""

from __future__ import annotations

import random

from ..model.queue import nic_queue
from .draws import poisson

# igb.h: "#define IGB_START_ITR 648 /* ~6000 ints/sec */", "#define IGB_4K_ITR 980", "#define IGB_20K_ITR 196",
# "#define IGB_70K_ITR 56". Units of 0.25 µs: igb_set_coalesce stores "adapter->rx_itr_setting =
# ec->rx_coalesce_usecs << 2", and igb_write_itr writes bits 14:2 of EITR, which count 1 µs.
IGB_START_ITR, IGB_4K_ITR, IGB_20K_ITR, IGB_70K_ITR = 648, 980, 196, 56
# igb_main.c: "enum latency_range { lowest_latency = 0, low_latency = 1, bulk_latency = 2, latency_invalid = 255 };"
lowest_latency, low_latency, bulk_latency = 0, 1, 2


def igb_update_itr(itrval: int, packets: int, nbytes: int) -> int:
    """igb_update_itr: a ring container's next class from one interrupt's work. Each test is the C one, in
    its order, with C's unsigned integer division; the quoted comments are the kernel's."""
    if packets == 0:  # "no packets, exit with status unchanged"
        return itrval
    if itrval == lowest_latency:
        if nbytes // packets > 8000:  # "handle TSO and jumbo frames"
            itrval = bulk_latency
        elif packets < 5 and nbytes > 512:
            itrval = low_latency
    elif itrval == low_latency:  # "50 usec aka 20000 ints/s"
        if nbytes > 10000:
            if nbytes // packets > 8000:  # noqa: SIM114 -- two branches as in C: "this if handles the TSO accounting"
                itrval = bulk_latency
            elif packets < 10 or nbytes // packets > 1200:
                itrval = bulk_latency
            elif packets > 35:
                itrval = lowest_latency
        elif nbytes // packets > 2000:
            itrval = bulk_latency
        elif packets <= 2 and nbytes < 512:
            itrval = lowest_latency
    elif itrval == bulk_latency:  # "250 usec aka 4000 ints/s"
        if nbytes > 25000:
            if packets > 35:
                itrval = low_latency
        elif nbytes < 1500:
            itrval = low_latency
    return itrval


class Aim:
    """One q_vector's adaptive ITR state (igb): the RX container's class `itr` and the q_vector's `itr_val`."""

    def __init__(self, setting: int = 3) -> None:
        if setting not in (1, 3):  # 1 dynamic, 3 dynamic conservative; igb_set_coalesce rejects 2, others are fixed
            raise ValueError(f"adaptive rx_itr_setting is 1 or 3, not {setting}")
        self.setting = setting
        self.itr = lowest_latency  # ring_container->itr, kzalloc'd
        self.itr_val = IGB_START_ITR  # igb_alloc_q_vector: "q_vector->itr_val = IGB_START_ITR;" (kept for 1..3)

    @property
    def usecs(self) -> float:
        """The minimum gap igb_write_itr programs: "u32 itr_val = q_vector->itr_val & 0x7FFC;" and
        "if (!itr_val) itr_val = 0x4;", bits 14:2 in µs. It reaches the NIC at the start of the next interrupt."""
        return float(((self.itr_val & 0x7FFC) or 0x4) >> 2)

    def update(self, packets: int, nbytes: int) -> None:
        """igb_set_itr at NAPI completion, with this interrupt's RX packets and bytes (1 Gb/s link)."""
        self.itr = igb_update_itr(self.itr, packets, nbytes)
        current_itr = self.itr  # "current_itr = max(q_vector->rx.itr, q_vector->tx.itr);"
        # "conservative mode (itr 3) eliminates the lowest_latency setting": the class itself stays lowest
        if current_itr == lowest_latency and self.setting == 3:
            current_itr = low_latency
        new_itr = (IGB_70K_ITR, IGB_20K_ITR, IGB_4K_ITR)[current_itr]
        if new_itr != self.itr_val:
            # "new_itr = new_itr > q_vector->itr_val ? max((new_itr * q_vector->itr_val) /
            #  (new_itr + (q_vector->itr_val >> 2)), new_itr) : new_itr;" -- meant to "bias the interrupt rate
            # towards Bulk by adding intermediate steps when interrupt rate is increasing" (e1000e's
            # "min(adapter->itr + (new_itr >> 2), new_itr)", in ints/s). With intervals the step is always below
            # new_itr, so max() returns new_itr: igb jumps straight to the new class, in both directions.
            if new_itr > self.itr_val:
                new_itr = max(new_itr * self.itr_val // (new_itr + (self.itr_val >> 2)), new_itr)
            self.itr_val = new_itr


def run_aim(
    rate: float, packet_bytes: int, service: float, irq_cost: float, intervals: int, seed: int = 1, setting: int = 3
) -> list[float]:
    """Aim on the closed-form queue under Poisson load: the interval (µs) it holds after each interrupt.

    An interrupt carries 1 + Pois(n̄ - 1) packets (the one that raised it and those queued behind it), with
    n̄ = rate / irq_rate from the model at the interval in force. The driver writes a new value "at the
    beginning of the next interrupt", so a decision governs the gap after the next interrupt: a one-step lag.
    """
    rng, aim, trace = random.Random(seed), Aim(setting), []
    written = aim.usecs  # programmed at open
    for _ in range(intervals):
        gap, written = written, aim.usecs  # igb_msix_ring -> igb_write_itr, then NAPI runs
        result = nic_queue(rate, service, irq_cost, gap * 1e-6, 0, "min-gap")
        if result.irq_rate > 0:  # overloaded: NAPI never completes, so igb_set_itr never runs
            packets = 1 + poisson(rng, rate / result.irq_rate - 1)
            aim.update(packets, packets * packet_bytes)
        trace.append(aim.usecs)
    return trace
