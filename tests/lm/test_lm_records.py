"""The language-model records against the files they serialize to (history.json, results.json).

Oracle: the key list below is the columns of ``metrics.jsonl`` / ``history.json`` as written
before the history became records, spelled out here on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

from gnc.lm import LMConfig, LMEpoch, prepare_lm_data, train_lm

LM_KEYS = [
    "epoch", "lr", "train_loss", "train_batch_accuracy", "train_eval_loss", "train_accuracy",
    "test_loss", "test_accuracy", "test_perplexity", "feature_norm_mean", "weight_norm_mean",
    "metric_samples", "metric_classes", "gnc1", "nc1_trace_ratio", "gnc2",
    "gnc2_median_distance", "gnc2_argmin", "gnc2_certified", "gnc2_present", "gnc3",
    "ncc_train_accuracy", "nc4_agreement", "ncc_test_accuracy", "ncc_test_coverage",
    "gnc2_upper_bound", "seconds", "eval_seconds",
]  # fmt: skip


def test_lm_epoch_rows_keep_their_keys(tmp_path: Path) -> None:
    text = " ".join("abcdef"[i % 6] for i in range(300))
    data = prepare_lm_data(text, 7, test_fraction=0.2)
    cfg = LMConfig(num_classes=7, context=2, embedding_dim=4, hidden_dim=16, feature_dim=3,
                   epochs=1, batch_size=16, lr=1e-2, metric_samples=50, device="cpu")  # fmt: skip
    res = train_lm(cfg, data, out_dir=tmp_path)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [list(row) for row in history] == [LM_KEYS] * 2
    assert [row.to_dict() for row in res.history] == history
    assert isinstance(res.final, LMEpoch) and res.final.epoch == 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert {k: results[k] for k in res.to_dict()} == json.loads(json.dumps(res.to_dict()))
    assert results["rho_star_upper"] == res.rho_star_upper
    assert [band["ranks"] for band in results["distance_by_frequency"]] == [
        list(band.ranks) for band in res.distance_by_frequency
    ]
