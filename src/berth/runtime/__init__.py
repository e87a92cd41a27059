"""Runtime drivers: the only code that talks to a container engine.

`base` is the contract every driver honours; `factory` picks a driver from settings. Each
driver is a package of its own beside the contract: `docker` (the Docker Engine API, or
Podman's) and `memory` (everything in this process, for tests). A further driver goes beside
them the same way and is chosen in `factory`. Nothing outside this package imports a driver
but the factory, and no driver imports another (import contracts say so).
"""
