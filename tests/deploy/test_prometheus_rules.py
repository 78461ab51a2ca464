"""Prometheus rules and the Grafana dashboard (deploy/prometheus/).

* `promtool check rules` and `promtool test rules` (irqtune.rules.test.yml: every alert firing and quiet, every
  recording rule's value);
* every metric name in the rules' expressions, their annotation queries, and the dashboard's queries is one that
  docs/metrics.md documents (histograms as _bucket/_sum/_count), a recording rule of the rules file, or `up`;
  the dashboard's queries also parse (promtool, with Grafana's variables filled in);
* the dashboard: JSON, the datasource and instance variables, a datasource and targets on every panel;
* the Prometheus Operator's copy, deploy/kubernetes/cluster/prometheusrule.yaml: its spec.groups are the rules
  file's groups, and it fits a schema written from the operator's CRD (PROMETHEUSRULE_SCHEMA;
  tests/deploy/test_deploy.py applies it to the object `kubectl kustomize deploy/kubernetes/cluster` renders too);
* end to end: `irqtune export --once` on this host has every metric family the rules and the dashboard use,
  except those that need --probes or the agent (listed here, and checked to be absent).

Needs promtool (apt-get install prometheus) and PyYAML; skips without them (fails under CI=true).

`python tests/deploy/test_prometheus_rules.py` rewrites prometheusrule.yaml from the rules file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: conftest is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest
from conftest import REPO, real_linux, require

PROM = REPO / "deploy" / "prometheus"
RULES = PROM / "irqtune.rules.yml"
RULES_TEST = PROM / "irqtune.rules.test.yml"
DASHBOARD = PROM / "grafana" / "irqtune-dashboard.json"
PROMETHEUSRULE = REPO / "deploy" / "kubernetes" / "cluster" / "prometheusrule.yaml"
METRICS_DOC = REPO / "docs" / "metrics.md"

ALERTS = {"IrqtuneInterruptStorm", "IrqtuneTimeSqueezeWithDrops", "IrqtuneIrqOnIsolatedCpu",
          "IrqtuneTlbShootdownsOnIsolatedCpu", "IrqtuneAgentDown", "IrqtuneDriftDetected",
          "IrqtuneExporterSeriesDropped", "IrqtuneRxRefillFailing"}  # fmt: skip
SEVERITIES = {"critical", "warning", "info"}

# Series that are not irqtune's: Prometheus's own per-target health.
EXTERNAL = {"up"}
# Families a plain `irqtune export` does not have, and why.
NOT_IN_PLAIN_EXPORT = {
    "irqtune_agent_passes_total": "the agent (irqtune run)",
    "irqtune_agent_changes_total": "the agent (irqtune run)",
    "irqtune_agent_loop_duration_seconds": "the agent (irqtune run)",
    "irqtune_agent_journal_entries": "the agent (irqtune run) in tune mode",
    "irqtune_agent_drifted_knobs": "the agent (irqtune run) in tune mode",
    "irqtune_knob_value": "the agent (irqtune run)",
    "irqtune_irq_cpu_interrupts_total": "--per-cpu (named in IrqtuneIrqOnIsolatedCpu's description)",
    "irqtune_hardirq_handler_duration_seconds_bucket": "--probes",
    "irqtune_block_completion_latency_seconds_bucket": "--probes",
    # the kernel and driver must report them: page_pool stats need 6.8+ with CONFIG_PAGE_POOL_STATS and a driver
    # that names its netdev in the pool (veth does not); rx-alloc-fail a driver that fills netdev qstats with it
    "irqtune_page_pool_alloc_total": "page_pool stats (kernel config, driver)",
    "irqtune_page_pool_recycle_total": "page_pool stats (kernel config, driver)",
    "irqtune_rx_alloc_failures_total": "a driver reporting qstats rx-alloc-fail",
    "irqtune_nic_rx_alloc_failures_total": "a NIC driver with an RX allocation failure counter (virtio_net has none)",
}

# PromQL as of Prometheus 2.42 (and a few later functions, harmless to allow).
PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time",
    "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv", "exp", "floor", "histogram_count",
    "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln",
    "log10", "log2", "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
    "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin", "sinh",
    "sort", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time",
    "timestamp", "vector", "year",
    # aggregations
    "avg", "bottomk", "count", "count_values", "group", "max", "min", "quantile", "stddev", "stdvar", "sum", "topk",
}  # fmt: skip
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                   "offset", "atan2", "inf", "nan"}  # fmt: skip
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?")


def _yaml():
    try:
        import yaml
    except ImportError:
        require(False, "PyYAML not installed (pip install pyyaml)")
    return yaml


def _promtool() -> str:
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool not installed (apt-get install prometheus)")
    return promtool


def _rules() -> dict:
    return _yaml().safe_load(RULES.read_text())


def _all_rules(doc: dict) -> list[dict]:
    return [rule for group in doc["groups"] for rule in group["rules"]]


# -- metric names ----------------------------------------------------------------------------------------------------


def documented_metrics() -> set[str]:
    """The series names docs/metrics.md documents: its tables' first column; a histogram as _bucket/_sum/_count."""
    names = set()
    for m in re.finditer(r"^\| `(irqtune_\w+)` \| (counter|gauge|histogram) \|", METRICS_DOC.read_text(), re.M):
        name, kind = m.groups()
        names |= {name + suffix for suffix in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    return names


def referenced_names(expr: str) -> tuple[set[str], set[str]]:
    """(series names, function names) a PromQL expression uses. Grafana variables, strings, label matchers,
    ranges and grouping label lists are taken out first; what is left is functions and aggregations (an
    identifier before a parenthesis), keywords, numbers, and series names."""
    s = re.sub(r"\$\{?\w+(?::\w+)?\}?", " ", expr)
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', s)
    s = re.sub(r"\{[^{}]*\}", "{}", s)
    s = re.sub(r"\[[^\[\]]*\]", "[]", s)
    s = GROUPING.sub(" ", s)
    names, functions = set(), set()
    for m in IDENT.finditer(s):
        ident, call = m.groups()
        if ident.lower() in PROMQL_KEYWORDS:
            continue
        (functions if call else names).add(ident)
    return names, functions


def unknown_names(exprs: dict[str, str], recorded: set[str]) -> list[str]:
    """Every series name or function in `exprs` ({where: expr}) that is neither documented, recorded, external
    nor PromQL, as 'where: name'."""
    known = documented_metrics() | recorded | EXTERNAL
    bad = []
    for where, expr in exprs.items():
        names, functions = referenced_names(expr)
        bad += [f"{where}: series {n}" for n in sorted(names - known)]
        bad += [f"{where}: function {f}" for f in sorted(functions - PROMQL_FUNCTIONS)]
    return bad


def rule_exprs(doc: dict) -> dict[str, str]:
    """Each rule's expression, and each annotation's query templates (their irqtune names, as a pseudo-expr)."""
    out = {}
    for rule in _all_rules(doc):
        name = rule.get("alert") or rule.get("record")
        out[name] = rule["expr"]
        for key, text in rule.get("annotations", {}).items():
            found = re.findall(r"(?<![\w:])(irqtune[_:][\w:]*)", text)
            if found:
                out[f"{name} annotation {key}"] = " + ".join(found)
    return out


def dashboard_panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])  # a collapsed row's panels
    return out


