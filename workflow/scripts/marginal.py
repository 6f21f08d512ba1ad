import pandas as pd
import torch

from riwae.data import BinarizedMNIST, chosen_images, load_mnist
from riwae.grid import fitted_grid, square_grid
from riwae.io import start_log, write_csv, write_text
from riwae.marginal import marginal_markdown, marginal_ordering
from riwae.targets import ModelPosterior, cremer2d_target
from riwae.train import load_model

log = start_log(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings, seed = snakemake.params.marginal, snakemake.params.seed
generator = torch.Generator().manual_seed(seed)
common = dict(
    ks=settings["k"],
    sample_sets=settings["sample_sets"],
    replicates=settings["replicates"],
    bound_sets=settings["bound_sets"],
    generator=generator,
)
target, proposal = cremer2d_target()
grid = square_grid(settings["grid_limit"], settings["grid_size"])
frames = [
    pd.DataFrame(marginal_ordering(target, proposal, grid, **common)).assign(
        case="synthetic 2D target", image=-1
    )
]
test = load_mnist(snakemake.input.data)["test_images"]
indices = chosen_images(settings["digits"], len(test), seed)
images = BinarizedMNIST(test).fixed(seed=seed)[indices].double()
for name, path in zip(snakemake.params.models, snakemake.input.models, strict=True):
    model = load_model(path)[0].double()
    for index, x in zip(indices, images, strict=True):
        posterior = ModelPosterior(model, x)
        q = posterior.proposal()
        grid = fitted_grid(
            [posterior.log_joint, q.log_prob], settings["grid_limit"], settings["grid_size"]
        )
        rows = marginal_ordering(posterior, q, grid, **common)
        frames.append(pd.DataFrame(rows).assign(case=name, image=index))
        log.info("%s, test image %d done", name, index)
table = pd.concat(frames, ignore_index=True)
write_csv(snakemake.output.table, table)
markdown = marginal_markdown(table)
write_text(snakemake.output.markdown, markdown)
log.info("\n%s", markdown)
