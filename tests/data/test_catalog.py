"""The data catalog: the real catalog against the real data, strict validation, sha256, fetch, CLI."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from geoseg import data as catalog
from geoseg.cli import main
from geoseg.data import (
    Catalog,
    LabelSetEntry,
    ModelEntry,
    SceneEntry,
    TimeSeriesEntry,
    _paths,
    data_root,
    fetch,
    load_catalog,
    resolve,
)
from geoseg.errors import (
    CatalogError,
    ChecksumError,
    DataUnavailableError,
    MissingFileError,
    OutputError,
)
from geoseg.files import sha256_file

REPO = Path(__file__).resolve().parents[2]
DATASETS = ("amazon-s2-rgb", "nc-landsat7", "pucallpa-landsat", "brandenburg-s2l1c", "zion-landsat8")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the real catalog


@pytest.fixture(scope="module")
def real() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def real_root() -> Path:
    """The real data, found the way ``data_root`` finds it; skip only when it is truly absent."""
    root = data_root()
    if not all((root / d).is_dir() for d in DATASETS):
        pytest.skip(f"real data not found under {root}")
    return root


def test_real_catalog_loads(real: Catalog) -> None:
    assert real.path == REPO / "data_catalog.yaml"
    assert real.names() == [
        "amazon-s2-rgb", "nc-landsat7", "nc-landsat7-labels", "pucallpa-landsat",
        "brandenburg-s2l1c", "brandenburg-s2l1c-landuse", "brandenburg-s2l1c-ref",
        "zion-landsat8", "zion-landsat8-labels",
        "demo-synthetic", "forest-s2-rgb", "forest-s2-rgb-fast", "landcover-nc-landsat7",
    ]  # fmt: skip
    assert isinstance(real.get("amazon-s2-rgb"), LabelSetEntry)
    assert isinstance(real.get("nc-landsat7"), SceneEntry)
    assert isinstance(real.get("nc-landsat7-labels"), LabelSetEntry)
    assert isinstance(real.get("pucallpa-landsat"), TimeSeriesEntry)
    for entry in real:
        assert entry.source.url.startswith("https://")
        assert entry.source.licence and entry.source.citation


def test_every_real_entry_is_present(real: Catalog, real_root: Path) -> None:
    for entry in real:
        if isinstance(entry, catalog.ModelEntry):  # shipped in geoseg/models, not in the data root
            assert entry.present() and entry.checkpoint_path().parent == catalog.MODELS_DIR
            entry.verify()  # the catalog's sha256 matches the shipped checkpoint
            continue
        assert entry.missing_files(real_root) == []
        assert entry.present(real_root)
        assert entry.present()  # the default root is the same place


def test_every_real_file_is_catalogued(real: Catalog, real_root: Path) -> None:
    catalogued = {
        p for entry in real if not isinstance(entry, catalog.ModelEntry) for p in entry.file_paths(real_root)
    }
    on_disk = {p for d in DATASETS for p in (real_root / d).rglob("*") if p.is_file()}
    assert on_disk == catalogued
    assert len([p for p in on_disk if "amazon-s2-rgb" in p.parts]) == 113


def test_real_sha256_of_a_few_files(real: Catalog, real_root: Path) -> None:
    for name in ("nc-landsat7", "pucallpa-landsat"):
        real.get(name).verify(real_root)  # every file of these two
    amazon = real.get("amazon-s2-rgb", LabelSetEntry)
    for rec in amazon.files[:3] + amazon.files[-3:]:
        assert sha256_file(amazon.resolve(rec.path, real_root)) == rec.sha256


def test_real_verify_reports_progress(real: Catalog, real_root: Path) -> None:
    calls: list[tuple[int, int, str]] = []
    real.get("pucallpa-landsat").verify(real_root, progress=lambda d, t, p="": calls.append((d, t, p)))
    assert calls[0] == (0, 8, "") and calls[-1] == (8, 8, "2020.tif")


def test_amazon_pairs(real: Catalog, real_root: Path) -> None:
    amazon = real.get("amazon-s2-rgb", LabelSetEntry)
    assert amazon.split_names == ("training", "validation", "test")
    assert amazon.class_names() == {1: "forest", 2: "non-forest"}
    assert amazon.bands == ("red", "green", "blue")
    training = amazon.pairs("training", real_root)
    assert len(training) == 30 and len(amazon.pairs("validation", real_root)) == 15
    for image, mask in training:
        assert image.parent.name == "images" and mask.parent.name == "masks"
        assert image.name.removesuffix(".tiff") == mask.name.removesuffix(".png")
    assert (
        real_root / "amazon-s2-rgb/training/images/Amazon_1110.tiff_25.tiff",
        real_root / "amazon-s2-rgb/training/masks/Amazon_1110.tiff_25.png",
    ) in training
    assert len(amazon.images("test", real_root)) == 15
    with pytest.raises(CatalogError, match="split 'test' of entry 'amazon-s2-rgb' has no masks"):
        amazon.pairs("test")
    with pytest.raises(CatalogError, match="no split 'train'; splits: training, validation, test"):
        amazon.pairs("train")


def test_amazon_pairs_need_the_files(real: Catalog, tmp_path: Path) -> None:
    amazon = real.get("amazon-s2-rgb", LabelSetEntry)
    with pytest.raises(MissingFileError, match="geoseg data fetch amazon-s2-rgb"):
        amazon.pairs("training", tmp_path)
    assert len(amazon.pairs("training", tmp_path, check=False)) == 30  # pure path arithmetic


def test_nc_scene_and_labels(real: Catalog, real_root: Path) -> None:
    scene = real.get("nc-landsat7", SceneEntry)
    assert scene.bands == ("blue", "green", "red", "nir", "swir1", "swir2")
    assert [p.name for p in scene.raster_paths(real_root)] == [
        f"lsat7_2000_{b}.tif" for b in (10, 20, 30, 40, 50, 70)
    ]
    assert scene.nodata is None  # band 7 is int16 with nodata -32768, the others -99999
    labels = real.get("nc-landsat7-labels", LabelSetEntry)
    assert real.get(labels.image or "", SceneEntry) is scene
    assert labels.label_raster_path(real_root) == real_root / "nc-landsat7/strata.tif"
    assert labels.polygons_path(real_root).is_file() and labels.class_field == "id"
    assert labels.class_names() == {
        1: "developed", 2: "agriculture", 3: "herbaceous", 4: "shrubland",
        5: "forest", 6: "water", 7: "sediment",
    }  # fmt: skip


def test_pucallpa_timeseries(real: Catalog, real_root: Path) -> None:
    ts = real.get("pucallpa-landsat", TimeSeriesEntry)
    assert ts.dates == tuple(str(y) for y in range(1985, 2021, 5))
    assert ts.bands == ("swir1", "nir", "red", "green") and ts.nodata == 0
    assert ts.dated_paths(real_root)[0] == ("1985", real_root / "pucallpa-landsat/1985.tif")
    one = ts.scene(2000)
    assert one.name == "pucallpa-landsat@2000" and one.raster_paths(real_root)[0].name == "2000.tif"
    assert one.present(real_root) and len(one.files) == 1


def test_brandenburg_entries_tell_the_truth(real: Catalog, real_root: Path) -> None:
    """13 band files at their own pixel sizes, as the catalog says; OSM polygons named by fclass."""
    import pyogrio
    import rasterio

    scene = real.get("brandenburg-s2l1c", SceneEntry)
    assert scene.bands is not None and scene.resolutions is not None and scene.mixed_resolutions
    assert scene.bands[1:4] == ("blue", "green", "red") and scene.bands[7] == "nir"
    for path, size in zip(scene.raster_paths(real_root), scene.resolutions, strict=True):
        with rasterio.open(path) as ds:
            assert ds.count == 1 and ds.res == (size, size) and ds.crs.to_epsg() == 32633, path.name
    with pytest.raises(CatalogError, match=r"different pixel sizes \(10, 20, 60\)"):
        resolve("brandenburg-s2l1c", "image")
    landuse = real.get("brandenburg-s2l1c-landuse", LabelSetEntry)
    assert (landuse.image, landuse.class_field, landuse.class_field_holds) == (
        "brandenburg-s2l1c",
        "fclass",
        "name",
    )
    names = set(pyogrio.read_dataframe(landuse.polygons_path(real_root), read_geometry=False)["fclass"])
    assert names == set(landuse.class_names().values())
    ref = real.get("brandenburg-s2l1c-ref", LabelSetEntry)
    assert ref.class_field_holds == "value" and ref.label_grid == "image"
    values = set(pyogrio.read_dataframe(ref.polygons_path(real_root), read_geometry=False)["cid"])
    assert values == set(ref.class_names())
    for name in ("brandenburg-s2l1c", "brandenburg-s2l1c-landuse", "brandenburg-s2l1c-ref"):
        real.get(name).verify(real_root)


def test_zion_entries_tell_the_truth(real: Catalog, real_root: Path) -> None:
    """Four uint16 band files with nodata 65535, stacked like nc-landsat7; NLCD on its own grid."""
    import rasterio

    scene = real.get("zion-landsat8", SceneEntry)
    assert scene.bands == ("blue", "green", "red", "nir") and not scene.mixed_resolutions
    for path in scene.raster_paths(real_root):
        with rasterio.open(path) as ds:
            assert (ds.dtypes[0], ds.nodata, ds.crs.to_epsg()) == ("uint16", 65535, 32612)
    found = resolve("zion-landsat8", "image")
    assert found.stacked and found.paths == tuple(scene.raster_paths(real_root))
    labels = real.get("zion-landsat8-labels", LabelSetEntry)
    assert labels.label_grid == "own" and labels.image == "zion-landsat8"
    with (
        rasterio.open(labels.label_raster_path(real_root)) as ds,
        rasterio.open(scene.raster_paths()[0]) as img,
    ):
        assert ds.crs.to_epsg() == 26912 and ds.shape != img.shape  # another grid, as label_grid says
        categories = ds.read(1, masked=True).compressed()
        assert set(categories.tolist()) == set(labels.class_names())
    sidecar = (labels.directory(real_root) / "nlcd.tif.aux.xml").read_text()
    for name in labels.class_names().values():
        assert f"<Category>{name.capitalize()}</Category>" in sidecar
    for name in ("zion-landsat8", "zion-landsat8-labels"):
        real.get(name).verify(real_root)


def test_get_unknown_and_wrong_kind(real: Catalog) -> None:
    with pytest.raises(CatalogError) as info:
        real.get("amazon")
    msg = str(info.value)
    assert "data_catalog.yaml" in msg and "'amazon'" in msg
    assert "amazon-s2-rgb, nc-landsat7, nc-landsat7-labels, pucallpa-landsat" in msg
    with pytest.raises(CatalogError, match="'nc-landsat7' is a scene, not a labelset"):
        real.get("nc-landsat7", LabelSetEntry)


# --------------------------------------------------------------------------- data_root / defaults


def test_data_root_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEOSEG_DATA", str(tmp_path))
    assert data_root() == tmp_path


def test_data_root_beside_checkout_then_cwd_then_user_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GEOSEG_DATA", raising=False)
    checkout = tmp_path / "work" / "repo"
    checkout.mkdir(parents=True)
    monkeypatch.setattr(_paths, "_REPO_ROOT", checkout)
    elsewhere = tmp_path / "elsewhere" / "cwd"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "geoseg"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".local" / "share" / "geoseg"
    (tmp_path / "elsewhere" / "shared" / "data").mkdir(parents=True)
    assert data_root() == tmp_path / "elsewhere" / "shared" / "data"
    (tmp_path / "work" / "shared" / "data").mkdir(parents=True)
    assert data_root() == tmp_path / "work" / "shared" / "data"


def test_catalog_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_catalog(tmp_path, [scene_entry(tmp_path)])
    monkeypatch.setenv("GEOSEG_CATALOG", str(path))
    assert load_catalog().names() == ["tiny"]


# --------------------------------------------------------------------------- temporary catalogs


def write_catalog(tmp_path: Path, entries: list[dict[str, Any]], name: str = "cat.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "entries": entries}, sort_keys=False))
    return path


def make_file(root: Path, rel: str, data: bytes) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha(data)


SOURCE = {"url": "https://example.org/data", "licence": "CC-BY-4.0", "citation": "Someone (2024)."}


def scene_entry(root: Path, name: str = "tiny", **extra: Any) -> dict[str, Any]:
    files = {f"b{i}.tif": make_file(root / "tiny", f"b{i}.tif", f"band {i}".encode()) for i in (1, 2)}
    entry: dict[str, Any] = {
        "name": name,
        "kind": "scene",
        "description": "A tiny two-file scene.",
        "dir": "tiny",
        "source": dict(SOURCE),
        "paths": ["b1.tif", "b2.tif"],
        "bands": ["red", "nir"],
        "files": files,
    }
    entry.update(extra)
    return entry


def model_entry(**extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "unet-tiny",
        "kind": "model",
        "description": "A tiny U-Net.",
        "source": dict(SOURCE),
        "path": "models/unet-tiny.safetensors",
        "arch": "Unet",
        "encoder": "resnet18",
        "bands": ["red", "green", "blue"],
        "classes": {1: "forest", 2: "non-forest"},
        "files": {"models/unet-tiny.safetensors": sha(b"weights")},
    }
    entry.update(extra)
    return entry


def catalog_error(path: Path) -> str:
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    return message


def test_model_kind(tmp_path: Path) -> None:
    cat = load_catalog(write_catalog(tmp_path, [model_entry()]))
    model = cat.get("unet-tiny", ModelEntry)
    assert (model.arch, model.encoder, model.bands) == ("Unet", "resnet18", ("red", "green", "blue"))
    assert model.checkpoint_path(tmp_path) == tmp_path / "models/unet-tiny.safetensors"
    assert not model.present(tmp_path)
    make_file(tmp_path, "models/unet-tiny.safetensors", b"weights")
    assert model.present(tmp_path)
    model.verify(tmp_path)


def test_model_found_in_package_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / "pkg-models"
    make_file(shipped, "models/unet-tiny.safetensors", b"weights")
    monkeypatch.setattr(_paths, "MODELS_DIR", shipped)
    monkeypatch.setenv("GEOSEG_DATA", str(tmp_path / "empty-root"))
    model = load_catalog(write_catalog(tmp_path, [model_entry()])).get("unet-tiny", ModelEntry)
    assert model.checkpoint_path() == shipped / "models/unet-tiny.safetensors"
    model.verify()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"bandz": ["red"]}, "entry 'tiny': key 'bandz': unknown key"),
        ({"description": None}, "entry 'tiny': key 'description': missing"),
        ({"kind": "mosaic"}, "entry 'tiny': key 'kind': unknown kind 'mosaic'"),
        ({"bands": "red"}, "entry 'tiny': key 'bands': expected a non-empty list"),
        ({"bands": ["red"]}, "entry 'tiny': key 'bands': 1 band names for 2 single-band files"),
        ({"nodata": "zero"}, "entry 'tiny': key 'nodata': expected a number"),
        ({"paths": ["b3.tif"]}, "entry 'tiny': key 'paths': 'b3.tif' is not one of the entry's files"),
        ({"dir": "../outside"}, "entry 'tiny': key 'dir': '../outside' is not a relative POSIX path"),
        ({"files": {"/etc/passwd": "0" * 64}}, "key 'files./etc/passwd'"),
        ({"files": {"b1.tif": "abc"}}, "entry 'tiny': key 'files.b1.tif': expected a sha256"),
        ({"source": {"url": "https://x.org"}}, "entry 'tiny': key 'source.licence': missing"),
        ({"source": dict(SOURCE, mirror="x")}, "entry 'tiny': key 'source.mirror': unknown key"),
        ({"source": dict(SOURCE, url="ftp://x")}, "entry 'tiny': key 'source.url': 'ftp://x' is not"),
        ({"source": dict(SOURCE, download="https://x.org/a")}, "key 'source.download'"),
        ({"name": "Tiny Scene"}, "entry 'Tiny Scene': key 'name': 'Tiny Scene' must be lowercase"),
    ],
)
def test_validation_errors(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    entry = scene_entry(tmp_path)
    for key, value in change.items():
        if value is None:
            del entry[key]
        else:
            entry[key] = value
    message = catalog_error(write_catalog(tmp_path, [entry]))
    assert expected in message


def test_missing_name_and_kind(tmp_path: Path) -> None:
    entry = scene_entry(tmp_path)
    del entry["name"]
    assert "entry '#2': key 'name': missing" in catalog_error(write_catalog(tmp_path, [model_entry(), entry]))
    entry = scene_entry(tmp_path)
    del entry["kind"]
    assert "entry 'tiny': key 'kind': missing" in catalog_error(write_catalog(tmp_path, [entry]))


def test_model_validation(tmp_path: Path) -> None:
    bad = model_entry()
    del bad["arch"]
    assert "entry 'unet-tiny': key 'arch': missing" in catalog_error(write_catalog(tmp_path, [bad]))
    bad = model_entry(classes={255: "nodata"})
    assert "key 'classes': class value 255" in catalog_error(write_catalog(tmp_path, [bad]))
    bad = model_entry(paths=["x.tif"])
    assert "entry 'unet-tiny': key 'paths': unknown key" in catalog_error(write_catalog(tmp_path, [bad]))


def test_duplicate_name(tmp_path: Path) -> None:
    message = catalog_error(write_catalog(tmp_path, [scene_entry(tmp_path), scene_entry(tmp_path)]))
    assert "entry 'tiny': key 'name': duplicate name (entries #1 and #2)" in message


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    text = yaml.safe_dump({"version": 1, "entries": [scene_entry(tmp_path)]}, sort_keys=False)
    path.write_text(text.replace("  kind: scene\n", "  kind: scene\n  kind: model\n"))
    assert "duplicate key 'kind' (line" in catalog_error(path)


def test_unreadable_and_non_yaml_catalogs(tmp_path: Path) -> None:
    assert "cannot read the catalog" in catalog_error(tmp_path / "absent.yaml")
    assert "cannot read the catalog" in catalog_error(tmp_path)  # a directory
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nentries: [\n  - name: x\n")
    assert "not valid YAML" in catalog_error(bad)  # the one YAML loader's words (geoseg.yamlfile)
    bad.write_bytes(b"\xff\xfe\x00garbage")
    assert "not a UTF-8 text file" in catalog_error(bad)
    bad.write_text("")
    assert "empty catalog" in catalog_error(bad)
    bad.write_text("- just\n- a list\n")
    assert "expected a mapping, got a list" in catalog_error(bad)
    bad.write_text("version: 2\nentries: []\n")
    assert "key 'version': unsupported catalog version 2" in catalog_error(bad)
    bad.write_text("version: 1\nentries: []\nextra: 1\n")
    assert "key 'extra': unknown key" in catalog_error(bad)


def labelset_entry(root: Path, **extra: Any) -> dict[str, Any]:
    files = {}
    for split in ("train", "val"):
        for stem in ("A_1.tiff_3", "A_2.tiff_4"):
            files[f"{split}/images/{stem}.tiff"] = make_file(
                root / "tiles", f"{split}/images/{stem}.tiff", b"i"
            )
            files[f"{split}/masks/{stem}.png"] = make_file(root / "tiles", f"{split}/masks/{stem}.png", b"m")
    entry: dict[str, Any] = {
        "name": "tiles",
        "kind": "labelset",
        "description": "Tiles.",
        "dir": "tiles",
        "source": dict(SOURCE),
        "classes": {1: "forest", 2: "non-forest"},
        "splits": {
            "train": {"images": "train/images/*.tiff", "masks": "train/masks/*.png"},
            "val": {"images": "val/images/*.tiff", "masks": "val/masks/*.png"},
        },
        "files": files,
    }
    entry.update(extra)
    return entry


def test_labelset_pairs_from_temp_catalog(tmp_path: Path) -> None:
    entry = load_catalog(write_catalog(tmp_path, [labelset_entry(tmp_path)])).get("tiles", LabelSetEntry)
    pairs = entry.pairs("val", tmp_path)
    assert [(i.relative_to(tmp_path).as_posix(), m.name) for i, m in pairs] == [
        ("tiles/val/images/A_1.tiff_3.tiff", "A_1.tiff_3.png"),
        ("tiles/val/images/A_2.tiff_4.tiff", "A_2.tiff_4.png"),
    ]


def test_labelset_validation(tmp_path: Path) -> None:
    bad = labelset_entry(tmp_path)
    bad["splits"]["val"]["masks"] = "val/mask/*.png"
    assert "key 'splits.val.masks': 'val/mask/*.png' matches none" in catalog_error(
        write_catalog(tmp_path, [bad])
    )
    bad = labelset_entry(tmp_path)
    del bad["files"]["train/masks/A_2.tiff_4.png"]
    message = catalog_error(write_catalog(tmp_path, [bad]))
    assert "entry 'tiles': key 'splits.train': image 'train/images/A_2.tiff_4.tiff' has no partner" in message
    bad = labelset_entry(tmp_path, image="tiny", label_raster="train/images/A_1.tiff_3.tiff")
    assert "either 'splits' (tiles with masks) or 'image'" in catalog_error(write_catalog(tmp_path, [bad]))
    bad = labelset_entry(tmp_path, pair_by="prefix")
    assert "key 'pair_by': unknown rule 'prefix'" in catalog_error(write_catalog(tmp_path, [bad]))
    bad = labelset_entry(tmp_path)
    del bad["splits"]
    bad.update(image="nowhere", label_raster="train/images/A_1.tiff_3.tiff")
    assert "key 'image': 'nowhere' must name a scene entry" in catalog_error(write_catalog(tmp_path, [bad]))
    bad.update(image="tiny", polygons="train/masks/A_1.tiff_3.png")
    del bad["label_raster"]
    message = catalog_error(write_catalog(tmp_path, [scene_entry(tmp_path), bad]))
    assert "key 'class_field': missing (required with 'polygons' or 'points')" in message


def test_labelset_class_colours(tmp_path: Path) -> None:
    entry = labelset_entry(tmp_path, classes={1: {"name": "forest", "colour": "#1E6e1e"},
                                              2: {"name": "non-forest", "colour": [230, 200, 120]},
                                              3: "water"})  # fmt: skip
    classes = load_catalog(write_catalog(tmp_path, [entry])).get("tiles", LabelSetEntry).classes
    assert [(c.value, c.name, c.colour) for c in classes] == [
        (1, "forest", (30, 110, 30)), (2, "non-forest", (230, 200, 120)), (3, "water", None)
    ]  # fmt: skip
    for colour, bad in [("#12345", "'#12345'"), ([1, 2, 256], "[1, 2, 256]"), ("green", "'green'")]:
        entry = labelset_entry(tmp_path, classes={1: {"name": "forest", "colour": colour}})
        message = catalog_error(write_catalog(tmp_path, [entry]))
        assert (
            f"key 'classes.1.colour': expected \"#rrggbb\" or [r, g, b] with values 0..255, got {bad}"
            in message
        )
    entry = labelset_entry(tmp_path, classes={1: {"name": "forest", "color": "#000000"}})
    assert "key 'classes.1.color': unknown key (did you mean 'colour'?)" in catalog_error(
        write_catalog(tmp_path, [entry])
    )
    entry = labelset_entry(tmp_path, classes={1: {"colour": "#000000"}})
    assert "key 'classes.1': expected a class name, got nothing" in catalog_error(
        write_catalog(tmp_path, [entry])
    )


def test_real_label_sets_colour_their_classes(real: Catalog) -> None:
    """The shipped models draw the catalog's colours (non-forest is not the palette's blue)."""
    from geoseg.inference import read_spec, resolve_model_path

    for labelset, model in [
        ("amazon-s2-rgb", "forest-s2-rgb"),
        ("amazon-s2-rgb", "forest-s2-rgb-fast"),
        ("nc-landsat7-labels", "landcover-nc-landsat7"),
    ]:
        expected = [(c.name, c.colour) for c in real.get(labelset, LabelSetEntry).classes]
        assert all(colour is not None for _, colour in expected)
        spec = read_spec(resolve_model_path(model))
        assert [(c.name, tuple(c.colour)) for c in spec.classes] == expected


def test_installed_package_carries_the_catalog(tmp_path: Path) -> None:
    """A wheel has no repository root: the package's own copy names the shipped models."""
    link = REPO / "geoseg" / "data_catalog.yaml"
    assert link.read_bytes() == (REPO / "data_catalog.yaml").read_bytes()
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "geoseg", site / "geoseg", symlinks=False)  # as a wheel installs it
    code = (
        "from geoseg.data import default_catalog_path, load_catalog\n"
        "print(default_catalog_path())\n"
        "print(load_catalog().get('forest-s2-rgb').name)"
    )
    env = {k: v for k, v in os.environ.items() if k != "GEOSEG_CATALOG"}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(site)},
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(site / "geoseg" / "data_catalog.yaml"), "forest-s2-rgb"]


