/**
 * The request's logger, made only when the request logs: Fastify gives every request a child
 * logger bound to its request id (`reqId`), and pino builds one per request (an object, its
 * bindings serialized to text) although most requests never log a line at the level the api
 * runs at. `lazyChildLogger` (Fastify's `childLoggerFactory`) hands out a stand-in that asks the
 * parent whether a level is enabled and makes the real child on the first line that is; the
 * line, its bindings and its redaction are the real child's, so the output is the same.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'pino';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type LogArgs = Parameters<FastifyBaseLogger['info']>;

/** A pino logger's level check (absent on loggers that are not pino's). */
type LevelAware = FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean };

class LazyChild {
  readonly #parent: LevelAware & { isLevelEnabled: (level: string) => boolean };
  readonly #bindings: Bindings;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: LevelAware & { isLevelEnabled: (level: string) => boolean }, bindings: Bindings) {
    this.#parent = parent;
    this.#bindings = bindings;
  }

  #real(): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings);
    return this.#child;
  }

  #log(level: Level, args: LogArgs): void {
    if (this.#child === undefined && !this.#parent.isLevelEnabled(level)) return;
    (this.#real()[level] as (...a: LogArgs) => void)(...args);
  }

  get level(): string {
    return this.#child?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#real().level = level;
  }

  isLevelEnabled(level: string): boolean {
    const real = (this.#child ?? this.#parent) as LevelAware;
    return real.isLevelEnabled?.(level) ?? true;
  }

  fatal(...args: LogArgs): void {
    this.#log('fatal', args);
  }
  error(...args: LogArgs): void {
    this.#log('error', args);
  }
  warn(...args: LogArgs): void {
    this.#log('warn', args);
  }
  info(...args: LogArgs): void {
    this.#log('info', args);
  }
  debug(...args: LogArgs): void {
    this.#log('debug', args);
  }
  trace(...args: LogArgs): void {
    this.#log('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#real().child(bindings, options);
  }
}

/**
 * Fastify's `childLoggerFactory`: a stand-in that becomes the request's child logger on its first
 * enabled line. A route with its own log level (or serializers), or a logger that cannot say which
 * levels are on, gets the real child at once.
 */
export function lazyChildLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  const parent = logger as LevelAware;
  if (typeof parent.isLevelEnabled !== 'function' || options.level !== undefined || options.serializers) {
    return logger.child(bindings, options);
  }
  return new LazyChild(parent as LevelAware & { isLevelEnabled: (level: string) => boolean }, bindings) as never;
}
