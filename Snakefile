# riwae: replication pipeline of "Reinterpreting Importance-Weighted Autoencoders".
# `snakemake --cores all` runs every stage of the default config; see README.md.
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/posterior.smk"
include: "workflow/rules/identity.smk"


rule all:
    default_target: True
    input:
        "resources/mnist.npz",
        rules.posterior_figure.output,
        rules.posterior_grid.output,
        rules.identity.output,
