#!/usr/bin/env bash
# Ingest with one and with two lakehose nodes over one S3 bucket: starts
# moto in server mode on loopback (pip install 'moto[server]'), points the
# AWS environment at it and runs the e2e_nodes group of the ingest
# benchmark (cargo bench --bench ingest -- nodes).
set -euo pipefail
cd "$(dirname "$0")/.."
port="${MOTO_PORT:-4599}"
moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill "$moto" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  if curl -fs -o /dev/null "http://127.0.0.1:$port/"; then break; fi
  sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
  AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent \
  AWS_EC2_METADATA_DISABLED=true LAKEHOSE_BENCH_S3=1
cargo bench --bench ingest -- nodes "$@"
