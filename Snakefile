# riwae: replication pipeline of "Reinterpreting Importance-Weighted Autoencoders".
# `snakemake --cores all` runs every stage of the default config; see README.md.
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/posterior.smk"
include: "workflow/rules/reconstruct.smk"
include: "workflow/rules/identity.smk"
include: "workflow/rules/marginal.smk"
include: "workflow/rules/digit_posteriors.smk"
include: "workflow/rules/latent_space.smk"
include: "workflow/rules/appendix.smk"
include: "workflow/rules/estimators.smk"
include: "workflow/rules/exact_loglik.smk"
include: "workflow/rules/snr.smk"
include: "workflow/rules/through_qiw.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "resources/mnist.npz",
        artifacts,
        rules.manifest.output,
        rules.notebook.output,
        rules.html_report.output,
