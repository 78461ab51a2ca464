"""irqtune: measure and tune Linux interrupt handling."""

__version__ = "0.1.0"
DEFAULT_CONFIG = "/etc/irqtune/irqtune.toml"  # the agent's config, honoured by the one-shot plan and apply too
