# syntax=docker/dockerfile:1
# The citypipe image: the ingest service and Airflow (see docker-compose.yml), one locked env.
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
RUN uv sync --frozen --no-dev --no-install-project

# The project itself (what .dockerignore leaves: sources, dags/, reference/, docs).
COPY . .
RUN uv sync --frozen --no-dev

ENV PATH="/app/.venv/bin:$PATH"
CMD ["citypipe", "--help"]
