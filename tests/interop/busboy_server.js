// An upload server on busboy, the multipart parser behind Express's multer.
//
// Listens on 127.0.0.1, port 0, and prints one JSON line on stdout:
// {"port": N, "busboy": "<version>", "node": "<version>"}.  Every POST is
// parsed with busboy and answered {"link": L}, where L carries what busboy
// reported for each part (see tests/interop/servers.py, make_link):
// name, filename, content type, size and SHA-256 of the bytes.
//
// busboy is configured as an upload server that accepts UTF-8 file names
// would configure it: defParamCharset 'utf8' (its default, 'latin1', decodes
// the UTF-8 bytes browsers send one byte per character).  A request to
// /defaults uses busboy's defaults instead.  The server exits when its
// standard input closes.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const busboy = require('busboy');

const busboyVersion = JSON.parse(fs.readFileSync(
  path.join(path.dirname(require.resolve('busboy')), '..', 'package.json'), 'utf8')).version;

function makeLink(report) {
  const json = Buffer.from(JSON.stringify(report), 'utf8');
  return 'http://interop.invalid/parsed?r=' + json.toString('base64url');
}

function answer(res, report) {
  const body = Buffer.from(JSON.stringify({ link: makeLink(report) }), 'utf8');
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Content-Length': body.length,
    'Connection': 'close',
  });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const report = { parts: [], error: null };
  let answered = false;
  const finish = () => {
    if (!answered) {
      answered = true;
      answer(res, report);
    }
  };
  const fail = (err) => {
    if (report.error === null)
      report.error = String(err && err.message || err);
    // Read the rest of the request, then answer.
    req.unpipe();
    req.resume();
    if (req.complete)
      finish();
    else
      req.on('end', finish);
  };

  let bb;
  try {
    const cfg = { headers: req.headers };
    if (req.url !== '/defaults')
      cfg.defParamCharset = 'utf8';
    bb = busboy(cfg);
  } catch (err) {
    fail(err);
    return;
  }
  let pending = 0;
  let closed = false;
  const maybeFinish = () => {
    if (closed && pending === 0 && report.error === null)
      finish();
  };
  bb.on('file', (name, stream, info) => {
    pending += 1;
    const hash = crypto.createHash('sha256');
    let size = 0;
    stream.on('data', (chunk) => {
      hash.update(chunk);
      size += chunk.length;
    });
    stream.on('end', () => {
      report.parts.push({
        name: name,
        filename: info.filename === undefined ? null : info.filename,
        content_type: info.mimeType,
        sha256: hash.digest('hex'),
        size: size,
        truncated: stream.truncated === true,
      });
      pending -= 1;
      maybeFinish();
    });
    stream.on('error', fail);
  });
  bb.on('field', (name, value, info) => {
    const raw = Buffer.from(value, 'utf8');
    report.parts.push({
      name: name,
      filename: null,
      content_type: info.mimeType,
      sha256: crypto.createHash('sha256').update(raw).digest('hex'),
      size: raw.length,
      truncated: info.valueTruncated === true,
    });
  });
  bb.on('close', () => {
    closed = true;
    maybeFinish();
  });
  bb.on('error', fail);
  req.pipe(bb);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({
    port: server.address().port,
    busboy: busboyVersion,
    node: process.version,
  }) + '\n');
});

process.stdin.on('end', () => {
  server.close();
  process.exit(0);
});
process.stdin.resume();
