#!/usr/bin/env bash
# Sends a correctly signed Slack slash command to a running chatops, as Slack would, and prints
# the ack and the reply chatops posts back.
#
#   examples/slack-command.sh 'run hello-world'
#   examples/slack-command.sh --command /ops --wait 30 'run deploy staging'
#   CHATOPS_URL=http://127.0.0.1:8080 SLACK_SIGNING_SECRET=... examples/slack-command.sh help
#
# The reply goes to a response_url; this script listens for it on 127.0.0.1:8090 (allowed by the
# demo config's response_url_hosts) and prints what chatops posted, like the Slack channel would.
# It waits for that reply only when one is coming (the ack announced a job that runs), and at
# most --wait seconds. Needs bash and python3 (signing, posting and listening are done in
# python's standard library).
#
# Exit status: 0 the command was answered (and its reply printed when one was due);
# 1 chatops refused the request (not HTTP 200) or could not be reached;
# 2 usage error; 3 no reply arrived within --wait seconds.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: slack-command.sh [--command /NAME] [--wait SECONDS] [--url URL] [--reply-port PORT] [TEXT]

  TEXT               the command text after the slash command [default: run hello-world]
  --command /NAME    the slash command, which picks the project [default: /demo]
  --wait SECONDS     how long to wait for a delayed reply [default: 10]
  --url URL          chatops' base URL [default: $CHATOPS_URL, else http://127.0.0.1:8080]
  --reply-port PORT  where to listen for the reply [default: $REPLY_PORT, else 8090]

The signing secret is $SLACK_SIGNING_SECRET, else the demo config's.
EOF
}

command_name="/demo"
wait_s=10
url="${CHATOPS_URL:-http://127.0.0.1:8080}"
reply_port="${REPLY_PORT:-8090}"
text=""
while [ $# -gt 0 ]; do
  case "$1" in
    --command) command_name="${2:?--command needs a value, like /demo}"; shift 2 ;;
    --wait) wait_s="${2:?--wait needs a number of seconds}"; shift 2 ;;
    --url) url="${2:?--url needs a value}"; shift 2 ;;
    --reply-port) reply_port="${2:?--reply-port needs a port}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; text="$*"; break ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) text="$1"; shift ;;
  esac
done
text="${text:-run hello-world}"
case "$command_name" in /*) ;; *) command_name="/$command_name" ;; esac
case "$wait_s" in ''|*[!0-9]*) echo "--wait takes whole seconds, not '$wait_s'" >&2; exit 2 ;; esac
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 1; }

export SLACK_SIGNING_SECRET="${SLACK_SIGNING_SECRET:-chatops-demo-signing-secret}"
exec python3 - "$url" "$command_name" "$text" "$wait_s" "$reply_port" <<'PY'
import hashlib, hmac, http.server, json, os, sys, time, urllib.error, urllib.parse, urllib.request

url, command, text, wait_s, reply_port = sys.argv[1:6]
wait_s, reply_port = int(wait_s), int(reply_port)
secret = os.environ["SLACK_SIGNING_SECRET"]

# Listen before sending, so a fast reply is not missed.
replies = []
class Reply(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        replies.append(data)
    def log_message(self, *args):
        pass
try:
    listener = http.server.HTTPServer(("127.0.0.1", reply_port), Reply)
except OSError as e:
    sys.exit(f"cannot listen for the reply on 127.0.0.1:{reply_port} ({e}): pass --reply-port")

# Form-encoded the way Slack does, signed with the app's signing secret.
body = urllib.parse.urlencode({
    "token": "unused", "team_id": "T0001", "team_domain": "example",
    "channel_id": "C0001", "channel_name": "ops", "user_id": "U0001", "user_name": "you",
    "command": command, "text": text,
    "response_url": f"http://127.0.0.1:{reply_port}/reply",
    "trigger_id": str(time.time_ns()),
})
ts = str(int(time.time()))
signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
request = urllib.request.Request(
    url.rstrip("/") + "/slack/commands", data=body.encode(), method="POST",
    headers={"Content-Type": "application/x-www-form-urlencoded",
             "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature})

def show(label, data):
    try:
        print(label + json.dumps(json.loads(data), indent=2))
    except ValueError:
        print(label + data.decode(errors="replace"))
    sys.stdout.flush()

try:
    with urllib.request.urlopen(request, timeout=10) as response:
        status, ack = response.status, response.read()
except urllib.error.HTTPError as e:
    sys.stderr.write(f"chatops answered HTTP {e.code}: {e.read().decode(errors='replace')}\n")
    if e.code == 401:
        sys.stderr.write("(401: the signature did not verify: is SLACK_SIGNING_SECRET the server's?)\n")
    sys.exit(1)
except OSError as e:
    sys.exit(f"cannot reach chatops at {url}: {e}. Is `chatops serve` running? (--url)")
show("ack from chatops:\n", ack)

# Only a job that runs (or will, once queued or played) gets a later reply. Ephemeral acks
# (help, refusals, errors) and a manual job waiting to be played are the whole answer.
try:
    message = json.loads(ack)
except ValueError:
    message = {}
flat = json.dumps(message)
if status != 200 or message.get("response_type") != "in_channel" or "when: manual" in flat:
    sys.exit(0)

deadline = time.monotonic() + wait_s
while not replies and time.monotonic() < deadline:
    listener.timeout = max(0.1, deadline - time.monotonic())
    listener.handle_request()
if not replies:
    sys.stderr.write(f"no reply within {wait_s} s: the job may still be running (see the link "
                     "in the ack, or pass --wait SECONDS)\n")
    sys.exit(3)
show("reply posted to response_url:\n", replies[0])
PY
