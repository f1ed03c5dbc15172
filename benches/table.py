#!/usr/bin/env python3
"""Prints a `tokend bench --json` report as the markdown table BENCHMARKS.md uses."""
import json
import sys

report = json.load(open(sys.argv[1]))
print("| rpc | req/s | x health | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | note |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in report["results"]:
    lat = r["latency_us"]
    errors = sum(r["errors"].values())
    note = []
    if r.get("ratio_to_verify") is not None:
        note.append(f'{r["ratio_to_verify"]:.2f}x bare verify')
    if r.get("bad_secret_rps"):
        note.append(f'{r["bad_secret_rps"]:.0f} wrong secrets/s beside')
    ratio = r.get("ratio_to_health")
    print(
        f'| {r["name"]} | {r["rps"]:,.0f} | {ratio:.2f} | '
        + " | ".join(f"{lat[k] / 1000:.2f}" for k in ("p50", "p90", "p99", "p999", "max"))
        + f' | {errors} | {"; ".join(note)} |'
    )
v = report.get("verify_baseline")
if v:
    print(f'\nbare {v["algorithm"]} verification: {v["per_sec_one_thread"]:,.0f}/s on one thread')
