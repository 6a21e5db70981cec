"""Turning the measured runs into verdicts and into ``bench/RESULTS.md``.

Ratios are always ours / NUT's.  For the closed-loop scenarios the figure of each server is
the median over its runs (the spread is shown); ``idle-10k`` has one run each unless
``--repeat`` asks for more (then the CPU of each run is shown, the rest is the median or the
first run's).
Memory is in MB of 10^6 bytes (``VmRSS`` is in KiB), as the target is.  ``analysis.md``
beside this file (written by hand after looking at the numbers and the profiles) is appended
verbatim, with a note saying which run it was written for; ``analysis-event-1000.md`` likewise
after the event-1000 table.

event-1000 has three measurements instead of two (NUT polled, ours polled, ours pushing);
its latencies are pooled over the events of a run (every client, every event).  slave-rss
compares watchers, not servers (:mod:`slaverss` writes its table).
"""

from __future__ import annotations

from pathlib import Path
from statistics import median
from typing import Any

from hotspots import Profile
from slaverss import table as slave_table

HERE = Path(__file__).resolve().parent
TARGETS = {"list-var-100": 10.0, "get-var-100": 0.5}
RSS_LIMIT_MB, CPU_LIMIT_PCT = 150.0, 10.0
PUSH_P99_MS = 50.0
EVENT_KEYS = (("nut-poll", "NUT upsd, polled"), ("ours-poll", "upsagent, polled"),
              ("ours-push", "upsagent, push"))


def mb(kib: float) -> float:
    """KiB -> MB (10^6 bytes)."""
    return kib * 1024 / 1e6


def _client_errors(res: dict[str, Any]) -> int:
    """Everything a client saw go wrong in one run, added up."""
    return int(res.get("errors", 0) + res.get("lost", 0) + res.get("timeouts", 0)
               + res.get("late", 0) + res.get("connect_failed", 0))


def one_line(name: str, res: dict[str, Any]) -> str:
    """A progress line for one run."""
    if name == "event-1000":
        lat = res["latency_ms"]
        return (f"{res['mode']}: {res['logged_in']} logged in, from t0 p50 "
                f"{lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['p100']:.1f} ms, "
                f"missed {res['missed']}, errors {_client_errors(res)}, server CPU "
                f"{res['server_cpu_pct']:.1f}%")
    if name == "idle-10k":
        return (f"{res['logged_in']} logged in ({res['ramp_seconds']:.1f} s), "
                f"{res['replies']}/{res['requests_sent']} replies, "
                f"errors {_client_errors(res)}, server CPU {res['server_cpu_pct']:.1f}%, "
                f"peak RSS {mb(res['server_peak_rss_kib']):.1f} MB")
    lat = res["latency_ms"]
    return (f"{res['rate']:,.0f}/s, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
            f"server CPU {res['server_cpu_pct']:.0f}%, generator CPU "
            f"{res['generator_cpu_pct']:.0f}%, errors {_client_errors(res)}")


def _pooled(rs: list[dict[str, Any]], field: str) -> list[float]:
    """Every client's latency of every event of the runs ``rs`` (ms), sorted.

    ``samples_ms`` are from the event's t0; ``field`` "from_set" shifts them back to the
    moment the SET was sent.
    """
    out: list[float] = []
    for r in rs:
        for e in r["events"]:
            shift = e["t0_after_set_ms"] if field == "from_set" else 0.0
            out += [x + shift for x in e["samples_ms"]]
    return sorted(out)


def _pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (as load.percentiles), nan if empty."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(round(p / 100.0 * len(values))) - 1))]


