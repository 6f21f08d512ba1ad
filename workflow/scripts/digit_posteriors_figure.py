from riwae.io import read_npz, start_log
from riwae.plots import digit_posteriors, save_figure
from riwae.posterior import unflatten_digits

log = start_log(snakemake.log[0])
digits = unflatten_digits(read_npz(snakemake.input[0]))
title = f"{snakemake.wildcards.model2d}: true posterior and $q_{{IW}}$ of test digits"
figure = digit_posteriors(digits, snakemake.params.ks, title, snakemake.params.style)
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s", snakemake.output.png)