def dashboard_exprs(dashboard: dict) -> dict[str, str]:
    out = {}
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            out[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
        out[f"variable {var['name']}"] = m.group(1) if m else query
    return out


def _recorded(doc: dict) -> set[str]:
    return {rule["record"] for rule in _all_rules(doc) if "record" in rule}


# -- promtool --------------------------------------------------------------------------------------------------------


def test_promtool_checks_the_rules():
    out = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.slow
def test_promtool_unit_tests_pass():
    out = subprocess.run([_promtool(), "test", "rules", str(RULES_TEST)], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_is_tested_firing_and_quiet_and_every_recording_rule_has_a_value():
    doc, tests = _rules(), _yaml().safe_load(RULES_TEST.read_text())
    assert tests["rule_files"] == [RULES.name]
    firing, quiet, evaluated = set(), set(), set()
    for case in tests["tests"]:
        for t in case.get("alert_rule_test", []):
            (firing if t["exp_alerts"] else quiet).add(t["alertname"])
        for t in case.get("promql_expr_test", []):
            if t["exp_samples"]:
                evaluated |= set(re.findall(r"irqtune:\w+:\w+", t["expr"]))
    alerts = {rule["alert"] for rule in _all_rules(doc) if "alert" in rule}
    assert alerts - firing == set(), "alerts without a firing case"
    assert alerts - quiet == set(), "alerts without a case where they stay quiet"
    assert _recorded(doc) - evaluated == set(), "recording rules without an expected value"


def test_rules_are_named_and_labelled_by_convention():
    doc = _rules()
    alerts = {}
    for rule in _all_rules(doc):
        if "record" in rule:
            # level:metric:operations, colons only in recording rules (docs/practices/rules.md)
            assert re.fullmatch(r"irqtune:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
            assert "labels" not in rule, rule["record"]
            continue
        alerts[rule["alert"]] = rule
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert "$labels." in rule["annotations"]["summary"] + rule["annotations"]["description"], rule["alert"]
    assert set(alerts) == ALERTS
    storm = alerts["IrqtuneInterruptStorm"]["expr"]
    assert '{role!="io"} > 100000' in storm, "the agent's storm threshold"
    assert '{role="io"} > 1000000' in storm, "an NVMe I/O queue: one interrupt per I/O"


def test_every_metric_name_in_the_rules_is_documented():
    doc = _rules()
    assert unknown_names(rule_exprs(doc), _recorded(doc)) == []


def test_every_metric_name_in_the_dashboard_is_documented():
    dashboard = json.loads(DASHBOARD.read_text())
    assert unknown_names(dashboard_exprs(dashboard), _recorded(_rules())) == []


def test_the_name_check_finds_what_is_wrong():
    """The checks above must be able to fail: misspelt, undocumented and unsuffixed names, unknown recording
    rules and functions are reported; labels, strings, durations, numbers and variables are not names."""
    exprs = {
        "ok": 'sum by (job, instance) (rate(irqtune_interrupts_total{cpu="0", device=~"eth.*"}[$__rate_interval]))'
        " > on (job, instance) group_left 1e5 * irqtune:interrupts:rate2m offset 1h"
        ' or label_replace(up{job="x"} == bool 0, "reason", "a b", "", "")'
        " or histogram_quantile(0.99, sum without (cpu) (rate(irqtune_hardirq_handler_duration_seconds_bucket[5m])))",
        "misspelt": "rate(irqtune_interupts_total[5m])",
        "histogram without suffix": "irqtune_hardirq_handler_duration_seconds",
        "not irqtune's": "node_interrupts_total",
        "unknown recording rule": "irqtune:interrupts:rate1m",
        "unknown function": "rat(irqtune_interrupts_total[5m])",
    }
    names, functions = referenced_names(exprs["ok"])
    assert names == {"irqtune_interrupts_total", "irqtune:interrupts:rate2m", "up",
                     "irqtune_hardirq_handler_duration_seconds_bucket"}  # fmt: skip
    assert functions == {"sum", "rate", "label_replace", "histogram_quantile"}
    assert unknown_names(exprs, {"irqtune:interrupts:rate2m"}) == [
        "misspelt: series irqtune_interupts_total",
        "histogram without suffix: series irqtune_hardirq_handler_duration_seconds",
        "not irqtune's: series node_interrupts_total",
        "unknown recording rule: series irqtune:interrupts:rate1m",
        "unknown function: function rat",
    ]
    assert len(documented_metrics()) > 40


# -- the dashboard ---------------------------------------------------------------------------------------------------


def test_the_dashboard_has_its_variables_and_every_panel_a_datasource_and_targets():
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["type"] == "query" and instance["datasource"]["uid"] == "${datasource}"
    ids, cells = set(), set()
    panels = [p for p in dashboard_panels(dashboard) if p["type"] != "row"]
    assert len(panels) >= 20
    for panel in panels:
        title = panel["title"]
        assert panel["id"] not in ids, title
        ids.add(panel["id"])
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], title
            assert target["expr"].strip(), title
            assert 'instance=~"$instance"' in target["expr"], f"{title}: not filtered by $instance"
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, title
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{title} overlaps another panel"
                cells.add((x, y))
    by_metric = {}
    for panel in panels:
        for target in panel["targets"]:
            for name in referenced_names(target["expr"])[0]:
                by_metric.setdefault(name, set()).add(panel["type"])
    assert "heatmap" in by_metric["irqtune_cpu_interrupts_total"]
    assert "heatmap" in by_metric["irqtune_hardirq_handler_duration_seconds_bucket"]
    assert "heatmap" in by_metric["irqtune_block_completion_latency_seconds_bucket"]
    for name in ("irqtune_interrupts_total", "irqtune_arch_interrupts_total", "irqtune_softnet_dropped_total",
                 "irqtune_softnet_time_squeezed_total", "irqtune_agent_changes_total", "irqtune_knob_value",
                 "irqtune_agent_loop_duration_seconds", "irqtune_agent_journal_entries"):  # fmt: skip
        assert name in by_metric, name
    knobs = [p for p in panels if any("irqtune_knob_value" in t["expr"] for t in p["targets"])]
    assert knobs[0]["fieldConfig"]["defaults"]["custom"]["lineInterpolation"] == "stepAfter"


def test_the_dashboards_queries_parse(tmp_path):
    """promtool parses every panel query (as a recording rule), Grafana's variables filled in as Grafana would."""
    dashboard = json.loads(DASHBOARD.read_text())
    fill = {"$__rate_interval": "2m", "$__interval": "1m", "$__range": "6h", "$instance": ".+"}
    rules = []
    for i, expr in enumerate(dashboard_exprs(dashboard).values()):
        for var, value in fill.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query:n{i}", "expr": expr})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(_yaml().safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# -- the Prometheus Operator's copy ----------------------------------------------------------------------------------

DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
# PrometheusRule (monitoring.coreos.com/v1), from the Prometheus Operator's CRD (v0.7x) for the fields used here;
# stricter than the CRD: unknown fields are errors (the API server would prune them without a word).
PROMETHEUSRULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": STRINGS,
            },
        },
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": DURATION},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "record": {"type": "string"},
                                        "alert": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {"type": "string", "pattern": DURATION},
                                        "labels": STRINGS,
                                        "annotations": STRINGS,
                                    },
                                    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

