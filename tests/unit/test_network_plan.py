"""The pure half of local network shaping: names, addresses, tc commands and the read-back.

Table-driven, no processes. The JSON read-back cases are ``tc -j qdisc show`` as iproute2 prints
it (the tbf line captured on this machine; netem's layout from iproute2's q_netem.c, which this
machine's kernel cannot show: it has no sch_netem).
"""

from __future__ import annotations

import json

import pytest

from trainbed.contract.trial import Resources
from trainbed.orchestrator.local.network import (
    DEVICE,
    Egress,
    Shaping,
    applied,
    egress_commands,
    has_delay_rule,
    network_key,
    plan_network,
    read_egress,
    tbf_sizes,
    wants_network,
)


@pytest.mark.parametrize(
    ("resources", "shaping", "wants"),
    [
        ({}, Shaping(None, None), False),
        ({"bandwidth": "20M"}, Shaping(20_000_000, None), True),
        ({"bandwidth": "1.5G"}, Shaping(1_500_000_000, None), True),
        ({"bandwidth": 1000}, Shaping(1000, None), True),
        ({"bandwidth": "1Mi"}, Shaping(1_048_576, None), True),
        ({"latency": "20ms"}, Shaping(None, 0.02), True),
        ({"latency": "250us", "bandwidth": "10M"}, Shaping(10_000_000, 0.00025), True),
        # "0ms" adds no delay, but still asks for namespaces (a level compared with 20ms)
        ({"latency": "0ms"}, Shaping(None, None), True),
    ],
)
def test_shaping_of_resources(resources: dict, shaping: Shaping, wants: bool) -> None:
    parsed = Resources(**resources)
    assert Shaping.of(parsed) == shaping
    assert wants_network(parsed) is wants


def test_names_are_deterministic_short_and_distinct() -> None:
    key = network_key("/results", "net", "t0123456789")
    assert key == network_key("/results", "net", "t0123456789")
    others = {
        network_key("/other", "net", "t0123456789"),
        network_key("/results", "net2", "t0123456789"),
        network_key("/results", "net", "t0123456780"),
    }
    assert key not in others and len(others) == 3
    plan = plan_network(key, 1024, Shaping(20_000_000, None), None)
    links = [link.host_link for link in plan.ranks] + [plan.bridge]
    assert all(len(name) <= 15 for name in links), "Linux interface names: 15 characters"
    assert len(set(links)) == len(links)
    assert len({link.netns for link in plan.ranks}) == 1024
    assert len({link.address for link in plan.ranks}) == 1024
    assert [link.address for link in plan.ranks[:3]] == ["10.77.0.2", "10.77.0.3", "10.77.0.4"]
    assert plan.ranks[1023].address == "10.77.4.1"
    assert all(name.startswith("tbn") for name in links)


def test_rank_env_points_gloo_at_rank_zero_over_eth0() -> None:
    plan = plan_network("abcdef0", 3, Shaping(None, None), None)
    assert plan.rank_env() == {
        "MASTER_ADDR": "10.77.0.2",
        "GLOO_SOCKET_IFNAME": DEVICE,
        "TP_SOCKET_IFNAME": DEVICE,
    }


TC = ["tc", "-n", "ns", "qdisc", "add", "dev", "eth0"]
TBF_20M_ROOT = [*TC, "root", "handle", "1:", "tbf", "rate", "20000000bit"]
TBF_20M_ROOT += ["burst", "65536", "limit", "1048576"]
TBF_1G_CHILD = [*TC, "parent", "1:1", "handle", "10:", "tbf", "rate", "1000000000bit"]
TBF_1G_CHILD += ["burst", "125000", "limit", "12500000"]


@pytest.mark.parametrize(
    ("shaping", "method", "commands"),
    [
        (Shaping(None, None), None, []),
        (
            Shaping(20_000_000, None),
            None,
            [TBF_20M_ROOT],
        ),
        (
            Shaping(None, 0.02),
            "netem",
            [[*TC, "root", "handle", "1:", "netem", "delay", "20000us", "limit", "100000"]],
        ),
        (
            Shaping(1_000_000_000, 0.005),
            "netem",
            [
                [*TC, "root", "handle", "1:", "netem", "delay", "5000us", "limit", "100000"],
                TBF_1G_CHILD,
            ],
        ),
        # the delay line delays on ingress: the egress keeps only the rate limiter
        (
            Shaping(20_000_000, 0.02),
            "nfqueue",
            [TBF_20M_ROOT],
        ),
        (Shaping(None, 0.02), "nfqueue", []),
    ],
)  # fmt: skip
def test_egress_commands(shaping: Shaping, method: str | None, commands: list) -> None:
    assert egress_commands("ns", shaping, method) == commands  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "burst", "limit"),
    [
        (1000, 65536, 1 << 20),
        (20_000_000, 65536, 1 << 20),
        (1_000_000_000, 125_000, 12_500_000),
        (10**15, 125_000_000_000, 12_500_000_000_000),
    ],
)
def test_tbf_sizes(rate: int, burst: int, limit: int) -> None:
    assert tbf_sizes(rate) == (burst, limit)


