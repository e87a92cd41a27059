"""Tools that exercise a running berth from the outside, shared by the test suite and the
benchmarks: the server launcher (`server`), the poller with a deadline (`waiting`), the load
harness (`load`) and the memory sampler of a server process (`process_memory`)."""
