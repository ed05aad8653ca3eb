#!/usr/bin/env python3
"""Golden answers for the 22 TPC-H queries, computed by DuckDB.

Runs sql/tpch/qNN.sql unchanged in DuckDB over the Parquet folder that
`lakehose tpch-gen` wrote and writes sql/tpch/answers/<name>/qNN.csv: a
header of column names, then one line per row, decimals and doubles rounded
half-up to 2 places, dates ISO, NULL empty.

    python scripts/tpch/golden.py --data /tmp/tpch-sf0.1 --out sql/tpch/answers/sf0.1

With --check nothing is written: the answers are recomputed and compared
with the files already there (exit status 1 on any difference).
"""

import argparse
import csv
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tpch_common  # noqa: E402


def answer_csv(con, sql):
    """The answer to `sql` as CSV text, and its row count."""
    cur = con.execute(sql)
    header = [d[0] for d in cur.description]
    rows = cur.fetchall()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([tpch_common.format_value(v) for v in row])
    return buf.getvalue(), len(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with one sub-folder of Parquet per table")
    parser.add_argument(
        "--out",
        default=os.path.join(tpch_common.SQL_DIR, "answers", "sf0.1"),
        help="folder for qNN.csv (default: sql/tpch/answers/sf0.1)",
    )
    parser.add_argument("--queries", default="all", help="e.g. 1,3,5-7 (default: all 22)")
    parser.add_argument("--check", action="store_true", help="compare with the existing answers instead of writing")
    args = parser.parse_args()

    import duckdb

    con = tpch_common.duckdb_connect(args.data)
    print(f"DuckDB {duckdb.__version__}, data {os.path.abspath(args.data)}")
    if not args.check:
        os.makedirs(args.out, exist_ok=True)
    failures = 0
    for n in tpch_common.parse_queries(args.queries):
        name = tpch_common.query_name(n)
        path = os.path.join(args.out, name + ".csv")
        try:
            text, rows = answer_csv(con, tpch_common.load_query(n))
        except Exception as e:  # report every failing query, not just the first
            print(f"{name}: FAILED: {e}", file=sys.stderr)
            failures += 1
            continue
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    expected = f.read()
            except FileNotFoundError:
                expected = None
            status = "ok" if expected == text else "DIFFERS"
            if expected != text:
                failures += 1
            print(f"{name}: {rows:>5} rows  {status}")
        else:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            print(f"{name}: {rows:>5} rows -> {path}")
    if failures:
        print(f"{failures} of the queries failed or differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
