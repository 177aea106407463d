"""The built-in scorings, registered by name (``weakseg.evaluation.registry``)."""

from weakseg.evaluation.brats_volumes import evaluate_brats_volumes
from weakseg.evaluation.image_set import evaluate_image_set
from weakseg.evaluation.organs import evaluate_organs
from weakseg.evaluation.registry import register_scoring

register_scoring("image_set")(evaluate_image_set)
register_scoring("organs")(evaluate_organs)
register_scoring("brats_volumes")(evaluate_brats_volumes)
