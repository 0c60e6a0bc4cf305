"""The network between a local trial's ranks, planned: names, addresses, ip/tc commands, and
what ``tc`` reads back. Pure: no process runs here (:mod:`.network_host` runs them).

Where a campaign sets ``resources.bandwidth`` or ``resources.latency``, every rank of every trial
runs in a network namespace of its own, joined to the trial's other ranks by a veth pair on a
bridge the trial owns. The rank's ``eth0`` carries its gloo traffic (``GLOO_SOCKET_IFNAME``,
``MASTER_ADDR`` = rank 0's address), and its egress is shaped:

- bandwidth: a ``tbf`` qdisc at the rate in bits/s (the ``kubernetes.io/egress-bandwidth``
  unit);
- latency: ``netem delay`` on the same egress where the kernel has netem, its child the ``tbf``;
  where it lacks netem, an NFQUEUE rule on each rank's ingress and the delay line of
  :mod:`.delay_line` (every packet between ranks is delayed once either way).

Every trial of such a campaign gets namespaces, shaped or not, so a "no limit" level differs
from "20M" only by its qdisc, not by loopback against veth. Names derive from the trial (its
results directory, campaign and ID), so a driver that resumes after a crash finds and removes
what the killed one left, and two results directories never share a name.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from trainbed.contract.env import MASTER_ADDR
from trainbed.contract.quantity import bandwidth_bps, latency_s
from trainbed.contract.trial import Resources

#: Every name this module makes starts with it, so ``ip netns`` / ``ip link`` show whose it is.
PREFIX = "tbn"
#: The rank's interface inside its namespace.
DEVICE = "eth0"
#: Each trial's bridge is its own layer-2 segment and gets no address on the host, so every
#: trial can use the same subnet; rank r is .(r + 2) of it.
SUBNET = ipaddress.IPv4Network("10.77.0.0/16")
#: The NFQUEUE number the delay line binds in each rank namespace (queues are per namespace).
DELAY_QUEUE = 0
#: netem's queue, in packets: a 20 ms path at veth speed holds thousands of them.
NETEM_LIMIT = 100_000

DelayMethod = Literal["netem", "nfqueue"]


@dataclass(frozen=True)
class Shaping:
    """What a trial asks of its network: a rate in bits/s and an added one-way delay in s."""

    rate_bps: int | None = None
    delay_s: float | None = None

    @staticmethod
    def of(resources: Resources) -> Shaping:
        rate = bandwidth_bps(resources.bandwidth) if resources.bandwidth is not None else None
        delay = latency_s(resources.latency) if resources.latency is not None else None
        return Shaping(rate, delay or None)  # "0ms" adds nothing

    @property
    def any(self) -> bool:
        return self.rate_bps is not None or self.delay_s is not None


def wants_network(resources: Resources) -> bool:
    """Whether the trial names a network key at all (a "0ms" latency still wants namespaces)."""
    return resources.bandwidth is not None or resources.latency is not None


@dataclass(frozen=True)
class RankLink:
    """One rank's place on the trial's bridge."""

    rank: int
    netns: str
    host_link: str
    address: str


@dataclass(frozen=True)
class NetworkPlan:
    """One trial's namespaces, links and qdiscs, and the commands that make and unmake them."""

    key: str
    bridge: str
    ranks: tuple[RankLink, ...]
    shaping: Shaping
    delay_by: DelayMethod | None

    @property
    def master_addr(self) -> str:
        return self.ranks[0].address

    def rank_env(self) -> dict[str, str]:
        """What every rank's environment adds: rank 0 by address, gloo (and tensorpipe) on eth0."""
        return {
            MASTER_ADDR: self.master_addr,
            "GLOO_SOCKET_IFNAME": DEVICE,
            "TP_SOCKET_IFNAME": DEVICE,
        }

    def setup_commands(self) -> list[list[str]]:
        """Bridge, then per rank: namespace, veth (peer born inside it), address, qdiscs."""
        commands = [
            ["ip", "link", "add", self.bridge, "type", "bridge"],
            ["ip", "link", "set", self.bridge, "up"],
        ]
        for link in self.ranks:
            ns = link.netns
            commands += [
                ["ip", "netns", "add", ns],
                [
                    "ip",
                    "link",
                    "add",
                    link.host_link,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    DEVICE,
                    "netns",
                    ns,
                ],
                ["ip", "link", "set", link.host_link, "master", self.bridge],
                ["ip", "link", "set", link.host_link, "up"],
                [
                    "ip",
                    "-n",
                    ns,
                    "addr",
                    "add",
                    f"{link.address}/{SUBNET.prefixlen}",
                    "dev",
                    DEVICE,
                ],
                ["ip", "-n", ns, "link", "set", DEVICE, "up"],
                ["ip", "-n", ns, "link", "set", "lo", "up"],
                *egress_commands(ns, self.shaping, self.delay_by),
            ]
        return commands

    def delay_rules(self) -> list[list[str]]:
        """The NFQUEUE rules of the delay line, one per rank namespace (after it is bound)."""
        if self.delay_by != "nfqueue" or not self.shaping.delay_s:
            return []
        return [["ip", "netns", "exec", link.netns, *nfqueue_rule("-A")] for link in self.ranks]

    def teardown_commands(self) -> list[list[str]]:
        """Namespaces (their veth ends and qdiscs go with them), stray host links, the bridge.

        Each may find nothing to delete: teardown runs before every setup too, to clear what a
        killed driver left under the same names.
        """
        commands = [["ip", "netns", "del", link.netns] for link in self.ranks]
        commands += [["ip", "link", "del", link.host_link] for link in self.ranks]
        commands.append(["ip", "link", "del", self.bridge])
        return commands


