"""Model shapes, sizes, channels_last and bf16 autocast on CPU."""

from __future__ import annotations

import pytest
import torch

from sam_hallucination.models import MLP, AirbenchNet, ResNet18, count_parameters, make_model


def test_parameter_counts():
    assert 1.9e6 < count_parameters(AirbenchNet(10)) < 2.1e6
    assert 11.1e6 < count_parameters(ResNet18(10)) < 11.3e6
    # 784*256 + 256 + 256*10 + 10
    assert count_parameters(MLP(784, 256, 10)) == 784 * 256 + 256 + 2570


@pytest.mark.parametrize("name", ["airbench", "resnet18"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_conv_nets_channels_last_bf16(name, shape):
    torch.manual_seed(0)
    model = make_model(name, 10, in_channels=shape[0]).to(memory_format=torch.channels_last)
    x = torch.randn(2, *shape).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, 10) and out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()
    out.float().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)  # fp32 weights


def test_airbench_fp32_matches_channels_last():
    torch.manual_seed(0)
    model = AirbenchNet(10).eval()
    x = torch.randn(2, 3, 32, 32)
    a = model(x)
    b = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_airbench_bn_scale_frozen():
    model = AirbenchNet(10)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.weight.requires_grad and m.bias.requires_grad for m in bns)


def test_mlp_flattens_and_depth():
    model = make_model("mlp", 10, input_shape=(1, 28, 28), hidden=32)
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    deep = MLP(12, 8, 3, depth=3)
    assert sum(isinstance(m, torch.nn.Linear) for m in deep.modules()) == 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert deep(torch.randn(2, 3, 2, 2)).dtype == torch.bfloat16


def test_make_model_errors():
    with pytest.raises(ValueError, match="unknown model 'vgg'.*airbench, resnet18, mlp"):
        make_model("vgg", 10)
    with pytest.raises(ValueError, match="in_features"):
        make_model("mlp", 10)
    with pytest.raises(ValueError, match="num_classes"):
        make_model("airbench", 1)
    with pytest.raises(ValueError, match="depth"):
        MLP(4, 4, 2, depth=0)


def test_airbench_batchnorm_keeps_0_6_of_the_running_statistic():
    """airbench's BN "momentum 0.6" is torch momentum 0.4: running = 0.6 running + 0.4 batch."""
    from sam_hallucination.models import BN_RUNNING_STAT_DECAY, ConvGroup

    assert BN_RUNNING_STAT_DECAY == 0.6
    g = ConvGroup(3, 4).train()
    assert g.norm1.momentum == pytest.approx(0.4)
    x = torch.randn(8, 3, 8, 8)
    with torch.no_grad():
        pre = g.pool(g.conv1(x))
        g(x)
    batch_mean = pre.mean(dim=(0, 2, 3))
    torch.testing.assert_close(g.norm1.running_mean, 0.4 * batch_mean)  # started at 0
