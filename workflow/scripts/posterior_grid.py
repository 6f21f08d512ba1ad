from riwae.grid import square_grid
from riwae.io import start_log, write_csv, write_npz
from riwae.posterior import synthetic_posterior
from riwae.targets import cremer2d_target

log = start_log(snakemake.log[0])
settings = snakemake.params.posterior
target, proposal = cremer2d_target()
grid = square_grid(settings["grid_limit"], settings["grid_size"])
arrays, distances = synthetic_posterior(
    target,
    proposal,
    grid,
    settings["figure_k"],
    settings["distance_k"],
    settings["sample_sets"],
    snakemake.params.seed,
)
log.info("q_IW against the true posterior on the grid:\n%s", distances.to_string(index=False))
write_npz(snakemake.output.arrays, arrays)
write_csv(snakemake.output.distances, distances)
