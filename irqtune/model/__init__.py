"""Queueing models of an RX queue under coalescing, NAPI deferral, IRQ suspension and busy polling.

Pure arithmetic shared by the agent's decisions (`decide/moderation.py`) and the simulator (`sim/`):
`queue.py` the closed-form queue (coalescing flavours, interrupt cost, budgets), `napi.py` deferral,
suspension and busy polling on top of it, `coalesce.py` the square-root rule and driver flavours.
"""
