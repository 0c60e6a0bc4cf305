"""Rank-environment parsing: torchrun names, Indexed Jobs, Kubeflow PET_* names, bad values."""

from __future__ import annotations

import pytest

from trainbed.worker.rank_env import RankEnv, RankEnvError, rank_env


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("env", "hint", "expected"),
    [
        ({}, None, RankEnv(0, 1, 0, "127.0.0.1", 29500)),
        ({}, 4, RankEnv(0, 4, 0, "127.0.0.1", 29500)),
        (
            {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"},
            None,
            RankEnv(1, 2, 0, "10.0.0.1", 1234),
        ),
        (
            {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"},
            2,
            RankEnv(3, 4, 1, "127.0.0.1", 29500),
        ),
        # An Indexed Job's pod: no RANK, JOB_COMPLETION_INDEX stands in; the hint gives the world.
        ({"JOB_COMPLETION_INDEX": "2"}, 3, RankEnv(2, 3, 0, "127.0.0.1", 29500)),
        ({"JOB_COMPLETION_INDEX": "2", "RANK": "0"}, 3, RankEnv(0, 3, 0, "127.0.0.1", 29500)),
        ({"RANK": "", "JOB_COMPLETION_INDEX": "1"}, 2, RankEnv(1, 2, 0, "127.0.0.1", 29500)),
        # Kubeflow PyTorchJob.
        (
            {
                "PET_NNODES": "3",
                "PET_NODE_RANK": "2",
                "PET_MASTER_ADDR": "job-master-0",
                "PET_MASTER_PORT": "23456",
            },
            None,
            RankEnv(2, 3, 0, "job-master-0", 23456),
        ),
        (
            {"PET_WORLD_SIZE": "2", "PET_RANK": "1", "PET_LOCAL_RANK": "0"},
            None,
            RankEnv(1, 2, 0, "127.0.0.1", 29500),
        ),
        # torchrun names win over PET_* names.
        (
            {"WORLD_SIZE": "2", "RANK": "0", "PET_NNODES": "5", "PET_NODE_RANK": "4"},
            None,
            RankEnv(0, 2, 0, "127.0.0.1", 29500),
        ),
    ],
)
def test_rank_env(env: dict[str, str], hint: int | None, expected: RankEnv) -> None:
    got = rank_env(env, hint)
    assert got == expected
    assert got.distributed is (expected.world_size > 1)
    assert got.is_main is (expected.rank == 0)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "env",
    [
        {"RANK": "one", "WORLD_SIZE": "2"},
        {"RANK": "0", "WORLD_SIZE": "two"},
        {"RANK": "2", "WORLD_SIZE": "2"},
        {"RANK": "-1", "WORLD_SIZE": "2"},
        {"RANK": "0", "WORLD_SIZE": "-3"},
        {"RANK": "0", "WORLD_SIZE": "0"},
        {"JOB_COMPLETION_INDEX": "5", "WORLD_SIZE": "2"},
        {"PET_NODE_RANK": "x"},
        {"MASTER_PORT": "0"},
        {"MASTER_PORT": "70000"},
        {"MASTER_PORT": "http"},
        {"LOCAL_RANK": "1.5"},
    ],
)
def test_rank_env_rejects(env: dict[str, str]) -> None:
    with pytest.raises(RankEnvError):
        rank_env(env, None)
