"""`irqtune top`: a live view of the busiest IRQs, per-CPU interrupt load and handler latency.

`model` turns rates, the inventory and probe data into sorted rows (pure); `render`
draws them with rich or as plain lines; `sample` does the reading; `loop` refreshes.
"""
