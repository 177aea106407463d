"""Import every built-in method so it registers itself."""

from weakseg.methods import ae, genseg, mean_teacher, partial, seg_only  # noqa: F401
