"""scripts/image build: the trainbed image, built on this machine with no registry and no daemon.

The Dockerfile's base (``python:3.11-slim``) and its CPU-only torch index cannot be reached here,
so this builds a *test* image that follows the Dockerfile's own steps on other inputs:

* base layer: Debian bookworm from ``debootstrap --variant=minbase`` with python3, venv and pip,
  then the Dockerfile's final-stage ``RUN`` (user and group 1000, ``/results``);
* deps layer: the build stage's ``RUN`` lines before its ``COPY`` (the venv in /opt/trainbed, torch
  and torchvision from PyPI, which is the CUDA build), plus the project's dependencies from
  pyproject.toml, so this heavy layer is built once and reused;
* app layer: the build stage's ``RUN`` lines after its ``COPY`` (``pip install . && pip check``),
  rebuilt only when the copied sources change;
* the image config from the final stage: ``ENV``, ``LABEL``, ``WORKDIR``, ``USER 1000:1000``,
  ``ENTRYPOINT ["trainbed"]``, plus labels that say it is the test image.

Each layer is an overlayfs upper directory in ``$TRAINBED_CACHE/image`` keyed by a hash of its
inputs, so a second build is a no-op. The image is streamed into the real node's containerd
(``ctr -n k8s.io images import``) when one is running. See docs/real-node.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tests.cluster`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.cluster import host, launcher, oci

ROOT = launcher.HERE.parents[1]
CACHE = launcher.CACHE / "image"
RECIPE = "1"  # bump when the steps below change in a way the hashed inputs do not show
SUITE = "bookworm"
MIRROR = os.environ.get("TRAINBED_DEBIAN_MIRROR", "http://deb.debian.org/debian")
INCLUDE = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates"
TORCH_INDEX = "https://pypi.org/simple"  # the Dockerfile's CPU index is not reachable here
NAME = "docker.io/library/trainbed"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SKIP = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".ruff_cache")
#: Disk the deps layer takes while it is built: the layer itself (6.4 GB with PyPI's CUDA torch)
#: and the wheel pip is installing (under 1 GB: no pip cache in the build, PIP_NO_CACHE_DIR).
DEPS_ROOM = 8 * 10**9


def _log(message: str) -> None:
    host.log("image", message)


def _stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages: (INSTRUCTION, arguments), continuations joined, comments gone."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = [[]]
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages[1:]


def _pairs(rest: str, env: dict[str, str]) -> dict[str, str]:
    """``K=V K2="v 2"`` with ``$VAR``/``${VAR}`` expanded from ``env``."""
    out = {}
    for token in shlex.split(rest):
        key, _, value = token.partition("=")
        for name, known in sorted(env.items(), key=lambda kv: -len(kv[0])):
            value = value.replace(f"${{{name}}}", known).replace(f"${name}", known)
        out[key] = value
    return out


def _build_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {"PATH": BASE_PATH, "TORCH_INDEX_URL": TORCH_INDEX}
    for keyword, rest in stage:
        if keyword == "ENV":
            env.update(_pairs(rest, env))
    return env


def _sources(stage: list[tuple[str, str]]) -> list[tuple[Path, str]]:
    """(source path, destination below WORKDIR) of the build stage's ``COPY`` lines."""
    found = []
    for keyword, rest in stage:
        if keyword == "COPY" and not rest.startswith("--"):
            *sources, dest = shlex.split(rest)
            for source in sources:
                target = dest + Path(source).name if dest.endswith("/") else dest
                found.append((ROOT / source, target))
    return found


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    skip = shutil.ignore_patterns(*SKIP)
    found = []
    for dirpath, dirnames, filenames in os.walk(source):
        ignored = skip(dirpath, dirnames + filenames)
        dirnames[:] = sorted(d for d in dirnames if d not in ignored)
        found += [Path(dirpath, f) for f in sorted(filenames) if f not in ignored]
    return found


