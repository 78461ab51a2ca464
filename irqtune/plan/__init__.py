"""The plan: a plain value between decide and act.

`knob_id.py` names every knob irqtune may change (the grammar, no I/O); `change.py` holds `Change` (one knob
change, from proposal to outcome), `Plan` (changes, notes, violations), the `Rules` a plan must keep and
`check`. Decide builds plans, act writes them, the agent and the CLI print them.
"""

from .change import Change, Plan, PlanError, Rules, check, fixes_violation, load_plan
from .knob_id import KNOB_FORMS, KnobError, KnobId, irq_selector, parse_knob_id

__all__ = [
    "KNOB_FORMS",
    "Change",
    "KnobError",
    "KnobId",
    "Plan",
    "PlanError",
    "Rules",
    "check",
    "fixes_violation",
    "irq_selector",
    "load_plan",
    "parse_knob_id",
]
