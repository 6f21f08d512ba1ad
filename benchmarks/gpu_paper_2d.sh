#!/usr/bin/env bash
# On a GPU machine without Snakemake: train config/paper-2d.yaml's cremer2d group (the
# paper's 2D models, 1000 epochs) until DEADLINE seconds after this script starts, resuming
# from results/paper-2d/checkpoints/cremer2d.pt when it is there; optionally run a probe
# script first. Everything it produces is packed into $OUT (at most four files).
#
#   OUT=out DEADLINE=540 [PROBE=path/to/gpu_probe.sh] [DEVICE=cpu] bash benchmarks/gpu_paper_2d.sh
#
# Needs python3 with a CUDA build of torch, numpy, pandas, pyyaml and tqdm, and
# resources/mnist.npz; riwae.stages imports snakemake.exceptions: where Snakemake is not
# installed, put its wheel and its three snakemake-interface-* wheels in WHEELS (.whl).
set -u
T0=$(date +%s)
DEADLINE=${DEADLINE:-540}
OUT=${OUT:-gpu-out}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! python3 -c "import snakemake.exceptions" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
        "$WHEELS"/*.whl || exit
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
stamp() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$OUT/session.log"; }
stamp "start $(date -Is) deadline ${DEADLINE}s"

if [ -n "${PROBE:-}" ]; then
    OUT="$OUT/probe" bash "$PROBE" . >/dev/null 2>&1
    stamp "probe rc=$?"
    tar czf "$OUT/probe.tar.gz" -C "$OUT" probe && rm -r "$OUT/probe"
fi

# Full float32 matrix products, as the config declares: NVIDIA's container images set this
# variable, which would make every float32 product TF32.
echo "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE was '${TORCH_ALLOW_TF32_CUBLAS_OVERRIDE:-}'" >>"$OUT/session.log"
unset TORCH_ALLOW_TF32_CUBLAS_OVERRIDE
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv >>"$OUT/session.log" 2>&1
nvidia-smi dmon -s u -d 10 >"$OUT/dmon.txt" 2>&1 &
DMON=$!
left=$((DEADLINE - ($(date +%s) - T0)))
stamp "training for at most ${left}s"
timeout -s INT -k 20 "$left" python3 -m riwae.train_group \
    --configfile config/paper.yaml config/paper-2d.yaml --group cremer2d --device "${DEVICE:-cuda}" \
    2>"$OUT/train.err"
stamp "training rc=$? (124: stopped at the deadline, resumable)"
kill "$DMON" 2>/dev/null
mv "$OUT/dmon.txt" "$OUT/train.err" results/paper-2d/ 2>/dev/null
tar czf "$OUT/paper-2d.tar.gz" results/paper-2d
stamp "end"
