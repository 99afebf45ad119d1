"""Command ``profile``: write ``params.yaml`` for one of the pipeline's sizes, once every stage
of ``dvc.yaml`` accepts it.

Profiles: ``profiles/paper.yaml`` is the paper's protocol (and ``params.yaml`` as committed). Any
other profile file states only what differs from it: mappings are merged key by key, while lists
and the zoo (whose keys are member names) are replaced whole, so a profile never inherits half a
zoo. Every key a profile names must exist in paper.yaml, with the same kind of value: a
misspelt group or option is an error that names it, never a silent fallback to the paper's
value.

``--data PATH`` points the ``prepare`` stage at a local CIFAR-10 archive. ``data.archive`` is
always a path inside the repository, so the pipeline finds the archive wherever the workspace
sits: in the copies DVC runs experiments in (``.dvc/tmp/exps/...``: ``classaware replicate``,
``dvc exp run --temp``), on SLURM nodes that mount the workspace elsewhere, and in a reviewer's
clone after ``dvc pull``. An archive outside the repository is brought in under DVC's control,
``dvc add PATH --out data/NAME``, which copies it to ``data/NAME`` and its cache and writes
``data/NAME.dvc``; that file and the ``.gitignore`` DVC writes beside it are staged in git (as
DVC's ``core.autostage`` would), because DVC's queued and temporary experiments start from git's
index and an untracked ``.dvc`` file would not reach them. Commit them with ``params.yaml``. An
archive already inside the repository is used where it is (and added to DVC when neither DVC nor
git tracks it). ``classaware download``'s official archive keeps its own ``data.dvc``.

Before anything is written or added, the parameters are checked against every stage: DVC renders
``dvc.yaml`` with them in a temporary copy (its own interpolation, exactly as ``dvc repro``
would), and each stage's command is parsed by that stage's options as the stage itself parses
it (:mod:`classaware.config`). A value some stage would refuse (``attack.test_size: null``, a
boolean where a number belongs, a string a shell would split) is an error naming its key.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import Options, from_args, help_field
from ..data import file_digests
from ..files import save_text
from ..stages import COMMANDS, load, parser
from . import PROFILES
from .pipeline import rendered_commands

log = logging.getLogger(__name__)
LOCAL_DATA = Path("data")  # where an archive from outside the repository is put

BASE = "paper"
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


@dataclass(frozen=True)
class Config(Options):
    name: str = help_field(help=f"profile: {', '.join(PROFILES)} (a file profiles/<name>.yaml)", positional=True)
    data: Path | None = help_field(
        None,
        "CIFAR-10 archive for the prepare stage, brought into data/ under DVC (default: the profile's data.archive)",
    )
    profiles_dir: Path = help_field(Path("profiles"), "folder of the profile files")
    out: Path = help_field(Path("params.yaml"), "params file to write, next to dvc.yaml", output="file")

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


# ----------------------------------------------------------------------------- the archive
def _real(path: Path) -> Path:
    """``path`` absolute with its folders' symlinks resolved (the file itself may be a link)."""
    return Path(os.path.realpath(path.parent)) / path.name


def archive_path(data: Path, root: Path) -> Path:
    """Where archive ``data`` sits in the repository at ``root``, relative to it: its own path
    when it is inside, else ``data/NAME`` (so only its name must be one a shell leaves alone)."""
    src, root = _real(data), Path(os.path.realpath(root))
    return src.relative_to(root) if src.is_relative_to(root) else LOCAL_DATA / src.name


def _dvc_owner(root: Path, rel: Path) -> tuple[Path, str] | None:
    """(the .dvc file, its md5) of the .dvc file whose output is ``rel``, looked for in rel's folders."""
    for folder in [Path("."), *reversed(rel.parents[:-1])]:
        for dvc_file in sorted(p for p in (root / folder).glob("*.dvc") if p.is_file()):
            for out in (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or []:
                if (folder / out["path"]).as_posix() == rel.as_posix():
                    return dvc_file.relative_to(root), out.get("md5", "")
    return None


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=root, capture_output=True, text=True)


def _dvc(root: Path, *args: str) -> None:
    """``dvc ARGS`` of this interpreter's DVC, in ``root``; ValueError with DVC's message."""
    done = _run([sys.executable, "-m", "dvc", *args], root)
    if done.returncode != 0:
        raise ValueError(f"`dvc {' '.join(args)}` failed: {(done.stderr or done.stdout).strip()[-2000:]}")


