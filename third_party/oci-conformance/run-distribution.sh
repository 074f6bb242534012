#!/usr/bin/env bash
# Run the conformance binary against Debian's docker-registry (distribution 2.8)
# on 127.0.0.1:5000 (temp storage, delete enabled, no auth), then stop it.
#   usage: run-distribution.sh [CONFORMANCE_TEST_BINARY] [REPORT_DIR] [ginkgo flags, e.g. --ginkgo.no-color]
# Exit code: that of the conformance binary (0 = all specs passed).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$(readlink -f "${1:-$HERE/out/conformance.test}")
REPORT=$(mkdir -p "${2:-$HERE/out/report-distribution}" && cd "${2:-$HERE/out/report-distribution}" && pwd)
ADDR=${REGISTRY_ADDR:-127.0.0.1:5000}

command -v docker-registry >/dev/null || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null

TMP=$(mktemp -d /tmp/oci-registry.XXXXXX)
cat > "$TMP/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $TMP/data
  delete:
    enabled: true
http:
  addr: $ADDR
EOF
docker-registry serve "$TMP/config.yml" > "$TMP/registry.log" 2>&1 &
REG_PID=$!
cleanup() { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
for _ in $(seq 50); do
  curl -fsS "http://$ADDR/v2/" >/dev/null 2>&1 && break; sleep 0.2
done

cd "$REPORT"
env OCI_ROOT_URL="http://$ADDR" \
    OCI_NAMESPACE=berth/conformance \
    OCI_CROSSMOUNT_NAMESPACE=berth/other \
    OCI_TEST_PULL=1 OCI_TEST_PUSH=1 \
    OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1 \
    OCI_HIDE_SKIPPED_WORKFLOWS=0 OCI_DEBUG=0 \
    OCI_REPORT_DIR="$REPORT" \
    "$BIN" "${@:3}" 2>&1 | tee "$REPORT/output.txt"
rc=${PIPESTATUS[0]}
echo "conformance exit code: $rc; reports in $REPORT (junit.xml, report.html)"
exit "$rc"
