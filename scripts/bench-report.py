#!/usr/bin/env python3
"""Turns the figures of a benchmark run into a markdown table and a plot.

Reads what `scripts/bench.sh` left in target/: criterion's estimates (target/criterion) and the
paired and counted figures the benchmarks write to target/bench-report/*.json. Writes
target/bench-report/REPORT.md and docs/performance.svg; with --readme, also replaces the part of
README.md between the `<!-- bench:start -->` and `<!-- bench:end -->` markers.

Standard library only, so it runs wherever python3 does.
"""

import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
REPORT = os.path.join(TARGET, "bench-report")
CRITERION = os.path.join(TARGET, "criterion")
SVG = os.path.join(ROOT, "docs", "performance.svg")

MIDDLEWARES = [
    ("bare", "bare service"),
    ("set_request_header", "SetRequestHeader"),
    ("add_authorization", "AddAuthorization"),
    ("oauth2", "OAuth2 (EmptyBodies, default)"),
    ("oauth2_no_replay", "OAuth2 (NoReplay)"),
]
SHAPES = [
    ("plain", "plain GET"),
    ("six_headers", "GET with 6 headers"),
    ("static_uri", "static URI, no headers"),
]


def load(name):
    path = os.path.join(REPORT, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)


def criterion_median(group, function):
    path = os.path.join(CRITERION, group, function, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)["median"]["point_estimate"]


def verdict(ok):
    return "met" if ok else "**not met**"


def machine():
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rustc = "rustc"
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cores = os.cpu_count()
    return f"{model}, {cores} cores, load average {load_avg} at report time; {rustc}"


