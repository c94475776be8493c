"""The training records against the file they serialize to (the rows of metrics.jsonl).

Oracle: the key lists below are the columns of ``metrics.jsonl`` as written before the history
became records (they are what ``--resume`` reads back), spelled out here on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gnc.train import EpochRecord, TrainResult, load_config, train

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.toml")

TRAIN_KEYS = [
    "epoch", "lr", "train_loss", "train_batch_accuracy", "train_eval_loss", "train_accuracy",
    "test_loss", "test_accuracy", "ncc_train_accuracy", "ncc_test_accuracy",
    "nc4_agreement_test", "gnc1", "gnc2", "gnc2_gap", "gnc2_class_means", "gnc3", "nc1_cdnv",
    "nc2_etf_error", "nc2_equinorm", "nc2_etf_error_weights", "nc2_equinorm_weights",
    "nc3_self_duality", "nc4_agreement", "hyperspherical_uniformity", "gnc2_upper_bound",
    "gnc2_relative_to_upper_bound", "gnc2_code_value", "gnc2_relative_to_code_value",
    "gnc2_softmax_code", "gnc2_relative_to_softmax_code", "seconds", "eval_seconds",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path]:
    out = tmp_path_factory.mktemp("run")
    cfg = load_config(TINY, ["optim.epochs=2", "eval_initial=true", "plots=false"])
    return train(cfg, out), out


def test_epoch_rows_are_the_metrics_file(tiny_run: tuple[TrainResult, Path]) -> None:
    res, out = tiny_run
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [list(row) for row in lines] == [TRAIN_KEYS] * 3
    assert [row.to_dict() for row in res.history] == lines
    assert [EpochRecord.from_dict(row) for row in lines] == list(res.history)
    initial = res.history[0]
    assert initial.epoch == 0 and initial.train_loss is None and initial.seconds == 0.0
    assert initial.gnc2_softmax_code is None and initial.gnc2_relative_to_softmax_code is None
    assert res.final is res.history[-1] and res.finished
    summary = res.to_dict()
    assert summary["final"] == lines[-1] and summary["history"] == lines
    assert json.loads(json.dumps(summary)) == summary  # JSON-ready as it is


def test_from_dict_reads_older_rows_and_rejects_cut_ones() -> None:
    row = {
        "epoch": 3, "lr": 0.01, "train_eval_loss": 1.0, "train_accuracy": 0.5,
        "test_loss": 1.2, "test_accuracy": 0.4, "gnc1": 0.1, "nc1_cdnv": 0.2,
        "nc2_etf_error": 0.3, "nc2_equinorm": 0.1, "hyperspherical_uniformity": -1.0,
        "seconds": 1.5, "eval_seconds": 0.5, "a_key_from_elsewhere": 7,
    }  # fmt: skip
    rec = EpochRecord.from_dict(row)
    assert rec.epoch == 3 and rec.gnc2 is None and rec.train_loss is None
    assert set(rec.to_dict()) == set(TRAIN_KEYS)
    for key in ("epoch", "seconds"):
        with pytest.raises(KeyError, match=key):
            EpochRecord.from_dict({k: v for k, v in row.items() if k != key})
