/**
 * `pnpm --filter @tickwork/client generate`: the client's types from the document an api serves.
 * With TICKWORK_URL set, from that api's /openapi.json; otherwise from an api of the sources started
 * for the purpose (on a scratch database of the local Postgres, and the local Redis, as the tests
 * use), so a new route is in the client after one command.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatedFiles } from './codegen.ts';
import { servedDocument } from './served.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const document = await servedDocument(process.env.TICKWORK_URL);
for (const [path, text] of Object.entries(await generatedFiles(document))) {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
  console.log(`generate: wrote packages/client/${path}`);
}
