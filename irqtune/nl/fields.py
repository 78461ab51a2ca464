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
# ETHTOOL_A_RINGS_*: the driver's maxima first, then the sizes in force (ethtool -g / -G)
RINGS_FIELDS: tuple[tuple[str, str], ...] = (
    ("rx_max", "uint32"), ("rx_mini_max", "uint32"), ("rx_jumbo_max", "uint32"), ("tx_max", "uint32"),
    ("rx", "uint32"), ("rx_mini", "uint32"), ("rx_jumbo", "uint32"), ("tx", "uint32"), ("rx_buf_len", "uint32"),
    ("tcp_data_split", "uint8"), ("cqe_size", "uint32"), ("tx_push", "uint8"), ("rx_push", "uint8"),
    ("tx_push_buf_len", "uint32"), ("tx_push_buf_len_max", "uint32"),
)  # fmt: skip
RINGS_SETTABLE = frozenset(("rx", "rx_mini", "rx_jumbo", "tx"))  # each bounded by its *_max
COALESCE_SETTABLE = frozenset(name for name, kind in COALESCE_FIELDS if kind != "none")
CHANNELS_SETTABLE = frozenset(name for name, _ in CHANNELS_FIELDS if name.endswith("_count"))

# ethtool(8)'s names for the coalescing fields (`ethtool -C DEV rx-frames 64`) where they differ from the netlink
# attribute's: accepted in knob ids as aliases of the netlink name, which stays the canonical id
COALESCE_ALIASES: dict[str, str] = {
    "rx_frames": "rx_max_frames", "rx_frames_irq": "rx_max_frames_irq", "tx_frames": "tx_max_frames",
    "tx_frames_irq": "tx_max_frames_irq", "adaptive_rx": "use_adaptive_rx", "adaptive_tx": "use_adaptive_tx",
    "rx_frames_low": "rx_max_frames_low", "tx_frames_low": "tx_max_frames_low", "rx_frames_high": "rx_max_frames_high",
    "tx_frames_high": "tx_max_frames_high", "sample_interval": "rate_sample_interval",
    "cqe_mode_rx": "use_cqe_mode_rx", "cqe_mode_tx": "use_cqe_mode_tx",
}  # fmt: skip