def network_key(results_root: str, campaign: str, trial_id: str) -> str:
    """Seven hex digits naming one trial's network, the same for every attempt of it."""
    return hashlib.sha256(f"{results_root}\0{campaign}\0{trial_id}".encode()).hexdigest()[:7]


def rank_address(rank: int) -> str:
    return str(SUBNET.network_address + rank + 2)


def plan_network(
    key: str, world_size: int, shaping: Shaping, delay_by: DelayMethod | None
) -> NetworkPlan:
    """The plan of one trial. Link names stay within Linux's 15 characters up to rank 9999."""
    assert 1 <= world_size < SUBNET.num_addresses - 3, world_size
    assert delay_by is not None or not shaping.delay_s, "a delay needs a delay method"
    ranks = tuple(
        RankLink(
            rank=r,
            netns=f"{PREFIX}-{key}-r{r}",
            host_link=f"{PREFIX}{key}r{r}",
            address=rank_address(r),
        )
        for r in range(world_size)
    )
    assert all(len(link.host_link) <= 15 for link in ranks)
    return NetworkPlan(key, f"{PREFIX}{key}b", ranks, shaping, delay_by)


def tbf_sizes(rate_bps: int) -> tuple[int, int]:
    """(burst, limit) in bytes for a tbf at ``rate_bps``: 1 ms of tokens (at least 64 KiB, so a
    GSO packet passes whole), and a queue of 100 ms (at least 1 MiB) so TCP is paced by the
    rate, not by drops."""
    rate = rate_bps / 8
    return max(64 * 1024, math.ceil(rate / 1000)), max(1 << 20, math.ceil(rate / 10))


def egress_commands(netns: str, shaping: Shaping, delay_by: DelayMethod | None) -> list[list[str]]:
    """The tc commands that shape one rank's egress (none when nothing is shaped there)."""
    tc = ["tc", "-n", netns, "qdisc", "add", "dev", DEVICE]
    commands: list[list[str]] = []
    tbf_parent = ["root", "handle", "1:"]
    if shaping.delay_s and delay_by == "netem":
        delay_us = round(shaping.delay_s * 1e6)
        commands.append(
            [
                *tc,
                "root",
                "handle",
                "1:",
                "netem",
                "delay",
                f"{delay_us}us",
                "limit",
                str(NETEM_LIMIT),
            ]
        )
        tbf_parent = ["parent", "1:1", "handle", "10:"]
    if shaping.rate_bps is not None:
        burst, limit = tbf_sizes(shaping.rate_bps)
        commands.append(
            [
                *tc,
                *tbf_parent,
                "tbf",
                "rate",
                f"{shaping.rate_bps}bit",
                "burst",
                str(burst),
                "limit",
                str(limit),
            ]
        )
    return commands