# --------------------------------------------------------------------------- resolve


def test_resolve_real_names(real: Catalog, real_root: Path) -> None:
    scene = resolve("nc-landsat7")
    entry = real.get("nc-landsat7", SceneEntry)
    assert (scene.kind, scene.name, scene.bands, scene.stacked) == ("scene", "nc-landsat7", entry.bands, True)
    assert scene.paths == tuple(entry.raster_paths()) and scene.entry == entry
    one = resolve("pucallpa-landsat@1985", "image")
    assert (one.kind, one.name, one.paths) == (
        "scene", "pucallpa-landsat@1985", (real_root / "pucallpa-landsat/1985.tif",)
    )  # fmt: skip
    assert one.stacked and one.nodata == 0  # the catalog's nodata override needs a VRT
    series = resolve("pucallpa-landsat")
    assert series.kind == "timeseries" and series.dates == tuple(str(y) for y in range(1985, 2021, 5))
    assert series.paths[-1] == real_root / "pucallpa-landsat/2020.tif"
    labels = resolve("amazon-s2-rgb")
    assert labels.kind == "labelset" and isinstance(labels.entry, LabelSetEntry) and len(labels.paths) == 113
    model = resolve("forest-s2-rgb", "model")
    assert model.kind == "model" and model.path == catalog.MODELS_DIR / "forest-s2-rgb.safetensors"
    assert resolve("forest-s2-rgb").path == model.path


