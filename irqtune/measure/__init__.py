"""Measure: read the host into plain values (snapshots, topology, inventory, rates)."""
