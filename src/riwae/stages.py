"""The pipeline's stages: what each Snakemake rule reads, computes (with the rest of the
library) and writes. Each rule's `run:` block calls one function here with the rule's named
inputs, outputs and params, its log file and, for the heavy ones, its thread count.

The Snakefile imports this module on every Snakemake call, dry runs included, so each stage
imports the heavy libraries (torch, pandas, matplotlib) itself, when it runs.
"""

import contextlib
import functools
import os
import subprocess
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from riwae.html_tables import frame_page, markdown_page
from riwae.io import (
    DataError,
    UserError,
    read_npz,
    start_log,
    write_csv,
    write_json,
    write_npz,
    write_text,
)


def stage(function):
    """A stage: a problem the user can fix (``UserError``: a damaged or missing input, a
    non-finite training bound, a full disk) stops it with its one sentence, in the stage's
    log and in Snakemake's error, without a traceback.

    How a job computes is settled here, before the stage runs: ``matmul_precision`` (given
    to every stage that computes) sets the precision of float32 matrix products, and a stage
    that takes ``device`` gets it as a ``torch.device``, on CUDA a GPU of its own held for
    the job's lifetime (``riwae.device.claim_device``, locks under ``gpu_locks``, one slot
    of ``jobs_per_gpu``)."""

    @functools.wraps(function)
    def run(*args, matmul_precision=None, gpu_locks=None, jobs_per_gpu=1, **kwargs):
        try:
            with contextlib.ExitStack() as job:
                if matmul_precision is not None:
                    from riwae.device import set_matmul_precision

                    set_matmul_precision(matmul_precision)
                if "device" in kwargs:
                    from riwae.device import claim_device

                    kwargs["device"] = job.enter_context(
                        claim_device(kwargs["device"], gpu_locks, jobs_per_gpu)
                    )
                return function(*args, **kwargs)
        except UserError as error:
            # In the stage's log file (on standard error when the log cannot be written, as
            # on a full disk); Snakemake shows it to the user once, as its error.
            try:
                with open(kwargs["log_file"], "a") as log:
                    log.write(f"{error}\n")
            except OSError:
                print(error, file=sys.stderr)
            raise WorkflowError(str(error)) from None

    return run


@stage
def fetch_mnist(mnist, source, cache_dir, log_file):
    from riwae.data import prepare_mnist

    log = start_log(log_file)
    hashes = prepare_mnist(source, cache_dir, mnist)
    for name, digest in hashes.items():
        log.info("%s sha256 %s (verified)", name, digest)


@stage
def train(
    mnist,
    models,
    histories,
    timings,
    settings,
    checkpoint,
    device,
    threads,
    log_file,
    checkpoint_minutes=0,
    cuda_graphs=0,
):
    """C4's models: one group of models trained as one stacked network (riwae.train)."""
    import torch

    from riwae.data import load_mnist
    from riwae.io import delete_torch
    from riwae.train import TrainSettings, save_model, train_group

    log = start_log(log_file)
    torch.set_num_threads(threads)
    members = [TrainSettings(**s) for s in settings]
    data = load_mnist(mnist)
    log.info("training %s together on %s", ", ".join(s.name for s in members), device)
    for member in members:
        log.info("%s: %s", member.name, member)
    trained, member_histories, timing = train_group(
        members,
        data["train_images"],
        data["test_images"],
        device,
        checkpoint,
        checkpoint_seconds=60 * checkpoint_minutes,
        cuda_graphs=cuda_graphs,
    )
    log.info("wall time per epoch:\n%s", timing.to_string(index=False))
    for i, (member, model, history) in enumerate(
        zip(members, trained, member_histories, strict=True)
    ):
        log.info("%s history:\n%s", member.name, history.to_string(index=False))
        write_csv(histories[i], history)
        write_csv(timings[i], timing)
        save_model(models[i], model, member, device)
    delete_torch(checkpoint)  # the finished models replace the checkpoint


