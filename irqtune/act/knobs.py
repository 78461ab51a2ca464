"""Knobs: everything irqtune may change, each named by a stable id and read, validated and
written one way. Values travel as canonical strings (what the journal stores).

    irq/N/affinity              /proc/irq/N/smp_affinity_list        CPU list, e.g. 0-3,8
    irq/default/affinity        /proc/irq/default_smp_affinity       CPU list (written as a mask)
    sysctl/net.core.NAME        /proc/sys/net/core/NAME              integer (allow-listed names)
    sysctl/vm.NAME              /proc/sys/vm/NAME                    min_free_kbytes, watermark_scale_factor
    net/DEV/gro-flush-timeout   /sys/class/net/DEV/gro_flush_timeout     ns, 0 = off
    net/DEV/napi-defer-hard-irqs /sys/class/net/DEV/napi_defer_hard_irqs  count, 0 = off
    net/DEV/threaded            /sys/class/net/DEV/threaded          0 or 1 (threaded NAPI)
    net/DEV/rx-Q/rps-cpus       /sys/class/net/DEV/queues/rx-Q/rps_cpus  CPU list (mask)
    net/DEV/tx-Q/xps-cpus       /sys/class/net/DEV/queues/tx-Q/xps_cpus  CPU list (mask)
    net/DEV/coalesce/FIELD      ethtool netlink COALESCE (rx-usecs, rx-max-frames, use-adaptive-rx, ...)
    net/DEV/channels/KIND       ethtool netlink CHANNELS count (rx, tx, other, combined)
    net/DEV/rings/KIND          ethtool netlink RINGS size (rx, tx, rx-jumbo, rx-mini), at most the driver's max
    net/DEV/rss/indir           RSS indirection table, one RX queue per entry (`0,1,2,3,...` or `equal N`): each
                                entry below the RX queues in use; RSS_SET (6.17+), else the ioctl ETHTOOL_SRSSH
    net/DEV/rss/hkey            RSS hash key, hex bytes (`6d:5a:...`), the driver's key length
    napi/DEV/ID/SETTING         netdev netlink napi-set (6.13+): defer-hard-irqs, gro-flush-timeout,
                                irq-suspend-timeout (ns), threaded (0/1), per NAPI instance

Netlink knobs act on the running kernel's current network namespace (run irqtune
under `ip netns exec NS` for a namespace); only attributes the driver reports exist.

Managed IRQs (the kernel owns their affinity) are refused before any write when
known; a write the kernel refuses with EIO (before 6.12) or EPERM marks them managed.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field

from ..host import Host, NoNetlink, PathEscape
from ..nl.errors import NetlinkRequestError
from ..parse.common import CpuListError, describe, format_cpulist, parse_count, parse_cpulist, parse_cpumask
from ..plan.knob_id import NETDEV_FILES, KnobError, parse_knob_id

NO_XPS_MAP = "this queue has no XPS map (the kernel answers ENOENT: XPS needs a multiqueue device)"
log = logging.getLogger(__name__)
HOST_WIDE = ("IRQ affinity is host-wide: this irqtune runs in a network namespace that is not the host's (ip netns "
             "exec?), yet the change would move the interrupt for every namespace; pass --allow-host-wide to make "
             "it anyway")  # fmt: skip


class Unsupported(RuntimeError):
    """The knob does not exist on this host or kernel (no such IRQ, device or file)."""


@dataclass
class Knob:
    """One tunable file below the host's /proc or /sys."""

    id: str
    host: Host
    tree: str
    parts: tuple[str, ...]
    managed: str = "no"  # affinity knobs: yes / no / unknown (see inventory.managed_state)
    meta: dict = field(default_factory=dict)

    @property
    def path(self) -> str:
        try:
            return self.host.path(self.tree, *self.parts)
        except PathEscape as err:
            raise KnobError(str(err)) from None

    def read(self) -> str:
        return self.reading()[0]

    def reading(self) -> tuple[str, str | None]:
        """(canonical value, the file's own text) read once; the text is None for knobs that are not files."""
        try:
            raw = self.host.read_at(self.tree, *self.parts).decode("utf-8", "replace").strip()
        except PathEscape as err:  # the file became a link that leads outside the tree
            raise Unsupported(f"{self.id}: {err}") from None
        except FileNotFoundError:
            raise Unsupported(self._absent()) from None
        except OSError as err:  # not a directory (bonding_masters), a device going away, EINVAL from a driver
            raise Unsupported(f"{self.id}: cannot read /{self.tree}/{'/'.join(self.parts)}: {err.strerror}") from None
        return self.canonical(raw), raw

    def _absent(self) -> str:
        """Why ENOENT: no such file, or a file whose read the kernel answers with ENOENT (no XPS map)."""
        where = f"/{self.tree}/{'/'.join(self.parts)}"
        if not self.host.exists_at(self.tree, *self.parts):
            return f"{self.id}: {where} does not exist here"
        return f"{self.id}: {self.meta.get('enoent') or f'the kernel answers ENOENT reading {where}: nothing set'}"

    def write(self, value: str) -> None:
        try:
            self.host.write(self.path, self.rendered(value))
        except PathEscape as err:  # swapped for a link that leads outside since it was read: refused, not followed
            raise OSError(errno.EXDEV, str(err)) from None

    def canonical(self, raw: str) -> str:
        """The file's text as the canonical value."""
        return raw

    def rendered(self, value: str) -> str:
        """A canonical value as the file wants it written."""
        return value

    def normalize(self, value: str) -> str:
        """Validate a wanted value; return it canonical. Raises KnobError."""
        return value

    def classify(self, err: OSError) -> tuple[str, str]:
        """(outcome, message) for a refused write."""
        if err.errno == errno.EXDEV:
            return "refused", err.strerror
        if err.errno in (errno.EOPNOTSUPP, errno.ENOENT, errno.ENODEV):
            return "unsupported", f"not supported here ({err.strerror})"
        if err.errno in (errno.EBUSY, errno.EAGAIN):
            return "transient", f"kernel busy ({err.strerror}); try again"
        return "refused", f"kernel refused the write: {err.strerror}"


