# escalation-bot's image. Two stages on Python's official slim image: the first makes a virtualenv
# from the lock file (every version pinned, every file's hash checked, wheels only, so nothing is
# compiled) and installs the bot into it; the second is the slim image, that virtualenv and a
# user to run it as. No compiler in either. Checked in tests/test_image.py, which also runs the
# build stage's steps in a virtualenv on the test machine.
#
#   docker build -t escalation-bot .
#   docker run --env-file .env -p 3000:3000 -v escalation-bot-data:/data escalation-bot
#
# For several replicas on PostgreSQL, see deploy/compose.yaml and docs/operations.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m venv /opt/escalation-bot
COPY requirements.lock ./
RUN /opt/escalation-bot/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handoff ./handoff
COPY storage ./storage
RUN /opt/escalation-bot/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-index --no-build-isolation .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 escalation && useradd --system --uid 10001 --gid escalation --home-dir /data --shell /usr/sbin/nologin escalation && mkdir -p /data && chown escalation:escalation /data
COPY --from=build /opt/escalation-bot /opt/escalation-bot
RUN ln -s /opt/escalation-bot/bin/escalation-bot /usr/local/bin/escalation-bot
# One container on its own keeps its SQLite file here; several replicas use PostgreSQL instead.
ENV DATABASE_URL=sqlite+aiosqlite:////data/escalation-bot.db
ENV LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
USER escalation
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["/opt/escalation-bot/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4)"]
# SIGTERM: the bot stops taking requests, finishes what it acknowledged (SHUTDOWN_GRACE_SECONDS) and exits 0.
STOPSIGNAL SIGTERM
CMD ["escalation-bot", "serve"]