def _stage_in_git(root: Path, rel: Path) -> None:
    """``git add`` the .dvc file of ``rel`` and the .gitignore beside it, when ``root`` is in git."""
    if _run(["git", "rev-parse", "--is-inside-work-tree"], root).returncode != 0:
        return  # DVC without git: nothing to stage
    paths = [
        p.as_posix() for p in (rel.with_name(rel.name + ".dvc"), rel.parent / ".gitignore") if (root / p).is_file()
    ]
    done = _run(["git", "add", "--", *paths], root)
    if done.returncode != 0:
        raise ValueError(f"`git add {' '.join(paths)}` failed: {done.stderr.strip()}")
    log.info("staged %s in git: DVC's experiments see what git's index holds; commit them", " and ".join(paths))


def bring_in(data: Path, rel: Path, root: Path) -> None:
    """Put archive ``data`` at ``rel`` in the repository at ``root`` under DVC's control (see
    the module docstring). Nothing happens when it is already there, tracked by DVC with the same
    md5. ValueError when ``rel`` is taken by something else."""
    owner = _dvc_owner(root, rel)
    if _real(data).is_relative_to(Path(os.path.realpath(root))):
        tracked = (
            owner is not None or _run(["git", "ls-files", "--error-unmatch", rel.as_posix()], root).returncode == 0
        )
        if not tracked:
            _dvc(root, "add", rel.as_posix())
            _stage_in_git(root, rel)
        return
    own = rel.with_name(rel.name + ".dvc")
    if owner is not None and owner[0] != own:
        raise ValueError(
            f"--data {data}: {rel} is the output of {owner[0]}; rename the archive, or copy it to {rel} "
            f"and leave out --data"
        )
    if owner is None and (root / rel).exists():
        raise ValueError(f"--data {data}: {rel} exists and DVC does not track it; move it away, or pass --data {rel}")
    if owner is not None and (root / rel).is_file() and file_digests(data)[0] == owner[1]:
        log.info("%s already holds %s (md5 %s)", rel, data, owner[1])
    else:
        (root / rel.parent).mkdir(parents=True, exist_ok=True)  # DVC needs the .dvc file's folder
        _dvc(root, "add", *(["--force"] if owner else []), str(_real(data)), "--out", rel.as_posix())
        log.info("copied %s to %s under DVC's control (%s)", data, rel, own)
    _stage_in_git(root, rel)


# ----------------------------------------------------------------------------- every stage accepts the params
def _lookup(params: dict, key: str):
    """params[a][b] for key "a.b"; None when there is no such key (DVC's own ${key}, ${item})."""
    value = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _leaves(params: dict, where: str = ""):
    """(dotted key, value) of every value that is not a mapping."""
    for key, value in params.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{where}{key}.")
        else:
            yield f"{where}{key}", value


def _key(option: str, body: dict, item: str, params: dict) -> str | None:
    """The params.yaml key that gives stage option ``--option`` its value in the stage
    template ``body`` of dvc.yaml (``item``: the stage's foreach key or matrix values), if any."""
    cmd = body.get("do", body)["cmd"]
    scalar = re.search(rf"--{option}\s+\$\{{([\w.]+)\}}", cmd)
    if scalar:
        name = scalar.group(1)
        if name == "item":  # foreach over a list: the list's key
            return body["foreach"][2:-1]
        if name.startswith("item."):  # a matrix value: the list it is drawn from
            return body["matrix"][name[5:]][2:-1]
        return name
    for group in re.findall(r"\$\{([\w.]+)\}", cmd):  # ${group}: its options, unpacked
        if group == "item" and "foreach" in body:  # foreach over a mapping (the zoo): this member's options
            group = f"{body['foreach'][2:-1]}.{item}"
        options = _lookup(params, group)
        if isinstance(options, dict) and option in options:
            return f"{group}.{option}"
    return None


