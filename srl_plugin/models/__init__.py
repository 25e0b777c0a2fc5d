"""Model components and the SRL, SlotContrast, SlotCurri, SSync and VideoSAUR method models (docs/ARCHITECTURE.md)."""
from srl_plugin.models.attention import MultiHeadAttention
from srl_plugin.models.backbone import FrozenViTBackbone
from srl_plugin.models.composed import ComposedVideoModel
from srl_plugin.models.curriculum import CurriculumLearnedInit
from srl_plugin.models.decoders import MLPBroadcastDecoder, SlotMixerDecoder
from srl_plugin.models.initializers import FixedLearnedInit, RandomInit
from srl_plugin.models.mlp import NormedMLP, build_relu_mlp
from srl_plugin.models.patch_backbone import PatchPixelBackbone, PatchPixels
from srl_plugin.models.predictor import TransformerPredictor
from srl_plugin.models.projection import Projection
from srl_plugin.models.processor import RecurrentProcessor
from srl_plugin.models.slot_attention import SlotAttention
from srl_plugin.models.slotcontrast import SlotContrastModel
from srl_plugin.models.slotcurri import SlotCurriModel
from srl_plugin.models.srl import SRLModel
from srl_plugin.models.ssync import SSyncModel
from srl_plugin.models.synergy_labels import SynergyPseudoLabels
from srl_plugin.models.videosaur import VideoSAURModel

__all__ = [
    "ComposedVideoModel",
    "CurriculumLearnedInit",
    "FixedLearnedInit",
    "FrozenViTBackbone",
    "MLPBroadcastDecoder",
    "MultiHeadAttention",
    "NormedMLP",
    "PatchPixelBackbone",
    "PatchPixels",
    "Projection",
    "RandomInit",
    "RecurrentProcessor",
    "SRLModel",
    "SSyncModel",
    "SlotAttention",
    "SlotContrastModel",
    "SlotCurriModel",
    "SlotMixerDecoder",
    "SynergyPseudoLabels",
    "TransformerPredictor",
    "VideoSAURModel",
    "build_relu_mlp",
]