class IntKnob(Knob):
    def canonical(self, raw: str) -> str:
        return raw.split()[0] if raw else raw

    def normalize(self, value: str) -> str:
        low, high = self.meta["range"]
        number = _whole(self.id, value, f" {low}..{high}")
        if not low <= number <= high:
            raise KnobError(f"{self.id}: {number} is outside {low}..{high}")
        return str(number)


class CpuListKnob(Knob):
    """Values are CPU lists; the file may hold a list or a hex mask (`meta['mask']`)."""

    def canonical(self, raw: str) -> str:
        try:
            return format_cpulist(parse_cpumask(raw) if self.meta.get("mask") else parse_cpulist(raw))
        except CpuListError as err:
            raise Unsupported(f"{self.id}: unreadable value {describe(raw)}: {err}") from None

    def rendered(self, value: str) -> str:
        if not self.meta.get("mask"):
            return value
        bits = sum(1 << cpu for cpu in parse_cpulist(value))
        text = f"{bits:x}"
        groups = [text[max(0, i - 8) : i] for i in range(len(text), 0, -8)][::-1]
        return ",".join(groups)

    def normalize(self, value: str) -> str:
        if self.meta.get("host_wide") and not self.meta.get("allow_host_wide") and self.host.foreign_netns():
            raise KnobError(f"{self.id}: {HOST_WIDE}")
        try:
            cpus = parse_cpulist(value)
        except CpuListError as err:
            raise KnobError(f"{self.id}: {err}") from None
        online = self.meta.get("online") or []
        if self.meta.get("allow_empty") and not cpus:
            return ""
        if not cpus:
            raise KnobError(f"{self.id}: expected at least one CPU, got {value!r}")
        missing = [cpu for cpu in cpus if online and cpu not in online]
        if missing:
            raise KnobError(
                f"{self.id}: CPU {format_cpulist(missing)} is not online (online: {format_cpulist(online)})"
            )
        isolated = [cpu for cpu in cpus if cpu in self.meta.get("isolated", ())]
        if isolated and not self.meta.get("allow_isolated"):
            raise KnobError(
                f"{self.id}: CPU {format_cpulist(isolated)} is isolated (isolcpus/nohz_full); "
                "pass --allow-isolated to place interrupts there anyway"
            )
        return format_cpulist(cpus)


