"""Figures. Each function draws from saved arrays, so a figure can be redrawn without
recomputing what it shows; a model's colour and marker come from its spec's fields (the
columns the tables carry), never from its name."""

import io
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from matplotlib.ticker import (
    FuncFormatter,  # noqa: E402
    MaxNLocator,  # noqa: E402
)

from riwae.io import write_artifact  # noqa: E402


def save_figure(fig, paths, dpi: int) -> None:
    """Save one figure to each path as an artifact (``riwae.io.write_artifact``; the format
    from the suffix; ``dpi`` sets the resolution of PNGs), then close it. A PDF gets no
    creation date, so the same figure gives the same bytes (PNGs have none)."""
    for path in paths:
        suffix = Path(path).suffix
        buffer = io.BytesIO()
        metadata = {"CreationDate": None} if suffix == ".pdf" else None
        fig.savefig(buffer, format=suffix[1:], bbox_inches="tight", dpi=dpi, metadata=metadata)
        write_artifact(path, buffer.getvalue())
    plt.close(fig)


# How a model looks in every figure: colour by objective, estimator and k, marker by
# architecture; objectives and architectures not listed get the last colour map and marker.
K1_COLOUR = "0.3"  # at k = 1 VAE and IWAE coincide: one grey
OBJECTIVE_COLOURS = {
    "vae": "Blues",
    "iwae": "Reds",
    "miwae": "Oranges",
    "ciwae": "YlOrBr",
    "piwae": "RdPu",
}
OTHER_COLOURS = "Greys"
ESTIMATOR_COLOURS = {"stl": "Greens", "dreg": "Purples"}  # other than the plain gradient
ARCH_MARKERS = {"burda1": "o", "burda2": "^", "cremer2d": "s"}
OTHER_MARKER = "D"


def model_colour(objective: str, k: int, estimator: str):
    """The colour of a model in every figure: VAEs blue, IWAEs red, darker for larger k (the
    same shade for the same k, k = 100 and above darkest); k = 1 grey; models trained with
    STL green, with DReG purple."""
    if k == 1 and estimator == "reparam":
        return K1_COLOUR
    shade = 0.45 + 0.45 * min(np.log(k) / np.log(100), 1.0)
    colours = ESTIMATOR_COLOURS.get(estimator, OBJECTIVE_COLOURS.get(objective, OTHER_COLOURS))
    return plt.get_cmap(colours)(shade)


@dataclass(frozen=True)
class Look:
    """How one model looks in every figure, and what orders it in a legend."""

    arch: str
    k: int
    colour: object
    marker: str


def model_looks(models) -> dict[str, Look]:
    """Each model's look by name, from a table with a row per model and its spec's columns
    (``model``, ``arch``, ``objective``, ``k``, ``estimator``): the evaluation table, or
    ``riwae.spec.spec_table``."""
    return {
        r.model: Look(
            r.arch,
            int(r.k),
            model_colour(r.objective, int(r.k), r.estimator),
            ARCH_MARKERS.get(r.arch, OTHER_MARKER),
        )
        for r in models.itertuples()
    }


def model_order(models, looks: dict[str, Look]) -> list[str]:
    """Models in the order of their legends: by architecture, k, then name."""
    return sorted(set(models), key=lambda m: (looks[m].arch, looks[m].k, m))


def k_ticks(ax, ks) -> None:
    """A log-scale k axis labelled with the k values themselves."""
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(int(k) for k in ks)))
    ax.set_xticklabels([str(k) for k in sorted(set(int(k) for k in ks))])
    ax.minorticks_off()


def posterior_panels(arrays: dict[str, np.ndarray], ks: list[int], style: dict):
    """The paper's Figure 1: the true posterior, then q_IW for each k (k = 1 is q itself).

    Each panel is a filled contour plot of the density on its own colour scale, as in the
    original, with shared axes so that the shapes can be compared.
    """
    sns.set_theme(style="white", context=style.get("context", "paper"))
    x_axis, y_axis = arrays["x_axis"], arrays["y_axis"]
    panels = [("true posterior p(z|x)", arrays["log_posterior"])]
    panels += [
        (f"$q_{{IW}}$, k = {k}" + (" (= q)" if k == 1 else ""), arrays[f"log_qiw_k{k}"]) for k in ks
    ]
    width = style.get("panel_size", 2.6)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(width * len(panels), width + 0.4), sharex=True, sharey=True
    )
    for ax, (title, log_density) in zip(axes, panels, strict=True):
        ax.contourf(
            x_axis,
            y_axis,
            np.exp(log_density),
            levels=style.get("levels", 8),
            cmap=style.get("cmap", "Blues"),
        )
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xlabel("$z_1$")
        ax.locator_params(
            nbins=6, integer=True
        )  # few ticks, so labels of neighbouring panels never touch
    axes[0].set_ylabel("$z_2$")
    fig.tight_layout()
    return fig


