// Precompress the web viewer for the control endpoint: for each .wasm, .js
// and .css file in DIR (not .html: the endpoint hashes the page's inline
// scripts from its plain text), write NAME.br (brotli, quality 11) and
// NAME.gz (gzip -9) next to it, with node's own zlib: nothing to install
// beyond the node that build-web.sh already needs for wasm-opt. Each
// output is decompressed again and compared before it is kept; one that is
// not smaller than the file is not kept. Old siblings are replaced.
//
//   node scripts/precompress.mjs DIR
//
// Prints one line per file: raw, gzip and brotli sizes in bytes.

import { readdirSync, readFileSync, writeFileSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: precompress.mjs DIR");
  process.exit(2);
}
const EXTENSIONS = new Set([".wasm", ".js", ".mjs", ".css"]);
/// Smaller files are not worth a sibling.
const MIN_SIZE = 1024;

const codings = [
  {
    ext: ".br",
    compress: (buf) =>
      zlib.brotliCompressSync(buf, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
          [zlib.constants.BROTLI_PARAM_LGWIN]: zlib.constants.BROTLI_MAX_WINDOW_BITS,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: buf.length,
        },
      }),
    decompress: (buf) => zlib.brotliDecompressSync(buf),
  },
  {
    ext: ".gz",
    compress: (buf) => zlib.gzipSync(buf, { level: 9, memLevel: 9 }),
    decompress: (buf) => zlib.gunzipSync(buf),
  },
];

function walk(d) {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(d, e.name);
    if (e.isDirectory()) return walk(p);
    return e.isFile() ? [p] : [];
  });
}

let failed = false;
for (const file of walk(dir).sort()) {
  if (!EXTENSIONS.has(path.extname(file).toLowerCase())) continue;
  const raw = readFileSync(file);
  const sizes = [];
  for (const c of codings) {
    const out = file + c.ext;
    rmSync(out, { force: true });
    if (raw.length < MIN_SIZE) continue;
    const packed = c.compress(raw);
    if (!c.decompress(packed).equals(raw)) {
      console.error(`precompress: ${out} does not decompress to ${file}`);
      failed = true;
      continue;
    }
    if (packed.length >= raw.length) continue;
    // Written beside, then renamed: never a half-written sibling, and its
    // mtime is after the file's, so the endpoint does not take it as stale.
    writeFileSync(out + ".tmp", packed);
    renameSync(out + ".tmp", out);
    if (statSync(out).mtimeMs < statSync(file).mtimeMs) {
      console.error(`precompress: ${out} is older than ${file}`);
      failed = true;
    }
    sizes.push(`${c.ext.slice(1)} ${packed.length}`);
  }
  if (sizes.length) console.log(`${path.relative(dir, file)}: raw ${raw.length}, ${sizes.join(", ")}`);
}
process.exit(failed ? 1 : 0);
