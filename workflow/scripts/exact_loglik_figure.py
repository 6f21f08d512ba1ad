import numpy as np
import pandas as pd

from riwae.io import start_log
from riwae.plots import exact_loglik, save_figure
from riwae.posterior import unflatten_digits

log = start_log(snakemake.log[0])
per_image = pd.read_csv(snakemake.input.per_image)
with np.load(snakemake.input.arrays) as arrays:
    panels = unflatten_digits(arrays)
figure = exact_loglik(per_image, panels, snakemake.params.style)
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s", snakemake.output.png)