class IrqAffinityKnob(CpuListKnob):
    def classify(self, err: OSError) -> tuple[str, str]:
        if err.errno in (errno.EIO, errno.EPERM):
            return "managed", f"the kernel manages this IRQ's affinity ({errno.errorcode[err.errno]}); left as it is"
        if err.errno == errno.ENOSPC:
            return "refused", "no free interrupt vectors on those CPUs (ENOSPC); choose other CPUs"
        if err.errno == errno.EINVAL:
            return "refused", "the kernel refused that CPU set for this IRQ (EINVAL: offline CPUs or a fixed chip)"
        return super().classify(err)


class EthtoolKnob(Knob):
    """One ethtool netlink attribute: `meta['kind']` coalesce, channels or rings, `meta['field']` its name."""

    def _client(self):
        """The host's ethtool netlink (the running kernel's, or a simulated driver's: same methods)."""
        try:
            return self.host.ethtool()
        except NoNetlink as err:
            raise Unsupported(f"{self.id}: {err}") from None

    @staticmethod
    def errors() -> tuple[type[Exception], ...]:
        return (NetlinkRequestError,)

    def reading(self) -> tuple[str, str | None]:
        return self.read(), None

    def read(self) -> str:
        kind, field_name, dev = self.meta["kind"], self.meta["field"], self.parts[2]
        with self._client() as client:
            try:
                values = getattr(client, f"get_{kind}")(dev)
            except self.errors() as err:
                raise Unsupported(f"{self.id}: {err}") from None
        if field_name not in values:
            raise Unsupported(f"{self.id}: driver of {dev} does not report {kind} {field_name}")
        return str(values[field_name])

    def write(self, value: str) -> None:
        kind, field_name, dev = self.meta["kind"], self.meta["field"], self.parts[2]
        with self._client() as client:
            try:
                getattr(client, f"set_{kind}")(dev, {field_name: int(value)})
            except self.errors() as err:
                raise OSError(err.errno, str(err)) from None

    def normalize(self, value: str) -> str:
        number = _whole(self.id, value)
        if number >= 1 << 32 or (self.meta["field"].startswith("use_") and number > 1):
            raise KnobError(f"{self.id}: {number} is out of range")
        if self.meta["kind"] in ("channels", "rings"):
            limit = self._limit()
            if limit is not None and number > limit:
                raise KnobError(f"{self.id}: {number} is above the driver's maximum of {limit}")
        return str(number)

    def _limit(self) -> int | None:
        """The driver's reported maximum for this channel kind or ring (None when it cannot be read): a value above
        it is refused before any write, with the maximum in the message."""
        kind, field_name = self.meta["kind"], self.meta["field"]
        try:
            with self._client() as client:
                values = getattr(client, f"get_{kind}")(self.parts[2])
        except (*self.errors(), Unsupported, OSError):
            return None
        return values.get(field_name.replace("_count", "_max") if kind == "channels" else f"{field_name}_max")

    def classify(self, err: OSError) -> tuple[str, str]:
        if err.errno == errno.EOPNOTSUPP:
            return "unsupported", str(err)
        if err.errno in (errno.EINVAL, errno.ERANGE):
            return "refused", str(err)
        return super().classify(err)


