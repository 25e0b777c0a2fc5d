"""Integration with Amazon's object-centric-learning-framework (OCL); see docs/OCL.md.

- :mod:`srl_plugin.ocl.experiments`: the config group ``srl_experiment/<method>/<dataset>`` (a Hydra config
  source): the plugin's experiment with every value under ``experiment``, its parts under ``models`` and its
  routed losses under ``losses``, from the same config files as ``srl-train``; and the way back to the
  standalone layout (what checkpoints store).
- :mod:`srl_plugin.ocl.parts`: the parts only OCL needs (frozen feature extractor, SlotCurri's error
  recording, the evaluation masks that OCL's metrics score).
- :mod:`srl_plugin.ocl.checkpoints`: the plugin's checkpoint fields in ``ocl_train``'s checkpoints.
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
