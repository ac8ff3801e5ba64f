"""Batches from tensors that already live on the training device, augmented there."""

from __future__ import annotations

import torch


def augment_batch(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with ``pad`` pixels of edge padding, and a horizontal flip, per image, on x's device.

    Done as two gathers with shifted, clamped indices, so no padded copy is made
    (clamping is replicate padding: the border colour, which for digits is the
    background).
    """
    b, c, h, w = x.shape
    dev = x.device
    shift = torch.randint(-pad, pad + 1, (2, b, 1), generator=generator, device=dev)
    iy = (torch.arange(h, device=dev) + shift[0]).clamp_(0, h - 1)
    ix = (torch.arange(w, device=dev) + shift[1]).clamp_(0, w - 1)
    if flip:
        mirror = torch.rand(b, 1, generator=generator, device=dev) < 0.5
        ix = torch.where(mirror, w - 1 - ix, ix)
    x = x.gather(2, iy[:, None, :, None].expand(b, c, h, w))
    return x.gather(3, ix[:, None, None, :].expand(b, c, h, w))


class DeviceLoader:
    """Batches from tensors that already live on the training device.

    Shuffling and augmentation use ``generator`` (a ``torch.Generator`` on the
    same device) so a run is repeatable from its seed.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                 drop_last: bool = False, augment: str = "none", generator: torch.Generator | None = None) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x, self.y = x, y
        # Never a batch of one in training: BatchNorm cannot normalise it.
        self.batch_size = max(1, min(batch_size, len(x)))
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator
        res = x.shape[-1]
        self._pad = {"crop_flip": max(1, res // 8), "translate": max(1, res // 8), "none": 0}[augment]
        self._flip = augment == "crop_flip"

    def __len__(self) -> int:
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        n, b = len(self.x), self.batch_size
        order = torch.randperm(n, generator=self.generator, device=self.x.device) if self.shuffle else None
        for i in range(len(self)):
            if order is None:
                xb, yb = self.x[i * b:(i + 1) * b], self.y[i * b:(i + 1) * b]
            else:
                idx = order[i * b:(i + 1) * b]
                xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
            if self._pad:
                xb = augment_batch(xb, self._pad, self._flip, self.generator)
            yield xb, yb
