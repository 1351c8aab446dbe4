import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

export default fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Tickwork',
          version: '0.1.0',
          description:
            'Schedule HTTP callbacks: cron with a time zone, fixed intervals, or once. Every occurrence is recorded as a run; callbacks carry a stable `webhook-id` across retries.',
        },
        components: {
          securitySchemes: {
            apiKey: { type: 'http', scheme: 'bearer', description: 'A service API key (`tw_…`).' },
            adminToken: { type: 'http', scheme: 'bearer', description: 'The ADMIN_TOKEN.' },
          },
        },
        tags: [
          { name: 'jobs', description: 'Scheduled HTTP callbacks' },
          { name: 'runs', description: 'One record per occurrence' },
          { name: 'admin', description: 'Services and keys (admin token)' },
          { name: 'health', description: 'Probes' },
        ],
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'swagger' },
);
