"""Command ``profile``: write ``params.yaml`` for one of the pipeline's sizes.

``profiles/paper.yaml`` is the paper's protocol (and ``params.yaml`` as committed); any other
profile file replaces whole top-level groups of it (a group it names is taken as written, so
a profile never inherits half a zoo). ``--data`` points the ``prepare`` stage at a local
archive, e.g. ``../shared/data/cifar10-jpeg.tar.gz`` on machines without internet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..artifacts import save_text
from ..config import help_field

log = logging.getLogger(__name__)

BASE = "paper"


@dataclass(frozen=True)
class Config:
    name: str = help_field(help="profile: paper, quick, smoke (a file profiles/<name>.yaml)", positional=True)
    data: Path | None = help_field(None, "CIFAR-10 archive for the prepare stage (default: the profile's data.source)")
    profiles_dir: Path = help_field(Path("profiles"), "folder of the profile files")
    out: Path = help_field(Path("params.yaml"), "params file to write")

    def __post_init__(self):
        if not (self.profiles_dir / f"{self.name}.yaml").is_file():
            known = sorted(p.stem for p in self.profiles_dir.glob("*.yaml"))
            raise ValueError(f"unknown profile {self.name!r}; known: {', '.join(known) or 'none'} (in {self.profiles_dir})")


def render(name: str, profiles_dir: Path, data: Path | None = None) -> str:
    """The text of params.yaml for profile ``name``: the base file verbatim (comments kept)
    when nothing changes, else the merged parameters as YAML."""
    base_text = (profiles_dir / f"{BASE}.yaml").read_text()
    if name == BASE and data is None:
        return base_text
    params = yaml.safe_load(base_text)
    if name != BASE:
        params.update(yaml.safe_load((profiles_dir / f"{name}.yaml").read_text()))
    params["profile"] = name
    if data is not None:
        params["data"] = {**params["data"], "source": str(data)}
    header = f"# Written by `classaware profile {name}` from {profiles_dir}/{BASE}.yaml and {profiles_dir}/{name}.yaml;\n# see those files for what each parameter means. Edit them, not this file.\n"
    return header + yaml.safe_dump(params, sort_keys=False, default_flow_style=None, width=100)


def run(cfg: Config) -> None:
    save_text(render(cfg.name, cfg.profiles_dir, cfg.data), cfg.out)
    log.info("%s now holds the %s profile; run `dvc repro`", cfg.out, cfg.name)
