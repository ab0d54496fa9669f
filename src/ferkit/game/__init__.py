"""The mirror game: engine (no UI), result store, and its front-ends."""
