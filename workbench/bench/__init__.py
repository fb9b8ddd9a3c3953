"""Benchmarks behind ``workbench bench NAME``. Each returns a JSON-ready dict."""
