#!/usr/bin/env python3
"""Log analytics: lakehose (through its Athena API) against DuckDB on the
same Parquet files that `lakehose gen-logs` wrote.

Runs the ten queries of sql/logbench/ N times through each engine and prints
the best-of-N wall-clock time in ms of each, their ratio, the geometric mean
of the ratios, and the bytes lakehose scanned (Statistics.DataScannedInBytes)
with partition pruning and without it: the `-- pruning` lines of a query
hold only predicates on the partition columns that repeat its `ts` range, so
the query without them gives the same answer with no partition pruned.

    lakehose gen-logs --records 50000000 --out ./lakehose-data/logbench
    lakehose serve &
    python scripts/logbench/bench.py --data ./lakehose-data/logbench \\
        --create-tables s3://logbench --reps 3 --json logbench.json
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tpch"))

import bench as tpch_bench  # noqa: E402
import tpch_common  # noqa: E402

SQL_DIR = os.path.join(tpch_common.REPO_ROOT, "sql", "logbench")
QUERIES = [f"q{n:02d}" for n in range(1, 11)]


def load(name):
    with open(os.path.join(SQL_DIR, name + ".sql"), encoding="utf-8") as f:
        return f.read().strip()


def athena_text(text, pruning=True):
    """The query for lakehose; without the `-- pruning` lines when asked."""
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith("--"):
            continue
        if "-- pruning" in line:
            if not pruning:
                continue
            line = line.split("-- pruning")[0]
        lines.append(line)
    return "\n".join(lines).strip()


def duckdb_text(text):
    """DuckDB spells two of the Presto functions differently."""
    text = athena_text(text)
    text = re.sub(r"\bapprox_percentile\(", "approx_quantile(", text)
    return re.sub(r"\bapprox_distinct\(", "approx_count_distinct(", text)


def duckdb_connect(data_dir, threads):
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("set TimeZone = 'UTC'")
    if threads:
        con.execute(f"set threads = {int(threads)}")
    root = os.path.abspath(data_dir).replace("'", "''")
    con.execute(
        "create view logs as select * from read_parquet("
        f"'{root}/logs/*/*/*/*.parquet', hive_partitioning = true, "
        "hive_types = {'service': varchar, 'dt': varchar, 'hour': varchar})"
    )
    con.execute(f"create view users as select * from read_parquet('{root}/users/*.parquet')")
    return con


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the --out folder of `lakehose gen-logs`")
    parser.add_argument("--endpoint", default="http://127.0.0.1:4570", help="lakehose's Athena API")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--database", default="logbench")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--create-tables", metavar="S3_URL", default=None,
                        help="run sql/logbench/ddl.sql first, the data at S3_URL (s3://BUCKET[/PREFIX])")
    parser.add_argument("--duckdb-threads", type=int, default=None)
    parser.add_argument("--json", default="logbench.json")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if not os.path.isdir(os.path.join(args.data, "logs")):
        parser.error(f"{args.data}/logs does not exist; run `lakehose gen-logs --out {args.data}` first")

    import duckdb

    con = duckdb_connect(args.data, args.duckdb_threads)
    lakehose = tpch_bench.Lakehose(args.endpoint, args.region, args.database, "primary", None, args.timeout)
    if args.create_tables:
        location = args.create_tables.rstrip("/")
        if not location.startswith("s3://"):
            parser.error("--create-tables wants s3://BUCKET[/PREFIX]")
        bucket, _, prefix = location[5:].partition("/")
        ddl = load("ddl").replace("${BUCKET}", bucket)
        ddl = ddl.replace("/${PREFIX}", "/" + prefix if prefix else "")
        lakehose.run_script(ddl)

    total_rows = con.execute("select count(*) from logs").fetchone()[0]
    report = {"data": os.path.abspath(args.data), "records": total_rows, "reps": args.reps,
              "duckdb_version": duckdb.__version__,
              "duckdb_threads": con.execute("select current_setting('threads')").fetchone()[0],
              "queries": []}
    print(f"{total_rows} log records")
    print(f"{'query':<6} {'rows':>5} {'duckdb_ms':>10} {'lakehose_ms':>12} {'ratio':>6} "
          f"{'scanned_MiB':>12} {'unpruned_ms':>12} {'unpruned_MiB':>13}  note")
    failed = []
    for name in QUERIES:
        text = load(name)
        entry = {"query": name, "errors": []}
        try:
            ms, rows = tpch_bench.best_of(args.reps, lambda: con.execute(duckdb_text(text)).fetchall())
            entry["duckdb_ms"], entry["duckdb_rows"] = round(ms, 3), len(rows)
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            entry["errors"].append(f"duckdb: {e}")
        try:
            ms, (rows, _) = tpch_bench.best_of(args.reps, lambda: lakehose.run(athena_text(text)))
            entry["lakehose_ms"], entry["rows"] = round(ms, 3), len(rows)
            entry["scanned_bytes"] = lakehose.last_statistics.get("DataScannedInBytes")
            ms, _ = tpch_bench.best_of(args.reps, lambda: lakehose.run(athena_text(text, pruning=False)))
            entry["unpruned_lakehose_ms"] = round(ms, 3)
            entry["unpruned_scanned_bytes"] = lakehose.last_statistics.get("DataScannedInBytes")
        except Exception as e:  # noqa: BLE001
            entry["errors"].append(f"lakehose: {e}")
        if entry.get("duckdb_rows") is not None and entry.get("rows") is not None \
                and entry["duckdb_rows"] != entry["rows"]:
            entry["errors"].append(f"lakehose returned {entry['rows']} rows, DuckDB {entry['duckdb_rows']}")
        if entry.get("duckdb_ms") and entry.get("lakehose_ms"):
            entry["ratio"] = round(entry["lakehose_ms"] / entry["duckdb_ms"], 4)
        if entry["errors"]:
            failed.append(name)
        report["queries"].append(entry)
        mib = lambda b: "-" if b is None else f"{b / 1048576:.1f}"  # noqa: E731
        ratio = entry.get("ratio")
        print(f"{name:<6} {entry.get('rows', '-')!s:>5} {tpch_bench.fmt_ms(entry.get('duckdb_ms')):>10} "
              f"{tpch_bench.fmt_ms(entry.get('lakehose_ms')):>12} {'-' if ratio is None else f'{ratio:.2f}':>6} "
              f"{mib(entry.get('scanned_bytes')):>12} {tpch_bench.fmt_ms(entry.get('unpruned_lakehose_ms')):>12} "
              f"{mib(entry.get('unpruned_scanned_bytes')):>13}  "
              f"{'; '.join(entry['errors'])[:80]}")
    ratios = [q["ratio"] for q in report["queries"] if q.get("ratio")]
    report["geomean_ratio"] = tpch_bench.geomean(ratios)
    report["failed"] = failed
    return tpch_bench.finish(report, len(ratios), failed, args.json)


if __name__ == "__main__":
    sys.exit(main())
