#!/usr/bin/env bash
# Bring a fresh machine to a working Workbench: system packages, venv, the package, Kafka jars.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)  # builds the JupyterLab extension
if [ "${SETUP_REDIS:-1}" = 1 ] && ! command -v redis-server >/dev/null 2>&1; then need_apt+=(redis-server); fi
if [ "${SETUP_BROWSER:-0}" = 1 ] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing system packages: ${need_apt[*]} (run as root, or: sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
# reinstall when the dependencies or the extension's sources change
ext=extensions/workbench-lab
digest=$(cat pyproject.toml $ext/package.json $ext/yarn.lock $(find $ext/src $ext/style -type f | sort) | sha1sum | cut -c1-12)
stamp="$VENV/.installed-$digest"
if [ ! -f "$stamp" ]; then
  echo "setup: pip install (a few minutes on a fresh machine)"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".[dev,production]"
  # MovieLens-100K ships inside the recbole wheel; its heavy dependencies are not needed.
  "$VENV/bin/pip" install -q --no-deps "recbole==1.2.1"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

echo "setup: Workbench kernel"
"$VENV/bin/workbench" kernel install --sys-prefix >/dev/null

echo "setup: Kafka jars (mvn, cached outside the repo)"
"$VENV/bin/python" -c "from workbench.stack.broker import Broker; print('setup: jars in', Broker().resolve_jars())"
