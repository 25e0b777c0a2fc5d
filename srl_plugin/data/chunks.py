"""Validation chunks and length-grouped batches of the data pipeline (whatever the sample source).

With a chunk size `c` (VideoSAUR on YT-VIS: 6, docs/METHODS.md §1.3) a validation video is scored as its
`floor(T / c)` non-overlapping `c`-frame chunks (remainder dropped; a video shorter than `c` has none), and the
chunks are cut **before** batching, so that videos of any lengths can share batches.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import torch

Item = dict[str, Any]


def split_into_chunk_items(item: Item, chunk_size: int | None) -> list[Item]:
    """One validation item -> its chunks.

    item: `{"__key__": str, <name>: tensor (T, ...)}` (every tensor has the frame axis first).
    Returns `[{**item, "chunk_index": 0}]` when `chunk_size` is None; otherwise one item per chunk `i`, keyed
    `<key>_<i>` (the official keys), with every tensor sliced to frames `i*c .. i*c + c - 1` and
    `"chunk_index": i`; an empty list for a video shorter than `c`.
    """
    if chunk_size is None:
        return [{**item, "chunk_index": 0}]
    tensors = {name: value for name, value in item.items() if torch.is_tensor(value)}
    frames = next(iter(tensors.values())).shape[0]
    return [
        {**item, **{name: value[start : start + chunk_size] for name, value in tensors.items()},
         "__key__": f"{item['__key__']}_{index}", "chunk_index": index}
        for index, start in enumerate(range(0, frames - chunk_size + 1, chunk_size))
    ]


class BatchedByLength:
    """Pipeline stage: batches of up to `batch_size` consecutive items with the same frame count (of the
    tensor `length_key`); a change of length closes the current batch early, so whole videos of any lengths
    can be validated with any batch size (equal-length data such as MOVi batches exactly as `wds.batched`).
    `collate(items) -> batch`."""

    def __init__(self, batch_size: int, collate: Callable[[list[Item]], Item], length_key: str) -> None:
        self.batch_size, self.collate, self.length_key = batch_size, collate, length_key

    def __call__(self, items: Iterable[Item]) -> Iterator[Item]:
        batch: list[Item] = []
        for item in items:
            length = item[self.length_key].shape[0]
            if batch and (len(batch) == self.batch_size or length != batch[0][self.length_key].shape[0]):
                yield self.collate(batch)
                batch = []
            batch.append(item)
        if batch:
            yield self.collate(batch)