def _sources_hash(sources: list[tuple[Path, str]]) -> str:
    digest = hashlib.sha256()
    for source, dest in sources:
        for path in _files(source):
            digest.update(f"{dest}/{path.relative_to(source.parent)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class _Chroot:
    """An overlayfs over ``lowers`` whose changes land in ``layer/upper``, with /proc, /dev, the
    host's resolv.conf and CA bundle, and a scratch folder (at /mnt) mounted in."""

    def __init__(self, layer: Path, lowers: list[Path]) -> None:
        self.layer, self.lowers = layer, lowers
        self.merged, self.scratch = layer / "merged", layer / "scratch"

    def __enter__(self) -> _Chroot:
        for sub in ("upper", "work", "merged", "scratch/tmp", "scratch/home"):
            (self.layer / sub).mkdir(parents=True, exist_ok=True)
        lower = ":".join(str(p) for p in self.lowers)
        options = f"lowerdir={lower},upperdir={self.layer}/upper,workdir={self.layer}/work"
        host.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.merged)], "mount")
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", self.scratch / "ca.crt")
        binds = [
            (["-t", "proc", "proc"], "proc"),
            (["--bind", "/dev"], "dev"),
            (["--bind", "/etc/resolv.conf"], "etc/resolv.conf"),
            (["--bind", str(self.scratch)], "mnt"),
        ]
        for args, target in binds:
            host.run(["mount", *args, str(self.merged / target)], f"mount {target}")
        return self

    def run(self, script: str, env: dict[str, str], log: Path, cwd: str = "/") -> None:
        env = {
            **env,
            "HOME": "/mnt/home",
            "TMPDIR": "/mnt/tmp",
            "PIP_CERT": "/mnt/ca.crt",  # TLS may be intercepted: trust what the host trusts
            "PIP_DEFAULT_TIMEOUT": os.environ.get("PIP_DEFAULT_TIMEOUT", "120"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "LANG": "C.UTF-8",
        }
        args = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "sh", "-ec", script]
        inner = f"cd {shlex.quote(cwd)} && exec {shlex.join(args)}"
        host.run(["chroot", str(self.merged), "sh", "-c", inner], script[:60], log_file=log)

    def __exit__(self, *exc: object) -> None:
        host.unmount_under(self.merged)
        for sub in ("work", "merged", "scratch"):
            shutil.rmtree(self.layer / sub, ignore_errors=True)


def _step(directory: Path, what: str, build) -> Path:
    """Build ``directory`` once: in a temporary folder, renamed into place when complete."""
    if (directory / ".done").exists():
        return directory
    tmp = directory.with_name(directory.name + ".tmp")
    host.remove_tree(tmp)
    tmp.mkdir(parents=True)
    _log(f"building the {what} (log: {CACHE / 'build.log'})")
    started = time.time()
    try:
        build(tmp)
    except BaseException:
        host.unmount_under(tmp)
        raise
    (tmp / ".done").write_text(f"{time.time() - started:.0f}\n")
    os.rename(tmp, directory)
    _log(f"built the {what} in {time.time() - started:.0f} s")
    return directory


