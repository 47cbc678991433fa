"""The ``train``, ``sample`` and ``toy-data`` commands, registered on the ``ganmetrics`` group.

Bad input raises ``GanMetricsError``; the group turns it into one line on stderr and exit code 2.
"""

import functools
from pathlib import Path

import click

from ..cli.options import shared_options
from ..config import RunConfig
from ..engine.runtime import resolve_device
from ..errors import GanMetricsError
from .losses import LOSSES
from .loop import TrainConfig, read_metrics, default_evaluator, load_trained_generator, train, write_samples
from .toydata import CLASS_SHAPES, write_toy_dataset


@click.command("train")
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: metrics.jsonl, checkpoint.pt, samples/, curves.png. An existing run there is resumed.")
@click.option("--loss", default="nonsaturating", show_default=True, type=click.Choice(list(LOSSES)))
@click.option("--steps", default=2000, show_default=True, type=click.IntRange(min=1), help="Generator updates.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--image-size", default="32", show_default=True, type=click.Choice(["32", "64"]))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--eval-every", default=500, show_default=True, type=click.IntRange(min=1),
              help="Steps between evaluations (also at step 0 and at the end).")
@click.option("--eval-samples", default=5000, show_default=True, type=click.IntRange(min=2),
              help="Generated images per evaluation.")
@click.option("--lr", default=None, type=float, help="Learning rate of both networks [default: the loss's own].")
@click.option("--ngf", default=64, show_default=True, type=click.IntRange(min=1), help="Generator width.")
@click.option("--ndf", default=64, show_default=True, type=click.IntRange(min=1), help="Discriminator width.")
@click.option("--reference", default=None,
              help="What FID compares with: images or a statistics .npz [default: the training images as resized].")
@click.option("--inception-score/--no-inception-score", default=True, show_default=True,
              help="Also score IS at each evaluation.")
@click.option("--conditional", is_flag=True,
              help="Class-conditional GAN on DATA_DIR's class subfolders; also per-class FID and intra_fid.")
@click.option("--infogan", default=None, metavar="CATEGORIES,CONTINUOUS",
              help="InfoGAN codes: CATEGORIES,CONTINUOUS, e.g. 10,2.")
@shared_options(only=("weights", "device", "encoder_options"))
def train_command(data_dir, out_dir, loss, steps, batch_size, image_size, seed, eval_every, eval_samples,
                  lr, ngf, ndf, reference, inception_score, conditional, infogan, options: RunConfig):
    """Train a DCGAN on the images in DATA_DIR, scoring FID and IS as it goes (--device also
    runs the training)."""
    config = TrainConfig(
        data_dir=str(data_dir), out_dir=str(out_dir), loss=loss, steps=steps, batch_size=batch_size,
        image_size=int(image_size), seed=seed, eval_every=eval_every, eval_samples=eval_samples,
        device=options.device, lr=lr, ngf=ngf, ndf=ndf, reference=reference,
        metric_options={"weights": dict(options.weights), "encoders": {name: dict(o) for name, o in options.encoders.items()},
                        "inception_score": inception_score},
        conditional=conditional, infogan=infogan,
    )
    note = " [UNCALIBRATED weights: FID and IS values are not comparable with published ones]"

    told = False  # a conditional run builds one evaluator a class besides the first: say it once

    def evaluator_factory(config, images):
        nonlocal told
        evaluator = default_evaluator(config, images)
        if not evaluator.calibrated and not told:
            weights = ", ".join(map(str, options.weights.values())) or "found by the default search"
            click.echo(f"scoring with weights {weights}{note}")
            told = True
        return evaluator

    last = train(config, evaluator_factory)
    calibrated = last.get("calibrated", False)  # rows written before the flag was recorded: unknown
    first = read_metrics(out_dir / "metrics.jsonl")[0]
    trend = "fell" if last["fid"] < first["fid"] else "did not fall"
    click.echo(f"FID {trend} from {first['fid']:.2f} (step {first['step']}) to {last['fid']:.2f} "
               f"(step {last['step']}){'' if calibrated else note}; run in {out_dir}")


@click.command("sample")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-n", "num", type=click.IntRange(min=1),
              help="Number of images (of a conditional checkpoint: the classes in turn, unless --class).")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--class", "label", type=int, default=None, help="Only this class (its index) of a conditional checkpoint.")
@click.option("--per-class", type=click.IntRange(min=1), default=None,
              help="This many images of every class of a conditional checkpoint, in OUT/<class folder name>/.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the noise (and of InfoGAN's codes).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def sample_command(checkpoint, num, out_dir, label, per_class, seed, batch_size, device):
    """Write NUM generated images of a training CHECKPOINT as OUT/00000.png, ... (--per-class
    NUM: NUM of each class as OUT/<class>/00000.png, ...)."""
    if checkpoint.is_dir():
        raise GanMetricsError(f"{checkpoint} is a folder; pass the checkpoint file, e.g. {checkpoint / 'checkpoint.pt'}")
    if (num is None) == (per_class is None):
        raise GanMetricsError("pass either -n NUM or --per-class NUM")
    if label is not None and per_class:
        raise GanMetricsError("--class and --per-class exclude each other: --per-class writes every class")
    trained = load_trained_generator(checkpoint, resolve_device(device))
    classes = trained.classes
    if (label is not None or per_class) and not classes:
        option = "--class" if label is not None else "--per-class"
        raise GanMetricsError(f"{option} needs a conditional checkpoint; {checkpoint} was trained without --conditional")
    if label is not None and not 0 <= label < len(classes):
        names = ", ".join(f"{i} {name}" for i, name in enumerate(classes))
        raise GanMetricsError(f"--class {label} is out of range: {checkpoint} has {len(classes)} classes ({names})")
    if per_class:
        for index, name in enumerate(classes):
            write_samples(trained.generator, per_class, out_dir / name, seed, batch_size,
                          functools.partial(trained.draw_code, label=index))
        click.echo(f"wrote {per_class} images of each of {len(classes)} classes to {out_dir}")
        return
    paths = write_samples(trained.generator, num, out_dir, seed, batch_size,
                          functools.partial(trained.draw_code, label=label))
    click.echo(f"wrote {len(paths)} images to {out_dir}")


@click.command("toy-data")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "num", required=True, type=click.IntRange(min=1), help="Number of images.")
@click.option("--image-size", default=32, show_default=True, type=click.IntRange(min=8))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--classes", default=0, show_default=True, type=int,
              help=f"A labelled set of this many classes (2 to {len(CLASS_SHAPES)}), one shape each, in one "
                   "subfolder a class named after it (0: unlabelled).")
def toy_data_command(out_dir, num, image_size, seed, classes):
    """Render NUM seeded toy images (shapes on textured backgrounds) as OUT_DIR/00000.png, ...
    (with --classes: OUT_DIR/<shape>/NNNNN.png)."""
    write_toy_dataset(out_dir, num, image_size=image_size, seed=seed, classes=classes)
    where = f" in {classes} class folders ({', '.join(CLASS_SHAPES[:classes])})" if classes else ""
    click.echo(f"wrote {num} images{where} to {out_dir}")
