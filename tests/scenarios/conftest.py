import pytest

from tests import builders as b


@pytest.fixture(autouse=True)
def _fresh_ids():
    """Every scenario builds the same ids whatever ran before it."""
    b.fresh()
