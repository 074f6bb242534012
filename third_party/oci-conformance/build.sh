#!/usr/bin/env bash
# Build the OCI distribution-spec conformance suite (v1.1.1) OFFLINE on Debian 12.
#
#   usage: build.sh [SRC_DIR] [OUT_DIR]
#     SRC_DIR  the distribution-spec conformance/ directory   (default: <this dir>/src)
#     OUT_DIR  where conformance.test, DEPS.txt and the build tree go (default: <this dir>/out)
#   env: SKIP_APT=1        do not touch apt (packages must already be installed)
#        APT_ONLY=1        install the apt packages, build nothing
#        REGGIE_SRC=DIR    github.com/bloodorangeio/reggie v0.6.1 source
#                          (default: <this dir>/third_party/github.com/bloodorangeio/reggie)
#        GO=PATH           go binary (default: /usr/lib/go-1.23/bin/go)
#        CONFORMANCE_VERSION  string stamped into the report (default: v1.1.1)
#
# Go deps come from Debian's golang-*-dev packages (/usr/share/gocode/src), except
# reggie, which Debian does not package and which is kept in third_party/.
# They are assembled into a vendor/ tree and built with -mod=vendor, GOPROXY=off:
# no network is used after apt. Debian versions differ from go.mod's pins (e.g.
# ginkgo 2.15.0 instead of 2.11.0); vendor/modules.txt keeps go.mod's version
# labels (Go requires that) and OUT_DIR/DEPS.txt records what was really used.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "${1:-$HERE/src}" && pwd)
OUT=$(mkdir -p "${2:-$HERE/out}" && cd "${2:-$HERE/out}" && pwd)
REGGIE_SRC=${REGGIE_SRC:-$HERE/third_party/github.com/bloodorangeio/reggie}
GO=${GO:-/usr/lib/go-1.23/bin/go}
VERSION=${CONFORMANCE_VERSION:-v1.1.1}
GOCODE=/usr/share/gocode/src

APT_PKGS=(
  golang-1.23-go
  golang-github-onsi-ginkgo-v2-dev
  golang-gomega-dev
  golang-github-opencontainers-go-digest-dev
  golang-github-google-uuid-dev
  golang-github-go-resty-resty-dev
  golang-github-asaskevich-govalidator-dev
  golang-github-mitchellh-mapstructure-dev
  golang-github-go-logr-logr-dev
  golang-github-google-go-cmp-dev
  golang-golang-x-net-dev
  golang-golang-x-sys-dev
  golang-golang-x-text-dev
  golang-gopkg-yaml.v3-dev
)

