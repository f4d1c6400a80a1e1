import { Inject, Injectable, NotFoundException, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { CanaryService } from '@nest-rollout/canary';
import type { CanaryDecision, CanaryTrack } from '@nest-rollout/canary';
import { LifecycleService } from '@nest-rollout/lifecycle';
import type { DataSource, Repository } from 'typeorm';
import { OrdersCache } from '../cache/cache.module';
import { ORDERS_SCHEMA, OrdersSchema, type OrderRow } from '../database/orders-schema';
import { sampleConfig, type SampleConfig } from '../sample.config';
import { priceCents, pricingOf, type PricingVersion } from './pricing';

/**
 * An order as the API shows it, and as the cache keeps it. The same in every release of the schema
 * change: instances of two releases share the cache (and their clients), so it is part of the
 * contract the change must keep.
 */
export interface Order {
  readonly id: string;
  readonly item: string;
  readonly quantity: number;
  /** ISO 8601, UTC. */
  readonly createdAt: string;
}

/**
 * The price of an order, with the canary decision of the request, so that a caller (and a test)
 * sees which version priced it and why.
 */
export interface Quote {
  readonly id: string;
  /** The formula that priced it: this instance's, `v2` on a canary instance. */
  readonly pricing: PricingVersion;
  /** In cents. */
  readonly amountCents: number;
  /** This instance's track. */
  readonly track: CanaryTrack;
  readonly variant: CanaryDecision['variant'];
  readonly reason: CanaryDecision['reason'];
  /** Why a canary decision was served here (`no_forwarder` on a stable instance, `on_canary`). */
  readonly servedLocally?: string;
}

/** How many orders `GET /orders` returns at most. */
const LIST_LIMIT = 100;

/**
 * Orders in the database (SQLite or PostgreSQL), single orders cached in Redis when there is one;
 * written and read as this release of the orders schema change does (ORDERS_SCHEMA_PHASE).
 */
@Injectable()
export class OrdersService implements OnModuleInit {
  private readonly orders: Repository<OrderRow>;

  constructor(
    private readonly lifecycle: LifecycleService,
    @Inject(sampleConfig.KEY) private readonly config: SampleConfig,
    @InjectDataSource() dataSource: DataSource,
    @Inject(ORDERS_SCHEMA) private readonly schema: OrdersSchema,
    private readonly cache: OrdersCache,
    private readonly canary: CanaryService,
  ) {
    this.orders = dataSource.getRepository(schema.entity);
  }

  onModuleInit(): void {
    // Stands for cache priming: the instance must not turn ready before it is done (the database
    // connection and the orders table are DatabaseConnector's warm-up task).
    this.lifecycle.registerWarmupTask({
      name: 'orders.prime',
      run: (signal) => sleep(this.config.warmupDelayMs, signal),
    });
  }

  async list(): Promise<Order[]> {
    const rows = await this.orders.find({ order: { id: 'ASC' }, take: LIST_LIMIT });
    return rows.map((row) => this.toOrder(row));
  }

  async get(id: string): Promise<Order> {
    const numericId = /^\d{1,9}$/.test(id) ? Number(id) : undefined;
    if (numericId === undefined) throw new NotFoundException(`order ${id} not found`);
    const key = `orders:${numericId}`;
    const cached = await this.cache.get<Order>(key);
    if (cached) return cached;
    const row = await this.orders.findOneBy({ id: numericId });
    if (!row) throw new NotFoundException(`order ${id} not found`);
    const order = this.toOrder(row);
    this.cache.set(key, order);
    return order;
  }

  /** Prices the order with this instance's formula; an unknown order is a 404, as for `get`. */
  async quote(id: string, decision: CanaryDecision): Promise<Quote> {
    const order = await this.get(id);
    const track = this.canary.track;
    const pricing = pricingOf(track);
    return {
      id: order.id,
      pricing,
      amountCents: priceCents(pricing, order.quantity),
      track,
      variant: decision.variant,
      reason: decision.reason,
      servedLocally: decision.servedLocally,
    };
  }

  async create(item: string, quantity: number): Promise<Order> {
    const row = await this.orders.save(this.orders.create(this.schema.newRow(item, quantity, new Date())));
    return this.toOrder(row);
  }

  private toOrder(row: OrderRow): Order {
    return { id: String(row.id), item: row.item, quantity: row.quantity, createdAt: this.schema.createdAtOf(row) };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
