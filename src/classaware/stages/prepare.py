"""Stage ``prepare``: a CIFAR-10 archive -> the canonical tensor file every later stage reads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import Options, help_field
from ..data import read_archive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    archive: Path = help_field(help="CIFAR-10 archive: the official cifar-10-python.tar.gz or an image-folder .tar.gz")
    out: Path = help_field(Path("data/cifar10.pt"), "canonical tensor file to write", output="file")
    md5: str = help_field(
        "",
        "expected md5 of the archive (empty: only the official format's md5 is enforced)",
        pattern=r"|[0-9a-f]{32}",
        expected="empty or 32 lowercase hexadecimal digits",
    )


def run(cfg: Config) -> None:
    data = read_archive(cfg.archive, cfg.md5 or None)
    data.save(cfg.out)
    log.info("wrote %s: %s, %d train and %d test images", cfg.out, data.dataset, len(data.train_y), len(data.test_y))
