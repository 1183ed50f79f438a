#!/usr/bin/env python3
"""Writes the figures of a benchmark run into docs/performance.md.

Reads what `scripts/bench.sh` left in target/bench-report/*.json, replaces the part of
docs/performance.md between `<!-- bench:start -->` and `<!-- bench:end -->` (the prose around it
is written by hand) and draws docs/performance.svg from the same figures. Standard library only,
so it runs wherever python3 does.
"""

import datetime
import json
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
REPORT = os.path.join(TARGET, "bench-report")
DOC = os.path.join(ROOT, "docs", "performance.md")
PLOT = os.path.join(ROOT, "docs", "performance.svg")

PATTERNS = [("reused", "one service, reused"), ("clone", "a clone per request")]
SHAPES = [("plain", "plain GET"), ("six_headers", "GET with 6 headers"), ("static_uri", "static URI")]
MIDDLEWARES = [
    ("bare", "bare service"),
    ("add_authorization", "tower-http AddAuthorization"),
    ("add_authorization_retry", "AddAuthorization + tower Retry (request cloned)"),
    ("oauth2", "OAuth2Layer (default: EmptyBodies)"),
    ("oauth2_no_replay", "OAuth2Layer (NoReplay)"),
    ("aliri_tokens", "aliri_tokens"),
]


