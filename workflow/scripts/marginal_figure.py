import pandas as pd

from riwae.io import start_log
from riwae.plots import marginal_bounds, save_figure

log = start_log(snakemake.log[0])
table = pd.read_csv(snakemake.input.table)
save_figure(
    marginal_bounds(table, snakemake.params.style), [snakemake.output.png, snakemake.output.pdf]
)
log.info("wrote %s", snakemake.output.png)
