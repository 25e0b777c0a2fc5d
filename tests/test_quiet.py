"""The misleading Lightning / torch notices are silenced; other notices still show."""
from __future__ import annotations

import logging
import warnings

from srl_plugin.training.quiet import silence_misleading_notices


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_adverts_and_expected_warnings_are_dropped_others_kept() -> None:
    silence_misleading_notices()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    collect, level, disabled = _Collect(), logger.level, logger.disabled
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    logger.disabled = False  # Hydra's logging setup in earlier tests may disable existing loggers
    try:
        # logged as rank_zero_info does on rank 0 (rank_zero_info itself is a no-op once a DDP test set another rank)
        logger.info("💡 Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
        logger.info("GPU available: False")
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
        logger.disabled = disabled
    assert collect.messages == ["GPU available: False"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_misleading_notices()  # its filters go in front of "always"
        warnings.warn("Found 56 module(s) in eval mode at the start of training. This may lead to ...")
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`")
        warnings.warn("something else")
    assert [str(item.message) for item in caught] == ["something else"]
