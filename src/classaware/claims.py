"""claims.yaml: the paper's claims and the conditions they are judged under, read and checked.

The file holds ``conditions`` (the rule every model a claim reads must meet, its reason and when
it was chosen) and ``claims`` (each with the metric that tests it, the models it reads, a bound
per profile and why). Both the ``conditions`` stage, which applies the rule to the zoo, and the
``verify`` stage, which judges the claims, read it through this module, so they agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .files import parse_yaml

TESTS = (">=", "<=", "within")
READS = ("comparison", "pairs")  # Fig. 3's sources and targets; section 4's attacked pairs
FIELDS = {"id", "reads", "figure", "claim", "metric", "paper", "test", "bound", "why"}


@dataclass(frozen=True)
class Conditions:
    """The paper's conditions as a checked precondition: every model a claim reads reaches a
    clean test accuracy at most ``within`` (a fraction: 0.05 is 5 accuracy points) below the
    mean accuracy of the zoo's most accurate architecture. ``rule``, ``why`` and ``chosen`` say it
    in words, with its reason and when it was fixed."""

    within: float
    rule: str
    why: str
    chosen: str


def _load(path: Path) -> dict:
    doc = parse_yaml(Path(path).read_text())
    if not isinstance(doc, dict) or set(doc) != {"conditions", "claims"}:
        found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{path} must hold exactly `conditions` and `claims`, got {found}")
    return doc


def load_conditions(path: Path) -> Conditions:
    """The conditions of claims.yaml ``path``; ValueError for a missing field or a bound outside (0, 1)."""
    c = _load(path)["conditions"]
    if not isinstance(c, dict) or set(c) != {"within", "rule", "why", "chosen"}:
        raise ValueError(f"{path}: conditions must give exactly within, rule, why and chosen, got {c!r}")
    if isinstance(c["within"], bool) or not isinstance(c["within"], (int, float)) or not 0 < c["within"] < 1:
        raise ValueError(
            f"{path}: conditions.within must be a fraction in (0, 1) (0.05: 5 points), got {c['within']!r}"
        )
    return Conditions(float(c["within"]), c["rule"], c["why"], c["chosen"])


def load_claims(path: Path, profile: str) -> list[dict]:
    """The claims of claims.yaml ``path``, each checked to be complete, to name what it reads and
    to give a bound for ``profile``; ValueError naming the claim otherwise."""
    claims = _load(path)["claims"]
    for c in claims:
        missing = FIELDS - set(c)
        if missing:
            raise ValueError(f"{path}: claim {c.get('id', '?')} lacks {sorted(missing)}")
        if c["test"] not in TESTS or (c["test"] == "within" and "target" not in c):
            raise ValueError(
                f"{path}: claim {c['id']} has test {c['test']!r}; use one of {TESTS} ('within' needs a target)"
            )
        if c["reads"] not in READS:
            raise ValueError(f"{path}: claim {c['id']} reads {c['reads']!r}; use one of {READS}")
        if profile not in c["bound"]:
            raise ValueError(f"{path}: claim {c['id']} gives no bound for profile {profile!r}")
    return claims


def claim_ids(path: Path) -> list[str]:
    """The ids of every claim of claims.yaml ``path``, in the file's order."""
    return [c["id"] for c in _load(path)["claims"]]
