"""The rendezvous gives up within TRAINBED_RDZV_TIMEOUT with an error naming what it waited for."""

from __future__ import annotations

import socket
import time

import pytest

from trainbed.worker.distributed import RendezvousError, init_group
from trainbed.worker.rank_env import RankEnv


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(60)
def test_rendezvous_times_out_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINBED_RDZV_TIMEOUT", "3")
    monkeypatch.setenv("TRAINBED_COLLECTIVE_TIMEOUT", "2")
    port = closed_port()  # nobody listens: the master never comes up
    env = RankEnv(rank=1, world_size=2, local_rank=0, master_addr="127.0.0.1", master_port=port)
    start = time.monotonic()
    with pytest.raises(RendezvousError) as info:
        init_group(env, "gloo")
    elapsed = time.monotonic() - start
    assert elapsed < 20, elapsed
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "within 3 s" in message
    assert "rank 1" in message and "world of 2" in message
