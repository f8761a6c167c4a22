// The dashboard's view of the API (src/lib/types.ts and the calls in src/lib/api.ts) checked
// against the OpenAPI document a real agent serves, so the two cannot drift apart unnoticed.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ts from 'typescript';
import { REPO, call, startAgent } from './helpers.mjs';

const LIB = join(REPO, 'web/src/lib');

/** Exported interfaces of types.ts as { Name: { prop: optional } }, and string-literal unions. */
async function dashboardTypes() {
  const text = await readFile(join(LIB, 'types.ts'), 'utf8');
  const source = ts.createSourceFile('types.ts', text, ts.ScriptTarget.Latest, true);
  const interfaces = {};
  const unions = {};
  for (const node of source.statements) {
    if (ts.isInterfaceDeclaration(node)) {
      assert.equal(node.heritageClauses, undefined, `${node.name.text}: spell out fields, no extends`);
      interfaces[node.name.text] = Object.fromEntries(
        node.members.filter(ts.isPropertySignature).map((m) => [m.name.getText(source), Boolean(m.questionToken)]),
      );
    } else if (ts.isTypeAliasDeclaration(node) && ts.isUnionTypeNode(node.type)) {
      unions[node.name.text] = node.type.types.map((t) => t.literal?.text).sort();
    }
  }
  return { interfaces, unions };
}

/** Every (METHOD, path) the API client calls, with path parameters as `{}`. */
async function clientCalls() {
  const text = await readFile(join(LIB, 'api.ts'), 'utf8');
  const calls = [...text.matchAll(/'(GET|POST|PUT|PATCH|DELETE)',\s*[`'](\/api\/[^`']+)[`']/g)].map(
    ([, method, path]) => `${method} ${path.replace(/\?.*$/, '').replace(/\$\{[^}]+\}/g, '{}')}`,
  );
  for (const [, path] of text.matchAll(/export const \w+_URL = '([^']+)'/g)) calls.push(`GET ${path}`);
  return calls;
}

/**
 * Types the agent answers with but its document does not name yet (reported to the agent's
 * maintainers). Checked like the others as soon as the schema appears.
 */
const NOT_YET_DOCUMENTED = new Set(['TextFile']);

describe('API types against the OpenAPI document', () => {
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

  it('has the fields and optionality of every dashboard type', async () => {
    const { interfaces } = await dashboardTypes();
    const schemas = doc.components.schemas;
    assert.ok(Object.keys(interfaces).length >= 15);
    const problems = [];
    for (const [name, fields] of Object.entries(interfaces)) {
      const schema = schemas[name];
      if (!schema) {
        if (!NOT_YET_DOCUMENTED.has(name)) problems.push(`${name}: no schema of that name`);
        continue;
      }
      const required = new Set(schema.required ?? []);
      const documented = Object.keys(schema.properties ?? {}).sort();
      const ours = Object.keys(fields).sort();
      if (documented.join() !== ours.join()) {
        problems.push(`${name}: fields ${ours.join(', ')} but the API has ${documented.join(', ')}`);
      }
      for (const [field, optional] of Object.entries(fields)) {
        if (optional === required.has(field)) {
          problems.push(`${name}.${field}: ${optional ? 'optional' : 'required'} here, not in the API`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it('has the same role names, entry kinds and job states', async () => {
    const { unions } = await dashboardTypes();
    for (const name of ['Role', 'EntryKind', 'JobState']) {
      const schema = doc.components.schemas[name];
      assert.ok(schema?.enum, `${name} is an enum in the API`);
      assert.deepEqual(unions[name], [...schema.enum].sort(), name);
    }
  });

  it('has the file actions the API accepts', async () => {
    const text = await readFile(join(LIB, 'types.ts'), 'utf8');
    const ours = [...text.matchAll(/\{ action: '(\w+)'/g)].map(([, a]) => a).sort();
    const documented = doc.components.schemas.FileAction.oneOf.flatMap((v) => v.properties.action.enum).sort();
    assert.deepEqual(ours, documented);
  });
});
