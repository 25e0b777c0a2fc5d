"""Puts srl-plugin's OCL configs on the search path of OCL's Hydra apps, so ``ocl_train +experiment=srl/...`` resolves.

Hydra imports this module and calls :meth:`SRLPluginSearchPathPlugin.manipulate_search_path` at the start of
every Hydra app in the environment. Only in apps that have loaded OCL (``ocl_train``, ``ocl_eval``, or a
process that imported ``ocl`` before composing) does it act: it applies the runtime compatibility fixes of
:mod:`srl_plugin.ocl.compat` (on import of ``srl_plugin.ocl``), registers the plugin's config resolvers and the
config source of the plugin's experiments (:mod:`srl_plugin.ocl.experiments`), and appends
``pkg://srl_plugin.configs.ocl`` (the OCL experiments) and ``srl-plugin://`` (the group ``srl_experiment/``
they include). Other apps (``srl-train``, ``srl-eval``) are left unchanged.
"""
from __future__ import annotations

import sys

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

SEARCH_PATH_PROVIDER = "srl-plugin"
OCL_CONFIGS = "pkg://srl_plugin.configs.ocl"


class SRLPluginSearchPathPlugin(SearchPathPlugin):
    """Appends the plugin's OCL experiments (``srl/``, ``slotcontrast/``, ``videosaur/``, ...) for OCL's apps."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if "ocl" not in sys.modules:
            return
        from srl_plugin.ocl.experiments import SCHEME, StandaloneExperimentSource, register_resolvers

        register_resolvers()
        Plugins.instance().register(StandaloneExperimentSource)
        search_path.append(provider=SEARCH_PATH_PROVIDER, path=OCL_CONFIGS)
        search_path.append(provider=SEARCH_PATH_PROVIDER, path=f"{SCHEME}://")
