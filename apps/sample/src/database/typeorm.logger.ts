import { Logger } from '@nestjs/common';
import { AbstractLogger, type LogLevel, type LogMessage } from 'typeorm';
import { SampleEvent } from '../sample.constants';

/**
 * TypeORM's own messages (warnings, slow queries, migration steps) as JSON lines through Nest's
 * logger, with the trace ids every other line carries, instead of TypeORM's coloured console
 * output. Query parameters are left out: they are the users' data.
 */
export class TypeOrmLogger extends AbstractLogger {
  private readonly logger = new Logger('TypeORM');

  protected override writeLog(level: LogLevel, logMessage: LogMessage | string | number | (LogMessage | string | number)[]): void {
    const messages = this.prepareLogMessages(logMessage, { highlightSql: false, appendParameterAsComment: false, addColonToPrefix: true });
    const fields = {
      event: SampleEvent.DATABASE_TYPEORM_MESSAGE,
      type: messages[0]?.type ?? level,
      message: messages.map((m) => (m.prefix ? `${m.prefix} ${String(m.message)}` : String(m.message))).join(' '),
    };
    if (level === 'warn' || level === 'error') this.logger.warn(fields);
    else if (level === 'query') this.logger.debug(fields);
    else this.logger.log(fields);
  }
}