@stage
def posterior_grid(arrays, distances, distances_html, settings, seed, log_file):
    """Figure 1's data: q_IW of the synthetic target on a grid, and its distance to the
    posterior for each k."""
    from riwae.grid import square_grid
    from riwae.posterior import synthetic_posterior
    from riwae.targets import cremer2d_target

    log = start_log(log_file)
    target, proposal = cremer2d_target()
    grid = square_grid(settings["grid_limit"], settings["grid_size"])
    grid_arrays, table = synthetic_posterior(
        target,
        proposal,
        grid,
        settings["figure_k"],
        settings["distance_k"],
        settings["sample_sets"],
        seed,
    )
    log.info("q_IW against the true posterior on the grid:\n%s", table.to_string(index=False))
    write_npz(arrays, grid_arrays)
    write_csv(distances, table)
    title = "Distance from q_IW to the true posterior (synthetic 2D target)"
    write_text(distances_html, frame_page(table, title))


@stage
def posterior_figure(arrays, png, pdf, figure_k, style, log_file):
    from riwae.plots import posterior_panels, save_figure

    log = start_log(log_file)
    save_figure(posterior_panels(read_npz(arrays), figure_k, style), [png, pdf], style["dpi"])
    log.info("wrote %s and %s", png, pdf)


@stage
def identity(
    data,
    models,
    qiw_distances,
    check,
    table,
    table_html,
    settings,
    model_names,
    seed,
    threads,
    log_file,
):
    """C3: both sides of the identity per sample set, on the synthetic target and on every
    trained model; a difference above the tolerance fails the stage."""
    import pandas as pd
    import torch

    from riwae.checks import (
        identity_markdown,
        model_identity,
        off_by_one_markdown,
        synthetic_identity,
    )
    from riwae.data import binarized_test_images
    from riwae.targets import cremer2d_target
    from riwae.train import load_model

    log = start_log(log_file)
    torch.set_num_threads(threads)
    ks, tolerance = settings["k"], settings["tolerance"]
    target, proposal = cremer2d_target()
    sections = [
        {
            "case": "synthetic 2D target",
            "log_evidence": target.log_evidence,
            "rows": synthetic_identity(
                target, proposal, ks, settings["sample_sets"], tolerance, seed
            ),
        }
    ]
    images = binarized_test_images(data, seed, settings["model_images"])
    for name, path in zip(model_names, models, strict=True):
        model, _ = load_model(path)
        rows = model_identity(model, images, ks, settings["model_sample_sets"], tolerance, seed)
        sections.append({"case": name, "rows": rows})
        log.info("%s done", name)

    failures = [(s["case"], r["k"]) for s in sections for r in s["rows"] if not r["passed"]]
    write_json(check, {"passed": not failures, "sections": sections})
    markdown = "\n".join(
        f"## {s['case']}\n\n{identity_markdown(s['rows'], s.get('log_evidence'))}" for s in sections
    )
    markdown += "\n" + off_by_one_markdown(pd.read_csv(qiw_distances))
    write_text(table, "# L_IWAE[q] = L_VAE[q_IW]\n\n" + markdown)
    write_text(table_html, markdown_page(markdown, "L_IWAE[q] = L_VAE[q_IW], per sample set"))
    log.info("\n%s", markdown)
    if failures:
        sentence = (
            "Identity check failed for "
            + ", ".join(f"{case} at k = {k}" for case, k in failures)
            + f": the largest difference exceeds the tolerance {tolerance:g}."
        )
        log.error(sentence)
        raise WorkflowError(sentence)


@stage
def marginal(data, models, table, markdown, html, settings, model_names, seed, threads, log_file):
    """C3: the marginal q_IW among the bounds, for the synthetic target and test digits
    under each 2D model."""
    import pandas as pd
    import torch

    from riwae.data import binarized_test_images, chosen_images
    from riwae.grid import fitted_grid, square_grid
    from riwae.marginal import marginal_markdown, marginal_ordering
    from riwae.targets import ModelPosterior, cremer2d_target
    from riwae.train import load_model

    log = start_log(log_file)
    torch.set_num_threads(threads)
    common = dict(
        ks=settings["k"],
        sample_sets=settings["sample_sets"],
        replicates=settings["replicates"],
        bound_sets=settings["bound_sets"],
        generator=torch.Generator().manual_seed(seed),
    )
    target, proposal = cremer2d_target()
    grid = square_grid(settings["grid_limit"], settings["grid_size"])
    frames = [
        pd.DataFrame(marginal_ordering(target, proposal, grid, **common)).assign(
            case="synthetic 2D target", image=-1
        )
    ]
    test = binarized_test_images(data, seed)
    indices = chosen_images(settings["digits"], len(test), seed)
    images = test[indices].double()
    for name, path in zip(model_names, models, strict=True):
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
    result = pd.concat(frames, ignore_index=True)
    write_csv(table, result)
    text = marginal_markdown(result)
    write_text(markdown, text)
    write_text(html, markdown_page(text, "The marginal q_IW among the bounds"))
    log.info("\n%s", text)


