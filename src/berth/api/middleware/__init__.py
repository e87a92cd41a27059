"""What applies to every request before or around the routers: body size and rate limits
(`limits` installs both and declares them in the OpenAPI document), reading bodies as JSON,
strict JSON decoding and the unknown-field warnings."""
