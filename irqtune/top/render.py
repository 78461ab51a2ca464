"""Drawing `irqtune top`: a rich screen for terminals, plain aligned lines for pipes and logs.

Both take the same rows (`model`). The rich renderer builds every cell as a `Text`,
never as markup, so a device named `[red]x` prints as written.
"""

from __future__ import annotations

import time

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..table import table
from .model import SORT_KEYS, CpuRow, IrqRow, arch_keys, clean, cpu_rows, irq_rows
from .sample import Banner, Sample

IRQ_HEADERS = ("IRQ", "RATE/s", "CPUS", "PER-CPU", "MEAN-us", "MAX-us", "EFFECTIVE", "DEVICE", "QUEUE", "ACTIONS")
SORTED_COLUMN = {"rate": "RATE/s", "cpus": "CPUS", "latency": "MEAN-us", "irq": "IRQ", "device": "DEVICE"}
HEADER_LINES = 3  # title, load summary, keys
MIN_IRQ_ROWS = 5


def _title(banner: Banner, sample: Sample | None, sort: str) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(sample.taken_at)) if sample else "--:--:--"
    window = f"window {sample.rates.interval:.2f} s" if sample else "measuring"
    return f"irqtune top  {clean(banner.hostname)}  kernel {clean(banner.kernel)}  {clock}  {window}  sort {sort}"


def _load(banner: Banner, sample: Sample | None) -> str:
    latency = clean(banner.latency)  # may quote a bcc error
    if sample is None:
        return f"handler latency: {latency}"
    numbered = [r.total for k, r in sample.rates.interrupts.items() if k.isdigit()]
    return (f"device IRQs {sum(numbered):,.0f}/s on {len(sample.rates.cpus)} CPUs; "
            f"handler latency: {latency}")  # fmt: skip


def _irq_cells(row: IrqRow) -> tuple:
    lat = row.latency
    return (row.irq, row.rate, row.cpus, row.spread, lat.mean_us if lat else None, lat.max_us if lat else None,
            row.effective, row.device, row.queue, row.actions)  # fmt: skip


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.1f}"


def _cpu_cells(row: CpuRow, keys: list[str]) -> tuple:
    return (row.cpu, row.device_irqs, *(row.arch.get(k, 0.0) for k in keys), _percent(row.irq_time),
            _percent(row.softirq_time))  # fmt: skip


# -- plain -----------------------------------------------------------------


def plain_block(banner: Banner, sample: Sample, sort: str, top: int | None = None) -> str:
    """One refresh as plain aligned text, like a `top -b` block; ends with a blank line."""
    rows = irq_rows(sample.rates, sample.inventory, sample.latency, sort)
    shown = rows[:top] if top else rows
    out = [_title(banner, sample, sort), _load(banner, sample), ""]
    out += table(IRQ_HEADERS, [_irq_cells(r) for r in shown]) if shown else ["no IRQs"]
    if len(rows) > len(shown):
        out.append(f"({len(rows) - len(shown)} more IRQs; --top to show more)")
    keys = arch_keys(sample.rates)
    cpus = cpu_rows(sample.rates)
    if cpus:
        out += ["", *table(("CPU", "DEV-IRQ/s", *keys, "%IRQ", "%SOFTIRQ"), [_cpu_cells(c, keys) for c in cpus])]
    return "\n".join(out) + "\n\n"


# -- rich ------------------------------------------------------------------


def _number(value: float | None, digits: int = 0) -> Text:
    if value is not None and 0 < value < 10:  # a slow trickle is not zero
        digits = max(digits, 1)
    return Text("-" if value is None else f"{value:,.{digits}f}", justify="right")


def _keys_line(sort: str) -> Text:
    text = Text("sort: ", style="dim")
    for key, name in SORT_KEYS.items():
        label = f"{key} {name}"
        text.append(label, style="reverse bold" if name == sort else "bold")
        text.append("  ")
    text.append("q quit", style="bold")
    return text


def _cpu_table(sample: Sample, limit: int) -> Table:
    keys = arch_keys(sample.rates)
    cpus = cpu_rows(sample.rates)
    hidden = 0
    if len(cpus) > limit:  # many CPUs: the busiest ones, in CPU order
        hidden = len(cpus) - limit
        cpus = sorted(sorted(cpus, key=lambda c: -c.device_irqs)[:limit], key=lambda c: c.cpu)
    grid = Table(box=None, pad_edge=False, header_style="bold cyan", show_edge=False)
    for header in ("CPU", "DEV-IRQ/s", *keys, "%IRQ", "%SOFTIRQ"):
        grid.add_column(header, justify="right", no_wrap=True)
    for c in cpus:
        percents = (Text(_percent(c.irq_time), justify="right"), Text(_percent(c.softirq_time), justify="right"))
        grid.add_row(Text(str(c.cpu), justify="right"), _number(c.device_irqs), *(_number(c.arch[k]) for k in keys),
                     *percents)  # fmt: skip
    if hidden:
        grid.caption = f"{hidden} quieter CPUs not shown"
    return grid


def _irq_table(rows: list[IrqRow], sort: str) -> Table:
    grid = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=True, header_style="bold cyan")
    text_columns = {"PER-CPU": 22, "DEVICE": 16, "QUEUE": 9, "EFFECTIVE": 10}
    for header in IRQ_HEADERS:
        style = "bold reverse cyan" if SORTED_COLUMN[sort] == header else None
        if header == "ACTIONS":
            grid.add_column(header, header_style=style, no_wrap=True, overflow="ellipsis", ratio=1, min_width=10)
        elif header in text_columns:
            grid.add_column(header, header_style=style, no_wrap=True, overflow="ellipsis",
                            max_width=text_columns[header])  # fmt: skip
        else:
            grid.add_column(header, header_style=style, justify="right", no_wrap=True)
    for r in rows:
        lat = r.latency
        grid.add_row(
            Text(str(r.irq), justify="right"), _number(r.rate), Text(str(r.cpus), justify="right"), Text(r.spread),
            _number(lat.mean_us if lat else None, 1), _number(lat.max_us if lat else None, 1), Text(r.effective),
            Text(r.device), Text(r.queue), Text(r.actions),
            style="dim" if r.rate <= 0 else None,
        )  # fmt: skip
    return grid


def rich_frame(banner: Banner, sample: Sample | None, sort: str, height: int, top: int | None = None) -> RenderableType:
    """The terminal screen: title, load and keys; per-CPU load; then as many IRQ rows as fit `height`."""
    head = [Text(_title(banner, sample, sort), style="bold"), Text(_load(banner, sample)), _keys_line(sort)]
    if sample is None:
        return Group(*head, Text(""), Text("measuring the first window...", style="dim"))
    ncpus = len(sample.rates.cpus)
    cpu_limit = max(1, min(ncpus, (height - HEADER_LINES) // 3))
    cpu_lines = 2 + min(ncpus, cpu_limit) + (ncpus > cpu_limit)  # blank, header, rows, caption
    room = max(MIN_IRQ_ROWS, height - HEADER_LINES - cpu_lines - 3)  # blank, header, rule
    rows = irq_rows(sample.rates, sample.inventory, sample.latency, sort)[: min(room, top or room)]
    return Group(*head, Text(""), _cpu_table(sample, cpu_limit), Text(""), _irq_table(rows, sort))
