"""Decide: turn measurements into a plan (a plain value); no I/O here."""