def learning_curves(histories, looks: dict[str, Look], style: dict):
    """Training bound (dashed) and held-out bound (solid) per epoch for every model, one
    panel per architecture, each model in its own colour; the legend beside the panels."""
    sns.set_theme(style="whitegrid", context=style.get("context", "paper"))
    models = model_order(histories.model, looks)
    archs = sorted({looks[m].arch for m in models})
    size = style.get("panel_size", 2.6) + 0.8
    fig, axes = plt.subplots(1, len(archs), figsize=(size * len(archs), size), squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        for model in (m for m in models if looks[m].arch == arch):
            history = histories[histories.model == model]
            for column, dashes in (("train_bound", (3, 2)), ("heldout_bound", ())):
                ax.plot(
                    history.epoch,
                    history[column],
                    color=looks[model].colour,
                    marker=looks[model].marker,
                    markersize=3,
                    dashes=dashes,
                    label=model if column == "heldout_bound" else None,
                )
        ax.set_xlim(0.5, histories.epoch.max() + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlabel("epoch")
        ax.set_ylabel("bound (nats)")
        ax.set_title(f"{arch}: training objective per epoch")
    handles, labels = [], []
    for ax in axes[0]:
        handles += ax.get_legend_handles_labels()[0]
        labels += ax.get_legend_handles_labels()[1]
    handles += [
        plt.Line2D([], [], color="0.4", dashes=(3, 2), label="training minibatches"),
        plt.Line2D([], [], color="0.4", label="held-out test images"),
    ]
    labels += ["training minibatches", "held-out test images"]
    fig.tight_layout()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def bound_vs_k(evaluation, looks: dict[str, Look], style: dict):
    """Test IWAE bound against k (log scale) for every model; the largest k is the
    log-likelihood estimate. Error bars: one standard error over test images."""
    sns.set_theme(style="whitegrid", context=style.get("context", "paper"))
    rows = []
    for r in evaluation.to_dict("records"):
        ks = sorted(
            int(c[len("iwae_k") :]) for c in r if c.startswith("iwae_k") and not c.endswith("_se")
        )
        points = [(k, r[f"iwae_k{k}"], r[f"iwae_k{k}_se"]) for k in ks]
        points.append((r["ll_k"], r["log_likelihood"], r["log_likelihood_se"]))
        rows += [
            {"model": r["model"], "arch": r["arch"], "k": k, "bound": b, "se": se}
            for k, b, se in points
        ]
    archs = sorted({row["arch"] for row in rows})
    width = style.get("panel_size", 2.6) + 1.6
    fig, axes = plt.subplots(1, len(archs), figsize=(width * len(archs), width), squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        models = model_order((row["model"] for row in rows if row["arch"] == arch), looks)
        for model in models:
            points = [row for row in rows if row["model"] == model]
            ax.errorbar(
                [p["k"] for p in points],
                [p["bound"] for p in points],
                yerr=[p["se"] for p in points],
                color=looks[model].colour,
                marker=looks[model].marker,
                capsize=2,
                label=model,
            )
        k_ticks(ax, [row["k"] for row in rows if row["arch"] == arch])
        ax.set_xlabel("k (samples in the IWAE bound)")
        ax.set_ylabel("test bound (nats)")
        ax.set_title(f"{arch}: IWAE bound against k")
        # Below the panel, so that it never covers a curve.
        ax.legend(
            fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False
        )
    fig.tight_layout()
    return fig


def training_figures(evaluation, histories, style: dict):
    """The learning curves and the bound against k of the models as trained from the first
    seed (the other seeds' numbers are in the tables), from the evaluation table and the
    histories in long form."""
    table = evaluation[evaluation.model == evaluation.base_model]
    histories = histories[histories.model.isin(table.model)]
    looks = model_looks(table)
    return learning_curves(histories, looks, style), bound_vs_k(table, looks, style)


# The four quantities of the marginal figure, in colours no model uses.
MARGINAL_QUANTITIES = [
    ("L_VAE[q]", "$L_{VAE}[q]$", "#7b3294"),
    ("L_IWAE[q]", "$L_{IWAE}[q]$", "#e08214"),
    ("L_VAE[q_IW marginal]", "$L_{VAE}[q_{IW}]$ (marginal)", "#1b7837"),
    ("log p(x)", r"$\log p(x)$", "black"),
]
IMAGE_DASHES = [(), (4, 2), (1, 1.5), (6, 2, 1, 2)]


def marginal_bounds(table, looks: dict[str, Look], style: dict):
    """One panel per case: the four quantities against k (log scale) with one-standard-error
    bars; a last panel: KL(q_IW marginal || posterior) against k for every case, in the
    model's colour (the synthetic target black; test images told apart by dashes)."""
    sns.set_theme(style="whitegrid", context=style.get("context", "paper"))
    cases = list(table.groupby(["case", "image"], sort=False))
    columns = min(3, len(cases) + 1)
    rows = -(-(len(cases) + 1) // columns)
    size = style.get("panel_size", 2.6) + 1.2
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    axes = axes.ravel()
    for ax, ((case, image), frame) in zip(axes, cases, strict=False):
        for column, label, colour in MARGINAL_QUANTITIES:
            se = frame.get(f"{column}_se")
            ax.errorbar(
                frame.k,
                frame[column],
                yerr=None if se is None else se,
                marker="o",
                markersize=3,
                capsize=2,
                color=colour,
                label=label,
            )
        k_ticks(ax, table.k)
        ax.set_title(case if image < 0 else f"{case}\ntest image {image}", fontsize="medium")
        ax.set_xlabel("k")
        ax.set_ylabel("nats")
    kl_ax = axes[len(cases)]
    images_drawn = Counter()  # per case: its test images get dashes in turn
    for (case, image), frame in cases:
        synthetic = image < 0
        dashes = IMAGE_DASHES[images_drawn[case] % len(IMAGE_DASHES)]
        images_drawn[case] += 1
        kl_ax.errorbar(
            frame.k,
            frame["KL(q_IW marginal || posterior)"],
            yerr=frame["KL_se"],
            color="black" if synthetic else looks[case].colour,
            marker="o" if synthetic else looks[case].marker,
            markersize=3,
            capsize=2,
            dashes=dashes,
            label=case if synthetic else f"{case}, image {image}",
        )
    k_ticks(kl_ax, table.k)
    kl_ax.set_yscale("symlog", linthresh=1e-2)
    kl_ax.set_ylim(bottom=0)
    kl_ax.set_title(r"KL($q_{IW}$ marginal ‖ posterior)", fontsize="medium")
    kl_ax.set_xlabel("k")
    kl_ax.set_ylabel("nats")
    kl_ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    for ax in axes[len(cases) + 1 :]:
        ax.set_visible(False)
    fig.tight_layout()
    # The quantities' legend above the panels, where it covers no curve.
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(MARGINAL_QUANTITIES),
        frameon=False,
    )
    return fig


def image_mosaic(images: np.ndarray, columns: int) -> np.ndarray:
    """A grid of 28 x 28 images ``[n, 28, 28]`` as one image, 2-pixel black gaps."""
    tensor = torch.as_tensor(np.asarray(images, dtype=np.float32))[:, None]
    from torchvision.utils import make_grid  # two seconds to import: only where used

    return make_grid(tensor, nrow=columns, padding=2, pad_value=0.0)[0].numpy()


def reconstructions(real: np.ndarray, from_q: np.ndarray, from_qiw: np.ndarray, style: dict):
    """The paper's Figure 2: each row a test digit, then decodes (Bernoulli means) of draws
    from q(z|x), then of draws from q_IW(z|x). ``from_q``, ``from_qiw``: [digits, draws, 28, 28]."""
    sns.set_theme(style="white", context=style.get("context", "paper"))
    digits, draws = from_q.shape[:2]
    height = 0.55 * digits + 0.6
    fig, axes = plt.subplots(
        1,
        3,
        figsize=(1.1 * draws + 1.4, height),
        gridspec_kw={"width_ratios": [1, draws, draws], "wspace": 0.05},
    )
    panels = [
        ("Real", image_mosaic(real, 1)),
        ("Sample $q(z|x)$", image_mosaic(from_q.reshape(-1, 28, 28), draws)),
        ("Sample $q_{IW}(z|x)$", image_mosaic(from_qiw.reshape(-1, 28, 28), draws)),
    ]
    for ax, (title, mosaic) in zip(axes, panels, strict=True):
        ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def mass_box(x_axis, y_axis, log_density, mass: float = 0.99, margin: float = 0.2):
    """The square around where a gridded density (``[y, x]``) holds ``mass``: the central
    interval of each marginal, the longer one widened by ``margin`` of it on each side and
    used for both axes; within the grid."""
    density = np.exp(log_density - log_density.max())
    box = []
    for axis, marginal in ((x_axis, density.sum(0)), (y_axis, density.sum(1))):
        cdf = np.cumsum(marginal) / marginal.sum()
        tail = (1 - mass) / 2
        low, high = np.searchsorted(cdf, [tail, 1 - tail]).clip(0, len(axis) - 1)
        box.append((axis[low], axis[high]))
    half = max(high - low for low, high in box) * (0.5 + margin)
    return [
        (max((low + high) / 2 - half, axis[0]), min((low + high) / 2 + half, axis[-1]))
        for (low, high), axis in zip(box, (x_axis, y_axis), strict=True)
    ]


def digit_posterior_panels(digits: list[dict], ks: list[int], title: str, style: dict):
    """Rows: test digits (labelled by their ``label`` where they have one). Columns: the
    binarised digit, its true posterior p(z|x) (grid, normalised by quadrature), then q_IW
    for each k (k = 1 is q). Each density panel on its own colour scale; every panel of a
    row zoomed to where its posterior lies."""
    sns.set_theme(style="white", context=style.get("context", "paper"))
    size = style.get("panel_size", 2.6) * 0.8
    columns = 2 + len(ks)
    fig, axes = plt.subplots(
        len(digits), columns, figsize=(size * columns, size * len(digits)), squeeze=False
    )
    for row, digit in zip(axes, digits, strict=True):
        row[0].imshow(digit["image"], cmap="gray", vmin=0, vmax=1)
        row[0].set_xticks([])
        row[0].set_yticks([])
        row[0].set_ylabel(str(digit.get("label", f"test image {digit['index']}")))
        panels = [("p(z|x)", digit["log_posterior"])] + [
            (f"$q_{{IW}}$, k = {k}" + (" (= q)" if k == 1 else ""), digit[f"log_qiw_k{k}"])
            for k in ks
        ]
        x_limits, y_limits = mass_box(digit["x_axis"], digit["y_axis"], digit["log_posterior"])
        for ax, (label, log_density) in zip(row[1:], panels, strict=True):
            ax.contourf(
                digit["x_axis"],
                digit["y_axis"],
                np.exp(log_density),
                levels=style.get("levels", 8),
                cmap=style.get("cmap", "Blues"),
            )
            ax.set_title(label)
            ax.set_xlim(x_limits)
            ax.set_ylim(y_limits)
            ax.set_aspect("equal")
            ax.locator_params(nbins=4)
            ax.tick_params(labelsize="x-small")
    for ax in axes[-1, 1:]:
        ax.set_xlabel("$z_1$")
    for ax in axes[:, 1]:
        ax.set_ylabel("$z_2$")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def latent_space_panels(
    means: np.ndarray,
    labels: np.ndarray,
    manifold: np.ndarray,
    extent: tuple[float, float, float, float],
    title: str,
    style: dict,
):
    """Left: test-set posterior means coloured by digit label. Right: decoded Bernoulli means
    over a grid of z covering the same region (``manifold``: [rows, columns, 28, 28],
    rows from high z_2 to low)."""
    sns.set_theme(style="white", context=style.get("context", "paper"))
    size = style.get("panel_size", 2.6) + 1.8
    fig, (left, right) = plt.subplots(1, 2, figsize=(2 * size + 0.8, size))
    sns.scatterplot(
        x=means[:, 0],
        y=means[:, 1],
        hue=labels.astype(int),
        palette="tab10",
        s=4,
        linewidth=0,
        ax=left,
        legend="full",
    )
    left.legend(
        title="label",
        fontsize="x-small",
        markerscale=2,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
    )
    left.set_xlim(extent[0], extent[1])
    left.set_ylim(extent[2], extent[3])
    left.set_xlabel("$z_1$")
    left.set_ylabel("$z_2$")
    left.set_title("posterior means of test images")
    rows, columns = manifold.shape[:2]
    right.imshow(
        image_mosaic(manifold.reshape(-1, 28, 28), columns),
        cmap="gray",
        vmin=0,
        vmax=1,
        extent=extent,
    )
    right.set_xlabel("$z_1$")
    right.set_ylabel("$z_2$")
    right.set_title("decoded Bernoulli means over the same region")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def gaussian_density(z: np.ndarray, mean: float, logvar: float) -> np.ndarray:
    return np.exp(-0.5 * (z - mean) ** 2 / math.exp(logvar)) / math.sqrt(
        2 * math.pi * math.exp(logvar)
    )


def appendix_1d(arrays: dict[str, np.ndarray], style: dict):
    """The paper's appendix figure: rows SVI (q fitted by the ELBO) and W-SVI (q fitted by
    the k-sample IWAE bound); columns k. Histogram of q_IW samples over the true density
    and q."""
    sns.set_theme(style="whitegrid", context=style.get("context", "paper"))
    ks = [int(k) for k in arrays["ks"]]
    size = style.get("panel_size", 2.6) + 0.6
    fig, axes = plt.subplots(
        2, len(ks), figsize=(size * len(ks), size * 1.6), sharex=True, sharey=True, squeeze=False
    )
    z = arrays["z"]
    for row, (method, name) in zip(axes, (("svi", "SVI"), ("wsvi", "W-SVI")), strict=True):
        for ax, k in zip(row, ks, strict=True):
            mean, logvar = arrays[f"{method}_k{k}_q"]
            ax.hist(
                arrays[f"{method}_k{k}_samples"],
                bins=100,
                range=(-8, 8),
                density=True,
                color="tab:red",
                alpha=0.6,
                label=f"$q_{{IW}}$ samples, k = {k}",
            )
            ax.plot(z, np.exp(arrays["log_posterior"]), color="tab:blue", label="true posterior")
            ax.plot(z, gaussian_density(z, mean, logvar), color="tab:green", label="q")
            ax.set_title(f"{name}, k = {k}")
        row[0].set_ylabel("density")
    for ax in axes[-1]:
        ax.set_xlabel("z")
    fig.tight_layout()
    # One legend below the panels, where it covers no curve (the sample label names no k).
    handles, labels = axes[0, 0].get_legend_handles_labels()
    labels = ["$q_{IW}$ samples" if label.startswith("$q_{IW}$") else label for label in labels]
    fig.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False
    )
    return fig


def exact_loglik_panels(per_image, panels: list[dict], style: dict):
    """One row per 2D model. First: histogram over test images of log p(x) (quadrature)
    minus the k-sample estimate (log-scale counts), with dashed marks at -1 and 1 nat.
    Then, for the images where that difference is largest: the binarised digit, and its
    true posterior p(z|x) (filled contours, on the grid fitted to it) with q(z|x)'s 1, 2
    and 3 standard-deviation ellipses and mean (red)."""
    sns.set_theme(style="white", context=style.get("context", "paper"))
    models = list(dict.fromkeys(per_image.model))
    shown = max([sum(str(p["model"]) == m for p in panels) for m in models] + [0])
    size = style.get("panel_size", 2.6) * 0.85
    columns = 1 + 2 * shown
    fig, axes = plt.subplots(
        len(models),
        columns,
        figsize=(size * (columns + 0.6), size * len(models)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1.6] + [0.6, 1] * shown},
    )
    for row, model in zip(axes, models, strict=True):
        frame = per_image[per_image.model == model]
        hist = row[0]
        hist.hist(frame.difference, bins=40, color="tab:blue")
        for nats in (-1.0, 1.0):  # the 1-nat marks, where the differences reach them
            if frame.difference.min() < nats < frame.difference.max():
                hist.axvline(nats, color="tab:red", linestyle="--", linewidth=1)
        hist.set_yscale("log")
        hist.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        hist.set_xlabel(f"log p(x) - estimate (k = {int(frame.ll_k.iloc[0])}), nats")
        hist.set_ylabel("test images")
        hist.set_title(f"{model}\nmean {frame.difference.mean():.3f} nats", fontsize="medium")
        mine = [p for p in panels if str(p["model"]) == model]
        for i in range(shown):
            digit_ax, density_ax = row[1 + 2 * i], row[2 + 2 * i]
            if i >= len(mine):
                digit_ax.set_visible(False)
                density_ax.set_visible(False)
                continue
            panel = mine[i]
            digit_ax.imshow(panel["image"], cmap="gray", vmin=0, vmax=1)
            digit_ax.set_xticks([])
            digit_ax.set_yticks([])
            digit_ax.set_title(f"test image {int(panel['index'])}", fontsize="small")
            density = np.exp(panel["log_posterior"])
            levels = style.get("levels", 8)
            density_ax.contourf(
                panel["x_axis"],
                panel["y_axis"],
                density,
                # From one level up: the grid's near-zero background stays blank.
                levels=np.linspace(0, density.max(), levels + 1)[1:],
                cmap=style.get("cmap", "Blues"),
            )
            mean, std = panel["q_mean"], panel["q_std"]
            for radius in (1, 2, 3):
                density_ax.add_patch(
                    Ellipse(
                        tuple(mean),
                        2 * radius * std[0],
                        2 * radius * std[1],
                        fill=False,
                        color="tab:red",
                        linewidth=0.8,
                    )
                )
            density_ax.plot(*mean, marker="+", color="tab:red")
            # Wide enough for the posterior's grid and q's 2-std box both.
            density_ax.set_xlim(
                min(panel["x_axis"][0], mean[0] - 2 * std[0]),
                max(panel["x_axis"][-1], mean[0] + 2 * std[0]),
            )
            density_ax.set_ylim(
                min(panel["y_axis"][0], mean[1] - 2 * std[1]),
                max(panel["y_axis"][-1], mean[1] + 2 * std[1]),
            )
            density_ax.set_title(
                f"log p(x) {float(panel['exact']):.1f}\nestimate {float(panel['estimate']):.1f}",
                fontsize="small",
            )
            density_ax.set_xlabel("$z_1$")
            density_ax.locator_params(nbins=4)
            density_ax.tick_params(labelsize="x-small")
    fig.tight_layout()
    return fig


SNR_ESTIMATOR_COLOURS = {"reparam": "tab:red", "stl": "tab:green", "dreg": "tab:purple"}


def gradient_snr(table, style: dict):
    """Gradient SNR against k, log-log: one row per model, the encoder's and the decoder's
    panels side by side, one line per estimator. Grey dashes: the slopes 1/sqrt(k) and
    sqrt(k) through the plain gradient's SNR at the smallest k; dotted: the SNR that a
    gradient with no signal shows with the table's repeats (riwae.snr.noise_floor)."""
    from riwae.snr import noise_floor

    sns.set_theme(style="whitegrid", context=style.get("context", "paper"))
    models = list(dict.fromkeys(table.model))
    networks = list(dict.fromkeys(table.network))
    size = style.get("panel_size", 2.6) + 0.6
    fig, axes = plt.subplots(
        len(models),
        len(networks),
        figsize=(size * len(networks) + 1.6, size * len(models)),
        squeeze=False,
    )
    floor = noise_floor(int(table.repeats.iloc[0]))
    ks = np.array(sorted(table.k.unique()), dtype=float)
    for row, model in zip(axes, models, strict=True):
        for ax, network in zip(row, networks, strict=True):
            frame = table[(table.model == model) & (table.network == network)]
            for estimator, lines in frame.groupby("estimator", sort=False):
                lines = lines.sort_values("k")
                ax.plot(
                    lines.k,
                    lines.mean_snr,
                    marker="o",
                    markersize=3,
                    color=SNR_ESTIMATOR_COLOURS.get(estimator, "0.3"),
                    label=estimator,
                )
            first = frame[frame.k == frame.k.min()].set_index("estimator").mean_snr
            anchor = first.get("reparam", first.iloc[0])
            for power, dashes, label in ((-0.5, (4, 2), "1/sqrt(k)"), (0.5, (1.5, 1.5), "sqrt(k)")):
                ax.plot(
                    ks,
                    anchor * (ks / ks[0]) ** power,
                    color="0.55",
                    dashes=dashes,
                    linewidth=1,
                    label=label,
                )
            ax.axhline(floor, color="0.3", linestyle=":", linewidth=1, label="no signal")
            ax.set_yscale("log")
            k_ticks(ax, ks)
            ax.set_title(f"{model}: {network}", fontsize="medium")
            ax.set_xlabel("k")
        row[0].set_ylabel("mean SNR over parameters")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig
