import { SecretKeys } from './secret-keys';

describe('SecretKeys', () => {
  const secrets = new SecretKeys(['db.password', 'upstreams.*.token', 'apiKey']);

  it('covers a secret key and everything under it, with * for any one key or index', () => {
    expect(secrets.covers('db.password')).toBe(true);
    expect(secrets.covers('apiKey.primary')).toBe(true);
    expect(secrets.covers('upstreams.search.token')).toBe(true);
    expect(secrets.covers('upstreams.0.token')).toBe(true);
    expect(secrets.covers('db')).toBe(false);
    expect(secrets.covers('db.host')).toBe(false);
    expect(secrets.covers('upstreams.search.url')).toBe(false);
  });

  it('masks the secret parts of a value, found at a path, in a copy', () => {
    const db = { host: 'db.internal', password: 'hunter2-long' };
    expect(secrets.mask('db', db)).toEqual({ host: 'db.internal', password: '***' });
    expect(db.password).toBe('hunter2-long');
    expect(secrets.mask('db.password', 'hunter2-long')).toBe('***');
    expect(secrets.mask('upstreams', [{ url: 'http://a', token: 't0ken' }])).toEqual([{ url: 'http://a', token: '***' }]);
    expect(secrets.mask('limits.rps', 100)).toBe(100);
  });

  it('redacts secret values quoted in a message written by someone else', () => {
    const document = { db: { password: 'hunter2-long' }, upstreams: { a: { token: 'tok-123456' } }, name: 'orders' };
    expect(secrets.redact('expected a number, got "hunter2-long" near tok-123456 in orders', [document])).toBe(
      'expected a number, got "***" near *** in orders',
    );
  });

  it('leaves very short secret values alone, which would mask ordinary words', () => {
    expect(secrets.redact('the db is down', [{ db: { password: 'db' } }])).toBe('the db is down');
  });

  it('does nothing without secret keys', () => {
    const none = new SecretKeys([]);
    const value = { password: 'x' };
    expect(none.mask('', value)).toBe(value);
    expect(none.covers('password')).toBe(false);
  });
});
