#!/usr/bin/env python3
"""Renders the results of bench/compare.sh (JSON lines) into docs/BENCHMARKS.md.

usage: render_benchmarks.py RESULTS OUT COMMAND               the whole file
       render_benchmarks.py --sse-section RESULTS OUT COMMAND only the transport-sse section,
           between its <!-- transport-sse:begin/end --> markers in OUT (appended when absent)
"""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

args = sys.argv[1:]
sse_only = bool(args) and args[0] == "--sse-section"
if sse_only:
    args = args[1:]
results_path, out_path, command = args[0], args[1], args[2]
rows = [json.loads(l) for l in open(results_path) if l.strip()]
by = {(r["kind"], r["name"]): r["result"] for r in rows}
SSE_BEGIN, SSE_END = "<!-- transport-sse:begin -->", "<!-- transport-sse:end -->"


def get(kind, name, field):
    r = by.get((kind, name))
    return None if r is None else r.get(field)


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                     capture_output=True, text=True).stdout.strip()
machine = f"{os.cpu_count()} cores ({cpu or 'unknown CPU'}), Linux {platform.release()}"
today = datetime.date.today().isoformat()


def sse_section(cmd):
    """The transport-sse rows of compare.sh (kind "sse", "<row>/<scenario>/<round>")."""
    servers = [("transport-ws", "flowrelay transport-ws (WebSocket)"),
               ("transport-sse", "**flowrelay transport-sse (SSE)**"),
               ("nchan-ws", "nginx + nchan, WebSocket"),
               ("nchan-eventsource", "nginx + nchan, EventSource")]
    rounds = sorted({int(k[1].split("/")[2]) for k in by if k[0] == "sse"})

    def res(row, scen, rnd):
        r = by.get(("sse", f"{row}/{scen}/{rnd}"))
        return r if isinstance(r, dict) else None

    def per_conn_kb(row, rnd):
        idle, sc = res(row, "idle", rnd), res(row, "scale", rnd)
        if not idle or not sc or sc.get("serverRssKb") is None:
            return None
        conns = (sc.get("open") or 0) + (sc.get("publishConns") or 0)
        return None if conns == 0 else (sc["serverRssKb"] - idle["rssKb"]) / conns

    def series(row, f):
        return [f(rnd) for rnd in rounds]

    def med(vals):
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    def joined(vals, digits=2):
        return " · ".join(fmt(v, digits) if isinstance(v, float) or v is None else fmt(float(v), digits)
                          for v in vals) or "–"

    def field(row, scen, name):
        return lambda rnd: (res(row, scen, rnd) or {}).get(name)

    def trouble(row):
        bad = []
        for scen in ("scale", "fanout"):
            for rnd in rounds:
                r = res(row, scen, rnd)
                if r is None:
                    bad.append(f"{scen} {rnd}: no result")
                    continue
                for k in ("lossPct", "errors", "closedEarly", "publishErrors", "duplicates",
                          "outOfOrder", "gaps", "foreign"):
                    v = r.get(k)
                    if v not in (None, 0, 0.0):
                        bad.append(f"{scen} {rnd}: {k} {v}")
        return "none" if not bad else "; ".join(bad)

    cpu = {row: series(row, field(row, "fanout", "serverCpuUsPerDelivery")) for row, _ in servers}
    rss = {row: series(row, lambda rnd, row=row: per_conn_kb(row, rnd)) for row, _ in servers}
    out = [SSE_BEGIN, "## transport-sse beside transport-ws (flowrelay-bench)", ""]
    out.append(f"Measured {today} on this machine: {machine}; `{cmd}` ({len(rounds)} "
               f"round{'s' if len(rounds) != 1 else ''}; this section alone: "
               f"`bench/compare.sh --sse-only [--rounds N]`).")
    out.append("flowrelay-bench over WebSocket (`--transport ws`) and over Server-Sent Events")
    out.append("(`--transport sse`: `GET /sse/roomN` with `Accept: text/event-stream`; each conversation's")
    out.append("publisher POSTs text/plain to the same URL on a keep-alive connection of its own, one")
    out.append("request in flight). One flowrelayd serves both transports (broker-local, `publish_rate: 0`),")
    out.append("one nginx + nchan serves both (`bench/nchan_eventsource.sh`: the anchors' config plus a")
    out.append("`nchan_subscriber eventsource` + `nchan_publisher http` location); each row runs on a fresh")
    out.append("process, scale first (RSS per connection = RSS with 10,000 streams open minus RSS before,")
    out.append("over the server's connections, the publishers' POST connections included), then fanout.")
    out.append("Values are per round (` · `), ratios of the medians; the order of the rows rotates per round.")
    out.append("")
    out.append("| server | fanout: 1,000 conns, 10 conversations, 10k deliveries/s: server CPU µs per delivery "
               "| / transport-ws | fanout p50 / p99 ms | scale: 10,000 conns, 100 conversations: server RSS kB "
               "per connection | / transport-ws | scale: server CPU µs per delivery | loss, errors |")
    out.append("|---|---|---|---|---|---|---|---|")
    for row, label in servers:
        p50 = series(row, field(row, "fanout", "p50"))
        p99 = series(row, field(row, "fanout", "p99"))
        lat = " · ".join(f"{fmt(a)} / {fmt(b)}" for a, b in zip(p50, p99)) or "–"
        out.append(f"| {label} | {joined(cpu[row])} | {fmt(ratio(med(cpu[row]), med(cpu['transport-ws'])))} | "
                   f"{lat} | {joined(rss[row])} | {fmt(ratio(med(rss[row]), med(rss['transport-ws'])))} | "
                   f"{joined(series(row, field(row, 'scale', 'serverCpuUsPerDelivery')))} | {trouble(row)} |")
    out.append("")
    rc = ratio(med(cpu["transport-sse"]), med(cpu["transport-ws"]))
    rn = ratio(med(cpu["transport-sse"]), med(cpu["nchan-eventsource"]))
    rr = ratio(med(rss["transport-sse"]), med(rss["nchan-eventsource"]))
    out.append(f"Medians: transport-sse costs {fmt(rc)}x transport-ws' CPU per delivery and "
               f"{fmt(rn)}x nchan EventSource's; it holds a stream in {fmt(rr)}x nchan EventSource's "
               f"memory per connection.")
    out.append(SSE_END)
    return out


