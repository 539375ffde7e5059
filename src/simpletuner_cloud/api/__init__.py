"""HTTP entry points: routers that parse, authorize, call one service function and render."""
