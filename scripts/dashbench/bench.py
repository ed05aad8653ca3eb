"""Times lakehose's dashboards: a cold refresh of a cached dataset over
the log benchmark's 50 million records, the page drawn from the cache by
one viewer, and by 20 viewers at once.

Start the server with this folder's dashboard first:

    lakehose serve --data-dir ./lakehose-data --dashboards scripts/dashbench &
    python scripts/dashbench/bench.py --json dashbench.json

Standard library only. Prints a table and writes the figures as JSON."""

import argparse
import json
import statistics
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def get(url):
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")
    return (time.perf_counter() - started) * 1000, body


def refresh(base, dashboard, dataset):
    data = urllib.parse.urlencode({"dataset": dataset}).encode()
    request = urllib.request.Request(f"{base}/dashboards/{dashboard}/refresh", data=data, method="POST")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=3600) as r:
        r.read()
    return (time.perf_counter() - started) * 1000


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values):
    return {"n": len(values), "p50_ms": round(pct(values, 50), 2), "p95_ms": round(pct(values, 95), 2),
            "max_ms": round(max(values), 2), "mean_ms": round(statistics.mean(values), 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="http://127.0.0.1:4570")
    parser.add_argument("--dashboard", default="logs_health")
    parser.add_argument("--dataset", default="hourly")
    parser.add_argument("--refreshes", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="page views by one viewer")
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--per-viewer", type=int, default=25)
    parser.add_argument("--json", default="dashbench.json")
    args = parser.parse_args()
    base = args.endpoint.rstrip("/")
    page = f"{base}/dashboards/{args.dashboard}"

    refreshes = [refresh(base, args.dashboard, args.dataset) for _ in range(args.refreshes)]
    _, body = get(page)
    if b'<p class="lh-error">' in body:
        print("the page shows an error; see it at", page, file=sys.stderr)
        return 1
    for _ in range(10):
        get(page)
    one = [get(page)[0] for _ in range(args.requests)]

    def viewer(_):
        return [get(page)[0] for _ in range(args.per_viewer)]

    started = time.perf_counter()
    with ThreadPoolExecutor(args.viewers) as pool:
        many = [ms for batch in pool.map(viewer, range(args.viewers)) for ms in batch]
    wall = time.perf_counter() - started
    report = {
        "page_bytes": len(body),
        "cold_refresh_ms": [round(r, 1) for r in refreshes],
        "one_viewer": summary(one),
        "concurrent": dict(summary(many), viewers=args.viewers, pages_per_s=round(len(many) / wall, 1)),
    }
    print(f"cold refresh of {args.dashboard}.{args.dataset}: " + ", ".join(f"{r:,.0f} ms" for r in refreshes))
    print(f"page from the cache ({len(body):,} bytes), one viewer: p50 {report['one_viewer']['p50_ms']} ms, "
          f"p95 {report['one_viewer']['p95_ms']} ms, max {report['one_viewer']['max_ms']} ms")
    c = report["concurrent"]
    print(f"{args.viewers} viewers at once: p50 {c['p50_ms']} ms, p95 {c['p95_ms']} ms, "
          f"max {c['max_ms']} ms, {c['pages_per_s']} pages/s")
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
