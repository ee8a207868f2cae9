// package.mjs — loads the published @semiont/jobs package (its JobQueue and
// JobWorker classes) for the interop scripts of this directory.
//
// `npm install @semiont/jobs@0.2.46` fails (its dependency
// @semiont/event-sourcing is not on the registry), and the two classes need
// only node's fs and path. So this module `npm pack`s the tarball into a
// cache directory (TS_PACKAGE_CACHE, default target/ts-package of the
// workspace), checks its sha1, unpacks it, and cuts the two classes out of
// package/dist/index.js verbatim into <cache>/classes.mjs, which it imports.
// The same approach as ../../../shared/anchors/node/extract.mjs.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const VERSION = '0.2.46';
// sha1 of the registry tarball of 0.2.46 (what `npm pack` reports as shasum).
const SHA1 = '272dbf90a057328ef27c696a751885fdbcf4b454';

const HERE = dirname(fileURLToPath(import.meta.url));

function die(msg) {
  throw new Error(`ts-package: ${msg}`);
}

// The brace closing the one opened at `open`, skipping strings, template
// literals and comments (the two classes contain no regex literals).
function matchBrace(text, open) {
  const stack = [];
  let i = open;
  while (i < text.length) {
    const top = stack[stack.length - 1];
    const c = text[i];
    if (top === '`') {
      if (c === '\\') { i += 2; continue; }
      if (c === '`') { stack.pop(); i++; continue; }
      if (c === '$' && text[i + 1] === '{') { stack.push('${'); i += 2; continue; }
      i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') { i = text.indexOf('\n', i); if (i < 0) die('eof in comment'); continue; }
    if (c === '/' && text[i + 1] === '*') { i = text.indexOf('*/', i + 2); if (i < 0) die('eof in comment'); i += 2; continue; }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c) { if (text[j] === '\\') j++; j++; }
      i = j + 1;
      continue;
    }
    if (c === '`') { stack.push('`'); i++; continue; }
    if (c === '{') { stack.push('{'); i++; continue; }
    if (c === '}') {
      const t = stack.pop();
      if (t !== '{' && t !== '${') die(`unbalanced '}' at ${i}`);
      if (stack.length === 0) return i;
      i++;
      continue;
    }
    i++;
  }
  die('no matching brace');
}

function extractClass(src, name) {
  const head = `var ${name} = class {`;
  const start = src.indexOf(head);
  if (start < 0 || src.indexOf(head, start + 1) >= 0) die(`'${head}' not found exactly once in the bundle`);
  const close = matchBrace(src, start + head.length - 1);
  return src.slice(start, close + 2);
}

/** The cache directory. */
export function cacheDir() {
  return resolve(process.env.TS_PACKAGE_CACHE ?? join(HERE, '..', '..', 'target', 'ts-package'));
}

/** Packs, checks and unpacks the package (once per cache) and imports its two classes. */
export async function loadPackage() {
  const cache = cacheDir();
  mkdirSync(cache, { recursive: true });
  const tarball = join(cache, `semiont-jobs-${VERSION}.tgz`);
  const sha1 = () => createHash('sha1').update(readFileSync(tarball)).digest('hex');
  if (!existsSync(tarball) || sha1() !== SHA1) {
    rmSync(tarball, { force: true });
    execFileSync('npm', ['pack', `@semiont/jobs@${VERSION}`, '--pack-destination', cache], {
      cwd: cache,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    if (!existsSync(tarball)) die(`npm pack did not produce ${tarball}`);
    if (sha1() !== SHA1) die(`sha1 of ${tarball} is ${sha1()}, not the pinned ${SHA1}`);
  }
  const classes = join(cache, 'classes.mjs');
  if (!existsSync(classes)) {
    rmSync(join(cache, 'package'), { recursive: true, force: true });
    execFileSync('tar', ['-xzf', tarball, '-C', cache]);
    const src = readFileSync(join(cache, 'package', 'dist', 'index.js'), 'utf8');
    const imports = src
      .split('\n')
      .filter((l) => /^import .* from ['"](fs|path|node:fs|node:path)['"];\s*$/.test(l));
    if (imports.length !== 2) die(`expected 2 fs/path imports in the bundle, found ${imports.length}`);
    const body = ['JobQueue', 'JobWorker'].map((n) => extractClass(src, n)).join('\n\n');
    writeFileSync(
      classes,
      `// GENERATED from @semiont/jobs@${VERSION} (tarball sha1 ${SHA1}) by tests/ts-package/package.mjs.\n` +
        `${imports.join('\n')}\n\n${body}\n\nexport { JobQueue, JobWorker };\n`,
    );
  }
  const { JobQueue, JobWorker } = await import(pathToFileURL(classes).href);
  return { JobQueue, JobWorker, version: VERSION };
}

/** A logger that says nothing (the package logs every write). */
export const quiet = { debug() {}, info() {}, warn() {}, error() {}, child() { return quiet; } };
