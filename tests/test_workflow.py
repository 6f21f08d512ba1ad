import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, SMOKE, SNAKEMAKE, copy_workflow, snakemake
from riwae.config import load_config
from riwae.spec import model_specs, training_groups

MODELS = [
    "burda1-vae-k1",
    "burda1-iwae-k5",
    "burda2-iwae-k5",
    "burda2-iwae-k5-dreg",
    "cremer2d-iwae-k5",
    "cremer2d-vae-k1",
    "cremer2d-iwae-k5-dreg",
]
MODELS_2D = [name for name in MODELS if name.startswith("cremer2d")]
# smoke.yaml trains every model from seeds 0 and 1.
REPLICATES = [replicate for name in MODELS for replicate in (name, f"{name}-seed1")]
REPLICATES_2D = [name for name in REPLICATES if name.startswith("cremer2d")]


def cpu_test_images(root) -> np.ndarray:
    """The smoke run's test images, binarised on the CPU, as every stage must see them."""
    from riwae.data import binarized_test_images

    return binarized_test_images(root / "resources/mnist.npz", seed=0).numpy()


def test_smoke_run_writes_figure_1_and_its_data(smoke_artifacts):
    figures = smoke_artifacts / SMOKE / "figures"
    for suffix in ("png", "pdf"):
        assert (figures / f"posterior_synthetic.{suffix}").stat().st_size > 10_000
    with np.load(smoke_artifacts / SMOKE / "figures/posterior_synthetic.npz") as arrays:
        names = set(arrays.files)
        axis, log_posterior = arrays["x_axis"], arrays["log_posterior"]
    assert {"x_axis", "y_axis", "log_posterior", "log_qiw_k1", "log_qiw_k100"} <= names
    assert log_posterior.shape == (41, 41) and axis[0] == -6 and axis[-1] == 6
    table = pd.read_csv(smoke_artifacts / SMOKE / "tables/qiw_distance_synthetic.csv")
    correct = table[table.variant == "correct"].set_index("k")
    # q_IW approaches the posterior as k grows.
    assert correct.tv_to_posterior[1] > correct.tv_to_posterior[10] > correct.tv_to_posterior[100]
    assert correct.integral.between(0.9, 1.1).all()
    original = table[table.variant == "original"].set_index("k")
    assert original.integral[1] == pytest.approx(0.5, abs=0.02)  # k / (k + 1) at k = 1


def test_smoke_run_identity_check(smoke_artifacts):
    check = json.loads((smoke_artifacts / SMOKE / "checks/identity.json").read_text())
    cases = [section["case"] for section in check["sections"]]
    assert check["passed"]
    assert cases == ["synthetic 2D target", *REPLICATES]
    synthetic = check["sections"][0]
    assert [row["k"] for row in synthetic["rows"]] == [1, 2, 10, 1000]
    for section in check["sections"]:
        for row in section["rows"]:
            assert row["max_abs_diff"] <= 1e-10 and row["passed"]
            assert row["L_VAE[q]"] <= row["L_IWAE[q]"] + 3 * row["L_IWAE[q]_se"]
    markdown = (smoke_artifacts / SMOKE / "checks/identity.md").read_text()
    assert markdown.count("| yes |") == 4 * (1 + len(REPLICATES))
    assert "The original figure code's q_IW" in markdown
    # Each model over its two seeds, at each k.
    assert markdown.count("| burda1-vae-k1 | ") == 4 and "## Over training seeds" in markdown


def test_smoke_run_marginal_ordering(smoke_artifacts):
    table = pd.read_csv(smoke_artifacts / SMOKE / "checks/marginal.csv")
    assert set(table.case) == {"synthetic 2D target", *REPLICATES_2D}
    assert table.ordered.all()
    spread = pd.read_csv(smoke_artifacts / SMOKE / "checks/marginal_over_seeds.csv")
    assert list(spread.base_model) == [m for m in MODELS_2D for _ in (1, 10)]
    assert (spread.seeds == 2).all() and (spread.ordered_share == 1).all()
    synthetic = table[table.case == "synthetic 2D target"].set_index("k")
    assert synthetic["log p(x)"].iloc[0] == pytest.approx(np.log(8), abs=0.01)
    kl = synthetic["KL(q_IW marginal || posterior)"]
    assert kl[10] < kl[1]
    assert (smoke_artifacts / SMOKE / "figures/marginal_bounds.png").stat().st_size > 10_000


