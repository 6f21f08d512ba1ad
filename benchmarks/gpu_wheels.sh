#!/usr/bin/env bash
# Snakemake and every package it needs, as wheels for a GPU machine that has no network and
# no Snakemake (CPython 3.12 on x86_64 Linux, as NVIDIA's PyTorch images): benchmarks/
# gpu_check.py and benchmarks/gpu_paper_2d.sh install them from there without an index.
#
#   bash benchmarks/gpu_wheels.sh [DIR]     DIR: default resources/wheels (about 28 MB)
#
# Run it where there is a network, with the project's environment (its Snakemake version is
# the one fetched). PY_VERSION picks another target Python (default 3.12).
set -euo pipefail
dir=${1:-$(dirname "$0")/../resources/wheels}
python=${PYTHON:-python3}
version=$("$python" -c 'import snakemake; print(snakemake.__version__)')
mkdir -p "$dir"
# connection_pool has no wheel on PyPI: build one (it is pure Python) from its sdist.
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$dir" connection_pool
"$python" -m pip download --quiet --only-binary=:all: --dest "$dir" --find-links "$dir" \
    --python-version "${PY_VERSION:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 "snakemake==$version"
echo "$(ls "$dir"/*.whl | wc -l) wheels in $dir ($(du -sh "$dir" | cut -f1)) for Snakemake $version"
