"""host.require_room: a step that would fill the disk is refused before it starts, in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cluster import host


@pytest.mark.parametrize(
    ("spare", "refused"),
    [
        (-(10**9), False),  # 1 GB less than is free, margin included: room
        (0, False),  # exactly what is free: room
        (1, True),  # one byte more than is free: refused
        (10**12, True),  # a terabyte more: refused
    ],
)
def test_room_is_free_space_less_the_margin(tmp_path: Path, spare: int, refused: bool) -> None:
    free = shutil.disk_usage(tmp_path).free
    need = max(0, free - host.ROOM_MARGIN + spare)
    if need == 0 and spare > 0:
        pytest.skip("this disk has less free than the margin: nothing to tell apart")
    if refused:
        with pytest.raises(host.NoRoom, match=r"needs [\d.]+ GB of free disk .* GB free$"):
            host.require_room(tmp_path, need, "a step")
    else:
        host.require_room(tmp_path, need, "a step")


def test_a_path_not_made_yet_is_measured_where_it_will_be(tmp_path: Path) -> None:
    with pytest.raises(host.NoRoom, match=f"filesystem of {tmp_path}"):
        host.require_room(tmp_path / "not" / "yet", 10**15, "a step")


def test_no_room_is_a_host_error() -> None:
    """Callers that catch HostError (scripts/image, scripts/cluster) still print it in one line."""
    assert issubclass(host.NoRoom, host.HostError)
