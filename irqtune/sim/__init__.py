"""Simulated hardware: models of NIC and NVMe queues that answer to tuning (see docs/physics.md §9).

`model.py` holds the closed forms (fast: thousands of settings per second), `events.py`
an independent event simulation of the same mechanism (percentiles, validation).
"""
