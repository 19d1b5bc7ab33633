#!/bin/sh
# Builds Mosquitto's password file from secrets at deploy time (docker-compose.yml runs it in the
# one-shot `broker-passwd` service, on the eclipse-mosquitto image, before the broker starts).
# No password ships with the project: each comes from a secret file (docs/operations.md).
#
# Inputs, in $SECRETS (default /run/secrets):
#   mqtt_ingest_password, mqtt_alerts_password, mqtt_serving_password, mqtt_health_password:
#     the first line is the password of account citypipe-ingest, -alerts, -serving, -health;
#   mqtt_sensor_accounts (optional): `site_id:password` lines, one per sensor account
#     (`citypipe broker-acl --sensor-accounts FILE` adds the missing ones); # comments allowed.
# Output: $OUT (default /mosquitto/auth/passwd), hashed by `mosquitto_passwd -U`, mode 0600,
# owned by the broker's user; written beside and renamed, so the broker never reads half a file.
# After a change, `docker compose kill -s HUP mosquitto` makes the broker reload it.
set -eu
SECRETS=${SECRETS:-/run/secrets}
OUT=${OUT:-/mosquitto/auth/passwd}
umask 077
tmp="$OUT.new"
: > "$tmp"
for account in ingest alerts serving health; do
  file="$SECRETS/mqtt_${account}_password"
  password=$(head -n 1 "$file" 2>/dev/null | tr -d '\r') || password=""
  if [ -z "$password" ]; then
    echo "build-passwd: secret $file is missing or empty (there is no default password)" >&2
    rm -f "$tmp"
    exit 1
  fi
  printf 'citypipe-%s:%s\n' "$account" "$password" >> "$tmp"
done
sensors=0
if [ -f "$SECRETS/mqtt_sensor_accounts" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    line=$(printf '%s' "$line" | tr -d '\r')
    case "$line" in
      ''|'#'*) continue ;;
      *:?*) printf '%s\n' "$line" >> "$tmp"; sensors=$((sensors + 1)) ;;
      *) echo "build-passwd: $SECRETS/mqtt_sensor_accounts: not user:password: ${line%%:*}" >&2
         rm -f "$tmp"; exit 1 ;;
    esac
  done < "$SECRETS/mqtt_sensor_accounts"
fi
mosquitto_passwd -U "$tmp"
# The broker drops root for user mosquitto and must still read the file.
if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  chown mosquitto:mosquitto "$tmp"
fi
mv "$tmp" "$OUT"
echo "build-passwd: $OUT with 4 service account(s) and $sensors sensor account(s)"
