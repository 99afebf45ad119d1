"""Section 3's analysis of the ratios and distances: the rows of Fig. 3, the curves of Fig. 5,
the correlations the paper reports, and every named quantity the claims are checked on.

Inputs are the JSON written by the ``transfer`` and ``distance`` stages (and, for section 4,
by ``tables``); outputs are plain dicts and floats, so figures, claims and the report all read
the same numbers.
"""

from __future__ import annotations

import math
from statistics import mean

from .metrics import Z_95

RATIOS = ("unfooled", "different", "same", "fooled")


def eps_key(eps: float) -> str:
    """How an eps is spelt as a JSON key: 1.0 -> '1', 0.25 -> '0.25'."""
    return f"{eps:g}"


def check_eps(transfer: dict, eps: str) -> None:
    """Raise ValueError unless every source's every attack was run at ``eps``."""
    attacks = [a for s in transfer["sources"].values() for a in s["attacks"].values()]
    if not attacks or any(eps not in a["eps"] for a in attacks):
        attacked = sorted({e for a in attacks for e in a["eps"]}, key=float)
        raise ValueError(f"figure_eps {eps} is not an eps every attack was run at (attacked: {', '.join(attacked) or 'none'}); "
                         "set figures.figure_eps to one of them")


def pearson(a: list[float], b: list[float]) -> float | None:
    """Pearson's r of paired samples; None below 3 pairs or with a constant sample."""
    if len(a) != len(b):
        raise ValueError("samples must be paired")
    n = len(a)
    if n < 3:
        return None
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    saa = sum((x - ma) ** 2 for x in a)
    sbb = sum((y - mb) ** 2 for y in b)
    if saa == 0 or sbb == 0:
        return None
    return max(-1.0, min(1.0, sab / math.sqrt(saa * sbb)))


def fisher_interval(r: float | None, n: int) -> tuple[float, float] | None:
    """95% interval of a correlation by Fisher's z: tanh(atanh(r) -+ 1.96 / sqrt(n - 3))."""
    if r is None or n < 4:
        return None
    if abs(r) == 1.0:
        return (r, r)
    z, half = math.atanh(r), Z_95 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def attack_names(transfer: dict, source: str) -> list[str]:
    """The source's attacks in a fixed order: FGM before PGD, untargeted before targeted."""
    attacks = transfer["sources"][source]["attacks"]
    order = {"fgm": 0, "pgd": 1, "untargeted": 0, "targeted": 1}
    return sorted(attacks, key=lambda a: (order.get(attacks[a]["method"], 9), order.get(attacks[a]["objective"], 9), a))


def transfer_rows(transfer: dict, distance: dict, source: str, attack: str, eps: str) -> list[dict]:
    """Fig. 3's bars for one source and attack at one eps: one row per target F2 with its
    ratios, their 95% intervals and Dist(F1, F2), sorted by Dist descending (the most similar
    F2 on the right, as in the paper); targets without a Dist go first."""
    src = transfer["sources"][source]
    results = src["attacks"][attack]["eps"][eps]
    dists = distance["sources"][source]["targets"]
    rows = []
    for target, r in results.items():
        d = dists.get(target, {})
        row = {"target": target, "relation": src["info"][target]["relation"], "family": src["info"][target]["family"],
               "n": r["n"], "dist": d.get("dist"), "dist_ci_low": d.get("ci_low"), "dist_ci_high": d.get("ci_high")}
        for k in RATIOS:
            row[k], row[f"{k}_ci_low"], row[f"{k}_ci_high"] = r[k]["ratio"], r[k]["ci_low"], r[k]["ci_high"]
        row["target_hit"] = r["target_hit"]["ratio"] if r.get("target_hit") else None
        rows.append(row)
    return sorted(rows, key=lambda row: (row["dist"] is not None, -(row["dist"] or 0.0)))


def correlations(transfer: dict, distance: dict, eps: str) -> list[dict]:
    """Per source and attack, across the targets F2: r(fooled, same), r(Dist, same) and
    r(Dist, fooled) with Fisher 95% intervals (the paper's section 3.3 numbers)."""
    out = []
    for source in transfer["sources"]:
        for attack in attack_names(transfer, source):
            rows = [r for r in transfer_rows(transfer, distance, source, attack, eps) if r["same"] is not None]
            with_dist = [r for r in rows if r["dist"] is not None]
            entry = {"source": source, "attack": attack, "n_targets": len(rows)}
            for name, xs, ys, n in (
                ("fooled_same", [r["fooled"] for r in rows], [r["same"] for r in rows], len(rows)),
                ("dist_same", [r["dist"] for r in with_dist], [r["same"] for r in with_dist], len(with_dist)),
                ("dist_fooled", [r["dist"] for r in with_dist], [r["fooled"] for r in with_dist], len(with_dist)),
            ):
                r = pearson(xs, ys)
                ci = fisher_interval(r, n)
                entry[f"r_{name}"], entry[f"r_{name}_ci"] = r, list(ci) if ci else None
            out.append(entry)
    return out


