"""The run manifest: what produced the artifacts of a run folder, and their hashes."""

import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd

from riwae.data import ARRAY_SHA256
from riwae.io import sha256_file, verify_artifacts
from riwae.spec import training_device


def git_state(root: str | Path = ".") -> dict:
    """The commit of the working tree and whether it has uncommitted changes."""

    def git(*args):
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def versions() -> dict:
    import snakemake
    import torch

    try:
        import torchvision
    except ImportError:  # only the torchvision data source needs it
        torchvision = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "torchvision": torchvision and torchvision.__version__,
        "snakemake": snakemake.__version__,
    }


def stage_times(benchmark_dir: str | Path) -> dict[str, float]:
    """Wall seconds of each job, from Snakemake's ``benchmark:`` files under the run."""
    times = {}
    for path in sorted(Path(benchmark_dir).rglob("*.tsv")):
        name = str(path.relative_to(benchmark_dir).with_suffix(""))
        times[name] = float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
    return times


def training_devices(model_paths) -> dict[str, str]:
    return {Path(path).parent.name: training_device(path) for path in model_paths}


def is_timing(path: str | Path) -> bool:
    """Wall-time records (Snakemake's benchmarks, training's per-epoch ``timing.csv`` and the
    table made from them): the only files that differ between two runs of the same config
    on the same machine."""
    path = Path(path)
    return path.name in {"timing.csv", "training_times.csv"} or "benchmarks" in path.parts


def build_manifest(
    config: dict, run_dir: str | Path, data_path: str | Path, model_paths, artifacts
) -> dict:
    """Everything a stranger needs to see what produced this run's artifacts. Every artifact
    is checked against the hash recorded when it was written (``riwae.io.verify_artifacts``),
    so a file edited since never enters the manifest as the pipeline's; Snakemake's own
    benchmark files, which record wall times only, are hashed as they are."""
    config_text = json.dumps(config, sort_keys=True)
    benchmarks = map(str, (Path(run_dir) / "benchmarks").rglob("*.tsv"))
    hashes = verify_artifacts(sorted(set(map(str, artifacts))))
    hashes = dict(sorted({**hashes, **{path: sha256_file(path) for path in benchmarks}}.items()))
    return {
        "run": config["run"],
        "git": git_state(),
        "config": config,
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        "versions": versions(),
        "training_devices": training_devices(model_paths),
        # The arrays' pinned hashes, verified whenever the data are loaded.
        "data": {
            "path": str(data_path),
            "sha256": sha256_file(data_path),
            "arrays_sha256": ARRAY_SHA256,
        },
        "stage_seconds": stage_times(Path(run_dir) / "benchmarks"),
        # Identical runs give identical artifacts; timing files are listed apart.
        "artifacts": {path: digest for path, digest in hashes.items() if not is_timing(path)},
        "timing_files": {path: digest for path, digest in hashes.items() if is_timing(path)},
    }
