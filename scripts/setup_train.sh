#!/usr/bin/env bash
# Set up a Debian machine for training the plate OCR (and the detector):
#   fonts for scripts/synth_plates.py, the `train` extra (torch, onnx, pillow, rapidocr),
#   and a flat copy of the fonts the OCR is trained with in .data/fonts (what
#   scripts/train_ocr.py --fonts reads; .data/ is git-ignored).
# Usage: bash scripts/setup_train.sh      (as root, from the repository root; VENV=... to override)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

if command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-freefont-ttf fonts-hack \
    fonts-open-sans fonts-roboto-unhinted fonts-ubuntu-title >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e '.[train,dev]'

# The fonts the model card lists (plate-like bold sans for the characters; serif/italic/title
# ones only for state names and slogans). Missing ones are skipped with a warning.
mkdir -p .data/fonts
T=/usr/share/fonts/truetype
for f in liberation/LiberationSansNarrow-Bold.ttf liberation/LiberationSansNarrow-Regular.ttf \
         liberation/LiberationSans-Bold.ttf liberation/LiberationMono-Bold.ttf \
         dejavu/DejaVuSansCondensed-Bold.ttf dejavu/DejaVuSansMono-Bold.ttf freefont/FreeSansBold.ttf \
         roboto/unhinted/RobotoCondensed-Bold.ttf roboto/unhinted/RobotoCondensed-Medium.ttf \
         open-sans/OpenSans-CondBold.ttf hack/Hack-Bold.ttf liberation/LiberationSerif-BoldItalic.ttf \
         dejavu/DejaVuSerifCondensed-Bold.ttf freefont/FreeSerifBoldItalic.ttf ubuntu-title/Ubuntu-Title.ttf; do
  if [ -f "$T/$f" ]; then cp "$T/$f" .data/fonts/; else echo "warning: $T/$f not found" >&2; fi
done
echo "fonts in .data/fonts: $(ls .data/fonts | wc -l)"
