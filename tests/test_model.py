"""Tests of nas.model: build() follows the genotype, deploy() fuses without changing outputs, export works."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.genotype import Genotype, GenotypeError, from_dict, load
from nas.model import build, deploy
from nas.ops import ACBConv2d, GhostBottleneck, GroupChannelWise, InvertedResidual

torch.set_num_threads(1)

REFERENCE = Path(__file__).resolve().parents[1] / "search_spaces" / "reference"
REFERENCE_NAMES = sorted(p.stem for p in REFERENCE.glob("*.yaml"))

# Small hand-made genotypes; together they cover every op the builder knows.
HAND: dict[str, dict] = {
    "ghost_se_efficient_head": {
        "stem": {"out": 16, "act": "hswish"},
        "stages": [
            [{"out": 16, "kind": "ghost", "mid": 16, "kernels": [3], "ghost": 2}],
            [{"out": 24, "kind": "ghost", "stride": 2, "mid": 48, "kernels": [5], "ghost": 3, "acb": True,
              "se": 0.25, "se_base": "mid", "se_divisor": 4, "se_gate": "hsigmoid"},
             {"out": 24, "kind": "ghost", "mid": 72, "kernels": [3], "ghost": 2, "ghost_kernel": 5}],
        ],
        "head": {"features": 96, "hidden": 128, "act": "hswish"},
    },
    "acb_mixconv_se": {
        "stem": {"out": 16, "kernel": 5, "acb": True},
        "stages": [
            [{"out": 16, "kernels": [3, 5], "acb": True, "se": 0.25}],
            [{"out": 24, "stride": 2, "kernels": [1, 3, 7, 9, 11], "split": "exponential", "expand": 6, "acb": True,
              "se": 0.5, "act": "swish", "se_act": "relu"},
             {"out": 24, "kernels": [3, 5, 7], "expand": 3, "dilation": 2, "act": "relu6"}],
        ],
        "head": {"features": 64},
    },
    "groups_shuffle": {
        "stem": {"out": 16},
        "stages": [
            [{"out": 24, "stride": 2, "kernels": [3, 5, 7, 9], "expand": 6, "exp_groups": 2, "proj_groups": 2,
              "shuffle": True, "act": "swish"},
             {"out": 24, "kernels": [3, 5], "expand": 4, "exp_groups": 4, "proj_groups": 4, "shuffle": True}],
            [{"out": 40, "stride": 2, "kernels": [3], "expand": 3, "exp_groups": 2, "proj_groups": 2, "se": 0.25}],
        ],
        "head": {"features": 128, "dropout": 0.1},
    },
    "cw_proj_cw_head": {
        "stem": {"out": 16},
        "stages": [
            [{"out": 16, "kernels": [3], "proj": "cw"}],
            [{"out": 32, "stride": 2, "kernels": [3, 5], "expand": 4, "proj": "cw", "proj_groups": 4, "ghost": 1},
             {"out": 32, "kernels": [3], "expand": 2, "proj": "cw", "se": 0.25, "act": "hswish"}],
        ],
        "head": {"features": 64, "kind": "cw"},
    },
    "ghost_ir_cw_head_hidden": {
        "stem": {"out": 8, "stride": 1},
        "stages": [
            [{"out": 16, "stride": 2, "kernels": [3, 5], "expand": 4, "ghost": 2}],
            [{"out": 24, "stride": 2, "kernels": [5], "expand": 3, "ghost": 4, "ghost_kernel": 1, "se": 0.25}],
        ],
        "head": {"features": 0, "hidden": 48, "kind": "cw"},
    },
}


def _hand(name: str, resolution: int = 32) -> Genotype:
    return from_dict({"name": name, "resolution": resolution, **HAND[name]})


def _randomize(m: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics/affine params and a classifier of unit-scale outputs."""
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        with torch.no_grad():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                mod.bias.copy_(torch.randn(n, generator=g) * 0.2)
            elif isinstance(mod, (nn.Linear, nn.Conv3d)):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) / fan_in**0.5)
    return m


