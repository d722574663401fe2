"""The options core: one declaration per field, checked strictly, errors in the caller's terms;
the click options built from it; the one YAML loader."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click
import pytest
from click.testing import CliRunner
from pydantic import ValidationError, field_validator

from geoseg.cli._options import from_flags, options
from geoseg.errors import ConfigError, MissingFileError
from geoseg.options import KEYWORDS, Flags, InFile, Names, Options, option
from geoseg.yamlfile import read_yaml


class Tiling(Options):
    tile_size: int = option(512, "Tile core size in pixels.", ge=16, le=4096)
    overlap: int = option(64, "Context pixels around each core.", ge=0)
    backend: Literal["auto", "torch", "onnx"] = option("auto", "Inference engine.")
    min_area_ha: float | None = option(None, "Smallest polygon kept, in hectares.", flag="--min-area", ge=0)
    bands: Names | None = option(None, "Band names or 1-based indices.")
    tta: bool = option(False, "Average over the 8 rotations and flips.")

    @field_validator("overlap")
    @classmethod
    def _less_than_tile(cls, v: int, info: object) -> int:
        tile = getattr(info, "data", {}).get("tile_size", 512)
        if v >= tile:
            raise ValueError(f"must be in 0..{tile - 1}, got {v}")
        return v


def message(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(exc.value)


def test_defaults_and_strict_types() -> None:
    t = Tiling.build({})
    assert (t.tile_size, t.overlap, t.backend, t.bands, t.tta) == (512, 64, "auto", None, False)
    assert Tiling.build({"bands": "red,nir"}).bands == ("red", "nir")
    assert Tiling.build({"bands": ["red", "nir"]}).bands == ("red", "nir")
    assert Tiling.build({"min_area_ha": 1}).min_area_ha == 1.0  # an int is a number
    for bad, expected in [
        ({"tile_size": "512"}, "tile_size must be a whole number, got '512'"),
        ({"tile_size": True}, "tile_size must be a whole number, got True"),
        ({"tta": "yes"}, "tta must be true or false, got 'yes'"),
        ({"tile_size": 100000}, "tile_size must be in 16..4096, got 100000"),
        ({"overlap": -1}, "overlap must be at least 0, got -1"),
        ({"overlap": 600}, "overlap must be in 0..511, got 600"),
        ({"backend": "tensorrt"}, "backend must be one of auto, torch, onnx, got 'tensorrt'"),
    ]:
        with pytest.raises(ConfigError) as exc:
            Tiling.build(bad)
        assert message(exc) == expected


def test_unknown_key_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError) as exc:
        Tiling.build({"tile_sise": 256})
    assert message(exc).startswith(
        "unknown key 'tile_sise' (did you mean 'tile_size'?); known keys: tile_size"
    )


def test_frozen_and_replace() -> None:
    t = Tiling.build({"tile_size": 256})
    with pytest.raises(ValidationError):
        t.tile_size = 128  # type: ignore[misc]
    assert t.replace(overlap=32).overlap == 32
    with pytest.raises(ConfigError, match=r"overlap must be in 0\.\.255"):
        t.replace(overlap=300)


def test_keys_in_each_callers_terms(tmp_path: Path) -> None:
    bad = {"tile_size": 8}
    with pytest.raises(ConfigError) as exc:
        Tiling.build(bad, KEYWORDS)
    assert message(exc) == "tile_size must be in 16..4096, got 8"
    with pytest.raises(ConfigError) as exc:
        Tiling.build(bad, Flags())
    assert message(exc) == "--tile-size must be in 16..4096, got 8"
    with pytest.raises(ConfigError) as exc:
        Tiling.build({"min_area_ha": -2}, Flags())
    assert message(exc) == "--min-area must be at least 0, got -2"
    wf = tmp_path / "wf.yaml"
    with pytest.raises(ConfigError) as exc:
        Tiling.build(bad, InFile(wf, "steps[2]"))
    assert message(exc) == f"{wf}: steps[2].tile_size must be in 16..4096, got 8"
    assert exc.value.path == wf


def test_click_options_come_from_the_model() -> None:
    @click.command()
    @options(Tiling)
    def cmd(**kw: object) -> None:
        t = from_flags(Tiling, kw)
        click.echo(f"{t.tile_size} {t.overlap} {t.backend} {t.min_area_ha} {t.bands} {t.tta}")

    runner = CliRunner()
    out = runner.invoke(cmd, ["--help"]).output
    assert "--tile-size INTEGER" in out and "Tile core size in pixels." in out and "[default: 512]" in out
    assert "--min-area FLOAT" in out and "--tta" in out and "[auto|torch|onnx]" in out
    res = runner.invoke(cmd, [])
    assert res.output.strip() == "512 64 auto None None False"
    res = runner.invoke(cmd, ["--tile-size", "256", "--bands", "red,nir", "--tta", "--min-area", "0.5"])
    assert res.output.strip() == "256 64 auto 0.5 ('red', 'nir') True"
    res = runner.invoke(cmd, ["--tile-size", "8"])
    assert (
        isinstance(res.exception, ConfigError)
        and str(res.exception) == "--tile-size must be in 16..4096, got 8"
    )


def test_one_yaml_loader(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("defaults: &d {tile_size: 256, overlap: 32}\nstep:\n  <<: *d\n  overlap: 16\n")
    assert read_yaml(f)["step"] == {"tile_size": 256, "overlap": 16}  # merge key, then override
    f.write_text("a: 1\nb: 2\na: 3\n")
    with pytest.raises(ConfigError, match=r"a.yaml: not valid YAML: duplicate key 'a' \(line 3, column 1\)"):
        read_yaml(f)
    f.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: .*line 2"):
        read_yaml(f)
    f.write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        read_yaml(f)
    with pytest.raises(MissingFileError):
        read_yaml(tmp_path / "none.yaml")
