"""Networks: the GenSeg generator and discriminators, and the AE / seg-only baselines, behind a registry.

Importing this package registers every model: ``create_model("genseg", width=0.25)``.
"""

from __future__ import annotations

from weakseg.models.autoencoder import AEOutput, AutoEncoderSegmenter
from weakseg.models.decoder import Decoder
from weakseg.models.discriminators import MultiScaleDiscriminator
from weakseg.models.encoder import Encoder, depth_for_size
from weakseg.models.registry import create_model, list_models, register_model
from weakseg.models.segmenter import SegOnly
from weakseg.models.translation import GenSegGenerator, TranslationOutput

__all__ = [
    "AEOutput",
    "AutoEncoderSegmenter",
    "Decoder",
    "Encoder",
    "GenSegGenerator",
    "MultiScaleDiscriminator",
    "SegOnly",
    "TranslationOutput",
    "create_model",
    "depth_for_size",
    "list_models",
    "register_model",
]
