/** Scrapes a process's /metrics and parses it. */
import { request } from 'undici';
import { parseExposition, type MetricFamily } from '@tickwork/metrics/testing';

export async function scrape(baseUrl: string): Promise<Map<string, MetricFamily>> {
  const response = await request(`${baseUrl}/metrics`);
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`GET ${baseUrl}/metrics answered ${response.statusCode}: ${text}`);
  return parseExposition(text);
}
