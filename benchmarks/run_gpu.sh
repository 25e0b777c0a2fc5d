#!/usr/bin/env bash
# GPU benchmark, one short command: our SRL against the official code at the published batch (64 clips of 4
# frames, MOVi-C, 336 px) and precision (fp16 autocast, as the official recipe; ours also in bf16), evaluation of
# 24-frame videos, peak GPU memory, and the feature-cache loader's throughput (docs/BENCHMARKS.md).
#   benchmarks/run_gpu.sh OFFICIAL_SRL_CLONE [OUT_DIR]      (OUT_DIR default: benchmarks/results)
# Needs a CUDA machine with this project's dependencies importable (PYTHONPATH=. works from a checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
official=${1:?usage: benchmarks/run_gpu.sh OFFICIAL_SRL_CLONE [OUT_DIR]}
out=${2:-benchmarks/results}
python=${PYTHON:-python3}
mkdir -p "$out"
"$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
common=(--official "$official" --device cuda --batch-sizes 64 --steps 5 --warmup 2 --eval-videos 3 --eval-frames 24)
"$python" benchmarks/compare_official.py "${common[@]}" --precision fp16 --official-precision fp16 \
  --out "$out/gpu_srl_movi_c_fp16.json"
"$python" benchmarks/compare_official.py "${common[@]}" --precision bf16 --official-precision fp16 \
  --phases train,train_cached,eval --out "$out/gpu_srl_movi_c_bf16.json"
"$python" benchmarks/bench_training.py --experiment srl/movi_c --device cuda --batch-size 64 --precision bf16 \
  --phases loader_cached --loader-batches 20 --num-workers 8 --out "$out/gpu_loader_cached.json"
