"""The one command that proves a GPU (benchmarks/gpu_check.py), tested here in its dry mode
on the CPU, so that it cannot fail on a typo when a GPU is finally there."""

import importlib.util
import os
import subprocess
import sys
import zipfile

from conftest import ROOT


def gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def environment() -> dict:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def test_dry_mode_runs_every_step_and_prints_one_summary_table_last(tmp_path):
    command = [sys.executable, "benchmarks/gpu_check.py", "--dry", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["| step | result | seconds |", "|---|---|---:|"]
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[2:])
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in lines[2:]}
    assert rows["Snakemake"] == "already importable"
    # No CUDA here: every test marked cuda is collected and skips, none fails.
    passed, failed, skipped = (
        int(part.split()[0]) for part in rows["tests marked cuda"].split(", ")
    )
    assert passed == 0 and failed == 0 and skipped >= 10
    assert rows["benchmark"].startswith("smoke.yaml projected:")
    assert "train burda1-vae-k1 (1 model(s)) x 2 seeds" in rows
    # One row per architecture's evaluation, times its models (3 models x 2 seeds).
    assert "eval cremer2d k 50 (20 images a batch) x 6" in rows
    assert rows["gpu check (dry, on the CPU)"] == "passed"
    assert not [step for step in rows if step.startswith("FAILED")]
    assert (tmp_path / "summary.md").read_text() == result.stdout
    assert {"tests.log", "throughput.log", "throughput.csv", "cuda-tests.xml"} <= {
        path.name for path in tmp_path.iterdir()
    }


def test_snakemake_is_installed_from_wheels_without_an_index(tmp_path):
    """The set-up of a GPU machine without Snakemake, on a wheel made here by hand."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "tiny-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("tiny.py", "ANSWER = 42\n")
        wheel.writestr(
            "tiny-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n"
        )
        wheel.writestr(
            "tiny-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr("tiny-1.0.dist-info/RECORD", "")
    site = tmp_path / "site"
    gpu_check = gpu_check_module()
    status, _ = gpu_check.install_wheels(wheels, site, tmp_path / "install.log", environment())
    assert status == 0, (tmp_path / "install.log").read_text()
    assert gpu_check.importable("tiny", {**environment(), "PYTHONPATH": str(site)})
    missing = gpu_check.install_wheels(tmp_path / "none", site, tmp_path / "m.log", environment())
    assert missing[0] != 0 and "benchmarks/gpu_wheels.sh" in (tmp_path / "m.log").read_text()


def test_the_gpu_scripts_parse():
    for script in ("benchmarks/gpu_paper_2d.sh", "benchmarks/gpu_wheels.sh"):
        result = subprocess.run(["bash", "-n", script], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_failed_tests_are_named_in_the_summary(tmp_path):
    junit = tmp_path / "tests.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" tests="3">'
        '<testcase classname="tests.test_cuda" name="test_a">'
        '<properties><property name="drift" value="1e-07"/></properties></testcase>'
        '<testcase classname="tests.test_cuda" name="test_b">'
        '<failure message="assert 1 == 2 | x&#10;more">trace</failure></testcase>'
        '<testcase classname="tests.test_cuda" name="test_c"><skipped message="no"/></testcase>'
        "</testsuite></testsuites>"
    )
    counts, failures, recorded = gpu_check_module().junit_results(junit)
    assert counts == {"passed": 1, "failed": 1, "skipped": 1}
    assert failures == [("tests.test_cuda.test_b", "assert 1 == 2 / x")]
    assert recorded == [("test_a", "drift", "1e-07")]
