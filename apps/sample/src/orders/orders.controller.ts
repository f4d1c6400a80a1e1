import { BadRequestException, Body, Controller, Get, HttpCode, Param, Post, UseInterceptors } from '@nestjs/common';
import { Canary, CanaryDecision } from '@nest-rollout/canary';
import { DatabaseAvailabilityInterceptor } from '../database/database-availability.interceptor';
import { Degradable, DegradeInterceptor } from '../degrade/degrade.interceptor';
import { Order, OrdersService, Quote } from './orders.service';

@Controller('orders')
// A switched-off route answers before the database is asked whether it is there.
@UseInterceptors(DegradeInterceptor, DatabaseAvailabilityInterceptor)
export class OrdersController {
  constructor(private readonly orders: OrdersService) {}

  @Get()
  @Degradable('orders_list')
  list(): Promise<Order[]> {
    return this.orders.list();
  }

  @Get(':id')
  get(@Param('id') id: string): Promise<Order> {
    return this.orders.get(id);
  }

  /**
   * Decided by the canary rules (the `canary` section of the dynamic configuration). On a stable
   * instance a canary decision goes to the canary (CANARY_URL or the registry's canary instances)
   * when there is one, else it is served here; the price is the serving instance's own formula, and
   * the body shows the decision.
   */
  @Get(':id/quote')
  @Canary()
  quote(@Param('id') id: string, @CanaryDecision() decision: CanaryDecision): Promise<Quote> {
    return this.orders.quote(id, decision);
  }

  @Post()
  @HttpCode(201)
  create(@Body() body: unknown): Promise<Order> {
    const { item, quantity } = (body ?? {}) as { item?: unknown; quantity?: unknown };
    if (typeof item !== 'string' || item.trim() === '' || item.length > 200) {
      throw new BadRequestException('item must be a non-empty string of at most 200 characters');
    }
    const qty = quantity === undefined ? 1 : quantity;
    if (!Number.isInteger(qty) || (qty as number) < 1 || (qty as number) > 10_000) {
      throw new BadRequestException('quantity must be a whole number from 1 to 10000');
    }
    return this.orders.create(item, qty as number);
  }
}
