import numpy as np

from riwae.io import start_log
from riwae.plots import posterior_panels, save_figure

log = start_log(snakemake.log[0])
with np.load(snakemake.input.arrays) as stored:
    arrays = dict(stored)
figure = posterior_panels(arrays, snakemake.params.figure_k, snakemake.params.style)
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s and %s", snakemake.output.png, snakemake.output.pdf)
