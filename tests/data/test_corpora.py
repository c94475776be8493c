from __future__ import annotations

import importlib.util
import shutil

import pytest

from gnc.data import corpora
from gnc.data.corpora import load_text, parse_bible_output

SAMPLE = """
Genesis 1

  1 In the beginning God created the heaven and the earth.
  2 And the earth was without form, and void; and darkness was upon the face of
the deep. And the Spirit of God moved upon the face of the waters.

1 Kings 3

  1 And Solomon made affinity with Pharaoh king of Egypt, and took
Pharaoh's daughter, and brought her into the city of David, until he had made
an end of building his own house.
"""


def test_parse_bible_output_joins_wrapped_verses_and_drops_headings() -> None:
    verses = parse_bible_output(SAMPLE).split("\n")
    assert verses == [
        "In the beginning God created the heaven and the earth.",
        "And the earth was without form, and void; and darkness was upon the face of the deep. "
        "And the Spirit of God moved upon the face of the waters.",
        "And Solomon made affinity with Pharaoh king of Egypt, and took Pharaoh's daughter, and "
        "brought her into the city of David, until he had made an end of building his own house.",
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "gutenberg"}, "one of"),
        ({"name": "kjv", "max_chars": 0}, "max_chars"),
        ({"name": "kjv", "max_chars": 2.5}, "max_chars"),
        ({"name": "kjv", "max_chars": True}, "max_chars"),
    ],
)
def test_load_text_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_text(**kwargs)  # type: ignore[arg-type]


def test_missing_kjv_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    corpora._kjv.cache_clear()
    monkeypatch.setattr(corpora.shutil, "which", lambda _: None)
    try:
        with pytest.raises(ValueError, match="apt-get install bible-kjv bible-kjv-text"):
            load_text("kjv")
    finally:
        corpora._kjv.cache_clear()


@pytest.mark.skipif(shutil.which("bible") is None, reason="Debian bible-kjv is not installed")
def test_kjv_has_every_verse() -> None:
    text = load_text("kjv")
    verses = text.split("\n")
    assert len(verses) == 31_102  # the canonical number of verses of the KJV
    assert verses[0] == "In the beginning God created the heaven and the earth."
    assert verses[-1] == "The grace of our Lord Jesus Christ be with you all. Amen."
    assert all(v and not v[0].isdigit() for v in verses[:1000])  # verse numbers removed
    assert load_text("kjv", max_chars=16) == "In the beginning"


_HAS_AUSTEN = corpora.AUSTEN_DB.with_suffix(".rdb").is_file()


@pytest.mark.skipif(
    importlib.util.find_spec("rdata") is None or not _HAS_AUSTEN,
    reason="needs Debian r-cran-janeaustenr and PyPI rdata",
)
def test_austen_has_six_novels_in_order() -> None:
    text = load_text("austen")
    titles = ["SENSE AND SENSIBILITY", "PRIDE AND PREJUDICE", "MANSFIELD PARK", "EMMA"]
    positions = [text.find(t) for t in titles]
    assert positions[0] == 0 and positions == sorted(positions) and min(positions) >= 0
    assert "NORTHANGER ABBEY" in text and "Persuasion" in text
    assert 3_500_000 < len(text) < 4_500_000
