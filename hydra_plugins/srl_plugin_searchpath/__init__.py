"""Hydra search-path plugin of srl-plugin (discovered through the ``hydra_plugins`` namespace package)."""
