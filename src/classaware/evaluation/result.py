"""The result of an evaluation: its per-image labels and what is computed from them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..files import save_json
from ..metrics import PairDistance
from . import report, tables
from .compare import PairedComparison, compare_sets
from .samples import Samples, to_csv


@dataclass(frozen=True)
class Evaluation:
    """What :func:`classaware.evaluate` returns.

    ``samples`` holds every label per image (:class:`~.samples.Samples`); ``dists`` Dist(F1, F2)
    per target when measured; ``manifest`` what made it. Every table is computed from ``samples``
    on demand, so an Evaluation read back from ``samples.npz`` (:meth:`from_samples`) gives the
    same tables.

    Arguments:
        samples (Samples): every label per image, and the sets' keys (attack, eps, objective).
        dists (dict[str, PairDistance]): Dist(F1, F2) per target name, when measured. Default: {}.
        manifest (dict | None): what made the evaluation (models, attack, data, versions). Default: None.

    Shape:
        - samples.y, samples.source_clean: (N,) int64 labels; samples.target_clean: (M, N) for M targets.
        - per set: t (N,) or None; source_adv (N,); target_adv (M, N).

    Examples::

        >>> import torch
        >>> from classaware.evaluation.samples import AdversarialLabels, Samples, SetKey
        >>> y = torch.tensor([0, 1, 2, 0])
        >>> s = AdversarialLabels(SetKey("pgd", 1.0, "untargeted"), None, torch.tensor([1, 2, 0, 0]), torch.tensor([[1, 1, 1, 0]]))
        >>> ev = Evaluation(Samples("toy", "F1", ("F2",), 3, None, y, y.clone(), y[None].clone(), (s,)))
        >>> {r.metric: r.count for r in ev.table() if r.target == "F2" and r.metric in ("unfooled", "different", "same")}
        {'unfooled': 1, 'different': 1, 'same': 1}
    """

    samples: Samples
    dists: dict[str, PairDistance] = field(default_factory=dict)
    manifest: dict | None = None

    @classmethod
    def from_samples(cls, path: str | Path) -> Evaluation:
        """An Evaluation read back from a ``samples.npz``."""
        return cls(Samples.load(path))

    def table(self) -> list[tables.SummaryRow]:
        """The long-format summary: every metric of every set and target (:func:`.tables.summary`)."""
        return tables.summary(self.samples, self.dists)

    def per_class(self) -> list[tables.ClassRow]:
        """The three ratios per true class, source wrong class and target class (:func:`.tables.per_class`)."""
        return tables.per_class(self.samples)

    def pairs(self, top: int = 50) -> list[tables.PairRow]:
        """The y1 -> y2 different mistakes (:func:`.tables.pairs`): dense up to 20 classes, else the top pairs."""
        return tables.pairs(self.samples, top)

    def compare(self, other: Evaluation) -> list[PairedComparison]:
        """This evaluation's attacks against ``other``'s on the same images, set by set in order
        (the first set of each when one has a single set), per shared target: McNemar's exact
        test and Newcombe's paired interval (:mod:`.compare`)."""
        a, b = self.samples.sets, other.samples.sets
        pairs = (
            list(zip(a, b, strict=False))
            if len(a) == len(b)
            else [(x, y) for x in a[:1] for y in b]
            if len(a) == 1
            else [(x, b[0]) for x in a]
        )
        return [c for x, y in pairs for c in compare_sets(self.samples, x, other.samples, y)]

    def save(
        self, folder: str | Path, comparisons: list[PairedComparison] | None = None, draw: bool = True
    ) -> list[Path]:
        """Write every output into ``folder`` (each file atomically; other files there are left as
        they are): summary.csv and summary.json, per_class.csv, pairs.csv, samples.npz,
        predictions.csv (n <= 100,000 rows), figures/ (PNG + CSV), report.md and report.html,
        manifest.json (when known) and comparisons.csv (when given). Returns the paths written."""
        from . import figures  # matplotlib: only for what saves figures, not for `import classaware`

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        summary, per_class, pair_rows = self.table(), self.per_class(), self.pairs()
        written = [folder / n for n in ("summary.csv", "summary.json", "per_class.csv", "pairs.csv", "samples.npz")]
        figures.write_rows(summary, written[0])
        save_json({"format": "classaware-evaluate-summary/1", "rows": [asdict(r) for r in summary]}, written[1])
        figures.write_rows(per_class, written[2])
        figures.write_rows(pair_rows, written[3])
        self.samples.save(written[4])
        if len(self.samples.y) * len(self.samples.sets) <= 100_000:
            to_csv(self.samples, folder / "predictions.csv")
            written.append(folder / "predictions.csv")
        if comparisons:
            figures.write_rows(comparisons, folder / "comparisons.csv")
            written.append(folder / "comparisons.csv")
        pngs = figures.draw_all(summary, pair_rows, self.samples.num_classes, folder / "figures") if draw else []
        written += [p for png in pngs for p in (png, png.with_suffix(".csv"))]
        title = f"Class-aware transferability from {self.samples.source}"
        report.write(report.markdown(summary, pair_rows, comparisons or [], pngs, title), folder)
        written += [folder / "report.md", folder / "report.html"]
        if self.manifest is not None:
            save_json(json.loads(json.dumps(self.manifest, default=str)), folder / "manifest.json")
            written.append(folder / "manifest.json")
        return written
