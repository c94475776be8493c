"""Real text corpora installed by package name (never downloaded at run time).

- ``"kjv"``: the King James Bible from the Debian packages ``bible-kjv`` and ``bible-kjv-text``
  (read through their ``bible`` program), one verse per line, verse numbers and chapter
  headings removed (about 4.2 M characters, 31,102 verses).
- ``"austen"``: Jane Austen's six novels from the Debian package ``r-cran-janeaustenr``, read
  from its R lazy-load database with the PyPI package ``rdata`` (no R needed), one line of the
  original text per line, novels separated by a blank line (about 4.0 M characters).

Both are public domain. :func:`load_text` raises ``ValueError`` with the install command when a
source is missing.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import warnings
import zlib
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["CORPORA", "load_text"]

#: Names of the text corpora that :func:`load_text` reads (installed from PyPI packages).
CORPORA: tuple[str, ...] = ("kjv", "austen")
KJV_DATA_DIR = Path("/usr/lib")
KJV_RANGE = "gen1:1-rev22:21"
AUSTEN_DB = Path("/usr/lib/R/site-library/janeaustenr/data/Rdata")
AUSTEN_NOVELS: tuple[str, ...] = (
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
)

_VERSE_START = re.compile(r"^\s+\d+ ")


def parse_bible_output(text: str) -> str:
    """One verse per line from the output of ``bible -p /usr/lib RANGE``.

    The program prints a heading line (``Genesis 1``) before each chapter, blank lines between
    blocks, and verses as ``"  <n> text"`` with wrapped continuation lines at column 0.

    Example:
        >>> raw = chr(10).join(["", "Genesis 1", "", "  1 In the", "beginning.", "  2 And."])
        >>> parse_bible_output(raw).split(chr(10))
        ['In the beginning.', 'And.']
    """
    verses: list[list[str]] = []
    after_blank = True
    for line in text.splitlines():
        if not line.strip():
            after_blank = True
            continue
        match = _VERSE_START.match(line)
        if match:
            verses.append([line[match.end() :].strip()])
        elif not after_blank and verses and not line.startswith((" ", "\t")):
            verses[-1].append(line.strip())  # a wrapped verse continues at column 0
        # else: a chapter heading, which always follows a blank line
        after_blank = False
    return "\n".join(" ".join(parts) for parts in verses)


@cache
def _kjv() -> str:
    program = shutil.which("bible")
    data = KJV_DATA_DIR / "bible.data"
    if program is None or not data.is_file():
        raise ValueError(
            "Expected the King James Bible from Debian (`bible` program and "
            f"{data}), but it is not installed; install it with "
            "`apt-get install bible-kjv bible-kjv-text` (as root)."
        )
    out = subprocess.run(
        [program, "-p", str(KJV_DATA_DIR), KJV_RANGE],
        check=True,
        capture_output=True,
        text=True,
        encoding="utf-8",
    ).stdout
    return parse_bible_output(out)


def _parse_rds(data: bytes) -> Any:
    import rdata  # optional: only Jane Austen's novels need it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Unknown file type: assumed RDS"
        return rdata.conversion.convert(rdata.parser.parse_data(data))


@cache
def _austen() -> str:
    index, database = AUSTEN_DB.with_suffix(".rdx"), AUSTEN_DB.with_suffix(".rdb")
    if not index.is_file() or not database.is_file():
        raise ValueError(
            f"Expected Jane Austen's novels at {AUSTEN_DB}.rdx/.rdb, but they are not installed; "
            "install them with `apt-get install r-cran-janeaustenr`."
        )
    try:
        import rdata  # noqa: F401
    except ImportError as err:
        raise ValueError(
            "Reading Jane Austen's novels needs the PyPI package `rdata`; install it with "
            "`pip install rdata`."
        ) from err
    # An R lazy-load database: the gzip'd index maps each object to (offset, length) in the
    # .rdb file, where each object is a 4-byte length followed by zlib-compressed serialization.
    offsets = _parse_rds(gzip.decompress(index.read_bytes()))["variables"]
    blob = database.read_bytes()
    novels = []
    for name in AUSTEN_NOVELS:
        start, length = (int(v) for v in offsets[name])
        lines = _parse_rds(zlib.decompress(blob[start + 4 : start + length]))
        novels.append("\n".join(str(line) for line in lines).strip())
    return "\n\n".join(novels)


def load_text(name: str, *, max_chars: int | None = None) -> str:
    """The text of a corpus from :data:`CORPORA`, optionally truncated to ``max_chars``.

    Args:
        name: ``"kjv"`` or ``"austen"``.
        max_chars: Keep only the first ``max_chars`` characters (``None``: all).

    Returns:
        The text (``str``), deterministic for a given installed package version.

    Raises:
        ValueError: For an unknown name, a bad ``max_chars`` or a corpus that is not installed
            (the message gives the install command).

    Example:
        >>> load_text("kjv", max_chars=24)  # doctest: +SKIP
        'In the beginning God cre'
    """
    if name not in CORPORA:
        raise ValueError(f"Expected `name` to be one of {list(CORPORA)}, but got {name!r}.")
    if max_chars is not None and (
        isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1
    ):
        raise ValueError(
            f"Expected `max_chars` to be a positive int or None, but got {max_chars!r}."
        )
    text = _kjv() if name == "kjv" else _austen()
    return text if max_chars is None else text[:max_chars]
