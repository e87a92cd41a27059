"""Tools that exercise a running berth from the outside, shared by the test suite and the
benchmarks: the load harness (`load_*`) and the memory sampler of a server process."""