PROMETHEUSRULE_HEADER = """\
# The Prometheus Operator's copy of deploy/prometheus/irqtune.rules.yml: spec.groups are that file's groups
# (tests/deploy/test_prometheus_rules.py checks it; `python tests/deploy/test_prometheus_rules.py` rewrites this
# file from it). In cluster/kustomization.yaml (`kubectl apply -k deploy/kubernetes/cluster`), with the namespace
# and the PodMonitor. Needs the operator's CRDs.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: irqtune
  namespace: irqtune
  labels:
    app.kubernetes.io/name: irqtune
    # Your Prometheus resource's ruleSelector must match these labels (kube-prometheus-stack: `release`), and its
    # ruleNamespaceSelector the namespace.
spec:
"""


def prometheusrule_text() -> str:
    """The PrometheusRule: the header, then the rules file from `groups:` on, indented under spec."""
    text = RULES.read_text()
    body = text[text.index("\ngroups:\n") + 1 :]
    return PROMETHEUSRULE_HEADER + "".join("  " + line if line.strip() else line for line in body.splitlines(True))


def test_the_prometheusrule_has_the_rules_files_groups():
    yaml = _yaml()
    rule = yaml.safe_load(PROMETHEUSRULE.read_text())
    assert rule["spec"]["groups"] == _rules()["groups"], (
        "deploy/kubernetes/cluster/prometheusrule.yaml differs from deploy/prometheus/irqtune.rules.yml: "
        "run `python tests/deploy/test_prometheus_rules.py`"
    )
    assert yaml.safe_load(prometheusrule_text()) == rule


