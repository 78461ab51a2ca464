"""Netlink families irqtune needs beyond pyroute2 0.9: ethtool coalesce/channels, netdev napi/queue."""
