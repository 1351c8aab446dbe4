export * from './client.ts';
export * from './verify.ts';
export { OPERATIONS, type OperationId } from './generated/operations.ts';
export type { components, operations, paths } from './generated/schema.ts';
