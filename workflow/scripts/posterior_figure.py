from riwae.io import read_npz, start_log
from riwae.plots import posterior_panels, save_figure

log = start_log(snakemake.log[0])
arrays = read_npz(snakemake.input.arrays)
figure = posterior_panels(arrays, snakemake.params.figure_k, snakemake.params.style)
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s and %s", snakemake.output.png, snakemake.output.pdf)
