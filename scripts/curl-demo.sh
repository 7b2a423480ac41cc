#!/bin/sh
# Talk to an AVS server (the avsd emulator) with nothing but curl:
#   1. exchange the refresh token for an access token (LWA refresh grant),
#   2. open the downchannel for a few seconds (prints the pushed directives),
#   3. while it is open, post System.SynchronizeState as a multipart/form-data event.
# Usage: scripts/curl-demo.sh BASE_URL CA_FILE REFRESH_TOKEN [DOWNCHANNEL_SECONDS]
# Exit code: 0 if the token, the downchannel (200) and the event (204/200) all worked.
set -eu

if [ $# -lt 3 ]; then
    echo "usage: $0 BASE_URL CA_FILE REFRESH_TOKEN [DOWNCHANNEL_SECONDS]" >&2
    exit 2
fi
BASE_URL=$1
CA_FILE=$2
REFRESH_TOKEN=$3
DC_SECONDS=${4:-3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

# 1. Token. The refresh token goes in a file (not argv) so it does not show up in `ps`.
printf 'grant_type=refresh_token&refresh_token=%s' "$REFRESH_TOKEN" > "$WORK/form"
curl --silent --show-error --fail --http2 --cacert "$CA_FILE" \
    --data-binary @"$WORK/form" -H 'content-type: application/x-www-form-urlencoded' \
    "$BASE_URL/auth/o2/token" > "$WORK/token.json"
ACCESS_TOKEN=$(sed -n 's/.*"access_token": *"\([^"]*\)".*/\1/p' "$WORK/token.json")
if [ -z "$ACCESS_TOKEN" ]; then
    echo "no access_token in the LWA answer" >&2
    exit 1
fi
printf 'header = "authorization: Bearer %s"\n' "$ACCESS_TOKEN" > "$WORK/auth.conf"

# 2. Downchannel in the background; --max-time ends it. curl's exit 28 (timed out) is how it ends when all went
#    well, so its own error message is kept in a file and shown only for another failure. The body file is
#    created first: curl writes none when the server pushed nothing.
: > "$WORK/dc.body"
: > "$WORK/dc.headers"
curl --silent --show-error --http2 --cacert "$CA_FILE" --config "$WORK/auth.conf" \
    --max-time "$DC_SECONDS" --dump-header "$WORK/dc.headers" --output "$WORK/dc.body" \
    "$BASE_URL/v20160207/directives" 2> "$WORK/dc.err" &
DC_PID=$!
sleep 0.5

# 3. An event: one JSON part named "metadata" (§4.2), CRLF line ends.
MESSAGE_ID=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || echo "curl-demo-$$")
{
    printf -- '--curl-demo-boundary\r\n'
    printf 'Content-Disposition: form-data; name="metadata"\r\n'
    printf 'Content-Type: application/json; charset=UTF-8\r\n\r\n'
    printf '{"context":[],"event":{"header":{"namespace":"System","name":"SynchronizeState",'
    printf '"messageId":"%s"},"payload":{}}}\r\n' "$MESSAGE_ID"
    printf -- '--curl-demo-boundary--\r\n'
} > "$WORK/event.body"
EVENT_STATUS=$(curl --silent --show-error --http2 --cacert "$CA_FILE" --config "$WORK/auth.conf" \
    -H 'content-type: multipart/form-data; boundary=curl-demo-boundary' \
    --data-binary @"$WORK/event.body" --output "$WORK/event.out" --write-out '%{http_code}' \
    "$BASE_URL/v20160207/events")

DC_RC=0
wait "$DC_PID" || DC_RC=$?
if [ "$DC_RC" != 0 ] && [ "$DC_RC" != 28 ]; then
    cat "$WORK/dc.err" >&2
fi
DC_STATUS=$(sed -n 's/^HTTP\/2 \([0-9]*\).*/\1/p' "$WORK/dc.headers" | head -n 1)
echo "downchannel: ${DC_STATUS:-none}"
echo "event: $EVENT_STATUS"
if [ -s "$WORK/dc.body" ]; then
    echo "downchannel body:"
    cat "$WORK/dc.body"
    echo
else
    echo "downchannel body: (nothing pushed)"
fi
[ "$DC_STATUS" = "200" ] && { [ "$EVENT_STATUS" = "204" ] || [ "$EVENT_STATUS" = "200" ]; }