def test_smoke_run_trains_and_evaluates_every_model(smoke_artifacts):
    evaluation = pd.read_csv(smoke_artifacts / SMOKE / "tables/evaluation.csv")
    assert list(evaluation.model) == REPLICATES
    assert list(evaluation.seed) == [0, 1] * len(MODELS)
    assert list(evaluation.base_model) == [name for name in MODELS for _ in (0, 1)]
    assert (evaluation.epochs_run == 1).all() and (evaluation.ll_k == 50).all()
    # The ELBO from 5 draws per image below the k = 50 estimate. (iwae_k1 estimates the same
    # ELBO from one draw: on 20 images its noise exceeds the 2D models' gap after one epoch.)
    for r in evaluation.itertuples():
        assert r.vae_bound < r.log_likelihood < 0
        assert 0 <= r.active_units <= r.latent_dim
    for name in evaluation.model:
        history = pd.read_csv(smoke_artifacts / SMOKE / f"models/{name}/history.csv")
        assert list(history.columns) == ["epoch", "train_bound", "heldout_bound", "lr"]
        timing = pd.read_csv(smoke_artifacts / SMOKE / f"models/{name}/timing.csv")
        assert list(timing.epoch) == [1] and (timing.seconds > 0).all()
    assert not list((smoke_artifacts / SMOKE).glob("checkpoints/*.pt"))
    times = pd.read_csv(smoke_artifacts / SMOKE / "tables/training_times.csv")
    assert list(times.model) == REPLICATES and (times.train_seconds > 0).all()
    burda = (smoke_artifacts / SMOKE / "tables/burda_comparison.md").read_text()
    assert "| IWAE | 5 |" in burda and "84.78" in burda and "not trained" in burda
    # All 12 rows of Burda et al.'s table, by stochastic layers; ours where trained.
    rows = [line for line in burda.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert [row[:4] for row in rows] == ["| 1 "] * 6 + ["| 2 "] * 6
    two_layer_iwae_k5 = next(row for row in rows if row.startswith("| 2 | IWAE | 5 |"))
    assert "not trained" not in two_layer_iwae_k5 and "83.89" in two_layer_iwae_k5
    burda2 = evaluation.set_index("model").loc["burda2-iwae-k5"]
    assert burda2.latent_dims == "100+50" and burda2.latent_dim == 150
    assert sum(int(n) for n in burda2.active_units_per_layer.split("+")) == burda2.active_units
    # Two seeds of each model: different models, and the table's mean and spread over them.
    assert "| sd over seeds |" in burda
    table = pd.read_csv(smoke_artifacts / SMOKE / "tables/burda_comparison.csv")
    for base in ("burda1-iwae-k5", "burda2-iwae-k5"):
        runs = evaluation[evaluation.base_model == base]
        assert runs.log_likelihood.nunique() == 2
        layers = int(base[5])
        row = table[(table.layers == layers) & (table.objective == "iwae") & (table.k == 5)]
        assert row.seeds.item() == 2
        assert row.nll.item() == pytest.approx(-runs.log_likelihood.mean())
        assert row.nll_seed_sd.item() == pytest.approx(runs.log_likelihood.std())
    for figure in ("learning_curves", "bound_vs_k"):
        assert (smoke_artifacts / SMOKE / f"figures/{figure}.png").stat().st_size > 10_000


def test_a_group_trained_without_snakemake_gives_the_rules_files(smoke_run, tmp_path):
    """``python -m riwae.train_group`` (for GPU machines without Snakemake) writes, byte for
    byte, the model file the rule wrote for the same group."""
    workdir = copy_workflow(tmp_path)
    (workdir / "resources").mkdir()
    shutil.copy(smoke_run / "resources/mnist.npz", workdir / "resources/mnist.npz")
    command = [sys.executable, "-m", "riwae.train_group", "--configfile", "config/smoke.yaml"]
    result = subprocess.run(
        [*command, "--group", "cremer2d-vae-k1-seed1"], cwd=workdir, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("model.pt", "model.pt.sha256", "history.csv"):
        path = f"{SMOKE}/models/cremer2d-vae-k1-seed1/{name}"
        assert (workdir / path).read_bytes() == (smoke_run / path).read_bytes(), name
    assert not list((workdir / SMOKE).glob("checkpoints/*.pt"))
    missing = subprocess.run(
        [*command, "--group", "cremer2d"], cwd=workdir, capture_output=True, text=True
    )
    assert missing.returncode != 0
    assert "No training group 'cremer2d' here" in missing.stderr


def test_rerun_with_nothing_changed_does_no_work(smoke_run):
    result = snakemake(smoke_run, "--configfile=config/smoke.yaml", "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changed_plot_option_reruns_only_the_figure(smoke_run, tmp_path):
    config = load_config("config/smoke.yaml", root=smoke_run)
    config["plot"]["levels"] = 12
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(smoke_run, f"--configfile={changed}", "--dry-run", "--quiet", "rules")
    stats = (result.stdout + result.stderr).split("Job stats:")[1].split("total")[0]
    planned = {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}
    figures = {
        "posterior_figure",
        "training_figures",
        "marginal_figure",
        "reconstruction_figure",
        "digit_posteriors_figure",
        "latent_space_figure",
        "appendix_figure",
        "exact_loglik_figure",
        "gradient_snr_figure",
        "through_qiw_figure",
    }
    # The manifest hashes the new figures, the notebook and the report show them: all follow.
    assert planned == figures | {"run_config", "manifest", "notebook", "html_report", "all"}, stats


def test_changed_figure_option_reruns_only_that_figure(smoke_run, tmp_path):
    """Each stage's params hold only the settings it reads: the size of the latent-space
    manifold reruns the latent space and its figure, not the reconstructions or posteriors."""
    config = load_config("config/smoke.yaml", root=smoke_run)
    config["figures"]["manifold_size"] += 2
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(smoke_run, f"--configfile={changed}", "--dry-run", "--quiet", "rules")
    stats = (result.stdout + result.stderr).split("Job stats:")[1].split("total")[0]
    planned = {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}
    records = {"run_config", "manifest", "notebook", "html_report", "all"}
    assert planned == {"latent_space", "latent_space_figure"} | records, stats


def test_matmul_precision_reruns_every_stage_that_computes(smoke_run):
    """Every job that computes applies matmul_precision: it is one of their params, so a
    change reruns them all, and of the others only those that record the whole config."""
    configs = "--configfile=config/smoke.yaml", "--config", "matmul_precision=high"
    summary = snakemake(smoke_run, "--summary", *configs).stdout.splitlines()
    rows = [line.split("\t") for line in summary[1:] if "\t" in line]
    changed = {row[2] for row in rows if row[4] == "params changed"}
    training = {rule for rule in changed if rule.startswith("train_")}
    assert len(training) == len(REPLICATES)  # one training job per model on the CPU
    assert changed - training == {
        "evaluate",
        "exact_loglik",
        "gradient_snr",
        "through_qiw",
        "through_qiw_posteriors",
        "identity",
        "marginal",
        "reconstruct",
        "digit_posteriors",
        "latent_space",
        "posterior_grid",
        "appendix",
        "run_config",  # the config, as resolved
        "manifest",  # the config, in the run's provenance
    }


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
    ("path", "value", "fragment"),
    [
        (("identity", "k"), [1, 0], "identity.k[1]: 0 is less than the minimum of 1"),
        (
            ("models",),
            [{"arch": "resnet", "objective": "iwae", "k": 5}],
            "models[0].arch: 'resnet' is not one of 'cremer2d', 'burda1'",
        ),
        (
            ("models",),
            [{"arch": "burda1", "objective": "iwae", "k": 0}],
            "models[0].k: 0 is less than the minimum of 1",
        ),
        (
            ("training", "burda1", "epochs"),
            -3,
            "training.burda1.epochs: -3 is less than the minimum of 0",
        ),
        (("evaluation", "ll_k"), 0, "evaluation.ll_k: 0 is less than the minimum of 1"),
        (("exact", "grid_size"), 24, "exact.grid_size: 24 is even; use an odd number"),
    ],
)
def test_bad_nested_config_value_stops_with_one_sentence(
    smoke_run, tmp_path, path, value, fragment
):
    config = load_config("config/smoke.yaml", root=smoke_run)
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(smoke_run, f"--configfile={bad}", "--dry-run", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    sentence = [line for line in output.splitlines() if line.startswith("Invalid config")]
    assert len(sentence) == 1 and fragment in sentence[0], output[-2000:]


def test_identity_stage_fails_when_difference_exceeds_tolerance(smoke_run, tmp_path):
    workdir = tmp_path / "strict"
    shutil.copytree(smoke_run, workdir)  # results and metadata too: only the check reruns
    config = load_config("config/smoke.yaml", root=workdir)
    config["identity"]["tolerance"] = 1e-300  # below float64 rounding: must fail
    (workdir / "strict.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workdir, "--configfile=strict.yaml", "identity", check=False)
    assert result.returncode != 0
    assert "Job stats" in result.stdout + result.stderr
    message = (
        "Identity check failed for synthetic 2D target at k = 2, synthetic 2D target at k = 10"
    )
    assert message in result.stderr
    assert "burda1-iwae-k5 at k = 1000" in result.stderr
    assert not (workdir / SMOKE / "checks/identity.json").exists()
    assert "rule train" not in result.stdout + result.stderr


def test_reconstruction_figure_and_metric(smoke_artifacts):
    metric = pd.read_csv(smoke_artifacts / SMOKE / "tables/reconstruction_metric.csv")
    assert list(metric.model.unique()) == REPLICATES_2D
    assert list(metric.source[:3]) == ["q", "q_IW", "q_IW - q"]
    assert (metric.test_images == 10_000).all()
    # Over seeds: each model's mean and spread over its two seeds' numbers.
    summary = pd.read_csv(smoke_artifacts / SMOKE / "tables/reconstruction_metric_over_seeds.csv")
    assert list(summary.model.unique()) == MODELS_2D and (summary.seeds == 2).all()
    for r in summary.itertuples():
        runs = metric[(metric.base_model == r.model) & (metric.source == r.source)]
        assert list(runs.seed) == [0, 1] and runs.log_p_x_given_z.nunique() == 2
        assert r.log_p_x_given_z == pytest.approx(runs.log_p_x_given_z.mean())
        assert r.log_p_x_given_z_seed_sd == pytest.approx(runs.log_p_x_given_z.std())
    with np.load(smoke_artifacts / SMOKE / "figures/reconstructions.npz") as arrays:
        assert arrays["real"].shape == (2, 28, 28)
        assert arrays["from_q"].shape == arrays["from_qiw"].shape == (2, 3, 28, 28)
        assert 0 <= arrays["from_qiw"].min() and arrays["from_qiw"].max() <= 1
        real, indices = arrays["real"], arrays["indices"]
    assert np.array_equal(real, cpu_test_images(smoke_artifacts)[indices].reshape(-1, 28, 28))
    for name in (
        "reconstructions",
        "appendix_1d",
        "digit_posteriors_cremer2d-vae-k1",
        "latent_space_cremer2d-iwae-k5",
    ):
        for suffix in ("png", "pdf"):
            assert (smoke_artifacts / SMOKE / f"figures/{name}.{suffix}").stat().st_size > 5_000


def test_estimator_comparison_sets_dreg_beside_the_plain_model(smoke_artifacts):
    table = pd.read_csv(smoke_artifacts / SMOKE / "tables/estimators.csv")
    assert list(table.model) == [
        "burda2-iwae-k5-dreg",
        "burda2-iwae-k5",
        "cremer2d-iwae-k5-dreg",
        "cremer2d-iwae-k5",
    ]
    assert list(table.estimator) == ["dreg", "reparam"] * 2
    assert (table.iwae_minus_vae > 0).all()  # the IWAE bound lies above the ELBO
    two_d = table[table.arch == "cremer2d"]
    assert (two_d.q_area_over_posterior > 0).all() and two_d.qiw_reconstruction_gain.notna().all()
    # Posterior widths and reconstructions are of 2D models only.
    assert table[table.arch == "burda2"].q_area_over_posterior.isna().all()
    evaluation = pd.read_csv(smoke_artifacts / SMOKE / "tables/evaluation.csv").set_index("model")
    for r in table.itertuples():
        assert r.iwae_bound == evaluation.iwae_k5[r.model]
    markdown = (smoke_artifacts / SMOKE / "tables/estimators.md").read_text()
    assert "| cremer2d-iwae-k5-dreg | dreg |" in markdown


def test_every_markdown_table_has_whole_rows(smoke_artifacts):
    """A '|' inside a cell (say of p(x|z)) splits it in two: every row of every pipe table the
    run writes has as many cells as its header (markdown_page refuses a row that has not)."""
    from riwae.html_tables import markdown_page

    pages = sorted((smoke_artifacts / SMOKE).rglob("*.md"))
    assert {"estimators.md", "through_qiw.md", "exact_loglik.md", "marginal.md"} <= {
        p.name for p in pages
    }
    for path in pages:
        markdown_page(path.read_text(), path.name)


def test_real_digit_posteriors_are_normalised(smoke_artifacts):
    from riwae.grid import box_grid
    from riwae.io import read_npz_list

    digits = read_npz_list(
        smoke_artifacts / SMOKE / "figures/digit_posteriors_cremer2d-iwae-k5.npz"
    )
    assert len(digits) == 1
    digit = digits[0]
    grid = box_grid(
        (digit["x_axis"][0], digit["y_axis"][0]),
        (digit["x_axis"][-1], digit["y_axis"][-1]),
        len(digit["x_axis"]),
    )
    log_posterior = torch.from_numpy(digit["log_posterior"]).reshape(-1)
    assert np.exp(grid.log_integral(log_posterior)) == pytest.approx(1.0, abs=1e-9)
    q = torch.from_numpy(digit["log_qiw_k1"]).reshape(-1)
    assert np.exp(grid.log_integral(q)) == pytest.approx(1.0, abs=0.02)
    # Every seed's digits; the table's distance is the one on the figure's grid.
    distances = pd.read_csv(smoke_artifacts / SMOKE / "tables/digit_posteriors.csv")
    assert list(dict.fromkeys(distances.model)) == REPLICATES_2D
    first = distances[(distances.model == "cremer2d-iwae-k5") & (distances.k == 1)]
    assert first.tv_to_posterior.iloc[0] == pytest.approx(
        grid.total_variation(q, log_posterior), rel=1e-9
    )
    spread = pd.read_csv(smoke_artifacts / SMOKE / "tables/digit_posteriors_over_seeds.csv")
    assert set(spread.base_model) == set(MODELS_2D) and (spread.seeds == 2).all()


def test_smoke_run_exact_log_likelihood_of_the_2d_models(smoke_artifacts):
    from riwae.io import read_npz_list

    summary = pd.read_csv(smoke_artifacts / SMOKE / "tables/exact_loglik.csv")
    models = REPLICATES_2D
    assert list(summary.model) == models
    assert (summary.test_images == 20).all() and (summary.ll_k == 50).all()
    per_image = pd.read_csv(smoke_artifacts / SMOKE / "tables/exact_loglik_per_image.csv")
    # Every image's quadrature is stable under refining, and its grid holds the mass.
    assert (per_image.refinement.abs() <= 1e-3).all()
    assert (per_image.border_share < np.log(1e-4)).all()
    for name in models:
        evaluation = json.loads((smoke_artifacts / SMOKE / f"models/{name}/eval.json").read_text())
        mine = per_image[per_image.model == name]
        assert list(mine.image) == list(range(20))
        assert list(mine.estimate) == pytest.approx(evaluation["log_likelihood_per_image"])
        # The estimate is a lower bound in expectation: on average not above log p(x).
        assert mine.difference.mean() > -3 * mine.difference.std() / np.sqrt(20)
    markdown = (smoke_artifacts / SMOKE / "tables/exact_loglik.md").read_text()
    assert "| cremer2d-iwae-k5 | 20 |" in markdown and "Quadrature checks" in markdown
    assert "| cremer2d-iwae-k5 | 2 |" in markdown  # over its two seeds
    spread = pd.read_csv(smoke_artifacts / SMOKE / "tables/exact_loglik_over_seeds.csv")
    assert list(spread.base_model) == MODELS_2D and (spread.seeds == 2).all()
    # The posterior's area, for the objectives stage: positive wherever it was computed.
    assert (per_image.posterior_area > 0).all()
    panels = read_npz_list(smoke_artifacts / SMOKE / "figures/exact_loglik.npz")
    assert [str(p["model"]) for p in panels] == [m for m in MODELS_2D for _ in range(2)]
    # The images of this stage (and of the evaluation), binarised for the training device,
    # are the CPU's pixels of the same test images, as every other stage's.
    images = cpu_test_images(smoke_artifacts)
    for panel in panels:
        assert np.array_equal(panel["image"], images[int(panel["index"])].reshape(28, 28))
    for suffix in ("png", "pdf"):
        assert (smoke_artifacts / SMOKE / f"figures/exact_loglik.{suffix}").stat().st_size > 10_000


def test_smoke_run_gradient_snr(smoke_artifacts):
    """The SNR stage at burda1-iwae-k5's weights: every k, estimator and network; the
    estimators differ in the encoder's gradient only, and at k = 1 DReG is STL."""
    tables = smoke_artifacts / SMOKE / "tables"
    table = pd.read_csv(tables / "gradient_snr.csv")
    assert set(table.model) == {"burda1-iwae-k5"} and len(table) == 2 * 3 * 2
    assert set(table.k) == {1, 10} and set(table.estimator) == {"reparam", "stl", "dreg"}
    assert (table.repeats == 10).all() and (table.images == 1).all()
    snr = table.set_index(["network", "estimator", "k"]).mean_snr
    for k in (1, 10):
        assert snr["decoder", "stl", k] == pytest.approx(snr["decoder", "reparam", k], rel=1e-5)
        assert snr["decoder", "dreg", k] == pytest.approx(snr["decoder", "reparam", k], rel=1e-5)
    assert snr["encoder", "dreg", 1] == pytest.approx(snr["encoder", "stl", 1], rel=1e-5)
    assert len(pd.read_csv(tables / "gradient_snr_slopes.csv")) == 6
    assert "| burda1-iwae-k5 | encoder | dreg |" in (tables / "gradient_snr.md").read_text()
    for suffix in ("png", "pdf"):
        assert (smoke_artifacts / SMOKE / f"figures/gradient_snr.{suffix}").stat().st_size > 10_000


def test_smoke_run_objectives_through_qiw(smoke_artifacts):
    """Every 2D model from both seeds: log p(x) and the posterior's area the exact_loglik
    stage's, KL(q || p(z|x)) not negative, and the reconstruction gain the reconstruct
    stage's."""
    tables = smoke_artifacts / SMOKE / "tables"
    table = pd.read_csv(tables / "through_qiw.csv")
    assert list(table.base_model) == MODELS_2D and (table.seeds == 2).all()
    per_image = pd.read_csv(tables / "through_qiw_per_image.csv")
    exact = pd.read_csv(tables / "exact_loglik_per_image.csv")
    for name in REPLICATES_2D:
        mine, quadrature = per_image[per_image.model == name], exact[exact.model == name]
        assert len(mine) == 20
        assert list(mine.log_evidence) == list(quadrature.log_evidence)
        assert list(mine.posterior_area) == list(quadrature.posterior_area)
    assert (per_image.kl_q_posterior > -1e-3).all()
    assert set(per_image.iwae_k) == {1, 5}
    metric = pd.read_csv(tables / "reconstruction_metric.csv")
    gain = metric[metric.source == "q_IW - q"].groupby("base_model").log_p_x_given_z.mean()
    for row in table.itertuples():
        assert row.qiw_reconstruction_gain == pytest.approx(gain[row.base_model])
    assert "| KL(q ‖ posterior): mean |" in (tables / "through_qiw.md").read_text()
    assert (tables / "through_qiw.html").read_text().count("<tr>") == 1 + len(MODELS_2D)
    for suffix in ("png", "pdf"):
        assert (smoke_artifacts / SMOKE / f"figures/through_qiw.{suffix}").stat().st_size > 10_000


def test_manifest_records_the_run_and_hashes_every_artifact(smoke_artifacts):
    from riwae.data import ARRAY_SHA256, sha256_file

    manifest = json.loads((smoke_artifacts / SMOKE / "manifest.json").read_text())
    assert {
        "run",
        "git",
        "config",
        "config_sha256",
        "versions",
        "training_devices",
        "data",
        "stage_seconds",
        "artifacts",
    } <= set(manifest)
    assert manifest["run"] == "smoke" and manifest["config"]["run"] == "smoke"
    assert {"commit", "dirty"} <= set(manifest["git"])
    assert {"python", "torch", "cuda", "torchvision", "snakemake"} <= set(manifest["versions"])
    config = manifest["config"]
    devices = {name: device.split(":")[0] for name, device in manifest["training_devices"].items()}
    assert devices == {name: config["device"] for name in REPLICATES}
    assert manifest["data"]["arrays_sha256"] == ARRAY_SHA256
    assert manifest["data"]["sha256"] == sha256_file(smoke_artifacts / "resources/mnist.npz")
    # One training job per group: per model on the CPU, per architecture on CUDA.
    groups = training_groups(model_specs(config), config["training_groups"], config["device"])
    assert len(groups) == (len(REPLICATES) if config["device"] == "cpu" else 3)
    jobs = {"identity", "marginal", *(f"train/{group}" for group in groups)}
    assert jobs <= set(manifest["stage_seconds"])
    for path, digest in manifest["artifacts"].items():
        assert path.startswith(f"{SMOKE}/") and sha256_file(smoke_artifacts / path) == digest, path
    # Every file the run made is in it, as an artifact or a file of wall times, each with its
    # recorded SHA-256 beside it (Snakemake's benchmarks apart); not the logs, nor the run's
    # own records.
    run = smoke_artifacts / SMOKE
    made = {
        str(path.relative_to(smoke_artifacts))
        for path in run.rglob("*")
        if path.is_file() and path.suffix != ".sha256" and not {"logs", "locks"} & set(path.parts)
    }
    records = {f"{SMOKE}/{name}" for name in ("manifest.json", "notebook.html", "report.html")}
    assert set(manifest["artifacts"]) | set(manifest["timing_files"]) == made - records
    for path in made - records:
        if "benchmarks" not in path:
            assert (smoke_artifacts / f"{path}.sha256").is_file(), path


def planned_jobs(workdir, *args) -> dict[str, list[tuple[list[str], list[str]]]]:
    """The jobs of a dry run, by rule: each job's input and output files."""
    result = snakemake(workdir, "--dry-run", *args)
    jobs: dict[str, list[tuple[list[str], list[str]]]] = {}
    for block in result.stdout.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0].strip()
        fields = {}
        for line in block.splitlines()[1:]:
            key, _, value = line.strip().partition(": ")
            if key in ("input", "output"):
                fields[key] = [path.strip() for path in value.split(",")]
        jobs.setdefault(rule, []).append((fields.get("input", []), fields.get("output", [])))
    return jobs


def test_every_rule_output_reaches_the_manifest_and_the_report(tmp_path):
    """The artifact list is derived from the rules: a new rule file, included and nothing
    else, has its outputs (for every model) hashed by the manifest and shown to the report."""
    workdir = copy_workflow(tmp_path)
    (workdir / "workflow/rules/new_stage.smk").write_text(
        'rule new_stage:\n    output:\n        f"{RUN}/new/{{model}}.txt",\n'
        "    run:\n        pass\n"
    )
    with open(workdir / "Snakefile", "a") as snakefile:
        snakefile.write('include: "workflow/rules/new_stage.smk"\n')
    jobs = planned_jobs(workdir, "--configfile=config/smoke.yaml")
    assert len(jobs["new_stage"]) == len(REPLICATES)
    records = {"manifest", "notebook", "html_report", "all"}
    outputs = {
        path
        for rule, rule_jobs in jobs.items()
        if rule not in records
        for _, paths in rule_jobs
        for path in paths
        if path.startswith(f"{SMOKE}/")
    }
    assert {f"{SMOKE}/new/{name}.txt" for name in REPLICATES} <= outputs
    (manifest_inputs, _), (report_inputs, _) = jobs["manifest"][0], jobs["html_report"][0]
    assert outputs - set(manifest_inputs) == set()
    assert outputs - set(report_inputs) == set()
    # A wildcard whose values the workflow does not know is one sentence, not a silent gap.
    (workdir / "workflow/rules/new_stage.smk").write_text(
        'rule new_stage:\n    output:\n        f"{RUN}/new/{{digit}}.txt",\n'
        "    run:\n        pass\n"
    )
    result = snakemake(workdir, "--configfile=config/smoke.yaml", "--dry-run", check=False)
    assert result.returncode != 0
    message = "Rule new_stage has the wildcard digit, whose values are not in WILDCARDS"
    assert message in result.stdout + result.stderr


def test_report_and_executed_notebook(smoke_run):
    report = (smoke_run / SMOKE / "report.html").read_text()
    assert "Reinterpreting Importance-Weighted Autoencoders: a replication" in report
    for category in ("C1 q_IW approaches", "C2 Reconstructions", "C3 The identity", "C4 IWAE"):
        assert category in report
    # Every table is in the report as an HTML page, which the report shows inline.
    for table in (
        "checks/identity.html",
        "checks/marginal.html",
        "tables/evaluation.html",
        "tables/burda_comparison.html",
        "tables/qiw_distance_synthetic.html",
        "tables/reconstruction_metric.html",
    ):
        assert f'"{SMOKE}/{table}"' in report, table
    assert "posterior_synthetic.png" in report and '"mime_type": "text/html"' in report
    identity = (smoke_run / SMOKE / "checks/identity.html").read_text()
    # Each case (every seed's model), the cases over seeds, then the original code.
    assert identity.count("<table>") == 1 + len(REPLICATES) + 1 + 1
    assert identity.count(">yes</td>") == 4 * (1 + len(REPLICATES))
    notebook = (smoke_run / SMOKE / "notebook.html").read_text()
    assert "Figure 1 again" in notebook and "burda_comparison" in notebook
    # nbconvert --execute stops at a cell that raises, so a written notebook ran clean.
    assert "run folder:" in notebook and "config sha256:" in notebook
    assert notebook.count("<img") > 5


def test_a_run_of_some_targets_keeps_the_whole_runs_report(smoke_run, tmp_path):
    workdir = tmp_path / "partial"
    shutil.copytree(smoke_run, workdir)
    # Another resolution changes every figure's bytes (identical reruns change nothing).
    (workdir / "style.yaml").write_text("run: smoke\nplot: {dpi: 80}\n")
    configs = "--configfile", "config/smoke.yaml", "style.yaml"
    report = workdir / SMOKE / "report.html"
    before = report.read_bytes()
    partial = snakemake(workdir, f"{SMOKE}/figures/appendix_1d.png", *configs)
    assert "rule appendix_figure:" in partial.stdout + partial.stderr
    assert "html_report" not in partial.stdout + partial.stderr
    assert report.read_bytes() == before
    # The next complete run redraws the other figures and rebuilds the report from them all.
    complete = snakemake(workdir, *configs)
    assert "rule html_report:" in complete.stdout + complete.stderr
    assert report.stat().st_mtime > (workdir / SMOKE / "figures/appendix_1d.png").stat().st_mtime


def test_a_report_that_cannot_be_made_fails_the_run(smoke_run, tmp_path):
    workdir = tmp_path / "broken-caption"
    shutil.copytree(smoke_run, workdir)
    (workdir / "workflow/report/appendix.rst").write_text("{{ no_such_variable.field }}\n")
    result = snakemake(workdir, "--configfile=config/smoke.yaml", check=False)
    assert result.returncode != 0
    assert f"Could not write the report {SMOKE}/report.html" in result.stderr
    assert "appendix.rst" in result.stderr
    assert not (workdir / SMOKE / "report.html").exists()  # no report rather than a wrong one


def test_another_run_name_never_touches_the_first_run(smoke_run):
    from riwae.data import sha256_file

    first = {p: sha256_file(p) for p in (smoke_run / SMOKE).rglob("*") if p.is_file()}
    planned = snakemake(
        smoke_run, "--configfile=config/smoke.yaml", "--config", "run=second", "--dry-run"
    )
    outputs = [
        line.split(":", 1)[1]
        for line in planned.stdout.splitlines()
        if line.strip().startswith("output:")
    ]
    paths = [p.strip() for line in outputs for p in line.split(",")]
    assert len(paths) > 40 and all(p.startswith("results/second/") for p in paths), paths
    snakemake(
        smoke_run,
        "results/second/figures/appendix_1d.png",  # targets first: --config takes many values
        "--configfile=config/smoke.yaml",
        "--config",
        "run=second",
    )
    assert (smoke_run / "results/second/figures/appendix_1d.png").exists()
    assert first == {p: sha256_file(p) for p in (smoke_run / SMOKE).rglob("*") if p.is_file()}


def test_run_name_defaults_to_the_config_file_name(smoke_run, tmp_path):
    config = load_config("config/smoke.yaml", root=smoke_run)
    del config["run"]
    (smoke_run / "mytry.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    planned = snakemake(smoke_run, "--configfile=mytry.yaml", "--dry-run")
    outputs = [line for line in planned.stdout.splitlines() if line.strip().startswith("output:")]
    assert len(outputs) > 20 and all("results/mytry/" in line for line in outputs), outputs


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
