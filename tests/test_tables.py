"""The tables that combine trained models: means over training seeds and their spread."""

import numpy as np
import pandas as pd
import pytest

from riwae.tables import burda_comparison, burda_markdown, reconstruction_over_seeds


def evaluation_rows(model: str, objective: str, k: int, estimator: str, lls: list[float]):
    return [
        {
            "model": model if seed == 0 else f"{model}-seed{seed}",
            "base_model": model,
            "arch": "burda1",
            "objective": objective,
            "k": k,
            "estimator": estimator,
            "seed": seed,
            "log_likelihood": ll,
            "log_likelihood_se": 0.1 * (seed + 1),
            "ll_gain_vs_k1": ll + 90.0,
            "ll_gain_vs_k1_se": 0.01,
            "epochs_run": 3,
            "active_units_per_layer": str(20 + seed),
            "test_images": 500,
            "ll_k": 5000,
        }
        for seed, ll in enumerate(lls)
    ]


def test_burda_table_is_the_mean_over_seeds_of_the_plain_gradient_models():
    evaluation = pd.DataFrame(
        evaluation_rows("burda1-vae-k1", "vae", 1, "reparam", [-90.0, -91.0, -92.0])
        + evaluation_rows("burda1-iwae-k50", "iwae", 50, "reparam", [-88.0, -88.5, -89.0])
        # The same model with DReG: not Burda et al.'s gradient, so not in their table.
        + evaluation_rows("burda1-iwae-k50-dreg", "iwae", 50, "dreg", [-80.0, -80.0, -80.0])
    )
    table = burda_comparison(evaluation).set_index(["layers", "objective", "k"])
    iwae50 = table.loc[(1, "iwae", 50)]
    assert iwae50.nll == pytest.approx(88.5) and iwae50.nll_seed_sd == pytest.approx(0.5)
    assert iwae50.seeds == 3 and iwae50.nll_se == pytest.approx(0.2)
    assert iwae50.gain_vs_k1 == pytest.approx(1.5) and iwae50.active_units == "20 / 21 / 22"
    # The k = 1 model stands for both objectives' k = 1 rows.
    assert table.loc[(1, "vae", 1)].nll == table.loc[(1, "iwae", 1)].nll == pytest.approx(91.0)
    assert np.isnan(table.loc[(1, "vae", 5)].nll)  # not trained
    markdown = burda_markdown(table.reset_index())
    assert "| 88.50 ± 0.20 | 0.50 (3) |" in markdown and "mean over 3 training seeds" in markdown


def test_one_seed_has_no_spread_column():
    evaluation = pd.DataFrame(evaluation_rows("burda1-vae-k1", "vae", 1, "reparam", [-90.0]))
    table = burda_comparison(evaluation)
    assert table.nll_seed_sd.isna().all() and table.nll.notna().sum() == 2  # VAE and IWAE k = 1
    markdown = burda_markdown(table)
    assert "sd over seeds" not in markdown and "| 90.00 ± 0.10 |" in markdown
    header, rule = markdown.splitlines()[:2]
    assert header.count("|") == rule.count("|")


def test_reconstruction_metric_over_seeds():
    metric = pd.DataFrame(
        [
            {
                "model": name,
                "base_model": "cremer2d-iwae-k50",
                "seed": seed,
                "k": 50,
                "test_images": 10_000,
                "source": source,
                "log_p_x_given_z": value + seed,
                "log_p_x_given_z_se": 0.5,
                "pixel_error": 0.1,
                "pixel_error_se": 0.01,
            }
            for seed, name in enumerate(["cremer2d-iwae-k50", "cremer2d-iwae-k50-seed1"])
            for source, value in (("q", -150.0), ("q_IW", -100.0))
        ]
    )
    summary = reconstruction_over_seeds(metric).set_index("source")
    assert list(summary.index) == ["q", "q_IW"] and (summary.seeds == 2).all()
    assert summary.log_p_x_given_z["q_IW"] == pytest.approx(-99.5)
    assert summary.log_p_x_given_z_seed_sd["q"] == pytest.approx(np.sqrt(0.5))
    assert summary.pixel_error_seed_sd["q"] == 0.0
