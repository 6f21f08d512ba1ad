"""Where and how jobs compute (riwae.device): a GPU of its own per job, the precision of
float32 matrix products, and no CUDA in Snakemake's own process."""

import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from conftest import ROOT, copy_workflow
from riwae.device import (
    TF32_OVERRIDE,
    claim_device,
    free_gpu,
    set_matmul_precision,
    tf32_override_problem,
    visible_gpu_memory,
)
from riwae.io import UserError


def test_jobs_holding_gpus_each_get_their_own(tmp_path):
    with free_gpu(tmp_path, 3) as first, free_gpu(tmp_path, 3) as second:
        with free_gpu(tmp_path, 3) as third:
            assert sorted([first, second, third]) == [0, 1, 2]
        with free_gpu(tmp_path, 3) as again:  # the third's GPU is free again
            assert again == third
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"gpu{i}.lock" for i in range(3)]


def test_a_job_waits_while_every_gpu_is_held(tmp_path):
    got = []

    def job():
        with free_gpu(tmp_path, 1, wait_seconds=0.05) as index:
            got.append(index)

    with free_gpu(tmp_path, 1):
        waiting = threading.Thread(target=job)
        waiting.start()
        time.sleep(0.3)
        assert not got  # still waiting for GPU 0
    waiting.join(timeout=10)
    assert got == [0]


def test_a_gpu_held_by_a_job_that_died_is_free(tmp_path):
    """The kernel releases a lock when its holder exits, however it ends."""
    hold = (
        "import sys, time\n"
        "from riwae.device import free_gpu\n"
        f"with free_gpu({str(tmp_path)!r}, 2) as index:\n"
        "    print(index, flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        with free_gpu(tmp_path, 2) as index:
            assert index == 1  # GPU 0 is held by the other process
    finally:
        holder.kill()
        holder.wait()
    with free_gpu(tmp_path, 2) as index:
        assert index == 0


def test_the_cpu_is_claimed_without_locks(tmp_path):
    with claim_device("cpu", tmp_path / "locks") as device:
        assert device == torch.device("cpu")
    assert not (tmp_path / "locks").exists()


def test_the_gpus_memory_is_asked_in_a_child_process(monkeypatch):
    """Reading a GPU's properties initialises CUDA, whose context would hold GPU memory in
    Snakemake's process for the whole run: the question goes to a child process."""

    def no_cuda_here():
        raise AssertionError("CUDA was initialised in this process")

    monkeypatch.setattr(torch.cuda, "_lazy_init", no_cuda_here)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    memory = visible_gpu_memory()  # this machine's answer, from the child
    assert memory is None or memory > 2**30


def test_tf32_override_is_refused_with_one_sentence(monkeypatch):
    monkeypatch.setenv(TF32_OVERRIDE, "1")
    with pytest.raises(UserError) as error:
        set_matmul_precision("highest")
    message = str(error.value)
    assert message.count(". ") == 0 and message.endswith("on purpose.")
    assert f"`unset {TF32_OVERRIDE}`" in message
    assert tf32_override_problem("high") is None  # TF32 asked for: nothing to refuse
    monkeypatch.setenv(TF32_OVERRIDE, "0")
    assert tf32_override_problem("highest") is None


def test_matmul_precision_is_set_for_the_job():
    before = torch.get_float32_matmul_precision()
    try:
        set_matmul_precision("high")
        assert torch.get_float32_matmul_precision() == "high"
        set_matmul_precision("highest")
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(before)


def test_snakemake_refuses_the_tf32_override_before_any_work(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    command = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile=config/smoke.yaml"]
    environment = {**dict(os.environ), TF32_OVERRIDE: "1"}
    result = subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True)
    assert result.returncode != 0
    sentences = [line for line in result.stderr.splitlines() if line.startswith(TF32_OVERRIDE)]
    assert len(sentences) == 1 and "matmul_precision is highest" in sentences[0]
    assert not (workdir / "results").exists()


def test_rule_names_do_not_depend_on_the_machine(tmp_path):
    """Snakemake reads the workflow again on every machine that runs a job (a cluster's
    compute node): with device: auto, one that sees a GPU finds the same rules."""
    workdir = copy_workflow(tmp_path / "workflow")
    fake = tmp_path / "fake-gpu"
    fake.mkdir()
    # torch says CUDA is there (it is not: nothing may use it while the rules are read).
    (fake / "sitecustomize.py").write_text("import torch\ntorch.cuda.is_available = lambda: True\n")
    command = [sys.executable, "-m", "snakemake", "--list-rules", "--config", "device=auto"]
    environment = dict(os.environ)
    paths = [str(ROOT / "src"), environment.get("PYTHONPATH", "")]
    rules = []
    for prefix in ([], [str(fake)]):
        environment["PYTHONPATH"] = ":".join([*prefix, *paths])
        result = subprocess.run(
            command, cwd=workdir, env=environment, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-2000:]
        rules.append(sorted(line for line in result.stdout.split() if line.startswith("train")))
    assert rules[0] == rules[1] and "train_burda1-vae-k1" in rules[0]


def test_jobs_share_a_gpu_in_slots_after_spreading_over_the_gpus(tmp_path):
    """With two slots per GPU, four jobs on two GPUs take GPU 0, GPU 1, then 0 and 1 again."""
    with free_gpu(tmp_path, 2, jobs_per_gpu=2) as a, free_gpu(tmp_path, 2, jobs_per_gpu=2) as b:
        with free_gpu(tmp_path, 2, jobs_per_gpu=2) as c:
            with free_gpu(tmp_path, 2, jobs_per_gpu=2) as d:
                assert [a, b, c, d] == [0, 1, 0, 1]


FAULTS_OF_REPEATED_PASSES = """
import ctypes, resource, sys, torch
# glibc's M_MMAP_THRESHOLD at 1 MB: every tensor below is mapped when made and unmapped when
# freed, as glibc does by default whenever its adaptive threshold is below their size.
ctypes.CDLL("libc.so.6").mallopt(-3, 2**20)
if sys.argv[1] == "reuse":
    from riwae.device import reuse_freed_memory
    assert reuse_freed_memory()
def one_pass():  # as a decoder pass's outputs: a few 12 MB tensors alive at once, then freed
    a = torch.ones(3 * 2**20)
    b = a * 2
    return float((b + a).sum())
for _ in range(20):  # the heap grows to its working size
    one_pass()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    one_pass()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_jobs_reuse_the_memory_their_tensors_free():
    """Passes that make and free three 12 MB tensors, with glibc mapping each one afresh (as
    its adaptive default does, or not, by the heap's state: 0 to 183,680 faults over these
    20 passes measured in four runs): every pass faults their 9,216 pages in again. With
    the jobs' setting the memory is kept and reused, and the passes fault in next to none
    (a few thousand at most on a busy machine, whose kernel may reclaim idle pages)."""

    def faults(mode: str) -> int:
        command = [sys.executable, "-c", FAULTS_OF_REPEATED_PASSES, mode]
        return int(subprocess.run(command, capture_output=True, text=True, check=True).stdout)

    every_page = 20 * 9216
    assert faults("default") > 0.9 * every_page
    assert faults("reuse") < 0.1 * every_page
