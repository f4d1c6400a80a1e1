import * as protoLoader from '@grpc/proto-loader';
import { SignJWT, UnsecuredJWT } from 'jose';
import { peerAddress } from './canary-rpc';
import {
  bidiStream,
  clientStream,
  decisions,
  GrpcInstance,
  LOADER_OPTIONS,
  QUOTES_PROTO,
  quotesClient,
  QuotesClient,
  serverStream,
  startGrpcInstance,
  unary,
} from './canary-grpc.spec-helper';

const QUOTES = protoLoader.loadSync(QUOTES_PROTO, LOADER_OPTIONS);

const SECRET = 'a-test-secret-that-is-long-enough-123456';
const RULES = { header: { 'x-env': 'staging' } };
const CLAIM_RULES = { ...RULES, claim: { plan: 'beta' } };
const JWT = { secret: SECRET, algorithms: ['HS256' as const] };

function token(claims: Record<string, unknown>, secret = SECRET, expiresIn = '5m'): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}

describe('@Canary() on gRPC handlers (a microservice-only application)', () => {
  let instance: GrpcInstance | undefined;
  let client: QuotesClient | undefined;
  afterEach(async () => {
    client?.close();
    await instance?.close();
    instance = client = undefined;
  });

  async function start(options: Parameters<typeof startGrpcInstance>[0]['options'] = { rules: RULES }) {
    instance = await startGrpcInstance({ pricing: 'v1', options });
    client = quotesClient(instance.address, QUOTES);
    return { instance, client };
  }

  it('decides from the metadata: a header match is canary, @CanaryDecision() and CanaryContext carry it in the handler', async () => {
    const { instance, client } = await start();
    const canary = await unary(client, 'Get', '1', { 'x-env': 'staging' });
    expect(canary.reply).toMatchObject({
      pricing: 'v1',
      variant: 'canary',
      reason: 'header',
      servedLocally: 'no_forwarder',
      contextVariant: 'canary',
    });
    const stable = await unary(client, 'Get', '2', { 'x-env': 'production' });
    expect(stable.reply).toMatchObject({
      pricing: 'v1',
      variant: 'stable',
      reason: 'no_match',
      servedLocally: '',
      contextVariant: 'stable',
    });
    // Counted once per call, labelled by the gRPC method as the RPC metrics are.
    expect(decisions(instance.counted)).toEqual(['Quotes/Get canary header', 'Quotes/Get stable no_match']);
  });

  it('decides by a verified claim; a forged, expired or alg none token, a malformed cookie and oversized or binary metadata are no match, never an error', async () => {
    const { client } = await start({ rules: CLAIM_RULES, jwt: JWT });
    const valid = await unary(client, 'Get', '1', { authorization: `Bearer ${await token({ plan: 'beta' })}` });
    expect(valid.reply).toMatchObject({ variant: 'canary', reason: 'claim' });

    const refused = [
      { authorization: `Bearer ${await token({ plan: 'beta' }, 'another-secret-that-is-long-enough-9876')}` },
      { authorization: `Bearer ${await token({ plan: 'beta' }, SECRET, '-1m')}` },
      { authorization: `Bearer ${new UnsecuredJWT({ plan: 'beta' }).encode()}` },
      { authorization: `Bearer ${'a'.repeat(9000)}.${'b'.repeat(9000)}.c` },
      { authorization: 'Bearer not-a-token' },
    ];
    for (const metadata of refused) {
      const answer = await unary(client, 'Get', '1', metadata);
      expect(answer.error).toBeUndefined();
      expect(answer.reply).toMatchObject({ variant: 'stable', reason: 'token_invalid', pricing: 'v1' });
    }
    const malformed: Record<string, string | Buffer>[] = [
      { cookie: '%%%;; =;x-canary=%E0%A4%A' },
      { 'x-env-bin': Buffer.from('staging') },
      { 'x-env': 'staging'.repeat(2000) },
    ];
    for (const metadata of malformed) {
      const answer = await unary(client, 'Get', '1', metadata);
      expect(answer.error).toBeUndefined();
      expect(answer.reply).toMatchObject({ variant: 'stable', reason: 'no_match', pricing: 'v1' });
    }
  });

  it('strips x-canary sent by an untrusted peer from the metadata the handler sees', async () => {
    const { client } = await start({ rules: RULES });
    const answer = await unary(client, 'Get', '1', { 'x-canary': 'always', cookie: 'x-canary=always; session=abc' });
    expect(answer.reply).toMatchObject({ variant: 'stable', reason: 'no_match' });
    expect(answer.reply?.metadata).toEqual({ cookie: 'session=abc' });
  });

  it("lets a trusted proxy force the canary: the peer's address is read from grpc-js", async () => {
    const { client } = await start({ rules: RULES, trust: { force: { proxies: ['127.0.0.0/8'] } } });
    const forced = await unary(client, 'Get', '1', { 'x-canary': 'always' });
    expect(forced.reply).toMatchObject({ variant: 'canary', reason: 'forced_always', servedLocally: 'no_forwarder' });
    expect(forced.reply?.metadata).toEqual({ 'x-canary': 'always' });
    const never = await unary(client, 'Get', '2', { 'x-canary': 'never', 'x-env': 'staging' });
    expect(never.reply).toMatchObject({ variant: 'stable', reason: 'forced_never' });
  });

  it('decides once where a controller-wide @Canary() and one on the method both apply, with the method’s options', async () => {
    const { instance, client } = await start();
    const answer = await unary(client, 'Decide', '1', { 'x-env': 'staging' });
    expect(answer.reply).toMatchObject({ variant: 'canary', reason: 'header', servedLocally: 'not_forwarded', contextVariant: 'canary' });
    expect(decisions(instance.counted)).toEqual(['Quotes/Decide canary header']);
  });

  it('serves a canary decision on a canary instance itself (on_canary)', async () => {
    const { client } = await start({ rules: RULES, track: 'canary' });
    const answer = await unary(client, 'Get', '1', { 'x-env': 'staging' });
    expect(answer.reply).toMatchObject({ variant: 'canary', servedLocally: 'on_canary' });
  });

  it('decides streaming calls too; one whose client streams is served locally with reason streaming_call', async () => {
    const { instance, client } = await start();
    // Only a forwarder knows a server-streaming method from its definition (see the forwarder's spec).
    const watched = await serverStream(client, '7', { 'x-env': 'staging' });
    expect(watched.map((q) => [q.id, q.variant, q.servedLocally, q.contextVariant])).toEqual([
      ['7', 'canary', 'no_forwarder', 'canary'],
      ['7+1', 'canary', 'no_forwarder', 'canary'],
    ]);
    const collected = await clientStream(client, ['1', '2', '3'], { 'x-env': 'staging' });
    expect(collected).toMatchObject({
      id: '1,2,3',
      variant: 'canary',
      reason: 'header',
      servedLocally: 'streaming_call',
      contextVariant: 'canary',
    });
    const stable = await clientStream(client, ['4'], {});
    expect(stable).toMatchObject({ id: '4', variant: 'stable', servedLocally: '' });
    // @GrpcStreamCall: Nest hands the handler the call itself; the metadata is read from it.
    const relayed = await bidiStream(client, ['5', '6'], { 'x-env': 'staging' });
    expect(relayed.map((q) => [q.id, q.variant, q.servedLocally, q.contextVariant, q.metadata['x-env']])).toEqual([
      ['5', 'canary', 'streaming_call', 'canary', 'staging'],
      ['6', 'canary', 'streaming_call', 'canary', 'staging'],
    ]);
    expect(decisions(instance.counted)).toEqual([
      'Quotes/Watch canary header',
      'Quotes/Collect canary header',
      'Quotes/Collect stable no_match',
      'Quotes/Relay canary header',
    ]);
  });
});

describe('peerAddress', () => {
  it.each([
    ['127.0.0.1:50211', '127.0.0.1'],
    ['::1:50211', '::1'],
    ['::ffff:10.0.0.7:443', '::ffff:10.0.0.7'],
    ['ipv4:10.1.2.3:5000', '10.1.2.3'],
    ['ipv6:[fd00::1]:5000', 'fd00::1'],
    ['[fd00::1]:5000', 'fd00::1'],
    ['10.1.2.3', '10.1.2.3'],
    ['unix:/run/app.sock', undefined],
    ['unknown', undefined],
    [undefined, undefined],
  ])('reads %s as %s', (peer, address) => {
    expect(peerAddress(peer)).toBe(address);
  });
});
