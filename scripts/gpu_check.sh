#!/usr/bin/env bash
# GPU checks in one short run (the device tool's machine, or any CUDA box): the CUDA tests, then the
# benchmark of RS-50 @160 against timm at a few batches and compile modes. Reports go to ${OUT:-gpu_out}/.
#   bash scripts/gpu_check.sh            # about 8 minutes on one H100/H200
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
PY=${PY:-python3}
if ! "$PY" -c "import rsscale, timm" 2>/dev/null; then
  "$PY" -m pip install -q -e ".[dev]" 2>&1 | tail -2
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -m pytest tests/test_cuda.py tests/test_bench.py -q -p no:cacheprovider 2>&1 | tee "$OUT/tests.txt"
RS50=(model=resnet_rs model.depth=50 data=synthetic data.train_res=160 data.num_classes=1000 data.size=4096)
for b in 128 256; do
  "$PY" -m rsscale.bench "${RS50[@]}" --batch $b --steps 30 --data synthetic --json "$OUT/rs50_b${b}_eager.json" \
    2>&1 | tee -a "$OUT/bench.txt"
done
"$PY" -m rsscale.bench "${RS50[@]}" --batch 256 --steps 30 --data synthetic --compile max-autotune-no-cudagraphs \
  --json "$OUT/rs50_b256_compiled.json" 2>&1 | tee -a "$OUT/bench.txt"
"$PY" -m rsscale.bench "${RS50[@]}" --batch 256 --steps 30 --data synthetic --compile reduce-overhead \
  --json "$OUT/rs50_b256_cudagraphs.json" 2>&1 | tee -a "$OUT/bench.txt"
"$PY" -m rsscale.bench --steps 30 --json "$OUT/default_cell.json" 2>&1 | tee -a "$OUT/bench.txt"
# data pipeline (issue 13 item 4): PIL workers vs batched nvjpeg on an ImageNet-shaped JPEG tree, against
# the RS-50 @160 training rate at batch 256 (the tree is generated: no ImageNet on the device machine)
"$PY" -m rsscale.bench_data model=resnet_rs model.depth=50 data.train_res=160 --batch 256 --batches 8 \
  --make-tree "${TMPDIR:-/tmp}/rsscale_jpegs" --tree-images 2560 --workers 4,8,15 --train-steps 10 \
  --json "$OUT/data_pipeline_rs50_b256.json" 2>&1 | tee -a "$OUT/bench.txt"
