wildcard_constraints:
    model2d="|".join(MODELS_2D) or "no-2d-model",


rule reconstruct:
    input:
        data="resources/mnist.npz",
        models=expand(TRAINED["model"], model=MODELS_2D),
    output:
        arrays=f"{RUN}/figures/reconstructions.npz",
        metric=report(
            f"{RUN}/tables/reconstruction_metric.csv",
            caption="../report/reconstruction_metric.rst",
            category="Figure 2: reconstructions",
        ),
    log:
        f"{RUN}/logs/reconstruct.log",
    benchmark:
        f"{RUN}/benchmarks/reconstruct.tsv"
    conda:
        "../../environment.yml"
    threads: config["threads_per_job"]
    params:
        figures=config["figures"],
        models=MODELS_2D,
        seed=config["seed"],
    script:
        "../scripts/reconstruct.py"


rule reconstruction_figure:
    input:
        arrays=rules.reconstruct.output.arrays,
    output:
        png=report(
            f"{RUN}/figures/reconstructions.png",
            caption="../report/reconstructions.rst",
            category="Figure 2: reconstructions",
        ),
        pdf=f"{RUN}/figures/reconstructions.pdf",
    log:
        f"{RUN}/logs/reconstruction_figure.log",
    benchmark:
        f"{RUN}/benchmarks/reconstruction_figure.tsv"
    conda:
        "../../environment.yml"
    params:
        style=config["plot"],
    script:
        "../scripts/reconstruction_figure.py"


rule digit_posteriors:
    input:
        data="resources/mnist.npz",
        model=f"{RUN}/models/{{model2d}}/model.pt",
    output:
        f"{RUN}/figures/digit_posteriors_{{model2d}}.npz",
    log:
        f"{RUN}/logs/digit_posteriors_{{model2d}}.log",
    benchmark:
        f"{RUN}/benchmarks/digit_posteriors_{{model2d}}.tsv"
    conda:
        "../../environment.yml"
    threads: config["threads_per_job"]
    params:
        figures=config["figures"],
        ks=config["posterior"]["figure_k"],
        seed=config["seed"],
    script:
        "../scripts/digit_posteriors.py"


rule digit_posteriors_figure:
    input:
        rules.digit_posteriors.output[0],
    output:
        png=report(
            f"{RUN}/figures/digit_posteriors_{{model2d}}.png",
            caption="../report/digit_posteriors.rst",
            category="Posteriors of real digits",
            subcategory="{model2d}",
        ),
        pdf=f"{RUN}/figures/digit_posteriors_{{model2d}}.pdf",
    log:
        f"{RUN}/logs/digit_posteriors_figure_{{model2d}}.log",
    benchmark:
        f"{RUN}/benchmarks/digit_posteriors_figure_{{model2d}}.tsv"
    conda:
        "../../environment.yml"
    params:
        ks=config["posterior"]["figure_k"],
        style=config["plot"],
    script:
        "../scripts/digit_posteriors_figure.py"


rule latent_space:
    input:
        data="resources/mnist.npz",
        model=f"{RUN}/models/{{model2d}}/model.pt",
    output:
        f"{RUN}/figures/latent_space_{{model2d}}.npz",
    log:
        f"{RUN}/logs/latent_space_{{model2d}}.log",
    benchmark:
        f"{RUN}/benchmarks/latent_space_{{model2d}}.tsv"
    conda:
        "../../environment.yml"
    threads: config["threads_per_job"]
    params:
        figures=config["figures"],
        seed=config["seed"],
    script:
        "../scripts/latent_space.py"


rule latent_space_figure:
    input:
        rules.latent_space.output[0],
    output:
        png=report(
            f"{RUN}/figures/latent_space_{{model2d}}.png",
            caption="../report/latent_space.rst",
            category="Posteriors of real digits",
            subcategory="{model2d}",
        ),
        pdf=f"{RUN}/figures/latent_space_{{model2d}}.pdf",
    log:
        f"{RUN}/logs/latent_space_figure_{{model2d}}.log",
    benchmark:
        f"{RUN}/benchmarks/latent_space_figure_{{model2d}}.tsv"
    conda:
        "../../environment.yml"
    params:
        style=config["plot"],
    script:
        "../scripts/latent_space_figure.py"


rule appendix:
    output:
        f"{RUN}/figures/appendix_1d.npz",
    log:
        f"{RUN}/logs/appendix.log",
    benchmark:
        f"{RUN}/benchmarks/appendix.tsv"
    conda:
        "../../environment.yml"
    params:
        appendix=config["appendix"],
        seed=config["seed"],
    script:
        "../scripts/appendix.py"


rule appendix_figure:
    input:
        rules.appendix.output[0],
    output:
        png=report(
            f"{RUN}/figures/appendix_1d.png",
            caption="../report/appendix.rst",
            category="Appendix: 1D",
        ),
        pdf=f"{RUN}/figures/appendix_1d.pdf",
    log:
        f"{RUN}/logs/appendix_figure.log",
    benchmark:
        f"{RUN}/benchmarks/appendix_figure.tsv"
    conda:
        "../../environment.yml"
    params:
        style=config["plot"],
    script:
        "../scripts/appendix_figure.py"
