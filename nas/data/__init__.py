"""Proxy data sets, held on the training device as tensors.

Every loader returns a :class:`ProxyData`: float32 NCHW images already resized
to the proxy resolution and normalised with the training split's per-channel
mean/std, int64 labels, and the kind of augmentation that suits the data.
Small data sets fit in (GPU) memory, so :class:`DeviceLoader` shuffles and
augments on the device and yields batches by indexing: no worker processes,
no host-to-device copy per step.

Three splits (``nas.data.splits``): train, validation (what the search and
the choice of family members see) and test (read only by an explicit
``load(..., test=True)``, so a search never holds it).

Sources: the embedded ``digits`` (scikit-learn's) and ``mnist5k`` (5,000 MNIST
digits), no download and no path (``nas.data.embedded``); CIFAR-10/100 in
their python pickle format, ImageFolder trees (one sub-directory per class)
and ``.npz`` files with ``x``/``y``, given a local path. Anything wrong with a
path raises ``InputError("<path>: <problem>")``.
"""

from __future__ import annotations

from nas.config import DATASET_FORMATS as FORMATS
from nas.config import EMBEDDED_DATASETS
from nas.data.container import ProxyData
from nas.data.imagefolder import IMAGE_SUFFIXES
from nas.data.loader import DeviceLoader, augment_batch
from nas.data.loading import clear_cache, detect_format, load

__all__ = ["EMBEDDED_DATASETS", "FORMATS", "IMAGE_SUFFIXES", "DeviceLoader", "ProxyData", "augment_batch",
           "clear_cache", "detect_format", "load"]
