#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn make bench's raw results into build/bench/results.md and plots.

Reads DIR/guest.log (the guest's "R key=value ..." lines) and DIR/host.log
(callgrind instruction counts), writes DIR/results.md, DIR/select.svg
(selection cost against group size) and DIR/locality.svg (locality per
mechanism).  Every ratio compares numbers of the same run; rate ratios
are taken per repetition against plain SO_REUSEPORT, then averaged.
"""

import datetime
import os
import re
import statistics
import subprocess
import sys

MECHS = ["hash", "incpu", "cbpf", "ebpf", "rps_rr", "rps_ff"]
LABEL = {
    "hash": "SO_REUSEPORT (hash)",
    "incpu": "SO_INCOMING_CPU",
    "cbpf": "CBPF (SKF_AD_CPU)",
    "ebpf": "eBPF sockarray",
    "rps_rr": "SO_REUSERPS round robin",
    "rps_ff": "SO_REUSERPS fill first, cap",
}
COLOR = {
    "hash": "#7f7f7f", "incpu": "#1f77b4", "cbpf": "#9467bd",
    "ebpf": "#8c564b", "rps_rr": "#d62728", "rps_ff": "#ff7f0e",
}
SIZES = [4, 16, 64, 256]


def records(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("R "):
                continue
            rec = {}
            for kv in line[2:].split():
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    try:
                        rec[k] = float(v) if k not in ("test", "mech",
                                                       "mode") else v
                    except ValueError:
                        rec[k] = v
            out.append(rec)
    return out


def mean(xs):
    return statistics.fmean(xs) if xs else float("nan")


def fmt(x, nd=1):
    if x != x:  # NaN
        return "n/a"
    if x == float("inf"):
        return "inf"
    return f"{x:.{nd}f}"


def svg_open(w, h, x, title):
    """The first lines of a plot: a white w x h canvas, the title at x."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" '
            f'height="{h}" font-family="sans-serif" font-size="12">',
            f'<rect width="{w}" height="{h}" fill="white"/>',
            f'<text x="{x}" y="22" font-size="14">{title}</text>']


