#!/usr/bin/env bash
# Sends a correctly signed Slack slash command to a running chatops, as Slack would.
#
#   examples/slack-command.sh 'run hello-world'
#   CHATOPS_URL=http://127.0.0.1:8080 SLACK_SIGNING_SECRET=... examples/slack-command.sh 'run echo hi'
#
# The reply goes to a response_url; this script listens for it on 127.0.0.1:8090 (allowed by the
# demo config's response_url_hosts) and prints what chatops posted, like the Slack channel would.
set -euo pipefail

text="${1:-run hello-world}"
url="${CHATOPS_URL:-http://127.0.0.1:8080}"
secret="${SLACK_SIGNING_SECRET:-chatops-demo-signing-secret}"
reply_port="${REPLY_PORT:-8090}"
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }
command -v openssl >/dev/null || { echo "needs openssl (for the HMAC signature)" >&2; exit 1; }

# Form-encode the fields the way Slack does (spaces as %20 here; Slack sends +, both decode).
enc() { python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1],safe=""))' "$1"; }
body="token=unused&team_id=T0001&team_domain=example&channel_id=C0001&channel_name=ops"
body+="&user_id=U0001&user_name=you&command=%2Fdemo&text=$(enc "$text")"
body+="&response_url=$(enc "http://127.0.0.1:${reply_port}/reply")&trigger_id=$(date +%s%N)"

ts=$(date +%s)
sig="v0=$(printf 'v0:%s:%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"

# A one-shot listener for the reply (python's http.server; prints the posted JSON).
python3 - "$reply_port" <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        data = self.rfile.read(n)
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        try:
            print("reply posted to response_url:\n" + json.dumps(json.loads(data), indent=2))
        except ValueError:
            print(data.decode(errors="replace"))
        sys.stdout.flush()
        raise SystemExit(0)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).handle_request()
PY
listener=$!
sleep 0.3

echo "ack from chatops:"
curl -sS -X POST "$url/slack/commands" \
  -H "Content-Type: application/x-www-form-urlencoded" \
  -H "X-Slack-Request-Timestamp: $ts" \
  -H "X-Slack-Signature: $sig" \
  --data "$body"
echo
wait "$listener"
