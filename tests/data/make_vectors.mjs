// Helper for make_vectors.py: builds UnixFS DAGs with ipfs-unixfs-importer
// configured like `ipfs add` and writes CAR files with @ipld/car.
//
// Not meant to be run by hand: make_vectors.py copies it next to its own
// node_modules folder (outside the repository) and runs
//     node make_vectors.mjs jobs.json results.json
// jobs.json is a list of jobs:
//     {"kind": "file", "size": n | "hex": "...", "chunk": c, "version": 0|1}
//     {"kind": "dir", "entries": [{"path": "...", "size": n | "hex": "..."}],
//      "chunk": c, "version": 0|1}
//     {"kind": "inline", "hex": "..."}        (CIDv1, raw codec, identity hash)
// Any job may carry "car": "/abs/path.car" to export the DAG as a CARv1.
// results.json is the list of root CIDs (strings) in job order.

import { readFileSync, writeFileSync } from 'node:fs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CarWriter } from '@ipld/car/writer'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import * as raw from 'multiformats/codecs/raw'

// content(n): byte i is i % 251.  BASE is a whole number of periods, so
// consecutive BASE-sized pieces continue the pattern.
const PERIOD = 251
const BASE = new Uint8Array(PERIOD * 4178)
for (let i = 0; i < BASE.length; i++) BASE[i] = i % PERIOD

async function * patterned (n) {
  let left = n
  while (left > 0) {
    const take = Math.min(left, BASE.length)
    yield BASE.subarray(0, take)
    left -= take
  }
}

async function * literal (bytes) {
  if (bytes.length > 0) yield bytes
}

function source (entry) {
  if (entry.hex !== undefined) return literal(Uint8Array.from(Buffer.from(entry.hex, 'hex')))
  return patterned(entry.size)
}

// Kubo 'ipfs add' defaults: fixed-size chunker, balanced layout with at most
// 174 links per node, single-chunk files reduced to the chunk itself.
// CIDv0 -> dag-pb UnixFS "file" leaves; --cid-version=1 -> raw leaves.
function kuboOptions (chunk, version) {
  return {
    cidVersion: version,
    rawLeaves: version === 1,
    leafType: 'file',
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: chunk }),
    layout: balanced({ maxChildrenPerNode: 174 }),
    wrapWithDirectory: false,
    shardSplitThresholdBytes: 262144,
    shardSplitStrategy: 'links-bytes'
  }
}

class MapStore {
  constructor (keep) { this.keep = keep; this.blocks = new Map() }
  async put (cid, bytes) { if (this.keep) this.blocks.set(cid.toString(), bytes); return cid }
  async get (cid) { return this.blocks.get(cid.toString()) }
  async has (cid) { return this.blocks.has(cid.toString()) }
}

// Depth-first, parents before children, each block once: the order in
// which `ipfs dag export` walks a DAG.
async function writeCar (root, store, path, extra) {
  const { writer, out } = CarWriter.create([root])
  const parts = []
  const collecting = (async () => { for await (const p of out) parts.push(p) })()
  const seen = new Set()
  const visit = async (cid) => {
    const key = cid.toString()
    if (seen.has(key)) return
    seen.add(key)
    const bytes = extra.get(key) ?? store.blocks.get(key)
    if (bytes === undefined) throw new Error('missing block ' + key)
    await writer.put({ cid, bytes })
    if (cid.code === dagPb.code) {
      for (const link of dagPb.decode(bytes).Links) await visit(link.Hash)
    }
  }
  await visit(root)
  await writer.close()
  await collecting
  writeFileSync(path, Buffer.concat(parts))
}

async function run (job) {
  const store = new MapStore(job.car !== undefined)
  const extra = new Map()
  let root
  if (job.kind === 'inline') {
    const bytes = Uint8Array.from(Buffer.from(job.hex, 'hex'))
    root = CID.createV1(raw.code, identity.digest(bytes))
    extra.set(root.toString(), bytes)
  } else if (job.kind === 'file') {
    const opts = kuboOptions(job.chunk, job.version)
    for await (const e of importer([{ content: source(job) }], store, opts)) root = e.cid
  } else if (job.kind === 'dir') {
    const opts = kuboOptions(job.chunk, job.version)
    const input = job.entries.map((e) => ({ path: 'root/' + e.path, content: source(e) }))
    for await (const e of importer(input, store, opts)) {
      if (e.path === 'root') root = e.cid
    }
  } else {
    throw new Error('unknown job kind ' + job.kind)
  }
  if (job.car !== undefined) await writeCar(root, store, job.car, extra)
  return root.toString()
}

const jobs = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const results = []
for (const job of jobs) results.push(await run(job))
writeFileSync(process.argv[3], JSON.stringify(results))
