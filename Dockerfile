# The dispatch service: `docker compose up` (see compose.yaml) or
#   docker build -t guard-dispatch . && docker run -e DISPATCH_SECRET_KEY=... -p 8000:8000 guard-dispatch
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system dispatch \
    && useradd --system --gid dispatch --home-dir /srv/dispatch --shell /usr/sbin/nologin dispatch

WORKDIR /srv/dispatch

# Dependencies first, in their own layer, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY alembic.ini ./
COPY migrations/ migrations/
COPY app/ app/
# `python -m app` runs from this directory, where alembic.ini and migrations/ sit next to app/.
RUN pip install --no-deps . \
    && rm -rf build *.egg-info \
    && mkdir -p var \
    && chown dispatch:dispatch var

USER dispatch

# DISPATCH_DATABASE_URL defaults to SQLite in ./var; set it to PostgreSQL in production.
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["sh", "-c", "python -m app migrate && exec python -m app serve --host 0.0.0.0 --port 8000"]