def build() -> dict:
    """Build (or find in the cache) the test image; returns its record (``ref``, ``layers``...)."""
    host.require_root("scripts/image build needs root (debootstrap, overlay mounts, chroot)")
    host.ensure_packages({"debootstrap": "debootstrap", "chroot": "coreutils"}, "image")
    CACHE.mkdir(parents=True, exist_ok=True)
    build_stage, final = _stages()[0], _stages()[-1]
    copy_at = next(i for i, (k, _) in enumerate(build_stage) if k == "COPY")
    deps_runs = [r for k, r in build_stage[:copy_at] if k == "RUN"]
    app_runs = [r for k, r in build_stage[copy_at:] if k == "RUN"]
    base_runs = [r for k, r in final if k == "RUN"]
    workdir = next((r for k, r in build_stage if k == "WORKDIR"), "/")
    env = _build_env(build_stage)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = pyproject["project"]["dependencies"]
    sources = _sources(build_stage)
    base_key = _hash(RECIPE, SUITE, MIRROR, INCLUDE, base_runs)
    deps_key = _hash(base_key, deps_runs, env, deps)
    dockerfile = (ROOT / "Dockerfile").read_text()  # the final stage's config, too
    app_key = _hash(deps_key, app_runs, workdir, _sources_hash(sources), dockerfile)
    record_file = CACHE / f"image-{app_key[:16]}.json"
    if record_file.exists():
        record = json.loads(record_file.read_text())
        if all(Path(layer["root"]).is_dir() for layer in record["layers"]):
            return record
    with launcher._locked(CACHE / "build.lock"):
        if not (CACHE / f"deps-{deps_key[:16]}" / ".done").exists():
            host.require_room(CACHE, DEPS_ROOM, "building the image's deps layer (CUDA torch)")
        base = _step(CACHE / f"base-{base_key[:16]}", "base layer (debootstrap)", _base(base_runs))
        rootfs = base / "rootfs"
        deps_dir = _step(
            CACHE / f"deps-{deps_key[:16]}",
            "deps layer (venv, torch, the project's dependencies: minutes)",
            lambda d: _in_chroot(d, [rootfs], [*deps_runs, _pip_install(deps)], env, "/"),
        )

        def app(d: Path) -> None:
            src = d / "scratch" / workdir.strip("/")
            for source, dest in sources:
                target = src / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                if source.is_dir():
                    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*SKIP))
                else:
                    shutil.copy2(source, target)
            check = "trainbed --help >/dev/null"  # the entry point runs in the image
            mnt = f"/mnt/{workdir.strip('/')}"
            _in_chroot(d, [deps_dir / "upper", rootfs], [*app_runs, check], env, mnt)

        app_dir = _step(CACHE / f"app-{app_key[:16]}", "app layer (pip install .)", app)
        _prune("app-", keep=app_dir)
        _prune("deps-", keep=deps_dir, count=1)  # 6.4 GB each
        _prune("base-", keep=base, count=1)
        layers = [
            oci.Layer.cached(rootfs, base / "layer.json", oci.RUNTIME_DIRS),
            oci.Layer.cached(deps_dir / "upper", deps_dir / "layer.json"),
            oci.Layer.cached(app_dir / "upper", app_dir / "layer.json"),
        ]
        record = {
            "ref": f"{NAME}:test-{app_key[:12]}",
            "alias": f"{NAME}:test",
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "config": _config(final),
            "layers": [
                {"root": str(x.root), "digest": x.digest, "size": x.size, "empty": x.empty}
                for x in layers
            ],
            "size": sum(x.size for x in layers),
        }
        record_file.write_text(json.dumps(record, indent=2))
        return record


def import_into(record: dict, state: Path) -> bool:
    """Stream the image into the real node's containerd; False when it is there already."""
    from tests.cluster import realnode

    ctr = realnode.ctr_command(state)
    listed = subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True)
    if listed.returncode != 0:
        raise host.HostError(f"ctr images ls failed: {listed.stderr.strip()}")
    if record["ref"] in listed.stdout.split():  # there: only point the alias at it
        subprocess.run(
            [*ctr, "images", "tag", "--force", record["ref"], record["alias"]], capture_output=True
        )
        return False
    layers = [
        oci.Layer(Path(x["root"]), x["digest"], x["size"], tuple(x["empty"]))
        for x in record["layers"]
    ]
    blobs = subprocess.run([*ctr, "content", "ls", "-q"], capture_output=True, text=True)
    present = frozenset(blobs.stdout.split()) if blobs.returncode == 0 else frozenset()
    new = sum(x.size for x in layers if x.digest not in present)
    # containerd holds each new layer twice while it imports: the blob in its content store and
    # the unpacked snapshot
    host.require_room(state, 2 * new, f"importing {new / 1e9:.2f} GB of layers into containerd")
    _log(f"importing {record['ref']} ({new / 1e9:.2f} GB of layers new to the node's containerd)")
    started = time.time()
    names = [record["ref"], record["alias"]]
    with open(CACHE / "import.log", "wb") as log:
        proc = subprocess.Popen(
            [*ctr, "images", "import", "-"], stdin=subprocess.PIPE, stdout=log, stderr=log
        )
        try:
            oci.write_archive(
                proc.stdin, layers, record["config"], names, record["created"], present
            )
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()
        if proc.wait() != 0:
            tail = (CACHE / "import.log").read_text(errors="replace")[-2000:]
            raise host.HostError(f"ctr images import failed: {tail}")
    _log(f"imported in {time.time() - started:.0f} s")
    return True


