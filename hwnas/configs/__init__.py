"""ml_collections configs of hwnas runs (`get_config(arg)` per module)."""