def _assert_deploy_equal(g: Genotype, num_classes: int = 10, batch: int = 2) -> None:
    torch.manual_seed(0)
    model = _randomize(build(g, num_classes)).eval()
    fused = deploy(model)
    x = torch.randn(batch, g.in_chans, g.resolution, g.resolution)
    with torch.no_grad():
        ref, out = model(x), fused(x)
    assert out.shape == (batch, num_classes)
    assert ref.abs().max() > 1e-2  # a meaningful comparison, not two near-zero tensors
    err = (out - ref).abs().max().item() / max(1.0, ref.abs().max().item())
    assert err < 1e-4, f"{g.name}: deployed output differs by {err:.2e}"
    assert not any(isinstance(m, (nn.BatchNorm2d, ACBConv2d)) for m in fused.modules())


@pytest.mark.parametrize("name", list(HAND))
def test_deploy_matches_eval_module(name):
    _assert_deploy_equal(_hand(name))


@pytest.mark.parametrize("name", list(HAND))
def test_build_train_step(name):
    g = _hand(name)
    model = build(g, 10).train()
    x = torch.randn(4, 3, 32, 32)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())


def test_build_structure_follows_genotype():
    g = _hand("groups_shuffle")
    model = build(g, 10)
    assert len(model.stages) == len(g.stages)
    assert [len(s) for s in model.stages] == [len(s) for s in g.stages]
    assert isinstance(model.stages[0][0], InvertedResidual)
    assert model.stages[0][1].residual and not model.stages[0][0].residual
    gg = build(_hand("ghost_se_efficient_head"), 10)
    assert isinstance(gg.stages[1][0], GhostBottleneck)
    cw = build(_hand("cw_proj_cw_head"), 10)
    assert isinstance(cw.stages[1][0].project, GroupChannelWise)
    assert cw.stages[1][0].project.fuse.conv.out_channels == 4  # g = proj_groups when > 1
    assert cw.stages[0][0].project.fuse.conv.out_channels == 2  # g = max(proj_groups, 2)


def test_deploy_leaves_the_input_untouched():
    model = _randomize(build(_hand("acb_mixconv_se"), 10)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    fused = deploy(model)
    assert fused is not model and model.training and not fused.training
    assert [type(m) for m in model.modules()] == types
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # The fused model has fewer parameters: ACB branches and BNs are gone.
    assert sum(p.numel() for p in fused.parameters()) < sum(p.numel() for p in model.parameters())
    # Deploying a deployed model changes nothing.
    again = deploy(fused)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), fused(x))


def test_cw_head_needs_enough_channels():
    g = _hand("cw_proj_cw_head")
    with pytest.raises(GenotypeError, match="head.kind"):
        build(g, 1000)


def test_cw_proj_divisibility_is_validated():
    bad = {**HAND["cw_proj_cw_head"], "stages": [[{"out": 15, "kernels": [3], "proj": "cw"}]]}
    with pytest.raises(GenotypeError, match=r"stages\[0\]\.blocks\[0\]\.proj"):
        from_dict({"resolution": 32, **bad})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit and the TorchScript ONNX exporter
def test_trace_script_and_onnx_export():
    import onnxruntime as ort

    g = _hand("acb_mixconv_se")
    fused = deploy(_randomize(build(g, 10)))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = fused(x)
        torch.testing.assert_close(torch.jit.trace(fused, x)(x), ref)
        torch.testing.assert_close(torch.jit.script(fused)(x), ref)
    f = io.BytesIO()
    torch.onnx.export(fused, (x,), f, dynamo=False, input_names=["x"], output_names=["y"], opset_version=17)
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_reference_deploy(name):
    path = REFERENCE / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    _assert_deploy_equal(load(path).replace(resolution=64), num_classes=1000, batch=1)


@pytest.mark.parametrize("name", list(HAND))
def test_build_matches_analytic_cost(name):
    from torch.utils.flop_counter import FlopCounterMode

    from nas.cost import macs

    g = _hand(name)
    model = build(g, 10).eval()
    cost = macs.count(g, num_classes=10, deployed=False)  # the module as built for training (ACB unfolded)
    assert sum(p.numel() for p in model.parameters()) == cost.params
    x = torch.randn(1, 3, g.resolution, g.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    assert fc.get_total_flops() // 2 == cost.macs
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        deploy(model)(x)
    assert fc.get_total_flops() // 2 == macs.count(g, num_classes=10).macs  # the default: the deployed network
