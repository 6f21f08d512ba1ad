"""Figures. Each function draws from saved arrays, so a figure can be redrawn without
recomputing what it shows."""

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from riwae.io import atomic_path  # noqa: E402


def save_figure(fig, paths) -> None:
    """Save one figure to each path (format from the suffix), atomically, then close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)


def posterior_panels(arrays: dict[str, np.ndarray], ks: list[int], style: dict):
    """The paper's Figure 1: the true posterior, then q_IW for each k (k = 1 is q itself).

    Each panel is a filled contour plot of the density on its own colour scale, as in the
    original, with shared axes so that the shapes can be compared.
    """
    sns.set_theme(style="white", context=style.get("context", "paper"))
    axis = arrays["axis"]
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
            axis,
            axis,
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
