"""The numbers the paper reports, for side-by-side tables and the claims (Waseda et al. 2023).

Rows are in the paper's order; a profile's ``nonrobust.pairs`` and ``nonrobust.archs`` are
matched to them by position (pair i plays the paper's pair i, arch 0 plays ResNet-18 and
arch 1 VGG-16-bn), which is how a reduced run is set beside the paper.
"""

PAIRS = ("Res-18 + VGG-16", "Res-18 + Res-18 (w:same)", "VGG-16 + VGG-16 (w:same)")

# Table 1: success of the N-targeted attack, % (F1(X') = Y1, F2(X') = Y2, both)
TABLE1 = (
    (95.6, 99.0, 95.4),
    (94.1, 94.1, 92.0),
    (99.5, 99.5, 99.2),
)

# Table 2: clean test accuracy, % [pair][label y1, y2][arch Res-18, VGG-16_bn]
TABLE2 = (
    ((51.3, 53.9), (10.2, 71.0)),
    ((50.1, 54.1), (59.2, 58.9)),
    ((63.5, 68.8), (11.0, 73.1)),
)

# Section 4.3: test accuracy when trained on the original training set, %
BASELINE = (88.0, 93.0)
