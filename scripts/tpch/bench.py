#!/usr/bin/env python3
"""TPC-H: lakehose (through its Athena API) against DuckDB on the same files.

Runs each of the 22 queries N times through lakehose (StartQueryExecution,
GetQueryExecution until it finishes, then every page of GetQueryResults) and
N times through DuckDB in-process over the same Parquet folder, and prints
the best-of-N wall-clock time in ms of each, their ratio, and the geometric
mean of the ratios lakehose/DuckDB over the queries both answered. The
figures are also written as JSON.

    python scripts/tpch/bench.py --data /tmp/tpch-sf1 --reps 3 \\
        --endpoint http://127.0.0.1:4570 --json tpch-bench.json

The tables must exist in lakehose's database (default `tpch`) over the same
files: pass --create-tables s3://BUCKET/PREFIX to run sql/tpch/ddl.sql first
with ${BUCKET} and ${PREFIX} filled in. --skip-lakehose or --skip-duckdb run
one side only.
"""

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tpch_common  # noqa: E402

FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")


class QueryFailed(Exception):
    """A query that did not succeed, with the reason the engine gave."""


class Lakehose:
    """The Athena API of a lakehose server."""

    def __init__(self, endpoint, region, database, workgroup, output_location, timeout):
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "athena",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id="lakehose",
            aws_secret_access_key="lakehose",
            config=Config(retries={"max_attempts": 1}, read_timeout=max(60, timeout)),
        )
        self.database = database
        self.workgroup = workgroup
        self.output_location = output_location
        self.timeout = timeout
        self.last_statistics = {}

    def run(self, sql):
        """Runs `sql` to completion and fetches every result row. Returns
        (rows, engine_ms): the data rows (header row removed) and the
        engine's own EngineExecutionTimeInMillis when it reports one."""
        request = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if self.output_location:
            request["ResultConfiguration"] = {"OutputLocation": self.output_location}
        qid = self.client.start_query_execution(**request)["QueryExecutionId"]

        deadline = time.monotonic() + self.timeout
        pause = 0.005
        while True:
            execution = self.client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
            status = execution.get("Status", {})
            state = status.get("State")
            if state in FINISHED:
                break
            if time.monotonic() > deadline:
                try:
                    self.client.stop_query_execution(QueryExecutionId=qid)
                except Exception as e:
                    print(f"could not stop query {qid}: {e}", file=sys.stderr)
                raise QueryFailed(f"still {state} after {self.timeout} s (query {qid}, stop requested)")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.02)
        if state != "SUCCEEDED":
            reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage")
            raise QueryFailed(f"{state}: {reason or 'no reason given'} (query {qid})")

        rows = []
        columns = None
        kwargs = {"QueryExecutionId": qid}
        while True:
            page = self.client.get_query_results(**kwargs)
            result = page.get("ResultSet", {})
            if columns is None:
                info = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [c.get("Label") or c.get("Name") for c in info]
            for row in result.get("Rows", []):
                rows.append([d.get("VarCharValue") for d in row.get("Data", [])])
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        # Athena puts the column names in the first row of a SELECT's results.
        if rows and columns and rows[0] == columns:
            rows = rows[1:]
        self.last_statistics = execution.get("Statistics", {})
        engine_ms = self.last_statistics.get("EngineExecutionTimeInMillis")
        return rows, engine_ms

    def run_script(self, text):
        """Runs each statement of a `;`-separated script, in order."""
        for statement in tpch_common.split_statements(text):
            self.run(statement)


def best_of(reps, fn):
    """Runs fn() reps times; returns (best wall-clock ms, last result)."""
    best = math.inf
    result = None
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        best = min(best, (time.perf_counter() - start) * 1000.0)
    return best, result