def eps_curves(transfer: dict, source: str, attack: str) -> dict[str, dict[str, list]]:
    """Fig. 5's curves: {target: {"eps": [...], ratio: [...] for each ratio}} over the sweep."""
    per_eps = transfer["sources"][source]["attacks"][attack]["eps"]
    eps_keys = sorted(per_eps, key=float)
    curves: dict[str, dict[str, list]] = {}
    for e in eps_keys:
        for target, r in per_eps[e].items():
            c = curves.setdefault(target, {"eps": [], **{k: [] for k in RATIOS}})
            c["eps"].append(float(e))
            for k in RATIOS:
                c[k].append(r[k]["ratio"])
    return curves


def _by_relation(transfer: dict, source: str, prefix: str) -> list[str]:
    info = transfer["sources"][source]["info"]
    return [t for t in transfer["sources"][source]["models"][1:] if info[t]["relation"].startswith(prefix)]


def _ratio(transfer: dict, source: str, attack: str, eps: str, target: str, key: str) -> float | None:
    return transfer["sources"][source]["attacks"][attack]["eps"][eps][target][key]["ratio"]


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def section3_metrics(transfer: dict, distance: dict, eps: str) -> dict[str, float | None]:
    """The named quantities section 3's claims are checked on (see claims.yaml). ``eps`` is
    Fig. 3's budget; the eps trends compare the smallest and largest eps of the sweep."""
    corr = correlations(transfer, distance, eps)
    sources = list(transfer["sources"])
    m: dict[str, float | None] = {}
    rs = [c["r_fooled_same"] for c in corr]
    m["min_corr_fooled_same"] = None if None in rs or not rs else min(rs)
    rs = [c["r_dist_same"] for c in corr]
    m["max_corr_dist_same"] = None if None in rs or not rs else max(rs)
    rs = [c["r_dist_fooled"] for c in corr]
    m["max_corr_dist_fooled"] = None if None in rs or not rs else max(rs)

    wsame, early, early_dist = [], [], []
    for s in sources:
        for t in _by_relation(transfer, s, "w:same"):
            wsame.append(_ratio(transfer, s, "fgm-targeted", eps, t, "different"))
        for t in _by_relation(transfer, s, "v:"):
            early.append(_ratio(transfer, s, "fgm-targeted", eps, t, "different"))
            early_dist.append(distance["sources"][s]["targets"].get(t, {}).get("dist"))
    m["wsame_different_targeted_fgm"] = _mean(wsame)
    m["early_different_targeted_fgm"] = _mean(early)
    m["early_max_dist"] = None if None in early_dist or not early_dist else max(early_dist)

    rises, changes, majority = [], [], []
    for s in sources:
        for attack in attack_names(transfer, s):
            for target, c in eps_curves(transfer, s, attack).items():
                if c["same"][0] is not None and c["same"][-1] is not None and len(c["eps"]) > 1:
                    rises.append(c["same"][-1] > c["same"][0])
                    changes.append(c["different"][-1] - c["different"][0])
            if transfer["sources"][s]["attacks"][attack]["objective"] == "untargeted":
                for row in transfer_rows(transfer, distance, s, attack, eps):
                    if row["same"] is not None:
                        majority.append(row["same"] >= row["different"])
    m["frac_same_rises_with_eps"] = sum(rises) / len(rises) if rises else None
    m["mean_different_change_with_eps"] = _mean(changes)
    m["frac_same_majority_untargeted"] = sum(majority) / len(majority) if majority else None

    ordered = []
    for s in sources:
        info, dists = transfer["sources"][s]["info"], distance["sources"][s]["targets"]
        own = [d["dist"] for t, d in dists.items() if info[t]["family"] == info[s]["family"] and d["dist"] is not None]
        other = [d["dist"] for t, d in dists.items() if info[t]["family"] != info[s]["family"] and d["dist"] is not None]
        if own and other:
            ordered.append(max(own) < min(other))
    m["frac_sources_family_closest"] = sum(ordered) / len(ordered) if ordered else None
    return m


def section4_metrics(table1: dict, table2: dict) -> dict[str, float | None]:
    """The named quantities section 4's claims are checked on (see claims.yaml)."""
    best: dict[tuple[str, str], float] = {}
    for r in table2["rows"]:
        key = (r["pair"], r["label"])
        best[key] = max(best.get(key, 0.0), r["test_acc"])
    deviations = [abs(r["test_acc"] - r["paper"] / 100) for r in table2["rows"] if r["paper"] is not None]
    baseline_dev = [abs(b["test_acc"] - b["paper"] / 100) for b in table2["baseline"] if b["paper"] is not None]
    return {
        "table1_min_both": min(r["both"]["ratio"] for r in table1["rows"]) if table1["rows"] else None,
        "table2_min_best_arch": min(best.values()) if best else None,
        "table2_max_abs_deviation": max(deviations) if deviations else None,
        "baseline_max_abs_deviation": max(baseline_dev) if baseline_dev else None,
    }
