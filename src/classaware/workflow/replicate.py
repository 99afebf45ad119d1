"""Command ``replicate``: the pipeline again with other seeds, as DVC experiments, and each
claim's verdict over the replicates.

Replicate i is the experiment ``dvc exp run -S seed_shift=i`` (i from ``--first_shift``: a
confirmatory run takes seed shifts no earlier run has used): every stage that draws at
random (initial weights, data order, target classes, image selections) shifts its seeds by i
(each stage's :class:`classaware.draws.Draws`), so the replicates differ only in their draws. Replicate 0 is the pipeline
as it is, which DVC restores from its run cache when the workspace already ran it. The
experiments are queued and run by DVC's own queue (``dvc exp run --queue``, then ``dvc exp
run --run-all``), so each is an ordinary experiment that ``dvc exp show`` lists, and their
claims are read back from ``dvc exp show --json``. Queued experiments start from git's index
(tracked files and staged changes): the ``.dvc`` file of an archive ``classaware profile
--data`` brought in is staged for that reason. A claim file DVC could not read (an ``error``
entry in place of ``data``) or a claim missing from one replicate is an error naming the
experiment, the file and DVC's error: no claim is left out of the summary.

Per claim, the summary gives the mean, lowest and highest value, how many replicates pass,
and a verdict (``results.ReplicatedClaim``): the verdict every replicate gives, "pass within noise" or
"fail within noise" when they are all on one side of the bound but not all decided, unstable when
they disagree on the side.
It is written to ``out`` (JSON) and ``table`` (Markdown). Each replicate's per-target data, from
which its claims are recomputed (the ratios, Dist, Tables 1 and 2, the zoo under the paper's
conditions, its claims and the figures' CSVs: :data:`PER_TARGET`), is kept under
``keep_dir/EXPERIMENT/``, read from the experiment's own commit through DVC's ``DVCFileSystem``. The
workspace's report is then rendered
again (``dvc repro --force --single-item report``), so that it opens with the verdict over the
replicates: the report stage cannot declare ``out`` as a dependency, since DVC requires a
dependency to exist and only this command, which runs DVC itself and so cannot be a stage,
makes it.
An interrupted call is run again as it was: it clears what the earlier one left (``clearing``)
and DVC's run cache gives back every stage that had finished.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..config import Options, help_field
from ..files import parse_yaml, save_bytes, save_text
from ..schema import ReplicatedClaim, Replicates
from ..text import interval, markdown_table, natural_key, number, padded, unpadded
from .pipeline import workspace_problems
from .profile import params_file_problems, profile_problem, project_problem
from .profile import write as write_profile

log = logging.getLogger(__name__)
PROFILES_DIR = Path("profiles")
CLAIMS_DIR = "metrics/claims"  # where verify writes one JSON per claim (dvc.yaml)
REPORT_INPUT = "results/claims.json"  # the workspace's own claims, which the report needs
# what a reviewer needs to recompute a replicate's claims (with claims.yaml): per target and pair
PER_TARGET = (
    "results/transfer.json", "results/distance.json", "results/conditions.json", "results/table1.json",
    "results/table2.json", "results/claims.json", "figures/fig3.csv", "figures/fig5.csv", "figures/correlations.csv",
)  # fmt: skip


@dataclass(frozen=True)
class Config(Options):
    runs: int = help_field(3, "replicates: seed shifts first_shift .. first_shift + runs - 1", ge=1)
    first_shift: int = help_field(0, "the first replicate's seed shift (0: the workspace's own draws)", ge=0)
    profile: str | None = help_field(None, "write this profile to params.yaml first, as `classaware profile`")
    data: Path | None = help_field(None, "with --profile: the CIFAR-10 archive, as `classaware profile --data`")
    jobs: int = help_field(1, "experiments run at once by DVC's queue", ge=1)
    params: Path = help_field(Path("params.yaml"), "the params file the experiments start from")
    out: Path = help_field(Path("results/replicates.json"), "the summary, as JSON", output="file")
    table: Path = help_field(Path("results/replicates.md"), "the summary, as a Markdown table", output="file")
    keep_dir: Path = help_field(
        Path("results/replicates"),
        "folder of each replicate's per-target data (one folder per experiment)",
        output="dir",
    )

    def check(self) -> list[str]:
        if self.data is not None and self.profile is None:
            return ["--data needs --profile"]
        return []


def preflight(cfg: Config) -> None:
    """What keeps the replicates from starting, as ValueError, before anything runs: not in the
    project, an unknown profile, no params file, or one no profile would write."""
    problems = [p for p in (project_problem(Path.cwd(), PROFILES_DIR),) if p] or workspace_problems(Path.cwd())
    if not problems and cfg.profile is not None:
        problems = [p for p in (profile_problem(cfg.profile, PROFILES_DIR),) if p]
    elif not problems and not cfg.params.is_file():
        problems = [f"{cfg.params} does not exist: write it with `classaware profile NAME` (or pass --profile NAME)"]
    elif not problems:
        problems = params_file_problems(cfg.params, PROFILES_DIR)
    if problems:
        raise ValueError("; ".join(problems))


def _dvc(*args: str) -> str:
    """Run ``dvc ARGS`` in the working directory; its output, or ValueError with DVC's message."""
    done = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"`dvc {' '.join(args)}` failed: {(done.stderr or done.stdout).strip()[-2000:]}")
    return done.stdout


