"""What a real node runs, built from the Go module proxy and cached in ``$TRAINBED_CACHE``:

* the kubelet, from the same pinned ``k8s.io/kubernetes`` as the control plane (a tool of
  ``tools/go.mod``), into the control plane's ``bin`` folder and under its stamp;
* containerd v2 (``containerd``, ``containerd-shim-runc-v2``, ``ctr``) with ``go install`` into
  ``containerd-<version>/bin``;
* CoreDNS with ``go install`` into ``coredns-<version>/bin`` (its own GOBIN: the tools module's
  replace block would clash with it);
* the pause image: ``build/pause/linux/pause.c`` of the kubernetes module, compiled with
  ``gcc -Os -static``, as an OCI archive in ``pause-<version>/``.

Each folder holds a stamp of what built it; a changed pin rebuilds. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.cluster import host, launcher, oci

CONTAINERD_VERSION = "v2.4.2"
COREDNS_VERSION = "v1.15.0"
CONTAINERD_MODULE = "github.com/containerd/containerd/v2"
CONTAINERD_DIR = launcher.CACHE / f"containerd-{CONTAINERD_VERSION}"
COREDNS_DIR = launcher.CACHE / f"coredns-{COREDNS_VERSION}"
PAUSE_DIR = launcher.CACHE / f"pause-{launcher.K8S_VERSION}"


def _log(message: str) -> None:
    host.log("real-node", message)


def _timed_go(args: list[str], what: str, env: dict[str, str] | None = None, cwd=None) -> None:
    _log(f"building {what}")
    started = time.time()
    proc = subprocess.run(
        [launcher._go_binary(), *args],
        cwd=cwd or launcher.TOOLS,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise launcher.ClusterError(f"building {what} failed: go {' '.join(args)}\n{proc.stderr}")
    _log(f"built {what} in {time.time() - started:.0f} s")


def _cached(folder: Path, stamp: str, names: list[str], build) -> Path:
    """``folder/bin`` with ``names`` built by ``build(tmp_bin)`` unless the stamp matches."""
    bin_dir = folder / "bin"
    stamp_file = folder / ".stamp"
    with launcher._locked(folder.parent / f".{folder.name}.lock"):
        if stamp_file.exists() and stamp_file.read_text() == stamp:
            if all((bin_dir / name).exists() for name in names):
                return bin_dir
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
            build(Path(tmp))
            shutil.rmtree(bin_dir, ignore_errors=True)
            os.replace(tmp, bin_dir)
            Path(tmp).mkdir()  # for TemporaryDirectory's cleanup
        stamp_file.write_text(stamp)
        return bin_dir


def kubelet() -> Path:
    """The kubelet beside the control plane's binaries (same stamp, same flags)."""
    bin_dir = launcher.build()
    with launcher._locked(bin_dir.parent / "build.lock"):
        if not (bin_dir / "kubelet").exists():
            jobs = os.environ.get("TRAINBED_BUILD_JOBS", str(os.cpu_count() or 2))
            with tempfile.TemporaryDirectory(dir=bin_dir.parent, prefix=".build-") as tmp:
                flags = [
                    "-p",
                    jobs,
                    "-mod=readonly",
                    "-trimpath",
                    f"-ldflags={launcher._ldflags()}",
                ]
                package = "k8s.io/kubernetes/cmd/kubelet"
                _timed_go(["build", *flags, "-o", f"{tmp}/kubelet", package], "kubelet")
                os.replace(Path(tmp) / "kubelet", bin_dir / "kubelet")
    return bin_dir / "kubelet"


def containerd() -> Path:
    """containerd, its runc shim and ctr, all of one containerd v2 release."""
    ldflags = f"-s -w -X {CONTAINERD_MODULE}/version.Version={CONTAINERD_VERSION}"
    tags = "no_btrfs no_devmapper no_zfs"
    stamp = f"{CONTAINERD_VERSION} {ldflags} {tags} CGO_ENABLED=0"
    names = ["containerd", "containerd-shim-runc-v2", "ctr"]

    def build(tmp: Path) -> None:
        packages = [f"{CONTAINERD_MODULE}/cmd/{n}@{CONTAINERD_VERSION}" for n in names]
        _timed_go(
            ["install", "-trimpath", "-tags", tags, f"-ldflags={ldflags}", *packages],
            f"containerd {CONTAINERD_VERSION}",
            env={"GOBIN": str(tmp), "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"},
            cwd=tmp,
        )

    return _cached(CONTAINERD_DIR, stamp, names, build)


def coredns() -> Path:
    stamp = f"{COREDNS_VERSION} -s -w CGO_ENABLED=0"

    def build(tmp: Path) -> None:
        _timed_go(
            [
                "install",
                "-trimpath",
                "-ldflags=-s -w",
                f"github.com/coredns/coredns@{COREDNS_VERSION}",
            ],
            f"CoreDNS {COREDNS_VERSION}",
            env={"GOBIN": str(tmp), "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"},
            cwd=tmp,
        )

    return _cached(COREDNS_DIR, stamp, ["coredns"], build) / "coredns"


def _kubernetes_source() -> Path:
    proc = subprocess.run(
        [
            launcher._go_binary(),
            "list",
            "-mod=readonly",
            "-m",
            "-f",
            "{{.Dir}}",
            "k8s.io/kubernetes",
        ],
        cwd=launcher.TOOLS,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise launcher.ClusterError(f"cannot find the k8s.io/kubernetes module: {proc.stderr}")
    return Path(proc.stdout.strip())


def pause_image() -> tuple[Path, str]:
    """(OCI archive, image reference) of the pause image, compiled from the pinned kubernetes."""
    source = _kubernetes_source() / "build" / "pause"
    tag = re.search(r"^TAG\s*\?=\s*(\S+)", (source / "Makefile").read_text(), re.M)
    ref = f"localhost/trainbed/pause:{tag.group(1) if tag else launcher.K8S_VERSION}"
    code = (source / "linux" / "pause.c").read_bytes()
    stamp = hashlib.sha256(code + ref.encode() + b"gcc -Os -static").hexdigest()

    def build(tmp: Path) -> None:
        _log(f"building the pause image {ref}")
        rootfs = tmp / "rootfs"
        rootfs.mkdir()
        (tmp / "pause.c").write_bytes(code)
        version = f"-DVERSION={ref.rsplit(':', 1)[1]}"
        args = ["gcc", "-Os", "-static", "-Wall", "-Werror", version, "-o", str(rootfs / "pause")]
        host.run([*args, str(tmp / "pause.c")], "compiling pause.c")
        host.run(["strip", str(rootfs / "pause")], "strip pause")
        os.utime(rootfs / "pause", (0, 0))
        os.utime(rootfs, (0, 0))
        layer = oci.Layer.measure(rootfs)
        config = {"Entrypoint": ["/pause"], "User": "65535:65535"}
        with open(tmp / "pause.tar", "wb") as out:
            oci.write_archive(out, [layer], config, [ref], "1970-01-01T00:00:00Z")

    return _cached(PAUSE_DIR, stamp, ["pause.tar"], build) / "pause.tar", ref


def build_all() -> dict[str, Path | str]:
    """Everything the node runs; cached builds return at once."""
    started = time.time()
    paths: dict[str, Path | str] = {"kubelet": kubelet()}
    bin_dir = containerd()
    paths.update({n: bin_dir / n for n in ("containerd", "containerd-shim-runc-v2", "ctr")})
    paths["coredns"] = coredns()
    paths["pause"], paths["pause_ref"] = pause_image()
    took = time.time() - started
    if took > 5:
        _log(f"node binaries ready in {took:.0f} s")
    return paths
