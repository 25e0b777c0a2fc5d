#!/usr/bin/env bash
# CPU benchmark of the MOVi-C configurations, with and without the feature cache (docs/BENCHMARKS.md).
# Each invocation runs its five phases in fresh processes and takes a few minutes. One torch thread: on a
# shared CPU, intra-op threads that wait for each other at every operation make timings meaningless.
#   benchmarks/run_cpu.sh [python]      (default python: /work/venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-$( [ -x /work/venv/bin/python ] && echo /work/venv/bin/python || echo python3 )}
for experiment in srl/movi_c slotcontrast/movi_c videosaur/movi_c; do
  name=${experiment//\//_}
  "$PYTHON" benchmarks/bench_training.py --experiment "$experiment" --batch-size 1 --steps 3 --warmup 1 --threads 1 \
    --eval-videos 2 --eval-frames 8 --loader-batches 20 --out "benchmarks/results/cpu_${name}.json" \
    | tee "benchmarks/results/cpu_${name}.txt"
done
