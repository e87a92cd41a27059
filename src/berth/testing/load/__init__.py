"""The load harness: many concurrent clients mixing reads and writes against a real berth.

One module per stage of a run, in the order a run uses them:
- `tenants`: users with an API key and a session token, made in-process on the data directory;
- `setup`: what each tenant needs before the load (an SSH key, a job, two dev boxes);
- `mix`: one load client, its request mix and the `Ledger` of what it wrote;
- `driver`: runs the clients concurrently for a fixed time;
- `record`: every request's latency and status, per operation;
- `verify`: afterwards, every acknowledged write is read back;
- `run`: a whole run (setup, idle spell, load, verification) with the server's memory sampled;
- `baseline`: a bare ASGI app and its client, what `bench.load` compares berth with.

`tests/integration/test_load.py` judges a short run; `python -m bench.load` measures a long one.
"""
