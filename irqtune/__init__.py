"""irqtune: measure and tune Linux interrupt handling."""

__version__ = "0.1.0"
