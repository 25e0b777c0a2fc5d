"""Standalone training harness: Lightning module, LR schedule, checkpoints and the `srl-train`,
`srl-eval`, `srl-compare` and `srl-demo` entry points (docs/ARCHITECTURE.md).

Load a trained or imported model with ``srl_plugin.runtime.load_model(path_or_run_dir)``.
"""
