export { deletePrefix } from '@tickwork/queue/testing';
