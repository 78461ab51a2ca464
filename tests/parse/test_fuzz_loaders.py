"""Fuzz the loaders of what people and other programs write: the agent's config, scenarios, the journal, saved
plans (issue 16). Any TOML or JSON value, at any nesting, any number (nan, inf, 1e400, thousands of digits):
the loader returns or raises its own error, `FILE:LINE: what` on one line, cut short; nothing else escapes.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irqtune.act.journal import Journal, JournalError
from irqtune.config import ConfigError, load_config
from irqtune.jsonfile import JsonError, loads
from irqtune.plan import PlanError, load_plan
from irqtune.sim.scenario import ScenarioError, load_scenario

pytestmark = pytest.mark.slow

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-300, 1e300, 5e-324, 0.0, -0.0]),
)
TEXT = st.text(max_size=20) | st.sampled_from(["", "eth0", "nvme0", "0-3", "tune", "latency", "x" * 5000])
SCALARS = NUMBERS | st.booleans() | TEXT


def toml_value(value: object) -> str:
    """A value as TOML inline text (lists and inline tables nest)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


TOML_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8
)


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


DEEP = st.integers(1, 3000).map(nested) | st.integers(1, 3000).map(lambda n: "{a = " * n + "1" + "}" * n)


def document(keys: list[str], tables: list[str], arrays: list[str]):
    """A TOML document: top-level keys, [tables] and [[arrays]] of the loader's own keys (and others), each
    with any value, nesting of any depth included."""
    key = st.sampled_from(keys) | TEXT.map(json.dumps)
    value = TOML_VALUES.map(toml_value) | DEEP
    body = st.lists(st.tuples(key, value), max_size=5).map(lambda kvs: "".join(f"{k} = {v}\n" for k, v in kvs))
    header = st.sampled_from([f"[{t}]" for t in tables] + [f"[[{a}]]" for a in arrays]) | TEXT.map(
        lambda t: f"[{json.dumps(t)}]"
    )
    section = st.tuples(header, body).map(lambda hb: f"{hb[0]}\n{hb[1]}")
    return st.tuples(body, st.lists(section, max_size=4)).map(lambda d: d[0] + "".join(d[1]))


LOCATED = re.compile(r"\A(?P<file>[^\n:]+):(?P<line>[1-9][0-9]*)(:[0-9]+)?: \S[^\n]*\Z")

CONFIG_KEYS = ["mode", "interval", "restore_on_exit", "goal", "p99_target_us", "housekeeping", "critical",
               "banned", "irq_sink", "max_changes", "dwell", "irq_cost_us", "service_us", "listen", "per_cpu",
               "max_series", "name", "class", "manage", "cpus", "colocate", "colocate_move", "steer", '"net/*/x"',
               "a.b.c"]  # fmt: skip
SCENARIO_KEYS = ["cpus", "nodes", "isolated", "hz", "kernel", "name", "queues", "node", "flavour", "rx_usecs",
                 "rx_frames", "usecs_quantum", "ring", "napi", "critical", "goal", "p99_target_us", "irq_cost_us",
                 "service_us", "packet_bytes", "media", "cstate_us", "seconds", "tlb_shootdowns", "tlb_cpus",
                 "resched_ipis", "ipi_cpus", "nic", "nvme", "device", "rate_pps", "arrivals", "burst_pps",
                 "burst_ms", "burst_every_ms", "clients", "think_us", "iodepth", "iops"]  # fmt: skip


def assert_located(message: str, path: str, text: str) -> None:
    match = LOCATED.match(message)
    assert match and match["file"] == path, message
    assert int(match["line"]) <= text.count("\n") + 1 and len(message) < 600, message


def floats_of(obj: object) -> list[float]:
    values = obj.__dict__.values() if hasattr(obj, "__dict__") else []
    return [v for v in values if isinstance(v, float)]


@FUZZ
@given(document(CONFIG_KEYS, ["cpus", "limits", "exporter", "bounds"], ["device"]))
def test_config_loader(text):
    try:
        config = load_config("c.toml", text)
    except ConfigError as err:
        assert_located(str(err), "c.toml", text)
        return
    for part in (config, config.limits, *config.devices):
        assert all(math.isfinite(v) for v in floats_of(part))


@FUZZ
@given(document(SCENARIO_KEYS, ["host"], ["nic", "nvme", "phase", "phase.load"]))
def test_scenario_loader(text):
    try:
        scenario = load_scenario("s.toml", "[[phase]]\nseconds = 1\n" + text)
    except ScenarioError as err:
        assert_located(str(err), "s.toml", "[[phase]]\nseconds = 1\n" + text)
        return
    parts = [scenario.host, *scenario.nics, *scenario.nvmes, *scenario.phases]
    parts += [load for phase in scenario.phases for load in phase.loads]
    assert all(math.isfinite(v) for part in parts for v in floats_of(part))
    assert 0 < scenario.seconds <= 86400


@FUZZ
@given(st.text(max_size=300))
def test_config_and_scenario_loaders_on_any_text(text):
    for load, error, path in ((load_config, ConfigError, "c.toml"), (load_scenario, ScenarioError, "s.toml")):
        try:
            load(path, text)
        except error as err:
            assert_located(str(err), path, text)


JSON_VALUES = st.recursive(
    st.none() | SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
ENTRY_KEYS = ["original", "written", "first_changed", "last_changed", "boot_id", "context", "pending"]


def json_text(value: object) -> str:
    """json.dumps, with NaN/Infinity as Python writes them; integers of any size too (int() limits aside)."""
    return json.dumps(value, indent=1, default=str)


JOURNALS = st.one_of(
    st.fixed_dictionaries(
        {
            "schema": st.just(1) | JSON_VALUES,
            "entries": st.dictionaries(
                TEXT,
                st.dictionaries(st.sampled_from(ENTRY_KEYS) | TEXT, JSON_VALUES, max_size=7) | JSON_VALUES,
                max_size=3,
            ),
        }
    ).map(json_text),
    JSON_VALUES.map(json_text),
    st.tuples(st.integers(1, 3000), st.sampled_from(["[", '{"a": '])).map(lambda d: d[1] * d[0]),
    st.integers(4000, 6000).map(lambda n: '{"schema": 1, "entries": {"k": {"first_changed": 1' + "0" * n + "}}}"),
    st.text(max_size=200),
)


@FUZZ
@given(JOURNALS)
def test_journal_loader(text):
    with tempfile.TemporaryDirectory() as state:
        path = os.path.join(state, "journal.json")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        try:
            with Journal.open(state, "boot") as journal:
                entries = list(journal.entries.values())
        except JournalError as err:
            assert_located(str(err), path, text)
            return
        assert all(math.isfinite(e.first_changed) and math.isfinite(e.last_changed) for e in entries)


@FUZZ
@given(JOURNALS)
def test_json_reader_and_saved_plans(text):
    try:
        loads("x.json", text)
    except JsonError as err:
        assert_located(str(err), "x.json", text)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "p.json")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text.replace('"entries"', '"changes"'))
        try:
            load_plan(path)
        except PlanError as err:
            assert str(err).startswith(path) and "\n" not in str(err) and len(str(err)) < 600