def svg_lines(series, title, ylabel, path):
    """series: {mech: [(n, y), ...]}; x on a log2 scale, y on a log scale
    (costs span more than a decade)."""
    import math
    w, h, l, r, t, b = 720, 420, 70, 230, 40, 50
    ys = [y for pts in series.values() for _, y in pts if y == y and y > 0]
    if not ys:
        return
    lo = 10 ** math.floor(math.log10(min(ys)))
    hi = 10 ** math.ceil(math.log10(max(ys)))
    xs = SIZES

    def px(n):
        i = xs.index(n)
        return l + i * (w - l - r) / (len(xs) - 1)

    def py(y):
        f = (math.log10(y) - math.log10(lo)) / (math.log10(hi) -
                                                 math.log10(lo))
        return t + (h - t - b) * (1 - f)

    o = svg_open(w, h, l, title)
    tick = lo
    while tick <= hi * 1.001:
        for mult in (1, 2, 5):
            y = tick * mult
            if y > hi * 1.001:
                break
            o.append(f'<line x1="{l}" y1="{py(y):.1f}" x2="{w - r}" '
                     f'y2="{py(y):.1f}" stroke="#ddd"/>')
            o.append(f'<text x="{l - 8}" y="{py(y) + 4:.1f}" '
                     f'text-anchor="end">{y:g}</text>')
        tick *= 10
    for n in xs:
        o.append(f'<text x="{px(n):.1f}" y="{h - b + 18}" '
                 f'text-anchor="middle">{n}</text>')
    o.append(f'<text x="{(l + w - r) / 2:.0f}" y="{h - 10}" '
             'text-anchor="middle">listeners in the group</text>')
    o.append(f'<text x="18" y="{(t + h - b) / 2:.0f}" '
             f'transform="rotate(-90 18 {(t + h - b) / 2:.0f})" '
             f'text-anchor="middle">{ylabel}</text>')
    for i, (m, pts) in enumerate(series.items()):
        pts = [(n, y) for n, y in pts if y == y and y > 0]
        if not pts:
            continue
        d = " ".join(f"{px(n):.1f},{py(y):.1f}" for n, y in pts)
        o.append(f'<polyline points="{d}" fill="none" '
                 f'stroke="{COLOR.get(m, "#000")}" stroke-width="2"/>')
        for n, y in pts:
            o.append(f'<circle cx="{px(n):.1f}" cy="{py(y):.1f}" r="3" '
                     f'fill="{COLOR.get(m, "#000")}"/>')
        ly = t + 20 + i * 20
        o.append(f'<rect x="{w - r + 15}" y="{ly - 7}" width="14" '
                 f'height="4" fill="{COLOR.get(m, "#000")}"/>')
        o.append(f'<text x="{w - r + 34}" y="{ly - 1}">'
                 f'{LABEL.get(m, m)}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def svg_bars(values, title, path):
    """values: [(label, mech, fraction)], a horizontal bar per entry."""
    w, l, bh = 640, 230, 24
    h = 60 + bh * len(values)
    o = svg_open(w, h, 20, title)
    scale = (w - l - 70)
    for i, (label, m, v) in enumerate(values):
        y = 40 + i * bh
        o.append(f'<text x="{l - 8}" y="{y + 15}" text-anchor="end">'
                 f'{label}</text>')
        if v == v:
            o.append(f'<rect x="{l}" y="{y + 3}" width="{v * scale:.1f}" '
                     f'height="{bh - 6}" fill="{COLOR.get(m, "#555")}"/>')
            o.append(f'<text x="{l + v * scale + 6:.1f}" y="{y + 15}">'
                     f'{v * 100:.1f}%</text>')
    o.append(f'<line x1="{l + scale}" y1="35" x2="{l + scale}" '
             f'y2="{h - 15}" stroke="#999" stroke-dasharray="4"/>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def main():
    d = sys.argv[1]
    cpus = sys.argv[2] if len(sys.argv) > 2 else "?"
    g = records(os.path.join(d, "guest.log"))
    host = records(os.path.join(d, "host.log"))
    setup = next((r for r in g if r.get("test") == "setup"), {})
    md = []
    add = md.append
    uname = subprocess.run(["uname", "-srm"], capture_output=True,
                           text=True).stdout.strip()
    # The guest's kernel release, from its @@ BOOTED line.
    with open(os.path.join(d, "guest.log"), errors="replace") as f:
        m = re.search(r"^@@ BOOTED .*kernel=(\S+)", f.read(), re.M)
    release = m.group(1) if m else "?"
    add("# SO_REUSERPS benchmark results\n")
    add(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}"
        f" UTC by `make bench`.  Guest: Linux {release} with the series, "
        f"bench config (the test config without lockdep and other "
        f"debugging, with modules), QEMU software emulation (TCG), "
        f"{cpus} vCPUs, 2 GiB; host: {uname}, {os.cpu_count()} CPUs.  "
        f"Clients and servers over loopback, each client thread pinned "
        f"to one CPU, so its SYNs are processed there.  "
        f"{int(setup.get('reps', 0))} repetitions of "
        f"{setup.get('secs', 0):g} s per mechanism; fill first capped "
        f"at {int(setup.get('ff_cap', 0))} per listener.  Under emulation"
        f" absolute numbers are far below real hardware: compare the "
        f"ratios, which are all taken within this one run.\n")

    # Selection cost.
    sel = {(r["mech"], int(r["n"])): r for r in g
           if r.get("test") == "select" and "mech" in r}
    add("## Selection cost against group size\n")
    if sel:
        base = sel.get(("hash", 4), {}).get("ns", float("nan"))
        add("Time of one `reuseport_select_sock()` on a group of N "
            "listeners (listener i serves CPU i / (N / CPUs)), measured in "
            "the guest kernel by `harness/bench/kmod` (a warm-up, then 200000 calls with"
            " BHs off under RCU, median of 7), on CPU "
            f"{int(next(iter(sel.values()))['cpu'])}.  Ratios: to the "
            "same mechanism at 4 listeners, and to plain hash selection "
            "at 4.\n")
        add("| mechanism | " + " | ".join(f"N={n} ns" for n in SIZES) +
            " | N=256 / N=4 | N=4 / hash N=4 | N=256 / hash N=4 |")
        add("|---|" + "---|" * (len(SIZES) + 3))
        for m in MECHS:
            v = [sel.get((m, n), {}).get("ns", float("nan")) for n in SIZES]
            add(f"| {LABEL[m]} | " + " | ".join(fmt(x) for x in v) +
                f" | {fmt(v[3] / v[0], 2)} | {fmt(v[0] / base, 2)} | "
                f"{fmt(v[3] / base, 2)} |")
        add("")
        svg_lines({m: [(n, sel.get((m, n), {}).get("ns", float("nan")))
                       for n in SIZES] for m in MECHS},
                  "Cost of one selection in the guest kernel (log scale)",
                  "ns per selection",
                  os.path.join(d, "select.svg"))
        add("![selection cost](select.svg)\n")
    else:
        add("No selection timings (the module did not load).\n")

    hir = {(int(r["n"]), int(r["iters"])): r["ir"] for r in host
           if r.get("test") == "host"}
    if hir:
        add("The Rust core alone on the host, in instructions per "
            "selection (callgrind: run with 100000 selections minus run "
            "with none, divided by 100000; round robin, 4 CPUs):\n")
        add("| N | " + " | ".join(str(n) for n in SIZES) + " |")
        add("|---|" + "---|" * len(SIZES))
        per = [(hir.get((n, 100000), 0) - hir.get((n, 0), 0)) / 100000
               for n in SIZES]
        add("| instructions | " + " | ".join(fmt(x, 1) for x in per) + " |")
        add("| ratio to N=4 | " + " | ".join(fmt(x / per[0], 3)
                                            for x in per) + " |")
        add("")

    # Rate, locality, latency.
    for per_cpu, title in ((1, "one listener per CPU"),
                           (2, "two listeners per CPU")):
        rs = [r for r in g if r.get("test") == "rate" and
              int(r.get("per_cpu", 0)) == per_cpu]
        if not rs:
            continue
        add(f"## Connection rate, locality, latency: {title}\n")
        add("Locality: share of accepted connections whose SYN was "
            "processed on the CPU of the listener that got them "
            "(SO_INCOMING_CPU of the accepted socket).  Latency: from "
            "the client's connect() to the server's accept() returning "
            "the connection.  Balance: among the listeners of each CPU, "
            "the worst max/min of accepted connections and the mean "
            "coefficient of variation.\n")
        add("| mechanism | conn/s | ratio to hash (mean ± sd) | locality | "
            "p50 us | "
            "p99 us | balance max/min | balance CV |")
        add("|---|---|---|---|---|---|---|---|")
        hash_by_rep = {r["rep"]: r["rate"] for r in rs if r["mech"] == "hash"}
        for m in MECHS:
            mr = [r for r in rs if r["mech"] == m]
            if not mr:
                continue
            rats = [r["rate"] / hash_by_rep[r["rep"]] for r in mr
                    if hash_by_rep.get(r["rep"])]
            sd = statistics.stdev(rats) if len(rats) > 1 else float("nan")
            add(f"| {LABEL[m]} | {fmt(mean([r['rate'] for r in mr]), 0)} |"
                f" {fmt(mean(rats), 3)} ± {fmt(sd, 3)} | "
                f"{fmt(100 * mean([r['locality'] for r in mr]), 1)}% | "
                f"{fmt(mean([r['p50_us'] for r in mr]), 0)} | "
                f"{fmt(mean([r['p99_us'] for r in mr]), 0)} | " +
                (f"{fmt(max(r['balance_maxmin'] for r in mr), 3)} | "
                 f"{fmt(mean([r['balance_cv'] for r in mr]), 4)} |"
                 if per_cpu > 1 else "- | - |"))
        add("")
        if per_cpu == 1:
            bars = [(LABEL[m], m, mean([r["locality"] for r in rs
                                        if r["mech"] == m]))
                    for m in MECHS]
            for mode, m, lab in (("off", "hash", "nginx, plain reuseport"),
                                 ("rr", "rps_rr", "nginx, SO_REUSERPS")):
                nr = [r for r in g if r.get("test") == "nginx" and
                      r["mode"] == mode and r["local"] + r["remote"]]
                if nr:
                    bars.append((lab, m, mean([r["local"] / (r["local"] +
                                                             r["remote"])
                                               for r in nr])))
            svg_bars(bars, "Locality: connections accepted on their SYN's "
                     "CPU", os.path.join(d, "locality.svg"))
            add("![locality](locality.svg)\n")

    ov = [r for r in g if r.get("test") == "overload"]
    if ov:
        r = ov[-1]
        add("## Overload\n")
        add(f"Fill first, {int(r['listeners'])} listeners capped at "
            f"{int(r['cap'])} active connections each; clients hold every "
            f"connection and ask for {int(r['asked'])} (twice the total "
            "cap), each connect given 300 ms.\n")
        add("| got in | highest active on one listener | cap exceeded | "
            "ListenDrops | connect ms with room | connect ms when full |")
        add("|---|---|---|---|---|---|")
        add(f"| {int(r['got'])} of {int(r['asked'])} | "
            f"{int(r['max_active'])} (cap {int(r['cap'])}) | "
            f"{'yes' if r['over_cap'] else 'no'} | "
            f"{int(r['listen_drops'])} | {fmt(r['connect_ms_room'], 2)} | "
            f"{fmt(r['connect_ms_full'], 0)} (timed out: dropped) |")
        add("")

    ng = [r for r in g if r.get("test") == "nginx"]
    if ng:
        add("## nginx, unmodified\n")
        add("Debian's nginx-light, one worker per CPU "
            "(`worker_cpu_affinity auto`), `listen ... reuseport`, "
            "loaded with `tools/net/reuserps/libreuserps_preload.so`; "
            "`REUSERPS_POLICY=off` only counts, `rr` registers each "
            "worker's listener for its CPU.  Load: wrk, one thread per "
            "CPU, 32 connections, `Connection: close` (a new connection "
            "per request).\n")
        add("| mode | requests/s | ratio to off | locality |")
        add("|---|---|---|---|")
        off_by = {r["rep"]: r["rps"] for r in ng if r["mode"] == "off"}
        for mode in ("off", "rr"):
            mr = [r for r in ng if r["mode"] == mode]
            if not mr:
                continue
            loc = mean([r["local"] / (r["local"] + r["remote"]) for r in mr
                        if r["local"] + r["remote"]])
            ratio = mean([r["rps"] / off_by[r["rep"]] for r in mr
                          if off_by.get(r["rep"])])
            add(f"| {'plain reuseport' if mode == 'off' else 'SO_REUSERPS'}"
                f" | {fmt(mean([r['rps'] for r in mr]), 0)} | "
                f"{fmt(ratio, 3)} | {fmt(100 * loc, 1)}% |")
        add("")

    add("## Targets\n")
    add("| target | measured | met |")
    add("|---|---|---|")
    r1 = [r for r in g if r.get("test") == "rate" and r["per_cpu"] == 1]

    def loc(m):
        return mean([r["locality"] for r in r1 if r["mech"] == m])

    def ratio(m):
        hb = {r["rep"]: r["rate"] for r in r1 if r["mech"] == "hash"}
        return mean([r["rate"] / hb[r["rep"]] for r in r1
                     if r["mech"] == m and hb.get(r["rep"])])

    for m in ("rps_rr", "rps_ff"):
        add(f"| locality of {LABEL[m]} is 100% (hash: "
            f"{fmt(100 * loc('hash'), 1)}%) | {fmt(100 * loc(m), 2)}% | "
            f"{'yes' if loc(m) >= 0.9999 else 'no'} |")
    peers = {m: ratio(m) for m in ("hash", "incpu", "cbpf", "ebpf")}
    best = max(peers, key=lambda m: peers[m] if peers[m] == peers[m]
               else -1)
    rr = ratio("rps_rr")
    add(f"| connection rate at least the best peer's ({LABEL[best]}, "
        f"{fmt(peers[best], 3)} x hash) | {fmt(rr, 3)} x hash | "
        f"{'yes' if rr >= peers[best] else 'no'} |")
    if sel:
        a = sel.get(("rps_rr", 4), {}).get("ns", float("nan"))
        z = sel.get(("rps_rr", 256), {}).get("ns", float("nan"))
        hb = sel.get(("hash", 4), {}).get("ns", float("nan"))
        add(f"| selection at 256 listeners within 10% of 4 | "
            f"{fmt(z / a, 3)} | {'yes' if z / a <= 1.10 else 'no'} |")
        add(f"| selection at 4 within 5% of hash at 4 | {fmt(a / hb, 3)} |"
            f" {'yes' if a / hb <= 1.05 else 'no'} |")
    if ov:
        add(f"| caps never exceeded | highest {int(ov[-1]['max_active'])}"
            f" with cap {int(ov[-1]['cap'])} | "
            f"{'no' if ov[-1]['over_cap'] else 'yes'} |")
    add("")

    with open(os.path.join(d, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
