"""Registry of input file formats for the robustness tests (malformed-file table and fuzzing).

Each :class:`FileFormat` knows how to write a small valid file, how to feed a file to gnc, and a
few header edits that a fuzzer should try. Other formats (GGUF, ONNX, ...) register an entry with
:func:`register` from their own test module, and every robustness test picks them up.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from gnc.cli import main


@dataclass(frozen=True)
class Outcome:
    """What one run of gnc on a file did: exit status and stderr."""

    status: int
    stderr: str

    @property
    def clean(self) -> bool:
        """Succeeded, or failed with exactly one line and exit status 2 (no traceback)."""
        if self.status == 0:
            return True
        lines = [x for x in self.stderr.splitlines() if x.strip()]
        return self.status == 2 and len(lines) == 1 and "Traceback" not in self.stderr


def run_cli(argv: list[str]) -> Outcome:
    """``gnc.cli.main(argv)`` in this process; an escaping exception counts as a traceback."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
        except Exception:  # a bug: what the console script would print with exit status 1
            traceback.print_exc()
            status = 1
    return Outcome(status, err.getvalue())


def run_library(call: Callable[[], object]) -> Outcome:
    """``call()`` mapped to an exit status the way ``gnc.cli.main`` maps errors."""
    try:
        call()
    except (ValueError, FileNotFoundError) as exc:
        return Outcome(2, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except Exception:
        return Outcome(1, traceback.format_exc())
    return Outcome(0, "")


@dataclass(frozen=True)
class FileFormat:
    """A file format gnc reads: a valid example, how gnc is run on it, edits worth fuzzing."""

    name: str
    suffix: str
    make_valid: Callable[[Path], None]
    run: Callable[[Path, Path], Outcome]  # (file, scratch folder) -> outcome
    edits: tuple[tuple[bytes, bytes], ...] = field(default=())


FORMATS: list[FileFormat] = []


def register(fmt: FileFormat) -> FileFormat:
    """Add ``fmt`` to the formats every robustness test covers."""
    FORMATS.append(fmt)
    return fmt


def _matrix(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((6, 3))


def _margins(path: Path, work: Path) -> Outcome:
    return run_cli(["margins", str(path), "--json", "--no-progress"])


def _measure(path: Path, work: Path) -> Outcome:
    return run_cli(["measure", "--features", str(path), "--json"])


def _write_features(path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = np.arange(12) % 3
    feats = rng.standard_normal((3, 4))[labels] + 0.3 * rng.standard_normal((12, 4))
    np.savez(path, features=feats, labels=labels)


def _load_config(path: Path, work: Path) -> Outcome:
    from gnc.train.config import load_config

    return run_library(lambda: load_config(path))


def _read_checkpoint(path: Path, work: Path) -> Outcome:
    from gnc.readers import read_checkpoint

    return run_library(lambda: read_checkpoint(path))


TINY_TOML = b"""name = "tiny"
seed = 0
checkpoint_every = 2

[data]
name = "synthetic"
num_classes = 8
samples_per_class = 32

[model]
name = "mlp"
feature_dim = 3

[optim]
epochs = 4
lr = 0.05
"""


def _write_checkpoint(path: Path) -> None:
    state = {
        "epoch": 1,
        "model": {"w": torch.ones(4, 3)},
        "rng": {"numpy": np.random.default_rng(0).bit_generator.state["state"]["state"]},
        "config": {"name": "x", "optim": {"lr": 0.1}},
    }
    torch.save(state, path)


_DTYPE_EDITS = ((b"'<f8'", b"'|O'"), (b"'<f8'", b"'<c16'"), (b"'<f8'", b"'|b1'"))
_SHAPE_EDITS = ((b"(6, 3)", b"(1000000, 1000000)"), (b"(6, 3)", b"(-6, 3)"), (b"(6, 3)", b"(7, 3)"))

for _fmt in (
    FileFormat(
        "npy", ".npy", lambda p: np.save(p, _matrix()), _margins,
        _DTYPE_EDITS + _SHAPE_EDITS + ((b"False", b"True"), (b"NUMPY", b"NUMPX")),
    ),
    FileFormat(
        "npz", ".npz", lambda p: np.savez(p, weights=_matrix(), bias=np.zeros(6)), _margins,
        _DTYPE_EDITS + _SHAPE_EDITS + ((b"weights.npy", b"bias.npy\0\0\0\0"), (b"PK", b"QK")),
    ),
    FileFormat(
        "pt", ".pt", lambda p: torch.save({"weight": torch.from_numpy(_matrix())}, p), _margins,
        ((b"weight", b"wei\0ht"), (b"PK", b"QK"), (b"torch", b"posix")),
    ),
    FileFormat(
        "safetensors", ".safetensors",
        lambda p: save_file({"weight": torch.from_numpy(_matrix())}, str(p)), _margins,
        ((b'"F64"', b'"C64"'), (b'"F64"', b'"BOOL"'), (b"[6,3]", b"[6000000,3000000]"),
         (b"[0,144]", b"[0,1440000000]"), (b"[6,3]", b"[7,3]")),
    ),
    FileFormat(
        "features", ".npz", _write_features, _measure,
        (*_DTYPE_EDITS, (b"(12, 4)", b"(1200000, 4000000)"), (b"'<i8'", b"'<f8'"),
         (b"labels.npy", b"labelz.npy")),
    ),
    FileFormat(
        "toml", ".toml", lambda p: p.write_bytes(TINY_TOML), _load_config,
        ((b"[data]", b"[data"), (b"= 4", b"= 4.5"), (b'"mlp"', b"mlp"), (b"seed = 0", b"name = 1"),
         (b"epochs", b"\xff\xfe"), (b"lr", b"lr.lr")),
    ),
    FileFormat(
        "checkpoint", ".pt", _write_checkpoint, _read_checkpoint,
        ((b"PK", b"QK"), (b"numpy", b"posix"), (b"_reconstruct", b"system\0\0\0\0\0\0")),
    ),
):  # fmt: skip
    register(_fmt)
