"""The pipeline through workflow/profiles/slurm on a real one-node Slurm cluster.

The cluster is Debian's slurm-wlm and munge, installed when missing (this needs root and
apt-get, as on a fresh CI machine; elsewhere the tests are skipped), started from a temporary
folder without systemd, and stopped by PID afterwards.
"""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SNAKEMAKE, copy_workflow

SMOKE = "results/smoke"
LOCAL_RULES = {"mnist", "all"}  # run by Snakemake itself on the submitting machine
# The profile's set-resources: `train` applies to every training group's rule, train_<group>.
GPU_PARTITION_RULES = {"train", "evaluate"}
SLURM_LOGS = ".snakemake/slurm_logs"  # the plugin's: rule_<rule>/<wildcards>/<job id>.log


def install_slurm():
    if os.geteuid() != 0:
        pytest.skip("a Slurm cluster needs root: slurmd runs every job as its user")
    tools = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "srun", "scontrol")
    if all(shutil.which(tool) for tool in tools):
        return
    if not shutil.which("apt-get"):
        pytest.skip("Slurm is not installed, and there is no apt-get to install it")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "slurm-wlm", "munge"]):
        result = subprocess.run(command, env=environment, capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"could not install Slurm: {' '.join(command)} said {result.stderr[-500:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def slurm_conf(folder: Path) -> str:
    # `slurmd -C` prints this machine's node line: its name, real CPU count and memory.
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True)
    node_line = node.stdout.splitlines()[0]
    host = node_line.split()[0].removeprefix("NodeName=")
    # One pretend GPU (its device file is /dev/null), so that a job asking for a GPU can run.
    (folder / "gres.conf").write_text(f"NodeName={host} Name=gpu File=/dev/null\n")
    return f"""ClusterName=riwae-test
SlurmctldHost={host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge.socket
CredType=cred/munge
MpiDefault=none
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={folder}/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge=300
{node_line} Gres=gpu:1
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running one-node cluster with partitions `cpu` and `gpu` (the profile's). Yields the
    environment under which Slurm's commands use it, and the file in which Slurm records each
    completed job (there is no slurmdbd, hence no sacct)."""
    install_slurm()
    folder = tmp_path_factory.mktemp("slurm")
    for name in ("state", "spool", "bin"):
        (folder / name).mkdir()
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    (folder / "slurm.conf").write_text(slurm_conf(folder))
    # A job runs its rule under `srun` with the SLURM_* variables removed, so srun looks for
    # slurm.conf where a real cluster keeps it (/etc/slurm). This cluster's lives here: an
    # srun first on PATH points the real one at it.
    srun = folder / "bin/srun"
    srun.write_text(f'#!/bin/sh\nSLURM_CONF={folder}/slurm.conf exec {shutil.which("srun")} "$@"\n')
    srun.chmod(0o755)
    environment = {
        **os.environ,
        "SLURM_CONF": str(folder / "slurm.conf"),
        "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    munged = [
        "munged",
        "--foreground",
        "--force",  # as root, with its socket in a folder of its own
        f"--socket={folder}/munge.socket",
        f"--key-file={key}",
        f"--log-file={folder}/munged.log",
        f"--pid-file={folder}/munged.pid",
        f"--seed-file={folder}/munged.seed",
    ]
    daemons = []
    with open(folder / "daemons.log", "w") as log:
        try:
            daemons.append(subprocess.Popen(munged, stdout=log, stderr=log))
            said = folder / "daemons.log"
            socket_ready = wait_until(lambda: (folder / "munge.socket").exists())
            assert socket_ready, f"munged did not start:\n{said.read_text()[-3000:]}"
            for command in (["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
                daemons.append(subprocess.Popen(command, env=environment, stdout=log, stderr=log))
            node_idle = wait_until(lambda: node_states(environment) == ["idle"])
            assert node_idle, f"no idle Slurm node:\n{said.read_text()[-3000:]}"
            yield {"environment": environment, "jobcomp": folder / "jobcomp.txt"}
        finally:
            subprocess.run(["scancel", "--user=root"], env=environment, capture_output=True)
            for daemon in reversed(daemons):
                daemon.terminate()
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()


def node_states(environment) -> list[str]:
    command = ["sinfo", "--noheader", "--format=%T"]
    return subprocess.run(command, env=environment, capture_output=True, text=True).stdout.split()


def wait_until(ready, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def slurm_command(*args: str) -> list[str]:
    return [
        *SNAKEMAKE,
        "--workflow-profile=workflow/profiles/slurm",
        "--configfile=config/smoke.yaml",
        "--slurm-status-command=squeue",  # no slurmdbd here, so no sacct; MinJobAge is 300 s
        "--slurm-init-seconds-before-status-checks=2",
        "--slurm-keep-successful-logs",
        *args,
    ]


def slurm_jobs_by_rule(workdir: Path) -> dict[str, list[str]]:
    """Rule -> Slurm job IDs of its jobs, from the plugin's per-job logs."""
    jobs = {}
    for log in sorted((workdir / SLURM_LOGS).glob("rule_*/**/*.log")):
        rule = log.relative_to(workdir / SLURM_LOGS).parts[0].removeprefix("rule_")
        jobs.setdefault(rule, []).append(log.stem)
    return jobs


def completed_jobs(jobcomp: Path) -> dict[str, dict[str, str]]:
    """Slurm's own record of each completed job: job ID -> its fields."""
    jobs = {}
    for line in jobcomp.read_text().splitlines():
        fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
        jobs[fields["JobId"]] = fields
    return jobs


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table: rule -> number of jobs."""
    table = output.split("Job stats:")[1].split("total")[0]
    rows = [line.split() for line in table.splitlines()[3:] if line.strip()]
    return {rule: int(count) for rule, count in rows}


def training_jobs(workdir: Path) -> list[str]:
    """Slurm job ids of the training rules (train_<group>) that have started."""
    jobs = slurm_jobs_by_rule(workdir)
    return [job for rule, ids in jobs.items() if rule.startswith("train_") for job in ids]


def test_smoke_run_on_slurm_runs_every_job_in_slurm_and_equals_the_local_run(
    slurm, smoke_run, tmp_path
):
    workdir = copy_workflow(tmp_path / "cluster")
    # The wheel MNIST comes in: the `mnist` rule still runs, locally, without a second download.
    shutil.copytree(smoke_run / "resources/downloads", workdir / "resources/downloads")
    # A Snakemake waiting on a job that Slurm lost ignores SIGTERM; the timeout sends SIGKILL.
    # It guards against such a hang only: the run itself took about 14 minutes on a 2-core
    # machine (each of some 65 jobs a Slurm job starting Python and Snakemake of its own).
    result = subprocess.run(
        slurm_command(),
        cwd=workdir,
        env=slurm["environment"],
        capture_output=True,
        text=True,
        timeout=2400,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]

    # Every job but the local ones ran as a Slurm job of its own, which Slurm recorded as
    # completed, with as many CPUs as the rule has threads (1 in the smoke config), in the
    # profile's partition.
    counts = job_counts(output)
    jobs = slurm_jobs_by_rule(workdir)
    assert {rule: len(ids) for rule, ids in jobs.items()} == {
        rule: count for rule, count in counts.items() if rule not in LOCAL_RULES
    }
    records = completed_jobs(slurm["jobcomp"])
    for rule, ids in jobs.items():
        partition = "gpu" if rule.split("_")[0] in GPU_PARTITION_RULES else "cpu"
        for record in (records[job_id] for job_id in ids):
            assert record["JobState"] == "COMPLETED" and record["ProcCnt"] == "1", record
            assert record["Partition"] == partition, record
    assert (workdir / SMOKE / "report.html").exists()

    # The same artifacts as the local run.
    cluster = json.loads((workdir / SMOKE / "manifest.json").read_text())["artifacts"]
    local = json.loads((smoke_run / SMOKE / "manifest.json").read_text())["artifacts"]
    assert cluster == local  # every artifact has the same SHA-256


def test_with_device_cuda_training_asks_slurm_for_a_gpu(slurm, smoke_run, tmp_path):
    workdir = copy_workflow(tmp_path / "gpu")
    (workdir / "resources").mkdir()
    shutil.copy(smoke_run / "resources/mnist.npz", workdir / "resources/mnist.npz")
    model = f"{SMOKE}/models/cremer2d-vae-k1/model.pt"
    command = slurm_command(model, "--config", "device=cuda")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    run = subprocess.Popen(command, cwd=workdir, env=slurm["environment"], **quiet)
    # The request is what is checked: Snakemake is stopped once Slurm runs the training job
    # (which, without CUDA on this machine, would fail).
    try:
        started = wait_until(lambda: training_jobs(workdir), seconds=300)
    finally:
        run.kill()
        run.wait()
    assert started, "the training job did not start within 5 minutes"
    job_id = training_jobs(workdir)[0]
    show = ["scontrol", "show", "job", job_id]
    job = subprocess.run(show, env=slurm["environment"], capture_output=True, text=True).stdout
    subprocess.run(["scancel", job_id], env=slurm["environment"], capture_output=True)
    assert "TresPerJob=gres:gpu:1" in job and "Partition=gpu" in job, job
