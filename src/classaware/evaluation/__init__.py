"""``classaware evaluate``: the class-aware view of any transfer attack between any PyTorch models.

The library's labels-in functions (:func:`classaware.metrics.class_aware_transfer`,
:class:`classaware.metrics.Proportion`, :func:`classaware.boundary.model_distance`) stay the one
source of the numbers; this package sits in front of them (adapters for models, attacks, data and
adversarial examples saved by other tools) and behind them (tables, published denominators, a
paired comparison, figures, a report and a manifest). One module per job:

* :mod:`.models`: models by name (torchvision, timm), zoo checkpoints, state dicts, TorchScript,
  ``module:object``, ensembles; each takes images in [0, 1] and does its own preprocessing;
* :mod:`.attacks`: the project's attacks, torchattacks, torchattack, callables, TransferAttack's
  conventions, each checked batch by batch (shape, finite, [0, 1], eps ball);
* :mod:`.datasets`: CIFAR-10 archives and canonical files, ImageFolder trees, the NIPS'17 layout,
  tensor files; target classes (random, from the file, least likely);
* :mod:`.saved`: adversarial examples already on disk (TransferAttack's PNG folder, TA-Bench's
  ``batch_*.npy``, torchattacks' ``.pt``);
* :mod:`.measure`: the streaming loop that produces per-image labels (:class:`.samples.Samples`),
  cached per batch so a run resumes and a new target does not recompute the attack;
* :mod:`.tables`, :mod:`.compare`, :mod:`.figures`, :mod:`.report`, :mod:`.manifest`: what is
  computed and written from the labels;
* :mod:`.api`: :func:`classaware.evaluate`; :mod:`.command` and :mod:`.score`: the CLI commands.

Nothing here imports :mod:`classaware.stages` or :mod:`classaware.workflow`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# subcommand -> (module of this package, one-line help); modules are imported only when used
COMMANDS = {
    "evaluate": (
        "command",
        "class-aware view of any transfer attack: source, targets, attack, data -> tables, figures, report",
    ),
    "score": ("score", "recompute evaluate's tables, figures and report from its samples.npz or a predictions CSV"),
}


def load(command: str) -> ModuleType:
    """The module of command ``command``; ValueError for one the registry lacks."""
    if command not in COMMANDS:
        raise ValueError(f"unknown classaware command {command!r}; known: {', '.join(COMMANDS)}")
    return importlib.import_module(f"{__name__}.{COMMANDS[command][0]}")
