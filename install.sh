#!/usr/bin/env bash
# Install astro-embedding-explorer and everything it needs into the current Python (3.11+), from package
# registries only. Run inside a virtual environment if you prefer (python -m venv .venv && . .venv/bin/activate).
#   bash install.sh            the package, its test tools, and the embedded FIRST sample
#   bash install.sh --browser  also Debian's Chromium for the browser tests (needs root / apt-get)
set -euo pipefail
cd "$(dirname "$0")"
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3}
# A CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
"$PY" -m pip install "torch==2.13.0"
# The FIRST radio-galaxy sample: only its data files are used; its declared torch/torchvision deps are not wanted.
"$PY" -m pip install --no-deps "firstgalaxydata==0.2.1"
"$PY" -m pip install -e ".[test]"
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
echo "installed: $("$PY" -m explorer.cli --version)"