def nfqueue_rule(action: str) -> list[str]:
    """The iptables rule that hands every packet arriving on eth0 to the delay line."""
    return [
        "iptables", "-w", "-t", "mangle", action, "PREROUTING", "-i", DEVICE,
        "-j", "NFQUEUE", "--queue-num", str(DELAY_QUEUE),
    ]  # fmt: skip


# --- reading back ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Egress:
    """A rank's egress as ``tc -j qdisc show`` reports it."""

    qdiscs: tuple[str, ...]
    rate_bps: int | None
    burst_bytes: int | None
    delay_s: float | None


def read_egress(tc_json: str) -> Egress:
    """Parse ``tc -j qdisc show dev eth0``: tbf's rate (tc reports bytes/s, so x8) and netem's
    delay (``options.delay.delay``, seconds, in every iproute2 that prints JSON)."""
    rate = burst = None
    delay = None
    kinds = []
    for qdisc in json.loads(tc_json or "[]"):
        kind = qdisc.get("kind", "")
        kinds.append(kind)
        options = qdisc.get("options") or {}
        if kind == "tbf":
            rate = round(float(options["rate"]) * 8)
            burst = int(options.get("burst", 0)) or None
        elif kind == "netem":
            value = options.get("delay", {})
            value = value.get("delay") if isinstance(value, dict) else value
            if value is not None:
                delay = float(value)
    return Egress(tuple(kinds), rate, burst, delay)


def has_delay_rule(iptables_rules: str) -> bool:
    """Whether ``iptables -t mangle -S PREROUTING`` holds the delay line's rule."""
    wanted = f"-i {DEVICE} -j NFQUEUE --queue-num {DELAY_QUEUE}"
    return any(
        line.startswith("-A PREROUTING") and wanted in line for line in iptables_rules.splitlines()
    )


def applied(
    plan: NetworkPlan, egress: dict[int, Egress], delay_line_s: float | None
) -> dict[str, Any]:
    """The ``enforcement.network`` record, from what was read back (never from the spec).

    ``delay_line_s`` is the delay the running delay line reports (nfqueue method only). Raises
    ``ValueError`` when what is in force differs from what the trial asked: better no trial than
    one that claims a shaping it does not have.
    """
    rates = {e.rate_bps for e in egress.values()}
    delays = {e.delay_s for e in egress.values()} if plan.delay_by == "netem" else {delay_line_s}
    if len(rates) != 1 or len(delays) != 1:
        raise ValueError(f"the ranks' egress differs: {egress}")
    (rate,), (delay,) = rates, delays
    want = plan.shaping
    if (rate is None) != (want.rate_bps is None) or (
        rate is not None
        and want.rate_bps
        and abs(rate - want.rate_bps) > max(8, 0.001 * want.rate_bps)  # tc keeps bytes/s
    ):
        raise ValueError(f"tc reads back a rate of {rate} bit/s, not {want.rate_bps}")
    if (delay is None) != (want.delay_s is None) or (
        delay is not None
        and want.delay_s
        and abs(delay - want.delay_s) > 1e-6 + 0.001 * want.delay_s
    ):
        raise ValueError(f"the delay read back is {delay} s, not {want.delay_s}")
    return {
        "mode": "netns",
        "bandwidth_bps": rate,
        "latency_s": delay,
        "bandwidth_enforced_by": "tbf" if rate is not None else None,
        "latency_enforced_by": (
            None if delay is None else "netem" if plan.delay_by == "netem" else "nfqueue-delay-line"
        ),
        "read_back": "tc -j qdisc show"
        + (", iptables -S, the delay line" if plan.delay_by == "nfqueue" and delay else ""),
        "bridge": plan.bridge,
        "ranks": [
            {
                "rank": link.rank,
                "netns": link.netns,
                "device": DEVICE,
                "address": link.address,
                "qdiscs": list(egress[link.rank].qdiscs),
                "burst_bytes": egress[link.rank].burst_bytes,
            }
            for link in plan.ranks
        ],
    }
