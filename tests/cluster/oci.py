"""OCI image archives written from directories, without a registry, a daemon or a temporary copy.

A layer is a directory (a root filesystem, or an overlayfs upper directory whose whiteouts become
OCI ``.wh.`` entries) written as an uncompressed tar in a fixed order, so the same directory
always gives the same bytes. Its digest is measured once (one pass that hashes the stream) and
kept beside it; an archive then streams every layer straight into ``ctr images import -``.
Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
#: Directories whose contents a container runtime provides; the image keeps them empty.
RUNTIME_DIRS = ("proc", "sys", "dev", "run", "tmp")


class _Sink:
    """A write-only stream that hashes and counts what goes through it, and passes it on."""

    def __init__(self, out: BinaryIO | None = None) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self.out = out

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)

    def flush(self) -> None:
        pass


def _entries(root: Path, empty: Iterable[str]) -> Iterable[Path]:
    """Every path under ``root``, parents first, in a sorted (so repeatable) order."""
    empty = {root / name for name in empty}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames.sort()
        if here in empty:
            dirnames.clear()
            continue
        for name in sorted(dirnames + filenames):
            yield here / name


def write_layer(root: Path, out: BinaryIO, empty: Iterable[str] = ()) -> None:
    """Write ``root`` as a layer tar: numeric owners, overlayfs whiteouts as OCI whiteouts."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _entries(root, empty):
            name = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:  # overlayfs whiteout
                whiteout = tarfile.TarInfo(str(Path(name).parent / f".wh.{path.name}"))
                whiteout.mtime = int(info.st_mtime)
                tar.addfile(whiteout)
                continue
            entry = tar.gettarinfo(str(path), arcname=name)
            if entry is None:  # a socket: nothing an image can hold
                continue
            entry.uname = entry.gname = ""
            if entry.isreg():
                with open(path, "rb") as handle:
                    tar.addfile(entry, handle)
            else:
                tar.addfile(entry)
            if entry.isdir() and _opaque(path):
                opaque = tarfile.TarInfo(f"{name}/.wh..wh..opq")
                opaque.mtime = entry.mtime
                tar.addfile(opaque)


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False


@dataclass
class Layer:
    """A directory, written as a layer, with the digest and size that writing it gives."""

    root: Path
    digest: str
    size: int
    empty: tuple[str, ...] = ()

    @classmethod
    def measure(cls, root: Path, empty: Iterable[str] = ()) -> Layer:
        sink = _Sink()
        write_layer(root, sink, empty)  # type: ignore[arg-type]
        return cls(root, f"sha256:{sink.digest.hexdigest()}", sink.size, tuple(empty))

    @classmethod
    def cached(cls, root: Path, record: Path, empty: Iterable[str] = ()) -> Layer:
        """The layer of ``root``, measured once and then read back from ``record``."""
        try:
            data = json.loads(record.read_text())
            return cls(root, data["digest"], data["size"], tuple(empty))
        except (OSError, ValueError, KeyError):
            layer = cls.measure(root, empty)
            record.write_text(json.dumps({"digest": layer.digest, "size": layer.size}))
            return layer

    def write(self, out: BinaryIO) -> None:
        sink = _Sink(out)
        write_layer(self.root, sink, self.empty)  # type: ignore[arg-type]
        if f"sha256:{sink.digest.hexdigest()}" != self.digest or sink.size != self.size:
            raise RuntimeError(f"{self.root} changed since its digest was measured")

    def descriptor(self) -> dict:
        return {"mediaType": LAYER_TYPE, "digest": self.digest, "size": self.size}


def _blob(data: bytes, media_type: str) -> tuple[dict, bytes]:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    return {"mediaType": media_type, "digest": digest, "size": len(data)}, data


def _member(out: BinaryIO, name: str, size: int, write: Callable[[BinaryIO], None]) -> None:
    """One member of the outer archive, its body written by ``write`` (exactly ``size`` bytes)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    out.write(info.tobuf(format=tarfile.PAX_FORMAT))
    write(out)
    out.write(b"\0" * (-size % tarfile.BLOCKSIZE))


def write_archive(
    out: BinaryIO,
    layers: list[Layer],
    config: dict,
    names: list[str],
    created: str,
    present: frozenset[str] = frozenset(),
) -> str:
    """Write an OCI image archive (``ctr images import`` reads it); returns the manifest digest.

    ``config`` holds the image's runtime settings (``User``, ``Env``, ``Entrypoint``...);
    ``names`` are full references (``docker.io/library/x:tag``), each an entry of the index.
    Layers whose digest is in ``present`` (blobs the importing store already holds) are left
    out, so a new app layer on the same base and deps costs its own size only.
    """
    image_config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "history": [{"created": created, "created_by": str(layer.root)} for layer in layers],
    }
    config_desc, config_bytes = _blob(json.dumps(image_config).encode(), CONFIG_TYPE)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config_desc,
        "layers": [layer.descriptor() for layer in layers],
    }
    manifest_desc, manifest_bytes = _blob(json.dumps(manifest).encode(), MANIFEST_TYPE)
    platform = {"architecture": "amd64", "os": "linux"}
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [
            {
                **manifest_desc,
                "platform": platform,
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
                },
            }
            for name in names
        ],
    }
    small = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
        f"blobs/sha256/{config_desc['digest'][7:]}": config_bytes,
        f"blobs/sha256/{manifest_desc['digest'][7:]}": manifest_bytes,
    }
    for name, data in small.items():
        _member(out, name, len(data), lambda o, d=data: o.write(d))
    written = set(present)
    for layer in layers:
        if layer.digest not in written:
            written.add(layer.digest)
            _member(out, f"blobs/sha256/{layer.digest[7:]}", layer.size, layer.write)
    out.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    return manifest_desc["digest"]
