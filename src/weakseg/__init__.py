"""weakseg: medical image segmentation from weak labels.

Two method families share one label-status data model (``weakseg.data.status``):
presence/absence translation segmentation (GenSeg, Vorontsov et al.) and training with missing
organ annotations (SMILE / SMILEr, Petit et al.).
"""

from __future__ import annotations

__version__ = "0.1.0"

from weakseg.errors import WeaksegError

__all__ = ["__version__", "WeaksegError"]
