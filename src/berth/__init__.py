"""berth: a self-hosted compute platform.

Callers create services, jobs, schedules and dev-box containers through an HTTP API; berth owns
the container engine and converges it to the desired state kept in its store.
"""

__version__ = "0.1.0"
