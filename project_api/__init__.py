"""microTVM-compatible Project API servers and client (plain Python, never imports tvm)."""
