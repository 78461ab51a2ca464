"""ethtool netlink attribute tables (no pyroute2 import: knob ids are parsed without it)."""

# (name, type) in attribute-number order starting at 2 (1 is the header)
COALESCE_FIELDS: tuple[tuple[str, str], ...] = (
    ("rx_usecs", "uint32"), ("rx_max_frames", "uint32"), ("rx_usecs_irq", "uint32"),
    ("rx_max_frames_irq", "uint32"), ("tx_usecs", "uint32"), ("tx_max_frames", "uint32"),
    ("tx_usecs_irq", "uint32"), ("tx_max_frames_irq", "uint32"), ("stats_block_usecs", "uint32"),
    ("use_adaptive_rx", "uint8"), ("use_adaptive_tx", "uint8"), ("pkt_rate_low", "uint32"),
    ("rx_usecs_low", "uint32"), ("rx_max_frames_low", "uint32"), ("tx_usecs_low", "uint32"),
    ("tx_max_frames_low", "uint32"), ("pkt_rate_high", "uint32"), ("rx_usecs_high", "uint32"),
    ("rx_max_frames_high", "uint32"), ("tx_usecs_high", "uint32"), ("tx_max_frames_high", "uint32"),
    ("rate_sample_interval", "uint32"), ("use_cqe_mode_tx", "uint8"), ("use_cqe_mode_rx", "uint8"),
    ("tx_aggr_max_bytes", "uint32"), ("tx_aggr_max_frames", "uint32"), ("tx_aggr_time_usecs", "uint32"),
    ("rx_profile", "none"), ("tx_profile", "none"),
)  # fmt: skip
CHANNELS_FIELDS: tuple[tuple[str, str], ...] = tuple(
    (f"{kind}_{what}", "uint32") for what in ("max", "count") for kind in ("rx", "tx", "other", "combined")
)
COALESCE_SETTABLE = frozenset(name for name, kind in COALESCE_FIELDS if kind != "none")
CHANNELS_SETTABLE = frozenset(name for name, _ in CHANNELS_FIELDS if name.endswith("_count"))
