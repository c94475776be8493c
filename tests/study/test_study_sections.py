"""The sections one by one: every number against an independent computation or a stated rule."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from gnc.report.html import VERDICT_WORDS, split_verdict
from gnc.study import PROFILES, Profile
from gnc.study.assignment import opposite_pairs
from gnc.study.lm import section_lm
from gnc.study.pretrained import code_cell, random_cell, section_pretrained
from gnc.study.profile import LMProfile
from gnc.study.records import SectionSkipped
from gnc.study.training import training_verdicts


def test_opposite_pairs_oracle() -> None:
    # square with classes at 0, 90, 180, 270 degrees in the order a, b, c, d -> a/c, b/d
    deg = [0.0, 90.0, 180.0, 270.0]
    assert opposite_pairs([math.radians(a) for a in deg]) == [(0, 2), (1, 3)]
    # rotation and angles beyond 2 pi do not change the answer
    assert opposite_pairs([math.radians(a + 400) for a in deg]) == [(0, 2), (1, 3)]
    assert opposite_pairs([math.radians(a) for a in (10, 200, 100, 290)]) == [(0, 1), (2, 3)]
    with pytest.raises(ValueError):
        opposite_pairs([0.0, 1.0])


def test_pretrained_section_on_a_matrix_file(tmp_path: Path) -> None:
    """Section 7 on a K x d file: every number in its table against an independent computation."""
    import numpy as np
    import torch

    from gnc.analysis.reference import random_rho
    from gnc.geometry import one_vs_rest_distances
    from gnc.geometry.bounds import rho_star_upper

    rng = np.random.default_rng(5)
    W = rng.normal(size=(30, 3))
    W[7] = 2.0 * W[3]  # a coinciding row (same direction): merged before the exact rho
    path = tmp_path / "head.npy"
    np.save(path, W)
    tiny = PROFILES["tiny"]
    heads = dataclasses.replace(
        tiny.pretrained, head_sources=(str(path),), feature_sources=(), time_limit=2.0
    )
    profile = dataclasses.replace(tiny, pretrained=heads)
    res = section_pretrained(profile, tmp_path / "out", lambda _msg: None)
    table = res.tables[0]
    assert len(table.rows) == 1
    row = dict(zip(table.headers, table.rows[0], strict=True))
    distinct = np.delete(W, 7, axis=0)
    expected = one_vs_rest_distances(torch.from_numpy(distinct))
    assert (row["K"], row["d"], row["rows merged"]) == (30, 3, 1)
    assert row["rho"] == pytest.approx(expected.rho, abs=1e-12) and row["certified"] is True
    assert row["upper bound"] == pytest.approx(rho_star_upper(30, 3), rel=1e-12)
    assert row["random rows"] == pytest.approx(random_rho(30, 3, seed=0)[0], abs=1e-12)
    # a softmax code of the same shape: no better than the bound, far better than random rows
    assert row["random rows"] < row["softmax code"] <= row["upper bound"] + 1e-9
    assert row["GNC1"] is None and row["GNC3"] is None
    assert [f.name for f in res.figures] == ["pretrained"]
    assert (tmp_path / "out" / res.figures[0].file).is_file()


def test_pretrained_cells_say_bracket_and_reduced_shape() -> None:
    exact = {"random_lower": 0.5, "random_rho": 0.5, "code_rho": 0.2, "code_shape": (9, 3)}
    assert random_cell(exact) == 0.5
    assert code_cell({**exact, "K": 9, "d": 3}) == 0.2
    bracket = {"random_lower": 0.57891, "random_rho": 0.67722}
    assert random_cell(bracket) == "[0.5789, 0.6772]"
    reduced = {"code_rho": 0.014459, "code_shape": (468, 3), "K": 18710, "d": 120}
    assert code_cell(reduced) == "0.01446 (K'=468, d'=3)"
    assert random_cell({"random_lower": None, "random_rho": None}) is None


def _lm_profile() -> Profile:
    lm = LMProfile(
        heads=(("linear", 1.0), ("normalized", 0.1)),
        num_classes=60,
        feature_dim=4,
        epochs=1,
        max_chars=30_000,
        train_positions=600,
        metric_samples=300,
    )
    return dataclasses.replace(PROFILES["tiny"], lm=lm)


def test_lm_section_reports_what_the_runs_measured(tmp_path: Path) -> None:
    """Section 8: each table cell against the run's own files, GNC2 recomputed from the head."""
    import numpy as np
    import torch

    from gnc.data import load_text
    from gnc.geometry import one_vs_rest_distances

    try:
        load_text("kjv", max_chars=100)
    except ValueError as err:
        pytest.skip(f"needs the KJV corpus: {err}")
    res = section_lm(_lm_profile(), tmp_path, lambda _msg: None)
    table = res.tables[0]
    assert [row[0] for row in table.rows] == ["linear", "normalized-tau0.1"]
    for row in table.rows:
        cells = dict(zip(table.headers, row, strict=True))
        history = json.loads((tmp_path / "runs" / str(row[0]) / "history.json").read_text())
        assert cells["test perplexity"] == pytest.approx(history[-1]["test_perplexity"])
        assert cells["GNC2 at init"] == pytest.approx(history[0]["gnc2"])
        with np.load(tmp_path / "runs" / str(row[0]) / "head.npz") as z:
            W = torch.from_numpy(z["weights"]).double()
        assert cells["GNC2"] == pytest.approx(one_vs_rest_distances(W).rho, abs=1e-9)
    assert (tmp_path / res.figures[0].file).is_file()
    assert "untrained -> trained" in res.summary


