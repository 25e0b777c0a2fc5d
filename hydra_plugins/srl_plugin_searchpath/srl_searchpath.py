"""Puts srl-plugin's OCL configs on the search path of OCL's Hydra apps, so ``ocl_train +experiment=srl/...`` resolves.

Hydra imports this module and calls :meth:`SRLPluginSearchPathPlugin.manipulate_search_path` at the start of
every Hydra app in the environment. Only in apps that have loaded OCL (``ocl_train``, ``ocl_eval``, or a
process that imported ``ocl`` before composing) does it act: it registers the ``${srl_standalone:...}``
resolver, applies the runtime compatibility fixes of :mod:`srl_plugin.ocl.compat` and appends
``pkg://srl_plugin.configs.ocl``. Other apps (``srl-train``, ``srl-eval``) are left unchanged.
"""
from __future__ import annotations

import sys

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

SEARCH_PATH_PROVIDER = "srl-plugin"
OCL_CONFIGS = "pkg://srl_plugin.configs.ocl"


class SRLPluginSearchPathPlugin(SearchPathPlugin):
    """Appends ``pkg://srl_plugin.configs.ocl`` (experiments ``srl/``, ``slotcontrast/``, ``videosaur/``) for OCL."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if "ocl" not in sys.modules:
            return
        from srl_plugin.ocl.standalone import register_resolver  # importing srl_plugin.ocl applies compat's fixes

        register_resolver()
        search_path.append(provider=SEARCH_PATH_PROVIDER, path=OCL_CONFIGS)