def name(profile: str, shift: int) -> str:
    return f"{profile}-seed{shift}"


def _named(shown: list[dict], names: set[str]) -> dict[str, dict]:
    """The newest entry of each named experiment in ``dvc exp show --json``'s output."""
    found: dict[str, dict] = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            if exp.get("name") in names:
                found.setdefault(exp["name"], exp)
    return found


def _state(exp: dict) -> str:
    return (exp.get("executor") or {}).get("state", "success")  # no executor: a finished experiment


def _error(entry: dict) -> str:
    """DVC's error of an entry of ``dvc exp show --json`` ({"type", "msg"}), as text."""
    error = entry.get("error") or {}
    return ": ".join(filter(None, (error.get("type"), error.get("msg")))) or "no data and no error given"


def experiments(shown: list[dict], names: set[str]) -> dict[str, dict]:
    """The data of the named experiments in ``dvc exp show --json``'s output (each with its
    commit as ``rev``), newest first; ValueError naming an experiment that failed, or that DVC
    could not read (with DVC's error)."""
    found = {}
    for name, exp in _named(shown, names).items():
        if (state := _state(exp)) != "success":
            raise ValueError(f"experiment {name} ended in state {state!r}; see `dvc queue logs`")
        rev = exp["revs"][0]
        if not rev.get("data"):
            raise ValueError(f"experiment {name}: DVC could not read it: {_error(rev)}")
        found[name] = {**rev["data"], "rev": rev.get("rev")}
    return found


def keep(found: dict[str, dict], names: list[str], keep_dir: Path) -> None:
    """Each named experiment's per-target data (:data:`PER_TARGET`) into ``keep_dir/NAME/``,
    from its own commit, through DVC's documented file system of a revision
    (``dvc.api.DVCFileSystem(".", rev=COMMIT)``: DVC's cache and git, no network; one DVC in this
    process rather than a ``dvc get`` per file); ValueError naming the experiment and the file
    DVC cannot give."""
    from dvc.api import DVCFileSystem  # DVC's import takes a second: only this command needs it

    for name in names:
        rev = found[name].get("rev")
        if not rev:
            raise ValueError(f"experiment {name}: dvc exp show gives no commit to read its results from")
        folder = keep_dir / name
        fs = DVCFileSystem(".", rev=rev)
        for path in PER_TARGET:
            try:
                data = fs.read_bytes(path)
            except Exception as exc:  # DVC raises several types for a file its revision lacks
                raise ValueError(f"experiment {name} (commit {rev}): DVC cannot give {path}: {exc}") from exc
            save_bytes(data, folder / Path(path).name)
        log.info("kept %s's per-target data in %s", name, folder)


def clearing(shown: list[dict], names: set[str]) -> list[list[str]]:
    """The ``dvc`` commands that clear the named experiments of an earlier call, whatever their state.

    A call that was interrupted leaves its experiments behind in every state: finished ones are
    experiments (``dvc exp remove``), queued and failed ones are queue tasks (``dvc queue remove``),
    and one whose worker died stays "running" until ``dvc queue kill`` marks it failed. The stages
    they finished stay in DVC's run cache, so the rerun restores them instead of computing them again.
    """
    states = {name: _state(exp) for name, exp in _named(shown, names).items()}
    running = sorted(n for n, s in states.items() if s == "running")
    tasks = sorted(n for n, s in states.items() if s in ("queued", "running", "failed"))
    done = sorted(n for n, s in states.items() if n not in tasks)
    return [
        cmd for cmd in (["queue", "kill", *running], ["queue", "remove", *tasks], ["exp", "remove", *done]) if cmd[2:]
    ]


def claim_values(name: str, data: dict) -> dict[str, dict]:
    """{claim id: {"value", "verdict", ...}} from experiment ``name``'s metrics (files named by
    ``verify.metric_file``: S03.01.json holds claim S3.1); ValueError naming the experiment, the
    file and DVC's error for a claim file DVC could not read."""
    claims = {}
    for path, entry in (data.get("metrics") or {}).items():
        if Path(path).parent.as_posix() != CLAIMS_DIR:
            continue
        if "data" not in entry:
            raise ValueError(f"experiment {name}: DVC could not read {path}: {_error(entry)}")
        if not isinstance(entry["data"], dict) or not {"value", "verdict"} <= set(entry["data"]):
            raise ValueError(f"experiment {name}: {path} holds no claim (value and verdict): {entry['data']!r}")
        claims[unpadded(Path(path).stem)] = entry["data"]
    return claims


