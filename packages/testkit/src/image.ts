/**
 * The image reference `npm run test:image` builds from the Dockerfile, and that
 * docker-compose.yml and infra/k8s (its kustomization's `images`) run: e2e/infra.test.ts checks
 * that both resolve to it, with docker-compose and kubectl themselves.
 */
export const IMAGE = 'tickwork:local';