class RssKnob(EthtoolKnob):
    """The RSS indirection table (`meta['field']` indir) or hash key (hkey) of DEV, written whole: the table at
    the driver's size with every entry below the number of RX queues (the kernel's ethtool_check_max_channel
    refuses others too, less clearly), the key at the driver's length. `meta['note']` says how it was written."""

    def _rss(self) -> dict:
        with self._client() as client:
            try:
                return client.get_rss(self.parts[2])
            except self.errors() as err:
                raise Unsupported(f"{self.id}: {err}") from None

    def read(self) -> str:
        rss, field_name = self._rss(), self.meta["field"]
        if not rss.get(field_name):
            raise Unsupported(f"{self.id}: driver of {self.parts[2]} does not report an RSS {field_name}")
        return format_indir(rss["indir"]) if field_name == "indir" else format_hkey(rss["hkey"])

    def write(self, value: str) -> None:
        field_name, dev = self.meta["field"], self.parts[2]
        if field_name == "indir":
            wanted: dict = {"indir": parse_indir(value)}
        else:
            wanted = {"hkey": bytes.fromhex(value.replace(":", ""))}
        with self._client() as client:
            try:
                self.meta["note"] = client.set_rss(dev, **wanted)
            except self.errors() as err:
                raise OSError(err.errno, str(err)) from None
        log.info("%s: %s", self.id, self.meta["note"])

    def normalize(self, value: str) -> str:
        try:
            current = self.read()
        except Unsupported as err:
            raise KnobError(str(err)) from None
        if self.meta["field"] == "hkey":
            return self._key(value, len(current.split(":")))
        size = len(current.split(","))
        entries = self._entries(value, size)
        queues = self._rx_queues()
        above = sorted({q for q in entries if queues is not None and q >= queues})
        if above:
            raise KnobError(f"{self.id}: queue {', '.join(map(str, above))} does not exist: {self.parts[2]} has "
                            f"{queues} RX queue{'s' if queues != 1 else ''} (entries 0..{queues - 1})")  # fmt: skip
        return format_indir(entries)

    def _entries(self, value: str, size: int) -> list[int]:
        words = value.replace(",", " ").split()
        if len(words) == 2 and words[0] == "equal":
            count = _whole(self.id, words[1])
            if count < 1:
                raise KnobError(f"{self.id}: equal needs at least 1 queue")
            return [i % count for i in range(size)]
        if len(words) != size:
            raise KnobError(f"{self.id}: the table has {size} entries, got {len(words)} (or write `equal N`)")
        return [_whole(self.id, word) for word in words]

    def _key(self, value: str, size: int) -> str:
        text = value.strip().replace(":", "").lower()
        if len(text) != size * 2 or any(c not in "0123456789abcdef" for c in text):
            raise KnobError(f"{self.id}: expected a {size}-byte key in hex (xx:xx:...), got {describe(value)}")
        return format_hkey(text)

    def _rx_queues(self) -> int | None:
        """RX queues in use: the channels (rx + combined), else the device's rx-N queue directories."""
        try:
            with self._client() as client:
                channels = client.get_channels(self.parts[2])
        except (*self.errors(), Unsupported, OSError):
            channels = {}
        count = channels.get("rx_count", 0) + channels.get("combined_count", 0)
        if count:
            return count
        queues = [q for q in self.host.entries(self.host.sys("class", "net", self.parts[2], "queues"))
                  if q.startswith("rx-")]  # fmt: skip
        return len(queues) or None


def format_indir(entries: list[int]) -> str:
    return ",".join(str(int(q)) for q in entries)


def parse_indir(value: str) -> list[int]:
    return [int(q) for q in value.split(",")]


def format_hkey(hexed: str) -> str:
    """A key as ethtool -x prints it: lowercase hex bytes joined by ':'."""
    text = hexed.replace(":", "").lower()
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


def netdev_client(host: Host, knob_id: str):
    """The host's netdev netlink (the running kernel's, or a simulated kernel's: same methods)."""
    try:
        return host.netdev()
    except NoNetlink as err:
        raise Unsupported(f"{knob_id}: {err}") from None


