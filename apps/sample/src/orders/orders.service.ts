import { Inject, Injectable, NotFoundException, OnModuleInit } from '@nestjs/common';
import { LifecycleService } from '@nest-rollout/lifecycle';
import type { SampleConfig } from '../sample.config';
import { SAMPLE_CONFIG } from '../sample.constants';

export interface Order {
  readonly id: string;
  readonly item: string;
  readonly quantity: number;
  readonly createdAt: string;
}

/** In-memory orders; a later version keeps them in a database. */
@Injectable()
export class OrdersService implements OnModuleInit {
  private readonly orders = new Map<string, Order>();
  private nextId = 1;

  constructor(
    private readonly lifecycle: LifecycleService,
    @Inject(SAMPLE_CONFIG) private readonly config: SampleConfig,
  ) {}

  onModuleInit(): void {
    // Stands for cache priming or pool warm-up: the instance must not turn ready before it is done.
    this.lifecycle.registerWarmupTask({
      name: 'orders.prime',
      run: (signal) => sleep(this.config.warmupDelayMs, signal),
    });
  }

  list(): Order[] {
    return [...this.orders.values()];
  }

  get(id: string): Order {
    const order = this.orders.get(id);
    if (!order) throw new NotFoundException(`order ${id} not found`);
    return order;
  }

  create(item: string, quantity: number): Order {
    const order: Order = { id: String(this.nextId++), item, quantity, createdAt: new Date().toISOString() };
    this.orders.set(order.id, order);
    return order;
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
