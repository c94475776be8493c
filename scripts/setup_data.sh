#!/usr/bin/env bash
# Install the Debian data packages used by `gnc train` (CJK fonts, Fashion-MNIST), the text
# corpus of `gnc lm` and the language-model features (King James Bible), and
# Chromium, which the report test uses to render report.html headlessly.
# Idempotent, quick when already installed, and never fails its caller: on any problem it
# prints a message (with the exact command to run) and exits 0.
set -u
PACKAGES=(
    fonts-wqy-zenhei fonts-wqy-microhei
    fonts-arphic-ukai fonts-arphic-uming fonts-arphic-gkai00mp fonts-arphic-gbsn00lp
    fonts-noto-cjk fonts-lxgw-wenkai fonts-hanazono fonts-klee fonts-droid-fallback
    fonts-ipafont-gothic fonts-ipafont-mincho fonts-cwtex-kai fonts-cwtex-ming
    dataset-fashion-mnist
    bible-kjv bible-kjv-text
    chromium
)
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "[gnc setup_data] data packages already installed" >&2
    exit 0
fi
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" != "0" ]; then
    echo "[gnc setup_data] missing data packages; install them as root with:" >&2
    echo "    sudo $cmd" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "[gnc setup_data] apt-get not found; install these packages by other means: ${missing[*]}" >&2
    exit 0
fi
echo "[gnc setup_data] installing ${#missing[@]} data packages (fonts, Fashion-MNIST, KJV)" >&2
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -qq "${missing[@]}" \
    >/dev/null 2>&1; then
    # The package lists may be stale: refresh once and retry.
    if ! { apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -qq \
            "${missing[@]}" >/dev/null 2>&1; }; then
        echo "[gnc setup_data] could not install the data packages; try: $cmd" >&2
        exit 0
    fi
fi
echo "[gnc setup_data] done" >&2
exit 0
