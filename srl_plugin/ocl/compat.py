"""Runtime compatibility fixes for OCL (upstream HEAD 0a97292) on a current stack.

They are applied when ``srl_plugin.ocl`` is imported in an environment where OCL is installed, and by the Hydra
search-path plugin (``hydra_plugins/srl_plugin_searchpath``) when the running Hydra app has imported ``ocl``
(``ocl_train``, ``ocl_eval``). They change OCL's module attributes only, never numpy, matplotlib, timm or
torch themselves:

- ``ocl.scheduling._CosineAnnealingWithWarmup`` passes ``verbose`` positionally to ``_LRScheduler``, which
  torch >= 2.7 no longer accepts (TypeError in ``cosine_annealing_with_optional_warmup``).
- ``ocl.preprocessing`` uses ``numpy.NaN`` (removed in numpy 2) in ``MaskInstances``.
- ``ocl.visualizations.Segmentation`` uses ``matplotlib.cm.get_cmap`` (removed in matplotlib 3.9); the
  optical-flow visualisation uses ``np.math`` (removed in numpy 2).
- ``ocl.feature_extractors.timm`` (OCL's timm extractor, written for timm 0.6) decorates its models with
  ``timm.models.registry.register_model``; timm 1.x still ships that module as a deprecated alias but no longer
  imports it, so it is imported before OCL's extractor. The extractor's ``timm.models.vision_transformer.ParallelBlock``
  (timm 1.x: ``ParallelThingsBlock`` / ``ParallelScalingBlock``) is given to it through its own ``timm`` name.
"""
from __future__ import annotations

import importlib.util
import inspect
import math
import types
from typing import Any

APPLIED_FLAG = "_srl_plugin_compat_applied"


class _ModuleWithAliases(types.ModuleType):
    """A stand-in for a module that adds a few attributes and forwards every other lookup to it."""

    def __init__(self, module: types.ModuleType, **aliases: Any) -> None:
        super().__init__(module.__name__, module.__doc__)
        self.__dict__.update(aliases)
        self._wrapped = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


def _patch_cosine_scheduler() -> bool:
    from torch.optim.lr_scheduler import LRScheduler

    import ocl.scheduling

    if "verbose" in inspect.signature(LRScheduler.__init__).parameters:
        return False
    cls = ocl.scheduling._CosineAnnealingWithWarmup

    def __init__(self, optimizer, T_max: int, warmup_steps: int = 0, eta_min: float = 0.0,
                 last_epoch: int = -1, error_on_exceeding_steps: bool = True, verbose: bool = False) -> None:
        self.T_max = T_max
        self.warmup_steps = warmup_steps
        self.eta_min = eta_min
        self.error_on_exceeding_steps = error_on_exceeding_steps
        LRScheduler.__init__(self, optimizer, last_epoch)

    cls.__init__ = __init__
    return True


def _patch_numpy_aliases() -> list[str]:
    import numpy

    import ocl.preprocessing
    import ocl.visualizations

    patched = []
    if not hasattr(numpy, "NaN"):
        ocl.preprocessing.numpy = _ModuleWithAliases(numpy, NaN=numpy.nan)
        patched.append("ocl.preprocessing.numpy.NaN")
    if not hasattr(numpy, "math"):
        ocl.visualizations.np = _ModuleWithAliases(numpy, math=math)
        patched.append("ocl.visualizations.np.math")
    return patched


def _patch_get_cmap() -> bool:
    import matplotlib

    import ocl.visualizations

    if hasattr(matplotlib.cm, "get_cmap"):
        return False

    def _get_cmap(self, num_classes: int) -> list[tuple[int, int, int]]:
        if num_classes not in self._cmap_cache:
            name = "tab20" if num_classes <= 20 else "turbo"
            colours = matplotlib.colormaps[name].resampled(num_classes)(range(num_classes))
            self._cmap_cache[num_classes] = [tuple((255 * colour[:3]).astype(int)) for colour in colours]
        return self._cmap_cache[num_classes]

    ocl.visualizations.Segmentation._get_cmap = _get_cmap
    return True


def _patch_timm_extractor() -> bool:
    import timm
    import timm.models.registry  # noqa: F401  (timm 1.x's alias module; OCL's extractor reads it at import)
    import timm.models.vision_transformer as vision_transformer

    import ocl.feature_extractors.timm as ocl_timm

    if hasattr(vision_transformer, "ParallelBlock"):
        return False
    parallel_blocks = (vision_transformer.ParallelThingsBlock, vision_transformer.ParallelScalingBlock)
    ocl_timm.timm = _ModuleWithAliases(
        timm,
        models=_ModuleWithAliases(
            timm.models, vision_transformer=_ModuleWithAliases(vision_transformer, ParallelBlock=parallel_blocks)
        ),
    )
    return True


def apply_patches() -> list[str]:
    """Applies the fixes that the installed versions need (once) and returns their names."""
    import ocl

    if getattr(ocl, APPLIED_FLAG, None) is not None:
        return list(getattr(ocl, APPLIED_FLAG))
    patched = []
    if _patch_cosine_scheduler():
        patched.append("ocl.scheduling._CosineAnnealingWithWarmup.__init__")
    patched.extend(_patch_numpy_aliases())
    if _patch_get_cmap():
        patched.append("ocl.visualizations.Segmentation._get_cmap")
    if _patch_timm_extractor():
        patched.append("ocl.feature_extractors.timm.timm.models.vision_transformer.ParallelBlock")
    setattr(ocl, APPLIED_FLAG, tuple(patched))
    return patched


def ocl_installed() -> bool:
    """Whether OCL can be imported (its ``ocl.scheduling`` module is found; the unrelated PyPI ``ocl`` lacks it)."""
    return importlib.util.find_spec("ocl") is not None and importlib.util.find_spec("ocl.scheduling") is not None


def apply_if_ocl_installed() -> list[str]:
    """:func:`apply_patches` when OCL is installed; otherwise nothing."""
    return apply_patches() if ocl_installed() else []
