"""The daemon's HTTP and WebSocket routes, one module per API: native edits, WebSocket, OpenAI, operations."""
