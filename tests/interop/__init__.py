"""Upload servers for ``tests/interop_*.py``, built on third-party multipart parsers."""
