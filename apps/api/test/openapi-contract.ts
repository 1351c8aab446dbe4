/**
 * Checks real answers against an OpenAPI document: the document is validated and dereferenced by
 * @apidevtools/swagger-parser, bodies and headers are validated by Ajv (JSON Schema 2020-12, the
 * dialect of OpenAPI 3.1) on the document's own schemas. What this file adds is only the lookup:
 * which operation, response and media type an answer belongs to.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

type Schema = Record<string, unknown>;
interface Header {
  required?: boolean;
  schema: Schema;
}
interface Response {
  description: string;
  headers?: Record<string, Header>;
  content?: Record<string, { schema: Schema }>;
}
export interface Operation {
  operationId: string;
  parameters?: Array<{ in: string; name: string }>;
  requestBody?: { content: Record<string, { schema: Schema; example?: unknown }> };
  responses: Record<string, Response>;
  security: Array<Record<string, string[]>>;
}
export interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { responses: Record<string, Response>; schemas: Record<string, Schema> };
}

/** An answer as it came off the wire. */
export interface Answer {
  method: string;
  /** The request's path, query included. */
  url: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'] as const;

export class Contract {
  /** `operationId status` of every answer checked. */
  readonly seen = new Set<string>();
  private readonly ajv = new Ajv2020({ allErrors: true, strict: false });
  private readonly validators = new WeakMap<Schema, ValidateFunction>();
  private readonly templates: Array<{ path: string; pattern: RegExp }>;

  /** As served: with its `$ref`s. */
  readonly served: Document;
  /** Every `$ref` replaced by what it names. */
  readonly resolved: Document;

  private constructor(served: Document, resolved: Document) {
    this.served = served;
    this.resolved = resolved;
    addFormats(this.ajv);
    this.templates = Object.keys(resolved.paths).map((path) => ({
      path,
      pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
    }));
  }

  /** Validates the document against the OpenAPI specification's own schema, then dereferences it. */
  static async of(document: Document): Promise<Contract> {
    await SwaggerParser.validate(structuredClone(document) as never);
    const resolved = (await SwaggerParser.dereference(structuredClone(document) as never)) as unknown as Document;
    return new Contract(document, resolved);
  }

  operations(): Array<{ path: string; method: string; operation: Operation }> {
    return Object.entries(this.resolved.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => (METHODS as readonly string[]).includes(method))
        .map(([method, operation]) => ({ path, method, operation })),
    );
  }

  /** The documented path an actual request path matches. */
  pathOf(url: string): string | undefined {
    const pathname = new URL(url, 'http://x').pathname;
    return this.templates.find((template) => template.pattern.test(pathname))?.path;
  }

  private validate(schema: Schema, value: unknown): string[] {
    let validate = this.validators.get(schema);
    if (!validate) {
      validate = this.ajv.compile(schema);
      this.validators.set(schema, validate);
    }
    return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message}`);
  }

  /**
   * Every way `answer` departs from the document: an undocumented path or status, a media type
   * the response does not list, a body or header its schema refuses, a required header missing.
   */
  problemsOf(answer: Answer): string[] {
    const name = `${answer.method} ${answer.url} → ${answer.status}`;
    const path = this.pathOf(answer.url);
    if (path === undefined) return [`${name}: no documented path matches`];
    const item = this.resolved.paths[path]!;
    const method = answer.method === 'HEAD' ? 'get' : answer.method.toLowerCase();
    const operation = item[method];
    let response: Response | undefined;
    const problems: string[] = [];
    if (operation) {
      response = operation.responses[String(answer.status)];
      if (!response) return [`${name}: ${operation.operationId} does not document ${answer.status}`];
      this.seen.add(`${operation.operationId} ${answer.status}`);
    } else {
      // A method the path does not take: the one answer no operation holds.
      if (answer.status !== 405) return [`${name}: ${path} documents no ${method} and the answer is not 405`];
      response = this.resolved.components.responses.MethodNotAllowed!;
      const documented = Object.keys(item)
        .filter((m) => (METHODS as readonly string[]).includes(m))
        .map((m) => m.toUpperCase());
      if (documented.includes('GET')) documented.push('HEAD');
      const allow = String(answer.headers.allow ?? '')
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean);
      if (allow.sort().join(', ') !== documented.sort().join(', ')) {
        problems.push(`${name}: Allow says ${allow.join(', ')}, the document ${documented.join(', ')}`);
      }
    }
    for (const [header, spec] of Object.entries(response.headers ?? {})) {
      const value = answer.headers[header.toLowerCase()];
      if (value === undefined) {
        if (spec.required) problems.push(`${name}: required header ${header} is missing`);
        continue;
      }
      for (const error of this.validate(spec.schema, Array.isArray(value) ? value.join(', ') : value)) {
        problems.push(`${name}: header ${header}: ${error}`);
      }
    }
    const mediaType = String(answer.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (answer.method === 'HEAD') return problems;
    if (!response.content) {
      if (answer.body !== '') problems.push(`${name}: the document says no body, the answer has one`);
      return problems;
    }
    const media = response.content[mediaType];
    if (!media) {
      problems.push(`${name}: sent ${mediaType || 'no content-type'}; documented: ${Object.keys(response.content)}`);
      return problems;
    }
    let body: unknown = answer.body;
    if (mediaType === 'application/json' || mediaType.endsWith('+json')) {
      try {
        body = JSON.parse(answer.body);
      } catch {
        return [...problems, `${name}: the body is not JSON`];
      }
    }
    for (const error of this.validate(media.schema, body)) problems.push(`${name}: body ${error}`);
    return problems;
  }
}
