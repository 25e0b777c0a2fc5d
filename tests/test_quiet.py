"""The misleading Lightning / torch notices are silenced; other notices still show."""
from __future__ import annotations

import logging
import warnings

from lightning.pytorch.utilities import rank_zero_info

from srl_plugin.training.quiet import silence_misleading_notices


def test_adverts_and_expected_warnings_are_dropped_others_kept(caplog) -> None:
    silence_misleading_notices()
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        rank_zero_info("💡 Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
        rank_zero_info("GPU available: False")
    assert [record.getMessage() for record in caplog.records] == ["GPU available: False"]
    with warnings.catch_warnings(record=True) as caught:
        silence_misleading_notices()  # catch_warnings restores the filters on exit; install them inside
        warnings.warn("Found 56 module(s) in eval mode at the start of training. This may lead to ...")
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`")
        warnings.warn("something else")
    assert [str(item.message) for item in caught] == ["something else"]