@stage
def marginal_figure(table, png, pdf, style, log_file):
    import pandas as pd

    from riwae.plots import marginal_bounds, save_figure

    log = start_log(log_file)
    save_figure(marginal_bounds(pd.read_csv(table), style), [png, pdf], style["dpi"])
    log.info("wrote %s", png)


@stage
def evaluate(data, model, result, settings, seed, device, model_name, threads, log_file):
    """C4: the test log-likelihood, the IWAE bounds and the active units of one model."""
    import torch

    from riwae.data import binarized_test_images
    from riwae.evaluate import evaluate_model
    from riwae.train import load_model

    log = start_log(log_file)
    torch.set_num_threads(threads)
    vae, state = load_model(model, device)
    x = binarized_test_images(data, seed, settings["test_images"], device)
    numbers = evaluate_model(vae, x, settings["ll_k"], settings["bound_k"], seed)
    record = {"model": model_name, **state["settings"], "device": str(device), **numbers}
    log.info(
        "%s", {key: value for key, value in record.items() if key != "posterior_mean_variances"}
    )
    write_json(result, record)


@stage
def evaluation_tables(
    evaluations,
    histories,
    timings,
    evaluation,
    evaluation_html,
    burda,
    burda_markdown,
    burda_html,
    history,
    training_times,
    model_names,
    log_file,
):
    """C4: every model's evaluation in one table, beside Burda et al.'s Table 1."""
    from riwae import tables

    log = start_log(log_file)
    table, long_histories = tables.evaluation_table(evaluations, histories)
    comparison = tables.burda_comparison(table)
    write_csv(evaluation, table)
    write_text(evaluation_html, frame_page(table, "Every model on the test set"))
    write_csv(history, long_histories)
    write_csv(training_times, tables.training_times(model_names, timings))
    write_csv(burda, comparison)
    markdown = tables.burda_markdown(comparison)
    write_text(burda_markdown, markdown)
    title = "Our burda1 and burda2 models beside Burda et al.'s Table 1 (test NLL)"
    write_text(burda_html, markdown_page(markdown, title))
    log.info("evaluation:\n%s\n\n%s", table.to_string(index=False), markdown)


@stage
def training_figures(evaluation, history, curves, curves_pdf, bounds, bounds_pdf, style, log_file):
    import pandas as pd

    from riwae.plots import bound_vs_k, learning_curves, save_figure

    log = start_log(log_file)
    # The models as trained from the first seed; the other seeds' numbers are in the tables.
    table = pd.read_csv(evaluation)
    table = table[table.model == table.base_model]
    histories = pd.read_csv(history)
    histories = histories[histories.model.isin(table.model)]
    save_figure(learning_curves(histories, style), [curves, curves_pdf], style["dpi"])
    save_figure(bound_vs_k(table, style), [bounds, bounds_pdf], style["dpi"])
    log.info("wrote the learning curves and the bound-against-k figure")


@stage
def reconstruct(
    data,
    models,
    arrays,
    metric,
    metric_over_seeds,
    metric_html,
    settings,
    model_names,
    seed,
    threads,
    log_file,
):
    """C2: decodes of q and q_IW draws for Figure 2, and the metric over the test set for
    every trained 2D model, and over its seeds."""
    import numpy as np
    import pandas as pd
    import torch

    from riwae.data import binarized_test_images, chosen_images
    from riwae.reconstruct import decode_means, q_and_qiw_draws, reconstruction_metric
    from riwae.tables import reconstruction_over_seeds
    from riwae.train import load_model, model_name

    log = start_log(log_file)
    torch.set_num_threads(threads)
    test = binarized_test_images(data, seed)
    k = settings["reconstruction_k"]
    indices = torch.tensor(chosen_images(settings["reconstruction_digits"], len(test), seed))
    rows, figure_arrays = [], {}
    for name, path in zip(model_names, models, strict=True):
        model, state = load_model(path)
        numbers = reconstruction_metric(model, test, k, settings["metric_draws"], seed)
        trained = {"base_model": model_name(state["settings"]), "seed": state["settings"]["seed"]}
        rows += [
            {"model": name, **trained, "k": k, "test_images": len(test), **row} for row in numbers
        ]
        if name == settings["reconstruction_model"]:
            generator = torch.Generator().manual_seed(seed)
            z_q, z_qiw = q_and_qiw_draws(
                model, test[indices], settings["reconstruction_draws"], k, generator
            )
            figure_arrays = {
                "real": test[indices].reshape(-1, 28, 28).numpy(),
                "from_q": decode_means(model, z_q).transpose(0, 1).numpy(),
                "from_qiw": decode_means(model, z_qiw).transpose(0, 1).numpy(),
                "indices": indices.numpy(),
                "model": np.array(name),
            }
    table = pd.DataFrame(rows)
    summary = reconstruction_over_seeds(table)
    log.info("reconstruction metric over the test set:\n%s", table.to_string(index=False))
    log.info("over seeds:\n%s", summary.to_string(index=False))
    write_csv(metric, table)
    write_csv(metric_over_seeds, summary)
    title = "Decodes of draws from q and from q_IW over the test set (mean over seeds)"
    write_text(metric_html, frame_page(summary, title))
    write_npz(arrays, figure_arrays)


