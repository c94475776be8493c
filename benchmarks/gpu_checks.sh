#!/usr/bin/env bash
# Every CUDA check in one prepared run, for a machine with a GPU and a Python that has torch:
# the CUDA tests (tests/test_cuda_paths.py and the device-parametrized tests), then the metrics
# and one-vs-rest benchmarks on the GPU. Logs and JSON go to ${OUT:-runs/gpu}.
# Usage: bash benchmarks/gpu_checks.sh [tests] [metrics] [ovr] [large] [scale] [head]   (default:
# the first four; PYTHON=... chooses the interpreter). `scale` runs benchmarks/bench_scale.py on CUDA:
# every D_k and rho of the Gemma 3 head (65,536-row slice, then all 262,144 rows), random
# anisotropic 50,000 x 576 and the Leech code; it reads the head from GEMMA_Q8 (a folder with
# gemma_q8.npy + gemma_scales.npy written here by `bench_scale.py --export-q8 DIR`; default
# shared/gemma_q8), reconstructed on the GPU machine as q * scale. `head` runs `gnc head` end to
# end on CUDA on the same head (rho, duplicates, D_k within the budget, argmax, random rows).
set -u
out="${OUT:-runs/gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
parts="${*:-tests metrics ovr large}"
{ nvidia-smi -L; "$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; } \
    2>&1 | tee "$out/gpu.txt"
keys='"(K|stream_seconds|speedup_vs_per_sample_loop|ratio_stream_over_dense_numpy|peak_device_memory_growth_mib_at_N|peak_device_memory_growth_mib_at_N_over_10|exact_seconds|exact_max_gap|speedup_vs_paper|seconds|rho|certified)"'
for part in $parts; do
    case "$part" in
    tests)
        timeout 200 "$py" -m pytest -q -rfE --tb=short -p no:cacheprovider \
            -o addopts="--strict-markers --import-mode=importlib" --continue-on-collection-errors \
            -k "cuda or gpu" tests 2>&1 | tee "$out/tests.txt" | tail -40
        ;;
    metrics)
        for batch in 8192 65536; do
            timeout 120 "$py" benchmarks/bench_metrics.py --device cuda --threads 8 \
                --samples 1000000 --batch "$batch" >"$out/bench_metrics_cuda_b$batch.json" \
                2>>"$out/errors.txt"
            grep -E "$keys" "$out/bench_metrics_cuda_b$batch.json"
        done
        ;;
    ovr)
        timeout 120 "$py" benchmarks/bench_one_vs_rest.py --device cuda --threads 8 \
            --sizes 1000x512,5000x512 >"$out/bench_ovr_cuda.json" 2>>"$out/errors.txt"
        grep -E "$keys" "$out/bench_ovr_cuda.json"
        ;;
    scale)
        # Each group is bounded on its own, so a slow case cannot hide the others' rows.
        for spec in gemma65k:rho,all leech:rho aniso:rho gemma:rho,all; do
            timeout 120 "$py" benchmarks/bench_scale.py --device cuda --threads 8 \
                --q8 "${GEMMA_Q8:-shared/gemma_q8}" --cases "${spec%%:*}" --modes "${spec#*:}" \
                --max-memory-mib 16384 2>>"$out/errors.txt" | tee -a "$out/bench_scale_cuda.jsonl"
        done
        ;;
    large)
        timeout 150 "$py" benchmarks/bench_one_vs_rest.py --device cuda --threads 8 \
            --sizes 100x10 --large >"$out/bench_ovr_large_cuda.json" 2>>"$out/errors.txt"
        grep -E "$keys" "$out/bench_ovr_large_cuda.json"
        ;;
    head)
        npy="${TMPDIR:-/tmp}/gnc_gemma_head.npy"  # 671 MB: kept out of $out
        "$py" -c "import sys, numpy as np; sys.path.insert(0, 'benchmarks'); from bench_scale import from_q8; np.save(sys.argv[2], from_q8(sys.argv[1]).numpy())" \
            "${GEMMA_Q8:-shared/gemma_q8}" "$npy" 2>>"$out/errors.txt"
        timeout 300 "$py" -m gnc head --source "$npy" --device cuda --json --no-code \
            --time-budget 120 >"$out/gnc_head_cuda.json" 2>>"$out/errors.txt"
        head -c 600 "$out/gnc_head_cuda.json"; echo
        ;;
    *) echo "unknown part: $part (expected tests, metrics, ovr, large, scale or head)" >&2; exit 2 ;;
    esac
done
[ -s "$out/errors.txt" ] && tail -20 "$out/errors.txt"
exit 0
