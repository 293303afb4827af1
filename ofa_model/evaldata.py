"""The data a supernet is evaluated on: the default Imagenette splits of ../shared/data and the decoded image
caches of a supernet's training and validation sets (checked against the supernet's classes first)."""
from __future__ import annotations

from typing import Any

from ofa_profile.errors import OfaProfileError
from ofa_profile.paths import shared_data_dir

from .data import build_cache, check_splits, check_val_classes, default_cache_dir

__all__ = ["default_data", "supernet_caches"]


def default_data(kind: str, given: str | None) -> str:
    """--train-data / --val-data, defaulting to ../shared/data/imagenette2-224/{train,val}.tar when present."""
    if given:
        return given

    d = shared_data_dir()
    cand = d / "imagenette2-224" / f"{kind}.tar" if d is not None else None
    if cand is None or not cand.exists():
        raise OfaProfileError(f"no --{kind}-data given and no Imagenette at ../shared/data; pass --{kind}-data ROOT "
                              f"(ROOT/<class>/<image>.jpg, or a .tar of one, with the supernet's classes)")
    return str(cand)


def supernet_caches(info: Any, train_data: str, val_data: str | None, cache_dir: str | None, size: int = 224):
    """The decoded caches (train, val or None) of a supernet's datasets; a dataset with other classes than the
    supernet ``info`` names is refused before any image is decoded."""
    from pathlib import Path

    def where(src: str, split: str) -> Path:
        return Path(cache_dir) / split if cache_dir else default_cache_dir(src, size)

    tr_list, _ = check_splits(train_data)      # listing only: refuse a wrong dataset before decoding it
    classes = tr_list[0]
    if info.classes is not None and tuple(info.classes) != tuple(classes):
        raise OfaProfileError(f"{train_data} has other classes than the supernet ({len(classes)} vs "
                              f"{len(info.classes)} {','.join(info.classes[:3])}...); pass the dataset it was "
                              f"trained on")
    if len(classes) != info.n_classes:
        raise OfaProfileError(f"{train_data} has {len(classes)} classes, the supernet {info.n_classes}; pass its "
                              f"dataset")
    va_list = check_val_classes(val_data, classes) if val_data else None
    tr = build_cache(train_data, where(train_data, "train"), size, progress=True, listing=tr_list)
    va = build_cache(val_data, where(val_data, "val"), size, classes=tr.classes, progress=True,
                     listing=va_list) if val_data else None
    return tr, va
