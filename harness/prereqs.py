"""Prerequisites outside Python (Chromium, Java, Linux /proc). On a developer's machine a missing
one skips the tests that need it, with the reason; under CI (CI=true, as GitHub Actions, GitLab and
most runners set it) it fails them, so a green CI run means every test ran."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def need(ok: bool, reason: str) -> None:
    """Skip (locally) or fail (under CI) the calling test when a prerequisite is missing."""
    if ok:
        return
    if in_ci():
        pytest.fail(f"prerequisite missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)
