// The production activemq.xml of scripts/cluster/README.md and the one cluster.sh generates for the HA tests give
// the network connector the same settings: what the tests show (ha-mesh-hops, ha-hub) is what operators copy.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const repoRoot = resolve(__dirname, '..', '..');

/**
 * The attributes of the one whole <networkConnector/> in a text (not an abbreviated one, `... .../>`), without those
 * that differ by deployment.
 */
const connectorSettings = (text: string): Record<string, string> => {
  const tags = [...text.matchAll(/<networkConnector\s([^>]*?)\/>/g)].filter((m) => !m[1]!.includes('...'));
  expect(tags).toHaveLength(1);
  const attributes = Object.fromEntries([...tags[0]![1]!.matchAll(/([A-Za-z]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  for (const local of ['name', 'uri', 'userName', 'password']) delete attributes[local];
  return attributes;
};

describe('the network connector of the brokers', () => {
  const readme = () => connectorSettings(readFileSync(join(repoRoot, 'scripts', 'cluster', 'README.md'), 'utf8'));
  const generated = () => connectorSettings(readFileSync(join(repoRoot, 'scripts', 'cluster', 'cluster.sh'), 'utf8').replace(/\$bridge_login/g, ''));

  it('is configured alike in the production example and in the cluster the tests run', () => {
    expect(readme()).toEqual(generated());
  });

  it('lets a message follow its consumer any number of hops, with demand one hop in the mesh (AMQ-4607)', () => {
    expect(generated()).toMatchObject({ consumerTTL: '1', messageTTL: '-1', bridgeTempDestinations: 'false' });
    // networkTTL would set both TTLs at once (networkTTL 3 stranded messages after three hops).
    expect(generated()).not.toHaveProperty('networkTTL');
  });

  it("sends the uplink queue's broker dead letters to DLQ.rts.uplink with the replay settings kept, in both (the hub reads its cursor duplicates there)", () => {
    const uplinkEntry = (text: string): string => {
      const entries = [...text.matchAll(/<policyEntry queue="rts\.uplink"[^>]*>[\s\S]*?<\/policyEntry>/g)].map((m) => m[0].replace(/\s+/g, ' '));
      expect(entries).toHaveLength(1);
      return entries[0]!;
    };
    const readmeEntry = uplinkEntry(readFileSync(join(repoRoot, 'scripts', 'cluster', 'README.md'), 'utf8'));
    expect(readmeEntry).toBe(uplinkEntry(readFileSync(join(repoRoot, 'scripts', 'cluster', 'cluster.sh'), 'utf8')));
    expect(readmeEntry).toContain('<individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>');
    expect(readmeEntry).toContain('enableAudit="false"');
    expect(readmeEntry).toContain('<conditionalNetworkBridgeFilterFactory replayWhenNoConsumers="true" replayDelay="500"/>');
  });
});
