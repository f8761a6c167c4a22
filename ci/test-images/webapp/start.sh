#!/bin/sh
# Hearth's test web app. Serves /data/www on $PORT (default 8080) and keeps state in /data so
# tests can prove an update kept the app's data: boots.txt gains one line per start.
set -e
VERSION="$(cat /app/VERSION)"
PORT="${PORT:-8080}"
if [ "$VERSION" = "3" ]; then
    echo "hearth test webapp v3: broken on purpose, exiting" >&2
    exit 3
fi
mkdir -p /data/www
echo "hearth-test-webapp v$VERSION" > /data/www/version.txt
echo "v$VERSION" >> /data/www/boots.txt
echo "${GREETING:-hello}" > /data/www/greeting.txt
echo "hearth test webapp v$VERSION listening on $PORT"
echo "stderr line from v$VERSION" >&2
exec httpd -f -v -p "$PORT" -h /data/www
