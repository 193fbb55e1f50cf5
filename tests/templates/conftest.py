"""Fixtures of the template tests."""

from __future__ import annotations

import shutil

import pytest

from templates.official import OFFICIAL_DIR


@pytest.fixture
def data_dir(tmp_path):
    """A copy of the official template files to edit."""
    copy = tmp_path / "official"
    shutil.copytree(OFFICIAL_DIR, copy)
    return copy
