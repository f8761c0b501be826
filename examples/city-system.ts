// A worked example: a city's telemedicine system joins the regional hub with the SDK.
//
//   npm run broker:up                      # a local ActiveMQ on amqp://127.0.0.1:5673 (and start the hub: npm start)
//   node -r ./test/support/ts-register.js examples/city-system.ts --url amqp://127.0.0.1:5673 --system city-a
//
// Message security (the hub's default): give --hub http://127.0.0.1:8080 and the example keeps its key pairs in
// ./city-keys/<system>.keys.json (created once; --keys DIR for another folder, never the hub's data directory: they
// are the city's private keys, not the hub's), registers the system with its public keys (POST /systems) and signs
// and encrypts with them (the SDK's JOSE codec, the hub's keys from /.well-known/jwks.json). Without --hub it
// sends plain JSON: the hub must run with RTS_MESSAGE_SECURITY=off and the system be registered by an operator.
// Registering a system is an operator's act (access control is on by default): the example sends the operator's
// token from --token or RTS_TOKEN (node dist/bootstrap/token.js --role operator); with neither, it asks a local
// hub's development login for one, as `rts dlq` does.
//
// Options: --experts N (generated experts to join with, default 1200 = 3 batches), --listen S (seconds to print
// downlink messages before leaving, default 15; 0 = until Ctrl-C), --name "City A", --token JWT (an operator's),
// --keys DIR (where the system's key pairs are kept, default ./city-keys), --insecure-http (a plain http:// --hub on
// another machine, for a network you control end to end: the SDK refuses one otherwise, since the hub's keys read
// from it are what the system trusts and the operator's token goes with the registration).
// A production broker (README, "Broker accounts and TLS"): --url amqps://city-a:PASSWORD@mq.example.org:5671 and,
// for a private CA, --ca ca.pem (the broker's certificate is verified either way).
// The hub accepts a system's messages once an operator registered it (POST /systems on the hub's HTTP API);
// without a hub running, the messages wait on the broker's uplink queue.
//
// What it does: connects (reconnecting by itself), joins with N experts in batches of 500, registers one more
// expert, changes and retires it, then subscribes to its downlink queue and prints what the hub sends: the
// directory snapshot, other systems' experts, systems joining.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RtsClient, exportPartyKeys, generatePartyKeys, importPartyKeys, joseCodecFor, registerSystem, type ExpertProfile, type MessageCodec, type UploadedExpert } from '../src/sdk';

/** This system's keys (kept in `keysDir`, created once), registered with the hub; the JOSE codec over them. */
async function secureCodec(hubUrl: string, systemId: string, name: string, token: string | undefined, keysDir: string, insecureHubUrl: boolean): Promise<MessageCodec> {
  const file = join(keysDir, `${systemId}.keys.json`);
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  // Earlier versions kept the keys in ./data, the hub's default data directory: take them along, so the system
  // keeps the keys the hub knows it by.
  const earlier = join('data', `${systemId}.keys.json`);
  if (!existsSync(file) && existsSync(earlier)) {
    renameSync(earlier, file);
    console.log(`moved this system's keys from ${earlier} to ${file}`);
  }
  if (!existsSync(file)) writeFileSync(file, JSON.stringify(await exportPartyKeys(await generatePartyKeys(systemId))), { mode: 0o600 });
  const keys = await importPartyKeys(JSON.parse(readFileSync(file, 'utf8')));
  const bearer = token ?? (await devLoginAsOperator(hubUrl));
  try {
    await registerSystem(hubUrl, { id: systemId, name, area: name }, keys, { authorization: `Bearer ${bearer}` }, { insecureHubUrl });
  } catch (error) {
    const status = /HTTP (\d{3})/.exec(error instanceof Error ? error.message : '')?.[1];
    if (status === '401' || status === '403') throw new Error(`the hub refused to register ${systemId} (HTTP ${status}): registering a system needs an operator's token; set RTS_TOKEN or --token (node dist/bootstrap/token.js --role operator, run with the hub's RTS_DATA_DIR)`);
    throw error;
  }
  return joseCodecFor({ keys, hubUrl, insecureHubUrl });
}

/** A local hub's development login, as the operator (a hub anywhere else has it off: then a token is needed). */
async function devLoginAsOperator(hubUrl: string): Promise<string> {
  const res = await fetch(new URL('/auth/dev-login', hubUrl), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ role: 'operator' }) });
  const body = (await res.json().catch(() => ({}))) as { token?: unknown };
  if (res.status !== 200 || typeof body.token !== 'string') {
    throw new Error(`no operator token: set RTS_TOKEN or --token (node dist/bootstrap/token.js --role operator); the hub's development login answered HTTP ${res.status} (it is on only for a local hub)`);
  }
  return body.token;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const SPECIALTIES = ['cardiology', 'nephrology', 'endocrinology', 'neurology', 'oncology', 'pediatrics'];
