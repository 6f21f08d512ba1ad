import numpy as np

from riwae.io import start_log
from riwae.plots import digit_posteriors, save_figure
from riwae.posterior import unflatten_digits

log = start_log(snakemake.log[0])
with np.load(snakemake.input[0]) as arrays:
    digits = unflatten_digits(arrays)
title = f"{snakemake.wildcards.model2d}: true posterior and $q_{{IW}}$ of test digits"
figure = digit_posteriors(digits, snakemake.params.ks, title, snakemake.params.style)
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s", snakemake.output.png)
