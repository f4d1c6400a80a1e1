import { BadRequestException, Controller, Get, Query } from '@nestjs/common';

/** Answers after `ms` milliseconds: a request that is in flight when a shutdown begins. */
@Controller('demo')
export class DemoController {
  @Get('slow')
  async slow(@Query('ms') ms = '1000'): Promise<{ sleptMs: number }> {
    const delay = Number(ms);
    if (!Number.isInteger(delay) || delay < 0 || delay > 60_000) {
      throw new BadRequestException('ms must be a whole number from 0 to 60000');
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    return { sleptMs: delay };
  }
}