def load(name):
    path = os.path.join(REPORT, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as file:
        return json.load(file)


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
    return f"{model}, {os.cpu_count()} cores, load average {load_avg} at report time; {rustc}"


def met(ok):
    return "met" if ok else "**not met**"


def instructions_table(add, instr):
    add("### Instructions per request")
    add("")
    add("Callgrind's count for building a request and sending it through the middleware to a no-op")
    add("service, with a cached token (`cargo bench --bench instructions`). Counts do not move with")
    add("the machine's load. *Added* is the count over the bare service.")
    add("")
    for pattern, pattern_name in PATTERNS:
        add(f"**{pattern_name}**")
        add("")
        add("| middleware | " + " | ".join(f"{name} | added" for _, name in SHAPES) + " |")
        add("|---|" + "---|---|" * len(SHAPES))
        for key, name in MIDDLEWARES:
            cells = []
            for shape, _ in SHAPES:
                count = instr.get(f"{pattern}/{shape}/{key}")
                bare = instr.get(f"{pattern}/{shape}/bare")
                cells.append(f"{count:.0f}" if count else "-")
                cells.append(f"{count - bare:+.0f}" if count and bare and key != "bare" else "")
            add(f"| {name} | " + " | ".join(cells) + " |")
        add("")


def contention_table(add, contention):
    add("### Two threads side by side")
    add("")
    add("Per request, the median of the rounds in which both threads really ran together")
    add("(`cargo bench --bench contention`). *Reused*: each thread sends through a clone of its own;")
    add("*a clone per request*: both threads clone one shared client for every request.")
    add("")
    add("| middleware | pattern | 1 thread, ns | 2 threads, ns | 2 threads / 1 |")
    add("|---|---|---|---|---|")
    for key, name in MIDDLEWARES:
        for pattern, pattern_name in PATTERNS:
            figures = contention.get(f"{pattern}/{key}")
            if figures:
                ratio = figures["two_median_ns"] / figures["one_median_ns"]
                add(f"| {name} | {pattern_name} | {figures['one_median_ns']:.0f} | {figures['two_median_ns']:.0f} | {ratio:.2f} |")
    add("")


def hot_path_table(add, hot):
    add("### Time per request")
    add("")
    add("Every variant runs in turn, batch by batch, so all meet the same moments of a shared")
    add("machine; the ratio is to AddAuthorization in the same run (`cargo bench --bench hot_path`).")
    add("")
    add("| request | middleware | ns (median batch) | x AddAuthorization |")
    add("|---|---|---|---|")
    for shape, shape_name in SHAPES:
        figures = hot.get(shape, {})
        floor = figures.get("add_authorization", {}).get("median_ns")
        for key, name in MIDDLEWARES:
            ns = figures.get(key, {}).get("median_ns")
            if ns:
                ratio = f"{ns / floor:.3f}" if floor else "-"
                add(f"| {shape_name} | {name} | {ns:.0f} | {ratio} |")
    add("")


def allocations_table(add, allocations):
    add("### Allocations per request")
    add("")
    add("Counted by a counting global allocator (`cargo bench --bench allocations`).")
    add("")
    add("| request | bare | AddAuthorization | OAuth2Layer | OAuth2Layer (NoReplay) |")
    add("|---|---|---|---|---|")
    for row in allocations:
        add(f"| {row['request']} | {row['bare']:.0f} | {row['add_authorization']:.0f} | {row['oauth2']:.0f} | {row['oauth2_no_replay']:.0f} |")
    add("")


def herd_table(add, herd, instr):
    middle = lambda key: sorted(r[key] for r in herd)[len(herd) // 2]
    grants = sorted({r["grants"] for r in herd})
    add("### A cold herd")
    add("")
    add(f"10,000 requests wait on an empty cache for a grant that takes 50 ms; median of {len(herd)}")
    add("rounds (`cargo bench --bench cold_herd`). Wake-ups count from the moment the grant returns")
    add("(the floors: from the send). Instructions are callgrind's for releasing 20,000 waiting")
    add("requests on a one-thread runtime, per request.")
    add("")
    add("| | grants | wake-up p50 | wake-up p99 | instructions per woken request |")
    add("|---|---|---|---|---|")
    cell = lambda value: f"{value:.0f}" if value else "-"
    add(f"| OAuth2Layer | {', '.join(map(str, grants))} | {middle('p50_ms'):.1f} ms | {middle('p99_ms'):.1f} ms | {cell(instr.get('herd/oauth2'))} |")
    if "sending_floor_p99_ms" in herd[0]:
        add(f"| a `watch` channel, then the same request with a static header | - | {middle('sending_floor_p50_ms'):.1f} ms | {middle('sending_floor_p99_ms'):.1f} ms | {cell(instr.get('herd/watch_floor'))} |")
    add("")


def end_to_end_table(add, e2e):
    add("### End to end")
    add("")
    add(f"A hyper server and client on loopback, keep-alive, {e2e['in_flight']} requests in flight,")
    add(f"{len(e2e['rounds'])} interleaved rounds of {e2e['requests']} requests (`cargo bench --bench end_to_end`).")
    add("")
    add("| token | with the layer / without a token | with the layer / the same token as a static header |")
    add("|---|---|---|")
    static = lambda key: f"{e2e[key]:.3f}" if key in e2e else "-"
    add(f"| 40 bytes | {e2e['median_ratio_40']:.3f} | {static('median_static_ratio_40')} |")
    add(f"| 1 KiB | {e2e['median_ratio_1k']:.3f} | {static('median_static_ratio_1k')} |")
    add("")


def targets(add, instr, contention):
    """The performance targets of the middleware, computed from this run."""
    add("### Targets")
    add("")
    lines = []
    for pattern, pattern_name in PATTERNS:
        figures = [contention.get(f"{pattern}/{key}") for key in ("oauth2", "oauth2_no_replay")]
        ratios = [f["two_median_ns"] / f["one_median_ns"] for f in figures if f]
        if ratios:
            lines.append(f"Two threads / one, {pattern_name}: {max(ratios):.2f}x at worst (target 1.10x): {met(max(ratios) <= 1.10)}.")
    for pattern, pattern_name in PATTERNS:
        for shape, shape_name in SHAPES[:2]:
            get = lambda key: instr.get(f"{pattern}/{shape}/{key}")
            bare, ours, aliri = get("bare"), get("oauth2_no_replay"), get("aliri_tokens")
            default, by_hand = get("oauth2"), get("add_authorization_retry")
            if bare and ours and aliri:
                lines.append(
                    f"{pattern_name}, {shape_name}: NoReplay adds {ours - bare:.0f} instructions, aliri_tokens "
                    f"{aliri - bare:.0f} (target: fewer): {met(ours < aliri)}."
                )
            if bare and default and by_hand:
                lines.append(
                    f"{pattern_name}, {shape_name}: the default policy adds {default - bare:.0f} instructions, "
                    f"AddAuthorization + Retry {by_hand - bare:.0f} (target: fewer): {met(default < by_hand)}."
                )
    for line in lines:
        add(f"- {line}")
    add("")


def bars(title, unit, rows, x, y, width, mark=None):
    """One horizontal bar chart at (x, y): `rows` are (label, [(series, value)]), `mark` a value
    to draw a dashed line at; returns its SVG elements and its height."""
    series_colors = {"one service, reused": "#4878a8", "a clone per request": "#e0904a"}
    label_width, bar, gap = 330, 14, 10
    values = [value for _, pairs in rows for _, value in pairs if value is not None]
    top = max(values, default=1) or 1
    scale = (width - label_width - 70) / top
    out = [f'<text x="{x}" y="{y + 16}" class="title">{escape(title)}</text>']
    row_y = y + 34
    for label, pairs in rows:
        out.append(f'<text x="{x + label_width - 8}" y="{row_y + bar}" class="label" text-anchor="end">{escape(label)}</text>')
        for series, value in pairs:
            if value is None:
                row_y += bar
                continue
            length = max(value * scale, 1)
            color = series_colors.get(series, "#888")
            out.append(f'<rect x="{x + label_width}" y="{row_y}" width="{length:.1f}" height="{bar - 2}" fill="{color}"/>')
            out.append(f'<text x="{x + label_width + length + 4:.1f}" y="{row_y + bar - 4}" class="value">{value:,.0f}{unit}</text>')
            row_y += bar
        row_y += gap
    if mark is not None:
        mx = x + label_width + mark * scale
        out.append(f'<line x1="{mx:.1f}" y1="{y + 28}" x2="{mx:.1f}" y2="{row_y - gap}" stroke="#999" stroke-dasharray="4 3"/>')
    return out, row_y - y


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plot(instr, contention, stamp):
    """docs/performance.svg: instructions each middleware adds to a plain GET, and its time
    with two threads against one, both patterns; empty when the run measured neither."""
    width = 900
    elements, height = [], 10
    if instr:
        rows = []
        for key, name in MIDDLEWARES[1:]:
            pairs = []
            for pattern, pattern_name in PATTERNS:
                count, bare = instr.get(f"{pattern}/plain/{key}"), instr.get(f"{pattern}/plain/bare")
                pairs.append((pattern_name, count - bare if count and bare else None))
            rows.append((name, pairs))
        chart, used = bars("Instructions added to a plain GET (callgrind; fewer is better)", "", rows, 10, height, width)
        elements += chart
        height += used + 10
    if contention:
        rows = []
        for key, name in MIDDLEWARES:
            pairs = []
            for pattern, pattern_name in PATTERNS:
                figures = contention.get(f"{pattern}/{key}")
                pairs.append((pattern_name, 100 * figures["two_median_ns"] / figures["one_median_ns"] if figures else None))
            rows.append((name, pairs))
        chart, used = bars("Time per request, two threads against one (100% = no contention)", "%", rows, 10, height, width, mark=100)
        elements += chart
        height += used + 10
    if not elements:
        return None
    legend_y = height + 4
    legend = []
    for n, (series, color) in enumerate((("one service, reused", "#4878a8"), ("a clone per request", "#e0904a"))):
        lx = 340 + n * 220
        legend.append(f'<rect x="{lx}" y="{legend_y}" width="12" height="12" fill="{color}"/>')
        legend.append(f'<text x="{lx + 18}" y="{legend_y + 11}" class="label">{series}</text>')
    legend.append(f'<text x="10" y="{legend_y + 34}" class="note">{escape(stamp)}</text>')
    height = legend_y + 44
    style = (
        "<style>text{font-family:sans-serif;fill:#222}.title{font-size:15px;font-weight:bold}"
        ".label{font-size:12px}.value{font-size:11px;fill:#444}.note{font-size:11px;fill:#666}</style>"
    )
    body = "\n".join([style, f'<rect width="{width}" height="{height}" fill="#fff"/>', *elements, *legend])
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">\n{body}\n</svg>\n'


def report():
    out = []
    add = out.append
    date = datetime.date.today().isoformat()
    add(f"Measured {date} on {machine()}, with `scripts/bench.sh`.")
    add("")
    instr = load("instructions") or {}
    if instr:
        instructions_table(add, instr)
    contention = load("contention") or {}
    if contention:
        contention_table(add, contention)
    hot = load("hot_path") or {}
    if hot:
        hot_path_table(add, hot)
    allocations = load("allocations") or []
    if allocations:
        allocations_table(add, allocations)
    herd = load("cold_herd") or []
    if herd:
        herd_table(add, herd, instr)
    e2e = load("end_to_end")
    if e2e:
        end_to_end_table(add, e2e)
    targets(add, instr, contention)
    return "\n".join(out), plot(instr, contention, out[0])


def main():
    text, svg = report()
    if svg:
        with open(PLOT, "w") as file:
            file.write(svg)
        print(f"plot written to {os.path.relpath(PLOT, ROOT)}")
    content = open(DOC).read()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    before, rest = content.split(start, 1)
    after = rest.split(end, 1)[1]
    with open(DOC, "w") as file:
        file.write(f"{before}{start}\n{text}\n{end}{after}")
    print(text)
    print(f"\nwritten to {os.path.relpath(DOC, ROOT)}")


if __name__ == "__main__":
    main()
