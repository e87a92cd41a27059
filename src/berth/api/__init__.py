"""HTTP only: routers parse, authorize through a dependency, call one domain function, and
return a schema."""
