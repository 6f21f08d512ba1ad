# Provenance: the resolved config, the manifest, the executed notebook and the report of the run.


rule run_config:
    output:
        resolved=shown(
            f"{RUN}/config.yaml",
            "run_config",
            "provenance",
            "Config: every setting of this run",
        ),
    log:
        f"{RUN}/logs/run_config.log",
    params:
        config=config,
    run:
        stages.run_config(**output, **params, log_file=log[0])


# Every artifact of the run; the manifest hashes them and the notebook shows them.
ARTIFACTS = [
    *rules.run_config.output,
    *rules.posterior_grid.output,
    *rules.posterior_figure.output,
    *rules.identity.output,
    *rules.marginal.output,
    *rules.marginal_figure.output,
    *rules.evaluation_tables.output,
    *rules.training_figures.output,
    *rules.estimator_comparison.output,
    *rules.appendix.output,
    *rules.appendix_figure.output,
    *expand(list(TRAINED.values()), model=REPLICATES),
    *expand(rules.evaluate.output, model=REPLICATES),
    *(rules.reconstruct.output if MODELS_2D else []),
    *(rules.reconstruction_figure.output if MODELS_2D else []),
    *(rules.exact_loglik.output if MODELS_2D else []),
    *(rules.exact_loglik_figure.output if MODELS_2D else []),
    *expand(rules.digit_posteriors.output, model2d=MODELS_2D),
    *expand(rules.digit_posteriors_figure.output, model2d=MODELS_2D),
    *expand(rules.latent_space.output, model2d=MODELS_2D),
    *expand(rules.latent_space_figure.output, model2d=MODELS_2D),
    *(rules.gradient_snr_tables.output if SNR_MODELS else []),
    *(rules.gradient_snr_figure.output if SNR_MODELS else []),
    *(rules.through_qiw.output if MODELS_2D else []),
    *(rules.through_qiw_posteriors.output if MODELS_2D else []),
    *(rules.through_qiw_figure.output if MODELS_2D else []),
]


rule manifest:
    input:
        data="resources/mnist.npz",
        models=expand(TRAINED["model"], model=REPLICATES),
        artifacts=ARTIFACTS,
    output:
        manifest=shown(
            f"{RUN}/manifest.json",
            "manifest",
            "provenance",
            "Manifest: code, config, versions, hashes",
        ),
    log:
        f"{RUN}/logs/manifest.log",
    params:
        config=config,
    run:
        stages.manifest(**input, **output, **params, log_file=log[0])


rule notebook:
    input:
        notebook="notebooks/explore_run.ipynb",
        manifest=rules.manifest.output.manifest,
    output:
        html=shown(
            f"{RUN}/notebook.html",
            "notebook",
            "provenance",
            "Notebook: the run explored",
        ),
    log:
        f"{RUN}/logs/notebook.log",
    run:
        stages.notebook(**input, **output, log_file=log[0])


# The report of the whole run: its inputs are every artifact, so a run of some targets only
# never rewrites it, and a complete run rebuilds it when anything in it changed (captions
# included). `snakemake --forcerun html_report` rebuilds it on request.
rule html_report:
    input:
        ARTIFACTS,
        rules.manifest.output,
        rules.notebook.output,
        captions=sorted(glob.glob("workflow/report/*.rst")),
        resolved_config=rules.run_config.output.resolved,
    output:
        report=f"{RUN}/report.html",
    log:
        f"{RUN}/logs/report.log",
    params:
        snakefile=os.path.relpath(workflow.main_snakefile),
    run:
        stages.html_report(
            resolved_config=input.resolved_config,
            **output,
            **params,
            log_file=log[0],
        )