def test_lm_section_skips_without_corpus_or_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SectionSkipped, match="no language-model heads"):
        section_lm(PROFILES["tiny"], tmp_path, lambda _msg: None)
    import gnc.study.lm as lm

    def missing(name: str, *, max_chars: int | None = None) -> str:
        raise ValueError("the KJV is not installed: apt-get install bible-kjv")

    monkeypatch.setattr(lm, "load_text", missing)
    with pytest.raises(SectionSkipped, match="data source missing: the KJV is not installed"):
        section_lm(_lm_profile(), tmp_path, lambda _msg: None)


def _stats(tau: float, ratio: float, gnc1: tuple[float, float], acc: float) -> dict[str, object]:
    code = 0.66
    return {
        "tau": tau,
        "gnc2": [ratio * code, ratio * code],
        "ratio": [ratio, ratio],
        "acc": [acc, acc],
        "gnc1": [gnc1[1]] * 2,
        "gnc3": [gnc1[1]] * 2,
        "gnc1_0": [gnc1[0]] * 2,
        "gnc3_0": [gnc1[0]] * 2,
    }


def test_training_verdicts_are_computed_from_the_numbers() -> None:
    """#18: the training rows say agrees / differs / not comparable from the numbers given."""
    shown = {
        "tau=1": _stats(1.0, 0.55, (0.5, 1e-4), 99.5),
        "tau=1/7": _stats(1 / 7, 0.88, (0.5, 1e-4), 99.5),
    }
    rows = training_verdicts(shown, 0.66, epochs=120, num_classes=100)
    by_name = {r[0]: split_verdict(r[3]) for r in rows}
    assert all(kind in VERDICT_WORDS for kind, _ in by_name.values())
    assert by_name["GNC2 / softmax-code value, tau=1/7"][0] == "agrees"
    assert by_name["GNC2 / code value, tau=1 vs tau=1/7"][0] == "agrees"
    assert by_name["GNC1 untrained -> final, tau=1/7"][0] == "agrees"
    assert by_name["test accuracy %, tau=1 vs tau=1/7"][0] == "not comparable"
    assert by_name["final GNC2, tau=1/7"][0] == "not comparable"
    # the 15-epoch run: 0.278 / 0.234 / 0.301 of a 0.659 code, GNC1 barely falling
    short = {
        "tau=1": _stats(1.0, 0.278 / 0.659, (0.5, 0.1), 40.0),
        "tau=1/7": _stats(1 / 7, 0.301 / 0.659, (0.5, 0.1), 45.0),
    }
    rows = training_verdicts(short, 0.659, epochs=15, num_classes=100)
    by_name = {r[0]: split_verdict(r[3]) for r in rows}
    assert by_name["GNC2 / softmax-code value, tau=1/7"][0] == "differs"
    assert "0.46" in by_name["GNC2 / softmax-code value, tau=1/7"][1]
    assert by_name["GNC2 / code value, tau=1 vs tau=1/7"][0] == "differs"
    assert by_name["GNC1 untrained -> final, tau=1/7"][0] == "differs"
    assert by_name["test accuracy %, tau=1 vs tau=1/7"][0] == "agrees"


