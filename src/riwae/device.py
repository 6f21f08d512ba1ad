"""Where and how a job computes, decided in one place: the device (``auto``, ``cpu`` or
``cuda``), which GPU of several a job takes, the precision of float32 matrix products, and
how the process keeps the memory its tensors free.

Snakemake's own process never touches CUDA beyond asking whether it is there: the GPU's
memory is asked in a child process, so no CUDA context holds GPU memory for the whole run
(or fails on a GPU in exclusive-process mode).
"""

import ctypes
import ctypes.util
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from riwae.io import UserError

MATMUL_PRECISIONS = ("highest", "high", "medium")

# NVIDIA's PyTorch container images set this; torch then runs every float32 product of
# cuBLAS in TF32, whatever torch.set_float32_matmul_precision says.
TF32_OVERRIDE = "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"


def tf32_override_problem(precision: str) -> str | None:
    """The sentence refusing ``TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1`` under
    ``matmul_precision: highest``; None when there is nothing to refuse."""
    if precision != "highest" or os.environ.get(TF32_OVERRIDE) != "1":
        return None
    return (
        f"{TF32_OVERRIDE}=1 is set (NVIDIA's container images set it), which makes every "
        f"float32 matrix product TF32 although matmul_precision is highest; run "
        f"`unset {TF32_OVERRIDE}` first, or set matmul_precision: high to use TF32 on purpose."
    )


def set_matmul_precision(precision: str) -> None:
    """Float32 matrix products at ``precision`` in this process: ``highest`` is full float32
    (the replication's), ``high`` allows TF32 on GPUs that have it, ``medium`` bfloat16."""
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"Unknown matmul_precision {precision!r}; use one of {MATMUL_PRECISIONS}.")
    problem = tf32_override_problem(precision)
    if problem:
        raise UserError(problem)
    torch.set_float32_matmul_precision(precision)


# glibc's mallopt parameters.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def reuse_freed_memory() -> bool:
    """Have glibc's malloc keep the memory that tensors free for the process's next tensors:
    no allocation by mmap, no trimming of the heap back to the system. By default each
    large tensor (a decoder pass's [rows, 784] outputs) is mapped fresh and returned when
    freed, so the next one's pages are faulted in and zeroed again: measured here, 40% of
    an evaluation's time (19 of 55 s in the kernel) and 21% of a cremer2d k = 50 training
    step, with identical numbers either way. A job's memory then stays at its peak until it
    ends. True where it was set (a Linux with glibc); elsewhere nothing changes."""
    libc = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(libc), "mallopt", None) if libc else None
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**30))


def uses_gpu(device: str) -> bool:
    """Whether jobs of ``device`` run on a GPU on this machine. Asks only whether CUDA is
    there, which creates no CUDA context."""
    if device == "auto":
        return torch.cuda.is_available()
    return device == "cuda"


def visible_gpu_memory() -> int | None:
    """Bytes of memory of the smallest GPU this process could use, asked in a child process
    (reading a GPU's properties initialises CUDA); None where none is visible or the child
    cannot tell."""
    code = (
        "import torch\n"
        "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
        "print(min((torch.cuda.get_device_properties(i).total_memory for i in range(n)),"
        " default=0))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return int(result.stdout.split()[-1]) or None


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present and the CPU otherwise."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "device: cuda was asked for but no CUDA device is visible; set device: auto or cpu."
        )
    return torch.device(device)


@contextmanager
def free_gpu(
    lock_dir: str | Path, count: int, wait_seconds: float = 1.0, jobs_per_gpu: int = 1
) -> Iterator[int]:
    """The index of a GPU (of ``count`` visible) with a slot (of ``jobs_per_gpu``) that no
    other job holds, held until the block ends: one lock file per slot under ``lock_dir``,
    locked with ``flock``, which the kernel releases when the holder exits, however it
    ends. Jobs spread over the GPUs before they share one. Waits while every slot is held."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        for slot in range(jobs_per_gpu):
            for index in range(count):
                name = f"gpu{index}.lock" if slot == 0 else f"gpu{index}-slot{slot}.lock"
                lock = open(lock_dir / name, "a")
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.close()
                    continue
                try:
                    yield index
                finally:
                    lock.close()  # releases the lock
                return
        if not told:
            print(f"all {count} GPUs are held by other jobs (locks in {lock_dir}); waiting")
            told = True
        time.sleep(wait_seconds)


def visible_gpu_count() -> int:
    """GPUs this process sees, asked without creating a CUDA context."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextmanager
def claim_device(
    device: str, lock_dir: str | Path, jobs_per_gpu: int = 1
) -> Iterator[torch.device]:
    """The job's ``torch.device``, for the job's lifetime. On CUDA with several GPUs visible,
    a slot of a GPU of its own (``free_gpu``), so that ``--resources gpu=N`` on an N-GPU
    machine uses all N (with ``jobs_per_gpu`` jobs on each); with one visible (one GPU, or a
    scheduler's ``CUDA_VISIBLE_DEVICES``), that one, whose sharing Snakemake's resource
    bounds."""
    resolved = resolve_device(device)
    if resolved.type != "cuda":
        yield resolved
        return
    count = torch.cuda.device_count()
    if count == 1:
        yield torch.device("cuda", 0)
        return
    with free_gpu(lock_dir, count, jobs_per_gpu=jobs_per_gpu) as index:
        torch.cuda.set_device(index)
        yield torch.device("cuda", index)
