"""What made an evaluation: models (weights identifiers, file hashes, preprocessing), data (file list
hash, class coverage), attacks and their arguments, seeds, library versions and the device."""

from __future__ import annotations

import importlib.metadata
import sys
import time
from dataclasses import asdict

import torch

from ..environment import Environment
from .datasets import ImageSet, class_coverage
from .models import LoadedModel

PACKAGES = ("classaware", "torch", "torchvision", "timm", "torchattacks", "torchattack", "numpy")


def versions() -> dict[str, str | None]:
    """Installed versions of the packages an evaluation may use (None: not installed)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = sys.version.split()[0]
    return found


def model_entry(model: LoadedModel, role: str) -> dict:
    return {
        "role": role,
        "name": model.name,
        "kind": model.kind,
        "identity": model.identity,
        "preprocessing": None if model.preprocessing is None else asdict(model.preprocessing),
        "class_names": None if model.class_names is None else len(model.class_names),
    }


def manifest(
    source: LoadedModel,
    targets: list[LoadedModel],
    data: ImageSet,
    num_classes: int,
    attacks: list[dict],
    settings: dict,
    device: torch.device,
) -> dict:
    """The manifest as a JSON-able dict (see the module docstring)."""
    return {
        "format": "classaware-evaluate-manifest/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "models": [model_entry(source, "source F1"), *(model_entry(t, "target F2") for t in targets)],
        "data": {
            "name": data.name,
            "identity": data.identity,
            "coverage": class_coverage(data.y, num_classes),
            "targets_in_file": data.targets is not None,
        },  # fmt: skip
        "attacks": attacks,
        "settings": settings,
        "versions": versions(),
        "environment": asdict(Environment.current(device)),
        "command": sys.argv,
    }
