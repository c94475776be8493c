"""Helpers shared by subcommands: JSON output, atomic writes, run metadata (from :mod:`gnc.io`)."""

from __future__ import annotations

from gnc.io import (
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_text,
    dump_json,
    run_metadata,
    to_jsonable,
)

__all__ = [
    "atomic_save_npz",
    "atomic_write_bytes",
    "atomic_write_text",
    "dump_json",
    "run_metadata",
    "to_jsonable",
]
