"""Loss functions of VideoSAUR, SlotContrast and SRL (docs/METHODS.md §2.3, §3.3, §4.3-§4.7), SlotCurri
(docs/METHODS.md §11) and SSync (§10.3).

Every function takes tensors in the ``batch, time, [slots], tokens, channels`` layout of docs/METHODS.md §0
(``ssim_loss``: volumes ``batch, channels, time, height, width``), returns a 0-dim tensor
(``per_slot_reconstruction_error``: one value per slot), and raises ``ValueError`` on wrongly shaped input.
"""
from srl_plugin.losses.modules import (
    DecoderConsistencyLoss,
    EncoderConsistencyLoss,
    FeatureReconstructionLoss,
    SlotRedundancyLoss,
    SlotSlotContrastLoss,
    SRLSlotContrastLoss,
    SSIMLoss,
    TemporalSimilarityLoss,
    WeightedLoss,
)
from srl_plugin.losses.consistency import decoder_consistency_loss, encoder_consistency_loss
from srl_plugin.losses.mse_cls import MSECLSLoss, mse_cls_loss
from srl_plugin.losses.reconstruction import feature_reconstruction_loss, per_slot_reconstruction_error
from srl_plugin.losses.redundancy import slot_redundancy_loss
from srl_plugin.losses.schedule import LossWindow
from srl_plugin.losses.slot_contrast import slotcontrast_loss, srl_slot_contrastive_loss
from srl_plugin.losses.ssim import ssim_loss
from srl_plugin.losses.temporal_similarity import temporal_similarity_loss, temporal_similarity_target

__all__ = [
    "DecoderConsistencyLoss",
    "EncoderConsistencyLoss",
    "FeatureReconstructionLoss",
    "SRLSlotContrastLoss",
    "SSIMLoss",
    "SlotRedundancyLoss",
    "SlotSlotContrastLoss",
    "TemporalSimilarityLoss",
    "WeightedLoss",
    "LossWindow",
    "MSECLSLoss",
    "decoder_consistency_loss",
    "encoder_consistency_loss",
    "feature_reconstruction_loss",
    "mse_cls_loss",
    "per_slot_reconstruction_error",
    "slot_redundancy_loss",
    "slotcontrast_loss",
    "srl_slot_contrastive_loss",
    "ssim_loss",
    "temporal_similarity_loss",
    "temporal_similarity_target",
]