def _prune(prefix: str, keep: Path, count: int = 3) -> None:
    """Drop all but the newest ``count`` cached layers of a kind (sources change often)."""
    old = sorted(CACHE.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in [p for p in old if p != keep and p.is_dir()][count - 1 :]:
        host.remove_tree(path)
        (CACHE / f"image-{path.name.removeprefix(prefix)}.json").unlink(missing_ok=True)


def _pip_install(requirements: list[str]) -> str:
    return "pip install " + " ".join(shlex.quote(r) for r in requirements)


def _in_chroot(layer: Path, lowers: list[Path], runs: list[str], env: dict, cwd: str) -> None:
    with _Chroot(layer, lowers) as chroot:
        for script in runs:
            chroot.run(script, env, CACHE / "build.log", cwd)


def _base(runs: list[str]):
    def build_base(tmp: Path) -> None:
        rootfs = tmp / "rootfs"
        args = ["debootstrap", "--variant=minbase", f"--include={INCLUDE}", SUITE, str(rootfs)]
        host.run([*args, MIRROR], "debootstrap", log_file=CACHE / "build.log")
        host.unmount_under(rootfs)
        for junk in ("var/lib/apt/lists", "var/cache/apt", "var/cache/debconf", "var/log"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        (rootfs / "etc" / "resolv.conf").write_text("")  # the runtime mounts its own
        proc = rootfs / "proc"
        host.run(["mount", "-t", "proc", "proc", str(proc)], "mount proc")
        try:
            for script in runs:  # the final stage's RUN: user 1000, /results
                chroot = ["chroot", str(rootfs), "sh", "-ec", script]
                host.run(chroot, script[:60], log_file=CACHE / "build.log")
        finally:
            host.unmount_under(proc)

    return build_base


def _config(final: list[tuple[str, str]]) -> dict:
    """The image config of the Dockerfile's final stage, plus labels that name the test image."""
    env: dict[str, str] = {"PATH": BASE_PATH}
    labels: dict[str, str] = {}
    config: dict = {}
    for keyword, rest in final:
        if keyword == "ENV":
            env.update(_pairs(rest, env))
        elif keyword == "LABEL":
            labels.update(_pairs(rest, {"TORCH_INDEX_URL": TORCH_INDEX}))
        elif keyword == "USER":
            config["User"] = rest
        elif keyword == "WORKDIR":
            config["WorkingDir"] = rest
        elif keyword in ("ENTRYPOINT", "CMD"):
            config[keyword.title() if keyword == "CMD" else "Entrypoint"] = json.loads(rest)
    labels.update(
        {
            "io.trainbed.test-image": "true",
            "io.trainbed.base": f"debootstrap {SUITE} minbase (not python:3.11-slim)",
            "io.trainbed.torch-index": TORCH_INDEX + " (CUDA torch: the CPU index is unreachable)",
            "io.trainbed.built-by": "scripts/image build (docs/real-node.md)",
        }
    )
    return {**config, "Env": [f"{k}={v}" for k, v in env.items()], "Labels": labels}


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="scripts/image", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build (or find cached) and import into the running real node")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            started = time.time()
            record = build()
            from tests.cluster import realnode

            if realnode.alive(launcher.STATE):
                import_into(record, launcher.STATE)
            else:
                _log(f"no real node runs for {launcher.STATE}: built, not imported")
            took = time.time() - started
            _log(f"image {record['ref']}: {record['size'] / 1e9:.2f} GB, {took:.0f} s")
            print(record["ref"])
    except (host.HostError, launcher.ClusterError) as err:
        print(f"scripts/image: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
