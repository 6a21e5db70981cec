"""upsagent: a NUT-compatible UPS network agent built on Twisted."""

__version__ = "0.1.0"
