"""JSON API and WebSocket endpoints, one router per kind of user."""