def _overfull(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """The options of ``args`` followed by more words than they take (a flag takes none, most one)."""
    found, i = [], 0
    while i < len(args):
        j = next((k for k in range(i + 1, len(args)) if args[k].startswith("--")), len(args))
        action = parser._option_string_actions.get(args[i])
        takes = {None: 1, 0: 0}.get(action.nargs, j - i - 1) if action else j - i - 1
        if j - i - 1 > takes:
            found.append(args[i][2:])
        i = j
    return found


def _refusal(cmd: str) -> tuple[str, list[str]] | None:
    """Why the stage refuses its command line ``cmd``, and the options it names; None if it accepts it."""
    argv = shlex.split(cmd)
    if argv[:1] != ["classaware"] or argv[1] not in COMMANDS:
        return None
    config, options_of = load(argv[1]).Config, parser(argv[1])
    try:
        from_args(config, options_of.parse_args(argv[2:]))
    except ValueError as exc:
        message = str(exc)
        options = [a[2:] for a in argv if a.startswith("--")]
        argument = re.match(r"argument --(\w+)", message)  # argparse names the option it could not read
        extra = re.match(r"unrecognized arguments: (\S+)", message)
        if argument:
            named = [argument.group(1)]
        elif extra:  # words no option takes: a split string, or a value after a flag
            named = _overfull(options_of, argv[2:])
        else:  # the Config's own checks name the options they concern
            problems = message.partition("options: ")[2]
            named = [o for o in options if re.search(rf"(?<![\w/.-]){re.escape(o)}(?![\w/.-])", problems)]
        return message, named
    return None


def commands(params_text: str, root: Path) -> dict[str, str]:
    """{stage: its command} as DVC renders ``root/dvc.yaml`` with params.yaml ``params_text``
    (:func:`classaware.workflow.pipeline.rendered_commands`); ValueError with DVC's error when it cannot."""
    try:
        return rendered_commands(root / "dvc.yaml", yaml.safe_load(params_text))
    except ValueError as exc:
        raise ValueError(f"DVC cannot render dvc.yaml with these parameters: {exc}") from exc


def pipeline_problems(params_text: str, root: Path) -> list[str]:
    """What stops some stage of ``root/dvc.yaml`` from accepting params.yaml ``params_text``:
    one line per params key (or stage), empty when every stage accepts it."""
    params = yaml.safe_load(params_text)
    templates = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    try:
        rendered = commands(params_text, root)
    except ValueError as exc:
        return [str(exc)]
    refused: dict[str, list[str]] = {}
    for stage, cmd in rendered.items():
        refusal = _refusal(cmd)
        if refusal is None:
            continue
        message, options = refusal
        base, _, item = stage.partition("@")
        keys = [k for k in (_key(o, templates[base], item, params) for o in options) if k]
        for key in keys or [f"stage {stage}"]:
            refused.setdefault(key, []).append(f"{stage}: {message}")
    # Said first, and instead of what a stage makes of them: DVC writes null into a command as the
    # word None, which a string option takes as a name, and a string that needs quoting may reach
    # the shell unquoted (${data.archive}, a zoo member's name in its paths), where it is split or run.
    lines = [f"{key}: null has no value on a command line (DVC would write None); give one" for key in _nulls(params)]
    unsafe = _shell_unsafe(params)
    lines += [
        f"{key}: {shown} holds characters a shell splits or expands, and DVC writes some strings into the "
        "stages' commands unquoted; use letters, digits and . _ - + @ % = : , / only"
        for key, shown in unsafe.items()
    ]
    for key, refusals in refused.items():
        if key in unsafe or key in _nulls(params):
            continue
        more = f" (and {len(refusals) - 1} more stages)" if len(refusals) > 1 else ""
        if key.startswith("stage "):
            lines.append(f"{refusals[0]}{more}")
        else:
            lines.append(f"{key}: {json.dumps(_lookup(params, key))} is refused by {refusals[0]}{more}")
    return lines


def _nulls(params: dict) -> list[str]:
    return [key for key, value in _leaves(params) if value is None]


def _shell_unsafe(params: dict, where: str = "") -> dict[str, str]:
    """{key: what} for every string of ``params`` (a value, a list's item, a mapping's key) that
    ``shlex.quote`` would have to quote."""
    found = {}
    for key, value in params.items():
        path = f"{where}{key}"
        if shlex.quote(str(key)) != str(key):
            found[path] = f"the name {json.dumps(str(key))}"
        if isinstance(value, dict):
            found |= _shell_unsafe(value, f"{path}.")
        elif any(isinstance(v, str) and shlex.quote(v) != v for v in (value if isinstance(value, list) else [value])):
            found[path] = json.dumps(value)
    return found


# ----------------------------------------------------------------------------- the command
def write(name: str, profiles_dir: Path, data: Path | None, out: Path) -> None:
    """params.yaml ``out`` for profile ``name`` (see the module docstring). ValueError naming each
    key some stage refuses, before anything is written or added; ``out`` is put back as it was
    when the archive cannot be brought in."""
    root = out.absolute().parent
    archive = None if data is None else archive_path(data, root)
    text = render(name, profiles_dir, archive)
    if not (root / "dvc.yaml").is_file():
        raise ValueError(f"{out} must sit next to the pipeline's dvc.yaml (none in {root}): run in the repository")
    problems = pipeline_problems(text, root)
    if problems:
        raise ValueError(f"profile {name}: parameters some stage of dvc.yaml refuses:\n  " + "\n  ".join(problems))
    previous = out.read_text() if out.is_file() else None
    save_text(text, out)  # first: DVC reads dvc.yaml, with these params, to add the archive
    try:
        if data is not None:
            bring_in(data, archive, root)
    except BaseException:
        if previous is None:
            out.unlink()
        else:
            save_text(previous, out)
        raise


def run(cfg: Config) -> None:
    write(cfg.name, cfg.profiles_dir, cfg.data, cfg.out)
    log.info("%s now holds the %s profile; run `dvc repro` (or `classaware repro --jobs N`)", cfg.out, cfg.name)
