#!/usr/bin/env bash
# The GPU measurements of docs/PERFORMANCE.md, in stages that each fit a 10-minute call:
#
#   benchmarks/h100.sh suite       # ALL of the below that fits in one call: the GPU tests, the
#                                  # attention table, Base and Large training steps and an
#                                  # xformers profile, < 8 minutes, into $OUT/suite.jsonl
#   benchmarks/h100.sh tests       # GPU equivalence tests (xformers, flex, sdpa vs eager)
#   benchmarks/h100.sh attention   # attention benchmark, eager and compiled, + a profile
#   benchmarks/h100.sh train       # training step, GLM-Base and GLM-Large, default backend
#   benchmarks/h100.sh train-alt   # the same with flex and with sdpa, for comparison
#
# Results go to $OUT (default gpu_results/). With wheels in .whl/ (the recipe in
# docs/PERFORMANCE.md: xformers, nvidia-cuda-runtime-cu12, glmlab), they are installed
# into /tmp/site first and put on the path, as on the H100 machine of /work/shared/GPU.md.
set -euo pipefail
stage=${1:?usage: benchmarks/h100.sh suite|tests|attention|train|train-alt}
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
if [ -d .whl ]; then
  [ -d /tmp/site/xformers ] || python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  export LD_LIBRARY_PATH=/tmp/site/nvidia/cuda_runtime/lib:${LD_LIBRARY_PATH:-}
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt"
python3 -m xformers.info > "$OUT/xformers_info.txt" 2>&1 || echo "xformers.info failed" >> "$OUT/xformers_info.txt"

case $stage in
  suite)
    python3 benchmarks/gpu_suite.py --out "$OUT/suite.jsonl" --files "$OUT" ;;
  tests)
    python3 -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_attention_gpu_backends.py \
      2>&1 | tee "$OUT/gpu_tests.txt" ;;
  attention)
    python3 benchmarks/attention.py --json | tee "$OUT/attention.jsonl"
    python3 benchmarks/attention.py --compile --json | tee "$OUT/attention_compiled.jsonl"
    python3 benchmarks/attention.py --profile xformers --seq-lens 512 2048 \
      --profile-out "$OUT/attention_profile_xformers.txt" ;;
  train)
    python3 benchmarks/train_step.py --json | tee "$OUT/train_step.jsonl" ;;
  train-alt)
    python3 benchmarks/train_step.py --attention flex --seconds 10 --json | tee "$OUT/train_step_flex.jsonl"
    python3 benchmarks/train_step.py --attention sdpa --seconds 10 --json | tee "$OUT/train_step_sdpa.jsonl" ;;
  *)
    echo "unknown stage $stage" >&2; exit 2 ;;
esac
