import { Logger, type LoggerService } from '@nestjs/common';
import { SampleEvent } from '../sample.constants';
import { TypeOrmLogger } from './typeorm.logger';

describe('TypeOrmLogger', () => {
  const calls: Array<[level: string, message: unknown, context: unknown]> = [];
  const capture: LoggerService = {
    log: (message, context) => void calls.push(['log', message, context]),
    warn: (message, context) => void calls.push(['warn', message, context]),
    error: (message, context) => void calls.push(['error', message, context]),
    debug: (message, context) => void calls.push(['debug', message, context]),
  };

  beforeEach(() => {
    calls.length = 0;
    Logger.overrideLogger(capture);
  });

  afterAll(() => {
    Logger.overrideLogger(false);
  });

  it('writes a warning of TypeORM as one event through Nest’s logger', () => {
    new TypeOrmLogger(['warn']).log('warn', 'Postgres pool raised an error. Error: Connection terminated');

    expect(calls).toEqual([
      [
        'warn',
        {
          event: SampleEvent.DATABASE_TYPEORM_MESSAGE,
          type: 'warn',
          message: 'Postgres pool raised an error. Error: Connection terminated',
        },
        'TypeORM',
      ],
    ]);
  });

  it('writes a slow query in one line, without colours and without its parameters', () => {
    new TypeOrmLogger(['warn']).logQuerySlow(1200, 'SELECT * FROM orders WHERE item = $1', ['secret item']);

    expect(calls).toEqual([
      [
        'warn',
        {
          event: SampleEvent.DATABASE_TYPEORM_MESSAGE,
          type: 'query-slow',
          message: 'query is slow: SELECT * FROM orders WHERE item = $1 execution time: 1200',
        },
        'TypeORM',
      ],
    ]);
  });

  it('leaves out what its options do not ask for', () => {
    const logger = new TypeOrmLogger(['warn']);
    logger.logQuery('SELECT 1');
    logger.logQueryError('boom', 'SELECT 1');
    logger.log('info', 'connected');

    expect(calls).toEqual([]);
  });
});
