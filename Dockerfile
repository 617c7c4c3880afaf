# churnops image for the prod profile (docker-compose.yml). Same lockfile as local runs.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH \
    DO_NOT_TRACK=true DBT_SEND_ANONYMOUS_USAGE_STATS=false GX_ANALYTICS_ENABLED=false \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False
# gcc: each model version's trees are compiled once for nightly scoring (churnops.score.engine).
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 git gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir uv
WORKDIR /opt/churnops
COPY pyproject.toml uv.lock README.md ./
COPY include ./include
RUN uv sync --frozen --no-dev
COPY . .
RUN cd dbt_project && CHURNOPS_DUCKDB_PATH=unused.duckdb dbt parse --quiet --project-dir . --profiles-dir .