const profileOf = (i: number, city: string): ExpertProfile => ({
  name: `Expert ${i}`,
  title: i % 3 === 0 ? 'Chief physician' : 'Attending physician',
  specialties: [SPECIALTIES[i % SPECIALTIES.length]!],
  location: { city, hospital: `${city} People's Hospital No. ${(i % 4) + 1}` },
  languages: i % 2 === 0 ? ['zh'] : ['zh', 'en'],
  availability: 'available',
});

async function main(): Promise<void> {
  const url = arg('url', 'amqp://127.0.0.1:5673');
  const ca = arg('ca', '');
  const systemId = arg('system', 'city-a');
  const count = Number(arg('experts', '1200'));
  const listenSeconds = Number(arg('listen', '15'));
  const name = arg('name', systemId);
  const city = name;

  const hub = arg('hub', '');
  const token = arg('token', process.env.RTS_TOKEN ?? '') || undefined;
  const keysDir = arg('keys', 'city-keys');
  const codec = hub ? await secureCodec(hub, systemId, name, token, keysDir, process.argv.includes('--insecure-http')) : undefined;
  const client = await RtsClient.connect({
    systemId,
    url,
    ...(codec ? { codec } : {}),
    ...(ca ? { tls: { ca: readFileSync(ca, 'utf8') } } : {}),
    logger: { warn: (fields, message) => console.warn(`[sdk] ${message}`, fields), error: (fields, message) => console.error(`[sdk] ${message}`, fields) },
  });
  client.on('disconnected', (e) => console.log(`- disconnected${e.reconnecting ? ', reconnecting' : ''}`));
  client.on('connected', (e) => console.log(`- connected to ${e.endpoint.host}:${e.endpoint.port}`));
  console.log(`${systemId}: connected to ${url.replace(/\/\/[^@/]*@/, '//')}; uplink ${client.uplinkQueue}, downlink ${client.downlinkQueue}`);

  // Downlink first, so nothing the hub sends in answer to the join is missed in the output.
  await client.subscribe({
    onSnapshot: (m) => console.log(`< snapshot ${m.payload.batchIndex + 1}/${m.payload.batchCount}: ${m.payload.experts.length} experts`),
    onExpertUpserted: (m) => console.log(`< expert ${m.payload.expertId} (rev ${m.payload.revision}): ${m.payload.profile.name}, ${m.payload.profile.specialties.join('/')}, ${m.payload.profile.location.city}`),
    onExpertRetired: (m) => console.log(`< expert ${m.payload.expertId} retired (rev ${m.payload.revision})`),
    onSystemJoined: (m) => console.log(m.payload.systemId === systemId ? `< joined the hub as ${m.payload.name}` : `< system ${m.payload.systemId} (${m.payload.area}) joined`),
    onUnknown: (m) => console.log(`< a ${m.type ?? 'message'} this SDK does not know (${m.detail})`),
  });

  const experts: UploadedExpert[] = Array.from({ length: count }, (_, i) => ({ localExpertId: `${systemId}-e${i}`, ...profileOf(i, city) }));
  const t0 = Date.now();
  // messageId makes the envelope ids deterministic: running the example again repeats the same join, harmlessly.
  const join = await client.joinWithExperts(experts, { name, messageId: `${systemId}/initial-join` });
  console.log(`> join: request + ${join.batches} batches (${join.experts} experts) accepted by the broker in ${Date.now() - t0} ms; correlation ${join.correlationId}`);

  // Stable message ids here too: a retired expert id cannot be registered again, so a second run of the example
  // must send the same three messages (which the hub recognises as repeats), not three new ones (refused and
  // dead-lettered as expert_retired).
  const extra = `${systemId}-new`;
  console.log(`> registered ${extra}: ${await client.registerExpert(extra, profileOf(count, city), { messageId: `${systemId}/${extra}/registered` })}`);
  console.log(`> changed ${extra}: ${await client.changeExpert(extra, { ...profileOf(count, city), availability: 'limited' }, { messageId: `${systemId}/${extra}/changed` })}`);
  console.log(`> retired ${extra}: ${await client.retireExpert(extra, { messageId: `${systemId}/${extra}/retired` })}`);

  const stop = async () => {
    await client.close();
    console.log(`${systemId}: closed`);
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  if (listenSeconds > 0) {
    console.log(`listening to ${client.downlinkQueue} for ${listenSeconds} s (Ctrl-C to stop)`);
    setTimeout(() => void stop(), listenSeconds * 1000);
  } else {
    console.log(`listening to ${client.downlinkQueue} until Ctrl-C`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
