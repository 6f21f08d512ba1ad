import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

SMOKE = "results/smoke"

# Identities are tested exactly, so the default dtype of every test is float64.
torch.set_default_dtype(torch.float64)

# What runs only where CUDA is (`-m cuda` selects it; benchmarks/gpu_check.py runs it).
needs_cuda = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device is visible"),
]

SMOKE_RUNS = ("smoke_run", "cuda_smoke_run", "smoke_artifacts")


def pytest_collection_modifyitems(items):
    """Every test that needs a smoke run of the whole pipeline is slow (minutes, and the
    package index once for MNIST): `-m "not slow"` leaves them out."""
    for item in items:
        if set(SMOKE_RUNS) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def copy_workflow(destination: Path) -> Path:
    """A copy of the pipeline's files, as a fresh clone would have them."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "environment.yml"):
        shutil.copy(ROOT / name, destination / name)
    for folder in ("workflow", "config", "notebooks"):
        if (ROOT / folder).exists():
            shutil.copytree(ROOT / folder, destination / folder, dirs_exist_ok=True)
    return destination


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The whole pipeline run once on config/smoke.yaml in a temporary copy; returns its root."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir, "--configfile=config/smoke.yaml")
    return workdir


@pytest.fixture
def one_thread():
    """Small matrix products on one thread: on a busy 2-core machine two threads made
    test_estimators' two-layer DReG test several times slower (measured: 9 s against 60 s
    for 8000 sample sets)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cuda_smoke_run(tmp_path_factory) -> Path:
    """The smoke pipeline with device: cuda in a temporary copy, up to its manifest (the
    notebook and the report do not depend on the device, and need Jupyter, which a GPU
    machine may lack). MNIST comes from resources/downloads/ when it is there (a GPU machine
    may have no network)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("cuda-smoke"))
    downloads = ROOT / "resources/downloads"
    if downloads.exists():
        shutil.copytree(downloads, workdir / "resources/downloads")
    configs = "--configfile=config/smoke.yaml", "--config", "device=cuda"
    snakemake(workdir, f"{SMOKE}/manifest.json", "--cores", "all", *configs)
    return workdir


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=needs_cuda)])
def smoke_artifacts(request) -> Path:
    """The root of a smoke run on the CPU and, where CUDA is visible, of one on the GPU: the
    checks of the run's artifacts hold for both."""
    return request.getfixturevalue("smoke_run" if request.param == "cpu" else "cuda_smoke_run")
