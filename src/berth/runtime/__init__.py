"""Runtime drivers: the only code that talks to a container engine.

`base` is the contract every driver honours; `factory` picks a driver from settings. Nothing
outside this package imports a concrete driver module.
"""
