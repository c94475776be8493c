"""The wheel: built offline, installed into a fresh virtual environment, and run from there.

The wheel is built with the installed backend (``pip wheel --no-build-isolation``, hatchling from
the ``dev`` extra), so no network is needed. The fresh environment gets no copy of the
dependencies: a ``.pth`` file appends this environment's site-packages to its path. ``.pth`` files
found there are not processed, so the editable install of gnc stays invisible and the
wheel's gnc is the one imported (checked through ``gnc.__file__``).

Also here: set-up on a fresh machine fails in CI when a pretrained-head package is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest

import gnc

ROOT = Path(__file__).resolve().parents[1]
#: Files in src/gnc that the wheel leaves out: caches of the interpreter and of the tools.
SKIPPED_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def _env() -> dict[str, str]:
    """The environment of the child processes: no PYTHONPATH, so nothing reaches ``src/``."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"{args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    pip_wheel = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation")
    _run(*pip_wheel, "--no-index", "--quiet", "--wheel-dir", out, ROOT)
    (built,) = out.glob("gnc-*.whl")
    return built


@pytest.fixture(scope="module")
def env_dir(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed and this one's packages on its path."""
    root = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    # pip runs from here against the new interpreter; nothing of gnc is visible there yet.
    install = (sys.executable, "-m", "pip", "--python", python, "install", "--no-deps")
    _run(*install, "--no-index", "--quiet", wheel)
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    parents = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site.stdout.strip()) / "gnc-test-parent.pth").write_text("\n".join(parents) + "\n")
    return root


def test_wheel_ships_every_source_file_and_the_metadata(wheel: Path) -> None:
    source = ROOT / "src" / "gnc"
    expected = {
        "gnc/" + p.relative_to(source).as_posix()
        for p in source.rglob("*")
        if p.is_file() and not SKIPPED_PARTS & set(p.parts) and p.suffix != ".pyc"
    }
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (meta_name,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        (entry_name,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        metadata = Parser().parsestr(zf.read(meta_name).decode())
        entry_points = zf.read(entry_name).decode()
    assert {"gnc/codes/data/catalogue.npz", "gnc/py.typed"} <= expected
    assert {n for n in names if n.startswith("gnc/")} == expected
    assert metadata["Version"] == gnc.__version__
    assert {"heads", "hf", "torchmetrics", "lightning", "docs", "dev"} <= set(
        metadata.get_all("Provides-Extra") or []
    )
    assert "gnc = gnc.cli:main" in entry_points


def test_installed_wheel_is_the_gnc_imported(env_dir: Path) -> None:
    code = (
        "import importlib.metadata as md, importlib.resources as res, json, gnc\n"
        "files = res.files('gnc')\n"
        "print(json.dumps({'file': gnc.__file__, 'version': md.version('gnc'),\n"
        "    'catalogue': (files / 'codes' / 'data' / 'catalogue.npz').is_file(),\n"
        "    'typed': (files / 'py.typed').is_file()}))\n"
    )
    info = json.loads(_run(env_dir / "bin" / "python", "-c", code).stdout)
    assert Path(info["file"]).resolve().is_relative_to(env_dir.resolve())
    assert info == {**info, "version": gnc.__version__, "catalogue": True, "typed": True}


def test_console_script_runs_help_and_margins(env_dir: Path, tmp_path: Path) -> None:
    gnc_script = env_dir / "bin" / "gnc"
    help_text = _run(gnc_script, "--help").stdout
    assert "margins" in help_text and "reproduce" in help_text
    # The regular simplex of K = 4 unit rows in d = 3: D_k = K / (K - 1) = 4/3 for every class
    # (the nearest point of the other rows' hull is their centroid, -w_k / 3).
    simplex = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3.0)
    np.save(tmp_path / "W.npy", simplex)
    out = _run(gnc_script, "margins", "W.npy", "--json", "--per-class", "D.npy", cwd=tmp_path)
    result = json.loads(out.stdout)
    assert result["certified"] is True
    assert result["min_distance"] == pytest.approx(4 / 3, abs=1e-12)
    np.testing.assert_allclose(np.load(tmp_path / "D.npy"), np.full(4, 4 / 3), atol=1e-12)


@pytest.mark.parametrize(("ci", "status"), [("true", 1), ("", 0)])
def test_setup_fails_in_ci_when_a_head_package_is_missing(
    ci: str, status: int, tmp_path: Path
) -> None:
    """scripts/setup.sh's call of setup_heads.sh, run as written, against a Python without them.

    The interpreter is a fresh environment without pip, so nothing is installed (no network) and
    every head package stays missing: in CI (``CI=true``) set-up must fail, elsewhere go on.
    """
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8").splitlines()
    (line,) = (s for s in setup if "scripts/setup_heads.sh" in s and not s.startswith("#"))
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    env = {**_env(), "CI": ci, "GNC_PYTHON": str(bare / "bin" / "python")}
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", line],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == status, out.stderr
    assert "missing after install: gguf" in out.stderr
