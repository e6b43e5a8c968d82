FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY projections projections
COPY adapters adapters
COPY api api
COPY bench bench
RUN pip install --no-cache-dir .
ENV HUB_DATABASE_URL=sqlite:////data/hub.db
EXPOSE 8000
ENTRYPOINT ["hub"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
