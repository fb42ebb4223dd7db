# Sourced by scripts/up and scripts/test: installs what the project needs on a fresh
# Debian machine (Python 3.11, root or sudo), and nothing twice.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: Mosquitto 2.0 with its Dynamic Security plugin and mosquitto_ctrl,
# and what the hub's token plugin (broker-config/plugin, C) builds with.
debs=(mosquitto mosquitto-clients mosquitto-dev libcjson-dev libssl-dev uthash-dev gcc libc6-dev make)
missing=()
for deb in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages (${missing[*]})" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The broker's token plugin; make rebuilds it only when its sources change.
make -s -C broker-config/plugin >&2

# Python: a venv at .venv with the pinned dependencies (constraints.txt) and the partner
# client (clients/python, editable), reinstalled only when a pyproject.toml or
# constraints.txt change.
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=".venv/.installed-$(cat pyproject.toml clients/python/pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv" >&2
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]' -e clients/python
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# Node: the web client (clients/web: Vite 7, Vitest 4, Playwright) needs Node 20.19 or
# newer with npm. Where npm is missing, Debian's nodejs and npm are installed; Debian
# 12's nodejs is 18, which is too old, so such a machine needs Node 20 first.
setup_web() {
  if ! command -v npm >/dev/null; then
    echo "setup: installing Debian packages (nodejs, npm)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
    echo "setup: clients/web needs Node 20.19 or newer; found $(node --version)" >&2
    return 1
  fi
  # npm ci with the committed package-lock.json, again only when the lock changes.
  local web_stamp
  web_stamp="clients/web/node_modules/.installed-$(sha256sum clients/web/package-lock.json | cut -c1-16)"
  if [ ! -f "$web_stamp" ]; then
    echo "setup: installing the web client's npm packages" >&2
    (cd clients/web && npm ci --no-audit --no-fund --silent)
    touch "$web_stamp"
  fi
}

# The browser tests drive Debian's Chromium; Playwright never downloads a browser.
setup_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    echo "setup: installing Debian packages (chromium)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
}
