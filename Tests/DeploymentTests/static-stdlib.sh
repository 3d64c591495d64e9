#!/usr/bin/env bash
# The image's binaries link the Swift runtime statically (--static-swift-stdlib, as the Dockerfile
# builds them), so the debian:bookworm-slim runtime stage needs no Swift library: this builds one
# product that way and checks with ldd that it loads no libswift*, libFoundation*, libdispatch or
# libBlocksRuntime, that every library it does load is found, and that each comes from the
# runtime packages of docs/deployment-contract.md (librabbitmq4, libjansson4, libstdc++6, libc6)
# or their dependencies.
#
#   HYPERION_CHECK_STATIC=1 Tests/DeploymentTests/static-stdlib.sh
#
# Off unless HYPERION_CHECK_STATIC=1 (CI sets it): the build is a second release build of most of
# the package (about 3 minutes on two cores), in its own scratch path so it never disturbs the
# test build. Environment: HYPERION_STATIC_PRODUCT (default stage-worker),
# HYPERION_STATIC_BUILD_PATH (default .build-static).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1${2:+: $2}"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

product=${HYPERION_STATIC_PRODUCT:-stage-worker}
scratch=${HYPERION_STATIC_BUILD_PATH:-$root/.build-static}
runtime_packages=(librabbitmq4 libjansson4 libstdc++6 libc6)

if [ "${HYPERION_CHECK_STATIC:-0}" != 1 ]; then
    echo "skip - $product built with --static-swift-stdlib needs no Swift shared library (set HYPERION_CHECK_STATIC=1; a release build of ~3 min)"
    finish
fi

build=(swift build -c release --static-swift-stdlib --scratch-path "$scratch")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$SECONDS
if "${build[@]}" --product "$product" >"$log" 2>&1; then
    ok "swift build -c release --static-swift-stdlib --product $product ($((SECONDS - start)) s)"
else
    fail "swift build -c release --static-swift-stdlib --product $product" "$(tail -n 20 "$log")"
    finish
fi
binary="$("${build[@]}" --show-bin-path)/$product"

libraries=$(ldd "$binary" 2>&1)
swift_libraries=$(grep -E 'lib(swift[^ ]*|Foundation[^ ]*|dispatch|BlocksRuntime)\.so' <<<"$libraries" | awk '{ print $1 }' | paste -sd' ' -)
if [ -z "$swift_libraries" ]; then
    ok "ldd $product: no libswift*, libFoundation*, libdispatch or libBlocksRuntime"
else
    fail "ldd $product: no libswift*, libFoundation*, libdispatch or libBlocksRuntime" "it loads $swift_libraries"
fi
missing=$(grep 'not found' <<<"$libraries" | awk '{ print $1 }' | paste -sd' ' -)
if [ -z "$missing" ]; then ok "ldd $product: every library is found"; else fail "ldd $product: every library is found" "missing $missing"; fi

# Which Debian package holds each library (merged /usr: try the path as listed, then resolved).
owner() {
    local path=$1 found
    for candidate in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
        if found=$(dpkg -S "$candidate" 2>/dev/null); then
            echo "${found%%:*}"
            return
        fi
    done
}
if command -v dpkg >/dev/null 2>&1 && command -v apt-cache >/dev/null 2>&1; then
    allowed=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
        --no-enhances "${runtime_packages[@]}" 2>/dev/null | grep -v '^ ' | sort -u)
    strangers=()
    while read -r path; do
        package=$(owner "$path")
        if [ -z "$package" ] || ! grep -qx -- "$package" <<<"$allowed"; then strangers+=("$path (${package:-no package})"); fi
    done < <(grep -o '=> /[^ ]*\|^[[:space:]]*/[^ ]*' <<<"$libraries" | sed 's/^=> //; s/^[[:space:]]*//')
    if [ ${#strangers[@]} -eq 0 ]; then
        ok "ldd $product: every library comes from ${runtime_packages[*]} or their dependencies"
    else
        fail "ldd $product: every library comes from ${runtime_packages[*]} or their dependencies" "${strangers[*]}"
    fi
fi

if "$binary" --help >/dev/null 2>&1; then ok "$product --help runs"; else fail "$product --help runs"; fi
finish
