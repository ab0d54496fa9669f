"""Load test of the web API: N concurrent clients against a local server, fixed request count.

Usage::

    python bench/serve_load.py [--clients 16] [--requests 400]

Starts ``ferkit serve`` on a free localhost port in a subprocess (the only target: loopback),
posts a real photo from each client thread, and prints throughput, p50/p95/p99 latency and
errors. The loop is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
from matplotlib import cbook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_clients(url: str, photo: bytes, clients: int, per_client: int) -> tuple[np.ndarray, int, float]:
    """Latencies (ms), error count and wall time of ``clients`` threads posting ``per_client`` each."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def client() -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(per_client):
                start = time.perf_counter()
                try:
                    r = http.post("/api/v1/analyze", files={"image": ("p.jpg", photo, "image/jpeg")})
                    ok = r.status_code == 200 and len(r.json()["faces"]) == 1
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append(time.perf_counter() - start)
                    errors += not ok

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return np.array(latencies) * 1000, errors, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as f:
        photo = f.read()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ferkit", "serve", "--port", str(port), "--workers", str(args.workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        print(f"photo: grace_hopper.jpg ({len(photo)} bytes), server workers: {args.workers}\n")
        print("| clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for clients in args.clients:
            ms, errors, wall = run_clients(url, photo, clients, args.requests // clients)
            p50, p95, p99 = np.percentile(ms, [50, 95, 99])
            cells = [
                clients,
                len(ms),
                f"{len(ms) / wall:.1f}",
                f"{p50:.1f}",
                f"{p95:.1f}",
                f"{p99:.1f}",
                errors,
            ]
            print("| " + " | ".join(map(str, cells)) + " |", flush=True)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
