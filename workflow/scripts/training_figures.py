import pandas as pd

from riwae.io import start_log
from riwae.plots import bound_vs_k, learning_curves, save_figure

log = start_log(snakemake.log[0])
style = snakemake.params.style
histories = pd.read_csv(snakemake.input.histories)
evaluation = pd.read_csv(snakemake.input.evaluation)
save_figure(
    learning_curves(histories, style), [snakemake.output.curves, snakemake.output.curves_pdf]
)
save_figure(bound_vs_k(evaluation, style), [snakemake.output.bounds, snakemake.output.bounds_pdf])
log.info("wrote the learning curves and the bound-against-k figure")
