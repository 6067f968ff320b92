#!/bin/sh
# The nchan peer of bench/compare.sh's transport-sse rows: nginx + nchan as configured by
# the anchors (shared/anchors/nchan/nginx.conf.tmpl, run the way its run.sh runs it: one worker,
# memory store, no message buffer), with one more location beside its WebSocket pubsub one:
#   /sse/<conversation>   GET with Accept: text/event-stream subscribes (nchan_subscriber
#                         eventsource), POST publishes the body (nchan_publisher http);
#                         nchan_channel_id "chat:<conversation>", as /ws/.
# So one nginx serves both of nchan's rows: ws://HOST:PORT/ws and http://HOST:PORT/sse.
# usage: nchan_eventsource.sh PORT    runs nginx in the foreground from a temp dir (removed on exit)
set -eu
P=${1:?usage: nchan_eventsource.sh PORT}
anchors=${FLOWRELAY_ANCHORS:-$(cd "$(dirname "$0")/.." && pwd)/../shared/anchors}
tmpl=$anchors/nchan/nginx.conf.tmpl
[ -r "$tmpl" ] || { echo "nchan_eventsource.sh: no $tmpl (set FLOWRELAY_ANCHORS)" >&2; exit 2; }
D=$(mktemp -d /tmp/nchan-sse.XXXX)
trap 'rm -rf "$D"' EXIT
trap 'exit 143' TERM INT
sed -e "s#__DIR__#$D#g" -e "s#__PORT__#$P#" -e "s#__REDIS_UPSTREAM__##" -e "s#__REDIS_USE__##" \
  "$tmpl" >"$D/nginx.conf.in"
# The eventsource location goes just before the template's /health location.
awk '/location = \/health/ {
       print "    location ~ ^/sse/(.+)$ {"
       print "      nchan_subscriber eventsource;"
       print "      nchan_publisher http;"
       print "      nchan_channel_id \"chat:$1\";"
       print "      nchan_message_buffer_length 0;"
       print "    }"
     }
     { print }' "$D/nginx.conf.in" >"$D/nginx.conf"
grep -q 'nchan_subscriber eventsource' "$D/nginx.conf" ||
  { echo "nchan_eventsource.sh: the template has no /health location to insert before" >&2; exit 2; }
nginx -c "$D/nginx.conf" -p "$D" -e "$D/error.log" &
ngx=$!
trap 'kill $ngx 2>/dev/null; wait $ngx 2>/dev/null; rm -rf "$D"' EXIT
wait $ngx
