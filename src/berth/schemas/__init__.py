"""Wire models per dialect, shared by the server and the SDK (no server imports here)."""
