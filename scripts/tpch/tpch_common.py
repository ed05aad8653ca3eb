"""Shared pieces of the TPC-H scripts: where the queries live, DuckDB views
over the Parquet folders `lakehose tpch-gen` writes, and the one way values
are formatted in answer files."""

import datetime
import decimal
import os
import re

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SQL_DIR = os.path.join(REPO_ROOT, "sql", "tpch")

TABLES = (
    "region",
    "nation",
    "supplier",
    "customer",
    "part",
    "partsupp",
    "orders",
    "lineitem",
)

QUERIES = tuple(range(1, 23))

_TWO_PLACES = decimal.Decimal("0.01")


def query_name(n):
    """`q01` … `q22`."""
    return f"q{n:02d}"


def load_query(n, sql_dir=SQL_DIR):
    """The text of query `n`, as Athena receives it."""
    path = os.path.join(sql_dir, query_name(n) + ".sql")
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    if text.endswith(";"):
        raise ValueError(f"{path} ends with a semicolon; Athena rejects that")
    return text


def parse_queries(spec):
    """`"1,3,5-7"` -> [1, 3, 5, 6, 7]; empty or `all` -> all 22."""
    if not spec or spec == "all":
        return list(QUERIES)
    chosen = []
    for item in spec.split(","):
        item = item.strip().lower().lstrip("q")
        if "-" in item:
            lo, hi = item.split("-", 1)
            chosen.extend(range(int(lo), int(hi.lstrip("q")) + 1))
        else:
            chosen.append(int(item))
    for n in chosen:
        if n not in QUERIES:
            raise ValueError(f"there is no TPC-H query {n}")
    return chosen


def check_data_dir(data_dir):
    """Raises unless every table folder holds at least one Parquet file."""
    missing = []
    for t in TABLES:
        folder = os.path.join(data_dir, t)
        if not os.path.isdir(folder) or not any(
            name.endswith(".parquet") for name in os.listdir(folder)
        ):
            missing.append(t)
    if missing:
        raise SystemExit(
            f"{data_dir}: no Parquet files for {', '.join(missing)}; "
            "generate them with `lakehose tpch-gen --scale 0.1 --out DIR`"
        )


def duckdb_connect(data_dir):
    """An in-memory DuckDB with one view per table over its Parquet files."""
    import duckdb

    check_data_dir(data_dir)
    con = duckdb.connect(":memory:")
    for t in TABLES:
        pattern = os.path.join(os.path.abspath(data_dir), t, "*.parquet")
        con.execute(
            f"create view {t} as select * from read_parquet('{pattern.replace(chr(39), chr(39) * 2)}')"
        )
    return con


def format_value(value):
    """One value as it appears in an answer CSV: decimals and doubles rounded
    half-up to 2 places, dates ISO, NULL empty, everything else as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        value = decimal.Decimal(repr(value))
    if isinstance(value, decimal.Decimal):
        rounded = value.quantize(_TWO_PLACES, rounding=decimal.ROUND_HALF_UP)
        if rounded == 0:
            rounded = abs(rounded)
        return f"{rounded:.2f}"
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def split_statements(text):
    """Splits a `;`-separated SQL script (no `;` inside literals) into
    statements, dropping `--` comment lines and empty statements."""
    lines = [line for line in text.splitlines() if not re.match(r"\s*--", line)]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
