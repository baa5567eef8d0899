"""The core, with the k-fold labels shuffled (--label_source=random, an ablation): the same post rate, none of the
evidence. What the perception learns from real labels is measured against this.
"""

from __future__ import annotations

import numpy as np


def shuffled_labels(labels: list[str], seed: int) -> list[str]:
    """The same labels in a random order."""
    perm = np.random.default_rng(seed).permutation(len(labels))
    return [labels[i] for i in perm.tolist()]
