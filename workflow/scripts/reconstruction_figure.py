import numpy as np

from riwae.io import start_log
from riwae.plots import reconstructions, save_figure

log = start_log(snakemake.log[0])
with np.load(snakemake.input.arrays) as arrays:
    figure = reconstructions(
        arrays["real"], arrays["from_q"], arrays["from_qiw"], snakemake.params.style
    )
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s", snakemake.output.png)
