"""Tables that combine the evaluations of every trained model."""

import numpy as np
import pandas as pd
import torch

from riwae.grid import grid_of_axes
from riwae.html_tables import frame_page, markdown_page
from riwae.models import architecture

# Burda et al. (2016), Table 1: MNIST test NLL (their k = 5000 estimate) of their models of
# one and two stochastic layers, trained for 3280 epochs, at k = 1, 5 and 50.
BURDA_EPOCHS = 3280
BURDA_KS = (1, 5, 50)
BURDA_NLL = {
    (1, "vae"): (86.76, 86.47, 86.35),
    (1, "iwae"): (86.76, 85.54, 84.78),
    (2, "vae"): (85.33, 85.01, 84.78),
    (2, "iwae"): (85.33, 83.89, 82.90),
}
BURDA_TABLE1 = [
    {"layers": layers, "objective": objective, "k": k, "nll": nll}
    for (layers, objective), nlls in BURDA_NLL.items()
    for k, nll in zip(BURDA_KS, nlls, strict=True)
]


def evaluation_table(records, histories, specs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per trained model, every seed's apart (its settings, ``base_model``: its name
    without the seed suffix, epochs run and test numbers), and every model's history in long
    form; from each model's evaluation record (``eval.json``), history and spec
    (``riwae.spec.ModelSpec``). (Wall times are in ``training_times``, apart from the
    results, so that identical runs give identical result files.)"""
    rows, long_histories, per_image = [], [], {}
    for record, history, spec in zip(records, histories, specs, strict=True):
        result = dict(record)
        result.pop("posterior_mean_variances")
        for key in ("active_units_per_layer", "latent_dims"):  # "43+7": one cell per model
            result[key] = "+".join(str(n) for n in result[key])
        per_image[result["model"]] = np.array(result.pop("log_likelihood_per_image"))
        result["base_model"] = spec.base_name
        result["epochs_run"] = len(history)
        rows.append(result)
        long_histories.append(history.assign(model=result["model"]))
    table = pd.DataFrame(rows)
    # Each model against the k = 1 model of its architecture and seed on the same test images:
    # the paired difference has a much smaller standard error than either mean.
    for row in table.itertuples():
        base = table[(table.arch == row.arch) & (table.k == 1) & (table.seed == row.seed)].model
        if len(base) and len(per_image[base.iloc[0]]) == len(per_image[row.model]):
            diff = per_image[row.model] - per_image[base.iloc[0]]
            table.loc[row.Index, "ll_gain_vs_k1"] = diff.mean()
            table.loc[row.Index, "ll_gain_vs_k1_se"] = diff.std(ddof=1) / np.sqrt(len(diff))
    return table, pd.concat(long_histories, ignore_index=True)


def training_times(models, timings) -> pd.DataFrame:
    """Wall time of each model's training: its group's seconds (``timings``, each model's
    ``timing.csv``), shared by the group's models."""
    rows = []
    for model, timing in zip(models, timings, strict=True):
        rows.append(
            {
                "model": model,
                "models_in_group": int(timing.models_in_group.iloc[0]) if len(timing) else 1,
                "epochs": len(timing),
                "train_seconds": float(timing.seconds.sum()),
                "seconds_per_epoch": float(timing.seconds.mean()) if len(timing) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def over_seeds(values: pd.Series) -> tuple[float, float]:
    """Mean over seeds and their standard deviation (NaN for one seed)."""
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else np.nan


def frame_over_seeds(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows of models trained from several seeds, grouped by ``keys`` (e.g. ``base_model``,
    and ``k``): each numeric column as its mean over the seeds and the seeds' standard
    deviation (``<column>_seed_sd``, NaN for one seed), with the number of seeds."""
    numeric = [
        column
        for column in rows.drop(columns=keys).select_dtypes("number").columns
        if column != "seed"
    ]
    grouped = rows.groupby(keys, sort=False)[numeric]
    means, spreads = grouped.mean(), grouped.std(ddof=1).add_suffix("_seed_sd")
    table = pd.concat([means, spreads], axis=1).reset_index()
    table.insert(len(keys), "seeds", grouped.size().to_numpy())
    return table


def reconstruction_over_seeds(metric: pd.DataFrame) -> pd.DataFrame:
    """The reconstruction metric of each model (``base_model``) and source, as the mean over
    its training seeds, with the seeds' standard deviation (``*_seed_sd``, NaN for one seed)
    and the mean over seeds of the standard error over test images."""
    rows = []
    for (model, source), runs in metric.groupby(["base_model", "source"], sort=False):
        row = {"model": model, "source": source, "seeds": len(runs)}
        for column in ("log_p_x_given_z", "pixel_error"):
            row[column], row[f"{column}_seed_sd"] = over_seeds(runs[column])
            row[f"{column}_se"] = float(runs[f"{column}_se"].mean())
        rows.append({**row, "k": runs.k.iloc[0], "test_images": runs.test_images.iloc[0]})
    return pd.DataFrame(rows)


def burda_comparison(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Our burda1 and burda2 models (plain gradient) beside Burda et al.'s Table 1 (one and
    two stochastic layers): test NLL, one row per row of theirs, empty where we trained no
    such model. With several training seeds, each number is the mean over seeds, beside the
    seeds' standard deviation (``*_seed_sd``); ``nll_se`` is the mean over seeds of the
    standard error over test images.

    The k = 1 model stands for both objectives, as VAE and IWAE coincide at k = 1.
    """
    plain = evaluation[evaluation.estimator == "reparam"]
    # Stochastic layers of Burda et al.'s architectures; 0 for the others.
    layers = plain.arch.map(lambda a: architecture(a).layers * architecture(a).burda_table1)
    rows = []
    for reference in BURDA_TABLE1:
        ours = plain[layers == reference["layers"]]
        match = ours[
            (ours.k == reference["k"])
            & ((ours.objective == reference["objective"]) | (ours.k == 1))
        ].sort_values("seed")
        row = {
            "layers": reference["layers"],
            "objective": reference["objective"],
            "k": reference["k"],
            "burda_nll": reference["nll"],
            "burda_epochs": BURDA_EPOCHS,
        }
        if len(match):
            row["nll"], row["nll_seed_sd"] = over_seeds(-match.log_likelihood)
            if "ll_gain_vs_k1" in match:
                row["gain_vs_k1"], row["gain_vs_k1_seed_sd"] = over_seeds(match.ll_gain_vs_k1)
                row["gain_vs_k1_se"] = float(match.ll_gain_vs_k1_se.mean())
            row.update(
                nll_se=float(match.log_likelihood_se.mean()),
                seeds=len(match),
                epochs_run=int(match.epochs_run.min()),
                active_units=" / ".join(match.active_units_per_layer.astype(str)),
                test_images=int(match.test_images.iloc[0]),
                ll_k=int(match.ll_k.iloc[0]),
            )
        rows.append(row)
    return pd.DataFrame(rows)


def burda_markdown(table: pd.DataFrame) -> str:
    seeds = int(table.seeds.max()) if "seeds" in table and table.seeds.notna().any() else 1
    spread_column = " | sd over seeds" if seeds > 1 else ""
    lines = [
        f"| layers | objective | k | test NLL (ours){spread_column} | gain over k=1 (ours) "
        "| epochs (ours) | active units (ours) | test NLL (Burda et al.) "
        "| epochs (Burda et al.) |",
        "|---:|---|---:|---:|" + ("---:|" if seeds > 1 else "") + "---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        if "nll" in table and pd.notna(r.nll):
            gain = (
                f"{r.gain_vs_k1:.2f} ± {r.gain_vs_k1_se:.2f}"
                if "gain_vs_k1" in table and pd.notna(r.gain_vs_k1)
                else ""
            )
            sd = ""
            if seeds > 1:
                sd = f" | {r.nll_seed_sd:.2f} ({r.seeds:.0f})" if r.seeds > 1 else " | "
            ours = (
                f"{r.nll:.2f} ± {r.nll_se:.2f}{sd} | {gain} | {r.epochs_run:.0f} | {r.active_units}"
            )
        else:
            ours = "not trained" + " |" * (seeds > 1) + " | | |"
        lines.append(
            f"| {r.layers} | {r.objective.upper()} | {r.k} | {ours} | {r.burda_nll:.2f} "
            f"| {r.burda_epochs} |"
        )
    if "test_images" in table and table.test_images.notna().any():
        n, k = int(table.test_images.max()), int(table.ll_k.max())
        over = (
            f"Each number is the mean over {seeds} training seeds; 'sd over seeds' is their "
            f"standard deviation (with the number of seeds), the spread from training alone, "
            f"as every seed is evaluated on the same images. Active units are listed per seed. "
            if seeds > 1
            else ""
        )
        lines += [
            "",
            f"Ours: log-likelihood estimated with k = {k} on the first {n} test images (fixed "
            f"binarisation); ± is one standard error over images. The gain over k=1 is the "
            f"paired difference in log-likelihood to the k=1 model of the same architecture "
            f"and seed on the same images, with its standard error. Active units per "
            f"stochastic layer (first + second). {over}Burda et al.: k = 5000 on all 10,000 "
            f"test images, one run.",
        ]
    return "\n".join(lines) + "\n"


def one_sigma_area_of_figure(arrays: dict, key: str) -> float:
    """``Grid2D.one_sigma_area`` of a saved figure's density ``arrays[key]`` on its axes."""
    grid = grid_of_axes(torch.from_numpy(arrays["x_axis"]), torch.from_numpy(arrays["y_axis"]))
    return grid.one_sigma_area(torch.from_numpy(arrays[key]).reshape(-1).double())


def estimator_table(evaluation: pd.DataFrame, reconstruction, posteriors) -> pd.DataFrame:
    """Models that differ only in their gradient estimator, side by side, on what the paper is
    about: the gap L_IWAE[q] - L_VAE[q] (how much the bound gains over q's own ELBO), and for 2D
    models how wide q is against the true posterior (the ratio of their one-sigma areas, the
    geometric mean over the digits of ``posteriors``: model -> unflattened digit arrays) and
    how much decoding q_IW draws instead of q draws raises log p(x|z) (``reconstruction``,
    the reconstruction metric's table; None in a run without 2D models). Each model as
    trained from the first seed."""
    table = evaluation[evaluation.model == evaluation.base_model]  # the first seed's models
    keys = ["arch", "objective", "k"]
    compared = table.groupby(keys).estimator.transform("nunique") > 1
    rows = []
    for r in table[compared].sort_values([*keys, "estimator"]).itertuples():
        row = {
            "model": r.model,
            "arch": r.arch,
            "objective": r.objective,
            "k": r.k,
            "estimator": r.estimator,
            "log_likelihood": r.log_likelihood,
            "log_likelihood_se": r.log_likelihood_se,
            "iwae_bound": getattr(r, f"iwae_k{r.k}", np.nan),
            "vae_bound": r.vae_bound,
        }
        row["iwae_minus_vae"] = row["iwae_bound"] - r.vae_bound
        if r.model in posteriors:
            ratios = [
                one_sigma_area_of_figure(d, "log_qiw_k1")
                / one_sigma_area_of_figure(d, "log_posterior")
                for d in posteriors[r.model]
            ]
            row["q_area_over_posterior"] = float(np.exp(np.mean(np.log(ratios))))
        metric = (
            reconstruction[reconstruction.model == r.model].set_index("source")
            if reconstruction is not None
            else ()
        )
        if len(metric):
            row["qiw_reconstruction_gain"] = (
                metric.log_p_x_given_z["q_IW"] - metric.log_p_x_given_z["q"]
            )
        rows.append(row)
    return pd.DataFrame(rows)


def estimator_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "No two models differ only in their gradient estimator in this run.\n"
    columns = {
        "model": "model",
        "estimator": "estimator",
        "log_likelihood": "test log-likelihood",
        "iwae_bound": "L_IWAE[q] at training k",
        "vae_bound": "L_VAE[q]",
        "iwae_minus_vae": "L_IWAE - L_VAE[q]",
        "q_area_over_posterior": "q's area / posterior's",
        "qiw_reconstruction_gain": "reconstruction gain, q_IW over q",
    }
    shown = {key: name for key, name in columns.items() if key in table}
    lines = ["| " + " | ".join(shown.values()) + " |", "|---|---|" + "---:|" * (len(shown) - 2)]
    for _, r in table.iterrows():
        cells = [f"{r[key]:.2f}" if isinstance(r[key], float) else str(r[key]) for key in shown]
        lines.append("| " + " | ".join(cells).replace("nan", "") + " |")
    return "\n".join(lines) + "\n"


def evaluation_tables(records, histories, timings, specs) -> dict:
    """Every table of the evaluation stage, by output: every model on the test set (CSV and
    HTML), Burda et al.'s Table 1 beside ours (CSV, markdown, HTML), the histories in long
    form and the training times; from each model's evaluation record, history, timing and
    spec."""
    table, long_histories = evaluation_table(records, histories, specs)
    comparison = burda_comparison(table)
    markdown = burda_markdown(comparison)
    title = "Our burda1 and burda2 models beside Burda et al.'s Table 1 (test NLL)"
    return {
        "evaluation": table,
        "evaluation_html": frame_page(table, "Every model on the test set"),
        "burda": comparison,
        "burda_markdown": markdown,
        "burda_html": markdown_page(markdown, title),
        "history": long_histories,
        "training_times": training_times([spec.name for spec in specs], timings),
    }