@stage
def reconstruction_figure(arrays, png, pdf, style, log_file):
    from riwae.plots import reconstructions, save_figure

    log = start_log(log_file)
    figure_arrays = read_npz(arrays)
    figure = reconstructions(
        figure_arrays["real"], figure_arrays["from_q"], figure_arrays["from_qiw"], style
    )
    save_figure(figure, [png, pdf], style["dpi"])
    log.info("wrote %s", png)


@stage
def digit_posteriors(data, model, arrays, settings, ks, seed, threads, log_file):
    """True posteriors and q_IW of test digits under one 2D model, each on its own grid."""
    import torch

    from riwae.data import binarized_test_images, chosen_images
    from riwae.posterior import digit_posterior_arrays, flatten_digits
    from riwae.train import load_model

    log = start_log(log_file)
    torch.set_num_threads(threads)
    test = binarized_test_images(data, seed)
    indices = chosen_images(settings["posterior_digits"], len(test), seed)
    images = test[indices].double()
    digits = digit_posterior_arrays(
        load_model(model)[0].double(),
        images,
        indices,
        ks,
        settings["posterior_grid_limit"],
        settings["posterior_grid_size"],
        settings["posterior_sample_sets"],
        torch.Generator().manual_seed(seed),
    )
    write_npz(arrays, flatten_digits(digits))
    log.info("posteriors of test images %s on their grids", indices)


@stage
def digit_posteriors_figure(arrays, png, pdf, ks, style, model_name, log_file):
    from riwae.plots import digit_posteriors, save_figure
    from riwae.posterior import unflatten_digits

    log = start_log(log_file)
    digits = unflatten_digits(read_npz(arrays))
    title = f"{model_name}: true posterior and $q_{{IW}}$ of test digits"
    save_figure(digit_posteriors(digits, ks, title, style), [png, pdf], style["dpi"])
    log.info("wrote %s", png)


@stage
def latent_space(data, model, arrays, settings, seed, threads, log_file):
    """The 2D latent space of one model: posterior means of the test images, and decodes
    over the region they cover."""
    import torch

    from riwae.data import binarized_test_images, load_mnist
    from riwae.reconstruct import latent_space_arrays
    from riwae.train import load_model

    log = start_log(log_file)
    torch.set_num_threads(threads)
    x = binarized_test_images(data, seed)
    labels = load_mnist(data)["test_labels"]
    space = latent_space_arrays(load_model(model)[0], x, labels, settings["manifold_size"])
    write_npz(arrays, space)
    log.info("latent region %s", space["extent"])


@stage
def latent_space_figure(arrays, png, pdf, style, model_name, log_file):
    from riwae.plots import latent_space, save_figure

    log = start_log(log_file)
    space = read_npz(arrays)
    figure = latent_space(
        space["means"],
        space["labels"],
        space["manifold"],
        tuple(space["extent"]),
        f"{model_name}: the 2D latent space",
        style,
    )
    save_figure(figure, [png, pdf], style["dpi"])
    log.info("wrote %s", png)


