from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gnc.report.plots_train import plot_gnc2, plot_runs, save_training_plots
from gnc.train.config import ModelConfig, load_config
from gnc.train.models import MLP, ResNet18, SmallCNN, build_backbone


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_resnet18_has_the_standard_cifar_parameter_count() -> None:
    # The CIFAR ResNet18 with a 512 -> 10 linear layer has 11,173,962 parameters with the bias;
    # ours ends in 512 -> d without bias.
    assert _count(ResNet18(3, 10)) == 11_173_962 - 10
    assert ResNet18(3, 7, width=4)(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_small_cnn_size_and_shapes() -> None:
    net = SmallCNN(1, 10, width=32)
    assert 300_000 <= _count(net) <= 1_000_000
    assert net(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_build_backbone_checks_inputs() -> None:
    assert isinstance(build_backbone(ModelConfig(name="mlp"), (5,)), MLP)
    with pytest.raises(ValueError, match="Expected image inputs"):
        build_backbone(ModelConfig(name="small_cnn"), (5,))


def test_plot_functions_are_pure_and_draw_the_reference_lines(tmp_path: Path) -> None:
    common = {"gnc2_upper_bound": 0.9}
    hist = [
        {"epoch": 1, "gnc1": 1.0, "gnc2": 0.1, "gnc3": 0.5, "test_accuracy": 0.2, **common},
        {"epoch": 2, "gnc1": 0.1, "gnc2": 0.3, "gnc3": 0.05, "test_accuracy": 0.6, **common},
    ]
    hist[0]["train_loss"], hist[1]["train_loss"] = 2.0, 1.0
    _, ax = plot_gnc2(hist, code_value=0.5)
    ys = sorted(float(line.get_ydata()[0]) for line in ax.lines)
    assert ys == [0.1, 0.5, 0.9]
    _, ax2 = plot_runs({"a": hist, "b": hist}, "gnc1", log=True)
    assert ax2.get_yscale() == "log" and len(ax2.lines) == 2
    paths = save_training_plots(hist, tmp_path / "plots", code_value=0.5)
    assert {p.name for p in paths} == {
        "gnc1.png",
        "gnc2.png",
        "gnc3.png",
        "accuracy.png",
        "loss.png",
    }
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


@pytest.mark.gpu
def test_tiny_run_on_cuda_with_amp(tmp_path: Path) -> None:
    from gnc.train.loop import train

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"
    cfg = load_config(
        tiny,
        ["device=cuda", "amp=true", "plots=false", "data.name=synthetic", "head.kind=cmf"],
    )
    res = train(cfg, tmp_path, progress=False)
    assert res.final.gnc2 is not None and 0.0 <= res.final.test_accuracy <= 1.0
