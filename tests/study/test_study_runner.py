"""`gnc reproduce` end to end on the test-sized profile: files, resume, --force, skips, failures."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from gnc.report.html import VERDICT_WORDS, comparison_counts, split_verdict
from gnc.study import (
    PROFILES,
    SECTIONS,
    Profile,
    SectionResult,
    estimate_seconds,
    prepare_training_data,
    profile_id,
    reproduce,
)
from gnc.study.assignment import opposite_pairs
from gnc.study.lm import section_lm
from gnc.study.pretrained import code_cell, random_cell, section_pretrained
from gnc.study.profile import LMProfile
from gnc.study.records import Progress, SectionSkipped, verdict
from gnc.study.runner import run_section
from gnc.study.training import training_verdicts


def _main(*argv: str) -> int:
    from gnc.cli import SUBCOMMANDS, main

    if "reproduce" not in SUBCOMMANDS:
        pytest.skip("`reproduce` is not registered in gnc.cli.SUBCOMMANDS yet")
    return main(list(argv))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reproduce")
    status = _main(
        "reproduce",
        "--profile",
        "tiny",
        "--out",
        str(out),
        "--only",
        "codes",
        "tammes",
        "--no-progress",
    )
    assert status == 0
    return out


def test_files_and_results_keys(tiny_run: Path) -> None:
    out = tiny_run
    assert (out / "report.html").is_file()
    data = json.loads((out / "results.json").read_text())
    assert {"profile", "ran", "reused", "status", "headline", "sections", "seconds"} <= set(data)
    assert data["status"] == {"codes": "ok", "tammes": "ok"}
    assert data["ran"] == ["codes", "tammes"]
    for name in ("codes", "tammes"):
        section = data["sections"][name]
        assert section["tables"] and section["figures"] and section["comparisons"]
        for fig in section["figures"]:
            png = out / "figures" / f"{name}_{fig['name']}.png"
            assert png.read_bytes()[:4] == b"\x89PNG"
            assert png.read_bytes() == (out / "sections" / name / fig["file"]).read_bytes()
    html = (out / "report.html").read_text()
    assert 'id="codes"' in html and 'id="tammes"' in html and 'id="ufm"' not in html
    assert html.count("data:image/png;base64,") == 4


def test_closed_forms_match_theory(tiny_run: Path) -> None:
    data = json.loads((tiny_run / "results.json").read_text())["sections"]["codes"]["data"]
    for row in data["closed_forms"]:
        assert math.isclose(row["exact"], row["closed_form"], abs_tol=1e-6), row
    # (2, 6): the hexagon, rho* = 1 - cos(pi / 3) = 1/2, is the upper bound as well
    (line,) = data["lines"]
    assert math.isclose(line["ours"], 0.5, abs_tol=1e-9)
    assert line["ours"] <= line["rho_star_upper"] + 1e-9


def test_tammes_rows_respect_bounds(tiny_run: Path) -> None:
    rows = json.loads((tiny_run / "results.json").read_text())["sections"]["tammes"]["data"]
    for row in rows["rows"]:
        # T^2/2 <= rho <= T for any code whose min distance is T (Jiang et al., ICML 2024)
        assert row["T2_half"] - 1e-7 <= row["tammes_rho"] <= row["T"] + 1e-7
    # K = 4 and K = 6 in d = 3: simplex (rho = 4/3) and octahedron (rho = 1)
    by_k = {r["K"]: r for r in rows["rows"]}
    assert math.isclose(by_k[4]["softmax_rho"], 4 / 3, abs_tol=1e-6)
    assert math.isclose(by_k[6]["softmax_rho"], 1.0, abs_tol=1e-6)


def test_resume_reuses_and_force_recomputes(tmp_path: Path) -> None:
    assert (
        _main(
            "reproduce",
            "--profile",
            "tiny",
            "--out",
            str(tmp_path),
            "--only",
            "codes",
            "--no-progress",
        )
        == 0
    )
    stored = tmp_path / "sections" / "codes" / "section.json"
    first, first_text = stored.stat().st_mtime_ns, stored.read_text()
    assert (
        _main(
            "reproduce",
            "--profile",
            "tiny",
            "--out",
            str(tmp_path),
            "--only",
            "codes",
            "--no-progress",
        )
        == 0
    )
    assert stored.stat().st_mtime_ns == first and stored.read_text() == first_text
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["reused"] == ["codes"] and data["ran"] == []
    assert (
        _main(
            "reproduce",
            "--profile",
            "tiny",
            "--out",
            str(tmp_path),
            "--only",
            "codes",
            "--force",
            "--no-progress",
        )
        == 0
    )
    assert stored.stat().st_mtime_ns != first
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["ran"] == ["codes"] and data["reused"] == []


def test_other_profile_is_not_reused(tmp_path: Path) -> None:
    res = reproduce("tiny", tmp_path, only=["codes"], progress=False)
    assert res.ran == ("codes",)
    other = dataclasses.replace(PROFILES["tiny"], name="tiny2")
    assert profile_id(other) != profile_id(PROFILES["tiny"])
    res = reproduce(other, tmp_path, only=["codes"], progress=False)
    assert res.ran == ("codes",) and res.reused == ()


def test_missing_data_skips_with_notice(tmp_path: Path) -> None:
    profile = dataclasses.replace(PROFILES["tiny"], fashion_mnist_dir=str(tmp_path / "none"))
    res = reproduce(profile, tmp_path / "out", only=["assignment", "pretrained"], progress=False)
    assert [s.status for s in res.sections] == ["skipped", "skipped"]
    assert res.failed == ()
    html = res.report.read_text()
    assert "Section skipped: data source missing" in html
    assert 'class="notice warning"' in html


def test_failing_section_is_recorded_and_run_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(profile: Profile, out: Path, progress: Progress) -> SectionResult:
        raise RuntimeError("deliberate failure")

    monkeypatch.setitem(SECTIONS, "ufm", ("3. UFM", boom))
    status = _main(
        "reproduce",
        "--profile",
        "tiny",
        "--out",
        str(tmp_path),
        "--only",
        "ufm",
        "codes",
        "--no-progress",
    )
    assert status == 1
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["status"] == {"codes": "ok", "ufm": "failed"}
    html = (tmp_path / "report.html").read_text()
    assert "RuntimeError: deliberate failure" in html and 'class="notice error"' in html
    # a failed section is recomputed on the next run (not reused)
    monkeypatch.undo()
    res = reproduce("tiny", tmp_path, only=["ufm", "codes"], progress=False)
    assert res.ran == ("ufm",) and res.reused == ("codes",)
    assert {s.name: s.status for s in res.sections} == {"codes": "ok", "ufm": "ok"}


def test_unknown_names_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Expected `profile`"):
        reproduce("huge", tmp_path)
    with pytest.raises(ValueError, match="section names"):
        reproduce("tiny", tmp_path, only=["nope"])


def test_opposite_pairs_oracle() -> None:
    # square with classes at 0, 90, 180, 270 degrees in the order a, b, c, d -> a/c, b/d
    deg = [0.0, 90.0, 180.0, 270.0]
    assert opposite_pairs([math.radians(a) for a in deg]) == [(0, 2), (1, 3)]
    # rotation and angles beyond 2 pi do not change the answer
    assert opposite_pairs([math.radians(a + 400) for a in deg]) == [(0, 2), (1, 3)]
    assert opposite_pairs([math.radians(a) for a in (10, 200, 100, 290)]) == [(0, 1), (2, 3)]
    with pytest.raises(ValueError):
        opposite_pairs([0.0, 1.0])


def test_changed_settings_recompute_and_restart_training(tmp_path: Path) -> None:
    tiny = PROFILES["tiny"]
    res = reproduce(tiny, tmp_path, only=["training"], progress=False)
    # two synthetic epochs do not show GNC: the section says so ("differs"), and still runs
    assert res.ran == ("training",) and res.sections[0].status in ("ok", "differs")
    # same name, other settings: not reused; the old checkpoints (2 epochs) are replaced
    longer = dataclasses.replace(tiny, training=dataclasses.replace(tiny.training, epochs=3))
    assert profile_id(longer) != profile_id(tiny)
    res = reproduce(longer, tmp_path, only=["training"], progress=False)
    assert res.ran == ("training",) and res.sections[0].status in ("ok", "differs")
    histories = res.sections[0].data["histories"]  # label -> one history per seed
    assert all(
        [h["epoch"] for h in seed] == [0, 1, 2, 3] for seeds in histories.values() for seed in seeds
    )
    assert all(len(seeds) == len(tiny.training.seeds) for seeds in histories.values())


def test_pretrained_section_on_a_matrix_file(tmp_path: Path) -> None:
    """Section 7 on a K x d file: every number in its table against an independent computation."""
    import numpy as np
    import torch

    from gnc.analysis.head_geometry import random_rho
    from gnc.geometry import one_vs_rest_distances
    from gnc.geometry.bounds import rho_upper_bound

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
    assert row["upper bound"] == pytest.approx(rho_upper_bound(30, 3), rel=1e-12)
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

    from gnc.geometry import one_vs_rest_distances
    from gnc.train.lm import load_corpus

    try:
        load_corpus("kjv", max_chars=100)
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

    monkeypatch.setattr(lm, "load_corpus", missing)
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


def test_a_section_with_a_differing_row_is_not_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(profile: Profile, out: Path, progress: object) -> SectionResult:
        rows = (("x", 1.0, 0.5, verdict("differs", "half")), ("y", 1, 1, "agrees: same"))
        return SectionResult(name="codes", title="t", status="ok", comparisons=rows)

    monkeypatch.setitem(SECTIONS, "codes", ("t", fake))
    res = run_section("codes", PROFILES["tiny"], Path("unused"), lambda _: None)
    assert res.status == "differs"
    assert comparison_counts(res.comparisons) == "2 rows: 1 agrees, 1 differs."
    with pytest.raises(ValueError, match="verdict"):
        verdict("fine", "x")


def test_prepared_data_file_replaces_the_data_source(tmp_path: Path) -> None:
    """A GPU host without fonts reads the training data from a file prepared elsewhere."""
    tiny = PROFILES["tiny"]
    path = prepare_training_data(tiny, tmp_path / "prepared.npz")
    training = dataclasses.replace(
        tiny.training,
        dataset="cjk",  # would render glyphs; the file wins
        data_file=str(path),
        taus=(1.0,),
        seeds=(0,),
    )
    elsewhere = dataclasses.replace(tiny, training=training, data_root=str(tmp_path / "data"))
    res = reproduce(elsewhere, tmp_path / "out", only=["training"], progress=False)
    section = res.sections[0]
    assert section.status in ("ok", "differs"), section.notices
    assert section.data["dataset"]["name"] == "synthetic"


def test_time_estimates_cover_every_section_and_scale_with_epochs() -> None:
    quick = PROFILES["quick"]
    est = estimate_seconds(quick)
    assert list(est) == list(SECTIONS) and all(v > 0 for v in est.values())
    training = dataclasses.replace(quick.training, epochs=2 * quick.training.epochs)
    longer = dataclasses.replace(quick, training=training)
    assert estimate_seconds(longer, ["training"])["training"] > est["training"]
    assert estimate_seconds(PROFILES["paper"])["training"] > 100 * est["training"]
