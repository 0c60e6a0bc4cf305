"""Every model builds for every input shape, with and without batch norm."""

from __future__ import annotations

import pytest
import torch

from trainbed.worker.models import BUILDERS, build_model, output_shape

SHAPES = [(1, 8), (1, 28), (3, 32)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize(("channels", "size"), SHAPES)
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_model_output_shape(name: str, channels: int, size: int, batch_norm: bool) -> None:
    torch.manual_seed(0)
    model = build_model(name, channels, size, 10, batch_norm)
    assert output_shape(model, channels, size) == (2, 10)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if not batch_norm:
        assert not has_bn


@pytest.mark.timeout(10)
def test_unknown_model() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build_model("VGG", 1, 28, 10)
