# syntax=docker/dockerfile:1
# vrft API image: `vrft-server serve` (and `migrate`, `create-key`). No torch: the API never imports it,
# so the project is installed WITHOUT the `worker` extra.
#
#   docker build -f docker/api.Dockerfile -t vrft/api .        (from the repository root)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VRFT_DATA_DIR=/var/lib/vrft

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/vrft vrft \
    && mkdir -p /var/lib/vrft \
    && chown vrft:vrft /var/lib/vrft

WORKDIR /opt/vrft
# app/migrate.py finds alembic.ini and migrations/ next to the app/ package (ROOT = app/..), and a
# wheel would not carry them: keep the source tree here and install it in editable mode.
COPY pyproject.toml alembic.ini ./
COPY migrations ./migrations
COPY workers ./workers
COPY app ./app
RUN pip install -e .

USER vrft
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["vrft-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
