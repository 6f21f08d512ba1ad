rule posterior_grid:
    output:
        arrays=f"{RUN}/figures/posterior_synthetic.npz",
        distances=report(
            f"{RUN}/tables/qiw_distance_synthetic.csv",
            caption="../report/qiw_distance.rst",
            category="Figure 1: synthetic posterior",
        ),
    log:
        f"{RUN}/logs/posterior_grid.log",
    benchmark:
        f"{RUN}/benchmarks/posterior_grid.tsv"
    conda:
        "../../environment.yml"
    params:
        posterior=config["posterior"],
        seed=config["seed"],
    script:
        "../scripts/posterior_grid.py"


rule posterior_figure:
    input:
        arrays=rules.posterior_grid.output.arrays,
    output:
        png=report(
            f"{RUN}/figures/posterior_synthetic.png",
            caption="../report/posterior.rst",
            category="Figure 1: synthetic posterior",
        ),
        pdf=f"{RUN}/figures/posterior_synthetic.pdf",
    log:
        f"{RUN}/logs/posterior_figure.log",
    benchmark:
        f"{RUN}/benchmarks/posterior_figure.tsv"
    conda:
        "../../environment.yml"
    params:
        figure_k=config["posterior"]["figure_k"],
        style=config["plot"],
    script:
        "../scripts/posterior_figure.py"
