"""napi: NAPI polls per instance, packets per poll, and how often the budget ran out.

Tracepoint `napi:napi_poll(napi, work, budget, dev_name)`. Keyed by the napi
instance; the device name is copied only when an instance is first seen. A poll
with work == budget did not finish: the device had more packets than the budget
(netdev_budget / the driver's weight), which is what softnet's time_squeeze counts
per CPU.
"""

from __future__ import annotations

from .base import ProbeSpec

C_SOURCE = r"""
struct napi_stat { u64 polls; u64 packets; u64 exhausted; u64 budget; char dev[16]; };
BPF_HASH(napi_stats, u64, struct napi_stat, 1024);

TRACEPOINT_PROBE(napi, napi_poll) {
    u64 key = (u64)args->napi;
    struct napi_stat *s = napi_stats.lookup(&key);
    if (!s) {
        struct napi_stat fresh = {};
        TP_DATA_LOC_READ_STR(&fresh.dev, dev_name, sizeof(fresh.dev));
        napi_stats.insert(&key, &fresh);
        s = napi_stats.lookup(&key);
        if (!s)
            return 0;
    }
    __sync_fetch_and_add(&s->polls, 1);
    __sync_fetch_and_add(&s->packets, args->work);
    s->budget = args->budget;
    if (args->work >= args->budget)
        __sync_fetch_and_add(&s->exhausted, 1);
    return 0;
}
"""


def source(ctx: dict) -> str:
    return C_SOURCE


def read(bpf, ctx: dict) -> dict:
    devices: dict[str, dict] = {}
    for s in bpf["napi_stats"].values():
        dev = s.dev.decode(errors="replace") or "(no device)"
        entry = devices.setdefault(dev, {"instances": 0, "polls": 0, "packets": 0, "budget_exhausted": 0})
        entry["instances"] += 1
        entry["polls"] += s.polls
        entry["packets"] += s.packets
        entry["budget_exhausted"] += s.exhausted
        entry["budget"] = s.budget
    return {"devices": devices}


SPEC = ProbeSpec(
    name="napi",
    summary="NAPI polls, packets and budget exhaustion per device",
    tracepoints=("napi:napi_poll",),
    source=source,
    read=read,
)