def report():
    out = []
    add = out.append
    date = datetime.date.today().isoformat()
    add(f"Measured {date} on {machine()}, with `scripts/bench.sh`. The machine is shared, so")
    add("times are paired: every variant runs in turn, batch by batch, and the figure is the median")
    add("batch; ratios within one run hold where absolute times drift. Instruction counts are from")
    add("`valgrind --tool=callgrind` and do not drift at all.")
    add("")

    hot = load("hot_path") or {}
    instr = load("instructions") or {}
    add("**1. Hot path** (build a request, send it through the middleware to a no-op service; cached")
    add("token). Goal: at most 1.03x AddAuthorization.")
    add("")
    add("| request | middleware | ns per request | x AddAuthorization (time) | instructions | x AddAuthorization (instructions) |")
    add("|---|---|---|---|---|---|")
    for shape, shape_name in SHAPES:
        figures = hot.get(shape, {})
        floor = figures.get("add_authorization", {}).get("median_ns")
        floor_instr = instr.get(f"{shape}/add_authorization")
        for key, name in MIDDLEWARES:
            ns = figures.get(key, {}).get("median_ns")
            count = instr.get(f"{shape}/{key}")
            ratio = f"{ns / floor:.3f}" if ns and floor else "-"
            ratio_instr = f"{count / floor_instr:.3f}" if count and floor_instr else "-"
            ns_text = f"{ns:.0f}" if ns else "-"
            count_text = f"{count:.0f}" if count else "-"
            add(f"| {shape_name} | {name} | {ns_text} | {ratio} | {count_text} | {ratio_instr} |")
    add("")

    contention = load("contention") or {}
    add("**2. Contention** (each of 2 threads sends through its own clone; rounds where the threads")
    add("really ran side by side). Goal: at most 1.10x one thread.")
    add("")
    add("| middleware | 1 thread, ns | 2 threads, ns | 2 threads / 1 |")
    add("|---|---|---|---|")
    for key, name in MIDDLEWARES:
        figures = contention.get(key)
        if figures:
            ratio = figures["two_median_ns"] / figures["one_median_ns"]
            add(f"| {name} | {figures['one_median_ns']:.0f} | {figures['two_median_ns']:.0f} | {ratio:.2f} |")
    add("")

    allocations = load("allocations") or []
    add("**3. Allocations** per request (counting global allocator). Goal: the layer adds none.")
    add("")
    add("| request | bare | AddAuthorization | OAuth2 (EmptyBodies) | OAuth2 (NoReplay) | added by the layer |")
    add("|---|---|---|---|---|---|")
    for row in allocations:
        added = f"{row['oauth2'] - row['add_authorization']:+.0f} / {row['oauth2_no_replay'] - row['add_authorization']:+.0f}"
        add(f"| {row['request']} | {row['bare']:.0f} | {row['add_authorization']:.0f} | {row['oauth2']:.0f} | {row['oauth2_no_replay']:.0f} | {added} |")
    add("")

    herd = load("cold_herd") or []
    if herd:
        middle = lambda key: sorted(r[key] for r in herd)[len(herd) // 2]
        grants = sorted({r["grants"] for r in herd})
        add("**4. Cold herd** (10,000 concurrent requests, empty cache, 50 ms grant; median of")
        add(f"{len(herd)} rounds). Goal: exactly 1 grant, p99 at most 5 ms.")
        add("")
        add("| | grants | wake-up p50 | wake-up p99 | instructions per woken request |")
        add("|---|---|---|---|---|")
        ours_i, floor_i = instr.get("herd/oauth2"), instr.get("herd/watch_floor")
        cell = lambda value: f"{value:.0f}" if value else "-"
        add(f"| OAuth2 | {', '.join(map(str, grants))} | {middle('p50_ms'):.1f} ms | {middle('p99_ms'):.1f} ms | {cell(ours_i)} |")
        if "sending_floor_p99_ms" in herd[0]:
            add(f"| floor: `watch` channel, then the same request with a static header | - | {middle('sending_floor_p50_ms'):.1f} ms | {middle('sending_floor_p99_ms'):.1f} ms | {cell(floor_i)} |")
        add(f"| floor: bare `watch` channel, no request | - | {middle('floor_p50_ms'):.1f} ms | {middle('floor_p99_ms'):.1f} ms | - |")
        add("")
        add("Wake-ups count from the moment the grant returns (the floors: from the send). The")
        add("instruction counts are callgrind's for releasing 20,000 waiting requests on a one-thread")
        add("runtime (`cargo bench --bench instructions -- herd`), per request.")
        add("")

    e2e = load("end_to_end")
    if e2e:
        add(f"**5. End to end** (hyper server and client on loopback, keep-alive, {e2e['in_flight']} in flight,")
        add(f"{len(e2e['rounds'])} interleaved rounds of {e2e['requests']} requests). Goal: at least 0.97x.")
        add("")
        add("| token | with the layer / without a token (median of rounds) | best round / best round | with the layer / the same token as a static header (median) |")
        add("|---|---|---|---|")
        static = lambda key: f"{e2e[key]:.3f}" if key in e2e else "-"
        add(f"| 40 bytes | {e2e['median_ratio_40']:.3f} | {e2e['best_ratio_40']:.3f} | {static('median_static_ratio_40')} |")
        add(f"| 1 KiB | {e2e['median_ratio_1k']:.3f} | {e2e['best_ratio_1k']:.3f} | {static('median_static_ratio_1k')} |")
        add("")
        add("Without a token, a request is 1 KiB shorter on the wire; the last column compares like for")
        add("like: tower-http's `AddAuthorization` sending the same token, so it is the layer's own cost.")
        add("")

    peers = load("peers") or {}
    if peers:
        bare = peers["bare"]["median_ns"]
        ours = peers["tower_oauth2"]["median_ns"] - bare
        ours_instr = instr.get("plain/oauth2", 0) - instr.get("plain/bare", 0)
        add("**6. Peers** (the same plain request, cached token). Goal: at least 5x faster than the")
        add("fastest peer, compared on what each adds to the bare request.")
        add("")
        add("| | ns per request | added over bare | that / tower-oauth2's | instructions added | that / tower-oauth2's |")
        add("|---|---|---|---|---|---|")
        for key, name, instr_key in [
            ("add_authorization", "tower-http AddAuthorization (static)", "plain/add_authorization"),
            ("tower_oauth2", "tower-oauth2", "plain/oauth2"),
            ("aliri_tokens", "aliri_tokens TokenWatcher", "plain/aliri_tokens"),
            ("yup_oauth2", "yup-oauth2 Authenticator", "plain/yup_oauth2"),
        ]:
            ns = peers[key]["median_ns"]
            count = instr.get(instr_key)
            added_instr = count - instr.get("plain/bare", 0) if count else None
            add(
                f"| {name} | {ns:.0f} | {ns - bare:.0f} | {(ns - bare) / ours:.2f} | "
                + (f"{added_instr:.0f} | {added_instr / ours_instr:.2f} |" if added_instr else "- | - |")
            )
        add("")

    add("**Goals at a glance** (from the tables above):")
    add("")
    for line in goals(hot, instr, contention, allocations, herd, e2e, peers):
        add(f"- {line}")
    add("")
    return "\n".join(out)


def goals(hot, instr, contention, allocations, herd, e2e, peers):
    """One line per goal: the deciding figures and whether the goal is met."""
    lines = []

    def spread(key):
        times, counts = [], []
        for shape, _ in SHAPES:
            figures = hot.get(shape, {})
            ns, floor = figures.get(key, {}).get("median_ns"), figures.get("add_authorization", {}).get("median_ns")
            if ns and floor:
                times.append(ns / floor)
            count, floor_count = instr.get(f"{shape}/{key}"), instr.get(f"{shape}/add_authorization")
            if count and floor_count:
                counts.append(count / floor_count)
        return times, counts

    for key, name in [("oauth2", "default policy"), ("oauth2_no_replay", "NoReplay")]:
        times, counts = spread(key)
        if times and counts:
            lines.append(
                f"Hot path, {name}: {min(times):.2f}x to {max(times):.2f}x AddAuthorization in time, "
                f"{min(counts):.3f}x to {max(counts):.3f}x in instructions (goal 1.03x): {verdict(max(counts) <= 1.03 and max(times) <= 1.03)}."
            )
    ratios = [
        contention[key]["two_median_ns"] / contention[key]["one_median_ns"]
        for key in ("oauth2", "oauth2_no_replay")
        if key in contention
    ]
    if ratios:
        lines.append(f"Contention: {max(ratios):.2f}x one thread at worst (goal 1.10x): {verdict(max(ratios) <= 1.10)}.")
    if allocations:
        added = [row["oauth2"] - row["add_authorization"] for row in allocations]
        added_nr = [row["oauth2_no_replay"] - row["add_authorization"] for row in allocations]
        lines.append(
            f"Allocations: the layer adds at most {max(added):+.0f} (default policy; a request with headers of its own) "
            f"and {max(added_nr):+.0f} (NoReplay) (goal 0): {verdict(max(added) <= 0)}."
        )
    if herd:
        middle = lambda key: sorted(r[key] for r in herd)[len(herd) // 2]
        grants = {r["grants"] for r in herd}
        p99 = middle("p99_ms")
        line = f"Cold herd: grants {', '.join(map(str, sorted(grants)))} in every round; p99 {p99:.1f} ms (goal 5 ms): {verdict(grants == {1} and p99 <= 5)}"
        if "sending_floor_p99_ms" in herd[0]:
            line += f"; {p99 / middle('sending_floor_p99_ms'):.2f}x the p99 of the floor that sends the same requests with a static header"
        lines.append(line + ".")
    if e2e:
        worst = min(e2e["median_ratio_40"], e2e["median_ratio_1k"])
        line = f"End to end: {e2e['median_ratio_40']:.3f}x (40 bytes) and {e2e['median_ratio_1k']:.3f}x (1 KiB) without a token (goal 0.97x): {verdict(worst >= 0.97)}"
        if "median_static_ratio_40" in e2e:
            line += f"; against the same static header {e2e['median_static_ratio_40']:.3f}x and {e2e['median_static_ratio_1k']:.3f}x"
        lines.append(line + ".")
    if peers:
        bare = peers["bare"]["median_ns"]
        ours = peers["tower_oauth2"]["median_ns"] - bare
        fastest = min(peers[key]["median_ns"] - bare for key in ("aliri_tokens", "yup_oauth2"))
        lines.append(f"Peers: the fastest peer adds {fastest / ours:.2f}x what tower-oauth2 adds (goal 5x): {verdict(fastest / ours >= 5)}.")
    return lines


def svg():
    """A grouped bar chart of criterion's median per request, one group per request shape."""
    groups = [(shape, name, "hot_path_" + shape) for shape, name in SHAPES]
    rows = []
    for shape, name, group in groups:
        values = [(label, criterion_median(group, key)) for key, label in MIDDLEWARES]
        rows.append((name, values))
    peers = [
        (label, criterion_median("peers", key))
        for key, label in [
            ("bare", "bare service"),
            ("add_authorization", "AddAuthorization"),
            ("tower_oauth2", "tower-oauth2"),
            ("aliri_tokens", "aliri_tokens"),
            ("yup_oauth2", "yup-oauth2"),
        ]
    ]
    rows.append(("peers, plain GET", peers))
    if not any(v for _, values in rows for _, v in values):
        return None
    colors = ["#9e9e9e", "#90caf9", "#42a5f5", "#ef6c00", "#ffb74d"]
    peer_colors = ["#9e9e9e", "#42a5f5", "#ef6c00", "#7e57c2", "#26a69a"]
    top = max(v for _, values in rows for _, v in values if v)
    width, left, bar, gap = 760, 250, 14, 22
    height = 60 + sum(len(values) * bar + gap + 18 for _, values in rows) + 30
    scale = (width - left - 80) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="10" y="22" font-size="15" font-weight="bold">Time per request with a cached token (criterion median, ns; shorter is better)</text>',
        '<text x="10" y="40" fill="#555">Request build + call to a no-op service. Generated by scripts/bench-report.py from target/criterion.</text>',
    ]
    y = 60
    for index, (name, values) in enumerate(rows):
        parts.append(f'<text x="10" y="{y + 12}" font-weight="bold">{name}</text>')
        y += 18
        palette = peer_colors if index == len(rows) - 1 else colors
        for (label, value), color in zip(values, palette):
            if value is None:
                continue
            length = value * scale
            parts.append(f'<text x="{left - 8}" y="{y + bar - 3}" text-anchor="end">{label}</text>')
            parts.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar - 2}" fill="{color}"/>')
            parts.append(f'<text x="{left + length + 6:.1f}" y="{y + bar - 3}">{value:.0f}</text>')
            y += bar
        y += gap
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    text = report()
    os.makedirs(REPORT, exist_ok=True)
    with open(os.path.join(REPORT, "REPORT.md"), "w") as file:
        file.write(text + "\n")
    print(text)
    picture = svg()
    if picture:
        os.makedirs(os.path.dirname(SVG), exist_ok=True)
        with open(SVG, "w") as file:
            file.write(picture)
        print(f"\nplot: {os.path.relpath(SVG, ROOT)}")
    if "--readme" in sys.argv:
        readme = os.path.join(ROOT, "README.md")
        content = open(readme).read()
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        if start in content and end in content:
            before = content.split(start)[0]
            after = content.split(end, 1)[1]
            content = f"{before}{start}\n{text}\n{end}{after}"
            open(readme, "w").write(content)
            print("README.md updated")


if __name__ == "__main__":
    main()
