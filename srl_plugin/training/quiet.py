"""Lightning / torch notices that mislead in this project, silenced once per process.

- Lightning's "Tip ... litlogger" advert (printed for every Trainer).
- "Found N module(s) in eval mode at the start of training": expected here, the frozen backbone stays in eval
  mode on purpose (`FrozenViTBackbone.train`).
- torch's "`isinstance(treespec, LeafSpec)` is deprecated", raised inside Lightning's own pytree helper.
"""
from __future__ import annotations

import logging
import warnings

_ADVERT_LOGGER = "lightning.pytorch.utilities.rank_zero"


class _DropAdverts(logging.Filter):
    """Drops Lightning's litlogger advert, keeps every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def silence_misleading_notices() -> None:
    """Installs the filters (idempotent)."""
    logger = logging.getLogger(_ADVERT_LOGGER)
    if not any(isinstance(existing, _DropAdverts) for existing in logger.filters):
        logger.addFilter(_DropAdverts())
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated")
