"""Integration with Amazon's object-centric-learning-framework (OCL); see docs/OCL.md.

- :mod:`srl_plugin.ocl.standalone`: the ``srl_standalone`` resolver and builders that take model and data
  hyperparameters from the plugin's own experiment configs (``configs/experiment``), so both front doors
  train the same model.
- :mod:`srl_plugin.ocl.modules`: routed-compatible ``nn.Module`` adapters (the whole method model, loss terms).
- :mod:`srl_plugin.ocl.data`: a datamodule wrapper that adds OCL's ``batch_size`` key.
- :mod:`srl_plugin.ocl.visualizations`: the input video for OCL's TensorBoard visualisations.
- :mod:`srl_plugin.ocl.scheduling`: the plugin's LR schedule in the form OCL's ``OptimizationWrapper`` expects.
- :mod:`srl_plugin.ocl.compat`: runtime fixes for OCL on a current stack.

Importing this package applies :mod:`~srl_plugin.ocl.compat`'s fixes when OCL is installed, so plain library
use of OCL beside the plugin works too (e.g. ``import srl_plugin.ocl, ocl.feature_extractors.timm``); without
OCL nothing is imported. The other modules never import OCL at module level.
"""
from srl_plugin.ocl.compat import apply_if_ocl_installed

apply_if_ocl_installed()
