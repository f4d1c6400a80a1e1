import { HealthFailureKind } from './health.constants';
import { HealthCheckError } from './health.errors';
import { classifyFailure, redactSecrets, urlSecrets } from './health.redaction';

describe('redactSecrets', () => {
  it.each([
    [
      'credentials in a connection URL',
      'cannot connect to postgres://orders:s3cr3t-pw@db.internal:5432/orders',
      'postgres://***@db.internal:5432/orders',
    ],
    ['a user name alone in a URL', 'redis://default@cache:6379', 'redis://***@cache:6379'],
    ['a query string', 'GET https://api.example.test/health?token=abc123&x=1 failed', 'https://api.example.test/health?***'],
    ['password= pairs', 'host=db user=orders password=s3cr3t-pw dbname=orders', 'password=***'],
    ['JSON secrets', '{"user":"orders","password":"s3cr3t-pw"}', '"password":***'],
    ['api keys', 'api_key: AKIA1234567890', 'api_key: ***'],
    ['bearer tokens', 'Authorization failed for Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig', 'Bearer ***'],
  ])('masks %s', (_what, input, expected) => {
    const out = redactSecrets(input);
    expect(out).toContain(expected);
    expect(out).not.toMatch(/s3cr3t-pw|abc123|AKIA1234567890|eyJhbGciOiJIUzI1NiJ9/);
  });

  it('masks every given secret, also URL-encoded, wherever it appears', () => {
    const out = redactSecrets('auth as orders with p@ss/word! or p%40ss%2Fword! failed', ['p@ss/word!']);
    expect(out).toBe('auth as orders with *** or *** failed');
  });

  it('keeps an ordinary message as it is', () => {
    expect(redactSecrets('password authentication failed for user "orders"')).toBe('password authentication failed for user "orders"');
  });

  it('bounds the length of a message', () => {
    expect(redactSecrets('x'.repeat(1000))).toHaveLength(300);
  });
});

describe('urlSecrets', () => {
  it('returns the password of a connection URL, raw and decoded', () => {
    expect(urlSecrets('postgres://orders:p%40ss@db:5432/orders')).toEqual(['p%40ss', 'p@ss']);
  });

  it('returns nothing for a URL without a password, or no URL', () => {
    expect(urlSecrets('redis://cache:6379')).toEqual([]);
    expect(urlSecrets(undefined)).toEqual([]);
    expect(urlSecrets('not a url')).toEqual([]);
  });
});

describe('classifyFailure', () => {
  const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

  it.each([
    [withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'), HealthFailureKind.CONNECTION_REFUSED],
    [withCode('read ECONNRESET', 'ECONNRESET'), HealthFailureKind.CONNECTION_RESET],
    [withCode('getaddrinfo ENOTFOUND db', 'ENOTFOUND'), HealthFailureKind.HOST_NOT_FOUND],
    [withCode('password authentication failed for user "orders"', '28P01'), HealthFailureKind.AUTH_FAILED],
    [withCode('the database system is starting up', '57P03'), HealthFailureKind.UNAVAILABLE],
    [new Error('Connection terminated unexpectedly'), HealthFailureKind.CONNECTION_RESET],
    [new Error("Stream isn't writeable and enableOfflineQueue options is false"), HealthFailureKind.NOT_CONNECTED],
    [new Error('timeout of 1000ms exceeded'), HealthFailureKind.TIMEOUT],
    [new Error('WRONGPASS invalid username-password pair'), HealthFailureKind.AUTH_FAILED],
    [new Error('serving status: NOT_SERVING'), HealthFailureKind.UNHEALTHY],
    [new Error('14 UNAVAILABLE: No connection established'), HealthFailureKind.UNAVAILABLE],
    [new Error('something else'), HealthFailureKind.ERROR],
    ['a string', HealthFailureKind.ERROR],
  ])('classifies %p as %s', (error, kind) => {
    expect(classifyFailure(error).kind).toBe(kind);
  });

  it('takes the kind a HealthCheckError names', () => {
    expect(classifyFailure(new HealthCheckError(HealthFailureKind.NOT_CONNECTED, 'client is reconnecting'))).toEqual({
      kind: HealthFailureKind.NOT_CONNECTED,
      message: 'client is reconnecting',
    });
  });

  it('reads the code of fetch() failures from their cause', () => {
    const error = new TypeError('fetch failed', { cause: withCode('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED') });
    expect(classifyFailure(error)).toEqual({
      kind: HealthFailureKind.CONNECTION_REFUSED,
      message: 'fetch failed: connect ECONNREFUSED 127.0.0.1:1',
    });
  });

  it('reads the code of a dual-stack connect failure from its members', () => {
    const error = new AggregateError([withCode('connect ECONNREFUSED ::1:6379', 'ECONNREFUSED')], '');
    expect(classifyFailure(error).kind).toBe(HealthFailureKind.CONNECTION_REFUSED);
  });

  it('redacts the message it returns', () => {
    const { message } = classifyFailure(new Error('bad url postgres://u:hunter22@h/db'), ['hunter22']);
    expect(message).toBe('bad url postgres://***@h/db');
  });
});
