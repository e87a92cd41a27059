"""The API's routers, one per resource: each parses a request, authorizes it through a
dependency, calls one domain function and returns a schema.

Workloads and execution are built per dialect (company and user-scoped paths); the others
are plain routers. `berth.server.app` mounts them all.
"""