@stage
def appendix(arrays, settings, seed, log_file):
    """C5: SVI and W-SVI fits to the trimodal 1D posterior, and q_IW samples of each."""
    from riwae.appendix import appendix_arrays

    log = start_log(log_file)
    fits = appendix_arrays(
        settings["k"],
        settings["steps"],
        settings["sample_sets"],
        settings["lr"],
        settings["draws"],
        seed,
    )
    write_npz(arrays, fits)
    for key in sorted(k for k in fits if k.endswith("_q")):
        log.info("%s: mean %.3f, log-variance %.3f", key, *fits[key])


@stage
def appendix_figure(arrays, png, pdf, style, log_file):
    from riwae.plots import appendix_1d, save_figure

    log = start_log(log_file)
    save_figure(appendix_1d(read_npz(arrays), style), [png, pdf], style["dpi"])
    log.info("wrote %s", png)


@stage
def manifest(data, models, artifacts, manifest, config, log_file):
    from riwae.data import ARRAY_SHA256
    from riwae.provenance import build_manifest

    log = start_log(log_file)
    record = build_manifest(config, Path(manifest).parent, data, models, artifacts)
    record["data"]["arrays_sha256"] = ARRAY_SHA256  # verified whenever the data are loaded
    write_json(manifest, record)
    log.info("manifest of %d artifacts, commit %s", len(record["artifacts"]), record["git"])


@stage
def notebook(notebook, manifest, html, log_file):
    """The exploration notebook executed on the run folder, as HTML."""
    run_dir = Path(html).parent
    command = [
        sys.executable,  # the environment that runs Snakemake has nbconvert
        *("-m", "jupyter", "nbconvert", "--to", "html", "--execute", notebook),
        *("--output-dir", str(run_dir), "--output", Path(html).stem),
    ]
    environment = {**os.environ, "RIWAE_RUN_DIR": str(run_dir.resolve())}
    with open(log_file, "w") as output:
        result = subprocess.run(command, env=environment, stdout=output, stderr=output)
    if result.returncode != 0:
        raise WorkflowError(
            f"Executing {notebook} on {run_dir} failed; its output is in {log_file}."
        )


@stage
def run_config(resolved, config, log_file):
    """The run's config as Snakemake resolved it: every config file and --config merged."""
    import yaml

    log = start_log(log_file)
    write_text(resolved, yaml.safe_dump(config, sort_keys=False))
    log.info("wrote %s", resolved)


