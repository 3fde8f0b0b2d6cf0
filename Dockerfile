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
# medledger runs as a user of its own, not root: it owns nothing in the image, so it can change none of its code.
RUN groupadd --system --gid 10001 medledger \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin medledger
USER 10001:10001
# SIGTERM from `docker stop` shuts the service down gracefully: the batch in hand commits, the relay drains.
STOPSIGNAL SIGTERM
ENTRYPOINT ["medledger"]
