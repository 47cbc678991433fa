"""The ``train``, ``sample`` and ``toy-data`` commands, registered on the ``ganmetrics`` group.

Bad input raises ``GanMetricsError``; the group turns it into one line on stderr and exit code 2.
"""

from pathlib import Path

import click

from ..cli.options import shared_options
from ..config import RunConfig
from ..engine.runtime import resolve_device
from ..errors import GanMetricsError
from .losses import LOSSES
from .loop import TrainConfig, read_metrics, default_evaluator, load_generator, train, write_samples
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
              help="Also score IS at each evaluation; without it the network runs only as deep as --dims needs.")
@shared_options(only=("weights", "device", "resize", "dims"))
def train_command(data_dir, out_dir, loss, steps, batch_size, image_size, seed, eval_every, eval_samples,
                  lr, ngf, ndf, reference, inception_score, options: RunConfig):
    """Train a DCGAN on the images in DATA_DIR, scoring FID and IS as it goes (--device also
    runs the training)."""
    config = TrainConfig(
        data_dir=str(data_dir), out_dir=str(out_dir), loss=loss, steps=steps, batch_size=batch_size,
        image_size=int(image_size), seed=seed, eval_every=eval_every, eval_samples=eval_samples,
        device=options.device, lr=lr, ngf=ngf, ndf=ndf, reference=reference,
        metric_options={"weights": options.weights, "dims": options.dims, "resize": options.resize,
                        "inception_score": inception_score},
    )
    note = " [UNCALIBRATED weights: FID and IS values are not comparable with published ones]"

    def evaluator_factory(config, images):
        evaluator = default_evaluator(config, images)
        if not evaluator.calibrated:
            click.echo(f"scoring with weights {options.weights or 'found by the default search'}{note}")
        return evaluator

    last = train(config, evaluator_factory)
    calibrated = last.get("calibrated", False)  # rows written before the flag was recorded: unknown
    first = read_metrics(out_dir / "metrics.jsonl")[0]
    trend = "fell" if last["fid"] < first["fid"] else "did not fall"
    click.echo(f"FID {trend} from {first['fid']:.2f} (step {first['step']}) to {last['fid']:.2f} "
               f"(step {last['step']}){'' if calibrated else note}; run in {out_dir}")


@click.command("sample")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-n", "num", required=True, type=click.IntRange(min=1), help="Number of images.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the noise.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def sample_command(checkpoint, num, out_dir, seed, batch_size, device):
    """Write NUM generated images of a training CHECKPOINT as OUT/00000.png, ..."""
    if checkpoint.is_dir():
        raise GanMetricsError(f"{checkpoint} is a folder; pass the checkpoint file, e.g. {checkpoint / 'checkpoint.pt'}")
    generator = load_generator(checkpoint, resolve_device(device))
    paths = write_samples(generator, num, out_dir, seed=seed, batch_size=batch_size)
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
