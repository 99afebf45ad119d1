"""How much the Dist claims move with the rule for images that never flip (REPRODUCE.md).

Usage: ``python benchmarks/dist_sensitivity.py RUN [--eps 1.0]`` (a workspace after ``dvc repro``).

Reads the run's ``results/transfer.json`` and ``results/distance.json`` and prints two Markdown
tables: the section-3 metrics that use Dist (S3.2, S3.3, S3.5a, S3.5b, S3.8) under the rule the
pipeline uses (every image, censored distances as lower bounds) and under the earlier rule
(each pair's mean over only the images both models flip within the first search radius); then,
per source and target, Dist under both rules with the images each rule keeps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from classaware.analysis import section3_metrics
from classaware.schema import DistanceResults, TransferResults
from classaware.text import markdown_table, number

DIST_CLAIMS = ("S3.2", "S3.3", "S3.5a", "S3.5b", "S3.8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--eps", type=float, default=1.0, help="Fig. 3's eps, as verify's --figure_eps")
    args = parser.parse_args()
    transfer = TransferResults.load(args.run / "results/transfer.json")
    distance = DistanceResults.load(args.run / "results/distance.json")
    metric_of = {c["id"]: c["metric"] for c in yaml.safe_load((args.run / "claims.yaml").read_text())["claims"]}
    rules = ("all images", "dropping unflipped")
    by_rule = {rule: section3_metrics(transfer, distance, args.eps, rule) for rule in rules}
    rows = [[cid, metric_of[cid], *(number(by_rule[r][metric_of[cid]].value) for r in rules)] for cid in DIST_CLAIMS]
    print("\n".join(markdown_table(["claim", "metric", "every image (censored)", "dropping unflipped"], rows)))
    print()
    pairs = []
    for source in transfer.sources:
        for target in transfer.targets(source):
            pair = distance.pair(source, target)
            pairs.append(
                [
                    source,
                    target,
                    f"{number(pair.dist)} ({pair.n_images}, {pair.n_censored} censored)",
                    f"{number(pair.dist_dropping_unflipped)} ({pair.n_flipped})",
                ]
            )
    header = ["source", "target", "Dist, every image (images, censored)", "Dist, dropping unflipped (images)"]
    print("\n".join(markdown_table(header, pairs)))


if __name__ == "__main__":
    main()
