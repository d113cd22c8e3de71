"""pyvrrpd: a pure-Python, asyncio reimplementation of keepalived."""

__version__ = "0.1.0"
