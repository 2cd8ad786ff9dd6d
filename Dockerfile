# The receiver's container image, as the Helm chart (helm/otel-genai-receiver) runs it:
#   docker build -t REGISTRY/otel-genai-receiver:0.1.0 . && docker push REGISTRY/otel-genai-receiver:0.1.0
# Every dependency ships manylinux wheels (chDB, grpcio, google-re2, ...); the one thing
# compiled is our own C (the ClickHouse row encoder, the span scan, the anomaly detectors'
# update step), in the build stage only: the runtime image gets the built modules, not the
# compiler.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY otel_receiver ./otel_receiver
COPY processors ./processors
COPY exporters ./exporters
COPY semconv ./semconv
RUN python -m venv /opt/otel-receiver \
 && /opt/otel-receiver/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/otel-receiver/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
COPY --from=build /opt/otel-receiver /opt/otel-receiver
# the chart mounts the root filesystem read-only: no .pyc writes, data and temp on volumes
ENV PATH=/opt/otel-receiver/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OTEL_RECEIVER_DATA=/var/lib/otel-receiver \
    OTEL_RECEIVER_GRPC_ENDPOINT=0.0.0.0:4317 \
    OTEL_RECEIVER_HTTP_ENDPOINT=0.0.0.0:4318 \
    OTEL_RECEIVER_PROMETHEUS_ENDPOINT=0.0.0.0:9464
RUN useradd --system --uid 10001 --home-dir /var/lib/otel-receiver --create-home otel
USER 10001
WORKDIR /var/lib/otel-receiver
EXPOSE 4317 4318 9464
ENTRYPOINT ["otel-receiver"]
CMD ["run"]