def test_setup_and_teardown_cover_every_rank() -> None:
    plan = plan_network("abcdef0", 2, Shaping(20_000_000, 0.01), "nfqueue")
    setup = plan.setup_commands()
    assert setup[0] == ["ip", "link", "add", "tbnabcdef0b", "type", "bridge"]
    for link in plan.ranks:
        assert ["ip", "netns", "add", link.netns] in setup
        veth = ["ip", "link", "add", link.host_link, "type", "veth", "peer", "name", DEVICE]
        assert [*veth, "netns", link.netns] in setup
        assert ["ip", "link", "set", link.host_link, "master", plan.bridge] in setup
        assert ["ip", "netns", "del", link.netns] in plan.teardown_commands()
    assert plan.teardown_commands()[-1] == ["ip", "link", "del", plan.bridge]
    rules = plan.delay_rules()
    assert [r[:4] for r in rules] == [["ip", "netns", "exec", link.netns] for link in plan.ranks]
    assert all("NFQUEUE" in r and "PREROUTING" in r for r in rules)
    assert plan_network("abcdef0", 2, Shaping(20_000_000, 0.01), "netem").delay_rules() == []


TBF = {"kind": "tbf", "handle": "1:", "root": True, "refcnt": 3}
TBF_20M = [{**TBF, "options": {"rate": 2500000, "burst": 65535, "lat": 393216}}]
NETEM = {"kind": "netem", "handle": "1:", "root": True, "refcnt": 2}
NETEM_20MS = {
    **NETEM,
    "options": {
        "limit": 100000,
        "delay": {"delay": 0.02, "jitter": 0, "correlation": 0},
        "ecn": False,
        "gap": 0,
    },
}
TBF_CHILD = {"kind": "tbf", "handle": "10:", "parent": "1:1", "options": {"rate": 125000000}}


@pytest.mark.parametrize(
    ("qdiscs", "egress"),
    [
        ([{"kind": "noqueue", "root": True}], Egress(("noqueue",), None, None, None)),
        (TBF_20M, Egress(("tbf",), 20_000_000, 65535, None)),
        ([NETEM_20MS], Egress(("netem",), None, None, 0.02)),
        ([NETEM_20MS, TBF_CHILD], Egress(("netem", "tbf"), 1_000_000_000, None, 0.02)),
    ],
)  # fmt: skip
def test_read_egress(qdiscs: list, egress: Egress) -> None:
    assert read_egress(json.dumps(qdiscs)) == egress


def test_applied_records_what_was_read_back_and_refuses_a_mismatch() -> None:
    plan = plan_network("abcdef0", 2, Shaping(20_000_000, 0.02), "netem")
    good = read_egress(json.dumps([NETEM_20MS, {**TBF_CHILD, "options": {"rate": 2500000}}]))
    record = applied(plan, {0: good, 1: good}, None)
    assert record["bandwidth_bps"] == 20_000_000 and record["latency_s"] == 0.02
    assert record["latency_enforced_by"] == "netem" and record["bandwidth_enforced_by"] == "tbf"
    assert [r["netns"] for r in record["ranks"]] == [link.netns for link in plan.ranks]
    assert record["ranks"][0]["qdiscs"] == ["netem", "tbf"]
    unshaped = read_egress("[]")
    with pytest.raises(ValueError, match="differs"):
        applied(plan, {0: good, 1: unshaped}, None)
    with pytest.raises(ValueError, match="rate"):
        applied(plan, {0: unshaped, 1: unshaped}, None)
    slow = read_egress(json.dumps([NETEM_20MS, {**TBF_CHILD, "options": {"rate": 1250000}}]))
    with pytest.raises(ValueError, match="10000000"):
        applied(plan, {0: slow, 1: slow}, None)
    # the delay line's method: the delay is the running line's, the rate tc's
    plan = plan_network("abcdef0", 2, Shaping(20_000_000, 0.02), "nfqueue")
    tbf = read_egress(json.dumps(TBF_20M))
    assert applied(plan, {0: tbf, 1: tbf}, 0.02)["latency_enforced_by"] == "nfqueue-delay-line"
    with pytest.raises(ValueError, match="delay"):
        applied(plan, {0: tbf, 1: tbf}, None)


@pytest.mark.parametrize(
    ("listing", "found"),
    [
        ("-P PREROUTING ACCEPT\n-A PREROUTING -i eth0 -j NFQUEUE --queue-num 0\n", True),
        ("-P PREROUTING ACCEPT\n", False),
        ("-A PREROUTING -i eth1 -j NFQUEUE --queue-num 0\n", False),
        ("-A PREROUTING -i eth0 -j NFQUEUE --queue-num 1\n", False),
    ],
)
def test_has_delay_rule(listing: str, found: bool) -> None:
    assert has_delay_rule(listing) is found
