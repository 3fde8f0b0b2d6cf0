from __future__ import annotations

import uuid

import pytest

from consumers.settings import Settings
from tests.security.keys import test_keys


def own_settings(bootstrap: str, prefix: str = "t", **security) -> Settings:
    """Topics and a consumer group of the test's own, so tests never read each other's records."""
    run = uuid.uuid4().hex[:10]
    return Settings(
        bootstrap_servers=bootstrap,
        group_id=f"medledger-{run}",
        events_topic=f"{prefix}{run}.events",
        settlements_topic=f"{prefix}{run}.settlements",
        rejections_topic=f"{prefix}{run}.rejections",
        reporting_group_id=f"reporting-{run}",
        batch_size=40,
        metrics_port=None,
        **(test_keys().settings() | security),
    )


@pytest.fixture
def settings(kafka) -> Settings:
    return own_settings(kafka.bootstrap)