def summarise_events(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """event-1000: per mode, pooled latency figures; push p99 target; ratios."""
    out: dict[str, Any] = {}
    for key, _label in EVENT_KEYS:
        rs = runs[key]
        side: dict[str, Any] = {"events": sum(len(r["events"]) for r in rs),
                                "clients": min(r["logged_in"] for r in rs),
                                "missed": sum(r["missed"] for r in rs),
                                "client_errors": sum(_client_errors(r) - r.get("late", 0)
                                                     for r in rs),
                                "late": sum(r.get("late", 0) for r in rs),
                                "server_cpu_pct": float(median(r["server_cpu_pct"]
                                                               for r in rs)),
                                "peak_rss_mb": max(mb(r["server_peak_rss_kib"]) for r in rs)}
        for field in ("from_set", "from_t0"):
            values = _pooled(rs, field)
            side[field] = {"n": len(values), "p50": _pct(values, 50), "p99": _pct(values, 99),
                           "max": values[-1] if values else float("nan"),
                           "min": values[0] if values else float("nan")}
        side["t0_after_set_ms"] = [e["t0_after_set_ms"] for r in rs for e in r["events"]]
        side["visible_after_set_ms"] = [e["visible_after_set_ms"] for r in rs
                                        for e in r["events"]]
        side["ok_after_set_ms"] = [e["ok_after_set_ms"] for r in rs for e in r["events"]]
        side["per_event_p99"] = [e["from_set_ms"]["p99"] for r in rs for e in r["events"]]
        out[key] = side
    push, ours_poll, nut_poll = out["ours-push"], out["ours-poll"], out["nut-poll"]
    # push: from SET sent (its lines leave before the OK, so "from t0" is negative); an
    # upper bound on the time from the change.  Polling: from t0, the change confirmed
    # readable (NUT's dummy-ups applies a SET late, by a varying amount).
    out["ratio_push_poll"] = {q: push["from_set"][q] / ours_poll["from_set"][q]
                              for q in ("p50", "p99", "max")}
    out["ratio_push_nut_poll"] = {q: push["from_set"][q] / nut_poll["from_t0"][q]
                                  for q in ("p50", "p99", "max")}
    out["ratio_ours_nut_poll"] = {q: ours_poll["from_t0"][q] / nut_poll["from_t0"][q]
                                  for q in ("p50", "p99", "max")}
    out["met"] = {"push p99": push["from_set"]["p99"] < PUSH_P99_MS,
                  "nobody missed it": push["missed"] == 0 and push["clients"] == 1000,
                  "no client errors": push["client_errors"] == 0}
    return out


def summarise(name: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Headline figures, ratios and which targets are met."""
    if name == "event-1000":
        return summarise_events(runs)
    nut, ours = runs["nut"], runs["ours"]

    def med(rs: list[dict[str, Any]], key: str, sub: str | None = None) -> float:
        return float(median(r[key][sub] if sub else r[key] for r in rs))

    out: dict[str, Any] = {}
    for side, rs in (("nut", nut), ("ours", ours)):
        out[side] = {"server_cpu_pct": med(rs, "server_cpu_pct"),
                     "cpu_us": med(rs, "server_cpu_us_per_request"),
                     "kernel_pct": med(rs, "server_kernel_cpu_pct"),
                     "generator_cpu_pct": med(rs, "generator_cpu_pct"),
                     "other_cpu_pct": med(rs, "other_cpu_pct"),
                     "p50_ms": med(rs, "latency_ms", "p50"),
                     "p99_ms": med(rs, "latency_ms", "p99"),
                     "client_errors": sum(_client_errors(r) for r in rs),
                     "peak_rss_mb": max(mb(r["server_peak_rss_kib"]) for r in rs),
                     "helper_rss_mb": max(mb(r["helper_peak_rss_kib"]) for r in rs)}
        if name in TARGETS:
            out[side]["rate"] = med(rs, "rate")
            out[side]["rates"] = [r["rate"] for r in rs]
    if name in TARGETS:
        out["ratio"] = out["ours"]["rate"] / out["nut"]["rate"]
        out["met"] = {"throughput": out["ratio"] >= TARGETS[name],
                      "no client errors": out["ours"]["client_errors"] == 0}
    else:
        out["met"] = {"RSS": out["ours"]["peak_rss_mb"] <= RSS_LIMIT_MB,
                      "CPU": out["ours"]["server_cpu_pct"] <= CPU_LIMIT_PCT,
                      "no client errors": out["ours"]["client_errors"] == 0}
    return out


def profile_dict(prof: Profile) -> dict[str, Any]:
    """A Profile as JSON-able data."""
    return {"samples": prof.samples, "self": prof.self_pct, "total": prof.total_pct,
            "areas": prof.areas}


def _ratio(ours: float, nut: float) -> str:
    """``ours / nut`` as text."""
    return f"{ours / nut:.2f}x" if nut else "n/a"


def _yes(flag: bool) -> str:
    """A verdict cell."""
    return "**yes**" if flag else "**NO**"


def _closed_loop_table(name: str, r: dict[str, Any]) -> list[str]:
    """Table rows for list-var-100 or get-var-100."""
    s = r["summary"]
    n, o = s["nut"], s["ours"]
    unit = "lists/s" if name == "list-var-100" else "requests/s"
    spread = " / ".join
    rows = [
        "| | NUT upsd | upsagent | ours / NUT | target | met? |",
        "|---|---:|---:|---:|---|---|",
        f"| {unit} (median of {r['repeat']}) | {n['rate']:,.0f} | {o['rate']:,.0f} | "
        f"**{s['ratio']:.2f}x** | >= {TARGETS[name]:g}x | {_yes(s['met']['throughput'])} |",
        f"| each run | {spread(f'{x:,.0f}' for x in n['rates'])} | "
        f"{spread(f'{x:,.0f}' for x in o['rates'])} | | | |",
        f"| latency p50 (ms) | {n['p50_ms']:.2f} | {o['p50_ms']:.2f} | "
        f"{_ratio(o['p50_ms'], n['p50_ms'])} | | |",
        f"| latency p99 (ms) | {n['p99_ms']:.2f} | {o['p99_ms']:.2f} | "
        f"{_ratio(o['p99_ms'], n['p99_ms'])} | | |",
        f"| client errors (ERR, bad reply, lost) | {n['client_errors']} | "
        f"{o['client_errors']} | | 0 | {_yes(s['met']['no client errors'])} |",
        f"| server CPU, % of core 0 (of which in the kernel) | {n['server_cpu_pct']:.0f} "
        f"({n['kernel_pct']:.0f}) | {o['server_cpu_pct']:.0f} ({o['kernel_pct']:.0f}) | | | |",
        f"| server CPU per request (us) | {n['cpu_us']:.1f} | {o['cpu_us']:.1f} | "
        f"{_ratio(o['cpu_us'], n['cpu_us'])} | | |",
        f"| generator CPU, % of core 1 | {n['generator_cpu_pct']:.0f} | "
        f"{o['generator_cpu_pct']:.0f} | | | |",
        f"| other load on the machine, % of a core | {n['other_cpu_pct']:.0f} | "
        f"{o['other_cpu_pct']:.0f} | | | |",
        f"| server peak RSS (MB) | {n['peak_rss_mb']:.1f} | {o['peak_rss_mb']:.1f} | | | |",
    ]
    return rows


def _each_cpu(runs: list[dict[str, Any]]) -> str:
    """The server CPU % of each run, for the idle table."""
    return " / ".join(f"{x['server_cpu_pct']:.1f}" for x in runs)


def _idle_table(r: dict[str, Any]) -> list[str]:
    """Table rows for idle-10k."""
    s = r["summary"]
    n, o = s["nut"], s["ours"]
    rn, ro = r["runs"]["nut"][0], r["runs"]["ours"][0]
    met = s["met"]
    return [
        "| | NUT upsd | upsagent | ours / NUT | target | met? |",
        "|---|---:|---:|---:|---|---|",
        f"| peak RSS over the run (MB) | {n['peak_rss_mb']:.1f} | {o['peak_rss_mb']:.1f} | "
        f"{_ratio(o['peak_rss_mb'], n['peak_rss_mb'])} | <= {RSS_LIMIT_MB:g} MB | "
        f"{_yes(met['RSS'])} |",
        f"| CPU over the {r['seconds']:g} s window, % of one core | "
        f"{n['server_cpu_pct']:.1f} | {o['server_cpu_pct']:.1f} | "
        f"{_ratio(o['server_cpu_pct'], n['server_cpu_pct'])} | <= {CPU_LIMIT_PCT:g} % | "
        f"{_yes(met['CPU'])} |",
        *([f"| each run (the median above), % of one core | {_each_cpu(r['runs']['nut'])} | "
           f"{_each_cpu(r['runs']['ours'])} | | | |"] if len(r["runs"]["ours"]) > 1 else []),
        f"| of which in the kernel (stime), % of one core | {n['kernel_pct']:.1f} | "
        f"{o['kernel_pct']:.1f} | | | |",
        f"| server CPU per GET, incl. idle upkeep (us) | {n['cpu_us']:.0f} | "
        f"{o['cpu_us']:.0f} | {_ratio(o['cpu_us'], n['cpu_us'])} | | |",
        f"| client errors + late + timeouts + lost | {n['client_errors']} | "
        f"{o['client_errors']} | | 0 | {_yes(met['no client errors'])} |",
        f"| logged in / connected / asked | {rn['logged_in']} / {rn['connected']} / "
        f"{rn['clients']} | {ro['logged_in']} / {ro['connected']} / {ro['clients']} | | | |",
        f"| GET replies / sent in window | {rn['replies']} / {rn['requests_sent']} | "
        f"{ro['replies']} / {ro['requests_sent']} | | | |",
        f"| ramp: connect + log in all (s) | {rn['ramp_seconds']:.1f} | "
        f"{ro['ramp_seconds']:.1f} | {_ratio(ro['ramp_seconds'], rn['ramp_seconds'])} | | |",
        f"| GET latency p50 / p99 (ms) | {n['p50_ms']:.2f} / {n['p99_ms']:.2f} | "
        f"{o['p50_ms']:.2f} / {o['p99_ms']:.2f} | | | |",
        f"| RSS at the end (MB) | {mb(rn['server_end_rss_kib']):.1f} | "
        f"{mb(ro['server_end_rss_kib']):.1f} | | | |",
        f"| driver process peak RSS (MB) | {n['helper_rss_mb']:.1f} (dummy-ups) | "
        "in-process | | | |",
        f"| other load on the machine, % of a core | {n['other_cpu_pct']:.0f} | "
        f"{o['other_cpu_pct']:.0f} | | | |",
    ]


def _event_table(r: dict[str, Any]) -> list[str]:
    """Table rows for event-1000."""
    s = r["summary"]
    cols = [s[k] for k, _l in EVENT_KEYS]

    def row(label: str, cells: list[str], extra: str = "| |") -> str:
        return f"| {label} | " + " | ".join(cells) + f" {extra}"

    def rng(xs: list[float]) -> str:
        return f"{min(xs):.2f}-{max(xs):.2f}" if xs else "n/a"

    fs = [c["from_set"] for c in cols]
    ft = [c["from_t0"] for c in cols]
    met = s["met"]
    ratio = s["ratio_push_poll"]
    rows = [
        "| | " + " | ".join(label for _k, label in EVENT_KEYS)
        + " | push / our polling | target | met? |",
        "|---|---:|---:|---:|---:|---|---|",
        row("slaves logged in (`upsmon secondary`)", [f"{c['clients']}" for c in cols],
            "| | 1000 | |"),
        row("client-events measured (clients x events)", [f"{c['from_set']['n']:,}"
                                                          for c in cols], "| | | |"),
        row("**p50** (ms, from SET sent)", [f"{x['p50']:,.1f}" for x in fs],
            f"| {ratio['p50']:.4f} | | |"),
        row("**p99** (ms, from SET sent)", [f"**{x['p99']:,.1f}**" for x in fs],
            f"| {ratio['p99']:.4f} | push < {PUSH_P99_MS:g} ms | {_yes(met['push p99'])} |"),
        row("max (ms, from SET sent)", [f"{x['max']:,.1f}" for x in fs],
            f"| {ratio['max']:.4f} | | |"),
        row("p99 of each event (ms, from SET sent)",
            [" / ".join(f"{x:,.1f}" for x in c["per_event_p99"]) for c in cols], "| | | |"),
        row(f"never got it within {r['bound']:g} s", [f"{c['missed']}" for c in cols],
            f"| | 0 | {_yes(met['nobody missed it'])} |"),
        row("client errors (ERR, bad line, lost) / late polls",
            [f"{c['client_errors']} / {c['late']}" for c in cols],
            f"| | 0 | {_yes(met['no client errors'])} |"),
        row("SET sent -> admin's OK (ms)", [rng(c["ok_after_set_ms"]) for c in cols],
            "| | | |"),
        row("SET sent -> probe's first GET with the new value (ms)",
            [rng(c["visible_after_set_ms"]) for c in cols], "| | | |"),
        row("p50 / p99 / max from t0 (ms)",
            [f"{x['p50']:,.1f} / {x['p99']:,.1f} / {x['max']:,.1f}" for x in ft], "| | | |"),
        row("earliest client from t0 (ms)", [f"{x['min']:,.2f}" for x in ft], "| | | |"),
        row("server CPU over the run, % of core 0", [f"{c['server_cpu_pct']:.1f}"
                                                     for c in cols], "| | | |"),
        row("server peak RSS (MB)", [f"{c['peak_rss_mb']:.1f}" for c in cols], "| | | |"),
    ]
    rp, rn, ro = s["ratio_push_poll"], s["ratio_push_nut_poll"], s["ratio_ours_nut_poll"]
    rows += ["", "Ratios (p50 / p99 / max):", "",
             f"- push / our polling, both from SET sent: {rp['p50']:.4f} / {rp['p99']:.4f} / "
             f"{rp['max']:.4f} (push is {1 / rp['p50']:,.0f}x / {1 / rp['p99']:,.0f}x / "
             f"{1 / rp['max']:,.0f}x sooner)",
             f"- push from SET sent / NUT polling from t0: {rn['p50']:.4f} / {rn['p99']:.4f} / "
             f"{rn['max']:.4f} (push is {1 / rn['p50']:,.0f}x / {1 / rn['p99']:,.0f}x / "
             f"{1 / rn['max']:,.0f}x sooner)",
             f"- our polling / NUT polling, both from t0: {ro['p50']:.3f} / {ro['p99']:.3f} / "
             f"{ro['max']:.3f}", ""]
    return rows


def _profile_lines(prof: dict[str, Any]) -> list[str]:
    """The profile as a table: self time and our functions' total time side by side."""
    rows = [f"py-spy, {prof['samples']} samples of our master during the window.", "",
            "| self % | function (innermost frame) | | total % | our function (on stack) |",
            "|---:|---|---|---:|---|"]
    selfs, totals = prof["self"][:15], prof["total"][:15]
    for i in range(max(len(selfs), len(totals))):
        a = selfs[i] if i < len(selfs) else ("", None)
        b = totals[i] if i < len(totals) else ("", None)
        rows.append(f"| {'' if a[1] is None else f'{a[1]:.1f}'} | `{a[0]}` | | "
                    f"{'' if b[1] is None else f'{b[1]:.1f}'} | `{b[0]}` |")
    rows += ["", "Self time by area: " + ", ".join(f"{k} {v:.0f}%" for k, v in prof["areas"])]
    return rows


def markdown(command: str, info: dict[str, Any], results: list[dict[str, Any]],
             quick: bool) -> str:
    """The whole report."""
    lines = ["# upsagent master vs NUT 2.8.0 upsd: benchmark results", "",
             "Produced by `bench/run.py` (`make bench`); re-run it to refresh this file. "
             "Ratios are ours / NUT's.", "",
             f"- command: `{command}`" + (" (quick smoke run)" if quick else ""),
             f"- date: {info['date']}; upsagent commit {info['commit']}"
             + (" plus uncommitted changes in upsagent/ or drivers/" if info["dirty"] else ""),
             f"- machine: {info['nproc']} cores, {info['cpu_model']}, Linux "
             f"{info['kernel']}, Python {info['python']}, {info['nut']}",
             f"- load average before the run: "
             + ", ".join(f"{x:.2f}" for x in info["load_avg_before"]),
             "- pinning: each server (upsd and dummy-ups, or our master) under `taskset -c 0`;"
             " the load generator (one process, `os.sched_setaffinity` to core 1), this "
             "script and py-spy on core 1",
             "- data: `bench/data/` CyberPower CP1500PFCLCD dump (40 variables, see "
             "`bench/data/SOURCES.md`), served by `dummy-ups` to upsd and by our replay "
             "driver to our master, from the same `ups.conf`/`upsd.conf`/`upsd.users`",
             "- clients: default sockets (Nagle and delayed ACK on), real TCP to 127.0.0.1"
             " (idle-10k: from 8 loopback addresses in turn, 127.0.0.1-8);"
             " servers restarted for each scenario", ""]
    for r in results:
        name = r["scenario"]
        met = all(r["summary"]["met"].values())
        lines += [f"## {name}: {'target met' if met else 'target MISSED'}", ""]
        if "run_info" in r:
            ri = r["run_info"]
            lines += [f"Measured apart from the scenarios above and merged into this report: "
                      f"command `{ri['command']}`" + (" (quick)" if ri.get("quick") else "")
                      + f"; {ri['date']}; upsagent commit {ri['commit']}"
                      + (" plus uncommitted changes in upsagent/ or drivers/"
                         if ri["dirty"] else "")
                      + "; load average before: "
                      + ", ".join(f"{x:.2f}" for x in ri["load_avg_before"]) + ".", ""]
        if name == "slave-rss":
            pass                                # one server, no LIST VAR to compare
        elif r["var_differences"]:
            lines += ["LIST VAR differences between the servers (checked before measuring): "
                      + "; ".join(f"`{d}`" for d in r["var_differences"]), ""]
        else:
            lines += [f"Both servers listed the same {r['nut_vars']} variables with the same "
                      "values before measuring.", ""]
        if name == "slave-rss":
            lines += slave_table(r)
        elif name == "event-1000":
            lines += _event_table(r)
        elif name == "idle-10k":
            lines += _idle_table(r)
        else:
            lines += _closed_loop_table(name, r)
        lines.append("")
        if "profile" in r:
            lines += [f"### Profile of our master under {name}", ""]
            lines += _profile_lines(r["profile"]) + [""]
        extra = HERE / f"analysis-{name}.md"
        if extra.exists():
            lines += [f"### {name}: method and analysis", "", extra.read_text().strip(), ""]
    usbhid = HERE / "usbhid.md"          # written by bench/usbhid.py
    if usbhid.exists():
        lines += [usbhid.read_text().strip(), ""]
    notes = HERE / "analysis.md"
    if notes.exists():
        lines += ["## Analysis", "",
                  "*Written by hand after the run recorded above; if you re-ran the "
                  "benchmark, check it still matches the tables.*", "",
                  notes.read_text().strip(), ""]
    return "\n".join(lines)
