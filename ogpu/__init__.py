"""Publish to and fetch from IPFS for OGPU, with the standard library only.

Everything lives in :mod:`ogpu.ipfs`, a single module that can also be copied
alone into another project; this package re-exports its public API::

    from ogpu import publish_to_ipfs, fetch_ipfs_json

    link = publish_to_ipfs({"result": "cat", "confidence": 0.97})
    data = fetch_ipfs_json(link)
"""

from .ipfs import (
    IPFSError,
    IPFSFetchError,
    IPFSGatewayError,
    IPFSVerificationError,
    OGPUError,
    __version__,
    compute_cid,
    fetch_ipfs_bytes,
    fetch_ipfs_json,
    fetch_ipfs_to_file,
    publish_to_ipfs,
)

__all__ = [
    "IPFSError",
    "IPFSFetchError",
    "IPFSGatewayError",
    "IPFSVerificationError",
    "OGPUError",
    "__version__",
    "compute_cid",
    "fetch_ipfs_bytes",
    "fetch_ipfs_json",
    "fetch_ipfs_to_file",
    "publish_to_ipfs",
]
