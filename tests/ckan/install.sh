#!/usr/bin/env bash
# Installs the CKAN 2.12 that tests/test_ckan.py runs for real, in its own venv at the repo root
# (.venv-ckan), with the test-only plugin ckanext-ldjtest (no Solr needed). Idempotent: a stamp
# file that records what was installed makes a second run a no-op.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv-ckan"
CKAN_VERSION="2.12.0"
PYTHON="${PYTHON:-python3}"
PLUGIN="$ROOT/tests/ckan/ckanext-ldjtest"
STAMP="$VENV/.installed"
WANT="ckan==$CKAN_VERSION plugin=$(sha256sum < "$PLUGIN/setup.py" | cut -c1-16)"  # the plugin is installed editable

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/ckan" ]; then
  exit 0
fi

# pip warns about local index folders that do not exist on this machine: noise.
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

start=$(date +%s)
echo "Installing CKAN $CKAN_VERSION into $VENV" >&2
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
quiet "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
# Plain `pip install ckan` installs no dependencies: the [requirements] extra pins them.
quiet "$VENV/bin/pip" install -q --disable-pip-version-check "ckan[requirements]==$CKAN_VERSION"
quiet "$VENV/bin/pip" install -q --disable-pip-version-check -e "$PLUGIN"
"$VENV/bin/python" -c "import ckan, ckanext.ldjtest"
echo "$WANT" > "$STAMP"
echo "CKAN installed in $(( $(date +%s) - start )) s" >&2
