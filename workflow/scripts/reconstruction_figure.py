from riwae.io import read_npz, start_log
from riwae.plots import reconstructions, save_figure

log = start_log(snakemake.log[0])
arrays = read_npz(snakemake.input.arrays)
figure = reconstructions(
    arrays["real"], arrays["from_q"], arrays["from_qiw"], snakemake.params.style
)
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s", snakemake.output.png)
