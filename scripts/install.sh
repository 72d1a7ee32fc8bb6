#!/usr/bin/env bash
# Install alprd as a systemd service on this unit (Debian, Ubuntu, Raspberry Pi OS).
#
#   sudo scripts/install.sh --device-id ID --camera SOURCE [--camera-path PATH] [--pi] [--start] [--no-enable]
#
#   --device-id ID      this unit's name in every read and upload (letters, digits, . _ -), e.g. car12
#   --camera SOURCE     usb | rtsp | picamera | video | images
#   --camera-path PATH  /dev/videoN, rtsp://host/stream, video file or image folder (not needed for picamera)
#   --pi                Raspberry Pi camera: use the system's python3-picamera2 (apt) inside the venv
#   --start             start the service now (default: enabled, started at next boot)
#   --no-enable         install only; do not enable the unit
#   --print-config      print the alprd.toml it would write, and stop (needs no root)
#
# The device id and camera are asked for at a terminal when not given; they are needed only
# when /etc/alprd/alprd.toml does not exist yet (an existing one is never changed).
#
# What it does, and may safely do again (it never overwrites an existing config or database):
#   user alprd (system account, no login) in the video and dialout groups;
#   /opt/alprd/venv with alprd installed, /opt/alprd/models with the ONNX models;
#   /etc/alprd/alprd.toml (alprd:alprd 0600) and /etc/alprd/alprd.env for secrets (root 0600);
#   /var/lib/alprd (alprd:alprd 0750; the database, signing key and access-log secret inside 0600);
#   /etc/alprd/signing-public.pem, the public key the department checks evidence bundles with;
#   systemd/alprd.service -> /etc/systemd/system, checked with systemd-analyze verify, enabled.
set -euo pipefail

PREFIX=/opt/alprd
CONF_DIR=/etc/alprd
STATE_DIR=/var/lib/alprd
UNIT_DIR=/etc/systemd/system
SERVICE_USER=alprd
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

step() { printf '\n== %s\n' "$*"; }
die() { echo "install.sh: $*" >&2; exit 1; }
usage_error() { echo "install.sh: $* (see --help)" >&2; exit 2; }

given=("$@")
pi=0 start=0 enable=1 print_config=0 device_id="" camera="" camera_path=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pi) pi=1 ;;
    --start) start=1 ;;
    --no-enable) enable=0 ;;
    --print-config) print_config=1 ;;
    --device-id|--camera|--camera-path)
      [[ $# -ge 2 ]] || usage_error "$1 needs a value"
      case "$1" in
        --device-id) device_id=$2 ;; --camera) camera=$2 ;; --camera-path) camera_path=$2 ;;
      esac
      shift ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) usage_error "unknown option $1" ;;
  esac
  shift
done

# A new config names this unit and its camera: the example's defaults (device alprd-dev, a
# synthetic camera) would store fake plates, and `alprd run` refuses them.
ask() {  # ask VAR PROMPT: at a terminal, when VAR is empty
  if [[ -z ${!1} && -t 0 ]]; then read -r -p "$2: " "$1"; fi
}
check_unit_settings() {
  ask device_id "device id (this unit's name, e.g. car12)"
  [[ -n $device_id ]] || usage_error "a new $CONF_DIR/alprd.toml needs --device-id ID (this unit's name, e.g. car12)"
  [[ $device_id =~ ^[A-Za-z0-9_.-]{1,64}$ ]] \
    || usage_error "--device-id '$device_id': use 1-64 letters, digits, '.', '_' or '-'"
  [[ $device_id != alprd-dev ]] || usage_error "--device-id alprd-dev is the placeholder: give this unit's name"
  ask camera "camera (usb, rtsp, picamera, video or images)"
  case "$camera" in
    usb|rtsp|picamera|video|images) ;;
    "") usage_error "a new $CONF_DIR/alprd.toml needs --camera usb|rtsp|picamera|video|images" ;;
    synthetic) usage_error "--camera synthetic draws fake plates: give the unit's camera (\`alprd demo\` runs it)" ;;
    *) usage_error "--camera '$camera': use usb, rtsp, picamera, video or images" ;;
  esac
  [[ $camera == picamera ]] || ask camera_path "camera path (/dev/video0, rtsp://host/stream, file or folder)"
  [[ -n $camera_path || $camera == picamera ]] || usage_error "--camera $camera needs --camera-path PATH"
}