def test_resolve_says_what_a_name_is(real: Catalog, real_root: Path) -> None:
    with pytest.raises(CatalogError, match="'forest-s2-rgb' is a model of the catalog, not an image"):
        resolve("forest-s2-rgb", "image")
    with pytest.raises(CatalogError, match="'nc-landsat7' is a scene of the catalog, not a model"):
        resolve("nc-landsat7", "model")
    with pytest.raises(CatalogError, match="'amazon-s2-rgb' is a labelset of the catalog, not one image"):
        resolve("amazon-s2-rgb", "image")
    with pytest.raises(
        CatalogError, match="'pucallpa-landsat' is a timeseries of the catalog, not one image"
    ):
        resolve("pucallpa-landsat", "image")
    with pytest.raises(CatalogError, match="has no date '1986'; dates: 1985, 1990"):
        resolve("pucallpa-landsat@1986")
    with pytest.raises(CatalogError, match="'nc-landsat7' is a scene of the catalog, not a time series"):
        resolve("nc-landsat7@2020", "image")


def test_resolve_unknown_text_suggests(real: Catalog) -> None:
    with pytest.raises(MissingFileError) as info:
        resolve("nc-landsat8", "image")
    message = str(info.value)
    assert message.startswith("nc-landsat8: no such file or catalog scene (did you mean 'nc-landsat7'?)")
    assert "`geoseg data list`" in message and "\n" not in message
    with pytest.raises(MissingFileError, match="did you mean 'pucallpa-landsat'"):
        resolve("pucalpa-landsat@1985")
    with pytest.raises(CatalogError) as cinfo:
        resolve("forest-s2-rbg", "model")
    assert "no model 'forest-s2-rbg' in the catalog (did you mean 'forest-s2-rgb'?)" in str(cinfo.value)
    assert "`geoseg data list`" in str(cinfo.value)
    with pytest.raises(MissingFileError, match=r"^nope\.safetensors: no such model file$"):
        resolve("nope.safetensors", "model")
    with pytest.raises(MissingFileError, match="no such file or catalog entry"):
        resolve("dir/nothing.tif")


