"""Equal-size image batches decoded ahead of the model: the JPEG decode and normalisation of extraction and DeepLab
inference, in loader processes while the device works on the previous batch.

With ``workers`` 0 the batches are made in this process, one after the other, exactly as before the loader existed;
with more, a torch DataLoader over the same batches (in the same order) makes them in that many processes, two batches
ahead each. Either way a batch holds the same numbers: decoding and normalising are per-pixel operations, whatever
process or thread count runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .transforms import normalize_image

Batch = tuple[list[str], list[np.ndarray], torch.Tensor, Any]


class ImageBatches(torch.utils.data.Dataset):
    """Item ``i``: (the ids of ``batches[i]``, their uint8 pictures, their normalised batch [B, 3, H, W] on the CPU,
    ``extra(pictures)`` or None): ``extra`` is more host work on the pictures to do ahead, such as PIL resizing."""

    def __init__(self, layout, batches: Sequence[Sequence[str]], extra: Callable[[list[np.ndarray]], Any] | None) -> None:
        self.layout, self.batches, self.extra = layout, [list(batch) for batch in batches], extra

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> Batch:
        ids = self.batches[index]
        pictures = [self.layout.load_image(image_id) for image_id in ids]
        images = torch.stack([normalize_image(picture) for picture in pictures])
        return ids, pictures, images, self.extra(pictures) if self.extra is not None else None


def _as_made(item):
    """The DataLoader's per-item conversion: none (the pictures stay numpy arrays, the ids strings)."""
    return item


def prefetched_batches(layout, batches: Sequence[Sequence[str]], workers: int, pin_memory: bool,
                       extra: Callable[[list[np.ndarray]], Any] | None = None) -> Iterator[Batch]:
    """:class:`ImageBatches` in order, made here (``workers`` 0) or in ``workers`` loader processes; ``pin_memory``
    (a CUDA device) pins each batch so its copy to the device can overlap the host's work; ``extra``: see
    :class:`ImageBatches` (a module-level function or a partial of one: it travels to the loader processes)."""
    dataset = ImageBatches(layout, batches, extra)
    if workers <= 0:
        for index in range(len(dataset)):
            yield dataset[index]
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=min(workers, max(1, len(dataset))),
                                         collate_fn=_as_made, pin_memory=pin_memory, prefetch_factor=2)
    yield from loader
