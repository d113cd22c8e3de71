"""Namespace fixtures for the stress tests (the same as the integration tests')."""

from tests.integration.conftest import lab, need_keepalived

__all__ = ["lab", "need_keepalived"]