class NapiKnob(Knob):
    """One setting of one NAPI instance over netdev netlink; the instance must belong to DEV."""

    def _client(self):
        return netdev_client(self.host, self.id)

    @staticmethod
    def errors() -> tuple[type[Exception], ...]:
        return (NetlinkRequestError,)

    def _values(self) -> dict[str, int]:
        ifindex = self.host.text("sys", "class", "net", self.meta["dev"], "ifindex")
        if ifindex is None:
            raise Unsupported(f"{self.id}: no device {self.meta['dev']}")
        with self._client() as client:
            try:
                values = client.napi(self.meta["napi"])
            except self.errors() as err:
                raise Unsupported(f"{self.id}: {err}") from None
        if str(values.get("ifindex")) != ifindex.strip():
            raise Unsupported(f"{self.id}: NAPI {self.meta['napi']} does not belong to {self.meta['dev']}")
        return values

    def reading(self) -> tuple[str, str | None]:
        return self.read(), None

    def read(self) -> str:
        values = self._values()
        if self.meta["field"] not in values:
            raise Unsupported(f"{self.id}: this kernel does not report {self.meta['field']} per NAPI")
        return str(values[self.meta["field"]])

    def write(self, value: str) -> None:
        with self._client() as client:
            try:
                client.set_napi(self.meta["napi"], {self.meta["field"]: int(value)})
            except self.errors() as err:
                raise OSError(err.errno, str(err)) from None

    def normalize(self, value: str) -> str:
        number = _whole(self.id, value)
        high = {"threaded": 1, "defer_hard_irqs": (1 << 31) - 1}.get(self.meta["field"], (1 << 64) - 1)
        if number > high:
            raise KnobError(f"{self.id}: {number} is outside 0..{high}")
        return str(number)

    def classify(self, err: OSError) -> tuple[str, str]:
        if err.errno in (errno.EOPNOTSUPP, errno.ENOENT):
            return "unsupported", str(err)
        return super().classify(err)


def _whole(knob_id: str, value: str, bounds: str = "") -> int:
    """A wanted value as a number: ASCII digits, at most 2**64-1 (int() of thousands of digits raises)."""
    number = parse_count(value.strip())
    if number is None:
        raise KnobError(f"{knob_id}: expected a whole number{bounds}, got {describe(value)}")
    return number


def make_knob(host: Host, knob_id: str, topology=None, allow_isolated: bool = False,
              allow_host_wide: bool = False) -> Knob:  # fmt: skip
    """The knob a stable id names, under its canonical id. Raises KnobError for ids irqtune does not know.
    allow_host_wide: IRQ affinity may change from a network namespace other than the host's (HOST_WIDE)."""
    kid = parse_knob_id(knob_id)
    cpu_meta = {"online": list(topology.online) if topology else [], "allow_isolated": allow_isolated}
    if topology:
        cpu_meta["isolated"] = sorted(topology.isolated_any)
    cid = kid.canonical
    irq_meta = {**cpu_meta, "host_wide": True, "allow_host_wide": allow_host_wide}
    if kid.kind == "default-affinity":
        return CpuListKnob(cid, host, "proc", ("irq", "default_smp_affinity"), meta={**irq_meta, "mask": True})
    if kid.kind == "irq-affinity":
        return IrqAffinityKnob(cid, host, "proc", ("irq", str(kid.irq), "smp_affinity_list"), meta=irq_meta)
    if kid.kind == "sysctl":
        return IntKnob(cid, host, "proc", kid.sysctl_path, meta={"range": kid.sysctl_range})
    if kid.kind == "netdev":
        file, low, high = NETDEV_FILES[kid.name]
        return IntKnob(cid, host, "sys", ("class", "net", kid.device, file), meta={"range": (low, high)})
    if kid.kind == "queue-mask":
        file = "rps_cpus" if kid.name.startswith("rx") else "xps_cpus"
        enoent = {"enoent": NO_XPS_MAP} if file == "xps_cpus" else {}
        return CpuListKnob(cid, host, "sys", ("class", "net", kid.device, "queues", kid.name, file),
                           meta={**cpu_meta, "mask": True, "allow_empty": True, **enoent})  # fmt: skip
    if kid.kind == "rss":
        return RssKnob(cid, host, "sys", ("class", "net", kid.device), meta={"kind": "rss", "field": kid.name})
    if kid.kind in ("coalesce", "channels", "rings"):
        return EthtoolKnob(cid, host, "sys", ("class", "net", kid.device), meta={"kind": kid.kind, "field": kid.name})
    meta = {"dev": kid.device, "napi": kid.number, "field": kid.name.replace("-", "_")}
    return NapiKnob(cid, host, "sys", ("class", "net", kid.device), meta=meta)
