# One image for every role of the hub; the role is the command (see docker-compose.yml):
#   serve --host 0.0.0.0 | ingest nats | project | publish nats | health ROLE | keys ...
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY projections projections
COPY adapters adapters
COPY api api
COPY bench bench
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /data --create-home hub
USER hub
# Alone (docker run), the hub keeps its SQLite file in the /data volume; compose sets
# HUB_DATABASE_URL to PostgreSQL.
ENV HUB_DATABASE_URL=sqlite:////data/hub.db
VOLUME /data
EXPOSE 8000
ENTRYPOINT ["hub"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
