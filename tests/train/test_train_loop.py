from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gnc.cli
from gnc.train.config import load_config
from gnc.train.loop import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = str(CONFIGS / "tiny.toml")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(gnc.cli, "SUBCOMMANDS", ("train",))
    return gnc.cli.main


def _lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_cli_tiny_end_to_end(tmp_path: Path, cli, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    status = cli(["train", "--config", TINY, "--out", str(out), "--json", "--no-progress"])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    for name in ("config.json", "metrics.jsonl", "results.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    for name in ("gnc1", "gnc2", "gnc3", "accuracy", "loss"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    rows = _lines(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    for key in ("gnc1", "gnc2", "gnc3", "train_accuracy", "test_accuracy", "ncc_train_accuracy",
                "ncc_test_accuracy", "train_loss", "seconds"):  # fmt: skip
        assert rows[-1][key] is not None, key
    assert summary["final"] == rows[-1]
    results = json.loads((out / "results.json").read_text())
    assert results["metadata"]["seed"] == 0 and results["num_classes"] == 8
    assert json.loads((out / "config.json").read_text())["head"]["tau"] == 0.2
    # Rerunning into a folder with a checkpoint needs --resume.
    assert cli(["train", "--config", TINY, "--out", str(out), "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_cli_bad_key_is_one_line_error(
    tmp_path: Path, cli, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    status = cli(["train", "--config", TINY, "--set", "head.temperature=3", "--out", str(tmp_path)])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "head.temperature" in err[0] and err[0].startswith("gnc train: error:")
    assert (
        cli(["train", "--config", TINY, "--set", "optim.epochs=two", "--out", str(tmp_path)]) == 2
    )
    assert "optim.epochs" in capsys.readouterr().err
    assert cli(["train", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path)]) == 2


def test_overrides_parse_fractions_and_lists() -> None:
    cfg = load_config(TINY, ["head.tau=1/7", "data.test_fonts=a,b", "head.kind=cmf"])
    assert cfg.head.tau == pytest.approx(1 / 7) and cfg.data.test_fonts == ("a", "b")
    with pytest.raises(ValueError, match=r"head\.kind"):
        load_config(TINY, ["head.kind=softmax"])
    with pytest.raises(ValueError, match=r"head\.beta"):
        load_config(TINY, ["head.beta=1.5"])


def test_presets_load() -> None:
    for path in sorted(CONFIGS.glob("*.toml")):
        cfg = load_config(path)
        assert cfg.optim.epochs >= 1, path


def _metric_view(rows: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    drop = {"seconds", "eval_seconds"}
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


@pytest.mark.parametrize("kind", ["normalized", "cmf"])
def test_resume_after_interruption_matches_uninterrupted(tmp_path: Path, kind: str) -> None:
    cfg = load_config(TINY, [f"head.kind={kind}", "checkpoint_every=2", "plots=false"])
    train(cfg, tmp_path / "full", progress=False)
    # Interrupted after epoch 3: the last checkpoint is from epoch 2, so epoch 3 is redone.
    part = train(cfg, tmp_path / "part", progress=False, stop_after_epoch=3)
    assert part.epochs_completed == 3
    assert len(_lines(tmp_path / "part" / "metrics.jsonl")) == 3
    assert not (tmp_path / "part" / "results.json").exists()
    resumed = train(cfg, tmp_path / "part", resume=True, progress=False)
    assert resumed.resumed_from_epoch == 2
    rows_full = _lines(tmp_path / "full" / "metrics.jsonl")
    rows_resumed = _lines(tmp_path / "part" / "metrics.jsonl")
    assert [r["epoch"] for r in rows_resumed] == [1, 2, 3, 4]
    assert _metric_view(rows_resumed) == _metric_view(rows_full)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_resume_rejects_other_config(tmp_path: Path) -> None:
    cfg = load_config(TINY, ["optim.epochs=2", "plots=false"])
    train(cfg, tmp_path, progress=False, stop_after_epoch=2)
    other = load_config(TINY, ["optim.epochs=2", "plots=false", "optim.lr=0.2"])
    with pytest.raises(ValueError, match=r"optim\.lr"):
        train(other, tmp_path, resume=True, progress=False)


def test_metrics_agree_with_independent_recomputation(tmp_path: Path) -> None:
    """Accuracy and NCC accuracy in metrics.jsonl versus a NumPy recomputation from the model."""
    from gnc.data import load_dataset
    from gnc.train import Classifier, build_head
    from gnc.train.evaluate import _Inputs
    from gnc.train.models import build_backbone

    cfg = load_config(TINY, ["optim.epochs=2", "plots=false"])
    res = train(cfg, tmp_path, progress=False)
    ds = load_dataset(cfg.data)
    model = Classifier(
        build_backbone(cfg.model, ds.input_shape), build_head(cfg.head, ds.num_classes, 3)
    )
    model.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"])
    model.eval()
    inputs = _Inputs(ds, torch.device("cpu"), "none")
    with torch.no_grad():
        h_tr, _ = model(inputs.prepare(inputs.train_x))
        h_te, z_te = model(inputs.prepare(inputs.test_x))
    acc = float((z_te.argmax(1).numpy() == ds.test_y).mean())
    assert res.final.test_accuracy == pytest.approx(acc, abs=1e-12)
    H = h_tr.double().numpy()
    H /= np.linalg.norm(H, axis=1, keepdims=True)
    means = np.stack([H[ds.train_y == k].mean(0) for k in range(ds.num_classes)])
    T = h_te.double().numpy()
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    pred = ((T[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    assert res.final.ncc_test_accuracy == pytest.approx(float((pred == ds.test_y).mean()))
    # GNC3 from its definition with the head's normalized rows
    W = model.head.classifier_weights().double().numpy()
    M = means - H.mean(0)
    cos = (W * M).sum(1) / np.linalg.norm(W, axis=1) / np.linalg.norm(M, axis=1)
    assert res.final.gnc3 == pytest.approx(float((1 - cos).mean()), rel=1e-6)


def test_fixed_code_head_trains_against_a_given_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixed-code head uses the cached reference code and keeps it unchanged."""
    from gnc.train import reference_code

    K, d = 8, 3
    rng = np.random.default_rng(0)
    code = rng.standard_normal((K, d))
    code /= np.linalg.norm(code, axis=1, keepdims=True)
    cache = tmp_path / "data" / "codes"
    cache.mkdir(parents=True)
    np.savez(cache / f"softmax_code-K{K}-d{d}-seed0.npz", code=code, rho=np.float64(0.5))
    got, rho = reference_code(K, d, cache_dir=cache)
    assert rho == 0.5 and np.allclose(got.numpy(), code)
    cfg = load_config(
        TINY,
        [
            "head.kind=fixed_code",
            f"data.root={json.dumps(str(tmp_path / 'data'))}",
            "optim.epochs=1",
            "plots=false",
        ],
    )
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.code_value == 0.5 and res.final.gnc2_softmax_code == 0.5
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    np.testing.assert_allclose(state["head.code"].numpy(), code, atol=1e-6)


def test_reference_code_uses_softmax_code_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """K <= d + 1: the simplex ETF, rho* = K / (K - 1) (Jiang et al., ICML 2024)."""
    from gnc.train import heads, reference_code

    code, rho = reference_code(4, 3, time_limit=10.0, cache_dir=tmp_path)
    assert rho == pytest.approx(4 / 3, abs=1e-9)
    gram = code @ code.T
    off = gram[~torch.eye(4, dtype=torch.bool)]
    torch.testing.assert_close(off, torch.full_like(off, -1 / 3), atol=1e-9, rtol=0)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(heads, "softmax_code", boom)
    code2, rho2 = reference_code(4, 3, cache_dir=tmp_path)
    assert rho2 == rho and torch.equal(code2, code)


def test_cmf_buffer_after_training_is_the_hand_computed_running_mean(tmp_path: Path) -> None:
    """Oracle for the CMF head inside the loop (#18): lr = 1e-12 keeps the features fixed, so the
    buffer after two epochs must equal the normalized momentum sums computed by hand over the
    loop's own batch sequence from the seeded initial rows (updates in training mode only, with
    the batch's labels; evaluation, including the epoch-0 one, must not touch it)."""
    from gnc._runtime import make_generator
    from gnc.data import ArrayDataset
    from gnc.train import config_from_dict
    from gnc.train.heads import ClassMeanHead
    from gnc.train.loop import _batches
    from gnc.train.models import build_backbone

    rng = np.random.default_rng(0)
    K, n, beta, epochs, batch = 5, 60, 0.3, 2, 16
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = np.arange(n, dtype=np.int64) % K
    ds = ArrayDataset("fixed", x, y, x[:10], y[:10], tuple("abcde"), {})
    cfg = config_from_dict(
        {
            "data": {"name": "synthetic"},
            "model": {"name": "mlp", "feature_dim": 3, "width": 8},
            "head": {"kind": "cmf", "tau": 0.5, "beta": beta, "reference_code": False},
            "optim": {"epochs": epochs, "batch_size": batch, "lr": 1e-12, "weight_decay": 0.0},
            "eval_initial": True,
            "device": "cpu",
            "plots": False,
        }
    )
    res = train(cfg, tmp_path, progress=False, dataset=ds)
    assert [h.epoch for h in res.history] == [0, 1, 2]
    state = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=False)
    backbone = build_backbone(cfg.model, (6,))
    backbone.load_state_dict(
        {k[len("backbone.") :]: v for k, v in state["model"].items() if k.startswith("backbone.")}
    )
    with torch.no_grad():
        feats = backbone(torch.from_numpy(x - x.astype(np.float64).mean(0).astype(np.float32)))
    h_all = feats.double().numpy()
    h_all /= np.linalg.norm(h_all, axis=1, keepdims=True)
    gen = torch.Generator().manual_seed(cfg.seed + 7919)
    W = ClassMeanHead(K, 3, generator=gen).weight.double().numpy()
    for epoch in range(1, epochs + 1):
        for idx in _batches(n, batch, make_generator(cfg.seed, epoch)):
            h, lab = h_all[idx.numpy()], y[idx.numpy()]
            for k in np.unique(lab):
                v = beta * W[k] + (1 - beta) * h[lab == k].sum(axis=0)
                W[k] = v / np.linalg.norm(v)
    np.testing.assert_allclose(state["model"]["head.weight"].double().numpy(), W, atol=1e-5)
