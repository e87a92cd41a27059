"""berth's SSH gateway: SSH logins to containers (dev boxes), routed by user name.

`gateway.SshGateway` is the server; `access` is what it asks of an access policy (and
`authorizer` the policy the domain gives it); `connection`, `session` and `forward` are one
SSH connection, its shell/exec channels and its `-L` forwards; `limits`, `revocation` and
`host_key` are the token buckets per client address, cutting logins that lost access, and
the server's host key.
"""
