"""The controller at 10,000 trials against ``kubectl create -f`` of the same objects.

On the test control plane (scripts/cluster, 100 kwok nodes) it runs, interleaved and repeated:

(a) the controller, as its own process (``trainbed controller``), driving a 10,000-trial campaign
    of 1 s simulated pods with concurrency 500 and ``cleanup: delete``. While it runs, the
    Campaign object is read every 0.5 s: its size (the bytes etcd stores) and its counts, from
    which the busy fraction of the allowed concurrency comes (trials in flight / concurrency,
    while trials still wait). The controller's peak RSS is its VmHWM at the end.
(b) the baseline: the same ConfigMaps, Services and Jobs, rendered by the same functions, created
    by ``kubectl create -f`` in chunks of ``concurrency`` trials; each chunk is waited for
    (``kubectl wait --for=condition=complete``) and deleted (``kubectl delete -f``) before the
    next one is created.

Both end when every trial finished and no Job is left. It prints the trials per second of each,
the peak Campaign size, the controller's peak RSS and the busy fraction, then, last, the median
ratio controller / baseline throughput as ``k8s_scale ratio: X`` (target >= 1.0).

Run it on a cluster of its own (it is heavy):
    TRAINBED_CLUSTER_DIR=/tmp/scale-cluster TRAINBED_KWOK_CONFIG=benchmarks/kwok-scale.yaml \
        scripts/cluster up --nodes 100
    TRAINBED_CLUSTER_DIR=/tmp/scale-cluster .venv/bin/python benchmarks/k8s_scale.py
    TRAINBED_CLUSTER_DIR=/tmp/scale-cluster scripts/cluster down
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster import drop_namespace, kwok_namespace  # noqa: E402
from tests.cluster import launcher  # noqa: E402
from tests.cluster.campaign_crd import install_campaign_crd  # noqa: E402
from tests.cluster.simulated import simulated_campaign  # noqa: E402
from trainbed.contract.campaign import Campaign  # noqa: E402
from trainbed.orchestrator.kube.adapter.api import KubeApi  # noqa: E402
from trainbed.orchestrator.kube.objects.manifests import trial_configmap, trial_job, trial_service  # noqa: E402
from trainbed.orchestrator.kube.verbs.commands import campaign_object  # noqa: E402
from trainbed.orchestrator.plan.trials import plan_campaign  # noqa: E402

NAME = "scale"


LR = {"name": "lr", "target": "workload.lr", "levels": [0.01, 0.02, 0.05, 0.1, 0.2]}
BATCH = {"name": "batch", "target": "workload.batch_size", "levels": [32, 64, 128, 256]}


def campaign(trials: int, concurrency: int, duration: str) -> Campaign:
    """A 5 x 4 full factorial, replicated to ``trials`` runs (a multiple of 20); one rank each."""
    return simulated_campaign(
        NAME,
        [LR, BATCH],
        trials=trials,
        concurrency=concurrency,
        duration=duration,
        cleanup="delete",
    )


def jobs_left(api: KubeApi, namespace: str) -> int:
    raw = api.batch.list_namespaced_job(namespace, limit=1, _preload_content=False)
    data = json.loads(raw.data)
    return len(data["items"]) + int(data["metadata"].get("remainingItemCount") or 0)


@dataclass
class ControllerRun:
    seconds: float
    peak_bytes: int
    peak_rss_mb: float
    busy: float
    failed: int
    samples: list[dict[str, Any]] = field(default_factory=list)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_controller(
    api: KubeApi, kubeconfig: Path, spec: Campaign, log_dir: Path, profile: bool
) -> ControllerRun:
    namespace = kwok_namespace(api, "scale")
    api.apply_campaign(campaign_object(spec, namespace))
    concurrency = spec.spec.execution.concurrency
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    command = [sys.executable, "-m", "trainbed.orchestrator.cli", "controller", "-n", namespace]
    log = (log_dir / f"controller-{namespace}.log").open("w")
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    spy = None
    if profile:
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(proc.pid),
                "--format",
                "speedscope",
                "-o",
                str(log_dir / f"profile-{namespace}.json"),
                "--rate",
                "50",
                "--threads",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    peak = 0
    busy: list[float] = []
    samples: list[dict[str, Any]] = []
    status: dict[str, Any] = {}
    try:
        while True:
            raw = api.get_campaign_json(namespace, NAME) or b"{}"
            peak = max(peak, len(raw))
            status = json.loads(raw).get("status") or {}
            now = time.perf_counter() - start
            samples.append(
                {
                    "t": round(now, 2),
                    "bytes": len(raw),
                    **{k: status.get(k) for k in ("done", "running", "pending", "failed")},
                }
            )
            if int(status.get("pending") or 0) > 0 and int(status.get("done") or 0) > 0:
                busy.append(min(int(status.get("running") or 0), concurrency) / concurrency)
            if status.get("phase") == "Completed" and jobs_left(api, namespace) == 0:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the controller exited with {proc.returncode}; see {log.name}")
            time.sleep(0.5)
        seconds = time.perf_counter() - start
        rss = _peak_rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if spy is not None:
            spy.wait(60)
        log.close()
    drop_namespace(api, namespace)
    return ControllerRun(
        seconds,
        peak,
        rss,
        statistics.mean(busy) if busy else float("nan"),
        int(status.get("failed") or 0),
        samples,
    )


def run_kubectl(api: KubeApi, kubeconfig: Path, spec: Campaign, work: Path) -> float:
    """The same objects through kubectl, one chunk of ``concurrency`` trials at a time."""
    namespace = kwok_namespace(api, "scale")
    trials = plan_campaign(spec).trials
    size = spec.spec.execution.concurrency
    chunks = []
    for i in range(0, len(trials), size):
        objects, jobs = [], []
        for trial in trials[i : i + size]:
            job = trial_job(spec, trial, namespace=namespace)
            objects += [
                trial_configmap(spec, trial, namespace=namespace),
                trial_service(spec, trial, namespace=namespace),
                job,
            ]
            jobs.append(job)
        all_file, jobs_file = work / f"chunk-{i // size}.yaml", work / f"jobs-{i // size}.yaml"
        all_file.write_text(yaml.safe_dump_all(objects))
        jobs_file.write_text(yaml.safe_dump_all(jobs))
        chunks.append((all_file, jobs_file))
    kubectl = [launcher.kubectl_path(), "--kubeconfig", str(kubeconfig), "-n", namespace]

    def sh(*args: str) -> None:
        subprocess.run([*kubectl, *args], check=True, capture_output=True, timeout=1200)

    start = time.perf_counter()
    for all_file, jobs_file in chunks:
        sh("create", "-f", str(all_file))
        sh("wait", "--for=condition=complete", "--timeout=1200s", "-f", str(jobs_file))
        sh("delete", "-f", str(all_file), "--wait=false")
    while jobs_left(api, namespace):
        time.sleep(0.5)
    seconds = time.perf_counter() - start
    drop_namespace(api, namespace)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--duration", default="1s", help="each simulated pod's run time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--profile", action="store_true", help="py-spy the controller")
    parser.add_argument("--samples", type=Path, help="write the Campaign samples (JSON) here")
    args = parser.parse_args()
    cluster = launcher.up(nodes=args.nodes)
    api = KubeApi.from_environment(str(cluster.kubeconfig))
    install_campaign_crd(api)
    spec = campaign(args.trials, args.concurrency, args.duration)
    total = len(plan_campaign(spec).trials)
    print(
        f"{total} trials, concurrency {args.concurrency}, {args.duration} pods, "
        f"{args.nodes} kwok nodes, cleanup: delete; load average before: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    ratios, runs = [], []
    with tempfile.TemporaryDirectory(prefix="k8s-scale-") as tmp:
        work = Path(tmp)
        logs = Path(tempfile.mkdtemp(prefix="k8s-scale-logs-"))
        for i in range(args.repeats):
            ours = run_controller(api, cluster.kubeconfig, spec, logs, args.profile and i == 0)
            base = run_kubectl(api, cluster.kubeconfig, spec, work)
            runs.append(ours)
            ratio = (total / ours.seconds) / (total / base)
            ratios.append(ratio)
            print(
                f"repeat {i + 1}: controller {total / ours.seconds:.1f} trials/s "
                f"({ours.seconds:.0f} s, {ours.failed} failed), kubectl chunks "
                f"{total / base:.1f} trials/s ({base:.0f} s), ratio {ratio:.2f}; peak Campaign "
                f"{ours.peak_bytes / 1024:.1f} KiB, controller peak RSS {ours.peak_rss_mb:.0f} MB, "
                f"busy {ours.busy:.1%}; load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        if args.samples:
            args.samples.write_text(json.dumps([r.samples for r in runs]))
        print(f"controller logs and profiles: {logs}")
    print(f"peak Campaign object: {max(r.peak_bytes for r in runs) / 1024:.1f} KiB (limit 64 KiB)")
    print(f"controller peak RSS: {max(r.peak_rss_mb for r in runs):.0f} MB (limit 500 MB)")
    print(
        f"busy fraction of the allowed concurrency ({args.concurrency}): "
        f"{statistics.median(r.busy for r in runs):.1%}"
    )
    print(f"k8s_scale ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
