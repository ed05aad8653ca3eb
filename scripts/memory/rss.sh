#!/usr/bin/env bash
# Peak memory of the server under load, against its configured limits.
#
# Starts the release server with an ingest buffer limit and a query memory
# limit, then at the same time:
#   - CLIENTS clients POST maximal NDJSON bodies (64 MiB in 100,000
#     records: the body and record-count limits) to one delivery stream for
#     SECONDS_LOAD seconds (503s are retried after 0.5 s, as clients must);
#   - a Postgres client (psql) streams `SELECT *` of ROWS rows written by
#     `lakehose gen-logs` (registered with sql/logbench/ddl.sql) and the
#     rows are counted;
# samples the server's VmRSS every 0.2 s and prints its peak (VmHWM) next
# to the limits.
#
# Usage: scripts/memory/rss.sh            (after `cargo build --release`)
# Environment: LAKEHOSE (binary, default target/release/lakehose or
# $CARGO_TARGET_DIR/release/lakehose), ROWS (10000000), CLIENTS (8),
# SECONDS_LOAD (60), BUFFER_MB (256), QUERY_MB (512), INFLIGHT_MB (512,
# request bodies being received at once), QUERY (1; 0 leaves
# the SELECT out), WORK (a temporary folder; the generated logs are kept
# there between runs when set).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${LAKEHOSE:-${CARGO_TARGET_DIR:-$root/target}/release/lakehose}
rows=${ROWS:-10000000}
clients=${CLIENTS:-8}
load_secs=${SECONDS_LOAD:-60}
buffer_mb=${BUFFER_MB:-256}
query_mb=${QUERY_MB:-512}
inflight_mb=${INFLIGHT_MB:-512}
work=${WORK:-$(mktemp -d)}
data=$work/data
mkdir -p "$data"
[ -x "$bin" ] || { echo "no release binary at $bin: run cargo build --release" >&2; exit 1; }

if [ ! -f "$work/generated-$rows" ]; then
  echo "generating $rows log records..."
  "$bin" gen-logs --out "$data/bench/gen" --records "$rows" --days 1 >/dev/null
  touch "$work/generated-$rows"
fi

# Each run starts from the generated logs alone: no catalog, streams or
# write-ahead log of an earlier run.
rm -rf "$data/_lakehose" "$data/load"

port=$((20000 + RANDOM % 20000)); pg_port=$((port + 1))
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" --pg-listen "127.0.0.1:$pg_port" \
  --max-buffer-mb "$buffer_mb" --query-memory-mb "$query_mb" \
  --http-max-inflight-body-mb "$inflight_mb" --maintenance off --log warn \
  >"$work/server.out" 2>"$work/server.err" &
server=$!
# On exit the server is stopped and waited for (a graceful stop delivers
# what is buffered), so the next run finds the data folder free.
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q "postgres wire listening" "$work/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q "postgres wire listening" "$work/server.out" || {
  echo "the server did not start:" >&2; cat "$work/server.err" >&2; exit 1; }
endpoint="http://127.0.0.1:$port"

sed -e 's/\${BUCKET}/bench/g' -e 's/\${PREFIX}/gen/g' "$root/sql/logbench/ddl.sql" |
  psql -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$pg_port user=bench dbname=default" >/dev/null

# (Already there when WORK is reused: its ResourceInUseException is fine.)
curl -s -o /dev/null "$endpoint/" -H 'X-Amz-Target: Firehose_20150804.CreateDeliveryStream' \
  -H 'Content-Type: application/x-amz-json-1.1' \
  -d '{"DeliveryStreamName":"load","ExtendedS3DestinationConfiguration":{"BucketARN":"arn:aws:s3:::load","RoleARN":"arn:aws:iam::000000000000:role/x","Prefix":"logs/","ErrorOutputPrefix":"errors/","BufferingHints":{"SizeInMBs":64,"IntervalInSeconds":60}}}'

# Sample RSS.
( peak=0; while kill -0 $server 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo "$peak" >"$work/peak"
    sleep 0.2
  done ) &
sampler=$!

# NDJSON load: CLIENTS threads, 64 MiB bodies, for load_secs seconds.
python3 - "$endpoint" "$clients" "$load_secs" >"$work/load.out" <<'PY' &
import http.client, json, sys, threading, time, urllib.parse
endpoint, clients, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
u = urllib.parse.urlparse(endpoint)
# The largest body the server takes: 64 MiB (--max-body-mb) in 100,000
# records (--max-ndjson-records), so lines of about 670 bytes.
records = 100_000
pad = (64 * 1024 * 1024 - 1024) // records - len(json.dumps({"service": "web", "level": "info", "message": ""})) - 1
line = (json.dumps({"service": "web", "level": "info", "message": "x" * pad}) + "\n").encode()
body = line * records
assert len(body) <= 64 * 1024 * 1024
stats = {"ok": 0, "busy": 0, "other": 0}
codes = {}
lock = threading.Lock()
def client():
    end = time.time() + secs
    while time.time() < end:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        try:
            c.request("POST", "/v1/streams/load/records", body, {"Content-Type": "application/x-ndjson"})
            r = c.getresponse(); r.read()
            key = "ok" if r.status == 200 else "busy" if r.status == 503 else "other"
            with lock:
                codes[r.status] = codes.get(r.status, 0) + 1
        except (BrokenPipeError, ConnectionResetError) as e:
            # Refused before the body was read (bodies in flight at their
            # limit): the server answered 503 and closed while we sent.
            key = "busy"
            with lock:
                codes[type(e).__name__] = codes.get(type(e).__name__, 0) + 1
        except Exception as e:
            key = "other"
            with lock:
                codes[type(e).__name__] = codes.get(type(e).__name__, 0) + 1
        finally:
            c.close()
        with lock:
            stats[key] += 1
        if key != "ok":
            time.sleep(0.5)
ts = [threading.Thread(target=client) for _ in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
stats["codes"] = {str(k): v for k, v in codes.items()}
print(json.dumps(stats))
PY
load=$!

start=$(date +%s.%N)
if [ "${QUERY:-1}" = 1 ]; then
  streamed=$(psql -X -At -c "SELECT * FROM logbench.logs" \
    "host=127.0.0.1 port=$pg_port user=bench dbname=default" | wc -l)
else
  streamed=0
fi
query_secs=$(echo "$(date +%s.%N) - $start" | bc)
wait $load
hwm=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
kill $sampler 2>/dev/null || true
echo "rows streamed to psql:     $streamed in ${query_secs}s"
echo "NDJSON posts (64 MiB):     $(cat "$work/load.out")"
echo "configured: --max-buffer-mb $buffer_mb, --http-max-inflight-body-mb $inflight_mb, --query-memory-mb $query_mb"
echo "server peak RSS (VmHWM):   $((hwm / 1024)) MiB"
# What the limits allow: acknowledged records (--max-buffer-mb) and the copy
# a flush writes out, request bodies being received (--http-max-inflight-body-mb)
# and their write-ahead-log entries, the query memory pool, and 64 MiB for
# the process itself (code, runtime, catalog).
echo "bound from the limits:     $((2 * buffer_mb + 2 * inflight_mb + query_mb + 64)) MiB (2 x buffer + 2 x bodies in flight + query + 64)"
