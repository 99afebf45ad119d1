"""Command ``download``: fetch the official CIFAR-10 archive (torchvision, md5-checked).

Not a DVC stage: ``data.dvc`` pins the archive by its md5, and this is how a machine with
internet access gets it before ``dvc repro``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import Options, help_field
from ..data import download

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    root: Path = help_field(Path("data"), "folder to download cifar-10-python.tar.gz into", output="dir")


def run(cfg: Config) -> None:
    log.info("CIFAR-10 archive ready at %s", download(cfg.root))