def test_the_prometheusrule_fits_the_operators_schema():
    try:
        import jsonschema
    except ImportError:
        require(False, "jsonschema not installed (it comes with kubernetes-validate)")
    rule = _yaml().safe_load(PROMETHEUSRULE.read_text())
    jsonschema.validate(rule, PROMETHEUSRULE_SCHEMA)
    broken = json.loads(json.dumps(rule))
    broken["spec"]["groups"][1]["rules"][0]["for_"] = "5m"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, PROMETHEUSRULE_SCHEMA)


# -- end to end ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_irqtune_export_has_the_families_the_rules_and_dashboard_use():
    require(real_linux(), "needs a real Linux /proc")
    out = subprocess.run([sys.executable, "-m", "irqtune", "export", "--once"], capture_output=True, text=True,
                         timeout=120, cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr
    exported = {re.split(r"[{ ]", line, maxsplit=1)[0] for line in out.stdout.splitlines()
                if line and not line.startswith("#")}  # fmt: skip
    # A family without samples (irqtune_cpu_isolated on a host with no isolated CPU) is exported all the same.
    exported |= set(re.findall(r"^# TYPE (\w+) ", out.stdout, re.M))
    assert "irqtune_up" in exported
    doc = _rules()
    exprs = {**rule_exprs(doc), **dashboard_exprs(json.loads(DASHBOARD.read_text()))}
    used = set().union(*(referenced_names(expr)[0] for expr in exprs.values())) - _recorded(doc) - EXTERNAL
    assert set(NOT_IN_PLAIN_EXPORT) <= used, "the list of families a plain export lacks names unused ones"
    missing = sorted(n for n in used - set(NOT_IN_PLAIN_EXPORT) if n not in exported)
    assert missing == [], f"used by the rules or the dashboard, not in `irqtune export --once`: {missing}"
    present = sorted(n for n in NOT_IN_PLAIN_EXPORT if n in exported)
    assert present == [], f"listed as needing --probes or the agent, but exported: {present}"


if __name__ == "__main__":
    PROMETHEUSRULE.write_text(prometheusrule_text())
    print(f"wrote {PROMETHEUSRULE.relative_to(REPO)}")
