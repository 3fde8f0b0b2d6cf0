from tests.kafka.conftest import kafka, settings  # noqa: F401  (the broker the Kafka tests run)
