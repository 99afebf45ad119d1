"""The commands that drive the pipeline from outside, and the modules only they use.

The pipeline's own stages are in :mod:`classaware.stages` (each a DVC stage's command); these
are what a researcher or a reviewer runs around them: switch the profile, run the stages several
at once or on SLURM, run seed replicates, estimate the cost, audit a finished run. Each command
module has a ``Config`` (its options, validated before any work) and ``run(config)``, as a stage
does; beside them, :mod:`.pipeline` asks DVC's command line what the pipeline is. Nothing in the
library or in :mod:`classaware.stages` imports this package.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# the committed profiles (profiles/NAME.yaml), named in the help; tests/test_profile.py checks the folder
PROFILES = ("paper", "cpu", "quick", "smoke", "gpu-check")
# subcommand -> (module of this package, one-line help); modules are imported only when used
COMMANDS = {
    "profile": ("profile", f"switch params.yaml to a profile: {', '.join(PROFILES)}"),
    "repro": ("repro", "run the pipeline's stages up to N at once, each pinned to one device"),
    "replicate": ("replicate", "run the pipeline again with other seeds (DVC experiments) and summarize the claims"),
    "audit": ("audit", "check a finished run's artifacts without retraining (for reviewers, after dvc pull)"),
    "keep": ("keep", "keep a finished run in runs/NAME with a DVC remote of what fits, for reviewers"),
    "view": ("view", "bring a kept run (runs/NAME) into the workspace: DVC's views, dvc pull, the audit"),
    "estimate": ("estimate", "each stage's expected time for params.yaml's profile on a measured device"),
    "slurm": ("slurm", "submit the pipeline to SLURM as one job per stage, or show the jobs' status"),
    "download": ("download", "fetch the official CIFAR-10 archive (internet, md5-checked)"),
    "deps": ("deps", "print (or --write into dvc.yaml) each stage's code deps: the modules its command imports"),
}


def load(command: str) -> ModuleType:
    """The module of workflow command ``command``; ValueError for one the registry lacks."""
    if command not in COMMANDS:
        raise ValueError(f"unknown classaware command {command!r}; known: {', '.join(COMMANDS)}")
    return importlib.import_module(f"{__name__}.{COMMANDS[command][0]}")