log() { printf '[build.sh] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- apt
ensure_backports() {
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then return 0; fi
  # reuse the host of the configured Debian mirror
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '$3=="bookworm"{print $2; exit}' || true)
  fi
  uri=${uri:-http://deb.debian.org/debian}
  log "adding bookworm-backports from $uri"
  cat > /etc/apt/sources.list.d/bookworm-backports.sources <<EOF
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  return 1
}

install_apt() {
  local missing=() p
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { log "apt packages already installed"; return; }
  local fresh=0
  ensure_backports || fresh=1
  if [ "$fresh" = 1 ] || ! apt-cache show golang-1.23-go >/dev/null 2>&1; then
    apt-get update -qq
  fi
  log "installing: ${missing[*]}"
  # -t bookworm-backports: ginkgo v2 2.15 needs gomega >= 1.27.10, also from backports
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports "${APT_PKGS[@]}" >/dev/null
}

[ "${SKIP_APT:-0}" = 1 ] || install_apt
[ "${APT_ONLY:-0}" = 1 ] && exit 0
[ -x "$GO" ] || { log "no go at $GO"; exit 1; }
[ -f "$SRC/go.mod" ] || { log "no go.mod in $SRC"; exit 1; }
[ -f "$REGGIE_SRC/client.go" ] || { log "no reggie source in $REGGIE_SRC"; exit 1; }

# ---------------------------------------------------------------- module -> source dir
# Modules from conformance/go.mod; those not listed here have no package imported
# by the suite (with Debian's ginkgo) and are recorded in modules.txt only.
declare -A MODDIR=(
  [github.com/bloodorangeio/reggie]=$REGGIE_SRC
  [github.com/google/uuid]=$GOCODE/github.com/google/uuid
  [github.com/onsi/ginkgo/v2]=$GOCODE/github.com/onsi/ginkgo/v2
  [github.com/onsi/gomega]=$GOCODE/github.com/onsi/gomega
  [github.com/opencontainers/go-digest]=$GOCODE/github.com/opencontainers/go-digest
  [github.com/asaskevich/govalidator]=$GOCODE/github.com/asaskevich/govalidator
  [github.com/go-logr/logr]=$GOCODE/github.com/go-logr/logr
  [github.com/go-resty/resty/v2]=$GOCODE/github.com/go-resty/resty
  [github.com/google/go-cmp]=$GOCODE/github.com/google/go-cmp
  [github.com/mitchellh/mapstructure]=$GOCODE/github.com/mitchellh/mapstructure
  [golang.org/x/net]=$GOCODE/golang.org/x/net
  [golang.org/x/sys]=$GOCODE/golang.org/x/sys
  [golang.org/x/text]=$GOCODE/golang.org/x/text
  [gopkg.in/yaml.v3]=$GOCODE/gopkg.in/yaml.v3
)

BUILD=$OUT/build
MAINPKG=github.com/opencontainers/distribution-spec/conformance
export GOTOOLCHAIN=local GOPROXY=off GOSUMDB=off GOFLAGS= CGO_ENABLED=0
export GOCACHE=${GOCACHE:-$OUT/gocache}
rm -rf "$BUILD"; mkdir -p "$BUILD"
START=$(date +%s)

# ---------------------------------------------------------------- 1. find imported packages
# GOPATH-mode listing: resolves github.com/go-resty/resty/v2 to Debian's .../go-resty/resty
GP=$BUILD/gopath
mkdir -p "$GP/src/github.com/opencontainers/distribution-spec" "$GP/src/github.com/bloodorangeio"
ln -s "$SRC" "$GP/src/$MAINPKG"
ln -s "$REGGIE_SRC" "$GP/src/github.com/bloodorangeio/reggie"
(cd "$GP/src/$MAINPKG" && GO111MODULE=off GOPATH="$GP:/usr/share/gocode" \
   "$GO" list -test -deps -f '{{if not .Standard}}{{.Dir}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}' .) \
   | sort -u > "$BUILD/pkgdirs.txt"

# ---------------------------------------------------------------- 2. assemble module tree + vendor/
MOD=$BUILD/conformance
mkdir -p "$MOD"; cp -a "$SRC/." "$MOD/"
rm -rf "$MOD/vendor" "$MOD/conformance.test"
V=$MOD/vendor; mkdir -p "$V"
declare -A PKGS=()
srcreal_main=$(readlink -f "$SRC")
while read -r dir embeds; do
  [ -n "$dir" ] || continue
  real=$(readlink -f "$dir")
  [ "$real" = "$srcreal_main" ] && continue
  best=; bestlen=0
  for m in "${!MODDIR[@]}"; do
    d=$(readlink -f "${MODDIR[$m]}")
    if [ "$real" = "$d" ] || [[ "$real" == "$d"/* ]]; then
      [ ${#d} -gt $bestlen ] && { best=$m; bestlen=${#d}; }
    fi
  done
  [ -n "$best" ] || { log "package dir $dir belongs to no known module"; exit 1; }
  d=$(readlink -f "${MODDIR[$best]}")
  pkg=$best${real#$d}
  PKGS[$best]+="$pkg"$'\n'
  mkdir -p "$V/$pkg"
  find "$real" -maxdepth 1 -type f ! -name '*_test.go' -exec cp -L {} "$V/$pkg/" \;
  for e in $embeds; do   # //go:embed files in subdirectories (e.g. x/net/publicsuffix/data)
    mkdir -p "$V/$pkg/$(dirname "$e")"; cp -L "$real/$e" "$V/$pkg/$e"
  done
done < "$BUILD/pkgdirs.txt"

# modules.txt: every requirement of go.mod, in go.mod order, with go.mod's version label
: > "$V/modules.txt"
: > "$OUT/DEPS.txt"
awk '/^require \(/{b=1;next} b&&/^\)/{b=0;next} b&&NF>=2{print $1,$2} /^require [^(]/{print $2,$3}' \
    "$MOD/go.mod" | while read -r m ver; do
  gov=
  if [ -n "${MODDIR[$m]:-}" ]; then
    d=${MODDIR[$m]}
    [ -f "$d/go.mod" ] && gov=$(awk '$1=="go"{print $2; exit}' "$d/go.mod")
    for f in "$d"/LICENSE* "$d"/COPYING* "$d"/NOTICE*; do
      [ -f "$f" ] && { mkdir -p "$V/$m"; cp -L "$f" "$V/$m/"; }
    done
    pkgdeb=$(dpkg -S "$(readlink -f "$d")" 2>/dev/null | head -n1 | cut -d: -f1 || true)
    if [ -n "$pkgdeb" ]; then
      real="$pkgdeb $(dpkg-query -W -f='${Version}' "$pkgdeb")"
    else
      real="local copy $d"
    fi
  else
    real="(no package imported)"
  fi
  printf '# %s %s\n## explicit%s\n' "$m" "$ver" "${gov:+; go $gov}" >> "$V/modules.txt"
  printf '%s' "${PKGS[$m]:-}" | sort >> "$V/modules.txt"
  printf '%-40s go.mod %-40s used: %s\n' "$m" "$ver" "$real" >> "$OUT/DEPS.txt"
done

# ---------------------------------------------------------------- 3. build
log "go: $("$GO" version)"
(cd "$MOD" && GOFLAGS=-mod=vendor "$GO" test -c -vet=off -trimpath \
   -o "$OUT/conformance.test" \
   -ldflags "-X $MAINPKG.Version=$VERSION")
log "built $OUT/conformance.test in $(( $(date +%s) - START ))s (deps: $OUT/DEPS.txt)"
