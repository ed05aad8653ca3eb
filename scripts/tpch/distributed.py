#!/usr/bin/env python3
"""TPC-H on lakehose's distributed engine against Apache DataFusion Ballista.

Runs the 22 queries of sql/tpch/, best of N, in one run on one machine:

- lakehose with its embedded engine (no workers);
- lakehose with 1 and with 2 `lakehose worker`s (datafusion-distributed),
  each through the Athena API (scripts/tpch/bench.py, boto3): the wall
  time at the client, and the engine's own time
  (EngineExecutionTimeInMillis: planning and execution, no API);
- Ballista 55 with 1 and with 2 executors (bench/ballista, its own client),
  over the same Parquet files.

    cargo build --release
    cargo build --release --manifest-path bench/ballista/Cargo.toml
    python scripts/tpch/distributed.py --lakehose target/release/lakehose \\
        --ballista bench/ballista/target/release/ballista-tpch \\
        --data-dir ./dist-data --scale 1 --reps 3 --json distributed.json

The data is generated under <data-dir>/tpch-data/sf<scale> when missing.
Each configuration prints its own table; the last table sets the totals and
the per-query figures side by side.
"""

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on port {port} within {timeout} s")


def start_worker(binary, data_dir, token):
    proc = subprocess.Popen(
        [binary, "worker", "--listen", "127.0.0.1:0", "--token", token, "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    first = proc.stdout.readline().strip()
    prefix = "lakehose worker listening on "
    if not first.startswith(prefix):
        proc.kill()
        raise SystemExit(f"unexpected first line from the worker: {first!r}")
    return proc, first[len(prefix):]


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def run_lakehose(args, data, label, workers):
    token = secrets.token_hex(16)
    procs = []
    try:
        addresses = []
        for _ in range(workers):
            proc, address = start_worker(args.lakehose, args.data_dir, token)
            procs.append(proc)
            addresses.append(address)
        port = free_port()
        cmd = [args.lakehose, "serve", "--data-dir", args.data_dir, "--listen", f"127.0.0.1:{port}",
               "--pg-listen", f"127.0.0.1:{free_port()}"]
        if workers:
            cmd += ["--workers", ",".join(addresses), "--worker-token", token]
        env = dict(os.environ, LAKEHOSE_LOG="warn")
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))
        wait_for(port, "lakehose serve")
        out = os.path.join(tempfile.mkdtemp(), "lakehose.json")
        prefix = os.path.relpath(data, os.path.join(args.data_dir, "tpch-data"))
        print(f"== lakehose, {label}", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, "bench.py"), "--data", data,
                        "--endpoint", f"http://127.0.0.1:{port}", "--reps", str(args.reps),
                        "--queries", args.queries, "--skip-duckdb",
                        "--create-tables", f"s3://tpch-data/{prefix}", "--json", out], check=True)
        with open(out, encoding="utf-8") as f:
            report = json.load(f)
        wall = {q["query"]: q["lakehose_ms"] for q in report["queries"]}
        engine = {q["query"]: q["lakehose_engine_ms"] for q in report["queries"]}
        return wall, engine
    finally:
        stop(procs)


def run_ballista(args, data, executors):
    out = os.path.join(tempfile.mkdtemp(), "ballista.json")
    print(f"== Ballista, {executors} executor(s)", flush=True)
    subprocess.run([args.ballista, "run", "--data", data, "--executors", str(executors),
                    "--reps", str(args.reps), "--queries", args.queries, "--json", out], check=True)
    with open(out, encoding="utf-8") as f:
        report = json.load(f)
    return {q["query"]: q["ballista_ms"] for q in report["queries"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lakehose", required=True, help="the lakehose binary (release build)")
    parser.add_argument("--ballista", default=None, help="the ballista-tpch binary (bench/ballista); omit to skip Ballista")
    parser.add_argument("--data-dir", required=True, help="lakehose's data folder for these runs")
    parser.add_argument("--scale", default="1", help="TPC-H scale factor (default 1)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--queries", default="all")
    parser.add_argument("--json", default="distributed.json")
    args = parser.parse_args()
    args.data_dir = os.path.abspath(args.data_dir)

    data = os.path.join(args.data_dir, "tpch-data", f"sf{args.scale}")
    if not os.path.isdir(os.path.join(data, "lineitem")):
        subprocess.run([args.lakehose, "tpch-gen", "--scale", args.scale, "--parts", "2", "--out", data],
                       check=True)

    columns = {}
    for label, workers in [("embedded", 0), ("1 worker", 1), ("2 workers", 2)]:
        wall, engine = run_lakehose(args, data, label, workers)
        columns[f"lakehose {label}"] = wall
        columns[f"lakehose {label}, engine"] = engine
    if args.ballista:
        columns["Ballista 1 executor"] = run_ballista(args, data, 1)
        columns["Ballista 2 executors"] = run_ballista(args, data, 2)

    names = sorted({q for col in columns.values() for q in col})
    print()
    print("| query | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for q in names:
        cells = []
        for col in columns.values():
            ms = col.get(q)
            cells.append("failed" if ms is None else f"{ms:,.0f}")
        print(f"| {q} | " + " | ".join(cells) + " |")
    totals = []
    for col in columns.values():
        if any(col.get(q) is None for q in names):
            totals.append("–")
        else:
            totals.append(f"**{sum(col[q] for q in names):,.0f}**")
    print("| **total** | " + " | ".join(totals) + " |")
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"scale": args.scale, "reps": args.reps, "columns": columns}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
