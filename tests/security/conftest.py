from tests.kafka.conftest import settings  # noqa: F401  (topics of its own on the broker of tests/conftest.py)
