"""Energy meters: RAPL counters with wrap-around, zone discovery, and the honest 'none'."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainbed.worker import energy
from trainbed.worker.energy import CountedElsewhere, NoMeter, RaplMeter, energy_meter, rapl_zones


def zone(root: Path, name: str, uj: int, max_uj: int = 1000) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "energy_uj").write_text(f"{uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("readings", "expected_uj"),
    [
        ([100, 300, 600], 500),  # plain increase
        ([900, 950, 50], 150),  # wrapped once between reads: 50 + (1000 - 950) + 50
        ([500, 500], 0),
        ([999, 0, 999], 1000),  # wrap to exactly zero, then up again
    ],
)
def test_rapl_counts_across_wraparound(
    tmp_path: Path, readings: list[int], expected_uj: int
) -> None:
    path = zone(tmp_path, "intel-rapl:0", readings[0])
    meter = RaplMeter([path])
    for value in readings[1:]:
        (path / "energy_uj").write_text(str(value))
        joules = meter.joules()
    assert joules == pytest.approx(expected_uj / 1e6)
    assert meter.source == "rapl: intel-rapl:0"


@pytest.mark.timeout(10)
def test_rapl_zones_skip_subzones_and_unreadable(tmp_path: Path) -> None:
    zone(tmp_path, "intel-rapl:0", 1)
    zone(tmp_path, "intel-rapl:0:0", 1)  # core sub-zone: inside the package's count
    broken = tmp_path / "intel-rapl:1"
    broken.mkdir()
    (broken / "energy_uj").write_text("not a number")
    (broken / "max_energy_range_uj").write_text("1000")
    assert [z.name for z in rapl_zones(tmp_path)] == ["intel-rapl:0"]
    assert rapl_zones(tmp_path / "absent") == []


@pytest.mark.timeout(10)
def test_energy_meter_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(energy, "RAPL_ROOT", tmp_path)
    monkeypatch.setattr(energy.rapl_zones, "__defaults__", (tmp_path,))
    none = energy_meter("cpu", 0)
    assert isinstance(none, NoMeter) and none.joules() is None
    assert none.source.startswith("none: ")
    zone(tmp_path, "intel-rapl:0", 10)
    assert isinstance(energy_meter("cpu", 0), RaplMeter)
    other = energy_meter("cpu", 1)  # the package counter is read once per machine
    assert isinstance(other, CountedElsewhere) and other.joules() == 0.0
