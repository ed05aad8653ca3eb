#!/usr/bin/env python3
"""Ingest acknowledgement latency while TPC-H queries run on the same server.

Starts `lakehose serve` once per mode over one data folder, keeps TPC-H
queries running back to back through the Athena API, and meanwhile sends
Firehose PutRecord requests at a steady rate, timing each from send to
acknowledgement (the record is in the write-ahead log when it returns).
Prints p50/p95/p99/max of the acknowledgements per mode, with the queries
finished, and writes the figures as JSON.

Modes: `idle` (no query running, the floor), `shared` (`--query-threads 0`:
queries run on the network runtime, as before lakehose had a runtime for
them) and `dedicated` (the default: queries, ETL and compaction on a runtime
of their own at a lower priority).

    lakehose tpch-gen --scale 1 --out ./ackbench-data/bench/tpch/sf1
    python scripts/ackbench/bench.py --binary target/release/lakehose \\
        --data-dir ./ackbench-data --seconds 60 --json ackbench.json

The TPC-H files must be under `<data-dir>/bench/tpch/sf1/` (the bucket
`bench`), where the script registers them as database `tpch`.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tpch"))

import bench as tpch_bench  # noqa: E402
import tpch_common  # noqa: E402

STREAM = "ackbench"
BUCKET = "bench"
PREFIX = "tpch/sf1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, data_dir, query_threads):
    """`lakehose serve` on free loopback ports; returns (process, endpoint)."""
    port = free_port()
    args = [binary, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}",
            "--pg-listen", f"127.0.0.1:{free_port()}"]
    if query_threads is not None:
        args += ["--query-threads", str(query_threads)]
    log = open(os.path.join(data_dir, f"ackbench-server-{port}.log"), "w", encoding="utf-8")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"lakehose serve exited with {process.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(endpoint + "/health", timeout=1) as r:
                if r.status == 200:
                    return process, endpoint
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("lakehose serve did not answer /health within 120 s")


def stop_server(process):
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def firehose_client(endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "firehose",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="lakehose",
        aws_secret_access_key="lakehose",
        config=Config(retries={"max_attempts": 1}, read_timeout=120),
    )


def ensure_stream(firehose):
    names = firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"]
    if STREAM in names:
        return
    firehose.create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "RoleARN": "arn:aws:iam::000000000000:role/lakehose",
            "Prefix": "acks/",
            "ErrorOutputPrefix": "ack-errors/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
        },
    )


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def run_mode(args, mode):
    query_threads = {"idle": None, "shared": 0, "dedicated": None}[mode]
    process, endpoint = start_server(args.binary, args.data_dir, query_threads)
    try:
        lakehose = tpch_bench.Lakehose(endpoint, "us-east-1", "tpch", "primary", None, 1800)
        ddl = open(os.path.join(tpch_common.SQL_DIR, "ddl.sql"), encoding="utf-8").read()
        lakehose.run_script(ddl.replace("${BUCKET}", BUCKET).replace("${PREFIX}", PREFIX))
        firehose = firehose_client(endpoint)
        ensure_stream(firehose)
        texts = [tpch_common.load_query(n) for n in tpch_common.parse_queries(args.queries)]

        stop = threading.Event()
        finished = []
        failures = []

        def query_loop():
            i = 0
            while not stop.is_set():
                try:
                    lakehose.run(texts[i % len(texts)])
                    finished.append(i % len(texts))
                except Exception as e:  # noqa: BLE001 - reported, the loop goes on
                    failures.append(str(e))
                i += 1

        worker = None
        if mode != "idle":
            worker = threading.Thread(target=query_loop, daemon=True)
            worker.start()
            time.sleep(args.warmup)
        latencies = []
        interval = 1.0 / args.rate
        record = json.dumps({"service": "bench", "status": 200, "message": "x" * 160}).encode() + b"\n"
        next_send = time.monotonic()
        end = next_send + args.seconds
        while time.monotonic() < end:
            now = time.monotonic()
            if now < next_send:
                time.sleep(next_send - now)
            start = time.perf_counter()
            firehose.put_record(DeliveryStreamName=STREAM, Record={"Data": record})
            latencies.append((time.perf_counter() - start) * 1000)
            next_send += interval
        stop.set()
        if worker is not None:
            worker.join(timeout=1800)
        latencies.sort()
        return {
            "mode": mode,
            "acks": len(latencies),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p95_ms": round(percentile(latencies, 95), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "max_ms": round(latencies[-1], 2),
            "queries_finished": len(finished),
            "query_failures": failures[:3],
        }
    finally:
        stop_server(process)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(tpch_common.REPO_ROOT, "target", "release", "lakehose"))
    parser.add_argument("--data-dir", required=True, help="lakehose's data folder, TPC-H under bench/tpch/sf1/")
    parser.add_argument("--queries", default="1,9,18,21", help="TPC-H queries kept running, e.g. 1,9,18")
    parser.add_argument("--seconds", type=float, default=60, help="how long acknowledgements are timed per mode")
    parser.add_argument("--rate", type=float, default=50, help="PutRecord requests per second")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of queries before timing starts")
    parser.add_argument("--modes", default="idle,shared,dedicated")
    parser.add_argument("--json", default="ackbench.json")
    args = parser.parse_args()
    tpch_common.check_data_dir(os.path.join(args.data_dir, BUCKET, PREFIX))
    report = {"cores": os.cpu_count(), "rate_per_s": args.rate, "seconds": args.seconds,
              "queries": args.queries, "modes": []}
    print(f"{'mode':<10} {'acks':>6} {'p50_ms':>8} {'p95_ms':>8} {'p99_ms':>8} {'max_ms':>8} {'queries':>8}")
    for mode in args.modes.split(","):
        result = run_mode(args, mode.strip())
        report["modes"].append(result)
        print(f"{result['mode']:<10} {result['acks']:>6} {result['p50_ms']:>8} {result['p95_ms']:>8} "
              f"{result['p99_ms']:>8} {result['max_ms']:>8} {result['queries_finished']:>8}")
        for failure in result["query_failures"]:
            print(f"  query failed: {failure[:200]}", file=sys.stderr)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
