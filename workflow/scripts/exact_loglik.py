import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from riwae.data import evaluation_images
from riwae.exact import (
    ModelJoint,
    exact_log_evidence,
    per_image_table,
    posterior_panel_arrays,
    summary_markdown,
    summary_table,
)
from riwae.io import atomic_path, start_log, write_csv, write_text
from riwae.posterior import flatten_digits
from riwae.train import load_model, resolve_device

log = start_log(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings = snakemake.params.exact
device = resolve_device(snakemake.params.device)
# The evaluate stage's images: the same count, seed and device give the same pixels.
x = evaluation_images(
    snakemake.input.data, snakemake.params.test_images, snakemake.params.seed, device
)
tables, panels = [], []
for name, model_path, evaluation_path in zip(
    snakemake.params.models, snakemake.input.models, snakemake.input.evaluations, strict=True
):
    joint = ModelJoint(load_model(model_path, device)[0], x)
    start = time.perf_counter()
    exact = exact_log_evidence(
        joint,
        coarse_limit=settings["coarse_limit"],
        coarse_size=settings["coarse_size"],
        zoom_size=settings["zoom_size"],
        mass_outside=settings["mass_outside"],
        grid_size=settings["grid_size"],
        max_grid_size=settings["max_grid_size"],
        tolerance=settings["tolerance"],
    )
    log.info("%s: %d images by quadrature in %.1f s", name, len(x), time.perf_counter() - start)
    evaluation = json.loads(Path(evaluation_path).read_text())
    try:
        table = per_image_table(
            name, exact, evaluation["log_likelihood_per_image"], evaluation["ll_k"]
        )
    except ValueError as error:  # an evaluation of other images than these
        log.error(str(error))
        sys.exit(1)
    tables.append(table)
    shown = posterior_panel_arrays(
        joint, table, settings["shown_images"], settings["figure_grid_size"]
    )
    panels += [{**panel, "model": name} for panel in shown]
per_image = pd.concat(tables, ignore_index=True)
summary = summary_table(per_image)
write_csv(snakemake.output.per_image, per_image)
write_csv(snakemake.output.table, summary)
markdown = summary_markdown(summary)
write_text(snakemake.output.markdown, markdown)
with atomic_path(snakemake.output.arrays) as tmp:
    np.savez(tmp, **flatten_digits(panels))
log.info("\n%s", markdown)
