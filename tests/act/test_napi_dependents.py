"""A device-wide NAPI write (gro_flush_timeout, napi_defer_hard_irqs, threaded) resets every NAPI's own value, so
the engine journals each NAPI first. Whatever the device-wide write's read-back says, each NAPI's entry ends
confirmed with what it holds: an entry left "pending" reads as a crash forever (never drift, restored without
--force)."""

from __future__ import annotations

from irqtune.act import engine
from irqtune.act.journal import Journal
from irqtune.act.knobs import make_knob
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import library, load_scenario
from irqtune.statedir import boot_id


def _setup(tmp_path):
    sim = SimMachine(load_scenario(library()["memcached-low"]), str(tmp_path / "t"))  # kernel 6.18: napi-set
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "s")
    journal = Journal.open(state, boot_id(host))
    own = f"napi/eth0/{sim.napi_id(sim.irqs[0])}/defer-hard-irqs"
    assert engine.change(make_knob(host, own), "5", journal, state).outcome == engine.APPLIED  # a NAPI's own value
    return host, state, journal, own


def test_a_device_wide_write_read_back_as_asked_confirms_each_napi(tmp_path):
    host, state, journal, own = _setup(tmp_path)
    try:
        result = engine.change(make_knob(host, "net/eth0/napi-defer-hard-irqs"), "10", journal, state)
    finally:
        journal.close()
    assert result.outcome == engine.APPLIED
    napis = {k: e for k, e in journal.entries.items() if k.startswith("napi/")}
    assert napis and all(not e.pending and e.written == "10" for e in napis.values()), napis
    assert napis[own].original == "0"  # the NAPI's value before irqtune's first write to it


def test_a_device_wide_write_read_back_differently_confirms_each_napi_as_it_is(tmp_path, monkeypatch):
    """The device file reads back another value than written (a driver rounding, another writer): before, the
    NAPIs' entries stayed pending."""
    host, state, journal, _ = _setup(tmp_path)
    knob = make_knob(host, "net/eth0/napi-defer-hard-irqs")
    reads = []
    real = knob.read

    def rounding_read():
        reads.append(1)
        return real() if len(reads) == 1 else "7"  # before the write: the real value; after: what a driver holds

    monkeypatch.setattr(knob, "read", rounding_read)
    try:
        result = engine.change(knob, "10", journal, state)
    finally:
        journal.close()
    assert result.outcome == engine.FAILED and result.after == "7"
    napis = {k: e for k, e in journal.entries.items() if k.startswith("napi/")}
    assert napis and not any(e.pending for e in napis.values()), {k: e.pending for k, e in napis.items()}
    assert all(e.written == make_knob(host, k).read() for k, e in napis.items())  # confirmed with what each holds
