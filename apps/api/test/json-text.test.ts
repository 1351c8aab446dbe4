/**
 * `jsonTextOf`, the create's lookup of a sub-value's original text (`target.body`, kept byte for
 * byte): for any JSON text — any spacing, keys written with escapes, a key repeated — it gives the
 * same text as an independent parser's syntax tree (jsonc-parser), the last of a repeated key as
 * JSON.parse takes it, and nothing where the text has no value.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseTree, type Node } from 'jsonc-parser';
import { jsonTextOf } from '../src/plugins/validation.ts';

/** The reference: jsonc-parser's tree, the last property of each name. */
function reference(text: string, path: readonly string[]): string | undefined {
  let node: Node | undefined = parseTree(text);
  for (const key of path) {
    if (node?.type !== 'object') return undefined;
    const property: Node | undefined = node.children?.findLast((p) => p.children?.[0]?.value === key);
    node = property?.children?.[1];
  }
  return node === undefined ? undefined : text.slice(node.offset, node.offset + node.length);
}

const KEYS = ['target', 'body', 'a', 'b', 'x"y', 'back\\slash', 'é', '{'];
const space = fc.constantFrom('', ' ', '\n', '\t ', '\r\n  ');

/** A key as JSON text: plain, or with some of its characters written as `\u` escapes. */
const keyText = (key: string) =>
  fc
    .array(fc.boolean(), { minLength: key.length, maxLength: key.length })
    .map((escaped) =>
      [...key]
        .map((ch, i) =>
          escaped[i] ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}` : JSON.stringify(ch).slice(1, -1),
        )
        .join(''),
    );

/** A JSON text of depth up to 3, spaced at random, with repeated keys. */
const jsonText: fc.Arbitrary<string> = fc
  .letrec<{ value: string; object: string; array: string; leaf: string }>((tie) => ({
    leaf: fc.oneof(
      fc.json({ maxDepth: 0 }),
      fc.string().map((s) => JSON.stringify(s)),
      fc.constantFrom('"a,b}]"', '"\\"}"', '-1.5e3', 'true', 'null', '"\\\\"'),
    ),
    value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, tie('leaf'), tie('object'), tie('array')),
    object: fc
      .array(fc.tuple(fc.constantFrom(...KEYS).chain(keyText), tie('value'), space, space), { maxLength: 5 })
      .chain((members) =>
        space.map((s) => `{${s}${members.map(([k, v, s1, s2]) => `${s1}"${k}"${s2}:${s1}${v}${s2}`).join(',')}${s}}`),
      ),
    array: fc
      .array(fc.tuple(tie('value'), space), { maxLength: 4 })
      .map((items) => `[${items.map(([v, s]) => `${s}${v}${s}`).join(',')}]`),
  }))
  .value.chain((v) => fc.tuple(space, space).map(([a, b]) => `${a}${v}${b}`));

const paths = fc.array(fc.constantFrom(...KEYS), { minLength: 1, maxLength: 3 });

describe('jsonTextOf', () => {
  it('gives what an independent parser gives, for any JSON text and path', () => {
    fc.assert(
      fc.property(jsonText, paths, (text, path) => {
        const got = jsonTextOf(text, path);
        expect(got).toBe(reference(text, path));
        // And it is the value JSON.parse takes there.
        let parsed: unknown = JSON.parse(text);
        for (const key of path) {
          parsed =
            typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
              ? (parsed as Record<string, unknown>)[key]
              : undefined;
        }
        if (got !== undefined) expect(JSON.parse(got)).toEqual(parsed);
      }),
      { numRuns: 2_000 },
    );
  });

  it('takes the last of a repeated key, sees through escaped keys, and keeps the text as written', () => {
    const text = '{ "target" : { "body":1, "b\\u006fdy" :  { "k" : [1, "}"] } , "url":"u" } }';
    expect(jsonTextOf(text, ['target', 'body'])).toBe('{ "k" : [1, "}"] }');
    expect(jsonTextOf(text, ['target', 'url'])).toBe('"u"');
    expect(jsonTextOf(text, ['target', 'none'])).toBeUndefined();
    expect(jsonTextOf(text, ['target', 'url', 'deeper'])).toBeUndefined();
    expect(jsonTextOf('[{"target":1}]', ['target'])).toBeUndefined();
  });
});
