import { Inject, Injectable, NotFoundException, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { LifecycleService } from '@nest-rollout/lifecycle';
import { Repository } from 'typeorm';
import { OrdersCache } from '../cache/cache.module';
import { OrderEntity } from '../database/order.entity';
import { sampleConfig, type SampleConfig } from '../sample.config';

export interface Order {
  readonly id: string;
  readonly item: string;
  readonly quantity: number;
  readonly createdAt: string;
}

/** How many orders `GET /orders` returns at most. */
const LIST_LIMIT = 100;

/** Orders in the database (SQLite or PostgreSQL), single orders cached in Redis when there is one. */
@Injectable()
export class OrdersService implements OnModuleInit {
  constructor(
    private readonly lifecycle: LifecycleService,
    @Inject(sampleConfig.KEY) private readonly config: SampleConfig,
    @InjectRepository(OrderEntity) private readonly orders: Repository<OrderEntity>,
    private readonly cache: OrdersCache,
  ) {}

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
    return rows.map(toOrder);
  }

  async get(id: string): Promise<Order> {
    const numericId = /^\d{1,9}$/.test(id) ? Number(id) : undefined;
    if (numericId === undefined) throw new NotFoundException(`order ${id} not found`);
    const key = `orders:${numericId}`;
    const cached = await this.cache.get<Order>(key);
    if (cached) return cached;
    const row = await this.orders.findOneBy({ id: numericId });
    if (!row) throw new NotFoundException(`order ${id} not found`);
    const order = toOrder(row);
    this.cache.set(key, order);
    return order;
  }

  async create(item: string, quantity: number): Promise<Order> {
    const row = await this.orders.save(this.orders.create({ item, quantity, createdAt: new Date().toISOString() }));
    return toOrder(row);
  }
}

function toOrder(row: OrderEntity): Order {
  return { id: String(row.id), item: row.item, quantity: row.quantity, createdAt: row.createdAt };
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
