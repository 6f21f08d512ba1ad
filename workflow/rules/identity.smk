rule identity:
    output:
        json=f"{RUN}/checks/identity_synthetic.json",
        markdown=report(
            f"{RUN}/checks/identity_synthetic.md",
            caption="../report/identity.rst",
            category="Identity check",
        ),
    log:
        f"{RUN}/logs/identity.log",
    benchmark:
        f"{RUN}/benchmarks/identity.tsv"
    conda:
        "../../environment.yml"
    params:
        identity=config["identity"],
        seed=config["seed"],
    script:
        "../scripts/identity.py"