def test_resolve_local_paths_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "scene.tif"
    image.write_bytes(b"x")
    found = resolve(image, "image")
    assert (found.kind, found.path, found.image()) == ("file", image, image)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nc-landsat7").mkdir()  # a local folder named like a catalog scene wins...
    assert resolve("nc-landsat7", "image").kind == "file"
    with pytest.raises(CatalogError, match="not a model"):  # ...but is no checkpoint file
        resolve("nc-landsat7", "model")
    vsi = resolve("/vsicurl/https://example.org/a.tif", "image")
    assert (vsi.kind, vsi.paths, vsi.image()) == ("gdal", (), "/vsicurl/https://example.org/a.tif")
    with pytest.raises(CatalogError, match="is a GDAL path, not one file"):
        _ = vsi.path


def geotiff(root: Path, rel: str, value: int) -> str:
    """A 4 x 3 single-band GeoTIFF at ``root/rel``; its sha256."""
    import numpy as np
    import rasterio
    from affine import Affine

    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": 4, "height": 3, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": Affine(10, 0, 500000, 0, -10, 4000000)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.full((1, 3, 4), value, dtype="uint8"))
    return sha256_file(path)


def test_resolve_stacks_a_temporary_catalog_scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rasterio

    root = tmp_path / "root"
    tiny, mixed = scene_entry(root), scene_entry(root, "tiny-mixed", resolutions=[10, 20])
    tiny["files"] = mixed["files"] = {f"b{i}.tif": geotiff(root / "tiny", f"b{i}.tif", i) for i in (1, 2)}
    path = write_catalog(tmp_path, [tiny, mixed])
    monkeypatch.setenv("GEOSEG_CATALOG", str(path))
    monkeypatch.setenv("GEOSEG_DATA", str(root))
    monkeypatch.setenv("GEOSEG_CACHE", str(tmp_path / "cache"))
    found = resolve("tiny", "image")
    assert found.stacked and found.paths == (root / "tiny/b1.tif", root / "tiny/b2.tif")
    vrt = Path(found.image())
    assert vrt.parent == tmp_path / "cache" / "inputs" and vrt.name.startswith("tiny-")
    with rasterio.open(vrt) as ds:
        assert ds.count == 2 and ds.descriptions == ("red", "nir") and ds.read()[:, 0, 0].tolist() == [1, 2]
    assert catalog.catalog_image("tiny") == vrt and catalog.catalog_image("nothing") is None
    with pytest.raises(CatalogError, match=r"'tiny-mixed' has files at different pixel sizes \(10, 20\)"):
        resolve("tiny-mixed", "image")
    assert resolve("tiny-mixed").kind == "scene"  # what it is, without reading it as one image
    (root / "tiny" / "b1.tif").unlink()
    with pytest.raises(MissingFileError, match="run `geoseg data fetch tiny`"):
        resolve("tiny", "image")
    assert len(resolve("tiny", check=False).paths) == 2


