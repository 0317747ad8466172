#!/usr/bin/env bash
# The peer-uid check is real: a client under another uid (setpriv) is refused
# with PERMISSION_DENIED by a socket that admits only our uid, admitted when
# its uid is allowed, and kept out by file permissions on a default socket.
set -u
. "$(dirname "$0")/../lib/tap.sh"

if [ "$(id -u)" -ne 0 ]; then
  tap_skip "peer uid under another uid" "needs root for setpriv"
  tap_done; exit $?
fi
command -v setpriv >/dev/null || { tap_skip "peer uid" "no setpriv"; tap_done; exit $?; }

tmp=$(mktemp -d /tmp/sf-peeruid.XXXXXX)
chmod 755 "$tmp"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

start() {
  rm -f "$tmp/ready"
  "$SF_ECHO_SERVER" "$@" > "$tmp/ready" &
  pid=$!
  for _ in $(seq 100); do grep -q READY "$tmp/ready" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
stop() { kill "$pid"; wait "$pid"; pid=; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$SF_ECHO_CLIENT" "$@"; }

sock=$tmp/open/echo.sock
start --unix "$sock" --dir-mode 0755 --socket-mode 0666
tap_ok "server starts on a world-writable test socket" test -S "$sock"
out=$(as_nobody "unix:$sock" Say hi)
tap_like "uid 65534 refused by the uid check" "status=PERMISSION_DENIED" "$out"
tap_like "refusal names the uid" "uid 65534" "$out"
out=$("$SF_ECHO_CLIENT" "unix:$sock" Say hi)
tap_like "our own uid admitted" "status=OK" "$out"
stop

start --unix "$sock" --dir-mode 0755 --socket-mode 0666 --allow-uid 65534
out=$(as_nobody "unix:$sock" Whoami)
tap_like "uid 65534 admitted when allowed" "status=OK" "$out"
tap_like "and the server sees uid 65534" "uid=65534" "$out"
out=$("$SF_ECHO_CLIENT" "unix:$sock" Say hi)
tap_like "root refused when only 65534 is allowed" "status=PERMISSION_DENIED" "$out"
stop

sock2=$tmp/private/echo.sock
start --unix "$sock2"
out=$(as_nobody "unix:$sock2" Say hi)
tap_like "default 0750 directory keeps another uid from connecting at all" "status=UNAVAILABLE" "$out"
stop

tap_done
