"""Import every built-in method so it registers itself."""

from weakseg.methods import seg_only  # noqa: F401