def test_codes_summary_follows_the_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed form off its known value turns the codes section to "differs" and says so."""
    import gnc.study.codes as codes

    tiny = PROFILES["tiny"]
    res = codes.section_codes(tiny, tmp_path / "right", lambda _msg: None)
    assert res.status == "ok" and "matches the theory" in res.summary
    exact = codes.exact_rho
    monkeypatch.setattr(codes, "exact_rho", lambda W: (exact(W)[0] + 1e-3, True))
    res = codes.section_codes(tiny, tmp_path / "wrong", lambda _msg: None)
    assert res.status == "differs"
    assert "off the theory by up to 1.0e-03" in res.summary and "matches" not in res.summary


def test_catalogue_inconsistency_is_not_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gnc.study.catalogue as cat

    real = cat.compare_catalogue

    def above(softmax: object, tammes: object) -> list[dict[str, object]]:
        rows = real(softmax, tammes)  # type: ignore[arg-type]
        return [{**rows[0], "rho": rows[0]["rho_star_upper"] + 1e-3}, *rows[1:]]

    monkeypatch.setattr(cat, "compare_catalogue", above)
    res = cat.section_catalogue(PROFILES["tiny"], tmp_path, lambda _msg: None)
    assert res.status == "differs"
    assert "1 above the proven upper bound" in res.summary and "none above" not in res.summary


class _LMRun:
    def __init__(self, gnc2: tuple[float, float], trace_ratio: float) -> None:
        self.history = [SimpleNamespace(gnc2=gnc2[0])]
        self.final = SimpleNamespace(gnc2=gnc2[1], nc1_trace_ratio=trace_ratio)


def test_lm_conclusions_are_drawn_from_the_numbers() -> None:
    from gnc.study.lm import NO_COLLAPSE_RATIO, _conclusions

    falls = _conclusions([_LMRun((0.3, 0.1), 0.8), _LMRun((0.3, 0.2), 0.5)])
    assert "GNC2 falls in every run" in falls and ">= 0.50 in every run" in falls
    # one run rises, one run's features collapse: neither conclusion is drawn
    assert _conclusions([_LMRun((0.1, 0.3), 0.8), _LMRun((0.3, 0.2), 1e-3)]) == ""
    edge = _conclusions([_LMRun((0.1, 0.3), NO_COLLAPSE_RATIO)])
    assert "do not collapse" in edge and "falls" not in edge


def test_pretrained_summary_names_the_measured_features_only() -> None:
    from gnc.study.pretrained import _features_summary

    head = {"head": "ocr", "features": None}
    assert _features_summary([head]) == ""
    measured = {"head": "ocr", "features": {"gnc1": 0.25, "gnc3": 0.5, "gnc3_shuffled": 0.99}}
    text = _features_summary([head, measured])
    assert "ocr GNC1 0.25, GNC3 0.5 (mismatched pairs 0.99)" in text