# --------------------------------------------------------------------------- sha256


def test_wrong_sha256_raises_checksum_error(tmp_path: Path) -> None:
    entry = scene_entry(tmp_path)
    entry["files"]["b2.tif"] = sha(b"something else")
    scene = load_catalog(write_catalog(tmp_path, [entry])).get("tiny")
    with pytest.raises(ChecksumError) as info:
        scene.verify(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'tiny' / 'b2.tif'}: ")
    assert sha(b"something else") in message and sha(b"band 2") in message
    assert "geoseg data fetch tiny" in message
    assert isinstance(info.value, CatalogError)


def test_verify_missing_file(tmp_path: Path) -> None:
    scene = load_catalog(write_catalog(tmp_path, [scene_entry(tmp_path)])).get("tiny")
    (tmp_path / "tiny" / "b1.tif").unlink()
    assert scene.missing_files(tmp_path) == [tmp_path / "tiny" / "b1.tif"]
    with pytest.raises(MissingFileError, match=r"b1.tif: missing file .*\(1 of 2 missing\)"):
        scene.verify(tmp_path)


# --------------------------------------------------------------------------- fetch


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Talk to 127.0.0.1 directly even where a proxy is configured."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path, no_proxy: None) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a directory: (base URL, directory)."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


def remote_entry(url: str, files: dict[str, Any], **source: Any) -> dict[str, Any]:
    return {
        "name": "remote",
        "kind": "scene",
        "description": "A scene to download.",
        "dir": "remote",
        "source": dict(SOURCE, **({"download": url} if url else {}), **source),
        "paths": ["a.tif"],
        "files": files,
    }


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_fetch_offline_fails_fast_and_clearly(tmp_path: Path, closed_port: int, no_proxy: None) -> None:
    url = f"http://127.0.0.1:{closed_port}/data/{{path}}"
    cat = load_catalog(write_catalog(tmp_path, [remote_entry(url, {"a.tif": sha(b"a")})]))
    root = tmp_path / "root"
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        fetch(cat.get("remote"), root)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message
    assert "'remote'" in message and f"http://127.0.0.1:{closed_port}/data/a.tif" in message
    assert f"copy the data by hand to {root / 'remote' / 'a.tif'}" in message
    assert leftovers(root) == []


