"""The `berth` command: `serve`, and `admin` commands that work on the data directory."""
