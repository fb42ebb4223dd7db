# The api (with its relay, revocation sync and pruning) and the web app it serves. Used
# by compose.yaml for the `api` and the one-shot `migrate` and `broker-init` services.
# The broker's image is broker-config/Dockerfile.

# The web client (clients/web), built with the committed lock file.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY clients/web/package.json clients/web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY clients/web ./
RUN npm run build -- --logLevel warn

FROM python:3.11-slim

# The CMD below binds every interface: say so, so that production's rule (no
# plaintext off loopback) sees it and asks for TLS or HUB_HTTP_BEHIND_TLS_PROXY.
ENV HUB_ENV=production \
    HUB_HTTP_HOST=0.0.0.0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml constraints.txt /tmp/src/
COPY hub /tmp/src/hub
COPY api /tmp/src/api
RUN pip install -c /tmp/src/constraints.txt /tmp/src \
 && rm -rf /tmp/src \
 && useradd --system --no-create-home --shell /usr/sbin/nologin hub \
 && mkdir -p /srv/var /srv/broker-keys \
 && chown hub /srv/var /srv/broker-keys

COPY --from=web /web/dist /srv/web
ENV HUB_WEB_DIST_DIR=/srv/web

USER hub
WORKDIR /srv
EXPOSE 8000
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
