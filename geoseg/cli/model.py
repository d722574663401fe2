"""``geoseg model``: create, inspect and export checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("model")
def command() -> None:
    """Create, inspect and export model checkpoints."""


@command.command("init")
@click.option(
    "--arch", default="Unet", show_default=True, help="smp architecture (Unet, FPN, DeepLabV3Plus, ...)."
)
@click.option("--encoder", default="resnet18", show_default=True, help="smp encoder, or tu-NAME for timm.")
@click.option("--bands", default="4", show_default=True, help="Band count, or comma-separated band names.")
@click.option(
    "--classes", default="2", show_default=True, help="Class count, or comma-separated class names."
)
@click.option("--seed", default=0, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path))
def init(arch: str, encoder: str, bands: str, classes: str, seed: int, out: Path) -> None:
    """Write an untrained checkpoint (weights seeded, no download)."""
    from geoseg.classes import ClassInfo, default_colour
    from geoseg.files import check_writable
    from geoseg.inference import init_checkpoint, make_spec

    check_writable(out)
    band_arg: int | list[str] = int(bands) if bands.isdigit() else [b.strip() for b in bands.split(",")]
    if classes.isdigit():
        class_arg: int | list[ClassInfo] = int(classes)
    else:
        class_arg = [ClassInfo(i, n.strip(), default_colour(i)) for i, n in enumerate(classes.split(","))]
    spec = make_spec(arch, encoder, band_arg, class_arg)
    init_checkpoint(out, spec, seed=seed)
    click.echo(
        f"{out}: untrained {spec.arch}/{spec.encoder}, {len(spec.bands)} bands, {spec.n_classes} classes"
    )


@command.command("info")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--stac", "stac_item", type=click.Path(path_type=Path), default=None,
    help="Also write the checkpoint's STAC Item (Machine Learning Model extension) to this JSON file.",
)  # fmt: skip
def info(model: str, as_json: bool, stac_item: Path | None) -> None:
    """Show what a checkpoint holds (MODEL: a path or a catalog name)."""
    from geoseg.inference import ValueDomain, describe

    d = describe(model)
    if stac_item is not None:
        from geoseg.products import write_model_item

        write_model_item(model, stac_item)
        if not as_json:
            click.echo(f"{stac_item}: STAC Item (MLM) of {d['path']}")
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"{d['path']}\n  sha256     {d['sha256']}")
    click.echo(f"  model      {d['arch']} / {d['encoder']}  ({d['parameters'] / 1e6:.2f} M parameters)")
    click.echo(f"  bands      {', '.join(d['bands'])}")
    click.echo(f"  mean/std   {d['mean']} / {d['std']}")
    for c in d["classes"]:
        click.echo(f"  class {c['id']:>3}  {c['name']}  rgb{tuple(c['colour'])}")
    if d["zoom"] != 1:
        click.echo(f"  zoom       {d['zoom']:g} (predict resamples each tile by it for the model)")
    dom = d["domain"]
    if dom is None:
        click.echo(
            "  inputs     domain unknown (not recorded when it was trained): predict cannot check them"
        )
    else:
        click.echo(f"  inputs     {ValueDomain(**dom).describe()}")
        click.echo(
            "             per band 1st..99th percentile: "
            + ", ".join(f"{lo:.4g}..{hi:.4g}" for lo, hi in zip(dom["low"], dom["high"], strict=True))
        )
    prov = d["provenance"]
    if not prov.get("trained"):
        click.echo(f"  untrained  (seed {prov.get('seed')})")
        return
    click.echo(
        f"  trained    {prov.get('minutes')} min, geoseg {prov.get('geoseg_version')}, data {prov.get('data')}"
    )
    val = prov.get("metrics", {}).get("val", {})
    if val:
        click.echo(
            f"  validation accuracy {val.get('accuracy')}, mIoU {val.get('miou')}, kappa {val.get('kappa')}"
        )
    paper = prov.get("metrics", {}).get("paper")
    if paper:
        click.echo(
            f"  paper F1   {paper.get('f1')} (accuracy {paper.get('accuracy')}, {paper.get('tiles')} tiles)"
        )
    history = prov.get("history", [])
    if history:
        click.echo(f"  epochs     {len(history)} (use --json for the full history and config)")


@command.command("export-onnx")
@click.argument("model")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path))
def export_onnx_cmd(model: str, out: Path) -> None:
    """Export a checkpoint to ONNX (dynamic batch and size) for ONNX Runtime."""
    from geoseg.files import check_writable
    from geoseg.inference import export_onnx, load_checkpoint

    check_writable(out)
    export_onnx(load_checkpoint(model), out)
    click.echo(f"{out}: ONNX export of {model}")


@command.command("record-domain")
@click.argument("model")
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), default=None,
    help="Write the checkpoint with its domain here [default: in place; the weights are kept byte for byte].",
)  # fmt: skip
def record_domain_cmd(model: str, out: Path | None) -> None:
    """Measure MODEL's input value domain from its training data (named in its provenance)
    and record it in the checkpoint, so predict can check inputs against it."""
    from geoseg.files import check_writable
    from geoseg.training import record_domain

    if out is not None:
        check_writable(out)
    domain = record_domain(model, out)
    click.echo(f"{out or model}: {domain.describe()}")


@command.command("ship")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("name")
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The models folder [default: the package's geoseg/models/].",
)
@click.option("--replace", is_flag=True, help="Ship over a shipped model of that name (a retrained one).")
def ship(checkpoint: Path, name: str, into: Path | None, replace: bool) -> None:
    """Copy a trained CHECKPOINT into the shipped models as NAME.safetensors.

    Training writes into its output folder, never here; shipping is this step. It writes a
    model card stub (NAME.md) when there is none and prints the catalog entry to add to
    data_catalog.yaml (with --replace: the sha256 to update in the existing entry).
    """
    from geoseg.training import ship_model

    done = ship_model(checkpoint, name, into=into, replace=replace)
    click.echo(f"{done.checkpoint}: {checkpoint} shipped as {name} (sha256 {done.sha256})")
    if done.card_written:
        click.echo(f"{done.card}: a model card stub; fill in what the model is for and how it was chosen")
    else:
        click.echo(f"{done.card}: kept; update its numbers")
    click.echo(
        f"\nthe catalog entry for data_catalog.yaml ({'update its sha256' if replace else 'add it'}):\n"
    )
    click.echo(done.entry)