if sse_only:
    section = "\n".join(sse_section(command))
    text = open(out_path).read() if os.path.exists(out_path) else ""
    if SSE_BEGIN in text and SSE_END in text:
        a = text.index(SSE_BEGIN)
        b = text.index(SSE_END) + len(SSE_END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(out_path, "w").write(text)
    sys.exit(0)

floor1 = get("floor", "batch1", "cpuUsPerDelivery")
floor10 = get("floor", "batch10", "cpuUsPerDelivery")
n = lambda name, f: get("neutral", name, f)
fb = lambda name, f: get("fbench", name, f)

lines = []
w = lines.append
w("# Benchmarks")
w("")
w(f"Measured {today} on this machine: {machine}. Everything ran in one run of")
w(f"`{command}` (servers on loopback, one client at a time), so the columns are comparable;")
w("absolute figures move with the machine's load, ratios much less. Reproduce with")
w("`./start.sh build && bench/compare.sh` (it starts and stops every server itself).")
w("")
w("## Side by side, neutral client (npm `ws`, `shared/anchors/compare.sh`)")
w("")
w("| scenario | Python original | nginx + nchan | kernel floor | **flowrelay** | flowrelay / nchan |")
w("|---|---|---|---|---|---|")
fr_cpu = n("flowrelay/fanout", "serverCpuUsPerDelivery")
w(f"| fanout: 1,000 conns, 10 conversations, 10k deliveries/s: server CPU µs per delivery | "
  f"{fmt(n('seed-python/fanout', 'serverCpuUsPerDelivery'))} | {fmt(n('nchan/fanout', 'serverCpuUsPerDelivery'))} | "
  f"{fmt(floor1)} (1 frame/send), {fmt(floor10)} (10/send) | **{fmt(fr_cpu)}** | "
  f"{fmt(ratio(fr_cpu, n('nchan/fanout', 'serverCpuUsPerDelivery')))} |")
w(f"| same: latency p50 / p99 ms (client-inclusive) | {fmt(n('seed-python/fanout', 'p50'))} / {fmt(n('seed-python/fanout', 'p99'))} | "
  f"{fmt(n('nchan/fanout', 'p50'))} / {fmt(n('nchan/fanout', 'p99'))} | | **{fmt(n('flowrelay/fanout', 'p50'))} / {fmt(n('flowrelay/fanout', 'p99'))}** | |")
w(f"| heavy: 50k deliveries/s: server CPU µs per delivery | {fmt(n('seed-python/heavy', 'serverCpuUsPerDelivery'))} | "
  f"{fmt(n('nchan/heavy', 'serverCpuUsPerDelivery'))} | | **{fmt(n('flowrelay/heavy', 'serverCpuUsPerDelivery'))}** | "
  f"{fmt(ratio(n('flowrelay/heavy', 'serverCpuUsPerDelivery'), n('nchan/heavy', 'serverCpuUsPerDelivery')))} |")
w(f"| scale: 10,000 conns: server RSS MB, loss % | {fmt(ratio(n('seed-python/scale', 'serverRssKb'), 1024), 1)}, {fmt(n('seed-python/scale', 'lossPct'))} | "
  f"{fmt(ratio(n('nchan/scale', 'serverRssKb'), 1024), 1)}, {fmt(n('nchan/scale', 'lossPct'))} | | "
  f"**{fmt(ratio(n('flowrelay/scale', 'serverRssKb'), 1024), 1)}, {fmt(n('flowrelay/scale', 'lossPct'))}** | "
  f"{fmt(ratio(n('flowrelay/scale', 'serverRssKb'), n('nchan/scale', 'serverRssKb')))} |")
w(f"| cluster over Redis, 2 instances: CPU µs per delivery, loss % | {fmt(n('seed-python-2x/cluster', 'serverCpuUsPerDelivery'))}, {fmt(n('seed-python-2x/cluster', 'lossPct'))} | "
  f"{fmt(n('nchan-redis-2x/cluster', 'serverCpuUsPerDelivery'))}, {fmt(n('nchan-redis-2x/cluster', 'lossPct'))} | | "
  f"**{fmt(n('flowrelay-redis-2x/cluster', 'serverCpuUsPerDelivery'))}, {fmt(n('flowrelay-redis-2x/cluster', 'lossPct'))}** | "
  f"{fmt(ratio(n('flowrelay-redis-2x/cluster', 'serverCpuUsPerDelivery'), n('nchan-redis-2x/cluster', 'serverCpuUsPerDelivery')))} |")
w("")
w("## Targets (flowrelay-bench, our event-driven C++ client, unless said otherwise)")
w("")
w("| # | target | measured | met |")
w("|---|---|---|---|")
met = lambda ok: "yes" if ok else ("**no**" if ok is not None else "–")
r1 = ratio(fr_cpu, floor1)
nchan_cpu = n("nchan/fanout", "serverCpuUsPerDelivery")
w(f"| 1 | fanout CPU per delivery within 1.3x of the floor (1 frame/send) and below nchan (neutral client) | "
  f"{fmt(fr_cpu)} µs = {fmt(r1)}x floor {fmt(floor1)} µs; nchan {fmt(nchan_cpu)} µs | "
  f"{met(None if r1 is None else (r1 <= 1.3 and fr_cpu < (nchan_cpu or 1e9)))} |")
rss0 = get("rss", "flowrelay/idle-before", "rssKb")
rss10k = fb("flowrelay/scale", "serverRssKb")
per_conn = None if rss0 is None or rss10k is None else (rss10k - rss0) * 1024 / 10000
w(f"| 2a | 10,000 connections: at most 4 KB RSS each | {fmt(per_conn, 0)} bytes per connection "
  f"({fmt(rss0)} KB before, {fmt(rss10k)} KB with 10,000) | {met(None if per_conn is None else per_conn <= 4096)} |")
h_open, h_err, h_loss = fb("flowrelay/hold19k", "open"), fb("flowrelay/hold19k", "errors"), fb("flowrelay/hold19k", "lossPct")
w(f"| 2b | 19,000 concurrent connections held with zero errors | {fmt(h_open)} open, {fmt(h_err)} errors, "
  f"{fmt(fb('flowrelay/hold19k', 'closedEarly'))} closed early, loss {fmt(h_loss)} % | "
  f"{met(None if h_open is None else (h_open == 19000 and h_err == 0 and h_loss == 0))} |")
sat = fb("flowrelay/saturation", "deliveriesPerSec")
w(f"| 3a | saturation, local broker: at least 1,000,000 deliveries/s, zero loss | {fmt(sat, 0)}/s, loss "
  f"{fmt(fb('flowrelay/saturation', 'lossPct'))} % (nchan: {fmt(fb('nchan/saturation', 'deliveriesPerSec'), 0)}/s) | "
  f"{met(None if sat is None else (sat >= 1e6 and fb('flowrelay/saturation', 'lossPct') == 0))} |")
sat2 = fb("flowrelay-redis-2x/saturation", "deliveriesPerSec")
w(f"| 3b | saturation through Redis, 2 replicas: at least 300,000 deliveries/s, zero loss | {fmt(sat2, 0)}/s, loss "
  f"{fmt(fb('flowrelay-redis-2x/saturation', 'lossPct'))} % | "
  f"{met(None if sat2 is None else (sat2 >= 3e5 and fb('flowrelay-redis-2x/saturation', 'lossPct') == 0))} |")
p99f, p99n = n("flowrelay/fanout", "p99"), n("nchan/fanout", "p99")
bp99f, bp99n = fb("flowrelay/fanout", "p99"), fb("nchan/fanout", "p99")
w(f"| 4a | p99 below nchan's at 10k deliveries/s | neutral client: {fmt(p99f)} vs {fmt(p99n)} ms; "
  f"flowrelay-bench: {fmt(bp99f)} vs {fmt(bp99n)} ms | {met(None if p99f is None else (p99f < p99n and (bp99f or 0) < (bp99n or 1e9)))} |")
cp50 = fb("flowrelay-redis-2x/cluster", "p50")
w(f"| 4b | cluster (Redis, 2 replicas, 10k deliveries/s) p50 under 1 ms | {fmt(cp50, 3)} ms (p99 {fmt(fb('flowrelay-redis-2x/cluster', 'p99'))} ms) | "
  f"{met(None if cp50 is None else cp50 < 1.0)} |")
losses = [(k[1], v.get("lossPct")) for k, v in by.items() if k[0] in ("neutral", "fbench") and k[1].startswith("flowrelay")]
lossy = [f"{name} {loss}%" for name, loss in losses if loss not in (0, 0.0, None)]
w(f"| 5 | zero loss in every flowrelay run | {'all zero' if not lossy else ', '.join(lossy)} ({len(losses)} runs) | {met(not lossy)} |")
w("")
w("## Where the time goes, and what would close the gaps")
w("")
w("Profile of flowrelayd during the fanout run (1,000 conns, 10 conversations, 10k deliveries/s),")
w("`perf record -g -p $(pgrep -x flowrelayd) -- sleep 3` then `perf report --no-children --sort dso,symbol`")
w("(measured 2026-11-26 on this machine):")
w("")
w("| where | share of flowrelayd's CPU |")
w("|---|---|")
w("| kernel, all | 86 % |")
w("| ... of which waking the receiving client (`sock_def_readable` -> hypervisor `pvm_irq_enable`) | ~35 % |")
w("| ... `sendmsg` entry, fd lookup, TCP transmit and loopback receive processing | ~45 % |")
w("| flowrelay user space (frame queueing, `EventLoop::flush`, epoll) | < 5 % |")
w("| libc `sendmsg` wrapper | 6 % |")
w("")
w("- **Target 1 (fanout CPU vs the floor).** At 10 messages/s per connection there is nothing to")
w("  batch: every delivery is one `sendmsg` to a client that is asleep, and the kernel charges the")
w("  sender for waking it (this VM makes that wake-up expensive). The floor program's receiver")
w("  drains continuously, so its sends rarely wake anyone. flowrelay's own code is under 5 % of")
w("  its CPU; what would close the gap is fewer system calls and wake-ups per delivery: io_uring")
w("  submission of a fan-out's sends in one call, or a small, configurable coalescing delay that")
w("  trades latency for several frames per send. At higher rates batching already happens on its")
w("  own: 0.2 µs per delivery at saturation, far below the 1-frame floor.")
w("- **Target 4 (latency).** A message fanned out to 100 members is 100 sends in sequence, split")
w("  over two event loops that share 2 cores with the client; the median member waits for about")
w("  half of them (~0.3-0.5 ms), and the Redis round trip adds ~0.3 ms in cluster mode. The tail")
w("  follows the machine's load (the other CPU-heavy processes here). Closing it takes the same")
w("  system-call batching as target 1.")
w("")
for l in sse_section(command):
    w(l)
w("")
w("## Every run")
w("")
w("| kind | run | sent | expected | received | loss % | p50 | p99 | server CPU µs/delivery | deliveries/s | server RSS KB |")
w("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r["kind"] not in ("neutral", "fbench", "sse") or not isinstance(r["result"], dict) \
            or "sent" not in r["result"]:
        continue
    d = r["result"]
    w(f"| {r['kind']} | {r['name']} | {fmt(d.get('sent'))} | {fmt(d.get('expected'))} | {fmt(d.get('received'))} | "
      f"{fmt(d.get('lossPct'))} | {fmt(d.get('p50'))} | {fmt(d.get('p99'))} | {fmt(d.get('serverCpuUsPerDelivery'))} | "
      f"{fmt(d.get('deliveriesPerSec'), 0)} | {fmt(d.get('serverRssKb'))} |")
w("")
w("`neutral` rows come from `shared/anchors/compare.sh` (npm `ws` client, the same for every")
w("server); `fbench` rows from `flowrelay-bench` (bench/README.md). The kernel floor is")
w("`fanout_floor 1000 200 66 1` (and `... 10`): CPU of a sender that does nothing but one")
w("`send()` per delivery (or one per 10 frames) to 1,000 loopback sockets.")
open(out_path, "w").write("\n".join(lines) + "\n")