@stage
def html_report(report, resolved_config, snakefile, log_file):
    """Snakemake's self-contained HTML report of the run, made by Snakemake itself from the
    run's resolved config. A report that cannot be made fails the stage, naming the cause."""
    command = [
        *(sys.executable, "-m", "snakemake", "--snakefile", snakefile),
        *("--configfile", resolved_config, "--report", report, "--nolock"),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    Path(log_file).write_text(f"{' '.join(command)}\n\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        raise WorkflowError(
            f"Could not write the report {report}: {' '.join(lines[-4:])} (the whole output of "
            f"`snakemake --report` is in {log_file})."
        )


@stage
def estimator_comparison(
    evaluation, reconstruction, posteriors, table, markdown, html, models_2d, log_file
):
    """Models that differ only in their gradient estimator, side by side (riwae.tables)."""
    import pandas as pd

    from riwae.posterior import unflatten_digits
    from riwae.tables import estimator_comparison, estimator_markdown

    log = start_log(log_file)
    metric = (
        pd.read_csv(reconstruction)
        if reconstruction
        else pd.DataFrame(columns=["model", "source", "log_p_x_given_z"])
    )
    digits = {
        name: unflatten_digits(read_npz(path))
        for name, path in zip(models_2d, posteriors, strict=True)
    }
    compared = estimator_comparison(pd.read_csv(evaluation), metric, digits)
    text = estimator_markdown(compared)
    write_csv(table, compared)
    write_text(markdown, text)
    write_text(html, frame_page(compared, "Gradient estimators compared"))
    log.info("gradient estimators compared:\n%s", text)


@stage
def exact_loglik(
    data,
    models,
    evaluations,
    table,
    markdown,
    html,
    per_image,
    arrays,
    settings,
    test_images,
    model_names,
    seed,
    device,
    threads,
    log_file,
):
    """log p(x) of every 2D model on the evaluation's test images, by quadrature
    (riwae.exact), beside the k = 5000 estimate of the evaluate stage."""
    import json
    import time

    import pandas as pd
    import torch

    from riwae.data import binarized_test_images
    from riwae.exact import (
        ModelJoint,
        exact_log_evidence,
        per_image_table,
        posterior_panel_arrays,
        summary_markdown,
        summary_table,
    )
    from riwae.posterior import flatten_digits
    from riwae.train import load_model

    log = start_log(log_file)
    torch.set_num_threads(threads)
    # The evaluate stage's images, in float64 as the model: the integrand's sums (784 pixel
    # terms per point, then the quadrature's) decide the result's last digits, and float64
    # keeps them whatever the precision of float32 matrix products.
    x = binarized_test_images(data, seed, test_images, device).double()
    tables, panels = [], []
    for name, model_path, evaluation_path in zip(model_names, models, evaluations, strict=True):
        joint = ModelJoint(load_model(model_path, device)[0].double(), x)
        start = time.perf_counter()
        exact = exact_log_evidence(
            joint,
            coarse_limit=settings["coarse_limit"],
            coarse_size=settings["coarse_size"],
            zoom_size=settings["zoom_size"],
            mass_outside=settings["mass_outside"],
            grid_size=settings["grid_size"],
            max_grid_size=settings["max_grid_size"],
            tolerance=settings["tolerance"],
        )
        log.info("%s: %d images by quadrature in %.1f s", name, len(x), time.perf_counter() - start)
        evaluation = json.loads(Path(evaluation_path).read_text())
        try:
            model_table = per_image_table(
                name, exact, evaluation["log_likelihood_per_image"], evaluation["ll_k"]
            )
        except ValueError as error:  # an evaluation of other images than these
            raise DataError(str(error)) from None
        tables.append(model_table)
        shown = posterior_panel_arrays(
            joint, model_table, settings["shown_images"], settings["figure_grid_size"]
        )
        panels += [{**panel, "model": name} for panel in shown]
    every_image = pd.concat(tables, ignore_index=True)
    summary = summary_table(every_image)
    write_csv(per_image, every_image)
    write_csv(table, summary)
    text = summary_markdown(summary)
    write_text(markdown, text)
    write_text(html, frame_page(summary, "Exact log p(x) of the 2D models and the estimate"))
    write_npz(arrays, flatten_digits(panels))
    log.info("\n%s", text)


@stage
def exact_loglik_figure(per_image, arrays, png, pdf, style, log_file):
    import pandas as pd

    from riwae.plots import exact_loglik, save_figure
    from riwae.posterior import unflatten_digits

    log = start_log(log_file)
    panels = unflatten_digits(read_npz(arrays))
    figure = exact_loglik(pd.read_csv(per_image), panels, style)
    save_figure(figure, [png, pdf], style["dpi"])
    log.info("wrote %s", png)


@stage
def gradient_snr(data, model, table, settings, seed, device, model_name, threads, log_file):
    """The signal-to-noise ratio of the encoder's and the decoder's gradient of the IWAE
    bound at a trained model's weights, for each k and estimator (riwae.snr)."""
    import time

    import pandas as pd
    import torch

    from riwae.data import binarized_test_images
    from riwae.snr import gradient_snr
    from riwae.train import load_model

    log = start_log(log_file)
    torch.set_num_threads(threads)
    vae, _ = load_model(model, device)
    x = binarized_test_images(data, seed, settings["images"], device)
    frames = []
    for estimator in settings["estimators"]:
        start = time.perf_counter()
        frames.append(
            gradient_snr(
                vae, x, settings["k"], "iwae", estimator, repeats=settings["repeats"], seed=seed
            )
        )
        log.info("%s, %s: %.1f s", model_name, estimator, time.perf_counter() - start)
    result = pd.concat(frames, ignore_index=True)
    result.insert(0, "model", model_name)
    log.info("\n%s", result.to_string(index=False))
    write_csv(table, result)


@stage
def gradient_snr_tables(tables, table, markdown, html, slopes, log_file):
    """Every model's gradient SNR in one table, its markdown and the slopes in k."""
    import pandas as pd

    from riwae.snr import snr_markdown, snr_slopes

    log = start_log(log_file)
    every = pd.concat([pd.read_csv(path) for path in tables], ignore_index=True)
    text = snr_markdown(every)
    write_csv(table, every)
    write_csv(slopes, snr_slopes(every))
    write_text(markdown, text)
    write_text(html, markdown_page(text, "Gradient signal-to-noise ratio against k"))
    log.info("\n%s", text)


@stage
def gradient_snr_figure(table, png, pdf, style, log_file):
    import pandas as pd

    from riwae.plots import gradient_snr, save_figure

    log = start_log(log_file)
    save_figure(gradient_snr(pd.read_csv(table), style), [png, pdf], style["dpi"])
    log.info("wrote %s", png)


# The settings of config["exact"] that riwae.exact.exact_log_evidence takes.
QUADRATURE_SETTINGS = (
    "coarse_limit",
    "coarse_size",
    "zoom_size",
    "mass_outside",
    "grid_size",
    "max_grid_size",
    "tolerance",
)


@stage
def through_qiw(
    data,
    models,
    reconstruction,
    per_image,
    table,
    markdown,
    html,
    settings,
    test_images,
    exact_settings,
    model_names,
    seed,
    device,
    threads,
    log_file,
):
    """Each 2D model's q and q_IW measured exactly (riwae.through_qiw): log p(x), the ELBO,
    KL(q || p(z|x)) per image, L_IWAE - ELBO at its sample budget, q's area against the
    posterior's, and the reconstruction gain; over every seed."""
    import pandas as pd
    import torch

    from riwae.bounds import Objective
    from riwae.data import binarized_test_images
    from riwae.exact import ModelJoint, exact_log_evidence
    from riwae.through_qiw import model_summary, objectives_markdown, over_seeds, per_image_table
    from riwae.train import load_model, model_name

    log = start_log(log_file)
    torch.set_num_threads(threads)
    x = binarized_test_images(data, seed, test_images, device).double()
    gain = pd.read_csv(reconstruction).set_index(["model", "source"]).log_p_x_given_z
    images, rows = [], []
    for name, path in zip(model_names, models, strict=True):
        model, state = load_model(path, device)
        trained = state["settings"]
        objective = Objective(
            trained["objective"], trained["k"], trained.get("m"), trained.get("beta")
        )
        joint = ModelJoint(model.double(), x)
        quadrature = {key: exact_settings[key] for key in QUADRATURE_SETTINGS}
        exact = exact_log_evidence(joint, **quadrature)
        frame = per_image_table(
            joint, exact, objective.draws, settings["iwae_sets"], seed, settings["nodes"]
        )
        images.append(frame.assign(model=name))
        rows.append(
            {
                "model": name,
                "base_model": model_name(trained),
                "seed": trained["seed"],
                **model_summary(frame),
                "qiw_reconstruction_gain": gain[name, "q_IW - q"],
            }
        )
        log.info("%s: %s", name, rows[-1])
    summary = over_seeds(pd.DataFrame(rows))
    text = objectives_markdown(summary)
    write_csv(per_image, pd.concat(images, ignore_index=True))
    write_csv(table, summary)
    write_text(markdown, text)
    write_text(html, markdown_page(text, "Each objective's q and q_IW on the 2D models"))
    log.info("\n%s", text)


@stage
def through_qiw_posteriors(
    data, models, arrays, settings, figure_settings, model_names, seed, log_file
):
    """One test digit's posterior with q and q_IW under each 2D model (the first digit of
    the digit_posteriors stage), for the objectives figure."""
    import torch

    from riwae.data import binarized_test_images, chosen_images
    from riwae.posterior import digit_posterior_arrays, flatten_digits
    from riwae.train import load_model

    log = start_log(log_file)
    test = binarized_test_images(data, seed)
    index = chosen_images(1, len(test), seed)
    digits = []
    for name, path in zip(model_names, models, strict=True):
        (digit,) = digit_posterior_arrays(
            load_model(path)[0].double(),
            test[index].double(),
            index,
            settings["figure_k"],
            figure_settings["posterior_grid_limit"],
            figure_settings["posterior_grid_size"],
            figure_settings["posterior_sample_sets"],
            torch.Generator().manual_seed(seed),
        )
        digits.append({**digit, "label": name})
    write_npz(arrays, flatten_digits(digits))
    log.info("test image %s under %s", index[0], ", ".join(model_names))


@stage
def through_qiw_figure(arrays, png, pdf, ks, style, log_file):
    from riwae.plots import digit_posteriors, save_figure
    from riwae.posterior import unflatten_digits

    log = start_log(log_file)
    digits = unflatten_digits(read_npz(arrays))
    title = f"test image {int(digits[0]['index'])}: q and q_IW under each objective"
    save_figure(digit_posteriors(digits, ks, title, style), [png, pdf], style["dpi"])
    log.info("wrote %s", png)
