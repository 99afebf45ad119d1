"""Seed replicates: what a seed shift changes, how replicate verdicts add up, and what every
artifact records of the machine that computed it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from helpers_repo import JPEG_ARCHIVE, REPO, git, git_commit_all, git_init, locked_hashes, project, smoke_env
from hypothesis import given
from hypothesis import strategies as st
from session_runs import README_SEQUENCE

from classaware import cli
from classaware.data import balanced_split, balanced_subset, file_digests
from classaware.draws import shifted
from classaware.environment import Environment
from classaware.schema import ClaimResults, ReplicatedClaim, Replicates, Table1, Table2, TransferResults
from classaware.stages import verify
from classaware.stages.report import REPLICATED_VERDICTS, counts
from classaware.text import padded
from classaware.workflow import profile, replicate


# ----------------------------------------------------------------------------- seeds
@given(st.integers(0, 2**31), st.integers(1, 50))
def test_replicate_zero_keeps_the_seeds_and_others_shift_them_alike(seed, shift):
    assert shifted(seed, 0) == seed
    assert shifted(seed, shift) == shifted(seed, shift)  # equal seeds stay equal: w:same keeps its init
    assert shifted(seed, shift) != shifted(seed + 1, shift)  # different seeds stay different
    assert shifted(seed, shift) != shifted(seed, shift + 1)
    assert 0 <= shifted(seed, shift) < 2**32


labels = st.lists(st.integers(0, 4), min_size=5, max_size=60).map(torch.tensor)


@given(labels, st.integers(1, 60), st.integers(1, 9))
def test_a_shifted_selection_is_still_balanced_and_nested(y, n, seed):
    canonical = balanced_subset(y, n)
    assert torch.equal(balanced_subset(y, n, 0), canonical)  # replicate 0 selects as before
    picked = balanced_subset(y, n, seed)
    assert len(picked) == min(n, len(y)) and len(set(picked.tolist())) == len(picked)
    counts, available = torch.bincount(y[picked], minlength=5), torch.bincount(y, minlength=5)
    for a in range(5):  # a class falls more than one behind another only when it has no image left
        for b in range(5):
            assert counts[a] >= min(available[a], counts[b] - 1)
    assert set(balanced_subset(y, max(1, n // 2), seed).tolist()) <= set(picked.tolist())  # nested


def test_a_shifted_selection_draws_other_images():
    y = torch.arange(1000) % 10
    assert not torch.equal(balanced_subset(y, 100, 1), balanced_subset(y, 100, 0))
    first, held = balanced_split(y, 300, 100, 3)
    assert set(first.tolist()).isdisjoint(held.tolist())
    assert torch.bincount(y[held]).tolist() == [10] * 10 and torch.bincount(y[first]).tolist() == [30] * 10
    assert not torch.equal(held, balanced_split(y, 300, 100, 0)[1])


# ----------------------------------------------------------------------------- summary
@pytest.mark.parametrize(
    "verdicts, expected",
    [
        (["pass", "pass", "pass"], "pass"),
        (["fail", "fail", "fail"], "fail"),
        (["pass within noise"] * 3, "pass within noise"),
        (["pass", "pass within noise", "pass"], "pass within noise"),  # one side, not all decided
        (["fail within noise", "fail", "fail"], "fail within noise"),
        (["pass", "fail", "pass"], "unstable"),
        (["pass", "fail within noise", "pass"], "unstable"),  # the replicates disagree on the side
        (["not assessed"] * 3, "not assessed"),
    ],
)
def test_a_replicated_verdict_holds_only_when_every_replicate_agrees(verdicts, expected):
    c = ReplicatedClaim.of([0.2, 0.4, 0.3], verdicts)
    assert c.verdict == expected and c.n_pass == sum(v.startswith("pass") for v in verdicts)
    assert (c.mean, c.low, c.high) == (pytest.approx(0.3), 0.2, 0.4)


def test_values_that_cannot_be_computed_are_left_out_of_the_range():
    c = ReplicatedClaim.of([None, None], ["not assessed", "not assessed"])
    assert (c.mean, c.low, c.high, c.verdict) == (None, None, None, "not assessed")


def _exp(name: str, shift: int, claims: dict[str, tuple[float, str]], state: str = "success") -> dict:
    metrics = {f"metrics/claims/{padded(k)}.json": {"data": {"value": v, "verdict": d}} for k, (v, d) in claims.items()}
    metrics["metrics/zoo/m.json"] = {"data": {"test_acc": 0.5}}
    data = {"params": {"params.yaml": {"data": {"seed_shift": shift}}}, "metrics": metrics}
    return {"name": name, "revs": [{"rev": f"{shift:040x}", "data": data}], "executor": {"state": state}}


def test_the_summary_reads_each_replicates_claims_from_dvc_exp_show():
    shown = [
        {"experiments": None},
        {"experiments": [_exp("smoke-seed1", 1, {"S3.1": (0.6, "fail"), "S3.10": (0.1, "pass")}),
                         _exp("smoke-seed0", 0, {"S3.1": (0.4, "pass"), "S3.10": (0.2, "pass")}),
                         _exp("other", 5, {"S3.1": (0.0, "fail")})]},
    ]  # fmt: skip
    found = replicate.experiments(shown, {"smoke-seed0", "smoke-seed1"})
    assert set(found) == {"smoke-seed0", "smoke-seed1"}
    runs = {s: replicate.claim_values(f"smoke-seed{s}", found[f"smoke-seed{s}"]) for s in (0, 1)}
    assert set(runs[0]) == {
        "S3.1",
        "S3.10",
    }  # read back from S03.01.json, S03.10.json; the zoo's metrics are not claims
    summary = replicate.summarize("smoke", [0, 1], runs)
    assert summary.claims["S3.1"].values == (0.4, 0.6) and summary.claims["S3.1"].verdict == "unstable"
    assert summary.claims["S3.10"].verdict == "pass" and summary.claims["S3.10"].n_pass == 2
    table = replicate.markdown(summary)
    assert "| S3.1 | 0.500 | [0.400, 0.600] | 1 of 2 | unstable |" in table  # a range is written [low, high]


def test_the_summary_lists_the_claims_in_the_papers_order_not_by_file_name():
    claims = {cid: {"value": 0.5, "verdict": "pass"} for cid in ["S3.10", "S3.1", "S4.2", "S3.5b", "S3.5a", "S3.9"]}
    summary = replicate.summarize("quick", [0], {0: claims})
    assert list(summary.claims) == ["S3.1", "S3.5a", "S3.5b", "S3.9", "S3.10", "S4.2"]


def _unreadable(exp: dict, claim: str) -> dict:
    """``exp`` with DVC's error in place of the data of claim ``claim``'s file, as dvc exp show gives it."""
    path = f"metrics/claims/{padded(claim)}.json"
    error = {"type": "YAMLFileCorruptedError", "msg": f"unable to read: '{path}', JSON file structure is corrupted"}
    exp["revs"][0]["data"]["metrics"][path] = {"error": error}
    return exp


SHOWN = {
    f"smoke-seed{s}": {"S3.1": ((4 + s) / 10, "pass"), "S3.2": (0.2, "pass"), "S3.10": (0.1, "fail")} for s in range(3)
}


@pytest.mark.parametrize("broken", [0, 2])  # the issue: replicate 2 raised KeyError, replicate 0 dropped the claim
def test_an_unreadable_claim_file_in_any_replicate_is_an_error_naming_experiment_file_and_dvcs_error(broken):
    exps = [_exp(name, s, SHOWN[name]) for s, name in enumerate(SHOWN)]
    _unreadable(exps[broken], "S3.2")
    names = list(SHOWN)
    found = replicate.experiments([{"experiments": exps}], set(names))
    with pytest.raises(ValueError) as info:
        replicate.replicate_claims(found, names)
    assert str(info.value) == (
        f"experiment smoke-seed{broken}: DVC could not read metrics/claims/S03.02.json: YAMLFileCorruptedError: "
        "unable to read: 'metrics/claims/S03.02.json', JSON file structure is corrupted"
    )


@pytest.mark.parametrize("missing", [0, 1])
def test_a_claim_missing_from_one_replicate_is_an_error_never_dropped(missing):
    exps = [_exp(name, s, SHOWN[name]) for s, name in enumerate(SHOWN)]
    del exps[missing]["revs"][0]["data"]["metrics"]["metrics/claims/S03.10.json"]
    names = list(SHOWN)
    with pytest.raises(ValueError) as info:
        replicate.replicate_claims(replicate.experiments([{"experiments": exps}], set(names)), names)
    assert str(info.value) == (
        f"experiment smoke-seed{missing} has no metrics/claims/S03.10.json, which the other replicates have; "
        "no claim is left out of the summary"
    )


def test_every_claim_of_every_replicate_reaches_the_summary():
    names = list(SHOWN)
    found = replicate.experiments([{"experiments": [_exp(n, s, SHOWN[n]) for s, n in enumerate(names)]}], set(names))
    summary = replicate.summarize("smoke", [0, 1, 2], dict(enumerate(replicate.replicate_claims(found, names))))
    assert list(summary.claims) == ["S3.1", "S3.2", "S3.10"] and summary.claims["S3.1"].values == (0.4, 0.5, 0.6)


@pytest.mark.parametrize(
    "rev, message",
    [
        ({"data": None, "error": {"type": "SCMError", "msg": "bad ref"}}, "experiment smoke-seed0: DVC could not read it: SCMError: bad ref"),
        ({"data": {"metrics": {"metrics/claims/S03.01.json": {"data": {"value": 0.1}}}}},
         "experiment smoke-seed0: metrics/claims/S03.01.json holds no claim (value and verdict): {'value': 0.1}"),
        ({"data": {"metrics": {"metrics/zoo/m.json": {"data": {"test_acc": 0.5}}}}},
         "no experiment has claim metrics (metrics/claims/*.json): smoke-seed0"),
    ],
)  # fmt: skip
def test_an_experiment_without_readable_claims_is_an_error(rev, message):
    exp = {"name": "smoke-seed0", "revs": [rev], "executor": {"state": "success"}}
    with pytest.raises(ValueError) as info:
        replicate.replicate_claims(replicate.experiments([{"experiments": [exp]}], {"smoke-seed0"}), ["smoke-seed0"])
    assert str(info.value) == message


def _project(root: Path, archive: str) -> Path:
    """A classaware project (helpers_repo.project) whose params.yaml is the smoke profile on ``archive``."""
    project(root)
    (root / "params.yaml").write_text(yaml.safe_dump(profile.merged_params("smoke", REPO / "profiles", Path(archive))))
    return root


def test_replicate_exits_2_naming_the_experiment_file_and_dvcs_error(tmp_path, monkeypatch, capsys):
    """The command end to end on hand-made ``dvc exp show --json`` output (DVC itself is not run)."""
    exps = [_exp(name, s, SHOWN[name]) for s, name in enumerate(SHOWN)]
    _unreadable(exps[1], "S3.1")
    calls = []

    def dvc(*args):
        calls.append(args)
        return json.dumps([{"experiments": exps}]) if args[:2] == ("exp", "show") else ""

    monkeypatch.chdir(_project(tmp_path, "data/c.tar.gz"))
    monkeypatch.setattr(replicate, "_dvc", dvc)
    monkeypatch.setattr(replicate.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=""))
    assert cli.main(["replicate", "--runs", "3"]) == 2
    err = capsys.readouterr().err
    assert (
        "classaware replicate: error: experiment smoke-seed1: DVC could not read metrics/claims/S03.01.json: "
        "YAMLFileCorruptedError" in err
    )
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "archive, untracked, message",
    [
        ("../shared/data/c.tar.gz", [], "data.archive ../shared/data/c.tar.gz lies outside the repository, where DVC's "
         "experiment copies (.dvc/tmp/exps/...) do not find it; bring it in with `classaware profile smoke --data "
         "../shared/data/c.tar.gz`"),
        ("/data/c.tar.gz", [], "data.archive /data/c.tar.gz lies outside the repository"),
        ("data/c.tar.gz", ["data/c.tar.gz.dvc"], "DVC's experiments start from git's index, which lacks "
         "data/c.tar.gz.dvc: `git add` it first"),
    ],
)  # fmt: skip
def test_replicate_refuses_a_workspace_its_experiments_would_not_see_whole(
    archive, untracked, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(_project(tmp_path, archive))
    for path in untracked:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("outs: []\n")
    monkeypatch.setattr(replicate, "_dvc", lambda *args: pytest.fail(f"dvc {args} ran"))
    assert cli.main(["replicate", "--runs", "2"]) == 2
    assert message in capsys.readouterr().err


def test_each_replicates_per_target_data_is_kept_from_its_own_commit(tmp_path, monkeypatch):
    """Every file a reviewer needs, as the experiment's own commit holds it (a DVC-tracked one from
    DVC's cache, the others from git), into one folder per replicate; a file a commit lacks is an
    error naming the experiment and the file."""
    from dvc.repo import Repo

    git_init(tmp_path)
    Repo.init(tmp_path)
    monkeypatch.chdir(tmp_path)
    commits = {}
    for shift in (2, 3):
        for path in replicate.PER_TARGET:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(f"{path} of replicate {shift}\n")
        with Repo(".") as repo:  # one file under DVC, as the stages' outputs are
            repo.add(replicate.PER_TARGET[0])
        git_commit_all(tmp_path, f"replicate {shift}")
        commits[shift] = git(tmp_path, "rev-parse", "HEAD")
    Path(replicate.PER_TARGET[0]).write_text("the workspace's, which no replicate holds\n")
    found = {f"smoke-seed{s}": {"rev": rev} for s, rev in commits.items()}
    replicate.keep(found, ["smoke-seed2", "smoke-seed3"], tmp_path / "kept")
    for shift in (2, 3):
        kept = {p.name: p.read_text() for p in (tmp_path / "kept" / f"smoke-seed{shift}").iterdir()}
        assert kept == {Path(p).name: f"{p} of replicate {shift}\n" for p in replicate.PER_TARGET}
    replicate.keep(found, ["smoke-seed2"], tmp_path / "kept")  # again: the files are replaced
    no_rev = {"smoke-seed2": {}}
    with pytest.raises(ValueError, match="smoke-seed2: dvc exp show gives no commit"):
        replicate.keep(no_rev, ["smoke-seed2"], tmp_path / "kept")
    git(tmp_path, "rm", "-q", replicate.PER_TARGET[-1])
    git(tmp_path, "commit", "-qm", "one file less")
    lacking = {"smoke-seed4": {"rev": git(tmp_path, "rev-parse", "HEAD")}}
    with pytest.raises(ValueError, match=f"experiment smoke-seed4 .*DVC cannot give {replicate.PER_TARGET[-1]}"):
        replicate.keep(lacking, ["smoke-seed4"], tmp_path / "kept")


def test_a_failed_replicate_is_an_error_naming_it():
    with pytest.raises(ValueError, match="smoke-seed1 ended in state 'failed'"):
        replicate.experiments([{"experiments": [_exp("smoke-seed1", 1, {}, state="failed")]}], {"smoke-seed1"})


def test_a_rerun_clears_what_an_interrupted_call_left_in_every_state():
    shown = [
        {"experiments": [_exp("smoke-seed0", 0, {}), _exp("smoke-seed1", 1, {}, state="running"),
                         _exp("smoke-seed2", 2, {}, state="queued"), _exp("smoke-seed3", 3, {}, state="failed"),
                         _exp("other", 5, {}, state="running")]},
    ]  # fmt: skip
    names = {f"smoke-seed{s}" for s in range(5)}
    assert replicate.clearing(shown, names) == [
        ["queue", "kill", "smoke-seed1"],  # its worker may have died with the call: kill marks it failed
        ["queue", "remove", "smoke-seed1", "smoke-seed2", "smoke-seed3"],
        ["exp", "remove", "smoke-seed0"],
    ]
    assert replicate.clearing([{"experiments": [_exp("smoke-seed0", 0, {})]}], {"smoke-seed1"}) == []


# ----------------------------------------------------------------------------- environment
def test_the_environment_says_what_decides_bit_identity():
    here = Environment.current()
    assert here.device == "cpu" and here.threads == torch.get_num_threads() and here.torch == torch.__version__
    assert here.cpu_capability == torch.backends.cpu.get_cpu_capability() and here.cuda is None
    assert here.reproduces(here)
    other_threads = Environment(**{**here.__dict__, "threads": here.threads + 1})
    assert not here.reproduces(other_threads)  # another thread count: other sums, other bytes
    gpu = Environment(**{**here.__dict__, "device": "NVIDIA H100"})
    assert not gpu.reproduces(gpu)  # GPU runs are never bit-identical
    threads = f"{here.threads} thread{'' if here.threads == 1 else 's'})"  # "1 thread)", "2 threads)"
    assert here.cpu_capability in here.describe() and threads in here.describe()
    assert f"{other_threads.threads} threads)" in other_threads.describe()  # 2 or more: plural


# ----------------------------------------------------------------------------- two replicates of smoke
def test_the_readme_gives_the_sequence_the_suite_runs():
    assert f"`{README_SEQUENCE}`" in (REPO / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.smoke_run("replicates")
def test_two_smoke_replicates_give_each_claim_its_range_and_verdict(background):
    """README's commands as written (session_runs.README_SEQUENCE: ``classaware profile smoke --data
    ../shared/data/cifar10-jpeg.tar.gz && dvc repro && classaware replicate --runs 2``), in a copy
    of their own: replicate 0 is that run itself, replicate 1 draws other seeds; both are DVC
    experiments, run in copies under .dvc/tmp/exps, where the archive's relative path of the
    issue pointed nowhere."""
    if background is None:
        pytest.skip(f"needs the CIFAR-10 archive {JPEG_ARCHIVE}")
    run = background.wait("replicates")
    assert run.returncode == 0, run.output[-6000:]
    summary = Replicates.load(run.repo / "results/replicates.json")
    own = ClaimResults.load(run.repo / "results/claims.json").claims
    assert summary.profile == "smoke" and summary.seed_shifts == (0, 1)
    assert set(summary.claims) == {c["id"] for c in yaml.safe_load((run.repo / "claims.yaml").read_text())["claims"]}
    for cid, claim in summary.claims.items():
        assert claim.values[0] == own[cid].value and claim.verdicts[0] == own[cid].verdict, cid
        assert claim == ReplicatedClaim.of(list(claim.values), list(claim.verdicts)), cid
    assert any(c.values[0] != c.values[1] for c in summary.claims.values() if None not in c.values)
    table = (run.repo / "results/replicates.md").read_text()
    assert all(f"| {cid} |" in table for cid in summary.claims)
    # replicate rendered the workspace's report again: it opens with the verdict over the replicates
    report = (run.repo / "report/report.md").read_text()
    verdicts = {cid: c.verdict for cid, c in summary.claims.items()}
    opening = f"**Claims over 2 seed replicates: {counts(verdicts, REPLICATED_VERDICTS)}.**"
    assert opening in report and report.index(opening) < report.index("## The paper's claims over 2 seed replicates")
    assert report.index("## The paper's claims over 2") < report.index("## The paper's claims in replicate 0")
    shown = subprocess.run(
        ["dvc", "exp", "show", "--json"], cwd=run.repo, env=smoke_env(), capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    found = replicate.experiments(json.loads(shown.stdout), {"smoke-seed0", "smoke-seed1"})
    assert set(found) == {"smoke-seed0", "smoke-seed1"}
    # replicate 1 is the pipeline at seed shift 1 exactly: DVC restored each of its stages from the run of
    # `classaware repro --jobs 2` at seed_shift: 1, so every command, dependency and output is that run's
    serial, shifted = background.wait("serial"), background.wait("jobs2")
    assert locked_hashes(run.repo, found["smoke-seed0"]["rev"]) == serial.hashes
    assert locked_hashes(run.repo, found["smoke-seed1"]["rev"]) == shifted.hashes
    trained = [k for k in serial.hashes if k[0].startswith("train@") and k[1] == "outs"]
    assert trained and all(shifted.hashes[k] != serial.hashes[k] for k in trained)  # other seeds, other weights
    # each experiment, in its copy at another depth, read the archive `classaware profile --data` brought in
    digest = file_digests(JPEG_ARCHIVE)[0]
    assert all(data["deps"][f"data/{JPEG_ARCHIVE.name}"]["hash"] == digest for data in found.values())
    # each replicate's per-target data is kept, and a reviewer recomputes its claims from it alone
    for shift, name in enumerate(("smoke-seed0", "smoke-seed1")):
        kept = run.repo / "results" / "replicates" / name
        cfg = verify.Config(profile="smoke", claims=run.repo / "claims.yaml", transfer=kept / "transfer.json",
                            distance=kept / "distance.json", table1=kept / "table1.json", table2=kept / "table2.json",
                            conditions=kept / "conditions.json", out=run.repo / "x.json", table=run.repo / "x.md",
                            metrics_dir=run.repo / "x")  # fmt: skip
        recomputed = verify.checks(cfg, TransferResults.load(cfg.transfer), Table1.load(cfg.table1),
                                   Table2.load(cfg.table2))  # fmt: skip
        assert recomputed == ClaimResults.load(kept / "claims.json").claims
        assert {cid: c.value for cid, c in recomputed.items()} == {
            cid: c.values[shift] for cid, c in summary.claims.items()
        }
        assert (kept / "fig3.csv").is_file() and (kept / "correlations.csv").is_file()
