"""Gateways: the ways in to tasks from outside berth's API (the SSH gateway for now).

A gateway owns a listening socket and talks to tasks only through the `Runtime` contract
and an injected access policy, so it never depends on the domain or the store.
"""
