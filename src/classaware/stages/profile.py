"""Command ``profile``: write ``params.yaml`` for one of the pipeline's sizes (see
:mod:`classaware.profiles`). ``--data`` points the ``prepare`` stage at a local archive, e.g.
``../shared/data/cifar10-jpeg.tar.gz`` on machines without internet; it must exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import save_text
from ..config import Options, help_field
from ..profiles import render

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(Options):
    name: str = help_field(help="profile: paper, quick, smoke (a file profiles/<name>.yaml)", positional=True)
    data: Path | None = help_field(None, "CIFAR-10 archive for the prepare stage (default: the profile's data.archive)")
    profiles_dir: Path = help_field(Path("profiles"), "folder of the profile files")
    out: Path = help_field(Path("params.yaml"), "params file to write", output="file")

    def check(self) -> list[str]:
        problems = []
        if not (self.profiles_dir / f"{self.name}.yaml").is_file():
            known = sorted(p.stem for p in self.profiles_dir.glob("*.yaml"))
            problems.append(
                f"unknown profile {self.name!r}; known: {', '.join(known) or 'none'} (in {self.profiles_dir})"
            )
        if self.data is not None and not self.data.is_file():
            problems.append(f"--data {self.data} does not exist (give the path of a CIFAR-10 archive)")
        return problems


def run(cfg: Config) -> None:
    save_text(render(cfg.name, cfg.profiles_dir, cfg.data), cfg.out)
    log.info("%s now holds the %s profile; run `dvc repro`", cfg.out, cfg.name)
