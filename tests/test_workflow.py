import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, SNAKEMAKE, copy_workflow, snakemake

SMOKE = "results/smoke"


def test_smoke_run_writes_figure_1_and_its_data(smoke_run):
    for suffix in ("png", "pdf"):
        assert (smoke_run / SMOKE / f"figures/posterior_synthetic.{suffix}").stat().st_size > 10_000
    with np.load(smoke_run / SMOKE / "figures/posterior_synthetic.npz") as arrays:
        names = set(arrays.files)
        axis, log_posterior = arrays["axis"], arrays["log_posterior"]
    assert {"axis", "log_posterior", "log_qiw_k1", "log_qiw_k10", "log_qiw_k100"} <= names
    assert log_posterior.shape == (41, 41) and axis[0] == -6 and axis[-1] == 6
    table = pd.read_csv(smoke_run / SMOKE / "tables/qiw_distance_synthetic.csv")
    correct = table[table.variant == "correct"].set_index("k")
    # q_IW approaches the posterior as k grows.
    assert correct.tv_to_posterior[1] > correct.tv_to_posterior[10] > correct.tv_to_posterior[100]
    assert correct.integral.between(0.9, 1.1).all()
    original = table[table.variant == "original"].set_index("k")
    assert original.integral[1] == pytest.approx(0.5, abs=0.02)  # k / (k + 1) at k = 1


def test_smoke_run_identity_check(smoke_run):
    check = json.loads((smoke_run / SMOKE / "checks/identity_synthetic.json").read_text())
    assert check["passed"] and [row["k"] for row in check["rows"]] == [1, 2, 10, 1000]
    for row in check["rows"]:
        assert row["max_abs_diff"] <= 1e-10
        assert row["L_VAE[q]"] <= row["L_IWAE[q]"] + 1e-12 <= check["log_evidence"] + 0.05
    markdown = (smoke_run / SMOKE / "checks/identity_synthetic.md").read_text()
    assert markdown.count("| yes |") == 4


def test_rerun_with_nothing_changed_does_no_work(smoke_run):
    result = snakemake(smoke_run, "--configfile=config/smoke.yaml", "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changed_plot_option_reruns_only_the_figure(smoke_run, tmp_path):
    config = yaml.safe_load((smoke_run / "config/smoke.yaml").read_text())
    config["plot"]["levels"] = 12
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(smoke_run, f"--configfile={changed}", "--dry-run", "--quiet", "rules")
    stats = (result.stdout + result.stderr).split("Job stats:")[1].split("total")[0]
    planned = {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}
    assert planned == {"posterior_figure", "all"}, stats


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("device=tpu", "Invalid config at device: 'tpu' is not one of"),
        ("seed=-1", "Invalid config at seed: -1 is less than the minimum of 0"),
        ("colour=red", "'colour' was unexpected"),
    ],
)
def test_bad_config_value_stops_with_one_sentence(smoke_run, override, fragment):
    result = snakemake(
        smoke_run,
        "--configfile=config/smoke.yaml",
        "--dry-run",
        "--config",
        override,
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    sentence = [line for line in output.splitlines() if line.startswith("Invalid config")]
    assert len(sentence) == 1 and fragment in sentence[0], output[-2000:]


@pytest.mark.parametrize(
    ("section", "key", "value", "fragment"),
    [
        ("identity", "k", [1, 0], "identity.k[1]: 0 is less than the minimum of 1"),
        (
            "models",
            None,
            [{"arch": "resnet", "objective": "iwae", "k": 5}],
            "models[0].arch: 'resnet' is not one of 'cremer2d', 'burda1'",
        ),
        ("train", "epochs", -3, "train.epochs: -3 is less than the minimum of 0"),
    ],
)
def test_bad_nested_config_value_stops_with_one_sentence(
    smoke_run, tmp_path, section, key, value, fragment
):
    config = yaml.safe_load((smoke_run / "config/smoke.yaml").read_text())
    if key is None:
        config[section] = value
    else:
        config.setdefault(section, {})[key] = value
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(smoke_run, f"--configfile={bad}", "--dry-run", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert any(fragment in line for line in output.splitlines()), output[-2000:]


def test_identity_stage_fails_when_difference_exceeds_tolerance(tmp_path):
    workdir = copy_workflow(tmp_path / "strict")
    config = yaml.safe_load((workdir / "config/smoke.yaml").read_text())
    config["identity"]["tolerance"] = 1e-300  # below float64 rounding: must fail
    (workdir / "strict.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workdir, "--configfile=strict.yaml", "identity", check=False)
    assert result.returncode != 0
    assert "Identity check failed on the synthetic target for k = [2, 10, 1000]" in result.stderr
    assert not (workdir / SMOKE / "checks/identity_synthetic.json").exists()


def test_lint_is_clean():
    result = subprocess.run([*SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, (
        result.stdout + result.stderr
    )


def test_snakefmt_check_passes():
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
