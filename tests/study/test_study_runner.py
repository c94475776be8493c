"""`gnc reproduce` end to end on the test-sized profile: files, resume, --force, skips, failures."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from gnc.report.html import comparison_counts
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
from gnc.study.records import Progress, verdict
from gnc.study.runner import run_section


def _main(*argv: str) -> int:
    from gnc.cli import SUBCOMMANDS, main

    if "reproduce" not in SUBCOMMANDS:
        pytest.skip("`reproduce` is not registered in gnc.cli.SUBCOMMANDS yet")
    return main(list(argv))


def _tiny(out: Path, *argv: str) -> int:
    """``gnc reproduce --profile tiny --out OUT --no-progress ARGV...``."""
    return _main("reproduce", "--profile", "tiny", "--out", str(out), "--no-progress", *argv)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reproduce")
    assert _tiny(out, "--only", "codes", "tammes") == 0
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
    assert _tiny(tmp_path, "--only", "codes") == 0
    stored = tmp_path / "sections" / "codes" / "section.json"
    first, first_text = stored.stat().st_mtime_ns, stored.read_text()
    assert _tiny(tmp_path, "--only", "codes") == 0
    assert stored.stat().st_mtime_ns == first and stored.read_text() == first_text
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["reused"] == ["codes"] and data["ran"] == []
    assert _tiny(tmp_path, "--only", "codes", "--force") == 0
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
    assert _tiny(tmp_path, "--only", "ufm", "codes") == 1
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
