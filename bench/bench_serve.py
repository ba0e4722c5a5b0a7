#!/usr/bin/env python3
"""Load benchmark of `unirt serve` (UniFormer-S by default), all in one run on one machine:

- in-process throughput of the same engine: the Python API, host arrays in and out
  (Session.run at batch 1 and the max batch), and `unirt bench` (device-resident) at both;
- the server over loopback, with and without dynamic batching, at each concurrency: throughput
  and p50/p99 latency from bench/serve/load.cpp (a C++ closed-loop client, KServe binary tensors,
  batch-1 requests, keep-alive connections);
- the server's RSS before and after 10k requests;
- an overload burst: several times the queue capacity at once, then one more request.

    python3 bench/bench_serve.py --unirt build/unirt --load build/unirt_bench_serve --out bench/serve.md
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))


def start_server(args, engine, extra):
    proc = subprocess.Popen([args.unirt, "serve", "--model", f"m={engine}", "--port", "0", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    for _ in range(200):
        line = proc.stdout.readline()
        seen.append(line)
        m = re.search(r"serving on http://([\d.]+:\d+)", line)
        if m:
            return proc, m.group(1)
        if not line and proc.poll() is not None:
            break
    raise RuntimeError("server did not start: " + "".join(seen) + proc.stdout.read())


def stop_server(proc):
    proc.terminate()
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def load(args, url, conc, requests, seconds):
    out = subprocess.run([args.load, url, "m", "input", args.request_shape, str(conc), str(requests), str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unirt", default=os.path.join(REPO, "build", "unirt"))
    p.add_argument("--load", default=os.path.join(REPO, "build", "unirt_bench_serve"))
    p.add_argument("--model", default="uniformer_small")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--backend", default="auto")
    p.add_argument("--max-batch", type=int, default=128)
    p.add_argument("--concurrency", nargs="*", type=int, default=[1, 8, 32, 128])
    p.add_argument("--seconds", type=float, default=5.0, help="per load level")
    p.add_argument("--queue-delay-us", type=int, default=2000)
    p.add_argument("--rss-requests", type=int, default=10000)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.request_shape = "1x3x224x224"
    import unirt
    from unirt_models.export import export_model

    work = tempfile.mkdtemp(prefix="unirt_serve_bench_")
    onnx_path = os.path.join(work, f"{args.model}.onnx")
    export_model(args.model, onnx_path, verify_onnx=False, quiet=True)
    mb = args.max_batch
    engine = unirt.build(onnx_path, precision=args.precision, backend=args.backend, min_shapes={"input": (1, 3, 224, 224)},
                         opt_shapes={"input": (mb, 3, 224, 224)}, max_shapes={"input": (mb, 3, 224, 224)})
    epath = os.path.join(work, "m.engine")
    engine.save(epath)
    lines = [f"# unirt serve load benchmark, {datetime.date.today()}, {args.model} {args.precision} on {engine.backend}", ""]
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip() \
        if engine.backend == "cuda" else "CPU"
    lines.append(f"Device: {gpu or 'unknown'}. Requests: batch 1 ({args.request_shape}), FP32 binary tensors, "
                 f"keep-alive connections, closed loop, {args.seconds:.0f} s per level.")
    lines.append("")

    # In-process: the Python API host to host, and `unirt bench` device-resident.
    sess = unirt.Session(engine)
    inproc = {}
    for b in (1, mb):
        x = np.random.default_rng(0).standard_normal((b, 3, 224, 224), dtype=np.float32)
        for _ in range(5):
            sess.run({"input": x})
        n = max(10, int(200 / b))
        t0 = time.perf_counter()
        for _ in range(n):
            sess.run({"input": x})
        ms = (time.perf_counter() - t0) / n * 1000
        bench = subprocess.run([args.unirt, "bench", epath, "--shapes", f"input:{b}x3x224x224", "--json"], capture_output=True, text=True,
                               check=True).stdout
        dev_ms = json.loads(bench[bench.index("{"):])["median_ms"]
        inproc[b] = (ms, b * 1000 / ms, dev_ms, b * 1000 / dev_ms)
        print(f"in-process batch {b}: host-to-host {ms:.3f} ms ({b * 1000 / ms:.0f} img/s), device-resident {dev_ms:.3f} ms", flush=True)
    del sess
    lines += ["| in-process | batch | ms per batch | img/s |", "|---|---|---|---|"]
    for b, (ms, ips, dms, dips) in inproc.items():
        lines.append(f"| Python Session.run, host arrays | {b} | {ms:.3f} | {ips:.0f} |")
        lines.append(f"| unirt bench, device-resident | {b} | {dms:.3f} | {dips:.0f} |")
    lines.append("")

    rows = []
    for batching in (True, False):
        extra = ["--max-queue", "4096", "--http-threads", str(max(args.concurrency) + 16), "--max-batch", str(mb),
                 "--max-queue-delay-us", str(args.queue_delay_us)] + ([] if batching else ["--no-dynamic-batching"])
        proc, url = start_server(args, epath, extra)
        try:
            load(args, url, max(args.concurrency), 4 * mb, 0)  # warm-up: plans and CUDA graphs of many batch sizes
            for c in args.concurrency:
                r = load(args, url, c, 10 ** 9, args.seconds)
                r["batching"] = batching
                rows.append(r)
                print(f"batching {batching} concurrency {c}: {r}", flush=True)
            if batching:
                r0 = rss_mb(proc.pid)
                rr = load(args, url, 32, args.rss_requests, 0)
                r1 = rss_mb(proc.pid)
                rss = (r0, r1, rr)
                print(f"RSS over {args.rss_requests} requests: {r0:.1f} -> {r1:.1f} MB", flush=True)
        finally:
            rc, out = stop_server(proc)
            print(f"server exit {rc}", flush=True)
    best = inproc[mb][1]
    lines += [f"| dynamic batching | concurrency | req/s (img/s) | p50 ms | p99 ms | vs in-process batch {mb} (host arrays) | statuses |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {'on' if r['batching'] else 'off'} | {r['concurrency']} | {r['throughput_rps']:.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['throughput_rps'] / best:.2f} | {json.dumps(r['status'])} |")
    lines += ["", f"Server RSS with batching: {rss[0]:.1f} MB after the load levels, {rss[1]:.1f} MB after "
              f"{rss[2]['ok']} more requests (statuses {json.dumps(rss[2]['status'])})."]

    # Overload: a burst of 8x the queue's capacity at once.
    q = 32
    proc, url = start_server(args, epath, ["--max-queue", str(q), "--max-batch", str(min(8, mb)), "--http-threads", str(8 * q + 16),
                                           "--max-queue-delay-us", "1000"])
    try:
        burst = load(args, url, 8 * q, 8 * q, 0)
        after = load(args, url, 1, 1, 0)
    finally:
        rc, out = stop_server(proc)
    st = burst["status"]
    lost = 8 * q - sum(st.values())
    lines += ["", f"Overload: a burst of {8 * q} requests at once against --max-queue {q} --max-batch {min(8, mb)}: "
              f"{st.get('200', 0)} answered 200, {st.get('503', 0)} refused 503, other {json.dumps({k: v for k, v in st.items() if k not in ('200', '503')})}, "
              f"lost {lost}; a request after the burst: {json.dumps(after['status'])}; SIGTERM exit code {rc}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
