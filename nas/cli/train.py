"""``nas train``: train the proxy of one genotype."""

from __future__ import annotations

from pathlib import Path

import typer

from nas.cli.common import app, console, err_console, resolve_path
from nas.errors import InputError


@app.command()
def train(
    arch: str = typer.Option(..., "--arch", help="Genotype YAML (shipped references by name, e.g. mixnet_s.yaml)."),
    space: str = typer.Option(None, "--space", help="Train with this search space's proxy recipe (data set, "
                              "resolution, width, epochs, batch, optimizer, ...), so the accuracy compares with its "
                              "trials'; other options override single settings. The proxy's head has the data "
                              "set's classes (the target's class count is for its costs only)."),
    data: str = typer.Option(None, "--data", help="A built-in data set, 'digits' (the default without --space) or "
                             "'mnist5k', or the local path of a CIFAR-10/100 copy (python pickle format), an "
                             "ImageFolder tree or an .npz file (nothing is downloaded)."),
    dataset_format: str = typer.Option(
        None, "--dataset-format", help="cifar10 | cifar100 | imagefolder | npz (default: guessed from the path)."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Epochs (default: the proxy recipe's length)."),
    steps: int = typer.Option(None, "--steps", min=1, help="Optimizer steps instead of epochs (default: the proxy "
                              "recipe's length)."),
    resolution: int = typer.Option(None, "--resolution", min=4, help="Proxy input resolution."),
    width: float = typer.Option(None, "--width", min=0.01, help="Proxy width multiplier."),
    batch_size: int = typer.Option(None, "--batch-size", min=2, help="Training batch size."),
    lr: float = typer.Option(None, "--lr", min=0.0, help="Peak learning rate."),
    optimizer: str = typer.Option(None, "--optimizer", help="sgd | adamw."),
    subsample: int = typer.Option(None, "--subsample", min=2, help="Keep at most this many training images."),
    seed: int = typer.Option(None, "--seed", help="Training seed (init, order, augmentation)."),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N."),
    threads: int = typer.Option(
        None, "--threads", min=1, help="torch CPU threads (proxies this small run as fast on 1, and far better "
                                       "than on several when other processes share the cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object; no progress bar."),
    save: Path = typer.Option(None, "--save", help="Directory for weights.pt, genotype.yaml and train.json."),
) -> None:
    """Train the proxy network of a genotype and report validation accuracy and speed."""
    import dataclasses
    import json

    from nas.config import with_overrides
    from nas.genotype import load
    from nas.train import TrainConfig, check_config, check_memory, load_data, resolve_device

    g = load(resolve_path(arch))
    sp = None
    if space is not None:
        from nas.space import load_space

        sp = load_space(resolve_path(space))
    if epochs is not None and steps is not None:
        raise InputError("--steps: give the length as --epochs or as --steps, not both")
    overrides = {"epochs": epochs, "steps": steps, "resolution": resolution, "width": width,
                 "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "subsample": subsample, "seed": seed,
                 "device": device}
    base = sp.proxy if sp is not None else TrainConfig()
    cfg = with_overrides(base, **{k: v for k, v in overrides.items() if v is not None})
    if optimizer is not None and optimizer not in ("sgd", "adamw"):
        raise InputError(f"--optimizer: {optimizer!r} is not one of sgd, adamw")
    from nas.config import EMBEDDED_DATASETS

    if data in EMBEDDED_DATASETS:
        cfg = dataclasses.replace(cfg, dataset=data, path=None)
    elif data is not None:
        if not Path(data).expanduser().exists():
            raise InputError(f"--data: {data!r} is neither a built-in data set ({', '.join(EMBEDDED_DATASETS)}) nor "
                             "an existing path; CIFAR-10/100 (python pickle format), ImageFolder trees and .npz "
                             "arrays load from a local copy: --data PATH (e.g. PATH/cifar-10-batches-py)")
        if dataset_format is not None and dataset_format not in ("cifar10", "cifar100", "imagefolder", "npz"):
            raise InputError(f"--dataset-format: {dataset_format!r} is not one of cifar10, cifar100, imagefolder, npz")
        cfg = dataclasses.replace(cfg, dataset=dataset_format or "auto", path=data)
    if save is not None and save.exists() and not save.is_dir():
        raise InputError(f"{save}: --save needs a directory, this is a file")
    check_config(cfg)
    check_memory(g, cfg, source=str(arch))  # before any data is loaded
    if threads:
        import torch

        torch.set_num_threads(threads)
    # Data errors surface before any progress output; train() then finds the data in the per-process cache.
    load_data(cfg, g.in_chans, resolve_device(cfg.device))

    num_classes = sp.target.num_classes if sp is not None else None
    # the proxy's head has the data set's classes; the target's class count is for its costs only
    result = _train_with_progress(g, cfg, quiet=as_json, num_classes=None)
    target = _target_cost(g if sp is None else g.replace(resolution=sp.target.resolution), num_classes or 1000)
    out = {"accuracy": result.accuracy, "best_accuracy": result.best_accuracy, "train_s": result.train_s,
           "images_per_s": result.images_per_s, "epochs": result.epochs_run, "steps": result.steps_run,
           "params_proxy": result.params,
           **target, "name": g.name, "hash": g.hash, "proxy_hash": result.genotype.hash,
           "resolution": cfg.resolution, "width": cfg.width, "dataset": cfg.dataset, "device": result.device,
           "stopped_early": result.stopped_early, "diverged": result.diverged, "history": result.history,
           "space": sp.name if sp is not None else None, "proxy": dataclasses.asdict(cfg)}
    if save is not None:
        _save_training(save, result, out)
    if as_json:
        typer.echo(json.dumps(out))
    else:
        recipe = (f"{sp.name}'s proxy: " if sp is not None else "") + (
            f"{cfg.dataset} at {cfg.resolution} px, width {cfg.width:g}")
        console.print(f"{g.name or 'genotype'}: val accuracy {result.accuracy:.2%} (best {result.best_accuracy:.2%}) "
                      f"after {result.steps_run} steps ({result.epochs_run} reports), {result.train_s:.1f} s, "
                      f"{result.images_per_s:,.0f} img/s "
                      f"on {result.device}; {recipe}; proxy {result.params:,} params"
                      + (f"; saved to {save}" if save else ""), highlight=False)


def _train_with_progress(g, cfg, quiet: bool, num_classes: int | None = None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nas.config import planned_reports
    from nas.train import train as run_training

    if quiet:
        return run_training(g, cfg, num_classes=num_classes)
    cols = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"))
    with Progress(*cols, console=err_console, transient=False) as progress:
        task = progress.add_task("training", total=planned_reports(cfg), info="loading data")

        def report(epoch: int, m: dict) -> None:
            progress.update(task, completed=epoch, info=f"loss {m['train_loss']:.3f}  val {m['val_accuracy']:.2%}  "
                                                        f"{m['images_per_s']:,.0f} img/s")

        try:
            return run_training(g, cfg, num_classes=num_classes, callback=report)
        except InputError:
            progress.update(task, visible=False)  # bad input: its one error line, not a bar stuck at "loading"
            raise


def _target_cost(g, num_classes: int = 1000) -> dict:
    """Params/MACs of the target genotype (what the search optimises; with --space at its target's resolution
    and classes, as its trials are costed), not of the proxy."""
    from nas.cost.macs import count

    c = count(g, num_classes=num_classes)
    return {"params": c.params, "macs": c.macs}


def _save_training(out_dir: Path, result, info: dict) -> None:
    """weights.pt (proxy state_dict), genotype.yaml (the proxy genotype the weights fit), train.json."""
    import torch

    from nas.io import atomic_open, atomic_write, atomic_write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(out_dir / "weights.pt", "wb") as f:
        torch.save({k: v.detach().cpu() for k, v in result.model.state_dict().items()}, f)
    atomic_write(out_dir / "genotype.yaml", result.genotype.to_yaml())
    atomic_write_json(out_dir / "train.json", info, indent=1)
