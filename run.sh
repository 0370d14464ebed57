#!/usr/bin/env bash
# One entry point for a fresh Debian machine; each step is skipped when already done.
#   ./run.sh app  [streamlit args]   set up, then start the dashboard
#   ./run.sh test [pytest args]      set up (with test tools), then run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

mode="${1:-}"; shift || true
case "$mode" in app|test) ;; *) echo "usage: ./run.sh app|test [args]" >&2; exit 2 ;; esac

# --- Debian packages (packages.txt; for the tests also chromium, for the browser tests, and
# haproxy, which tests/test_balancer.py runs in front of two replicas) --------------------------
debs=$(grep -v '^#' packages.txt | xargs)
[ "$mode" = test ] && debs="$debs chromium haproxy"
missing=()
for p in $debs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}   (the app runs without them," \
         "but cannot check, draw or play tunes)" >&2
    [ "$mode" = test ] && exit 1
  fi
fi

# --- Python 3.11-3.13 virtual environment in .venv --------------------------------------------
py=""
for c in python3 python3.13 python3.12 python3.11; do
  if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,13))'; then
    py="$c"; break
  fi
done
[ -n "$py" ] || { echo "need Python 3.11, 3.12 or 3.13 (TensorFlow 2.21 and Streamlit 1.67)" >&2; exit 1; }
[ -x .venv/bin/python ] || { echo "creating .venv with $py"; "$py" -m venv .venv; }
req=requirements.txt; [ "$mode" = test ] && req=requirements-dev.txt
stamp=".venv/.installed-$(cat requirements.txt "$req" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "installing Python packages from $req (TensorFlow is large: a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$req"
  touch "$stamp"
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if [ "$mode" = app ]; then
  exec .venv/bin/python -m streamlit run streamlit_app.py "$@"
fi
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest "$@"
