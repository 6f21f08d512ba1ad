from riwae.io import read_npz, start_log
from riwae.plots import appendix_1d, save_figure

log = start_log(snakemake.log[0])
figure = appendix_1d(read_npz(snakemake.input[0]), snakemake.params.style)
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s", snakemake.output.png)
