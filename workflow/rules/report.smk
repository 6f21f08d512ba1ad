# Every artifact of the run; the manifest hashes them and the notebook shows them.
ARTIFACTS = [
    *rules.posterior_grid.output,
    *rules.posterior_figure.output,
    *rules.identity.output,
    *rules.marginal.output,
    *rules.marginal_figure.output,
    *rules.evaluation_tables.output,
    *rules.training_figures.output,
    *rules.appendix.output,
    *rules.appendix_figure.output,
    *expand(rules.train.output, model=MODELS),
    *expand(rules.evaluate.output, model=MODELS),
    *(rules.reconstruct.output if MODELS_2D else []),
    *(rules.reconstruction_figure.output if MODELS_2D else []),
    *(rules.exact_loglik.output if MODELS_2D else []),
    *(rules.exact_loglik_figure.output if MODELS_2D else []),
    *expand(rules.digit_posteriors.output, model2d=MODELS_2D),
    *expand(rules.digit_posteriors_figure.output, model2d=MODELS_2D),
    *expand(rules.latent_space.output, model2d=MODELS_2D),
    *expand(rules.latent_space_figure.output, model2d=MODELS_2D),
]


rule manifest:
    input:
        data="resources/mnist.npz",
        models=expand(rules.train.output.model, model=MODELS),
        artifacts=ARTIFACTS,
    output:
        report(
            f"{RUN}/manifest.json",
            caption="../report/manifest.rst",
            category="Provenance",
        ),
    log:
        f"{RUN}/logs/manifest.log",
    conda:
        "../../environment.yml"
    params:
        config=config,
    script:
        "../scripts/manifest.py"


rule notebook:
    input:
        notebook="notebooks/explore_run.ipynb",
        manifest=rules.manifest.output[0],
    output:
        report(
            f"{RUN}/notebook.html",
            caption="../report/notebook.rst",
            category="Provenance",
        ),
    log:
        f"{RUN}/logs/notebook.log",
    conda:
        "../../environment.yml"
    params:
        run_dir=lambda wildcards, output: os.path.dirname(output[0]),
        python=sys.executable,  # the environment that runs Snakemake has nbconvert
    shell:
        "RIWAE_RUN_DIR=$(pwd)/{params.run_dir} {params.python} -m jupyter nbconvert --to html --execute "
        "{input.notebook} --output-dir {params.run_dir} --output notebook > {log} 2>&1"
