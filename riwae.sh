#!/usr/bin/env bash
# Set up the project's virtual environment (.venv) when needed, then run the pipeline or tests.
#   ./riwae.sh pipeline [snakemake options]   snakemake --cores all on config/config.yaml
#   ./riwae.sh test [pytest options]          the test suite
# Set-up runs once, and again only when pyproject.toml changes; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")"

venv=.venv
stamp="$venv/.riwae-installed"

setup() {
    local python=${PYTHON:-python3}
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -c 'import sys; assert sys.version_info >= (3, 11), "riwae needs Python 3.11 or newer"'
        "$python" -m venv "$venv"
    fi
    local want
    want=$(cat pyproject.toml | "$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet -e ".[test]"
        echo "$want" >"$stamp"
    fi
}

case "${1:-}" in
pipeline)
    shift
    setup
    # Name a missing or broken config file: Snakemake reads them before the workflow starts
    # and would not say which one.
    "$venv/bin/python" -m riwae.config "$@"
    exec "$venv/bin/snakemake" --cores all "$@"
    ;;
test)
    shift
    setup
    exec "$venv/bin/python" -m pytest "$@"
    ;;
*)
    echo "usage: ./riwae.sh pipeline [snakemake options] | ./riwae.sh test [pytest options]" >&2
    exit 2
    ;;
esac
