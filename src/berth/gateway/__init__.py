"""Gateways: the ways in to tasks from outside berth's API: `http` (services' and
containers' HTTP(S) endpoints) and the SSH gateway.

A gateway owns a listening socket and talks to tasks only through the `Runtime` contract
and an injected access policy, so it never depends on the domain or the store.
"""
