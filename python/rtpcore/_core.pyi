# Type stubs for the compiled core, checked against the built module by
# mypy's stubtest in CI. Each area keeps its own section below and extends
# __all__ with `__all__ += [...]` there.

__all__ = ["__version__"]

__version__: str
