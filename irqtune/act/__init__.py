"""Act: every change irqtune makes goes through one path (read, journal, write, read back).

`knobs.py` says what can be changed and how; `journal.py` remembers originals
durably; `engine.py` is the single get/save/set/verify path and restore/verify.
"""
