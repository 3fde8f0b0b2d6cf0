# Any Python 3.11 image with python and pip on PATH: docker-compose.yml passes MEDLEDGER_PYTHON_IMAGE.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ledger ledger
COPY policies policies
COPY projections projections
COPY consumers consumers
# the console, with the charting library scripts/bootstrap fetched into console/static/vendor
COPY console console
COPY gateway gateway
COPY examples examples
RUN pip install --no-cache-dir .
# SIGTERM from `docker stop` shuts the service down gracefully: the batch in hand commits, the relay drains.
STOPSIGNAL SIGTERM
ENTRYPOINT ["medledger"]
