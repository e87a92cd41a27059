"""HTTP only: `routes/` holds one router per resource, `middleware/` what wraps every
request; the modules here are the plumbing routes share (dependencies, error mapping, the
approval gate, presenters, response declarations, the OpenAPI document, WebSocket refusals,
the read cache). Routers parse, authorize through a dependency, call one domain function,
and return a schema."""
