"""End-to-end tests of ``gnc head`` on tiny matrices written into ``tmp_path``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

import gnc.cli


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(gnc.cli, "SUBCOMMANDS", ("head",))
    return gnc.cli.main


def _polygon_with_duplicate(path: Path, K: int = 8) -> None:
    angles = np.arange(K) * 2 * np.pi / K
    W = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.save(path, np.vstack([W, 5 * W[[3]]]))


def test_json_and_run_folder(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "gon.npy"
    _polygon_with_duplicate(src)
    out = tmp_path / "run"
    argv = ["head", "--source", str(src), "--json", "--out", str(out), "--no-code"]
    status = main([*argv, "--random", "reduced", "--code-max-classes", "5"])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    value = 1 - math.cos(2 * math.pi / 8)
    assert summary["num_classes"] == 9 and summary["feature_dim"] == 2
    assert summary["gnc2"] == 0.0 and summary["rho_all"]["certified"]
    assert summary["rho_all"]["argmin"] in (3, 8)
    assert summary["gnc2_distinct"] == pytest.approx(value, abs=1e-12)
    assert summary["rho_distinct"]["certified"]
    assert summary["duplicates"]["rows_merged"] == 1
    assert summary["duplicates"]["examples"] == [["#3", "#8"]]
    assert summary["distances_sample"]["is_all"]
    assert summary["distances_sample"]["quantiles"]["q50"] == pytest.approx(value, abs=1e-12)
    assert summary["random_rho"] is None
    assert summary["reduced"] is not None and summary["reduced"]["random_rho"] is not None
    assert summary["max_cosine"] == pytest.approx(1.0)
    results = json.loads((out / "results.json").read_text())
    assert results["gnc2_distinct"] == summary["gnc2_distinct"]
    assert "metadata" in results and json.loads((out / "config.json").read_text())["seed"] == 0
    with np.load(out / "distances.npz") as npz:
        assert npz["sample_classes"].tolist() == list(range(8))
        np.testing.assert_allclose(npz["sample_distances"], value, atol=1e-12)
        assert npz["representative"].tolist() == [*range(8), 3]
    for name in ("distances.png", "distances_log.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert not list(out.rglob("*.tmp"))


def test_text_output(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "gon.npy"
    _polygon_with_duplicate(src)
    assert main(["head", "--source", str(src), "--no-code", "--random", "off"]) == 0
    text = capsys.readouterr().out
    assert "GNC2 rho (distinct)" in text and "K=9, d=2" in text


def test_error_exits(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["head", "--source", str(tmp_path / "missing.npy")]) == 2
    assert "gnc head: error:" in capsys.readouterr().err
    assert main(["head", "--source", "gpt5"]) == 2
    assert "smollm2" in capsys.readouterr().err
    np.save(tmp_path / "w.npy", np.eye(3))
    assert main(["head", "--source", str(tmp_path / "w.npy"), "--sample-classes", "-1"]) == 2
    assert "--sample-classes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["head"])
    assert exc.value.code == 2


def test_unargmaxable_json_and_per_class(
    main, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    # A square, two points inside it (one exactly twice), and a copy of a corner.
    W = np.array(
        [[1, 1], [1, -1], [-1, 1], [-1, -1], [0.2, 0.1], [0.0, -0.5], [0.0, -0.5], [1, 1]],
        dtype=np.float64,
    )
    src = tmp_path / "sq.npy"
    np.save(src, W)
    table = tmp_path / "classes.tsv"
    argv = ["head", "--source", str(src), "--json", "--no-code", "--random", "off"]
    assert main([*argv, "--per-class", str(table)]) == 0
    s = json.loads(capsys.readouterr().out)
    for key in ("num_classes", "dim", "rho", "coinciding_rows", "unargmaxable", "certified"):
        assert key in s
    assert s["num_classes"] == 8 and s["dim"] == 2 and s["seconds"] > 0
    # Rows 4, 5, 6 lie inside the hull (5 and 6 coincide but are inside, not a tie).
    assert s["unargmaxable"] == 3 and s["certified"]
    am = s["argmax"]
    assert am["coinciding"] == 2 and am["undecided"] == 0
    assert [e["id"] for e in am["examples"]] == [4, 5]
    assert all(e["raw_distance_at_most"] <= 1e-9 for e in am["examples"])
    # Rows 4 and 5 (6 is 5's twin) are decided in their own frame: inside, residual at rounding.
    assert am["refined"] == am["refined_inside"] == 2 and am["refined_argmaxable"] == 0
    assert all(e["raw_distance_at_most"] <= 1e-14 for e in am["examples"])
    assert s["distances_sample"]["is_all"]
    rows = [line.split("\t") for line in table.read_text().splitlines()]
    header = "id token argmax D_k_raw D_k_normalized D_k_normalized_lower D_k_normalized_upper"
    assert rows[0] == [*header.split(), "nearest_rows"]
    assert len(rows) == 9
    by_id = {int(r[0]): r for r in rows[1:]}
    assert by_id[4][2] == "unargmaxable" and by_id[0][2] == "coinciding"
    assert by_id[1][2] == "argmaxable"
    # Raw D_k of the corner (1, -1) among the distinct raw rows: its distance to the hull edge
    # from (1, 1) to (0, -0.5), i.e. |(-1, -1.5) x (0, -2)| / |(-1, -1.5)| = 2 / sqrt(3.25).
    assert float(by_id[1][3]) == pytest.approx(2 / math.sqrt(3.25), abs=1e-9)
    assert float(by_id[4][3]) == pytest.approx(0.0, abs=1e-9)
    assert float(by_id[7][4]) == 0.0  # same direction as row 0
    assert by_id[1][4] == by_id[1][5] == by_id[1][6]  # exact: the bracket is one value
    assert len(by_id[2][7].split()) == 3


def test_sample_classes_options(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    W = np.random.default_rng(0).standard_normal((40, 3))
    src = tmp_path / "r.npy"
    np.save(src, W)
    argv = ["head", "--source", str(src), "--json", "--no-code", "--random", "off"]
    assert main([*argv, "--sample-classes", "5"]) == 0
    ds = json.loads(capsys.readouterr().out)["distances_sample"]
    assert ds["size"] == 5 and not ds["is_all"] and ds["estimated_all_seconds"] is None
    # A budget too small for the exact run and for the brackets falls back to an exact sample
    # (here all 40 classes) and says why.
    assert main([*argv, "--time-budget", "1e-9"]) == 0
    ds = json.loads(capsys.readouterr().out)["distances_sample"]
    assert ds["size"] == 40 and "brackets at" in ds["reason"] and "budget" in ds["reason"]
    # --sample-classes brackets brackets every class; the brackets hold the exact values of a
    # run with --sample-classes all.
    table = tmp_path / "b.csv"
    assert main([*argv, "--sample-classes", "brackets", "--per-class", str(table)]) == 0
    s = json.loads(capsys.readouterr().out)
    ds, da = s["distances_sample"], s["distances_all"]
    assert ds["size"] == 0 and not ds["is_all"] and "requested" in ds["reason"]
    assert not da["exact"] and da["size"] == 40 and da["rounds"] <= 2
    assert main([*argv, "--sample-classes", "all"]) == 0
    exact = json.loads(capsys.readouterr().out)["distances_all"]
    assert exact["exact"] and exact["size"] == 40
    for key, q in exact["quantiles"].items():
        lo, hi = da["quantiles"][key]["lower"], da["quantiles"][key]["upper"]
        assert lo - 1e-12 <= q["lower"] == q["upper"] <= hi + 1e-12
    rows = list(csv.reader(table.read_text().splitlines()))[1:]
    assert all(float(r[5]) <= float(r[6]) for r in rows)
    assert main([*argv, "--sample-classes", "many"]) == 2
    assert "--sample-classes" in capsys.readouterr().err
    assert main([*argv, "--per-class", str(tmp_path / "x.txt")]) == 2
    assert "--per-class" in capsys.readouterr().err


def test_onnx_source_with_bias(main, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    # Four corners and the centre; the centre gets a bias large enough to win at h = 0.
    W = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1], [0.1, 0.05]], dtype=np.float32)
    b = np.array([0, 0, 0, 0, 3], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(b, "b")],
    )
    path = tmp_path / "clf.onnx"
    onnx.save(helper.make_model(graph), str(path))
    argv = ["head", "--source", str(path), "--json", "--no-code", "--random", "off"]
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["has_bias"] and s["unargmaxable"] == 0 and s["argmax"]["has_bias"]
    # Without the bias the centre is inside the hull.
    b[4] = 0.0
    graph.initializer[1].CopyFrom(numpy_helper.from_array(b, "b"))
    onnx.save(helper.make_model(graph), str(path))
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["unargmaxable"] == 1 and s["argmax"]["examples"][0]["id"] == 4


def test_gguf_source_prints_one_json_object(
    main, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """The shape of ``gnc head --source gemma3 --json`` on a tiny GGUF file of the same layout."""
    gguf = pytest.importorskip("gguf")
    import torch

    from gnc.geometry import one_vs_rest_distances

    rng = np.random.default_rng(4)
    W = rng.integers(-8, 9, size=(14, 6)).astype(np.float32)
    W[12] = (W[0] + W[1]) / 2  # exactly between rows 0 and 1: never the argmax
    W[13] = W[5]  # exactly the same row: coincides
    tokens = [f"tok{i}" for i in range(14)]
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), arch="gemma3")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_tensor("token_embd.weight", W)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    argv = ["head", "--source", str(path), "--json", "--random", "off", "--no-code", "--no-cache"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    s = json.loads(out)  # one object, nothing else on stdout
    assert (s["num_classes"], s["dim"], s["coinciding_rows"]) == (14, 6, 1)
    assert s["certified"] is True and s["unargmaxable"] >= 1
    assert "tok12" in [e["token"] for e in s["argmax"]["examples"]]
    assert [e["token"] for e in s["argmax"]["coinciding_examples"]] == ["tok5", "tok13"]
    U = torch.from_numpy(np.delete(W, 13, axis=0)).double()
    assert s["rho"] == pytest.approx(one_vs_rest_distances(U).rho, abs=1e-9)
    phases = s["phase_seconds"]
    assert list(phases) == [
        "read",
        "pass",
        "duplicates",
        "rho",
        "distances",
        "argmax",
        "reference",
        "reduced",
    ]
    assert all(v >= 0 for v in phases.values()) and sum(phases.values()) <= s["seconds"] + 1e-6
