#!/usr/bin/env bash
# The Prometheus alert rules in deploy/: checked (`promtool check rules`) and unit-tested
# (`promtool test rules deploy/alerts.test.yml`). Installs Debian's `prometheus` package
# (which carries promtool) when promtool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus
fi
promtool check rules deploy/alerts.yml
# Run from deploy/ so the test file names its rules as `alerts.yml`, beside it.
(cd deploy && promtool test rules alerts.test.yml)
