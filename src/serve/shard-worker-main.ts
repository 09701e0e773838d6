// The body of a shard worker thread (started by src/serve/shard-worker.ts): loads one shard graph into a LocalShard
// and answers its method calls. Owns: the worker side of the ShardCall / ShardReply messages.
// Must not import src/train, tfjs or Kafka.
import { parentPort, workerData } from 'node:worker_threads';
import { ServingModel } from './model.ts';
import { LocalShard } from './sharded-scorer.ts';
import type { ShardCall, ShardReply } from './shard-worker.ts';

const port = parentPort;
if (!port)
  throw new Error('shard-worker-main.ts runs only as a worker thread (src/serve/shard-worker.ts)');
const { bytes, intraOpThreads } = workerData as { bytes: Uint8Array; intraOpThreads: number };

const reply = (message: ShardReply, transfer: ArrayBuffer[] = []) =>
  port.postMessage(message, transfer);
const failure = (call: number, error: unknown): ShardReply => ({
  call,
  error: {
    message: (error as Error).message ?? String(error),
    reason: (error as { reason?: string }).reason,
  },
});

let shard: LocalShard;
try {
  shard = new LocalShard(await ServingModel.load(bytes, { intraOpThreads }));
  reply({ call: -1, metadata: shard.metadata });
} catch (error) {
  reply(failure(-1, error));
  process.exit(1);
}

port.on('message', async (message: ShardCall) => {
  try {
    switch (message.method) {
      case 'rowsOf': {
        const rows = await shard.rowsOf(message.entities);
        reply({ call: message.call, result: rows }, [rows.buffer as ArrayBuffer]);
        break;
      }
      case 'score': {
        const result = await shard.score(message.request);
        reply({ call: message.call, result });
        break;
      }
      case 'counts':
        reply({ call: message.call, result: await shard.counts(message.request) });
        break;
      case 'release':
        reply({ call: message.call, result: await shard.release(message.id) });
        break;
      case 'close':
        await shard.close();
        reply({ call: message.call, result: undefined });
        break;
    }
  } catch (error) {
    reply(failure(message.call, error));
  }
});
