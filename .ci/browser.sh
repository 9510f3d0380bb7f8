#!/usr/bin/env bash
# The console in a real browser: Debian's Chromium, driven by playwright-core (from npm; it
# downloads no browser), against the release server on a fresh data directory. The scenario
# is .ci/browser.cjs; screenshots and the server's log go to
# ${CI_OUTPUT_DIR:-target/ci-output}/screenshots/. Run it alone with `bash .ci/browser.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "node (with npm) is required for the browser test"; exit 1; }
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium
fi
# playwright-core lives under target/, outside the repository's files; --no-save writes no
# package.json or lock file.
node_dir="$PWD/target/browser-node"
if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$node_dir"
  (cd "$node_dir" && npm install --no-save --no-audit --no-fund --loglevel=error playwright-core@1)
fi

cargo build --release

out_dir="${CI_OUTPUT_DIR:-target/ci-output}/screenshots"
rm -rf "$out_dir"
mkdir -p "$out_dir"
data_dir=$(mktemp -d "$PWD/target/browser-data.XXXXXX")
trap 'rm -rf "$data_dir"' EXIT

started=$(date +%s)
# The scenario bounds its own waits; this is the backstop (the whole run should take under
# two minutes).
CARTWRIGHT_BIN="$PWD/target/release/cartwright" \
  BROWSER_DATA_DIR="$data_dir" \
  BROWSER_OUT_DIR="$out_dir" \
  PLAYWRIGHT_DIR="$node_dir/node_modules/playwright-core" \
  timeout --kill-after=5 120 node .ci/browser.cjs
echo "browser test passed in $(($(date +%s) - started)) s; screenshots in $out_dir"
