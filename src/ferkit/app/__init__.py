"""Web app: FastAPI server and its pages (needs the [app] extra)."""
