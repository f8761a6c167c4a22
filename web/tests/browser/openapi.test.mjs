// The calls in src/lib/api.ts checked against the OpenAPI document a real agent serves: every
// route the dashboard calls exists. (The types are generated from the same document into
// src/lib/api-schema.d.ts, and CI checks that file is current: ci/web-contract --check.)

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO, call, startAgent } from './helpers.mjs';

const LIB = join(REPO, 'web/src/lib');

/** Every (METHOD, path) the API client calls, with path parameters as `{}`. */
async function clientCalls() {
  const text = await readFile(join(LIB, 'api.ts'), 'utf8');
  const calls = [...text.matchAll(/'(GET|POST|PUT|PATCH|DELETE)',\s*[`'](\/api\/[^`']+)[`']/g)].map(
    ([, method, path]) => `${method} ${path.replace(/\?.*$/, '').replace(/\$\{[^}]+\}/g, '{}')}`,
  );
  for (const [, path] of text.matchAll(/export const \w+_URL = '([^']+)'/g)) calls.push(`GET ${path}`);
  return calls;
}

describe('API routes against the OpenAPI document', () => {
  let agent;
  let doc;

  before(async () => {
    agent = await startAgent();
    const res = await call(agent, 'GET', '/api/openapi.json');
    assert.equal(res.status, 200);
    doc = res.json;
  });

  after(async () => {
    await agent?.stop();
  });

  it('finds every route the dashboard calls', async () => {
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{[^}]+\}/g, '{}')}`),
      ),
    );
    const calls = await clientCalls();
    assert.ok(calls.length >= 15, `found the client's calls (${calls.length})`);
    assert.deepEqual(calls.filter((c) => !documented.has(c)), []);
  });
});
