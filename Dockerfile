# syntax=docker/dockerfile:1
# The citypipe image: ingest, alerts, serve and Airflow 3's components (docker-compose.yml), one
# locked environment.
FROM python:3.11-slim

RUN pip install --no-cache-dir "uv>=0.5,<1"
# Compile bytecode once at build; copy (not hard-link) from uv's cache, which is not in the image.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Dependency layer: built from the lock alone, so a source change reuses the cached layer and
# only a changed pyproject.toml or uv.lock reinstalls the dependencies.
COPY pyproject.toml uv.lock ./
# The `postgres` extra: Airflow's metadata on PostgreSQL needs a driver (psycopg, from the lock);
# the `celery` extra: the CeleryExecutor of compose's celery profile.
RUN uv sync --frozen --no-dev --extra postgres --extra celery --no-install-project

# The project itself (what .dockerignore leaves: sources, dags/, reference/, deploy/, docs).
COPY . .
RUN uv sync --frozen --no-dev --extra postgres --extra celery --inexact

# Run as a service account, not root. /data is the data volume's mount point: a new named
# volume takes this owner, and citypipe keeps it 0700 (docs/operations.md, permissions).
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin citypipe \
    && mkdir -p /data && chown citypipe /data
USER citypipe
ENV PATH="/app/.venv/bin:$PATH" \
    CITYPIPE_HOME=/data
VOLUME ["/data"]
EXPOSE 8000 8080
CMD ["citypipe", "--help"]
