"""Shared fixtures: a tiny real model built once per test session, never fetched from a hub."""

import os
from pathlib import Path

import pytest

# Tests must never reach for the Hugging Face hub; set before any test imports transformers.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def alma_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("alma-cache")


@pytest.fixture(scope="session")
def tiny_model(alma_cache: Path) -> Path:
    from alma.models import resolve_model

    return resolve_model("builtin:tiny", alma_cache)
