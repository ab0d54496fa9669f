"""Load test of the web API: N concurrent clients against a local server, fixed request count.

Usage::

    python bench/serve_load.py [--clients 1 4 16] [--requests 320] [--mixed]

Starts ``ferkit serve`` on a free localhost port in a subprocess (the only target: loopback),
posts a real photo from each client thread, and prints throughput, p50/p95/p99 latency and
errors. ``--mixed`` then runs good clients beside hostile ones (decompression bombs posted
over and over, WebSockets sending junk text, wrong types and bombs) while a prober times
``/healthz``: it prints the good requests' errors and latency, the bombs' refusal time, the
probe's p99 and the server's peak memory. Every loop is bounded in count and time and stops
by itself.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

import cv2
import httpx
import numpy as np
from matplotlib import cbook

from ferkit.synth import png_bomb


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


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))


def hostile_sockets(url: str, photo: bytes, bomb: bytes, rounds: int, stop: threading.Event) -> list[str]:
    """Junk on the stream socket; returns the problems seen (a reply that is not a JSON error)."""
    import json

    import websocket

    problems = []
    ws = websocket.create_connection(url.replace("http", "ws") + "/api/v1/stream", timeout=30)
    try:
        for _ in range(rounds):
            if stop.is_set():
                break
            for send, junk in ((ws.send, "text"), (ws.send_binary, b"%PDF"), (ws.send_binary, bomb)):
                send(junk)
                if "error" not in json.loads(ws.recv()):
                    problems.append(f"no error for {junk[:8]!r}")
            ws.send_binary(photo)  # and a good frame still works
            if len(json.loads(ws.recv()).get("faces", [])) != 1:
                problems.append("good frame after junk not answered")
    finally:
        ws.close()
    return problems


STRIPS = [(1, 8000), (1, 200_000), (3000, 1)]  # (height, width): once minutes of tiling each
BIG = 7000  # a 49 Mpx photo, just under the 50 Mpx default pixel limit


def mixed_run(url: str, photo: bytes, clients: int, requests: int, server_pid: int) -> None:
    bomb = png_bomb(30000, 30000)
    strips = [cv2.imencode(".png", np.full(shape, 200, np.uint8))[1].tobytes() for shape in STRIPS]
    ramp = np.add.outer(np.arange(BIG), np.arange(BIG)) % 256
    big = cv2.imencode(".jpg", ramp.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    stop = threading.Event()
    probes: list[float] = []
    bomb_ms: list[float] = []
    bomb_errors = 0
    heavy_ms: dict[str, list[float]] = {"strip": [], "big": []}
    heavy_wrong: dict[str, int] = {"strip": 0, "big": 0}
    socket_problems: list[str] = []

    def prober() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                start = time.perf_counter()
                http.get("/healthz")
                probes.append((time.perf_counter() - start) * 1000)
                time.sleep(0.01)

    def bomber() -> None:
        nonlocal bomb_errors
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                start = time.perf_counter()
                r = http.post("/api/v1/analyze", files={"image": ("b.png", bomb, "image/png")})
                bomb_ms.append((time.perf_counter() - start) * 1000)
                bomb_errors += r.status_code != 422

    def heavy(kind: str, images: list[bytes]) -> None:
        """Legal but costly uploads, over and over: 1-pixel strips and a 49 Mpx JPEG."""
        with httpx.Client(base_url=url, timeout=60) as http:
            k = 0
            while not stop.is_set():
                start = time.perf_counter()
                image = images[k % len(images)]
                r = http.post("/api/v1/analyze", files={"image": ("h.png", image, "image/png")})
                heavy_ms[kind].append((time.perf_counter() - start) * 1000)
                heavy_wrong[kind] += r.status_code != 200
                k += 1

    threads = [threading.Thread(target=prober)] + [threading.Thread(target=bomber) for _ in range(4)]
    threads += [threading.Thread(target=heavy, args=("strip", strips))]
    threads += [threading.Thread(target=heavy, args=("big", [big]))]
    threads.append(
        threading.Thread(target=lambda: socket_problems.extend(hostile_sockets(url, photo, bomb, 50, stop)))
    )
    for t in threads:
        t.start()
    ms, errors, wall = run_clients(url, photo, clients, requests // clients)
    stop.set()
    for t in threads:
        t.join(60)
    p50, p99 = np.percentile(ms, [50, 99])
    hp50, hp99 = np.percentile(probes, [50, 99])
    print(
        f"\nmixed: {clients} good clients, 4 bomb posters (30000x30000 PNG, {len(bomb):,} bytes), "
        f"1 strip poster ({', '.join(f'{w}x{h}' for h, w in STRIPS)} PNGs), 1 big-photo poster "
        f"({BIG}x{BIG} JPEG, {len(big):,} bytes), 1 junk WebSocket, 1 /healthz prober\n"
    )
    print(
        "| good requests | errors | good p50 ms | good p99 ms | bombs refused | bomb max ms | "
        "bomb wrong replies | socket problems | /healthz probes | /healthz p50 ms | /healthz p99 ms | "
        "server peak RSS MB |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    cells = [
        len(ms),
        errors,
        f"{p50:.1f}",
        f"{p99:.1f}",
        len(bomb_ms),
        f"{max(bomb_ms):.0f}",
        bomb_errors,
        len(socket_problems),
        len(probes),
        f"{hp50:.1f}",
        f"{hp99:.1f}",
        f"{peak_rss_mb(server_pid):.0f}",
    ]
    print("| " + " | ".join(map(str, cells)) + " |", flush=True)
    print("\n| legal heavy upload | answered | not 200 | p50 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, label in (("strip", "1-pixel strips"), ("big", f"{BIG}x{BIG} JPEG")):
        done = heavy_ms[kind] or [float("nan")]
        row = [label, len(heavy_ms[kind]), heavy_wrong[kind], f"{np.median(done):.0f}", f"{max(done):.0f}"]
        print("| " + " | ".join(map(str, row)) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mixed", action="store_true", help="also run good clients beside hostile ones")
    args = parser.parse_args()
    with open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as f:
        photo = f.read()
    server = subprocess.Popen(
        [sys.executable, "-m", "ferkit", "serve", "--port", "0", "--workers", str(args.workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = None
    for line in server.stderr:  # ready when it says so (a busy machine only makes this slower)
        if line.startswith("ferkit: serving "):
            url = line.split()[2]
            break
    if url is None:
        raise SystemExit("the server did not start")
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()  # keep draining
    try:
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
        if args.mixed:
            mixed_run(url, photo, max(args.clients), args.requests, server.pid)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