def replicate_claims(found: dict[str, dict], names: list[str]) -> list[dict[str, dict]]:
    """Each named experiment's claims (:func:`claim_values`), in the order of ``names``;
    ValueError unless every one has the same claims, and at least one."""
    claims = [claim_values(name, found[name]) for name in names]
    every = set().union(*claims)
    if not every:
        raise ValueError(f"no experiment has claim metrics ({CLAIMS_DIR}/*.json): {', '.join(names)}")
    for name, theirs in zip(names, claims, strict=True):
        if missing := sorted(every - set(theirs), key=natural_key):
            raise ValueError(
                f"experiment {name} has no {', '.join(f'{CLAIMS_DIR}/{padded(c)}.json' for c in missing)}, "
                "which the other replicates have; no claim is left out of the summary"
            )
    return claims


def summarize(profile: str, shifts: list[int], runs: dict[int, dict[str, dict]]) -> Replicates:
    """Each claim over the replicates; every replicate must have the same claims (:func:`replicate_claims`)."""
    ids = sorted(runs[shifts[0]], key=natural_key)  # dvc exp show lists the metric files by name
    claims = {
        cid: ReplicatedClaim.of([runs[s][cid]["value"] for s in shifts], [runs[s][cid]["verdict"] for s in shifts])
        for cid in ids
    }
    return Replicates(profile=profile, seed_shifts=tuple(shifts), claims=claims)


def markdown(replicates: Replicates) -> str:
    n = len(replicates.seed_shifts)
    lines = [
        f"Each claim over {n} replicates of profile `{replicates.profile}` (seed shifts "
        f"{', '.join(map(str, replicates.seed_shifts))}): the runs differ only in their random draws. A verdict is "
        "the verdict every replicate gives; within noise when all are on one side of the bound but not all decided; "
        "not under the paper's conditions when any replicate's zoo breaks them; unstable when they disagree on the "
        "side. Each replicate's per-target data is in its folder beside this table.",
        "",
    ]
    rows = [
        [cid, number(c.mean), interval(c.low, c.high), f"{c.n_pass} of {n}", c.verdict]
        for cid, c in replicates.claims.items()
    ]
    return "\n".join(lines + markdown_table(["claim", "mean", "range", "replicates passing", "verdict"], rows)) + "\n"


def check_workspace(params: dict) -> None:
    """What the experiments' copies of the repository would lack, as ValueError: an archive outside
    the repository (a relative path points elsewhere from .dvc/tmp/exps/...), or a .dvc file
    git does not track (the copies start from git's index)."""
    archive = Path(params["data"]["archive"])
    if archive.is_absolute() or ".." in archive.parts:
        raise ValueError(
            f"data.archive {archive} lies outside the repository, where DVC's experiment copies "
            f"(.dvc/tmp/exps/...) do not find it; bring it in with `classaware profile {params['profile']} --data {archive}`"
        )
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "--", "*.dvc"], capture_output=True, text=True
    )
    if listed.returncode == 0 and (untracked := listed.stdout.split()):
        raise ValueError(
            f"DVC's experiments start from git's index, which lacks {', '.join(untracked)}: `git add` "
            f"{'it' if len(untracked) == 1 else 'them'} first"
        )


def run(cfg: Config) -> None:
    preflight(cfg)
    if cfg.profile is not None:
        write_profile(cfg.profile, PROFILES_DIR, cfg.data, cfg.params)
    params = parse_yaml(cfg.params.read_text())
    check_workspace(params)
    profile = params["profile"]
    shifts = list(range(cfg.first_shift, cfg.first_shift + cfg.runs))
    names = [name(profile, s) for s in shifts]
    for cmd in clearing(json.loads(_dvc("exp", "show", "--json")), set(names)):
        log.info("clearing an earlier call's replicates: dvc %s", " ".join(cmd))
        _dvc(*cmd)
    for shift, exp in zip(shifts, names, strict=True):
        _dvc("exp", "run", "--queue", "--set-param", f"seed_shift={shift}", "--name", exp)
        log.info("queued replicate %s (seed_shift=%d)", exp, shift)
    log.info("running %d replicates, %d at a time (dvc exp run --run-all)", len(shifts), cfg.jobs)
    done = subprocess.run(["dvc", "exp", "run", "--run-all", "--jobs", str(cfg.jobs)])
    found = experiments(json.loads(_dvc("exp", "show", "--json")), set(names))
    if done.returncode != 0 or len(found) != len(names):
        missing = sorted(set(names) - set(found))
        raise ValueError(f"replicates failed or missing: {', '.join(missing) or 'see above'}; see `dvc queue logs`")
    summary = summarize(profile, shifts, dict(zip(shifts, replicate_claims(found, names), strict=True)))
    keep(found, names, cfg.keep_dir)
    summary.save(cfg.out)
    save_text(markdown(summary), cfg.table)
    log.info("replicates of %s: %s", profile, ", ".join(f"{k} {c.verdict}" for k, c in summary.claims.items()))
    if Path(REPORT_INPUT).is_file():
        _dvc("repro", "--force", "--single-item", "report")
        log.info("report/report.md rendered again: it opens with the verdict over the %d replicates", len(shifts))
    else:
        log.info(
            "the workspace has not run the pipeline (no %s): its report shows the replicates once it has", REPORT_INPUT
        )
