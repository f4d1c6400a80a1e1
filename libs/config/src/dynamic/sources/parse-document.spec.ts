import { parseConfigDocument, parseValue } from './parse-document';

describe('a configuration document', () => {
  it('parses YAML and JSON mappings', () => {
    expect(parseConfigDocument('degrade:\n  orders_list: true\n', 'yaml')).toEqual({ ok: true, value: { degrade: { orders_list: true } } });
    expect(parseConfigDocument('{"degrade":{"orders_list":true}}', 'json')).toEqual({
      ok: true,
      value: { degrade: { orders_list: true } },
    });
  });

  it('reads empty text, comments only or null as an empty document', () => {
    expect(parseConfigDocument('', 'yaml')).toEqual({ ok: true, value: {} });
    expect(parseConfigDocument('  \n', 'json')).toEqual({ ok: true, value: {} });
    expect(parseConfigDocument('# nothing yet\n', 'yaml')).toEqual({ ok: true, value: {} });
    expect(parseConfigDocument('~\n', 'yaml')).toEqual({ ok: true, value: {} });
    expect(parseConfigDocument('null', 'json')).toEqual({ ok: true, value: {} });
  });

  it('skips a byte order mark, in JSON too', () => {
    expect(parseConfigDocument('\ufeff{"a":1}', 'json')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseConfigDocument('\ufeffa: 1\n', 'yaml')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseConfigDocument('\ufeff\n', 'json')).toEqual({ ok: true, value: {} });
  });

  it('rejects a list or a scalar at the top level, saying what it found', () => {
    expect(parseConfigDocument('- a\n- b\n', 'yaml')).toEqual({
      ok: false,
      problem: 'must hold a mapping of settings (key: value), not a list',
    });
    expect(parseConfigDocument('42', 'json')).toEqual({ ok: false, problem: 'must hold a mapping of settings (key: value), not a number' });
    expect(parseConfigDocument('just some text', 'yaml')).toEqual({
      ok: false,
      problem: 'must hold a mapping of settings (key: value), not a string',
    });
  });

  it('rejects duplicate keys and several documents in one text', () => {
    expect(parseConfigDocument('a: 1\na: 2\n', 'yaml').ok).toBe(false);
    expect(parseConfigDocument('a: 1\n---\nb: 2\n', 'yaml').ok).toBe(false);
  });

  it('locates a YAML error by line and column without quoting the text', () => {
    const result = parseConfigDocument('rateLimit: 50\ndatabase:\n  password: "hunter2\n', 'yaml');
    expect(result).toEqual({ ok: false, problem: expect.stringMatching(/^is not valid YAML \(.+ \([A-Z_]+\) at line \d+, column \d+\)$/) });
    expect(JSON.stringify(result)).not.toContain('hunter2');
  });

  it('locates a JSON error without quoting the text', () => {
    const result = parseConfigDocument('{\n  "token": "abc123",\n  "x": }', 'json');
    expect(result).toEqual({ ok: false, problem: expect.stringMatching(/^is not valid JSON \(.*line 3, column \d+\)$/) });
    expect(JSON.stringify(result)).not.toContain('abc123');
  });

  it('names an unresolved alias without its name', () => {
    const result = parseConfigDocument('a: *secret_anchor\n', 'yaml');
    expect(result.ok).toBe(false);
    expect(JSON.stringify(result)).not.toContain('secret_anchor');
  });
});

describe('a single value', () => {
  it('may be a scalar, a list or nothing', () => {
    expect(parseValue('true', 'yaml')).toEqual({ ok: true, value: true });
    expect(parseValue('[a, b]', 'yaml')).toEqual({ ok: true, value: ['a', 'b'] });
    expect(parseValue('"text"', 'json')).toEqual({ ok: true, value: 'text' });
    expect(parseValue('# a comment\n', 'yaml')).toEqual({ ok: true, value: null });
  });

  it('is rejected as JSON when it is not', () => {
    expect(parseValue('text', 'json')).toEqual({ ok: false, problem: expect.stringMatching(/^is not valid JSON/) });
  });
});
