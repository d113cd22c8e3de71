"""Fixtures for namespace labs: skip cleanly where root, namespaces or tools are missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.netlab import Lab


def _can_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.fixture
def lab() -> Iterator[Lab]:
    if not _can_netns():
        pytest.skip("needs root and iproute2 for network namespaces")
    with Lab() as lab:
        yield lab


@pytest.fixture
def need_keepalived() -> None:
    if shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed (apt-get install keepalived)")
