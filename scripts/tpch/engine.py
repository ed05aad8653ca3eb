#!/usr/bin/env python3
"""TPC-H: lakehose's engine against DuckDB, query by query, in one run.

For each query, DuckDB runs it N times in-process over the Parquet folder,
then `lakehose bare-datafusion --only qNN --engine-data-dir DIR` runs it N
times through lakehose's engine in its own process (catalog, table
providers, the Presto dialect, lakehose's optimizer rules; no API, no
result file) and N times through a bare DataFusion session over the same
files. The two alternate query by query, so a slow minute of the machine
weighs on both. Prints best-of-N ms, the ratios engine/DuckDB and
bare/DuckDB and their geometric means, and writes them as JSON.

    python scripts/tpch/engine.py --bin target/release/lakehose \\
        --data ./lakehose-data/tpch-data/sf1 --engine-data-dir ./lakehose-data \\
        --reps 3 --json tpch-engine.json

The engine's tables must exist in its catalog (database `tpch`) over the
same files: `bench.py --create-tables` or `lakehose query` with
sql/tpch/ddl.sql make them. `--set KEY=VALUE` (repeatable) is passed to
both sessions, e.g. `--set lakehose.optimizer.share_subplans=false` to
measure what one rule gains. Every answer's row count is checked against
DuckDB's.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tpch_common  # noqa: E402
from bench import best_of, fmt_ms, geomean  # noqa: E402


def lakehose_run(args, name):
    """One query through `lakehose bare-datafusion`: its JSON line."""
    command = [args.bin, "bare-datafusion", "--data", args.data, "--sql", tpch_common.SQL_DIR,
               "--reps", str(args.reps), "--only", name, "--database", args.database]
    if args.engine_data_dir:
        command += ["--engine-data-dir", args.engine_data_dir]
    for setting in args.set:
        command += ["--set", setting]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if len(lines) != 1:
        raise RuntimeError(f"expected one result line, got {len(lines)}")
    return json.loads(lines[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the lakehose binary (release build)")
    parser.add_argument("--data", required=True, help="folder with one sub-folder of Parquet per table")
    parser.add_argument("--engine-data-dir", default=None,
                        help="lakehose data folder whose catalog has the tables (omit: bare DataFusion only)")
    parser.add_argument("--database", default="tpch")
    parser.add_argument("--reps", type=int, default=3, help="runs of each query per engine; the best counts")
    parser.add_argument("--queries", default="all", help="e.g. 1,3,5-7 (default: all 22)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a session setting for lakehose's sessions (repeatable)")
    parser.add_argument("--duckdb-threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.add_argument("--json", default="tpch-engine.json", help="where the figures go")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error("--reps must be at least 1")

    import duckdb

    queries = tpch_common.parse_queries(args.queries)
    tpch_common.check_data_dir(args.data)
    con = tpch_common.duckdb_connect(args.data)
    if args.duckdb_threads:
        con.execute(f"set threads = {int(args.duckdb_threads)}")
    report = {
        "data": os.path.abspath(args.data),
        "reps": args.reps,
        "settings": args.set,
        "duckdb_version": duckdb.__version__,
        "duckdb_threads": con.execute("select current_setting('threads')").fetchone()[0],
        "queries": [],
    }
    failed = []
    print(f"{'query':<6} {'rows':>6} {'duckdb_ms':>10} {'engine_ms':>10} {'ratio':>6} {'bare_ms':>9} {'ratio':>6}  note")
    for n in queries:
        name = tpch_common.query_name(n)
        text = tpch_common.load_query(n)
        entry = {"query": name, "rows": None, "duckdb_ms": None, "engine_ms": None, "bare_ms": None,
                 "engine_ratio": None, "bare_ratio": None, "errors": []}
        try:
            ms, rows = best_of(args.reps, lambda: con.execute(text).fetchall())
            entry["duckdb_ms"] = round(ms, 3)
            entry["rows"] = len(rows)
        except Exception as e:
            entry["errors"].append(f"duckdb: {e}")
        try:
            line = lakehose_run(args, name)
            entry["bare_ms"] = line["best_ms"]
            entry["engine_ms"] = line.get("engine_ms")
            if entry["rows"] is not None and line["rows"] != entry["rows"]:
                entry["errors"].append(f"lakehose returned {line['rows']} rows, DuckDB {entry['rows']}")
        except Exception as e:
            entry["errors"].append(f"lakehose: {e}")
        if entry["duckdb_ms"]:
            if entry["engine_ms"]:
                entry["engine_ratio"] = round(entry["engine_ms"] / entry["duckdb_ms"], 4)
            if entry["bare_ms"]:
                entry["bare_ratio"] = round(entry["bare_ms"] / entry["duckdb_ms"], 4)
        if entry["errors"]:
            failed.append(name)
        report["queries"].append(entry)
        ratio = lambda r: "-" if r is None else f"{r:.2f}"  # noqa: E731
        rows = "-" if entry["rows"] is None else str(entry["rows"])
        print(f"{name:<6} {rows:>6} {fmt_ms(entry['duckdb_ms']):>10} {fmt_ms(entry['engine_ms']):>10} "
              f"{ratio(entry['engine_ratio']):>6} {fmt_ms(entry['bare_ms']):>9} {ratio(entry['bare_ratio']):>6}  "
              f"{'; '.join(entry['errors'])[:90]}", flush=True)

    for key in ("engine", "bare"):
        ratios = [q[f"{key}_ratio"] for q in report["queries"] if q[f"{key}_ratio"]]
        report[f"{key}_geomean"] = geomean(ratios)
        report[f"{key}_max"] = max(ratios) if ratios else None
        report[f"{key}_total_ms"] = sum(q[f"{key}_ms"] or 0 for q in report["queries"])
    report["duckdb_total_ms"] = sum(q["duckdb_ms"] or 0 for q in report["queries"])
    report["failed"] = failed
    for key, label in (("engine", "lakehose engine"), ("bare", "bare DataFusion")):
        if report[f"{key}_geomean"] is not None:
            print(f"{label}/DuckDB: geometric mean {report[f'{key}_geomean']:.3f}, "
                  f"worst {report[f'{key}_max']:.2f}, total {report[f'{key}_total_ms']:.0f} ms "
                  f"against {report['duckdb_total_ms']:.0f} ms")
    if failed:
        print(f"failed or mismatched: {', '.join(failed)}")
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"figures written to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
