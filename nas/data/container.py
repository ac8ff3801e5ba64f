"""What the loaders hand over: raw labelled parts, and the finished device-resident data set."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class ProxyData:
    """A data set ready for training: normalised float32 NCHW tensors on one device.

    ``augment`` is ``"crop_flip"`` (random crop with padding + horizontal flip,
    natural images), ``"translate"`` (random shift only: flipping a digit makes
    another symbol) or ``"none"``.

    ``x_test``/``y_test`` are ``None`` unless the data was loaded with
    ``test=True``: the search and the choice of family members load without it,
    so the test images are not even in their memory.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    augment: str = "crop_flip"
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def in_chans(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @property
    def has_test(self) -> bool:
        return self.x_test is not None

    def to(self, device: str | torch.device) -> ProxyData:
        device = torch.device(device)
        if self.x_train.device == device:
            return self

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return replace(self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
                       x_val=self.x_val.to(device), y_val=self.y_val.to(device), x_test=move(self.x_test),
                       y_test=move(self.y_test))


@dataclass
class Part:
    """Labelled images before resizing: NCHW, uint8 0..255 or float, int64 labels."""

    x: torch.Tensor
    y: torch.Tensor

    def take(self, idx) -> Part:  # noqa: ANN001 - numpy or torch indices
        idx = torch.as_tensor(idx, dtype=torch.int64)
        return Part(self.x[idx], self.y[idx])

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Parts:
    """What a format's reader returns: the training pool and the splits the data itself defines.

    ``val`` and ``test`` are ``None`` where the files do not define them; they
    are then carved out of ``train`` (``nas.data.splits``).
    """

    name: str
    train: Part
    num_classes: int
    augment: str
    scale: float  # divide by this to get [0, 1]
    val: Part | None = None
    test: Part | None = None
