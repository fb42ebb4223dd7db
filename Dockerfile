# The api (with its relay, revocation sync and pruning). Used by compose.yaml for the
# `api` and the one-shot `migrate` services. The broker's image is broker-config/Dockerfile.
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

USER hub
WORKDIR /srv
EXPOSE 8000
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
