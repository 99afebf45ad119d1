"""Profiles: the pipeline's sizes, as params.yaml files made from profiles/paper.yaml.

``profiles/paper.yaml`` is the paper's protocol (and ``params.yaml`` as committed). Any other
profile file states only what differs from it: mappings are merged key by key, while lists and
the zoo (whose keys are member names) are replaced whole, so a profile never inherits half a
zoo. Every key a profile names must exist in paper.yaml, with the same kind of value: a
misspelt group or option is an error that names it, never a silent fallback to the paper's
value. ``data`` points the ``prepare`` stage at a local archive, by its path inside the
repository (``classaware profile --data`` brings an outside one in: ``stages/profile.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BASE = "paper"
# the committed profiles (profiles/NAME.yaml), named in the CLI's help; tests/test_profile.py checks the folder
NAMES = ("paper", "cpu", "quick", "smoke", "gpu-check")
REPLACED_WHOLE = ("zoo",)  # groups whose keys are names, not options: a profile gives them whole


def _kind(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else "a value"


def merge(base: dict, override: dict, where: str = "") -> dict:
    """``base`` with ``override`` merged in (see the module docstring); raises ValueError naming
    the first key of ``override`` that ``base`` does not have or gives another kind of value."""
    merged = dict(base)
    for key, value in override.items():
        path = f"{where}{key}"
        if key not in base:
            known = ", ".join(map(str, base))
            raise ValueError(f"unknown key {path!r}: {where.rstrip('.') or 'the top level'} has {known}")
        if _kind(value) != _kind(base[key]) and base[key] is not None and value is not None:
            raise ValueError(f"{path!r} must be {_kind(base[key])}, got {_kind(value)}: {value!r}")
        if isinstance(value, dict) and path not in REPLACED_WHOLE:
            merged[key] = merge(base[key], value, f"{path}.")
        else:
            merged[key] = value
    return merged


def check_zoo(zoo: dict, reference: dict, where: str) -> None:
    """Every zoo member names exactly the options of paper.yaml's members."""
    options = set(next(iter(reference.values())))
    for member, spec in zoo.items():
        if not isinstance(spec, dict) or set(spec) != options:
            raise ValueError(f"{where}: zoo member {member!r} must give exactly {sorted(options)}, got {spec!r}")


def merged_params(name: str, profiles_dir: Path, data: Path | None = None) -> dict:
    """The parameters of profile ``name``: paper.yaml with the profile's overrides merged in."""
    params = yaml.safe_load((profiles_dir / f"{BASE}.yaml").read_text())
    if name != BASE:
        path = profiles_dir / f"{name}.yaml"
        override = yaml.safe_load(path.read_text()) or {}
        if not isinstance(override, dict):
            raise ValueError(f"{path} must be a mapping of groups, got {_kind(override)}")
        try:
            params = merge(params, override)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        check_zoo(params["zoo"], yaml.safe_load((profiles_dir / f"{BASE}.yaml").read_text())["zoo"], str(path))
    early, saved = params["compare"]["early_epoch"], params["train"]["save_epochs"]
    if early and early not in saved:
        raise ValueError(f"profile {name}: compare.early_epoch {early} is not among train.save_epochs {saved}")
    zoo_seeds = {spec["init_seed"] for spec in params["zoo"].values()}
    if params["grid"]["init_seed"] in zoo_seeds:
        raise ValueError(
            f"profile {name}: grid.init_seed {params['grid']['init_seed']} is a zoo model's init_seed "
            f"({sorted(zoo_seeds)}): Table 2's learners would start from their sources' initial weights"
        )
    params["profile"] = name
    if data is not None:
        params["data"] = {**params["data"], "archive": str(data)}
    return params


def render(name: str, profiles_dir: Path, data: Path | None = None) -> str:
    """The text of params.yaml for profile ``name``: the base file verbatim (comments kept)
    when nothing changes, else the merged parameters as YAML."""
    if name == BASE and data is None:
        return (profiles_dir / f"{BASE}.yaml").read_text()
    header = (
        f"# Written by `classaware profile {name}` from {profiles_dir}/{BASE}.yaml and {profiles_dir}/{name}.yaml;\n"
        "# see those files for what each parameter means. Edit them, not this file.\n"
    )
    return header + yaml.safe_dump(
        merged_params(name, profiles_dir, data), sort_keys=False, default_flow_style=None, width=100
    )
