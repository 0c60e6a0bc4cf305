"""The OCI archive writer behind scripts/image: repeatable layers, overlayfs whiteouts, and an
archive whose index, manifest, config and blobs agree. No root, no node: runs everywhere."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.cluster import oci


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o755)
    os.link(root / "bin" / "tool", root / "bin" / "alias")
    (root / "dev").mkdir()
    (root / "dev" / "junk").write_text("runtime provides /dev")
    (root / "etc").mkdir()
    (root / "etc" / "link").symlink_to("../bin/tool")
    return root


def test_a_layer_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    root = _tree(tmp_path / "rootfs")
    first = oci.Layer.measure(root, ("dev",))
    second = oci.Layer.measure(root, ("dev",))
    assert (first.digest, first.size) == (second.digest, second.size)
    out = io.BytesIO()
    first.write(out)
    assert f"sha256:{hashlib.sha256(out.getvalue()).hexdigest()}" == first.digest
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "dev" in members and "dev/junk" not in members  # kept empty
    assert members["bin/alias"].islnk() or members["bin/tool"].islnk()
    assert members["etc/link"].issym() and members["bin/tool"].mode & 0o111
    assert all(m.uname == "" and m.gname == "" for m in members.values())


def test_a_changed_directory_is_caught_before_import(tmp_path: Path) -> None:
    root = _tree(tmp_path / "rootfs")
    layer = oci.Layer.measure(root)
    (root / "bin" / "new").write_text("x")
    with pytest.raises(RuntimeError, match="changed since"):
        layer.write(io.BytesIO())


@pytest.mark.skipif(os.geteuid() != 0, reason="an overlayfs whiteout is a 0/0 device (root)")
def test_overlay_whiteouts_become_oci_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    out = io.BytesIO()
    oci.write_layer(upper, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
    assert "etc/.wh.gone" in names and "etc/gone" not in names


def test_the_archive_holds_what_its_index_names(tmp_path: Path) -> None:
    layers = [oci.Layer.measure(_tree(tmp_path / "a")), oci.Layer.measure(_tree(tmp_path / "b"))]
    config = {"User": "1000:1000", "Entrypoint": ["trainbed"]}
    names = ["docker.io/library/trainbed:test-1", "docker.io/library/trainbed:test"]
    out = io.BytesIO()
    digest = oci.write_archive(out, layers, config, names, "2026-01-01T00:00:00Z")
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(files["index.json"])
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == names
    assert {m["digest"] for m in index["manifests"]} == {digest}
    manifest = json.loads(files[f"blobs/sha256/{digest[7:]}"])
    image = json.loads(files[f"blobs/sha256/{manifest['config']['digest'][7:]}"])
    assert image["config"] == config
    assert image["rootfs"]["diff_ids"] == [x.digest for x in layers]
    assert len([n for n in files if n.startswith("blobs/")]) == 4  # config, manifest, layers
    smaller = io.BytesIO()  # a store that holds the first layer already is not sent it again
    present = frozenset({layers[0].digest})
    oci.write_archive(smaller, layers, config, names, "2026-01-01T00:00:00Z", present)
    with tarfile.open(fileobj=io.BytesIO(smaller.getvalue())) as tar:
        sent = {m.name for m in tar.getmembers()}
    assert f"blobs/sha256/{layers[0].digest[7:]}" not in sent
    assert f"blobs/sha256/{layers[1].digest[7:]}" in sent
