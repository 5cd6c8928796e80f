#!/bin/sh
# Installs what a fresh Debian machine lacks to build and test ld: the C libraries' -dev packages and the
# Fashion-MNIST data set. Runs apt-get only when something is missing.
set -eu
need=""
for pkg in libopenblas-dev libpng-dev libzstd-dev zlib1g-dev libturbojpeg0-dev pkg-config dataset-fashion-mnist; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
done
if [ -n "$need" ]; then
    echo "setup: installing$need" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift not found on PATH (Swift 6 is required)" >&2; exit 1; }
