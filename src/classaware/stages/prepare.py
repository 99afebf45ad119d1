"""Stage ``prepare``: a CIFAR-10 archive -> the canonical tensor file every later stage reads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Options, help_field
from ..data import cifar10_labels, file_digests, read_archive

if TYPE_CHECKING:  # the stage protocol's types (classaware.stages), for annotations only
    from . import AuditContext, Upstream


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


# ----------------------------------------------------------------------------- its cost and its audit
def work(cfg: Config, upstream: Upstream) -> dict:
    """Every image of the archive decoded (see :mod:`classaware.workflow.estimate`)."""
    return {("decode", ""): len(cifar10_labels("train")) + len(cifar10_labels("test"))}


CHECKS = {"data": "the canonical data file matches its archive's md5 and sha256"}


def audit_data(cfg: Config, ctx: AuditContext) -> int:
    """The archive, where it is here, has the md5 and sha256 the canonical file records."""
    data = ctx.data(cfg.out)
    if not Path(cfg.archive).is_file():
        raise ctx.Skip(f"archive {cfg.archive} is not here; the canonical file records md5 {data.provenance.md5}")
    md5, sha256 = file_digests(Path(cfg.archive))
    if (md5, sha256) != (data.provenance.md5, data.provenance.sha256):
        raise ctx.Mismatch(f"{cfg.out} records md5 {data.provenance.md5} but {cfg.archive} has {md5}")
    return 1


AUDIT = {"data": audit_data}
