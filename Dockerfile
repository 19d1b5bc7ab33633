FROM python:3.11-slim
RUN pip install --no-cache-dir "uv>=0.5,<1"
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY . .
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH"
CMD ["citypipe", "--help"]
