"""Integrations of mmkv with other libraries; each module imports its library on import."""
