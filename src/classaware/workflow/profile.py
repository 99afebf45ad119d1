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

Before anything is written or added: the command must run in the project (``dvc.yaml`` beside
``params.yaml``, and ``profiles/``); the archive must exist and be one ``prepare`` reads (a
gzip-compressed tar holding the official batches or ``train/CLASS/...`` and ``test/CLASS/...``
folders of the ten classes: its listing is checked, not its images), so a mistaken ``--data`` or
a missing official archive is an error naming the fix (``classaware download`` or ``--data``)
rather than a failure at ``prepare``; and ``params.yaml`` must hold no edits that no profile
makes (a hand edit is kept unless ``--force``: it differs from every profile's rendering, and
from git's committed copy). Then the parameters are checked against every stage: DVC renders
``dvc.yaml`` with them in a temporary copy (its own interpolation, exactly as ``dvc repro``
would), and each stage's command is parsed by that stage's options as the stage itself parses
it (:mod:`classaware.config`). A value some stage would refuse (``attack.test_size: null``, a
boolean where a number belongs, a string a shell would split) is an error naming its key.

The commands that run the pipeline (``classaware repro``, ``slurm submit``, ``replicate``,
``estimate``) check ``params.yaml`` against the profiles' keys first (:func:`params_problems`): a
group missing or a key no profile has (``seed_shfit: 1``, typed by hand) is an error naming it,
where DVC would ignore the key and run with the old value.
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
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import Options, from_args, help_field
from ..data import _FOLDER_ENTRY, CLASSES, file_digests
from ..files import parse_yaml, save_text
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
    base = parse_yaml((profiles_dir / f"{BASE}.yaml").read_text())
    params = base
    if name != BASE:
        path = profiles_dir / f"{name}.yaml"
        override = parse_yaml(path.read_text()) or {}
        if not isinstance(override, dict):
            raise ValueError(f"{path} must be a mapping of groups, got {_kind(override)}")
        try:
            params = merge(base, override)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        check_zoo(params["zoo"], base["zoo"], str(path))
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


def project_problem(root: Path, profiles_dir: Path) -> str | None:
    """Why ``root`` is not a classaware project (dvc.yaml there, and the profiles' folder), if it is not."""
    if (root / "dvc.yaml").is_file() and (profiles_dir / f"{BASE}.yaml").is_file():
        return None
    return (
        f"{root.resolve()} is not a classaware project (it needs dvc.yaml and {profiles_dir}/{BASE}.yaml): "
        "run this in the repository's root folder"
    )


def profile_problem(name: str, profiles_dir: Path) -> str | None:
    """Why ``name`` is no profile of ``profiles_dir``, naming the known ones."""
    if (profiles_dir / f"{name}.yaml").is_file():
        return None
    known = sorted(p.stem for p in profiles_dir.glob("*.yaml"))
    return f"unknown profile {name!r}; known: {', '.join(known) or 'none'} (in {profiles_dir})"


@dataclass(frozen=True)
class Config(Options):
    name: str = help_field(help=f"profile: {', '.join(PROFILES)} (a file profiles/<name>.yaml)", positional=True)
    data: Path | None = help_field(
        None,
        "CIFAR-10 archive for the prepare stage, brought into data/ under DVC (default: the profile's data.archive)",
    )
    profiles_dir: Path = help_field(Path("profiles"), "folder of the profile files")
    out: Path = help_field(Path("params.yaml"), "params file to write, next to dvc.yaml", output="file")
    force: bool = help_field(False, "overwrite params.yaml even where it holds edits no profile makes")

    def check(self) -> list[str]:
        problems = [p for p in (project_problem(self.out.absolute().parent, self.profiles_dir),) if p]
        if not problems and (unknown := profile_problem(self.name, self.profiles_dir)):
            problems.append(unknown)
        if self.data is not None and not self.data.is_file():  # its contents: write() checks them
            problems.append(f"--data {self.data} does not exist (give the path of a CIFAR-10 archive: {ARCHIVE_FORMS})")
        return problems


# ----------------------------------------------------------------------------- the archive
ARCHIVE_FORMS = (
    "the official cifar-10-python.tar.gz (`classaware download`), or a .tar.gz of images "
    "train/CLASS/NAME and test/CLASS/NAME for the ten CIFAR-10 classes"
)
OFFICIAL_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


def archive_problem(path: Path, what: str) -> str | None:
    """Why ``path`` is not a CIFAR-10 archive the ``prepare`` stage reads, judged from its listing
    (a gzip-compressed tar holding the official batches, or an image folder of the ten classes
    in train/ and test/); None when it is one. ``what`` names it in the message."""
    if not path.is_file():
        return f"{what} {path} does not exist (give the path of a CIFAR-10 archive: {ARCHIVE_FORMS})"
    try:
        with tarfile.open(path, "r:gz") as tar:
            names = [m.name for m in tar if m.isfile()]
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        return f"{what} {path} is not a CIFAR-10 archive (not a gzip-compressed tar file: {exc}); give {ARCHIVE_FORMS}"
    if all(any(n.endswith(f"cifar-10-batches-py/{b}") for n in names) for b in OFFICIAL_BATCHES):
        return None
    classes: dict[str, set[str]] = {"train": set(), "test": set()}
    for n in names:
        if m := _FOLDER_ENTRY.search(n):
            classes[m[1]].add(m[2])
    wrong = [split for split, found in classes.items() if found != set(CLASSES)]
    if not wrong:
        return None
    return (
        f"{what} {path} is not a CIFAR-10 archive: {' and '.join(f'{s}/' for s in wrong)} "
        f"{'does' if len(wrong) == 1 else 'do'} not hold the ten classes' folders; give {ARCHIVE_FORMS}"
    )


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
            for out in (parse_yaml(dvc_file.read_text()) or {}).get("outs") or []:
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
        return rendered_commands(root / "dvc.yaml", parse_yaml(params_text))
    except ValueError as exc:
        raise ValueError(f"DVC cannot render dvc.yaml with these parameters: {exc}") from exc


def pipeline_problems(params_text: str, root: Path) -> list[str]:
    """What stops some stage of ``root/dvc.yaml`` from accepting params.yaml ``params_text``:
    one line per params key (or stage), empty when every stage accepts it."""
    params = parse_yaml(params_text)
    templates = parse_yaml((root / "dvc.yaml").read_text())["stages"]
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
def write(name: str, profiles_dir: Path, data: Path | None, out: Path, force: bool = False) -> None:
    """params.yaml ``out`` for profile ``name`` (see the module docstring). ValueError naming each
    key some stage refuses, a missing or mistaken archive, or hand edits in ``out`` (unless
    ``force``), before anything is written or added; ``out`` is put back as it was when the
    archive cannot be brought in."""
    root = out.absolute().parent
    if problem := project_problem(root, profiles_dir) or profile_problem(name, profiles_dir):
        raise ValueError(problem)
    archive = None if data is None else archive_path(data, root)
    text = render(name, profiles_dir, archive)
    problems = pipeline_problems(text, root)
    if problems:
        raise ValueError(f"profile {name}: parameters some stage of dvc.yaml refuses:\n  " + "\n  ".join(problems))
    if data is not None:
        if problem := archive_problem(data, "--data"):
            raise ValueError(problem)
    else:
        named = Path(parse_yaml(text)["data"]["archive"])
        if not (root / named).is_file():
            raise ValueError(
                f"{named}, the CIFAR-10 archive profile {name} reads, does not exist: fetch the official one "
                f"with `classaware download` (internet), or give a local archive with "
                f"`classaware profile {name} --data PATH`"
            )
        if problem := archive_problem(root / named, f"data.archive of profile {name},"):
            raise ValueError(problem)
    if not force and (edits := hand_edits(out, profiles_dir)):
        raise ValueError(
            f"{out} holds edits no profile makes ({edits}); `classaware profile {name} --force` overwrites them, "
            f"or keep them by putting them into {profiles_dir}/NAME.yaml first"
        )
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


# ----------------------------------------------------------------------------- params.yaml as a profile wrote it
def _leaf_map(params: Any) -> dict[str, Any]:
    return dict(_leaves(params)) if isinstance(params, dict) else {"(the whole file)": params}


def _differences(ours: dict[str, Any], theirs: dict[str, Any], name: str, most: int = 3) -> str:
    """The first ``most`` keys where params ``ours`` differ from profile ``name``'s ``theirs``, in words."""
    found = []
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        if key not in theirs:
            found.append(f"{key}: {json.dumps(ours[key])}, which no profile has")
        elif key not in ours:
            found.append(f"{key} removed")
        elif ours[key] != theirs[key]:
            found.append(f"{key}: {json.dumps(ours[key])} where profile {name} has {json.dumps(theirs[key])}")
    more = f" and {len(found) - most} more" if len(found) > most else ""
    return "; ".join(found[:most]) + more


def _committed_unchanged(path: Path) -> bool:
    """Whether git tracks ``path`` and it equals git's committed copy (overwriting it loses nothing)."""
    folder = path.absolute().parent
    tracked = _run(["git", "ls-files", "--error-unmatch", "--", path.name], folder).returncode == 0
    return tracked and _run(["git", "diff", "--quiet", "HEAD", "--", path.name], folder).returncode == 0


def hand_edits(out: Path, profiles_dir: Path) -> str | None:
    """What ``out`` holds that no profile's rendering has (with any archive), in words; None when
    it is absent, equals some profile's rendering (the data archive its own), or equals the copy
    git has committed."""
    if not out.is_file():
        return None
    text = out.read_text()
    try:
        ours = parse_yaml(text)
    except yaml.YAMLError as exc:
        return f"it does not parse as YAML: {str(exc).splitlines()[0]}"
    archive = _lookup(ours, "data.archive") if isinstance(ours, dict) else None
    renderings: dict[str, list[dict]] = {}  # each profile's, on its own archive, then on this file's
    for path in sorted(profiles_dir.glob("*.yaml")):
        for data in [None, *([Path(archive)] if isinstance(archive, str) else [])]:
            try:
                renderings.setdefault(path.stem, []).append(merged_params(path.stem, profiles_dir, data))
            except (ValueError, KeyError, TypeError):  # a broken profile file renders nothing
                continue
    if any(ours == r for found in renderings.values() for r in found) or _committed_unchanged(out):
        return None
    own = ours.get("profile") if isinstance(ours, dict) else None
    name = own if own in renderings else BASE
    if not renderings.get(name):
        return "it matches no profile"
    return _differences(_leaf_map(ours), _leaf_map(renderings[name][-1]), name)  # on this file's archive


def params_problems(params: Any, profiles_dir: Path, where: str = "params.yaml") -> list[str]:
    """What keeps ``params`` (params.yaml's contents) from being a profile's parameters: a group or
    key that every profile has and it lacks, one that no profile has (a misspelling DVC would
    ignore: ``seed_shfit: 1``), another kind of value (a mapping for a number); each naming the
    key. Zoo members are names: each must give exactly the options of paper.yaml's members."""
    base = parse_yaml((profiles_dir / f"{BASE}.yaml").read_text())
    if not isinstance(params, dict):
        return [f"{where} must be a mapping of groups, got {_kind(params)}"]
    problems: list[str] = []

    def compare(ours: dict, theirs: dict, path: str) -> None:
        for key in ours:
            if key not in theirs:
                known = ", ".join(map(str, theirs))
                problems.append(
                    f"{where}: unknown key {path + str(key)!r} (a misspelling? no profile has it, and DVC would "
                    f"ignore it); {path.rstrip('.') or 'the top level'} has {known}"
                )
        for key, value in theirs.items():
            if key not in ours:
                problems.append(f"{where} lacks {path + str(key)!r}, which every profile gives")
            elif isinstance(value, dict) and not isinstance(ours[key], dict):
                problems.append(f"{where}: {path + str(key)!r} must be a mapping, got {_kind(ours[key])}")
            elif isinstance(value, dict) and path + key not in REPLACED_WHOLE:
                compare(ours[key], value, f"{path}{key}.")

    compare(params, base, "")
    if not problems and isinstance(params.get("zoo"), dict):
        try:
            check_zoo(params["zoo"], base["zoo"], where)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def params_file_problems(path: Path, profiles_dir: Path = Path("profiles")) -> list[str]:
    """:func:`params_problems` of the file ``path``, with the fix; none where the folder is not a
    classaware project (no profiles) or has no params file (a DVC pipeline of another kind)."""
    if not (profiles_dir / f"{BASE}.yaml").is_file() or not path.is_file():
        return []
    try:
        params = parse_yaml(path.read_text())
    except yaml.YAMLError as exc:
        return [f"{path} does not parse as YAML: {str(exc).splitlines()[0]}"]
    problems = params_problems(params, profiles_dir, str(path))
    if problems:
        problems[-1] += f" (rewrite {path} with `classaware profile NAME`, or edit it by hand)"
    return problems


def missing_archive_problem(params_path: Path) -> str | None:
    """Why the pipeline cannot start: the CIFAR-10 archive ``params_path``'s ``data.archive`` names
    is not there, with the fix (``classaware download``, or ``--data``); None when it is, or when
    the file names none. DVC would say "missing data 'source'" at the first stage."""
    try:
        params = parse_yaml(params_path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    archive = _lookup(params, "data.archive") if isinstance(params, dict) else None
    if not isinstance(archive, str) or (params_path.parent / archive).exists():
        return None
    name = params.get("profile") if isinstance(params.get("profile"), str) else "NAME"
    return (
        f"{archive}, the CIFAR-10 archive {params_path.name} names (data.archive), does not exist: fetch the "
        f"official one with `classaware download` (internet), or run on a local archive: "
        f"`classaware profile {name} --data PATH`"
    )


def run(cfg: Config) -> None:
    write(cfg.name, cfg.profiles_dir, cfg.data, cfg.out, cfg.force)
    log.info("%s now holds the %s profile; run `dvc repro` (or `classaware repro --jobs N`)", cfg.out, cfg.name)