def geomean(values):
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def fmt_ms(ms):
    return "-" if ms is None else f"{ms:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with one sub-folder of Parquet per table")
    parser.add_argument("--endpoint", default="http://127.0.0.1:4570", help="lakehose's Athena API")
    parser.add_argument("--reps", type=int, default=3, help="runs of each query per engine; the best counts")
    parser.add_argument("--queries", default="all", help="e.g. 1,3,5-7 (default: all 22)")
    parser.add_argument("--database", default="tpch")
    parser.add_argument("--workgroup", default="primary")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--output-location", default=None, help="ResultConfiguration.OutputLocation, if the server needs one")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a lakehose query is given up")
    parser.add_argument("--create-tables", metavar="S3_URL", default=None,
                        help="run sql/tpch/ddl.sql first, its tables at S3_URL (s3://BUCKET/PREFIX)")
    parser.add_argument("--duckdb-threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    parser.add_argument("--bare", metavar="BIN", default=None,
                        help="the lakehose binary: also run `lakehose bare-datafusion` (the service-overhead baseline)")
    parser.add_argument("--skip-lakehose", action="store_true")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--json", default="tpch-bench.json", help="where the figures go")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.skip_lakehose and args.skip_duckdb:
        parser.error("nothing to run")

    queries = tpch_common.parse_queries(args.queries)
    texts = {n: tpch_common.load_query(n) for n in queries}
    tpch_common.check_data_dir(args.data)

    report = {
        "data": os.path.abspath(args.data),
        "reps": args.reps,
        "endpoint": None if args.skip_lakehose else args.endpoint,
        "duckdb_version": None,
        "queries": [],
    }

    con = None
    if not args.skip_duckdb:
        import duckdb

        report["duckdb_version"] = duckdb.__version__
        con = tpch_common.duckdb_connect(args.data)
        if args.duckdb_threads:
            con.execute(f"set threads = {int(args.duckdb_threads)}")
        report["duckdb_threads"] = con.execute("select current_setting('threads')").fetchone()[0]

    lakehose = None
    if not args.skip_lakehose:
        lakehose = Lakehose(args.endpoint, args.region, args.database, args.workgroup,
                            args.output_location, args.timeout)
        if args.create_tables:
            location = args.create_tables.rstrip("/")
            if not location.startswith("s3://") or "/" not in location[5:]:
                parser.error("--create-tables wants s3://BUCKET/PREFIX")
            bucket, prefix = location[5:].split("/", 1)
            with open(os.path.join(tpch_common.SQL_DIR, "ddl.sql"), encoding="utf-8") as f:
                ddl = f.read().replace("${BUCKET}", bucket).replace("${PREFIX}", prefix)
            try:
                lakehose.run_script(ddl)
            except Exception as e:
                print(f"creating the tables failed: {e}", file=sys.stderr)
                return 1

    bare = {}
    if args.bare:
        import subprocess

        out = subprocess.run([args.bare, "bare-datafusion", "--data", args.data, "--sql", tpch_common.SQL_DIR,
                              "--reps", str(args.reps)], check=True, capture_output=True, text=True)
        for line in out.stdout.splitlines():
            entry = json.loads(line)
            bare[entry["query"]] = entry["best_ms"]
        report["datafusion_version_note"] = "bare DataFusion, lakehose's session settings"

    print(f"{'query':<6} {'rows':>6} {'duckdb_ms':>11} {'lakehose_ms':>12} {'ratio':>8} {'bare_df_ms':>11}  note")
    for n in queries:
        name = tpch_common.query_name(n)
        entry = {"query": name, "rows": None, "duckdb_ms": None, "lakehose_ms": None,
                 "lakehose_engine_ms": None, "ratio": None, "errors": []}
        if con is not None:
            try:
                ms, rows = best_of(args.reps, lambda: con.execute(texts[n]).fetchall())
                entry["duckdb_ms"] = round(ms, 3)
                entry["rows"] = len(rows)
            except Exception as e:
                entry["errors"].append(f"duckdb: {e}")
                print(f"{name} duckdb: FAILED: {e}", file=sys.stderr)
        if lakehose is not None:
            try:
                ms, (rows, engine_ms) = best_of(args.reps, lambda: lakehose.run(texts[n]))
                entry["lakehose_ms"] = round(ms, 3)
                entry["lakehose_engine_ms"] = engine_ms
                if entry["rows"] is None:
                    entry["rows"] = len(rows)
                elif entry["rows"] != len(rows):
                    entry["errors"].append(f"lakehose returned {len(rows)} rows, DuckDB {entry['rows']}")
                    print(f"{name} lakehose returned {len(rows)} rows, DuckDB {entry['rows']}", file=sys.stderr)
            except Exception as e:
                entry["errors"].append(f"lakehose: {e}")
                print(f"{name} lakehose: {e}", file=sys.stderr)
        if entry["duckdb_ms"] and entry["lakehose_ms"]:
            entry["ratio"] = round(entry["lakehose_ms"] / entry["duckdb_ms"], 4)
        entry["bare_datafusion_ms"] = bare.get(name)
        if entry["bare_datafusion_ms"] and entry["lakehose_ms"]:
            entry["overhead"] = round(entry["lakehose_ms"] / entry["bare_datafusion_ms"], 4)
        report["queries"].append(entry)
        ratio = "-" if entry["ratio"] is None else f"{entry['ratio']:.2f}"
        rows = "-" if entry["rows"] is None else str(entry["rows"])
        note = "; ".join(entry["errors"])
        print(f"{name:<6} {rows:>6} {fmt_ms(entry['duckdb_ms']):>11} {fmt_ms(entry['lakehose_ms']):>12} "
              f"{ratio:>8} {fmt_ms(entry['bare_datafusion_ms']):>11}  {note[:80]}")

    compared = [q["ratio"] for q in report["queries"] if q["ratio"] is not None]
    report["compared"] = len(compared)
    report["geomean_ratio"] = geomean(compared)
    report["duckdb_total_ms"] = sum(q["duckdb_ms"] or 0 for q in report["queries"])
    report["lakehose_total_ms"] = sum(q["lakehose_ms"] or 0 for q in report["queries"])
    failed = [q["query"] for q in report["queries"] if q["errors"]]
    report["failed"] = failed

    overheads = [q.get("overhead") for q in report["queries"] if q.get("overhead")]
    report["geomean_overhead"] = geomean(overheads)
    bare_total = sum(q.get("bare_datafusion_ms") or 0 for q in report["queries"])
    report["bare_datafusion_total_ms"] = bare_total or None
    if report["geomean_overhead"] is not None:
        print(f"geometric mean lakehose (through the API)/bare DataFusion: {report['geomean_overhead']:.3f}; "
              f"totals {report['lakehose_total_ms']:.0f} ms vs {bare_total:.0f} ms")
    return finish(report, len(compared), failed, args.json)


def finish(report, compared, failed, path):
    """Prints the closing lines, writes `report` as JSON to `path` and
    returns the exit code (1 when a query failed)."""
    if report.get("geomean_ratio") is not None:
        print(f"geometric mean lakehose/DuckDB over {compared} queries: {report['geomean_ratio']:.2f}")
    if failed:
        print(f"failed or mismatched: {', '.join(failed)}")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"figures written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