render_config() {  # the example config with this unit's id, camera, paths and models
  local path_toml=${camera_path//\\/\\\\}
  DEVICE_ID=$device_id CAMERA=$camera CAMERA_PATH=${path_toml//\"/\\\"} awk '
    /^id = "alprd-dev"/     { print "id = \"" ENVIRON["DEVICE_ID"] "\"  # unit name in every read, status and upload"; next }
    /^source = "synthetic"/ { print "source = \"" ENVIRON["CAMERA"] "\"  # synthetic | video | images | usb | rtsp | picamera"; next }
    /^path = ""/            { print "path = \"" ENVIRON["CAMERA_PATH"] "\"  # video file, image folder, /dev/videoN or rtsp://"; next }
    { print }' "$REPO/config/alprd.example.toml" \
  | sed -e "s|^state_dir = \"state\" |state_dir = \"$STATE_DIR\"|" \
        -e "s|^# detector_model = .*|detector_model = \"$PREFIX/models/plate_detector.onnx\"|" \
        -e "s|^# verifier_model = .*|verifier_model = \"$PREFIX/models/plate_verifier.onnx\"|" \
        -e "s|^# ocr_model = .*|ocr_model = \"$PREFIX/models/plate_ocr.onnx\"|"
}

if [[ $print_config -eq 1 || ! -e $CONF_DIR/alprd.toml ]]; then
  check_unit_settings
elif [[ -n $device_id$camera$camera_path ]]; then
  echo "install.sh: note: $CONF_DIR/alprd.toml exists and is kept; edit it to change device or camera" >&2
fi
if [[ $print_config -eq 1 ]]; then
  render_config
  exit 0
fi

[[ $EUID -eq 0 ]] || die "run as root: sudo $0 ${given[*]}"
command -v systemctl >/dev/null || die "systemd is required (systemctl not found)"
command -v python3 >/dev/null || die "python3 is required: apt install python3 python3-venv"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is required"

step "service user $SERVICE_USER (groups video, dialout)"
for group in video dialout; do
  getent group "$group" >/dev/null || groupadd --system "$group"
done
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir "$STATE_DIR" \
          --shell /usr/sbin/nologin --comment "alprd plate reader" "$SERVICE_USER"
fi
usermod -aG video,dialout "$SERVICE_USER"

step "code in $PREFIX"
install -d -o root -g root -m 0755 "$PREFIX" "$PREFIX/models"
venv_opts=()
[[ $pi -eq 1 ]] && venv_opts+=(--system-site-packages)  # picamera2 comes from apt on Raspberry Pi OS
[[ -x $PREFIX/venv/bin/python ]] || python3 -m venv "${venv_opts[@]}" "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet "$REPO"
ln -sf "$PREFIX/venv/bin/alprd" /usr/local/bin/alprd
if [[ $pi -eq 1 ]]; then
  "$PREFIX/venv/bin/python" -c 'import picamera2' 2>/dev/null \
    || echo "warning: picamera2 not importable: apt install python3-picamera2, then re-run with --pi" >&2
fi
models=("$REPO"/models/*.onnx)
if [[ -e ${models[0]} ]]; then
  install -o root -g root -m 0644 "${models[@]}" "$PREFIX/models/"
else
  echo "warning: no models/*.onnx in $REPO: copy them to $PREFIX/models/ before starting" >&2
fi

step "configuration in $CONF_DIR"
install -d -o root -g "$SERVICE_USER" -m 0750 "$CONF_DIR"
if [[ ! -e $CONF_DIR/alprd.toml ]]; then
  render_config > "$CONF_DIR/alprd.toml.new"
  mv "$CONF_DIR/alprd.toml.new" "$CONF_DIR/alprd.toml"
  echo "created $CONF_DIR/alprd.toml for $device_id ($camera camera): check gps and uplink for this unit"
fi
chown "$SERVICE_USER:$SERVICE_USER" "$CONF_DIR/alprd.toml"
chmod 0600 "$CONF_DIR/alprd.toml"
if [[ ! -e $CONF_DIR/alprd.env ]]; then
  printf '%s\n' "# Secrets for alprd, read by systemd only (root 0600)." \
    "# Refer to them in alprd.toml as \"env:NAME\", e.g. password = \"env:ALPRD_MQTT_PASSWORD\"." \
    "#ALPRD_MQTT_PASSWORD=" "#ALPRD_HOTLIST_KEY=" > "$CONF_DIR/alprd.env"
fi
chown root:root "$CONF_DIR/alprd.env"
chmod 0600 "$CONF_DIR/alprd.env"

step "state in $STATE_DIR"
install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$STATE_DIR"
chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
find "$STATE_DIR" -maxdepth 1 -type f -name '*.db*' -exec chmod 0600 {} +

step "check the configuration as $SERVICE_USER"
runuser -u "$SERVICE_USER" -- "$PREFIX/venv/bin/alprd" config check "$CONF_DIR/alprd.toml" >/dev/null \
  || die "$CONF_DIR/alprd.toml is invalid: fix it (alprd config check shows why) and re-run"

step "keys in $STATE_DIR (signing key and access-log secret, alprd 0600; never replaced)"
runuser -u "$SERVICE_USER" -- "$PREFIX/venv/bin/alprd" -c "$CONF_DIR/alprd.toml" keys init
runuser -u "$SERVICE_USER" -- "$PREFIX/venv/bin/alprd" -c "$CONF_DIR/alprd.toml" keys export-public \
  > "$CONF_DIR/signing-public.pem"
chmod 0644 "$CONF_DIR/signing-public.pem"

step "systemd unit"
install -o root -g root -m 0644 "$REPO/systemd/alprd.service" "$UNIT_DIR/alprd.service"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$UNIT_DIR/alprd.service"
fi
systemctl daemon-reload
if [[ $enable -eq 1 ]]; then
  systemctl enable alprd.service
fi
if [[ $start -eq 1 ]]; then
  systemctl restart alprd.service
fi

cat <<DONE

alprd installed.
  edit:     sudoedit $CONF_DIR/alprd.toml   (then: sudo systemctl restart alprd)
  start:    sudo systemctl start alprd
  health:   sudo alprd status   (or add yourself to the alprd group: sudo usermod -aG alprd \$USER)
  checks:   sudo systemctl stop alprd; sudo -u $SERVICE_USER $PREFIX/venv/bin/alprd diag all
  logs:     journalctl -u alprd -f
  evidence: give the department $CONF_DIR/signing-public.pem (alprd export verify DIR --public-key FILE)
DONE
