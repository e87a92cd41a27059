"""The server: assembles the API, the controllers and the gateways into one process.

`app.create_app` builds the application and runs everything in its lifespan;
`bootstrap.open_domain` builds the domain handle from settings (for the server and for the
admin commands); `uvicorn.serve` runs the application on uvicorn with berth's logging and
request-head cap (`http_head_limit`).
"""
