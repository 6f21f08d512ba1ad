import numpy as np

from riwae.io import start_log
from riwae.plots import appendix_1d, save_figure

log = start_log(snakemake.log[0])
with np.load(snakemake.input[0]) as arrays:
    figure = appendix_1d(dict(arrays), snakemake.params.style)
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s", snakemake.output.png)
