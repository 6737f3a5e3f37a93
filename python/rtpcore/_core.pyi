# Type stubs for the compiled core, checked against the built module by
# mypy's stubtest in CI. Each area keeps its own section.

__version__: str
__all__: list[str]
