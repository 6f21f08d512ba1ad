# riwae: replication pipeline of "Reinterpreting Importance-Weighted Autoencoders".
# `snakemake --cores all` runs every stage of the default config; see README.md.
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/posterior.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/identity.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        "resources/mnist.npz",
        rules.posterior_figure.output,
        rules.posterior_grid.output,
        rules.identity.output,
        rules.marginal_figure.output,
        rules.evaluation_tables.output,
        rules.training_figures.output,
        rules.appendix_figure.output,
        rules.reconstruction_figure.output if MODELS_2D else [],
        expand(rules.digit_posteriors_figure.output, model2d=MODELS_2D),
        expand(rules.latent_space_figure.output, model2d=MODELS_2D),
