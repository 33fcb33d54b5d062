"""View models: pure functions from the backends to plain typed data, one module per page.

The JSON API (``api/``) and gwui's HTML pages (``pages/``) both call these, so a page and its
JSON twin always show the same figures.
"""
