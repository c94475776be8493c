"""Fuzzing every registered file format: gnc succeeds or fails in one line, never a traceback.

Hypothesis mutates a small valid file (truncation, byte flips, size fields overwritten with
absurd values, header edits from the format's list, inserted/deleted bytes) and runs gnc on it
in this process. A run must exit 0 (the file is still valid) or 2 with exactly one line on
stderr, and the traced allocations (Python and NumPy, via tracemalloc) must stay within a small
multiple of the file's size: a header declaring 10^12 elements fails before allocating.
Set ``GNC_FUZZ_REPORT=path.json`` to record every outcome.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnc.cli import build_parser
from helpers.file_formats import FORMATS, FileFormat

#: Absurd values written over 2-, 4- and 8-byte fields (header lengths, sizes, offsets).
SIZES = (0, 1, 255, 2**16 - 1, 2**31 - 1, 2**32 - 1, 2**63 - 1, 10**12)
#: Traced memory allowed: this multiple of the file's size, plus a constant for gnc itself.
MEMORY_FACTOR, MEMORY_SLACK = 8, 4 << 20

OUTCOMES: Counter[tuple[str, str]] = Counter()


@st.composite
def mutations(draw: st.DrawFn, valid: bytes, edits: tuple[tuple[bytes, bytes], ...]) -> bytes:
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        kind = draw(st.sampled_from(["truncate", "flip", "size", "edit", "splice"]))
        head = st.integers(0, min(len(data), 256) - 1)
        pos = draw(head | st.integers(0, len(data) - 1))
        if kind == "truncate":
            data = data[:pos]
        elif kind == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "size":
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from(SIZES)) % (1 << (8 * width))
            data[pos : pos + width] = struct.pack({2: "<H", 4: "<I", 8: "<Q"}[width], value)
        elif kind == "edit" and edits:
            old, new = draw(st.sampled_from(edits))
            data = bytearray(bytes(data).replace(old, new, 1))
        elif kind == "splice":
            n = draw(st.integers(1, 16))
            if draw(st.booleans()):
                data[pos:pos] = draw(st.binary(min_size=n, max_size=n))
            else:
                del data[pos : pos + n]
    return bytes(data)


@pytest.fixture(scope="module", autouse=True)
def _report() -> object:
    build_parser()  # import every subcommand before memory is traced
    yield
    target = os.environ.get("GNC_FUZZ_REPORT")
    if target:
        rows = [{"format": f, "outcome": o, "count": n} for (f, o), n in sorted(OUTCOMES.items())]
        Path(target).write_text(json.dumps(rows, indent=1))


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_files_succeed_or_fail_in_one_line(fmt: FileFormat, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        valid_path = work / f"valid{fmt.suffix}"
        fmt.make_valid(valid_path)
        valid = valid_path.read_bytes()
        blob = data.draw(mutations(valid, fmt.edits), label="file")
        path = work / f"input{fmt.suffix}"
        path.write_bytes(blob)
        tracemalloc.start()
        try:
            outcome = fmt.run(path, work)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    OUTCOMES[fmt.name, "ok" if outcome.status == 0 else f"exit {outcome.status}"] += 1
    assert outcome.clean, f"{fmt.name}: exit {outcome.status}\n{outcome.stderr}"
    assert peak <= MEMORY_FACTOR * max(len(blob), len(valid)) + MEMORY_SLACK, peak
