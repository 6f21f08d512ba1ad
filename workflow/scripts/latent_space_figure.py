from riwae.io import read_npz, start_log
from riwae.plots import latent_space, save_figure

log = start_log(snakemake.log[0])
arrays = read_npz(snakemake.input[0])
figure = latent_space(
    arrays["means"],
    arrays["labels"],
    arrays["manifold"],
    tuple(arrays["extent"]),
    f"{snakemake.wildcards.model2d}: the 2D latent space",
    snakemake.params.style,
)
save_figure(figure, [snakemake.output.png, snakemake.output.pdf])
log.info("wrote %s", snakemake.output.png)
