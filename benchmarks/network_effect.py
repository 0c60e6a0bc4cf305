"""Does the network limit bite? 2-rank DDP at ``resources.bandwidth: 20M`` against no limit.

Three measurements, all through trainbed's own network shaping (a namespace per rank, veth on a
bridge, tbf; netem or the delay line for latency):

1. **latency**: TCP round trips (1-byte ping-pong, median of ``--pings``) from rank 0's namespace
   to the host side of the bridge and to rank 1, with ``latency: 20ms`` against ``0ms``,
   alternated ``--repeats`` times. One direction of the rank-host path crosses the added one-way
   delay, so it should add 20 ms; rank to rank crosses it both ways (40 ms).
2. **all-reduce rate**: two gloo ranks in their namespaces all-reduce a float32 tensor of
   ``--payload-mb`` MB at ``--rate``; the achieved bus rate (payload x 8 x 2(n-1)/n / time,
   median) should be within 15% of the set rate.
3. **DDP step time**: a campaign (one factor, ``resources.bandwidth`` at ``--rate`` and null, full
   design, ``--repeats`` replicates, not randomised, so the runs alternate) of 2-rank DDP
   training FashionMNISTResNet (4.9 M parameters, 19.6 MB of gradients a step) on digits (a
   tenth of it, three steps of 30 a rank), run with ``trainbed run``. The median ``step_s``
   (iterations after the first) limited over unlimited is the ratio printed last (target >= 3)::

       network_effect ratio: X

Needs root, ``ip`` and ``tc``. Run: ``.venv/bin/python benchmarks/network_effect.py
[--repeats 3] [--rate 20M] [--payload-mb 2.5] [--pings 30]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.campaigns import run_campaign, succeeded_trials  # noqa: E402
from trainbed.contract.env import API_VERSION  # noqa: E402
from trainbed.contract.quantity import bandwidth_bps
from trainbed.contract.trial import Resources, TrialSpec, Workload
from trainbed.orchestrator.local.network_host import (
    HostNetwork,
    NetworkUnavailable,
    probe,
    trial_network,
)

NAME = "network-effect"
PORT = 29555
#: The host side of a trial's bridge during the latency measurement (its subnet's last address).
HOST_ADDRESS = "10.77.255.254"


def _trial(trial_id: str, **resources: str) -> TrialSpec:
    return TrialSpec(
        campaign=NAME,
        trial_id=trial_id,
        seed=0,
        workload=Workload(parallelism=2),
        resources=Resources(**resources),
    )


# --- 1. latency ------------------------------------------------------------------------------


def _echo_server(address: str, port: int, ready: threading.Event) -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        server.listen(1)
        ready.set()
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(64):
                conn.sendall(data)


def rtt_client(host: str, port: int, count: int) -> None:
    """(Run inside a namespace.) Print the median TCP round trip in seconds."""
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rtts = []
        for _ in range(count + 3):
            start = time.perf_counter()
            conn.sendall(b"x")
            conn.recv(64)
            rtts.append(time.perf_counter() - start)
    print(statistics.median(rtts[3:]))  # the first few warm the path up


def _in_ns(netns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, __file__, *args]


def _rtts(network: HostNetwork, root: Path, trial_id: str, latency: str, pings: int) -> tuple:
    """(rank 0 <-> host, rank 0 <-> rank 1) median round trips in one network."""
    with trial_network(network, root, _trial(trial_id, latency=latency)) as (plan, record):
        subprocess.run(["ip", "addr", "add", f"{HOST_ADDRESS}/16", "dev", plan.bridge], check=True)
        ready = threading.Event()
        server = threading.Thread(
            target=_echo_server, args=(HOST_ADDRESS, PORT, ready), daemon=True
        )
        server.start()
        ready.wait(10)
        client = _in_ns(plan.ranks[0].netns, "rtt-client", HOST_ADDRESS, str(PORT), str(pings))
        to_host = float(subprocess.run(client, capture_output=True, text=True, check=True).stdout)
        echo = subprocess.Popen(_in_ns(plan.ranks[1].netns, "echo-server", str(PORT + 1)))
        try:
            peer = plan.ranks[1].address
            client = _in_ns(plan.ranks[0].netns, "rtt-client", peer, str(PORT + 1), str(pings))
            out = subprocess.run(client, capture_output=True, text=True, check=True).stdout
            to_peer = float(out)
        finally:
            echo.wait(30)
        server.join(10)
        return to_host, to_peer, record["latency_s"], record["latency_enforced_by"]


def echo_server(port: int) -> None:
    """(Run inside a namespace.) Echo one connection."""
    _echo_server("0.0.0.0", port, threading.Event())  # noqa: S104 - inside the trial's netns


# --- 2. all-reduce rate ----------------------------------------------------------------------


def allreduce_rank(rank: int, addr: str, port: int, nbytes: int, repeats: int) -> None:
    """(Run inside rank's namespace.) Time all-reduces of ``nbytes``; rank 0 prints them."""
    os.environ["GLOO_SOCKET_IFNAME"] = "eth0"
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{addr}:{port}",
        rank=rank,
        world_size=2,
        timeout=timedelta(seconds=300),
    )
    dist.all_reduce(torch.ones(1024))  # connections up
    tensor = torch.ones(nbytes // 4)
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(tensor)
        times.append(time.perf_counter() - start)
    if rank == 0:
        print(json.dumps(times))
    dist.destroy_process_group()


def _allreduce(network: HostNetwork, root: Path, rate: str, nbytes: int, repeats: int) -> tuple:
    with trial_network(network, root, _trial("tallreduce01", bandwidth=rate)) as (plan, record):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        args = [plan.master_addr, str(PORT + 2), str(nbytes), str(repeats)]
        procs = [
            subprocess.Popen(
                _in_ns(link.netns, "allreduce-rank", str(link.rank), *args),
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for link in plan.ranks
        ]
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
        if any(proc.returncode for proc in procs):
            sys.exit(f"network_effect: the all-reduce ranks failed: {outputs}")
        return json.loads(outputs[0]), record["bandwidth_bps"]


# --- 3. DDP step time --------------------------------------------------------------------------


def campaign(rate: str, replicates: int) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": NAME},
        "spec": {
            "design": {"type": "full", "replicates": replicates, "seed": 1, "randomize": False},
            "factors": [
                {"name": "bandwidth", "target": "resources.bandwidth", "levels": [rate, None]}
            ],
            "trial": {
                "workload": {
                    "dataset": "digits",
                    "model": "FashionMNISTResNet",
                    "epochs": 1,
                    # 180 training samples, 90 a rank: 3 steps of 30, each all-reducing every
                    # gradient, with little compute beside them (8x8 images)
                    "validation_fraction": 0.9,
                    "batch_size": 30,
                    "parallelism": 2,
                    "optimizer": "sgd",
                },
                "resources": {"cpu": "1", "memory": "2Gi"},
            },
            "responses": ["time"],
            "execution": {"trial_timeout_s": 900},
        },
    }


def _ddp(root: Path, rate: str, replicates: int) -> dict[str, list[dict]]:
    out = run_campaign(campaign(rate, replicates), root)
    trials: dict[str, list[dict]] = defaultdict(list)
    for trial, result, spec in succeeded_trials(out):
        level = spec["resources"]["bandwidth"]
        frames = [pd.read_csv(path) for path in sorted((trial / "iterations").glob("*.csv"))]
        steps = pd.concat(frames)
        trials[str(level)].append(
            {
                "trial": trial.name,
                "started_at": result["started_at"],
                "steps": steps[steps.global_step > 1],
                "network": result["enforcement"]["network"],
            }
        )
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", default="20M")
    parser.add_argument("--payload-mb", type=float, default=2.5)
    parser.add_argument("--pings", type=int, default=30)
    args = parser.parse_args()
    try:
        delay_by = probe(need_delay=True)
    except NetworkUnavailable as err:
        sys.exit(f"network_effect: this machine cannot shape a trial's network: {err}")
    network = HostNetwork(delay_by)
    rate_bps = bandwidth_bps(args.rate)
    with tempfile.TemporaryDirectory(prefix="trainbed-net-") as tmp:
        root = Path(tmp)

        print(f"1. latency 20ms against 0ms, {args.repeats} alternations, {args.pings} pings each")
        rows: dict[str, list[tuple]] = defaultdict(list)
        for i in range(args.repeats):
            for latency in ("0ms", "20ms"):
                rtt = _rtts(network, root, f"tlatency{i:03d}", latency, args.pings)
                rows[latency].append(rtt)
                print(
                    f"   latency {latency}: rank-host {rtt[0] * 1e3:.2f} ms, "
                    f"rank-rank {rtt[1] * 1e3:.2f} ms (read back: {rtt[2]} s by {rtt[3]})"
                )
        host = [statistics.median(r[i] for r in rows["20ms"]) - statistics.median(
            r[i] for r in rows["0ms"]) for i in (0, 1)]  # fmt: skip
        ok = abs(host[0] * 1e3 - 20) <= 5
        print(
            f"   added round trip: rank-host {host[0] * 1e3:.2f} ms (target 20 +- 5: "
            f"{'ok' if ok else 'MISSED'}), rank-rank {host[1] * 1e3:.2f} ms (both directions)"
        )

        nbytes = int(args.payload_mb * 1e6)
        print(f"2. all-reduce of {nbytes} bytes at {args.rate} ({rate_bps} bit/s), 2 ranks")
        times, read_back = _allreduce(network, root, args.rate, nbytes, 3)
        achieved = nbytes * 8 * 1.0 / statistics.median(times)  # 2(n-1)/n = 1 for two ranks
        error = achieved / rate_bps - 1
        print(
            f"   times {', '.join(f'{t:.3f}' for t in times)} s; tc reads back {read_back} bit/s; "
            f"achieved {achieved / 1e6:.2f} Mbit/s ({error:+.1%}, target within 15%: "
            f"{'ok' if abs(error) <= 0.15 else 'MISSED'})"
        )

        print(f"3. DDP FashionMNISTResNet, {args.rate} against no limit, {args.repeats} each")
        trials = _ddp(root, args.rate, args.repeats)
    in_order = sorted(
        ((level, run) for level, runs in trials.items() for run in runs),
        key=lambda item: item[1]["started_at"],
    )
    for level, run in in_order:  # run order: the levels alternate
        steps = run["steps"]
        print(
            f"   {run['trial']} bandwidth {level}: median step {steps.step_s.median():.3f} s, "
            f"all-reduce {steps.allreduce_bytes.median() / 1e6:.1f} MB at "
            f"{steps.allreduce_bps.median() / 1e6:.1f} Mbit/s "
            f"(tc: {run['network']['bandwidth_bps']})"
        )
    medians = {
        level: statistics.median(s for run in runs for s in run["steps"].step_s)
        for level, runs in trials.items()
    }
    limited, unlimited = medians[args.rate], medians["None"]
    print(f"   median step: {limited:.3f} s at {args.rate}, {unlimited:.3f} s with no limit")
    print(f"network_effect ratio: {limited / unlimited:.4f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "rtt-client":
        rtt_client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "echo-server":
        echo_server(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "allreduce-rank":
        allreduce_rank(*(int(a) if a.isdigit() else a for a in sys.argv[2:]))  # type: ignore[arg-type]
    else:
        main()
