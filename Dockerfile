FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# A Unicode font for the PDF flyers.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY node ./node
COPY federation ./federation
COPY templates ./templates
COPY locales ./locales
RUN pip install --no-cache-dir . \
    && useradd --system --uid 1000 --home /data --shell /usr/sbin/nologin grassroots \
    && mkdir -p /data && chown grassroots /data

USER grassroots
VOLUME ["/data"]
EXPOSE 8000
# Ready: the database takes a write, the background workers move, the disk has room.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=8)"]
# Set --url to the address people use (https://… behind a TLS proxy).
ENTRYPOINT ["grassroots", "serve", "--data", "/data/node", "--host", "0.0.0.0", "--port", "8000"]
