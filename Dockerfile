# churnops image for the prod profile (docker-compose.yml): every service but PostgreSQL
# and Redis runs it. The same lockfile as local runs (uv sync --frozen), without the dev
# group; the dbt manifest Cosmos renders the DAG from is parsed at build time.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    DO_NOT_TRACK=true SCARF_ANALYTICS=false DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    GX_ANALYTICS_ENABLED=false AIRFLOW__COSMOS__ENABLE_TELEMETRY=False

# libgomp1: LightGBM's OpenMP. gcc + libc6-dev: each model version's trees are compiled to
# native code once for nightly scoring (churnops.score, CHURNOPS_SCORING_ENGINE=auto).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv==0.13.9 \
    && useradd --create-home --uid 50000 churnops

WORKDIR /opt/churnops
# Dependencies first (a layer that survives code changes), then the project itself.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev \
    && cd dbt_project \
    && CHURNOPS_DUCKDB_PATH=unused-by-parse.duckdb dbt parse --quiet --project-dir . --profiles-dir . \
    && rm -rf logs

# Mount points of docker-compose.yml's named volumes: a new volume takes this ownership.
RUN mkdir -p /data/churnops /data/mlflow-artifacts \
    && chown churnops:churnops /data/churnops /data/mlflow-artifacts
USER churnops
