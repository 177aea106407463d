"""Training methods by name: ``method`` in a config picks one (see ``registry``)."""

from weakseg.methods.registry import Method, build_method, list_methods, register_method

__all__ = ["Method", "build_method", "list_methods", "register_method"]
