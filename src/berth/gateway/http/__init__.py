"""berth's HTTP(S) gateway: a reverse proxy routing requests by Host header to services'
tasks and containers' ingress rules, with its routing table and scale to zero.

`public_gateway.PublicGateway` is the whole of it as a server runs it; `proxy.HttpGateway` is
the proxy alone (see its module docstring for the contract).
"""
