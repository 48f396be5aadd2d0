"""Publish a result and fetch it back, entirely offline.

``make demo`` runs this.  A :class:`ogpu.testing.LocalGateway` on 127.0.0.1
stands in for OGPU's pinning service and an IPFS gateway, so nothing leaves
the machine.  Against the real service the two calls are the same, without
the gateway around them.
"""

from ogpu import compute_cid, fetch_ipfs_json, publish_to_ipfs
from ogpu.testing import LocalGateway


def main():
    result = {"result": "cat", "confidence": 0.97}
    with LocalGateway() as gateway, gateway.patch_publish():
        link = publish_to_ipfs(result)
        print("published:", link)
        print("CID      :", compute_cid(result))
        fetched = fetch_ipfs_json(link)
        print("fetched  :", fetched)
    if fetched != result:
        raise SystemExit("demo failed: fetched content differs from what was published")


if __name__ == "__main__":
    main()
