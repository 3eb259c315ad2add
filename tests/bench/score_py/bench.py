"""Drives the scoring benchmark (see tests/bench/score.sh): starts each server, measures
its cold start (process start to first successful score), then loads it with oha for
1- and 100-row requests at 1 and 16 concurrent clients, and prints one table. Then it
loads Sluice and the bare route in turns, a few rounds of 1-row requests at 16 clients,
and prints their ratio per round: this machine's speed drifts over minutes, and a ratio
measured in pairs drifts less than one taken from runs minutes apart.

Usage: bench.py SLUICE_BIN STORE_ROOT MODEL_DIR OHA VENV_BIN ADULT_TEST SECONDS"""

import csv
import http.client
import json
import os
import socket
import subprocess
import sys
import time

sluice, store, model_dir, oha, venv_bin, adult_test, seconds = sys.argv[1:8]
KEY = "bench-scoring-key"
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies():
    """1 and 100 rows of adult.test as raw records, as a client would send them."""
    signature = json.load(open(os.path.join(model_dir, "signature.json")))
    names = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
             "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
             "hours-per-week", "native-country", "income"]
    rows = []
    with open(adult_test) as f:
        for line in csv.reader(f):
            if len(line) != len(names):
                continue
            raw = dict(zip(names, (v.strip() for v in line)))
            row = {}
            for spec in signature["inputs"]:
                v = raw[spec["name"]]
                row[spec["name"]] = None if v == "?" else (int(v) if spec["tensor"] == "double" else v)
            rows.append(row)
            if len(rows) == 100:
                break
    return {1: json.dumps({"data": rows[:1]}), 100: json.dumps({"data": rows})}


def post(port, path, body, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    conn.request("POST", path, body, headers)
    response = conn.getresponse()
    response.read()
    return response.status


def start(argv, env, port, path, body, headers):
    """Starts a server; returns the process and its cold start in ms."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            if post(port, path, body, headers) == 200:
                return process, (time.perf_counter() - started) * 1000
        except OSError:
            pass
        if time.perf_counter() - started > 60:
            raise SystemExit(f"{argv[0]} did not answer within 60 s")
        time.sleep(0.001)


def load(port, path, body, headers, clients):
    with open("/tmp/sluice-bench-body.json", "w") as f:
        f.write(body)
    argv = [oha, "-z", f"{seconds}s", "-c", str(clients), "--no-tui", "--output-format", "json",
            "-m", "POST", "-D", "/tmp/sluice-bench-body.json"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = json.loads(subprocess.run(argv + [f"http://127.0.0.1:{port}{path}"], capture_output=True, check=True, text=True).stdout)
    summary, pct = out["summary"], out["latencyPercentiles"]
    codes = out.get("statusCodeDistribution", {})
    failed = sum(n for code, n in codes.items() if code != "200")
    return summary["requestsPerSec"], pct["p50"] * 1000, pct["p99"] * 1000, failed


requests = bodies()
json_headers = {"content-type": "application/json"}
servers = []
port = free_port()
servers.append(("sluice Score", port, "/api/score/adult-income", {**json_headers, "x-functions-key": KEY},
                [sluice, "--root", store, "serve", "--port", str(port)], {"SLUICE_SCORING_KEYS": KEY, "RUST_LOG": "warn"}))
port = free_port()
servers.append(("azureml-inference-server-http", port, "/score", json_headers,
                [os.path.join(venv_bin, "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "2", "--timeout", "300",
                 "azureml_inference_server_http.server.entry:app"],
                {"AZUREML_ENTRY_SCRIPT": os.path.join(HERE, "score.py"), "AZUREML_MODEL_DIR": model_dir,
                 "OMP_NUM_THREADS": "1"}))
port = free_port()
servers.append(("bare axum route", port, "/", json_headers, [sluice, "bench-echo", "--port", str(port)], {}))
# The same route on as many threads as Sluice serves HTTP on (one per core but one).
http_threads = max(1, (os.cpu_count() or 2) - 1)
port = free_port()
servers.append(("bare route, Sluice's threads", port, "/", json_headers, [sluice, "bench-echo", "--port", str(port)],
                {"TOKIO_WORKER_THREADS": str(http_threads)}))

results = []
for name, port, path, headers, argv, env in servers:
    process, cold = start(argv, env, port, path, requests[1], headers)
    try:
        for rows in (1, 100):
            for clients in (1, 16):
                rps, p50, p99, failed = load(port, path, requests[rows], headers, clients)
                results.append((name, rows, clients, rps, p50, p99, failed, cold))
    finally:
        process.terminate()
        process.wait()

print(f"{'server':<32}{'rows':>5}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}{'cold start ms':>15}")
for name, rows, clients, rps, p50, p99, failed, cold in results:
    print(f"{name:<32}{rows:>5}{clients:>8}{rps:>10.0f}{p50:>9.2f}{p99:>9.2f}{failed:>8}{cold:>15.0f}")
by = {(r[0], r[1], r[2]): r[3] for r in results}
for rows in (1, 100):
    s, p = by[("sluice Score", rows, 16)], by[("azureml-inference-server-http", rows, 16)]
    e, t = by[("bare axum route", rows, 16)], by[("bare route, Sluice's threads", rows, 16)]
    print(f"{rows}-row requests at 16 clients: Sluice {s / p:.1f}x the Python server; {s / e:.2f} of the bare route "
          f"({s / t:.2f} of it on {http_threads} thread(s), as many as Sluice's HTTP threads)")

# Paired rounds: both servers up, loaded one after the other, round after round.
ROUNDS = 5
pair = [servers[0], servers[2]]
processes = []
try:
    for name, port, path, headers, argv, env in pair:
        processes.append(start(argv, env, port, path, requests[1], headers)[0])
    ratios = []
    for _ in range(ROUNDS):
        (s, *_), (e, *_) = [load(port, path, requests[1], headers, 16) for _, port, path, headers, _, _ in pair]
        ratios.append(s / e)
finally:
    for process in processes:
        process.terminate()
        process.wait()
ratios.sort()
print(f"paired rounds (1-row requests, 16 clients): Sluice / bare route = {ratios[len(ratios) // 2]:.2f} median, "
      f"{ratios[0]:.2f}-{ratios[-1]:.2f} over {ROUNDS} rounds")