def test_fetch_from_local_server(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, served = server
    files = {name: make_file(served, f"x/{name}", name.encode() * 1000) for name in ("a.tif", "b.tif")}
    cat = load_catalog(write_catalog(tmp_path, [remote_entry(f"{base}/x/{{path}}", files)]))
    entry = cat.get("remote")
    root = tmp_path / "root"
    calls: list[tuple[int, int, str]] = []
    written = fetch(entry, root, progress=lambda d, t, p="": calls.append((d, t, p)))
    assert written == [root / "remote/a.tif", root / "remote/b.tif"]
    assert calls == [(0, 2, ""), (1, 2, "a.tif"), (2, 2, "b.tif")]
    entry.verify(root)
    assert sorted(p.name for p in leftovers(root)) == ["a.tif", "b.tif"]  # no temporary files
    # Only missing files are downloaded.
    (root / "remote/b.tif").unlink()
    assert fetch(entry, root) == [root / "remote/b.tif"]
    assert fetch(entry, root) == []


def test_fetch_wrong_content_is_removed(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, served = server
    make_file(served, "a.tif", b"tampered")
    cat = load_catalog(write_catalog(tmp_path, [remote_entry(f"{base}/{{name}}", {"a.tif": sha(b"a")})]))
    root = tmp_path / "root"
    with pytest.raises(ChecksumError) as info:
        fetch(cat.get("remote"), root)
    assert sha(b"tampered") in str(info.value) and sha(b"a") in str(info.value)
    assert leftovers(root) == []


def test_fetch_http_error(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, _ = server
    cat = load_catalog(write_catalog(tmp_path, [remote_entry(f"{base}/{{path}}", {"a.tif": sha(b"a")})]))
    with pytest.raises(DataUnavailableError, match="HTTP 404"):
        fetch(cat.get("remote"), tmp_path / "root")
    assert leftovers(tmp_path / "root") == []


def test_fetch_per_file_url(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, served = server
    files = {
        "a.tif": {"sha256": make_file(served, "elsewhere/z.bin", b"zz"), "url": f"{base}/elsewhere/z.bin"}
    }
    entry = load_catalog(write_catalog(tmp_path, [remote_entry("", files)])).get("remote")
    assert fetch(entry, tmp_path / "root") == [tmp_path / "root/remote/a.tif"]
    assert (tmp_path / "root/remote/a.tif").read_bytes() == b"zz"


def archive_bytes(fmt: str, members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buffer, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_fetch_from_archive(tmp_path: Path, server: tuple[str, Path], fmt: str) -> None:
    base, served = server
    data = archive_bytes(
        fmt,
        {
            "pkg/datasets/a.tif": b"A",  # found by base name and sha256, wherever it is
            "pkg/other/a.tif": b"not this one",
            "pkg/datasets/b.shp": b"B",
        },
    )
    (served / "pkg-1.0.bin").write_bytes(data)
    archive = {"url": f"{base}/pkg-1.0.bin", "format": fmt, "sha256": sha(data)}
    files = {"a.tif": sha(b"A"), "vector/b.shp": sha(b"B")}
    entry = load_catalog(write_catalog(tmp_path, [remote_entry("", files, archive=archive)])).get("remote")
    root = tmp_path / "root"
    calls: list[tuple[int, int, str]] = []
    written = fetch(entry, root, progress=lambda d, t, p="": calls.append((d, t, p)))
    assert written == [root / "remote/a.tif", root / "remote/vector/b.shp"]
    assert calls[-1] == (2, 2, "vector/b.shp")
    entry.verify(root)
    assert sorted(p.name for p in leftovers(root)) == ["a.tif", "b.shp"]  # the archive is gone


def test_fetch_from_bad_archive(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, served = server
    (served / "pkg.zip").write_bytes(b"not a zip")
    good = archive_bytes("zip", {"x/a.tif": b"other"})
    (served / "good.zip").write_bytes(good)
    root = tmp_path / "root"
    for archive, error, match in [
        ({"url": f"{base}/pkg.zip", "format": "zip"}, DataUnavailableError, "not a readable zip archive"),
        ({"url": f"{base}/pkg.zip", "format": "zip", "sha256": sha(b"x")}, ChecksumError, "archive sha256"),
        ({"url": f"{base}/good.zip", "format": "zip"}, ChecksumError, sha(b"other")),
        ({"url": f"{base}/good.zip", "format": "tar"}, DataUnavailableError, "not a readable tar"),
    ]:
        entry = remote_entry("", {"a.tif": sha(b"A")}, archive=archive)
        with pytest.raises(error, match=match):
            fetch(load_catalog(write_catalog(tmp_path, [entry])).get("remote"), root)
        assert leftovers(root) == []


def test_fetch_without_download_info(tmp_path: Path) -> None:
    entry = load_catalog(write_catalog(tmp_path, [remote_entry("", {"a.tif": sha(b"a")})])).get("remote")
    with pytest.raises(
        DataUnavailableError, match=r"no download is catalogued for a\.tif; get the data from"
    ):
        fetch(entry, tmp_path / "root")


def test_fetch_silent_server_times_out(tmp_path: Path, no_proxy: None) -> None:
    """A server that takes the connection but never answers: the timeout, one line, nothing left."""
    with socket.socket() as listening:  # the kernel accepts into the backlog; nobody replies
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        url = f"http://127.0.0.1:{listening.getsockname()[1]}/{{path}}"
        entry = load_catalog(write_catalog(tmp_path, [remote_entry(url, {"a.tif": sha(b"a")})])).get("remote")
        start = time.monotonic()
        with pytest.raises(DataUnavailableError, match=r"no answer within 0\.5 s"):
            fetch(entry, tmp_path / "root", timeout=0.5)
        assert time.monotonic() - start < 5
    assert leftovers(tmp_path / "root") == []


def test_fetch_file_url_and_quiet(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """``file:`` URLs (a local mirror) download like http ones; the library prints nothing
    (pooch logs each download at INFO to stderr unless told otherwise)."""
    mirror = tmp_path / "mirror"
    files = {"a.tif": make_file(mirror, "a.tif", b"A" * 100)}
    cat = load_catalog(write_catalog(tmp_path, [remote_entry(f"{mirror.as_uri()}/{{path}}", files)]))
    assert fetch(cat.get("remote"), tmp_path / "root") == [tmp_path / "root/remote/a.tif"]
    assert capfd.readouterr() == ("", "")
    gone = remote_entry(f"{(tmp_path / 'nowhere').as_uri()}/{{path}}", files)
    with pytest.raises(DataUnavailableError, match="no such file"):
        fetch(load_catalog(write_catalog(tmp_path, [gone])).get("remote"), tmp_path / "root2")


def test_fetch_into_unwritable_root(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, served = server
    files = {"a.tif": make_file(served, "a.tif", b"A")}
    entry = load_catalog(write_catalog(tmp_path, [remote_entry(f"{base}/{{path}}", files)])).get("remote")
    (tmp_path / "a-file").write_bytes(b"")  # a root under a file: no directory can be made there
    with pytest.raises(OutputError, match="cannot write into the data directory"):
        fetch(entry, tmp_path / "a-file" / "root")


# --------------------------------------------------------------------------- CLI


def test_cli_list_real_catalog(real_root: Path) -> None:
    result = CliRunner().invoke(main, ["data", "list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in ("amazon-s2-rgb", "nc-landsat7", "nc-landsat7-labels", "pucallpa-landsat"):
        assert any(line.split()[:1] == [name] for line in lines), name
    assert "113/113" in result.stdout and "6/6" in result.stdout and "8/8" in result.stdout
    assert any(line.split()[:3] == ["brandenburg-s2l1c", "scene", "13/13"] for line in lines)
    assert any(line.split()[:3] == ["zion-landsat8-labels", "labelset", "3/3"] for line in lines)


def test_cli_list_with_catalog_option(tmp_path: Path) -> None:
    path = write_catalog(tmp_path, [scene_entry(tmp_path), model_entry()])
    result = CliRunner().invoke(main, ["data", "--catalog", str(path), "--root", str(tmp_path), "list"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines()[1:3]}
    assert rows == {"tiny": ["scene", "2/2"], "unet-tiny": ["model", "0/1"]}


def test_cli_verify(tmp_path: Path) -> None:
    entry = scene_entry(tmp_path)
    path = write_catalog(tmp_path, [entry])
    result = CliRunner().invoke(
        main, ["data", "--catalog", str(path), "--root", str(tmp_path), "verify", "tiny"]
    )
    assert result.exit_code == 0 and "tiny: 2 files OK" in result.stdout
    (tmp_path / "tiny" / "b1.tif").write_bytes(b"changed")
    result = CliRunner().invoke(
        main, ["data", "--catalog", str(path), "--root", str(tmp_path), "verify", "tiny"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("geoseg: error: ") and "sha256" in result.stderr


def test_cli_fetch_offline(tmp_path: Path, closed_port: int, no_proxy: None) -> None:
    url = f"http://127.0.0.1:{closed_port}/{{path}}"
    path = write_catalog(tmp_path, [remote_entry(url, {"a.tif": sha(b"a")})])
    root = tmp_path / "root"
    args = ["data", "--catalog", str(path), "--root", str(root), "fetch", "remote"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("geoseg: error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert leftovers(root) == []
    result = CliRunner().invoke(main, ["data", "--catalog", str(path), "fetch", "nope"])
    assert result.exit_code == 2 and "known entries: remote" in result.stderr


def test_cli_fetch_subprocess(tmp_path: Path, closed_port: int, no_proxy: None) -> None:
    """The installed ``geoseg`` script: exit status 2 and one line, no traceback, no partial file."""
    url = f"http://127.0.0.1:{closed_port}/{{path}}"
    path = write_catalog(tmp_path, [remote_entry(url, {"a.tif": sha(b"a")})])
    root = tmp_path / "root"
    script = Path(sys.executable).parent / "geoseg"
    command = (
        [str(script)] if script.exists() else [sys.executable, "-c", "from geoseg.cli import main; main()"]
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.run(
        [*command, "data", "--catalog", str(path), "--root", str(root), "fetch", "remote"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("geoseg: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert leftovers(root) == []


def test_cli_bad_catalog(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nentries:\n  - name: x\n    kind: raster\n")
    result = CliRunner().invoke(main, ["data", "--catalog", str(bad), "list"])
    assert result.exit_code == 2
    assert result.stderr == f"geoseg: error: {bad}: entry 'x': key 'kind': unknown kind 'raster' " + (
        "(kinds: scene, timeseries, labelset, model)\n"
    )
