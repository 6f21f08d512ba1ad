"""Tables that combine the evaluations of every trained model."""

import json

import numpy as np
import pandas as pd

from riwae.evaluate import BURDA_TABLE1

BURDA_EPOCHS = 3280


def evaluation_table(eval_paths, history_paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per model (its settings, epochs run and test numbers), and every model's
    history in long form. (Wall times are in ``training_times``, apart from the results, so
    that identical runs give identical result files.)"""
    rows, histories, per_image = [], [], {}
    for eval_path, history_path in zip(eval_paths, history_paths, strict=True):
        result = json.loads(open(eval_path).read())
        result.pop("posterior_mean_variances")
        for key in ("active_units_per_layer", "latent_dims"):  # "43+7": one cell per model
            result[key] = "+".join(str(n) for n in result[key])
        per_image[result["model"]] = np.array(result.pop("log_likelihood_per_image"))
        history = pd.read_csv(history_path)
        result["epochs_run"] = len(history)
        rows.append(result)
        histories.append(history.assign(model=result["model"]))
    table = pd.DataFrame(rows)
    # Each model against the k = 1 model of its architecture on the same test images: the
    # paired difference has a much smaller standard error than either mean.
    for row in table.itertuples():
        base = table[(table.arch == row.arch) & (table.k == 1)].model
        if len(base) and len(per_image[base.iloc[0]]) == len(per_image[row.model]):
            diff = per_image[row.model] - per_image[base.iloc[0]]
            table.loc[row.Index, "ll_gain_vs_k1"] = diff.mean()
            table.loc[row.Index, "ll_gain_vs_k1_se"] = diff.std(ddof=1) / np.sqrt(len(diff))
    return table, pd.concat(histories, ignore_index=True)


def training_times(models, timing_paths) -> pd.DataFrame:
    """Wall time of each model's training: its group's seconds, shared by the group's models."""
    rows = []
    for model, path in zip(models, timing_paths, strict=True):
        timing = pd.read_csv(path)
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


def burda_comparison(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Our burda1 and burda2 models beside Burda et al.'s Table 1 (one and two stochastic
    layers): test NLL, one row per row of theirs, empty where we trained no such model.

    The k = 1 model stands for both objectives, as VAE and IWAE coincide at k = 1.
    """
    rows = []
    for reference in BURDA_TABLE1:
        ours = evaluation[evaluation.arch == f"burda{reference['layers']}"]
        match = ours[
            (ours.k == reference["k"])
            & ((ours.objective == reference["objective"]) | (ours.k == 1))
        ]
        row = {
            "layers": reference["layers"],
            "objective": reference["objective"],
            "k": reference["k"],
            "burda_nll": reference["nll"],
            "burda_epochs": BURDA_EPOCHS,
        }
        if len(match):
            best = match.iloc[0]
            row.update(
                nll=-best.log_likelihood,
                nll_se=best.log_likelihood_se,
                gain_vs_k1=best.get("ll_gain_vs_k1"),
                gain_vs_k1_se=best.get("ll_gain_vs_k1_se"),
                epochs_run=int(best.epochs_run),
                active_units=str(best.active_units_per_layer),
                test_images=int(best.test_images),
                ll_k=int(best.ll_k),
            )
        rows.append(row)
    return pd.DataFrame(rows)


def burda_markdown(table: pd.DataFrame) -> str:
    lines = [
        "| layers | objective | k | test NLL (ours) | gain over k=1 (ours) | epochs (ours) "
        "| active units (ours) | test NLL (Burda et al.) | epochs (Burda et al.) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        if "nll" in table and pd.notna(r.nll):
            gain = (
                f"{r.gain_vs_k1:.2f} ± {r.gain_vs_k1_se:.2f}"
                if "gain_vs_k1" in table and pd.notna(r.gain_vs_k1)
                else ""
            )
            ours = f"{r.nll:.2f} ± {r.nll_se:.2f} | {gain} | {r.epochs_run:.0f} | {r.active_units}"
        else:
            ours = "not trained | | |"
        lines.append(
            f"| {r.layers} | {r.objective.upper()} | {r.k} | {ours} | {r.burda_nll:.2f} "
            f"| {r.burda_epochs} |"
        )
    if "test_images" in table and table.test_images.notna().any():
        n, k = int(table.test_images.max()), int(table.ll_k.max())
        lines += [
            "",
            f"Ours: log-likelihood estimated with k = {k} on the first {n} test images (fixed "
            f"binarisation); ± is one standard error over images. The gain over k=1 is the "
            f"paired difference in log-likelihood to the k=1 model of the same architecture on "
            f"the same images, with its standard error. Active units per stochastic layer "
            f"(first + second). Burda et al.: k = 5000 on all 10,000 test images.",
        ]
    return "\n".join(lines) + "\n"
