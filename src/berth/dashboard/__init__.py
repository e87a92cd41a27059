"""berth's web dashboard: server-rendered pages for humans, served at `/` on the API port.

Every page acts as the signed-in human (a session token in an HttpOnly cookie) through the
same domain functions as the API, never the store; a human's calls are never gated. See
docs/dashboard.md.
"""
